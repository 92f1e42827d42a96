//! files/create_folder_v2, files/delete_v2, files/move_v2 and files/copy_v2.
//!
//! Each follows the spec's error unions exactly: CreateFolderError `path/<WriteError>`,
//! DeleteError `path_lookup/<LookupError>` or `path_write/<WriteError>`, RelocationError
//! `from_lookup/...`, `to/<WriteError>`, `cant_move_folder_into_itself`. Deleting a folder deletes
//! everything in it, as Dropbox does.

use serde::Deserialize;
use serde_json::{json, Value};

use super::caller::Caller;
use super::disk::new_id;
use super::error::{lookup, nested, tag, write_conflict, ApiError, ApiResult};
use super::files_read::parse_arg;
use super::lag;
use super::locate::{locate, render, render_at, Located};
use super::paths::{lower_key, PathKind};
use super::server::AppState;
use super::store::{Entry, Store};
use super::write_rules::{canonical, check_writable, create_parents, free_variant, RenameStyle};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateFolderArg {
    path: String,
    #[serde(default)]
    autorename: bool,
}

pub fn create_folder(
    state: &AppState,
    caller: &Caller,
    route: &str,
    arg: CreateFolderArg,
) -> ApiResult<Value> {
    let path_error = |write_error: Value| ApiError::Route(nested("path", write_error));
    let spec = parse_arg(route, &arg.path, "path", PathKind::Write, || {
        path_error(tag("malformed_path"))
    })?;
    let mut store = state.store();
    let place = locate(&store, &state.directory, caller, &spec)
        .ok_or_else(|| path_error(tag("no_write_permission")))?;
    check_writable(&store, &place, &state.realism.get()).map_err(path_error)?;
    let mut place = canonical(&store, &place);
    if let Some(existing) = place.entry(&store) {
        if !arg.autorename {
            let kind = if existing.is_folder() {
                "folder"
            } else {
                "file"
            };
            return Err(path_error(write_conflict(kind)));
        }
        place = free_variant(&store, &place, true, RenameStyle::Numbered);
    }
    create_parents(&mut store, &place)?;
    let folder = Entry {
        id: new_id(),
        path_display: super::paths::display_path(&place.components),
        file: None,
    };
    store.put(&place.tree, folder)?;
    Ok(json!({ "metadata": render_at(&store, &place, false) }))
}

/// True for the top folders of namespaces (member homes, team folders): not movable/deletable.
fn is_namespace_folder(state: &AppState, place: &Located) -> bool {
    let key = place.key();
    state
        .directory
        .namespaces
        .values()
        .any(|ns| ns.tree == place.tree && !ns.base.is_empty() && lower_key(&ns.base) == key)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteArg {
    path: String,
    #[serde(default)]
    parent_rev: Option<String>,
}

pub fn delete(state: &AppState, caller: &Caller, route: &str, arg: DeleteArg) -> ApiResult<Value> {
    let spec = parse_arg(route, &arg.path, "path", PathKind::WriteOrId, || {
        lookup("path_lookup", "malformed_path")
    })?;
    let mut store = state.store();
    let place = locate(&store, &state.directory, caller, &spec)
        .ok_or(lookup("path_lookup", "not_found"))?;
    let entry = place
        .entry(&store)
        .filter(|entry| !lag::hides(state, &store, &spec, entry))
        .ok_or(lookup("path_lookup", "not_found"))?
        .clone();
    if place.is_namespace_root() || is_namespace_folder(state, &place) {
        return Err(ApiError::Route(nested("path_write", tag("team_folder"))));
    }
    if let (Some(parent_rev), Some(file)) = (&arg.parent_rev, &entry.file) {
        if *parent_rev != file.rev {
            return Err(ApiError::Route(nested(
                "path_write",
                write_conflict("file"),
            )));
        }
    }
    let metadata = render(&entry, place.depth, true);
    store.remove_subtree(&place.tree, &place.key())?;
    Ok(json!({ "metadata": metadata }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelocationArg {
    from_path: String,
    to_path: String,
    #[serde(default)]
    allow_shared_folder: bool,
    #[serde(default)]
    autorename: bool,
    #[serde(default)]
    allow_ownership_transfer: bool,
}

pub fn move_entry(
    state: &AppState,
    caller: &Caller,
    route: &str,
    arg: RelocationArg,
) -> ApiResult<Value> {
    relocate(state, caller, route, arg, Relocation::Move)
}

pub fn copy_entry(
    state: &AppState,
    caller: &Caller,
    route: &str,
    arg: RelocationArg,
) -> ApiResult<Value> {
    relocate(state, caller, route, arg, Relocation::Copy)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Relocation {
    Move,
    Copy,
}

fn relocate(
    state: &AppState,
    caller: &Caller,
    route: &str,
    arg: RelocationArg,
    kind: Relocation,
) -> ApiResult<Value> {
    let _ignored = (arg.allow_shared_folder, arg.allow_ownership_transfer);
    let to_error = |write_error: Value| ApiError::Route(nested("to", write_error));
    let from_spec = parse_arg(
        route,
        &arg.from_path,
        "from_path",
        PathKind::WriteOrId,
        || lookup("from_lookup", "malformed_path"),
    )?;
    let to_spec = parse_arg(route, &arg.to_path, "to_path", PathKind::WriteOrId, || {
        to_error(tag("malformed_path"))
    })?;
    let mut store = state.store();
    let from = locate(&store, &state.directory, caller, &from_spec)
        .ok_or(lookup("from_lookup", "not_found"))?;
    let source = from
        .entry(&store)
        .filter(|entry| !lag::hides(state, &store, &from_spec, entry))
        .ok_or(lookup("from_lookup", "not_found"))?
        .clone();
    let from = Located {
        components: source.components(),
        ..from
    };
    if kind == Relocation::Move && (from.is_namespace_root() || is_namespace_folder(state, &from)) {
        return Err(ApiError::Route(nested("from_write", tag("team_folder"))));
    }
    let to = locate(&store, &state.directory, caller, &to_spec)
        .filter(|to| to.tree == from.tree)
        .ok_or_else(|| to_error(tag("no_write_permission")))?;
    let (from_key, to_key) = (from.key(), to.key());
    if to_key.starts_with(&format!("{from_key}/")) {
        return Err(ApiError::Route(tag("cant_move_folder_into_itself")));
    }
    check_writable(&store, &to, &state.realism.get()).map_err(to_error)?;
    if kind == Relocation::Move && from_key == to_key {
        // A case-only rename (or a move onto itself): to Dropbox both paths are one, and
        // move_v2 answers OK having changed nothing (see docs/dropbox-api.md).
        return Ok(json!({ "metadata": render_at(&store, &from, true) }));
    }
    let mut to = canonical(&store, &to);
    if let Some(existing) = to.entry(&store) {
        if !arg.autorename {
            let conflict = if existing.is_folder() {
                "folder"
            } else {
                "file"
            };
            return Err(to_error(write_conflict(conflict)));
        }
        to = free_variant(&store, &to, source.is_folder(), RenameStyle::Numbered);
    }
    create_parents(&mut store, &to)?;
    apply(&mut store, kind, &from, &to)?;
    Ok(json!({ "metadata": render_at(&store, &to, true) }))
}

fn apply(store: &mut Store, kind: Relocation, from: &Located, to: &Located) -> std::io::Result<()> {
    match kind {
        Relocation::Move => store.move_subtree(&from.tree, &from.key(), &to.components),
        Relocation::Copy => store.copy_subtree(&from.tree, &from.key(), &to.components),
    }
}
