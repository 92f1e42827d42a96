//! What Dropbox answers: metadata, listings, account and space usage.
//!
//! Field names are exactly those of the Stone spec (dropbox/dropbox-api-spec), so serde maps
//! them without renaming. Unknown fields are ignored (Dropbox adds fields over time); fields
//! the spec marks optional are `Option` (or defaulted) so an older or smaller server, like our
//! emulator, still decodes.

use serde::{Deserialize, Serialize};

/// A file, folder or deleted entry where the spec's declared type is the union `Metadata`
/// (get_metadata, list_folder entries, delete/move/copy results): tagged by `.tag`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = ".tag", rename_all = "lowercase")]
pub enum Metadata {
    File(FileMetadata),
    Folder(FolderMetadata),
    Deleted(DeletedMetadata),
}

impl Metadata {
    /// The last path component.
    pub fn name(&self) -> &str {
        match self {
            Metadata::File(m) => &m.name,
            Metadata::Folder(m) => &m.name,
            Metadata::Deleted(m) => &m.name,
        }
    }

    /// The Dropbox id (`id:...`), which stays with a file or folder through moves; None for a
    /// deleted entry.
    pub fn id(&self) -> Option<&str> {
        match self {
            Metadata::File(m) => Some(&m.id),
            Metadata::Folder(m) => Some(&m.id),
            Metadata::Deleted(_) => None,
        }
    }

    /// The lowercased full path, if the entry is mounted.
    pub fn path_lower(&self) -> Option<&str> {
        match self {
            Metadata::File(m) => m.path_lower.as_deref(),
            Metadata::Folder(m) => m.path_lower.as_deref(),
            Metadata::Deleted(m) => m.path_lower.as_deref(),
        }
    }

    /// The cased full path, if the entry is mounted.
    pub fn path_display(&self) -> Option<&str> {
        match self {
            Metadata::File(m) => m.path_display.as_deref(),
            Metadata::Folder(m) => m.path_display.as_deref(),
            Metadata::Deleted(m) => m.path_display.as_deref(),
        }
    }
}

/// A file's metadata. Untagged where the spec declares `FileMetadata` itself (upload results,
/// download's `Dropbox-API-Result`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileMetadata {
    pub name: String,
    /// `id:...`; usable as a path.
    pub id: String,
    /// Dropbox timestamp chosen by the uploader (our SFTP mtime).
    pub client_modified: String,
    /// Dropbox timestamp of the last change on the server.
    pub server_modified: String,
    pub rev: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_lower: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_display: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
    /// False for files that must be exported (e.g. Google Docs); defaults to true as in the spec.
    #[serde(default = "yes")]
    pub is_downloadable: bool,
}

fn yes() -> bool {
    true
}

/// A folder's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FolderMetadata {
    pub name: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_lower: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_display: Option<String>,
}

/// Something that used to exist at a path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeletedMetadata {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_lower: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_display: Option<String>,
}

/// One page of a folder listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListFolderResult {
    pub entries: Vec<Metadata>,
    pub cursor: String,
    pub has_more: bool,
}

/// `users/get_current_account`, reduced to what dropgate uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FullAccount {
    pub account_id: String,
    pub email: String,
    pub name: Name,
    pub root_info: RootInfo,
    /// Set for members of a team.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_member_id: Option<String>,
}

/// A person's name; dropgate only shows `display_name`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Name {
    pub display_name: String,
    #[serde(default)]
    pub given_name: String,
    #[serde(default)]
    pub surname: String,
    #[serde(default)]
    pub familiar_name: String,
    #[serde(default)]
    pub abbreviated_name: String,
}

/// Where the account's paths are rooted. `tag` is `user` or `team` (a team with a separate
/// team space, whose `root_namespace_id` goes into `Dropbox-API-Path-Root`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootInfo {
    #[serde(rename = ".tag")]
    pub tag: String,
    pub root_namespace_id: String,
    pub home_namespace_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home_path: Option<String>,
}

impl RootInfo {
    /// True when the account belongs to a team with its own team space.
    pub fn is_team_space(&self) -> bool {
        self.tag == "team"
    }
}

/// `users/get_space_usage`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpaceUsage {
    /// Bytes used by this user.
    pub used: u64,
    pub allocation: SpaceAllocation,
}

/// How space is allocated. An open union in the spec, hence `Other`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = ".tag", rename_all = "lowercase")]
pub enum SpaceAllocation {
    Individual {
        allocated: u64,
    },
    Team {
        /// Bytes used by the whole team.
        #[serde(default)]
        used: u64,
        /// Bytes allocated to the whole team.
        allocated: u64,
        /// This member's own limit inside the team's space; 0 means none.
        #[serde(default)]
        user_within_team_space_allocated: u64,
    },
    #[serde(other)]
    Other,
}

impl SpaceUsage {
    /// The quota that limits this user: their own, their per-member team limit, or else the
    /// team's. 0 when Dropbox does not say.
    pub fn allocated(&self) -> u64 {
        match self.allocation {
            SpaceAllocation::Individual { allocated } => allocated,
            SpaceAllocation::Team {
                allocated,
                user_within_team_space_allocated,
                ..
            } => {
                if user_within_team_space_allocated > 0 {
                    user_within_team_space_allocated
                } else {
                    allocated
                }
            }
            SpaceAllocation::Other => 0,
        }
    }

    /// Bytes still free under the quota from [`SpaceUsage::allocated`] (a shared team quota is
    /// filled by the whole team).
    pub fn available(&self) -> u64 {
        let used = match self.allocation {
            SpaceAllocation::Team {
                used,
                user_within_team_space_allocated: 0,
                ..
            } => used.max(self.used),
            _ => self.used,
        };
        self.allocated().saturating_sub(used)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_tagged_metadata_and_ignores_unknown_fields() {
        let entries = json!([
            {".tag": "file", "name": "a.txt", "id": "id:1", "client_modified": "2015-05-12T15:50:38Z",
             "server_modified": "2015-05-12T15:50:39Z", "rev": "a1c10ce0dd78", "size": 7,
             "path_lower": "/a.txt", "path_display": "/A.txt", "content_hash": "ab",
             "sharing_info": {"read_only": false}},
            {".tag": "folder", "name": "d", "id": "id:2", "path_lower": "/d", "path_display": "/d"},
            {".tag": "deleted", "name": "gone", "path_lower": "/gone", "path_display": "/gone"}
        ]);
        let entries: Vec<Metadata> = serde_json::from_value(entries).unwrap();
        let Metadata::File(file) = &entries[0] else {
            panic!("not a file: {entries:?}")
        };
        assert_eq!(file.size, 7);
        assert!(file.is_downloadable);
        assert_eq!(entries[1].name(), "d");
        assert_eq!(entries[2].path_lower(), Some("/gone"));
    }

    #[test]
    fn decodes_account_and_space_usage() {
        let account: FullAccount = serde_json::from_value(json!({
            "account_id": "dbid:x", "email": "a@b.c", "email_verified": true,
            "name": {"display_name": "A B", "given_name": "A", "surname": "B",
                     "familiar_name": "A", "abbreviated_name": "AB"},
            "root_info": {".tag": "team", "root_namespace_id": "7", "home_namespace_id": "8",
                          "home_path": "/A B"},
            "team_member_id": "dbmid:y", "locale": "en"
        }))
        .unwrap();
        assert!(account.root_info.is_team_space());
        assert_eq!(account.team_member_id.as_deref(), Some("dbmid:y"));

        let usage: SpaceUsage = serde_json::from_value(json!({
            "used": 10, "allocation": {".tag": "individual", "allocated": 100}
        }))
        .unwrap();
        assert_eq!((usage.allocated(), usage.available()), (100, 90));

        let team: SpaceUsage = serde_json::from_value(json!({
            "used": 10, "allocation": {".tag": "team", "used": 50, "allocated": 100,
              "user_within_team_space_allocated": 0,
              "user_within_team_space_limit_type": {".tag": "off"}}
        }))
        .unwrap();
        assert_eq!((team.allocated(), team.available()), (100, 50));
    }
}
