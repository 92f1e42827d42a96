//! Jailed virtual paths.
//!
//! A [`VPath`] is what a client's path string becomes once it is resolved against the user's
//! home: absolute, `/`-separated, without `.`/`..`/empty components. `..` at the top stays at
//! the top (as `cd ..` does at `/`), so no spelling can leave the jail; the backend then maps the
//! path under the user's root folder.

use std::fmt;

use super::VfsError;

/// The longest path component Dropbox (and most file systems) accept.
const MAX_COMPONENT_BYTES: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VPath {
    /// Components, each non-empty and neither `.` nor `..`.
    parts: Vec<String>,
}

impl VPath {
    /// The user's home, `/`.
    pub fn root() -> Self {
        VPath { parts: Vec::new() }
    }

    /// Resolves a client's path. Relative paths are taken from the home (`/`), as SFTP has no
    /// working directory of its own: clients send absolute paths after REALPATH.
    pub fn parse(input: &str) -> Result<Self, VfsError> {
        if input.contains('\0') {
            return Err(VfsError::InvalidPath(
                "path contains a NUL character".to_string(),
            ));
        }
        // The codec replaces bytes that are not UTF-8 with U+FFFD. Storing that would give the
        // file a name the client never sent (and cannot find again), so such names are refused.
        if input.contains(char::REPLACEMENT_CHARACTER) {
            return Err(VfsError::InvalidPath(
                "the name is not valid UTF-8; Dropbox stores UTF-8 names only \
                 (set the client's file name encoding to UTF-8)"
                    .to_string(),
            ));
        }
        let mut parts: Vec<String> = Vec::new();
        for part in input.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                name => {
                    if name.len() > MAX_COMPONENT_BYTES {
                        return Err(VfsError::InvalidPath(format!(
                            "path component longer than {MAX_COMPONENT_BYTES} bytes"
                        )));
                    }
                    parts.push(name.to_string());
                }
            }
        }
        Ok(VPath { parts })
    }

    pub fn is_root(&self) -> bool {
        self.parts.is_empty()
    }

    /// The last component; `/` for the root.
    pub fn name(&self) -> &str {
        self.parts.last().map(String::as_str).unwrap_or("/")
    }

    pub fn parent(&self) -> Option<VPath> {
        if self.is_root() {
            return None;
        }
        let mut parts = self.parts.clone();
        parts.pop();
        Some(VPath { parts })
    }

    pub fn join(&self, name: &str) -> Result<VPath, VfsError> {
        VPath::parse(&format!("{self}/{name}"))
    }

    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().map(String::as_str)
    }

    /// True if `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &VPath) -> bool {
        self.parts.len() >= other.parts.len() && self.parts[..other.parts.len()] == other.parts[..]
    }
}

impl fmt::Display for VPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.parts.is_empty() {
            return f.write_str("/");
        }
        for part in &self.parts {
            write!(f, "/{part}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> String {
        VPath::parse(s).unwrap().to_string()
    }

    #[test]
    fn normalises_dots_and_slashes() {
        assert_eq!(p("."), "/");
        assert_eq!(p(""), "/");
        assert_eq!(p("/a//b/./c/"), "/a/b/c");
        assert_eq!(p("a/b/../c"), "/a/c");
    }

    #[test]
    fn dot_dot_cannot_leave_the_jail() {
        assert_eq!(p("../../.."), "/");
        assert_eq!(p("/../etc/passwd"), "/etc/passwd");
        assert_eq!(p("a/../../b"), "/b");
    }

    #[test]
    fn refuses_nul_and_overlong_components() {
        assert!(VPath::parse("a\0b").is_err());
        assert!(VPath::parse(&"x".repeat(256)).is_err());
        assert!(VPath::parse(&"x".repeat(255)).is_ok());
    }

    #[test]
    fn refuses_names_that_were_not_utf8() {
        let decoded = String::from_utf8_lossy(b"caf\xe9.txt");
        let error = VPath::parse(&decoded).unwrap_err();
        assert!(error.to_string().contains("not valid UTF-8"), "{error}");
        assert!(VPath::parse("café.txt").is_ok());
    }

    #[test]
    fn name_parent_and_prefix() {
        let path = VPath::parse("/a/b").unwrap();
        assert_eq!(path.name(), "b");
        assert_eq!(path.parent().unwrap().to_string(), "/a");
        assert!(path.starts_with(&VPath::parse("/a").unwrap()));
        assert!(!VPath::parse("/ab")
            .unwrap()
            .starts_with(&VPath::parse("/a").unwrap()));
        assert_eq!(VPath::root().name(), "/");
    }
}
