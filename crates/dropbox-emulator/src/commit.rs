//! Committing received content as a file: CommitInfo and WriteMode as the spec defines them.
//!
//! Shared by files/upload and upload_session/finish. The content is already complete on disk
//! (a temp or session file) when the commit runs, and becomes the file by a rename under the
//! store lock, so a rejected or interrupted upload never changes what is stored. Identical
//! content is not a conflict and writes nothing, unless `strict_conflict` asks for one.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::caller::Caller;
use super::disk::{new_id, new_rev, random_token};
use super::error::{tag, write_conflict, ApiError, ApiResult};
use super::files_read::parse_arg;
use super::locate::{locate, render};
use super::paths::{display_path, PathKind, PathSpec};
use super::server::AppState;
use super::spool::Received;
use super::store::{Entry, FileInfo};
use super::write_rules::{
    canonical, check_writable, create_parents, free_variant, now_timestamp, RenameStyle,
};

/// files.WriteMode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteMode {
    Add,
    Overwrite,
    Update(String),
}

impl WriteMode {
    /// Parses `"add"`, `{".tag":"add"}`, ..., `{".tag":"update","update":"<rev>"}`.
    pub fn parse(route: &str, value: Option<&Value>) -> ApiResult<WriteMode> {
        let bad = |detail: &str| ApiError::bad_request(route, format!("mode: {detail}"));
        let Some(value) = value else {
            return Ok(WriteMode::Add);
        };
        let tag = match value {
            Value::String(tag) => tag.as_str(),
            Value::Object(object) => object
                .get(".tag")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("missing \".tag\""))?,
            _ => return Err(bad("expected a union")),
        };
        match tag {
            "add" => Ok(WriteMode::Add),
            "overwrite" => Ok(WriteMode::Overwrite),
            "update" => {
                let rev = value
                    .get("update")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("update: missing rev"))?;
                let valid =
                    rev.len() >= 9 && rev.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
                if !valid {
                    return Err(bad(&format!(
                        "update: '{rev}' did not match pattern '[0-9a-f]+'"
                    )));
                }
                Ok(WriteMode::Update(rev.to_string()))
            }
            other => Err(bad(&format!("unknown tag '{other}'"))),
        }
    }
}

/// files.CommitInfo, validated.
#[derive(Debug, Clone)]
pub struct Commit {
    pub path: PathSpec,
    pub mode: WriteMode,
    pub autorename: bool,
    pub client_modified: Option<String>,
    pub strict_conflict: bool,
}

/// files.CommitInfo as it arrives (also the body of UploadSessionFinishArg.commit).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitInfoArg {
    pub path: String,
    #[serde(default)]
    pub mode: Option<Value>,
    #[serde(default)]
    pub autorename: bool,
    #[serde(default)]
    pub client_modified: Option<String>,
    #[serde(default)]
    pub mute: bool,
    #[serde(default)]
    pub property_groups: Option<Value>,
    #[serde(default)]
    pub strict_conflict: bool,
}

impl CommitInfoArg {
    /// Checks everything a 400 is due for. A malformed path is only reported (`true`): it becomes
    /// a route error after the body was received, as Dropbox reports it.
    pub fn validate(self, route: &str) -> ApiResult<(Commit, bool)> {
        let _ignored = (self.mute, self.property_groups);
        let mode = WriteMode::parse(route, self.mode.as_ref())?;
        if let Some(stamp) = &self.client_modified {
            if chrono::NaiveDateTime::parse_from_str(stamp, "%Y-%m-%dT%H:%M:%SZ").is_err() {
                return Err(ApiError::bad_request(
                    route,
                    format!("client_modified: '{stamp}' is not a timestamp of the form %Y-%m-%dT%H:%M:%SZ"),
                ));
            }
        }
        let mut malformed = false;
        let path = parse_arg(route, &self.path, "path", PathKind::WriteOrId, || {
            ApiError::Route(tag("malformed_path"))
        })
        .or_else(|err| match err {
            ApiError::Route(_) => {
                malformed = true;
                Ok(PathSpec::Path(Vec::new()))
            }
            other => Err(other),
        })?;
        let commit = Commit {
            path,
            mode,
            autorename: self.autorename,
            client_modified: self.client_modified,
            strict_conflict: self.strict_conflict,
        };
        Ok((commit, malformed))
    }
}

/// Why a commit wrote nothing.
#[derive(Debug)]
pub enum CommitError {
    /// A files.WriteError value.
    Write(Value),
    Io(std::io::Error),
}

impl From<std::io::Error> for CommitError {
    fn from(err: std::io::Error) -> Self {
        CommitError::Io(err)
    }
}

/// Makes the complete content at `staged` the file named by `commit`; returns FileMetadata
/// (without `.tag`). On success `staged` has been moved away, unless nothing needed writing.
pub fn commit_file(
    state: &AppState,
    caller: &Caller,
    commit: &Commit,
    staged: &Path,
    received: &Received,
) -> Result<Value, CommitError> {
    let mut store = state.store();
    let place = locate(&store, &state.directory, caller, &commit.path)
        .ok_or_else(|| CommitError::Write(tag("no_write_permission")))?;
    check_writable(&store, &place, &state.realism.get()).map_err(CommitError::Write)?;
    let mut place = canonical(&store, &place);
    let existing = place.entry(&store).cloned();
    let same_content = existing
        .as_ref()
        .and_then(|e| e.file.as_ref())
        .is_some_and(|f| f.content_hash == received.content_hash);
    let mut replaces: Option<Entry> = None;
    match (&existing, &commit.mode) {
        (None, WriteMode::Update(_)) if commit.strict_conflict => {
            return Err(CommitError::Write(write_conflict("file")));
        }
        (None, _) => {}
        (Some(folder), _) if folder.is_folder() => {
            if !commit.autorename {
                return Err(CommitError::Write(write_conflict("folder")));
            }
            place = free_variant(&store, &place, false, RenameStyle::Numbered);
        }
        (Some(file), _) if same_content && !commit.strict_conflict => {
            return Ok(render(file, place.depth, false));
        }
        (Some(file), WriteMode::Overwrite) => replaces = Some(file.clone()),
        (Some(file), WriteMode::Update(rev))
            if file.file.as_ref().is_some_and(|f| &f.rev == rev) =>
        {
            replaces = Some(file.clone())
        }
        (Some(_), mode) => {
            if !commit.autorename {
                return Err(CommitError::Write(write_conflict("file")));
            }
            let style = match mode {
                WriteMode::Update(_) => RenameStyle::ConflictedCopy,
                _ => RenameStyle::Numbered,
            };
            place = free_variant(&store, &place, false, style);
        }
    }
    create_parents(&mut store, &place)?;
    let blob = random_token(18);
    std::fs::rename(staged, store.layout().blob(&blob))?;
    let now = now_timestamp();
    let entry = Entry {
        id: replaces.as_ref().map_or_else(new_id, |old| old.id.clone()),
        // Overwriting keeps the stored spelling of the name, as Dropbox does.
        path_display: replaces.as_ref().map_or_else(
            || display_path(&place.components),
            |old| old.path_display.clone(),
        ),
        file: Some(FileInfo {
            rev: new_rev(),
            size: received.size,
            content_hash: received.content_hash.clone(),
            client_modified: commit
                .client_modified
                .clone()
                .unwrap_or_else(|| now.clone()),
            server_modified: now,
            blob,
        }),
    };
    let metadata = render(&entry, place.depth, false);
    store.put(&place.tree, entry)?;
    if let Some(old_blob) = replaces.and_then(|old| old.file).map(|f| f.blob) {
        let _ = std::fs::remove_file(store.layout().blob(&old_blob));
    }
    Ok(metadata)
}
