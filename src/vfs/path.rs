//! Jailed virtual paths.
//!
//! A [`VPath`] is what a client's path string becomes once it is resolved against the user's
//! home: absolute, `/`-separated, without `.`/`..`/empty components. `..` at the top stays at
//! the top (as `cd ..` does at `/`), so no spelling can leave the jail; the backend then maps the
//! path under the user's root folder.
//!
//! Names are normalised to Unicode NFC here, the one door every client path comes through:
//! macOS clients send NFD (`e` + combining accent) while Dropbox stores and compares NFC, so
//! without it a file uploaded from a Mac could not be found again by its listed name, and two
//! spellings of one name would count as two paths in the gateway's own tables (open uploads,
//! barriers). Doing it here rather than where a path becomes a Dropbox path means everything
//! above the backend (handles, audit lines, permission checks) already sees the stored form.

use std::fmt;

use unicode_normalization::UnicodeNormalization;

use super::VfsError;

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
                name => parts.push(name.nfc().collect()),
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

    /// The key two spellings of one path share where paths are compared as Dropbox compares
    /// them: case-insensitively (see [`case_key`]).
    pub fn case_key(&self) -> String {
        case_key(&self.to_string())
    }

    /// True if `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &VPath) -> bool {
        self.parts.len() >= other.parts.len() && self.parts[..other.parts.len()] == other.parts[..]
    }
}

/// The one case-folding rule of the gateway: Dropbox's paths are case-insensitive (and
/// case-preserving), so `/A.txt` and `/a.txt` are one file. NFC first, so that a name folded
/// from either Unicode spelling gives one key.
pub fn case_key(path: &str) -> String {
    path.nfc().collect::<String>().to_lowercase()
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
    fn refuses_nul() {
        assert!(VPath::parse("a\0b").is_err());
    }

    #[test]
    fn names_are_normalised_to_nfc() {
        let nfd = "/Cafe\u{301}/re\u{301}sume\u{301}.txt";
        let path = VPath::parse(nfd).unwrap();
        assert_eq!(path.to_string(), "/Caf\u{e9}/r\u{e9}sum\u{e9}.txt");
        assert_eq!(
            path,
            VPath::parse("/Caf\u{e9}/r\u{e9}sum\u{e9}.txt").unwrap()
        );
        assert_eq!(path.name().chars().count(), "résumé.txt".chars().count());
    }

    #[test]
    fn case_key_folds_case_and_normalisation() {
        let upper = VPath::parse("/D\u{e9}j\u{e0}/A.TXT").unwrap();
        let lower = VPath::parse("/de\u{301}ja\u{300}/a.txt").unwrap();
        assert_ne!(upper, lower, "paths keep their case");
        assert_eq!(upper.case_key(), lower.case_key());
        assert_eq!(case_key("/Ä/B"), case_key("/A\u{308}/b"));
        assert_ne!(case_key("/a"), case_key("/b"));
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
