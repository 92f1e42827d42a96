//! The metadata index: every file and folder of every storage tree, in memory and on disk.
//!
//! A tree is the storage of one personal account or one team (all namespaces of a team live in
//! its one tree as top-level folders). Entries are kept in a `BTreeMap` keyed by the lowercased
//! path, so a folder's descendants are one contiguous key range and listings come out with
//! parents before children. Each entry is also one small JSON file under `meta/<tree>/`, written
//! atomically, so the index survives a restart and a change rewrites only what changed. Content
//! lives in immutable blobs (see [`disk`](super::disk)); an entry names its blob.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::disk::{self, new_id, new_rev, random_token, Layout};
use super::paths::{display_path, lower_key};
use super::write_rules::now_timestamp;

/// A stored file's version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileInfo {
    pub rev: String,
    pub size: u64,
    pub content_hash: String,
    pub client_modified: String,
    pub server_modified: String,
    /// Name of the content file under `blobs/`.
    pub blob: String,
}

/// One file or folder.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    pub id: String,
    /// Tree-absolute display path, e.g. `/Alice Smith/Docs/a.txt`.
    pub path_display: String,
    /// `None` for a folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileInfo>,
}

impl Entry {
    pub fn is_folder(&self) -> bool {
        self.file.is_none()
    }

    /// Display components of the tree-absolute path.
    pub fn components(&self) -> Vec<String> {
        self.path_display
            .split('/')
            .skip(1)
            .map(str::to_string)
            .collect()
    }

    pub fn key(&self) -> String {
        lower_key(&self.components())
    }
}

/// All trees, plus an id index.
pub struct Store {
    layout: Layout,
    trees: HashMap<String, BTreeMap<String, Entry>>,
    /// id → (tree, key)
    ids: HashMap<String, (String, String)>,
    /// id → when the entry was last written (memory only: for the lag model, `lag`).
    written_at: HashMap<String, Instant>,
}

impl Store {
    /// Loads every tree's metadata files from the storage root.
    pub fn open(layout: Layout) -> std::io::Result<Store> {
        let mut store = Store {
            layout,
            trees: HashMap::new(),
            ids: HashMap::new(),
            written_at: HashMap::new(),
        };
        for tree_dir in std::fs::read_dir(store.layout.meta_root())? {
            let tree_dir = tree_dir?;
            let tree = tree_dir.file_name().to_string_lossy().into_owned();
            for file in std::fs::read_dir(tree_dir.path())? {
                let path = file?.path();
                if path.extension().and_then(|e| e.to_str()) != Some("json") {
                    continue; // a temp file left by a crash mid-write
                }
                let text = std::fs::read_to_string(&path)?;
                match serde_json::from_str::<Entry>(&text) {
                    Ok(entry) => store.index(&tree, entry),
                    Err(err) => tracing::warn!("skipping unreadable {}: {err}", path.display()),
                }
            }
        }
        Ok(store)
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    fn index(&mut self, tree: &str, entry: Entry) {
        let key = entry.key();
        self.ids
            .insert(entry.id.clone(), (tree.to_string(), key.clone()));
        self.trees
            .entry(tree.to_string())
            .or_default()
            .insert(key, entry);
    }

    fn meta_file(&self, tree: &str, id: &str) -> std::path::PathBuf {
        let name = id.strip_prefix("id:").unwrap_or(id);
        self.layout.meta_dir(tree).join(format!("{name}.json"))
    }

    pub fn get(&self, tree: &str, key: &str) -> Option<&Entry> {
        self.trees.get(tree)?.get(key)
    }

    /// (tree, key) of the entry with this id.
    pub fn locate_id(&self, id: &str) -> Option<&(String, String)> {
        self.ids.get(id)
    }

    /// Key of the file in `tree` whose current rev is `rev`.
    pub fn locate_rev(&self, tree: &str, rev: &str) -> Option<String> {
        self.trees
            .get(tree)?
            .iter()
            .find_map(|(key, entry)| (entry.file.as_ref()?.rev == rev).then(|| key.clone()))
    }

    /// Stores (creates or replaces) an entry, on disk first.
    pub fn put(&mut self, tree: &str, entry: Entry) -> std::io::Result<()> {
        let json = serde_json::to_vec(&entry).map_err(std::io::Error::other)?;
        disk::write_atomically(&self.meta_file(tree, &entry.id), &json)?;
        self.written_at.insert(entry.id.clone(), Instant::now());
        self.index(tree, entry);
        Ok(())
    }

    /// True if the entry with this id was written less than `window` ago.
    pub fn written_within(&self, id: &str, window: Duration) -> bool {
        self.written_at
            .get(id)
            .is_some_and(|at| at.elapsed() < window)
    }

    /// Entries strictly below `key` (the whole tree for the root `""`), in key order, starting
    /// after `after` when given.
    pub fn descendants<'a>(
        &'a self,
        tree: &str,
        key: &str,
        after: Option<&str>,
    ) -> impl Iterator<Item = (&'a String, &'a Entry)> + 'a {
        let start = format!("{key}/");
        // '0' is the character after '/', so this bounds exactly the keys starting with "key/".
        let end = format!("{key}0");
        let lower = match after {
            Some(after) if after >= start.as_str() => Bound::Excluded(after.to_string()),
            _ => Bound::Included(start),
        };
        self.trees
            .get(tree)
            .into_iter()
            .flat_map(move |entries| entries.range((lower.clone(), Bound::Excluded(end.clone()))))
    }

    /// Removes an entry and everything below it, with their metadata files and blobs.
    pub fn remove_subtree(&mut self, tree: &str, key: &str) -> std::io::Result<()> {
        let mut keys: Vec<String> = self
            .descendants(tree, key, None)
            .map(|(k, _)| k.clone())
            .collect();
        keys.push(key.to_string());
        for key in keys {
            let Some(entry) = self.trees.get_mut(tree).and_then(|t| t.remove(&key)) else {
                continue;
            };
            self.ids.remove(&entry.id);
            self.written_at.remove(&entry.id);
            remove_if_present(&self.meta_file(tree, &entry.id))?;
            if let Some(file) = &entry.file {
                remove_if_present(&self.layout.blob(&file.blob))?;
            }
        }
        Ok(())
    }

    /// Removes one entry from the index and disk without touching its blob (the caller reuses it).
    pub fn forget(&mut self, tree: &str, key: &str) -> std::io::Result<Option<Entry>> {
        let Some(entry) = self.trees.get_mut(tree).and_then(|t| t.remove(key)) else {
            return Ok(None);
        };
        self.ids.remove(&entry.id);
        remove_if_present(&self.meta_file(tree, &entry.id))?;
        Ok(Some(entry))
    }

    /// The entry at `key` with everything below it, parents first.
    fn subtree(&self, tree: &str, key: &str) -> Vec<Entry> {
        let top = self.get(tree, key).cloned();
        top.into_iter()
            .chain(self.descendants(tree, key, None).map(|(_, e)| e.clone()))
            .collect()
    }

    /// Moves the entry at `key` (and everything below it) so it is spelled `to`; ids stay,
    /// files get a new rev. Also does case-only renames (`to` with the same key).
    pub fn move_subtree(&mut self, tree: &str, key: &str, to: &[String]) -> std::io::Result<()> {
        let entries = self.subtree(tree, key);
        let depth = entries.first().map_or(0, |e| e.components().len());
        for entry in &entries {
            self.forget(tree, &entry.key())?;
        }
        for mut entry in entries {
            entry.path_display = relocated(&entry, depth, to);
            if let Some(file) = &mut entry.file {
                file.rev = new_rev();
            }
            self.put(tree, entry)?;
        }
        Ok(())
    }

    /// Copies the entry at `key` (and everything below it) to `to`: new ids and revs, content
    /// shared through hard links (or copied where links are impossible).
    pub fn copy_subtree(&mut self, tree: &str, key: &str, to: &[String]) -> std::io::Result<()> {
        let entries = self.subtree(tree, key);
        let depth = entries.first().map_or(0, |e| e.components().len());
        let now = now_timestamp();
        for mut entry in entries {
            entry.path_display = relocated(&entry, depth, to);
            entry.id = new_id();
            if let Some(file) = &mut entry.file {
                let blob = random_token(18);
                link_or_copy(&self.layout.blob(&file.blob), &self.layout.blob(&blob))?;
                file.blob = blob;
                file.rev = new_rev();
                file.server_modified = now.clone();
            }
            self.put(tree, entry)?;
        }
        Ok(())
    }

    /// Bytes stored in `tree` below `key` (`""` = the whole tree).
    pub fn used_bytes(&self, tree: &str, key: &str) -> u64 {
        self.descendants(tree, key, None)
            .filter_map(|(_, entry)| entry.file.as_ref().map(|f| f.size))
            .sum()
    }
}

/// The display path of `entry` after its ancestor at `depth` components moved to `to`.
fn relocated(entry: &Entry, depth: usize, to: &[String]) -> String {
    let components = entry.components();
    let moved: Vec<String> = to.iter().chain(&components[depth..]).cloned().collect();
    display_path(&moved)
}

fn link_or_copy(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to)?;
    }
    Ok(())
}

fn remove_if_present(path: &std::path::Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}
