//! files/get_metadata, files/list_folder and files/list_folder/continue.
//!
//! Listings page through the store's ordered keys; the cursor is opaque to clients but is just
//! the listing's parameters plus the last key returned, so a cursor stays valid across restarts.
//! A recursive listing of a folder starts with that folder itself, as Dropbox's does.

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::caller::Caller;
use super::error::{lookup, nested, tag, ApiError, ApiResult};
use super::lag;
use super::locate::{locate, render, Located};
use super::paths::{parse_path, PathKind, PathProblem, PathSpec};
use super::server::AppState;
use super::store::Store;

/// Parses a path argument; `malformed` builds the route's malformed_path error.
pub fn parse_arg(
    route: &str,
    raw: &str,
    field: &str,
    kind: PathKind,
    malformed: impl FnOnce() -> ApiError,
) -> ApiResult<PathSpec> {
    match parse_path(raw, field, kind) {
        Ok(spec) => Ok(spec),
        Err(PathProblem::BadRequest(message)) => Err(ApiError::bad_request(
            route,
            format!("request body: {message}"),
        )),
        Err(PathProblem::Malformed) => Err(malformed()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetMetadataArg {
    path: String,
    #[serde(default)]
    include_media_info: bool,
    #[serde(default)]
    include_deleted: bool,
    #[serde(default)]
    include_has_explicit_shared_members: bool,
    #[serde(default)]
    include_property_groups: Option<Value>,
}

pub fn get_metadata(
    state: &AppState,
    caller: &Caller,
    route: &str,
    arg: GetMetadataArg,
) -> ApiResult<Value> {
    let _ignored = (
        arg.include_media_info,
        arg.include_deleted,
        arg.include_has_explicit_shared_members,
        arg.include_property_groups,
    );
    let spec = parse_arg(route, &arg.path, "path", PathKind::Read, || {
        lookup("path", "malformed_path")
    })?;
    let store = state.store();
    let place =
        locate(&store, &state.directory, caller, &spec).ok_or(lookup("path", "not_found"))?;
    let entry = place
        .entry(&store)
        .filter(|entry| !lag::hides(state, &store, &spec, entry))
        .ok_or(lookup("path", "not_found"))?;
    Ok(render(entry, place.depth, true))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListFolderArg {
    path: String,
    #[serde(default)]
    recursive: bool,
    #[serde(default)]
    include_media_info: bool,
    #[serde(default)]
    include_deleted: bool,
    #[serde(default)]
    include_has_explicit_shared_members: bool,
    #[serde(default)]
    include_mounted_folders: Option<bool>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    shared_link: Option<Value>,
    #[serde(default)]
    include_property_groups: Option<Value>,
    #[serde(default)]
    include_non_downloadable_files: Option<bool>,
    #[serde(default)]
    include_restorable_info: bool,
}

/// Everything needed to produce the next page.
#[derive(Serialize, Deserialize)]
struct Cursor {
    tree: String,
    /// Key of the listed folder (`""` = tree root).
    key: String,
    depth: usize,
    recursive: bool,
    /// Include the listed folder itself (recursive listings of a non-root folder).
    include_self: bool,
    limit: usize,
    /// Last key returned so far.
    after: Option<String>,
}

impl Cursor {
    fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        format!(
            "emu1.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
        )
    }

    fn decode(text: &str) -> Option<Cursor> {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text.strip_prefix("emu1.")?)
            .ok()?;
        serde_json::from_slice(&raw).ok()
    }
}

pub fn list_folder(
    state: &AppState,
    caller: &Caller,
    route: &str,
    arg: ListFolderArg,
) -> ApiResult<Value> {
    let _ignored = (
        arg.include_media_info,
        arg.include_deleted,
        arg.include_has_explicit_shared_members,
        arg.include_mounted_folders,
        arg.shared_link,
        arg.include_property_groups,
        arg.include_non_downloadable_files,
        arg.include_restorable_info,
    );
    if let Some(limit) = arg.limit.filter(|limit| !(1..=2000).contains(limit)) {
        return Err(ApiError::bad_request(
            route,
            format!("request body: limit: {limit} is not within range [1, 2000]"),
        ));
    }
    let spec = parse_arg(route, &arg.path, "path", PathKind::ListRoot, || {
        lookup("path", "malformed_path")
    })?;
    let store = state.store();
    let place =
        locate(&store, &state.directory, caller, &spec).ok_or(lookup("path", "not_found"))?;
    check_is_folder(&store, &place)?;
    let limit = arg
        .limit
        .map_or(state.page_size, |limit| {
            (limit as usize).min(state.page_size)
        })
        .max(1);
    let cursor = Cursor {
        tree: place.tree.clone(),
        key: place.key(),
        depth: place.depth,
        recursive: arg.recursive,
        include_self: arg.recursive && !place.is_namespace_root(),
        limit,
        after: None,
    };
    Ok(next_page(&store, cursor))
}

fn check_is_folder(store: &Store, place: &Located) -> ApiResult<()> {
    if place.is_namespace_root() {
        return Ok(());
    }
    match place.entry(store) {
        None => Err(lookup("path", "not_found")),
        Some(entry) if !entry.is_folder() => Err(lookup("path", "not_folder")),
        Some(_) => Ok(()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListFolderContinueArg {
    cursor: String,
}

pub fn list_folder_continue(
    state: &AppState,
    caller: &Caller,
    route: &str,
    arg: ListFolderContinueArg,
) -> ApiResult<Value> {
    if arg.cursor.is_empty() {
        return Err(ApiError::bad_request(
            route,
            "request body: cursor: '' needs to be at least 1 characters",
        ));
    }
    let reset = || ApiError::Route(tag("reset"));
    let cursor = Cursor::decode(&arg.cursor).ok_or_else(reset)?;
    if cursor.tree != caller.view.tree {
        return Err(reset());
    }
    let store = state.store();
    let folder_exists = cursor.key.is_empty()
        || store
            .get(&cursor.tree, &cursor.key)
            .is_some_and(|entry| entry.is_folder());
    if !folder_exists {
        return Err(ApiError::Route(nested("path", tag("not_found"))));
    }
    Ok(next_page(&store, cursor))
}

/// The page after `cursor.after`, with a cursor for the one after it.
fn next_page(store: &Store, mut cursor: Cursor) -> Value {
    let mut page = Vec::new();
    if cursor.include_self && cursor.after.is_none() {
        if let Some(folder) = store.get(&cursor.tree, &cursor.key) {
            page.push((cursor.key.clone(), render(folder, cursor.depth, true)));
        }
    }
    let child_depth = cursor.key.matches('/').count() + 1;
    let after = cursor.after.clone();
    for (key, entry) in store.descendants(&cursor.tree, &cursor.key, after.as_deref()) {
        if page.len() > cursor.limit {
            break;
        }
        if !cursor.recursive && key.matches('/').count() != child_depth {
            continue;
        }
        page.push((key.clone(), render(entry, cursor.depth, true)));
    }
    let has_more = page.len() > cursor.limit;
    page.truncate(cursor.limit);
    if let Some((last, _)) = page.last() {
        cursor.after = Some(last.clone());
    }
    let entries: Vec<Value> = page.into_iter().map(|(_, value)| value).collect();
    json!({ "entries": entries, "cursor": cursor.encode(), "has_more": has_more })
}
