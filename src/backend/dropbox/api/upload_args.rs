//! Arguments of the upload routes (files/upload and the upload session routes).
//!
//! These travel in the `Dropbox-API-Arg` header. Field names follow the Stone spec; optional
//! fields are left out when unset rather than sent as `null`, which keeps headers short.

use serde::{Deserialize, Serialize};

/// What to do when a file already exists at the target path.
///
/// Serialised as Dropbox's union form: `{".tag":"add"}`, `{".tag":"overwrite"}`,
/// `{".tag":"update","update":"<rev>"}`. serde's adjacent tagging produces exactly this because
/// `update` is the only variant with a value, so the fixed content key can be named after it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = ".tag", content = "update", rename_all = "lowercase")]
pub enum WriteMode {
    /// Never overwrite; a conflict is an error (or an autorename).
    #[default]
    Add,
    /// Replace whatever is there.
    Overwrite,
    /// Replace only if the current rev is this one.
    Update(String),
}

/// Upload session kind. Sequential takes appends in order; concurrent takes 4 MiB-aligned
/// appends in any order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = ".tag", rename_all = "lowercase")]
pub enum SessionType {
    Sequential,
    Concurrent,
}

/// `files/upload` arguments (the spec's `UploadArg extends CommitInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadArg {
    pub path: String,
    pub mode: WriteMode,
    pub autorename: bool,
    /// Dropbox timestamp (see [`super::timestamp`]) to record as the file's modification time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_modified: Option<String>,
    pub mute: bool,
    pub strict_conflict: bool,
    /// Content hash of the body; Dropbox refuses the upload if its bytes differ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
}

impl UploadArg {
    /// Upload to `path` in `mode`, without autorename, notifications on, no hash check.
    pub fn new(path: impl Into<String>, mode: WriteMode) -> Self {
        Self {
            path: path.into(),
            mode,
            autorename: false,
            client_modified: None,
            mute: false,
            strict_conflict: false,
            content_hash: None,
        }
    }
}

/// Where an upload session stands: the next append must start at `offset`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadSessionCursor {
    pub session_id: String,
    pub offset: u64,
}

/// `files/upload_session/start` arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadSessionStartArg {
    /// True if this request's body is the last data of the session.
    pub close: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_type: Option<SessionType>,
    /// Content hash of this request's body only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
}

/// `files/upload_session/append_v2` arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadSessionAppendArg {
    pub cursor: UploadSessionCursor,
    /// True if this request's body is the last data of the session.
    pub close: bool,
    /// Content hash of this request's body only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
}

/// Where and how a finished upload session becomes a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitInfo {
    pub path: String,
    pub mode: WriteMode,
    pub autorename: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_modified: Option<String>,
    pub mute: bool,
    pub strict_conflict: bool,
}

impl CommitInfo {
    /// Commit to `path` in `mode`, without autorename, notifications on.
    pub fn new(path: impl Into<String>, mode: WriteMode) -> Self {
        Self {
            path: path.into(),
            mode,
            autorename: false,
            client_modified: None,
            mute: false,
            strict_conflict: false,
        }
    }
}

/// `files/upload_session/finish` arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadSessionFinishArg {
    pub cursor: UploadSessionCursor,
    pub commit: CommitInfo,
    /// Content hash of this request's body only (not of the whole file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn write_mode_uses_dropbox_union_form() {
        let cases = [
            (WriteMode::Add, json!({".tag": "add"})),
            (WriteMode::Overwrite, json!({".tag": "overwrite"})),
            (
                WriteMode::Update("a1c10ce0dd78".into()),
                json!({".tag": "update", "update": "a1c10ce0dd78"}),
            ),
        ];
        for (mode, expected) in cases {
            assert_eq!(serde_json::to_value(&mode).unwrap(), expected);
            assert_eq!(serde_json::from_value::<WriteMode>(expected).unwrap(), mode);
        }
    }

    #[test]
    fn upload_arg_leaves_out_unset_options() {
        let mut arg = UploadArg::new("/a.txt", WriteMode::Overwrite);
        assert_eq!(
            serde_json::to_value(&arg).unwrap(),
            json!({"path": "/a.txt", "mode": {".tag": "overwrite"}, "autorename": false,
                   "mute": false, "strict_conflict": false})
        );
        arg.client_modified = Some("2015-05-12T15:50:38Z".into());
        arg.content_hash = Some("ab".into());
        let value = serde_json::to_value(&arg).unwrap();
        assert_eq!(value["client_modified"], "2015-05-12T15:50:38Z");
        assert_eq!(value["content_hash"], "ab");
    }

    #[test]
    fn session_args_match_the_spec() {
        let start = UploadSessionStartArg {
            close: false,
            session_type: Some(SessionType::Concurrent),
            content_hash: None,
        };
        assert_eq!(
            serde_json::to_value(&start).unwrap(),
            json!({"close": false, "session_type": {".tag": "concurrent"}})
        );
        let finish = UploadSessionFinishArg {
            cursor: UploadSessionCursor {
                session_id: "s".into(),
                offset: 5,
            },
            commit: CommitInfo::new("/f", WriteMode::Add),
            content_hash: None,
        };
        assert_eq!(
            serde_json::to_value(&finish).unwrap(),
            json!({"cursor": {"session_id": "s", "offset": 5},
                   "commit": {"path": "/f", "mode": {".tag": "add"}, "autorename": false,
                              "mute": false, "strict_conflict": false}})
        );
    }
}
