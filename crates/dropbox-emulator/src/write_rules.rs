//! Dropbox's rules for writing at a path, shared by upload, create_folder, move and copy.
//!
//! Before anything is written: the name must be allowed, no ancestor may be a file
//! (`conflict/file_ancestor`), and missing ancestors are created as folders, as Dropbox does.
//! Existing ancestors keep their stored spelling (case-preserving paths). On a conflict,
//! `autorename` picks `name (1).ext`, `name (2).ext`, ... (or `(conflicted copy)` for updates).

use serde_json::Value;

use super::disk::new_id;
use super::error::{tag, write_conflict};
use super::locate::Located;
use super::paths::{is_disallowed_name, lower_key};
use super::realism::Realism;
use super::store::{Entry, Store};

/// Now as a DropboxTimestamp: `YYYY-MM-DDTHH:MM:SSZ`, UTC, whole seconds.
pub fn now_timestamp() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Checks that something may be written at `place`; the error is a WriteError value.
/// `realism` holds the models of account-specific name rules.
pub fn check_writable(store: &Store, place: &Located, realism: &Realism) -> Result<(), Value> {
    if place.is_namespace_root() {
        return Err(write_conflict("folder"));
    }
    let name = place.components.last().map(String::as_str).unwrap_or("");
    if is_disallowed_name(name) {
        return Err(tag("disallowed_name"));
    }
    if let Some(model) = &realism.refuse_non_bmp_names {
        if model.refuses(&place.components) {
            return Err(tag("malformed_path"));
        }
    }
    for end in 1..place.components.len() {
        let ancestor = store.get(&place.tree, &lower_key(&place.components[..end]));
        if ancestor.is_some_and(|entry| !entry.is_folder()) {
            return Err(write_conflict("file_ancestor"));
        }
    }
    Ok(())
}

/// The place with each existing ancestor spelled as stored.
pub fn canonical(store: &Store, place: &Located) -> Located {
    let mut components = place.components.clone();
    for end in 1..components.len() {
        if let Some(entry) = store.get(&place.tree, &lower_key(&components[..end])) {
            if let Some(stored) = entry.components().last() {
                components[end - 1] = stored.clone();
            }
        }
    }
    Located {
        components,
        ..place.clone()
    }
}

/// Creates the missing ancestor folders of `place`.
pub fn create_parents(store: &mut Store, place: &Located) -> std::io::Result<()> {
    for end in 1..place.components.len() {
        let key = lower_key(&place.components[..end]);
        if store.get(&place.tree, &key).is_none() {
            let folder = Entry {
                id: new_id(),
                path_display: super::paths::display_path(&place.components[..end]),
                file: None,
            };
            store.put(&place.tree, folder)?;
        }
    }
    Ok(())
}

/// How an autorenamed name is formed.
#[derive(Debug, Clone, Copy)]
pub enum RenameStyle {
    /// `name (1).ext`, `name (2).ext`, ...
    Numbered,
    /// `name (conflicted copy).ext`, then numbered conflicted copies.
    ConflictedCopy,
}

/// The first variant of `place`'s name that is free.
pub fn free_variant(
    store: &Store,
    place: &Located,
    is_folder: bool,
    style: RenameStyle,
) -> Located {
    let name = place.components.last().cloned().unwrap_or_default();
    let (stem, ext) = match name.rsplit_once('.') {
        Some((stem, ext)) if !is_folder && !stem.is_empty() => {
            (stem.to_string(), format!(".{ext}"))
        }
        _ => (name.clone(), String::new()),
    };
    (1u32..)
        .map(|n| match (style, n) {
            (RenameStyle::Numbered, n) => format!("{stem} ({n}){ext}"),
            (RenameStyle::ConflictedCopy, 1) => format!("{stem} (conflicted copy){ext}"),
            (RenameStyle::ConflictedCopy, n) => format!("{stem} (conflicted copy {n}){ext}"),
        })
        .map(|candidate| place.with_name(&candidate))
        .find(|candidate| candidate.entry(store).is_none())
        .expect("an unbounded sequence of names has a free one")
}
