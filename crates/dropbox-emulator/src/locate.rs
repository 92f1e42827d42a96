//! From a path argument to a place in a storage tree, and from an entry back to metadata JSON.
//!
//! Paths in requests and results are relative to the caller's namespace (its "view"); the store
//! works with tree-absolute paths. This module is the one place that translates between the two
//! and renders FileMetadata / FolderMetadata exactly as the spec shapes them.

use serde_json::{json, Map, Value};

use super::caller::{Caller, Directory};
use super::paths::{lower_key, PathSpec};
use super::store::{Entry, Store};

/// A place in a tree, as the caller named it.
#[derive(Debug, Clone)]
pub struct Located {
    pub tree: String,
    /// Tree-absolute display components, in the caller's spelling.
    pub components: Vec<String>,
    /// How many leading components belong to the namespace the result paths are relative to.
    pub depth: usize,
}

impl Located {
    pub fn key(&self) -> String {
        lower_key(&self.components)
    }

    pub fn is_namespace_root(&self) -> bool {
        self.components.len() <= self.depth
    }

    /// The entry at this place, if any.
    pub fn entry<'a>(&self, store: &'a Store) -> Option<&'a Entry> {
        store.get(&self.tree, &self.key())
    }

    /// The same place with a different last component.
    pub fn with_name(&self, name: &str) -> Located {
        let mut components = self.components.clone();
        if let Some(last) = components.last_mut() {
            *last = name.to_string();
        }
        Located {
            components,
            ..self.clone()
        }
    }
}

/// Resolves a parsed path; `None` when an id, rev or namespace does not exist for this caller.
pub fn locate(
    store: &Store,
    directory: &Directory,
    caller: &Caller,
    spec: &PathSpec,
) -> Option<Located> {
    let view = &caller.view;
    let in_view = |tree: &str, key: &str| {
        let base = lower_key(&view.base);
        tree == view.tree && (base.is_empty() || key.starts_with(&format!("{base}/")))
    };
    match spec {
        PathSpec::Path(components) => Some(Located {
            tree: view.tree.clone(),
            components: view.base.iter().chain(components).cloned().collect(),
            depth: view.base.len(),
        }),
        PathSpec::Id(id) => {
            let (tree, key) = store.locate_id(id)?;
            in_view(tree, key).then(|| from_entry(store, tree, key, view.base.len()))?
        }
        PathSpec::Rev(rev) => {
            let key = store.locate_rev(&view.tree, rev)?;
            in_view(&view.tree, &key)
                .then(|| from_entry(store, &view.tree, &key, view.base.len()))?
        }
        PathSpec::Namespace(id, components) => {
            let namespace = caller.namespace(directory, id)?;
            let inside_view = namespace.tree == view.tree && namespace.base.starts_with(&view.base);
            let depth = if inside_view {
                view.base.len()
            } else {
                namespace.base.len()
            };
            Some(Located {
                tree: namespace.tree.clone(),
                components: namespace.base.iter().chain(components).cloned().collect(),
                depth,
            })
        }
    }
}

fn from_entry(store: &Store, tree: &str, key: &str, depth: usize) -> Option<Located> {
    let entry = store.get(tree, key)?;
    Some(Located {
        tree: tree.to_string(),
        components: entry.components(),
        depth,
    })
}

/// Metadata JSON of `entry` with paths relative to the first `depth` components; `tagged` adds
/// the `.tag` that only the union type Metadata carries.
pub fn render(entry: &Entry, depth: usize, tagged: bool) -> Value {
    let components = entry.components();
    let visible = &components[depth.min(components.len())..];
    let name = components.last().cloned().unwrap_or_default();
    let mut object = Map::new();
    if tagged {
        let kind = if entry.is_folder() { "folder" } else { "file" };
        object.insert(".tag".into(), json!(kind));
    }
    object.insert("name".into(), json!(name));
    object.insert("id".into(), json!(entry.id));
    if let Some(file) = &entry.file {
        object.insert("client_modified".into(), json!(file.client_modified));
        object.insert("server_modified".into(), json!(file.server_modified));
        object.insert("rev".into(), json!(file.rev));
        object.insert("size".into(), json!(file.size));
    }
    object.insert("path_lower".into(), json!(lower_key(visible)));
    object.insert(
        "path_display".into(),
        json!(super::paths::display_path(visible)),
    );
    if let Some(file) = &entry.file {
        object.insert("is_downloadable".into(), json!(true));
        object.insert("content_hash".into(), json!(file.content_hash));
    }
    Value::Object(object)
}

/// Renders the entry at `place` (which must exist).
pub fn render_at(store: &Store, place: &Located, tagged: bool) -> Value {
    match place.entry(store) {
        Some(entry) => render(entry, place.depth, tagged),
        None => Value::Null,
    }
}
