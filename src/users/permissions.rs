//! What a user may do: the permissions a config grants, by name or by preset.
//!
//! They are enforced at the vfs seam (`vfs::permissions`), before anything reaches a backend.

use std::fmt;

/// One thing a user may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// List a folder's entries.
    List,
    /// Download a file.
    Read,
    /// Create a new file.
    Upload,
    /// Replace an existing file (an upload onto it, or a rename that replaces it).
    Overwrite,
    /// Remove a file or an empty folder.
    Delete,
    /// Move or rename a file or folder.
    Rename,
    /// Create a folder.
    Mkdir,
}

impl Permission {
    pub const ALL: [Permission; 7] = [
        Permission::List,
        Permission::Read,
        Permission::Upload,
        Permission::Overwrite,
        Permission::Delete,
        Permission::Rename,
        Permission::Mkdir,
    ];

    /// The name used in the config file and in error messages.
    pub fn name(self) -> &'static str {
        match self {
            Permission::List => "list",
            Permission::Read => "read",
            Permission::Upload => "upload",
            Permission::Overwrite => "overwrite",
            Permission::Delete => "delete",
            Permission::Rename => "rename",
            Permission::Mkdir => "mkdir",
        }
    }

    pub fn from_name(name: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.name() == name)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of permissions.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Permissions(u8);

/// Named sets, so a common kind of user is one short setting.
pub const PRESETS: [(&str, &[Permission]); 3] = [
    ("all", &Permission::ALL),
    ("read-only", &[Permission::List, Permission::Read]),
    // A partner that drops files: it may create new ones, nothing else (no list, no read, no
    // overwrite, no delete).
    ("upload-only", &[Permission::Upload]),
];

impl Permissions {
    pub fn all() -> Permissions {
        Permissions::from_iter(Permission::ALL)
    }

    pub fn none() -> Permissions {
        Permissions(0)
    }

    /// A preset by name (see [`PRESETS`]).
    pub fn preset(name: &str) -> Option<Permissions> {
        PRESETS
            .iter()
            .find(|(preset, _)| *preset == name)
            .map(|(_, set)| set.iter().copied().collect())
    }

    pub fn allows(self, permission: Permission) -> bool {
        self.0 & permission.bit() != 0
    }
}

impl FromIterator<Permission> for Permissions {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        Permissions(iter.into_iter().fold(0, |bits, p| bits | p.bit()))
    }
}

impl Default for Permissions {
    fn default() -> Self {
        Permissions::all()
    }
}

impl fmt::Display for Permissions {
    /// "all", a preset's name, or the granted names joined by commas ("none" if empty).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((name, _)) = PRESETS
            .iter()
            .find(|(name, _)| Permissions::preset(name) == Some(*self))
        {
            return f.write_str(name);
        }
        let names: Vec<&str> = Permission::ALL
            .into_iter()
            .filter(|p| self.allows(*p))
            .map(Permission::name)
            .collect();
        if names.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&names.join(","))
        }
    }
}

impl fmt::Debug for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Permissions({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_and_names() {
        assert_eq!(Permissions::preset("all"), Some(Permissions::all()));
        let upload_only = Permissions::preset("upload-only").unwrap();
        assert!(upload_only.allows(Permission::Upload));
        assert!(!upload_only.allows(Permission::List));
        assert_eq!(upload_only.to_string(), "upload-only");
        let custom: Permissions = [Permission::List, Permission::Mkdir].into_iter().collect();
        assert_eq!(custom.to_string(), "list,mkdir");
        assert_eq!(Permissions::none().to_string(), "none");
        assert_eq!(Permission::from_name("rename"), Some(Permission::Rename));
        assert_eq!(Permission::from_name("write"), None);
    }
}
