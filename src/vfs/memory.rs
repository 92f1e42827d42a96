//! An in-memory [`Vfs`] for the SFTP layer's tests and the fuzz targets in `fuzz/`, following
//! the trait contracts: an upload holds its bytes until commit, a write past the end is a gap
//! (Unsupported), commit installs the file. Knobs make commits fail or take time, and listings come in small
//! pages.
//!
//! Compiled for the crate's own tests and with the `testing` feature; not part of the normal build.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;

use crate::vfs::{
    Capabilities, Committed, DirLister, FileInfo, FileKind, FileReader, FileWriter, Renamed,
    SpaceUsage, VPath, Vfs, VfsError, VfsResult, WriteOptions,
};

#[derive(Clone, Default)]
pub struct MemFs {
    state: Arc<Mutex<State>>,
}

/// The largest file an upload may grow to unless [`MemFs::max_file_size`] says otherwise. The
/// real backend has such a limit too (`upload.max_file_size`): without one, an FSETSTAT SIZE of
/// 2^40 would try to allocate a terabyte.
const DEFAULT_MAX_FILE_SIZE: u64 = 64 * 1024 * 1024;

#[derive(Default)]
struct State {
    /// Keyed by the path's display form; the root is implicit.
    nodes: BTreeMap<String, Node>,
    /// `None`: [`DEFAULT_MAX_FILE_SIZE`].
    max_file_size: Option<u64>,
    fail_commits: bool,
    commit_delay: Option<Duration>,
    commits: usize,
    page_size: Option<usize>,
    /// Copies made by [`Vfs::copy_file`]; `None` while server-side copy is switched off.
    server_copies: Option<usize>,
}

#[derive(Clone)]
enum Node {
    Folder,
    File { data: Bytes, mtime: i64 },
}

impl MemFs {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    pub fn fail_commits(&self, fail: bool) {
        self.lock().fail_commits = fail;
    }

    pub fn slow_commits(&self, delay: Duration) {
        self.lock().commit_delay = Some(delay);
    }

    pub fn page_size(&self, size: usize) {
        self.lock().page_size = Some(size);
    }

    /// Writes and size changes that would make an upload larger fail (and poison it).
    pub fn max_file_size(&self, bytes: u64) {
        self.lock().max_file_size = Some(bytes);
    }

    pub fn commits(&self) -> usize {
        self.lock().commits
    }

    /// Offers server-side copy (as Dropbox does); off by default, so copies go through uploads.
    pub fn server_side_copy(&self, on: bool) {
        self.lock().server_copies = on.then_some(0);
    }

    /// Files copied by the backend itself so far.
    pub fn server_copies(&self) -> usize {
        self.lock().server_copies.unwrap_or(0)
    }

    pub fn add_file(&self, path: &str, data: &[u8], mtime: i64) {
        self.lock().nodes.insert(
            path.to_string(),
            Node::File {
                data: Bytes::copy_from_slice(data),
                mtime,
            },
        );
    }

    pub fn add_folder(&self, path: &str) {
        self.lock().nodes.insert(path.to_string(), Node::Folder);
    }

    pub fn file(&self, path: &str) -> Option<(Vec<u8>, i64)> {
        match self.lock().nodes.get(path) {
            Some(Node::File { data, mtime }) => Some((data.to_vec(), *mtime)),
            _ => None,
        }
    }

    pub fn exists(&self, path: &str) -> bool {
        path == "/" || self.lock().nodes.contains_key(path)
    }
}

fn not_found(path: &VPath) -> VfsError {
    VfsError::NotFound(format!("{path} does not exist"))
}

fn info(path: &VPath, node: &Node) -> FileInfo {
    match node {
        Node::Folder => FileInfo {
            name: path.name().to_string(),
            kind: FileKind::Folder,
            size: 0,
            mtime: None,
        },
        Node::File { data, mtime } => FileInfo {
            name: path.name().to_string(),
            kind: FileKind::File,
            size: data.len() as u64,
            mtime: Some(*mtime),
        },
    }
}

impl State {
    fn node(&self, path: &VPath) -> Option<Node> {
        if path.is_root() {
            return Some(Node::Folder);
        }
        self.nodes.get(&path.to_string()).cloned()
    }

    fn require_parent_folder(&self, path: &VPath) -> VfsResult<()> {
        match path.parent().and_then(|p| self.node(&p)) {
            Some(Node::Folder) => Ok(()),
            _ => Err(VfsError::NotFound(format!(
                "the folder of {path} does not exist"
            ))),
        }
    }

    fn children(&self, path: &VPath) -> Vec<FileInfo> {
        self.nodes
            .iter()
            .filter_map(|(key, node)| {
                let child = VPath::parse(key).unwrap();
                (child.parent().as_ref() == Some(path)).then(|| info(&child, node))
            })
            .collect()
    }
}

impl Vfs for MemFs {
    type Reader = MemReader;
    type Writer = MemWriter;
    type Lister = MemLister;

    async fn stat(&self, path: &VPath) -> VfsResult<FileInfo> {
        let node = self.lock().node(path).ok_or_else(|| not_found(path))?;
        Ok(info(path, &node))
    }

    async fn open_dir(&self, path: &VPath) -> VfsResult<MemLister> {
        let state = self.lock();
        match state.node(path) {
            Some(Node::Folder) => Ok(MemLister {
                entries: state.children(path),
                page_size: state.page_size.unwrap_or(250),
            }),
            Some(Node::File { .. }) => Err(VfsError::Failure(format!("{path} is a file"))),
            None => Err(not_found(path)),
        }
    }

    async fn open_read(&self, path: &VPath) -> VfsResult<MemReader> {
        let node = self.lock().node(path).ok_or_else(|| not_found(path))?;
        match &node {
            Node::File { data, .. } => Ok(MemReader {
                data: data.clone(),
                info: info(path, &node),
            }),
            Node::Folder => Err(VfsError::Failure(format!("{path} is a folder"))),
        }
    }

    async fn open_write(&self, path: &VPath, options: WriteOptions) -> VfsResult<MemWriter> {
        let state = self.lock();
        state.require_parent_folder(path)?;
        match state.node(path) {
            Some(Node::Folder) => return Err(VfsError::Failure(format!("{path} is a folder"))),
            Some(Node::File { .. }) if options.exclusive => {
                return Err(VfsError::AlreadyExists(format!("{path} exists")))
            }
            Some(Node::File { .. }) if options.if_exists.is_some() => {
                return Err(options.if_exists.clone().expect("checked"))
            }
            Some(Node::File { .. }) if options.append => {
                return Err(VfsError::Unsupported(
                    "Dropbox does not support resuming uploads; upload the whole file again"
                        .to_string(),
                ))
            }
            _ => {}
        }
        Ok(MemWriter {
            fs: self.clone(),
            path: path.clone(),
            data: Vec::new(),
            mtime: options.mtime,
            max_size: state.max_file_size.unwrap_or(DEFAULT_MAX_FILE_SIZE),
            if_exists: options.keeps_existing().then(|| {
                options
                    .if_exists
                    .clone()
                    .unwrap_or_else(|| VfsError::AlreadyExists(format!("{path} exists")))
            }),
        })
    }

    async fn mkdir(&self, path: &VPath) -> VfsResult<()> {
        let mut state = self.lock();
        state.require_parent_folder(path)?;
        if state.node(path).is_some() {
            return Err(VfsError::AlreadyExists(format!("{path} exists")));
        }
        state.nodes.insert(path.to_string(), Node::Folder);
        Ok(())
    }

    async fn rmdir(&self, path: &VPath) -> VfsResult<()> {
        let mut state = self.lock();
        match state.node(path) {
            Some(Node::Folder) if !path.is_root() => {
                if !state.children(path).is_empty() {
                    return Err(VfsError::NotEmpty(format!("{path} is not empty")));
                }
                state.nodes.remove(&path.to_string());
                Ok(())
            }
            Some(_) => Err(VfsError::Failure(format!("{path} is not a folder"))),
            None => Err(not_found(path)),
        }
    }

    async fn remove(&self, path: &VPath) -> VfsResult<()> {
        let mut state = self.lock();
        match state.node(path) {
            Some(Node::File { .. }) => {
                state.nodes.remove(&path.to_string());
                Ok(())
            }
            Some(Node::Folder) => Err(VfsError::Failure(format!("{path} is a folder"))),
            None => Err(not_found(path)),
        }
    }

    async fn rename(&self, from: &VPath, to: &VPath, replace: bool) -> VfsResult<Renamed> {
        let mut state = self.lock();
        let node = state.node(from).ok_or_else(|| not_found(from))?;
        state.require_parent_folder(to)?;
        let replaced = match state.node(to) {
            Some(Node::Folder) => return Err(VfsError::Failure(format!("{to} is a folder"))),
            Some(Node::File { .. }) if !replace => {
                return Err(VfsError::AlreadyExists(format!("{to} exists")))
            }
            Some(Node::File { .. }) => true,
            None => false,
        };
        let inside_from = format!("{from}/");
        if to.to_string().starts_with(&inside_from) {
            return Err(VfsError::Failure(format!("{from} cannot move into itself")));
        }
        // A folder takes everything below it along, as Dropbox's move does.
        let below: Vec<String> = state
            .nodes
            .range(inside_from.clone()..)
            .map(|(key, _)| key)
            .take_while(|key| key.starts_with(&inside_from))
            .cloned()
            .collect();
        for key in below {
            let moved = state.nodes.remove(&key).expect("listed above");
            let new_key = format!("{to}/{}", &key[inside_from.len()..]);
            state.nodes.insert(new_key, moved);
        }
        state.nodes.remove(&from.to_string());
        state.nodes.insert(to.to_string(), node);
        Ok(Renamed { replaced })
    }

    async fn set_mtime(&self, path: &VPath, mtime: i64) -> VfsResult<()> {
        let mut state = self.lock();
        match state.nodes.get_mut(&path.to_string()) {
            Some(Node::File { mtime: stored, .. }) => {
                *stored = mtime;
                Ok(())
            }
            Some(Node::Folder) => Err(VfsError::PermissionDenied("folders have no mtime".into())),
            None => Err(not_found(path)),
        }
    }

    async fn space_usage(&self) -> VfsResult<SpaceUsage> {
        let used = self
            .lock()
            .nodes
            .values()
            .map(|n| match n {
                Node::File { data, .. } => data.len() as u64,
                Node::Folder => 0,
            })
            .sum();
        let allocated = 1 << 30;
        Ok(SpaceUsage {
            allocated,
            available: allocated.saturating_sub(used),
        })
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            server_side_copy: self.lock().server_copies.is_some(),
        }
    }

    async fn copy_file(&self, from: &VPath, to: &VPath) -> VfsResult<FileInfo> {
        let mut state = self.lock();
        let Some(copies) = state.server_copies else {
            return Err(VfsError::Unsupported("server-side copy is off".into()));
        };
        let node @ Node::File { .. } = state.node(from).ok_or_else(|| not_found(from))? else {
            return Err(VfsError::Failure(format!("{from} is a folder")));
        };
        state.require_parent_folder(to)?;
        if state.node(to).is_some() {
            return Err(VfsError::AlreadyExists(format!("{to} exists")));
        }
        state.server_copies = Some(copies + 1);
        state.nodes.insert(to.to_string(), node.clone());
        Ok(info(to, &node))
    }
}

pub struct MemLister {
    entries: Vec<FileInfo>,
    page_size: usize,
}

impl DirLister for MemLister {
    async fn next_page(&mut self) -> VfsResult<Option<Vec<FileInfo>>> {
        if self.entries.is_empty() {
            return Ok(None);
        }
        let take = self.page_size.min(self.entries.len());
        Ok(Some(self.entries.drain(..take).collect()))
    }
}

pub struct MemReader {
    data: Bytes,
    info: FileInfo,
}

impl FileReader for MemReader {
    async fn read(&mut self, offset: u64, len: u32) -> VfsResult<Bytes> {
        let start = (offset as usize).min(self.data.len());
        let end = (start + len as usize).min(self.data.len());
        Ok(self.data.slice(start..end))
    }

    fn stat(&self) -> FileInfo {
        self.info.clone()
    }
}

pub struct MemWriter {
    fs: MemFs,
    path: VPath,
    data: Vec<u8>,
    mtime: Option<i64>,
    max_size: u64,
    /// The error of a commit onto a file that exists by then (O_EXCL, no right to replace).
    if_exists: Option<VfsError>,
}

impl MemWriter {
    fn check_size(&self, size: u64) -> VfsResult<()> {
        if size > self.max_size {
            return Err(VfsError::Failure(format!(
                "{}: the file would be larger than the maximum upload size of {} bytes",
                self.path, self.max_size
            )));
        }
        Ok(())
    }
}

impl FileWriter for MemWriter {
    async fn write(&mut self, offset: u64, data: Bytes) -> VfsResult<()> {
        let offset = offset as usize;
        if offset > self.data.len() {
            return Err(VfsError::Unsupported(
                "Dropbox does not support resuming uploads; upload the whole file again".into(),
            ));
        }
        let end = offset + data.len();
        self.check_size(end as u64)?;
        if end > self.data.len() {
            self.data.resize(end, 0);
        }
        self.data[offset..end].copy_from_slice(&data);
        Ok(())
    }

    async fn set_size(&mut self, size: u64) -> VfsResult<()> {
        self.check_size(size)?;
        self.data.resize(size as usize, 0);
        Ok(())
    }

    fn set_mtime(&mut self, mtime: i64) {
        self.mtime = Some(mtime);
    }

    fn stat(&self) -> FileInfo {
        FileInfo {
            name: self.path.name().to_string(),
            kind: FileKind::File,
            size: self.data.len() as u64,
            mtime: self.mtime,
        }
    }

    async fn commit(self) -> VfsResult<Committed> {
        let delay = self.fs.lock().commit_delay;
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        let mut state = self.fs.lock();
        if state.fail_commits {
            return Err(VfsError::Failure(
                "upload failed: the content hash did not match".into(),
            ));
        }
        if let Some(error) = &self.if_exists {
            if state.node(&self.path).is_some() {
                return Err(error.clone());
            }
        }
        let info = self.stat();
        state.nodes.insert(
            self.path.to_string(),
            Node::File {
                data: Bytes::from(self.data),
                mtime: self.mtime.unwrap_or(1_700_000_000),
            },
        );
        state.commits += 1;
        Ok(Committed {
            info,
            id: None,
            rev: None,
            content_hash: None,
        })
    }
}

#[cfg(test)]
mod contract {
    use super::MemFs;

    /// Pages of three entries and server-side copy on, so the contract reaches both.
    async fn home() -> (MemFs, ()) {
        let fs = MemFs::new();
        fs.page_size(3);
        fs.server_side_copy(true);
        (fs, ())
    }

    crate::vfs::contract::vfs_contract!(home);
}
