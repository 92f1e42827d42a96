//! The realism model of accounts that refuse names with characters outside the Basic
//! Multilingual Plane (emoji, rare CJK: anything beyond U+FFFF).
//!
//! Dropbox has answered such names with `malformed_path` for some accounts and SDK paths
//! (dropbox-sdk-java#42, rclone#6199), and a client cannot tell in advance whether its account
//! is one of them. With this model on, every write (upload commit, create_folder, the target of
//! a move or copy) to a path holding such a character is refused that way, so a client's
//! handling of a name Dropbox refuses late, at the commit, can be tested. Off, such names are
//! stored like any other, as most accounts do today.

use serde::{Deserialize, Serialize};

/// On: refuse non-BMP characters in written paths with `malformed_path`. No settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefuseNonBmpNames {}

impl RefuseNonBmpNames {
    /// True if a path of these components is refused.
    pub fn refuses(&self, components: &[String]) -> bool {
        components
            .iter()
            .any(|name| name.chars().any(|c| u32::from(c) > 0xFFFF))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_only_characters_beyond_the_bmp() {
        let model = RefuseNonBmpNames {};
        let path = |parts: &[&str]| parts.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(model.refuses(&path(&["docs", "party 🎉.txt"])));
        assert!(model.refuses(&path(&["𠀀", "a.txt"])));
        assert!(!model.refuses(&path(&["résumé 日本 ☃.txt"])));
    }
}
