//! The Dropbox-backed [`Vfs`]: one user's jailed view of one Dropbox account.
//!
//! This is where Dropbox's limits become SFTP-visible policy: uploads are spooled and committed
//! whole (Dropbox cannot write at an offset), resumes are refused, a stored file's mtime cannot
//! change, and `rmdir` refuses a non-empty folder because Dropbox's delete is recursive.
//! Dropbox errors become [`VfsError`]s in one place, `map_error`.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::{
    Capabilities, DirLister, FileInfo, FileKind, FileReader, Renamed, SpaceUsage, VPath, Vfs,
    VfsError, VfsResult, WriteOptions,
};
use crate::config::MtimeChange;
use crate::dropbox::{self, DropboxClient, DropboxError, Metadata};
use crate::log_safe::Untrusted;

use crate::upload::{Upload, UploadSettings};

mod lookup;
mod replace;
mod writer;

use lookup::Lookup;

pub use writer::{DropboxWriter, OpenUploads};

/// The message every resume attempt gets.
pub(crate) const RESUME_REFUSED: &str =
    "Dropbox does not support resuming uploads; upload the whole file again";
const MTIME_REFUSED: &str = "Dropbox does not support changing a file's modification time";

/// Names Dropbox refuses or ignores (compared in lower case).
const DISALLOWED_NAMES: &[&str] = &[
    "desktop.ini",
    "thumbs.db",
    ".ds_store",
    "icon\r",
    ".dropbox",
    ".dropbox.attr",
];

/// Settings shared by every user of the gateway.
#[derive(Debug, Clone)]
pub struct FsSettings {
    pub upload: Arc<UploadSettings>,
    pub mtime_change: MtimeChange,
}

/// One user's Dropbox, below `root`.
#[derive(Clone)]
pub struct DropboxFs {
    client: DropboxClient,
    /// "" (the whole Dropbox) or "/folder/sub".
    root: String,
    settings: Arc<FsSettings>,
    /// Uploads in progress on this account, for STAT while they are open.
    open_uploads: OpenUploads,
}

impl DropboxFs {
    pub fn new(
        client: DropboxClient,
        root: String,
        settings: Arc<FsSettings>,
        open_uploads: OpenUploads,
    ) -> Self {
        DropboxFs {
            client,
            root,
            settings,
            open_uploads,
        }
    }

    /// The Dropbox path of a jailed path, after Dropbox's own naming rules.
    fn dropbox_path(&self, path: &VPath) -> VfsResult<String> {
        let mut out = self.root.clone();
        for name in path.components() {
            check_name(name)?;
            out.push('/');
            out.push_str(name);
        }
        Ok(out)
    }

    async fn metadata(&self, path: &VPath) -> VfsResult<Option<Metadata>> {
        if path.is_root() {
            return Ok(None);
        }
        match self.client.get_metadata(&self.dropbox_path(path)?).await {
            Ok(Metadata::Deleted(_)) => Err(not_found(path)),
            Ok(meta) => Ok(Some(meta)),
            Err(e) => Err(map_error(e, path)),
        }
    }

    /// The cursor of a listing of `path` that found nothing (every page read); NotEmpty if
    /// anything is in it.
    async fn empty_listing_cursor(&self, path: &VPath, dropbox_path: &str) -> VfsResult<String> {
        let mut page = self
            .client
            .list_folder(dropbox_path, Some(1))
            .await
            .map_err(|e| map_error(e, path))?;
        loop {
            if page.entries.iter().any(is_present) {
                return Err(VfsError::NotEmpty(format!("{path} is not empty")));
            }
            if !page.has_more {
                return Ok(page.cursor);
            }
            page = self
                .client
                .list_folder_continue(&page.cursor)
                .await
                .map_err(|e| map_error(e, path))?;
        }
    }

    /// NotEmpty if anything has appeared in the folder since the listing that gave `cursor`.
    async fn require_unchanged(&self, path: &VPath, cursor: &str) -> VfsResult<()> {
        let mut cursor = cursor.to_string();
        loop {
            let changes = self
                .client
                .list_folder_continue(&cursor)
                .await
                .map_err(|e| map_error(e, path))?;
            if changes.entries.iter().any(is_present) {
                return Err(VfsError::NotEmpty(format!(
                    "{path} is not empty (something was added to it just now)"
                )));
            }
            if !changes.has_more {
                return Ok(());
            }
            cursor = changes.cursor;
        }
    }

    /// The metadata at `path`, None if nothing is there (NotFound is an answer here).
    async fn metadata_if_any(&self, path: &VPath) -> VfsResult<Option<Metadata>> {
        match self.metadata(path).await {
            Ok(meta) => Ok(meta),
            Err(VfsError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A look at what an upload would meet, started only when its answer can matter (a plain
    /// upload by a user who may replace files and create folders never needs one).
    fn lookup_for(&self, path: &VPath, options: &WriteOptions) -> Option<Lookup> {
        let check_parent = options.if_parent_missing.is_some();
        let needed = !options.truncate || options.keeps_existing() || check_parent;
        needed.then(|| Lookup::start(self.clone(), path.clone(), check_parent))
    }
}

impl Vfs for DropboxFs {
    type Reader = DropboxReader;
    type Writer = DropboxWriter;
    type Lister = DropboxLister;

    async fn stat(&self, path: &VPath) -> VfsResult<FileInfo> {
        if let Some(received) = self.open_uploads.received(&self.dropbox_path(path)?) {
            return Ok(FileInfo {
                name: path.name().to_string(),
                kind: FileKind::File,
                size: received,
                mtime: None,
            });
        }
        match self.metadata(path).await? {
            None => Ok(root_info()),
            Some(meta) => Ok(file_info(&meta)),
        }
    }

    async fn open_dir(&self, path: &VPath) -> VfsResult<DropboxLister> {
        let dropbox_path = self.dropbox_path(path)?;
        match self.client.list_folder(&dropbox_path, None).await {
            Ok(first) => Ok(DropboxLister {
                client: self.client.clone(),
                pending: Some(first),
            }),
            // A user's root folder that Dropbox has not seen yet is simply empty.
            Err(e) if path.is_root() && e.is_not_found() => Ok(DropboxLister {
                client: self.client.clone(),
                pending: None,
            }),
            Err(e) => Err(map_error(e, path)),
        }
    }

    /// The handle reads the version that is current now, whatever happens to the path later.
    async fn open_read(&self, path: &VPath) -> VfsResult<DropboxReader> {
        let file = match self.metadata(path).await? {
            Some(Metadata::File(file)) => file,
            _ => return Err(VfsError::Failure(format!("{path} is a folder"))),
        };
        Ok(DropboxReader {
            client: self.client.clone(),
            pinned: format!("rev:{}", file.rev),
            rev: file.rev.clone(),
            path: path.clone(),
            info: file_info(&Metadata::File(file)),
            stream: None,
        })
    }

    /// OPEN answers at once for a plain upload: what is at the path is asked alongside the
    /// upload (see `lookup`), and waited for here only where OPEN itself must fail on an
    /// existing file (O_EXCL, APPEND).
    async fn open_write(&self, path: &VPath, options: WriteOptions) -> VfsResult<DropboxWriter> {
        let dropbox_path = self.dropbox_path(path)?;
        if path.is_root() {
            return Err(VfsError::Failure("/ is a folder".to_string()));
        }
        // An upload of this path still open elsewhere counts as an existing file.
        if self.open_uploads.received(&dropbox_path).is_some() {
            if let Some(refused) = writer::refusal_for_existing(path, &options) {
                return Err(refused);
            }
        }
        let mut lookup = self.lookup_for(path, &options);
        let resume = options.append && !options.truncate;
        if options.exclusive || resume {
            let lookup = lookup.as_mut().expect("started for O_EXCL and APPEND");
            if let Some(existing) = lookup.answer().await.clone()?.target {
                if existing.is_dir() {
                    return Err(VfsError::Failure(format!("{path} is a folder")));
                }
                if let Some(refused) = writer::refusal_for_existing(path, &options) {
                    return Err(refused);
                }
                if resume && existing.size > 0 {
                    return Err(VfsError::Unsupported(RESUME_REFUSED.to_string()));
                }
            }
        }
        let progress = self.open_uploads.register(&dropbox_path);
        let mut upload = Upload::start(
            self.client.clone(),
            dropbox_path,
            self.settings.upload.clone(),
            progress.counter(),
        )
        .await
        .map_err(|e| VfsError::Failure(format!("cannot start the upload: {e}")))?;
        if let Some(mtime) = options.mtime {
            upload.set_client_modified(mtime);
        }
        Ok(DropboxWriter::new(
            upload,
            path.clone(),
            progress,
            options,
            lookup,
        ))
    }

    async fn mkdir(&self, path: &VPath) -> VfsResult<()> {
        if path.is_root() {
            return Err(VfsError::AlreadyExists("/ already exists".to_string()));
        }
        self.client
            .create_folder(&self.dropbox_path(path)?)
            .await
            .map(drop)
            .map_err(|e| map_error(e, path))
    }

    async fn rmdir(&self, path: &VPath) -> VfsResult<()> {
        if path.is_root() {
            return Err(VfsError::PermissionDenied(
                "the home folder cannot be removed".to_string(),
            ));
        }
        if !self.stat(path).await?.is_dir() {
            return Err(VfsError::Failure(format!("{path} is not a folder")));
        }
        let dropbox_path = self.dropbox_path(path)?;
        let cursor = self.empty_listing_cursor(path, &dropbox_path).await?;
        // Dropbox's delete takes the folder with whatever is in it by then, and it has no
        // "only if empty" form. So the last look is taken as late as possible: the changes
        // since the empty listing, one round trip before the delete.
        self.require_unchanged(path, &cursor).await?;
        self.client
            .delete(&dropbox_path)
            .await
            .map(drop)
            .map_err(|e| map_error(e, path))
    }

    async fn remove(&self, path: &VPath) -> VfsResult<()> {
        if self.stat(path).await?.is_dir() {
            return Err(VfsError::Failure(format!(
                "{path} is a folder; use rmdir to remove a folder"
            )));
        }
        self.client
            .delete(&self.dropbox_path(path)?)
            .await
            .map(drop)
            .map_err(|e| map_error(e, path))
    }

    /// A replacing rename never deletes the target before the source is in its place (see
    /// `replace`); a plain one leaves an existing target alone.
    async fn rename(&self, from: &VPath, to: &VPath, replace: bool) -> VfsResult<Renamed> {
        if from.is_root() || to.is_root() {
            return Err(VfsError::PermissionDenied(
                "the home folder cannot be renamed".to_string(),
            ));
        }
        let (from_path, to_path) = (self.dropbox_path(from)?, self.dropbox_path(to)?);
        let case_only = from_path.to_lowercase() == to_path.to_lowercase();
        if !case_only {
            if let Some(target) = self.metadata_if_any(to).await? {
                if !replace {
                    return Err(VfsError::AlreadyExists(format!("{to} already exists")));
                }
                let Metadata::File(target) = target else {
                    return Err(VfsError::Failure(format!("{to} is a folder")));
                };
                let source = self.metadata(from).await?.ok_or_else(|| not_found(from))?;
                let source_id = replace::id_of(&source).unwrap_or_default().to_string();
                return replace::Replace {
                    fs: self,
                    from,
                    to,
                    from_path,
                    to_path,
                    source_id,
                    target_id: target.id,
                }
                .run()
                .await;
            }
        }
        self.client
            .move_entry(&from_path, &to_path)
            .await
            .map(|_| Renamed::default())
            .map_err(|e| map_error(e, from))
    }

    async fn set_mtime(&self, path: &VPath, mtime: i64) -> VfsResult<()> {
        let info = self.stat(path).await?;
        let unchanged = info.mtime.is_some_and(|stored| (stored - mtime).abs() <= 1);
        if info.is_dir() || unchanged {
            return Ok(());
        }
        match self.settings.mtime_change {
            MtimeChange::Reject => Err(VfsError::PermissionDenied(MTIME_REFUSED.to_string())),
            MtimeChange::Ignore => {
                tracing::info!(path = %Untrusted(path), mtime, "mtime change ignored: Dropbox cannot change it");
                Ok(())
            }
        }
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            server_side_copy: true,
        }
    }

    /// copy_v2, which never replaces: an existing target is `to/conflict` → AlreadyExists.
    async fn copy_file(&self, from: &VPath, to: &VPath) -> VfsResult<FileInfo> {
        if to.is_root() {
            return Err(VfsError::AlreadyExists(format!("{to} already exists")));
        }
        let (from_path, to_path) = (self.dropbox_path(from)?, self.dropbox_path(to)?);
        match self.client.copy_entry(&from_path, &to_path).await {
            Ok(metadata) => Ok(file_info(&metadata)),
            Err(error) if error.is_not_found() => Err(not_found(from)),
            Err(error) => Err(map_error(error, to)),
        }
    }

    async fn space_usage(&self) -> VfsResult<SpaceUsage> {
        let usage = self
            .client
            .get_space_usage()
            .await
            .map_err(|e| map_error(e, &VPath::root()))?;
        Ok(SpaceUsage {
            used: usage.used,
            allocated: usage.allocated(),
        })
    }
}

/// Pages of a Dropbox folder listing, fetched one at a time as the client reads them.
pub struct DropboxLister {
    client: DropboxClient,
    /// The page to hand out next; its cursor leads to the one after.
    pending: Option<dropbox::ListFolderResult>,
}

impl DirLister for DropboxLister {
    async fn next_page(&mut self) -> VfsResult<Option<Vec<FileInfo>>> {
        let Some(page) = self.pending.take() else {
            return Ok(None);
        };
        if page.has_more {
            let next = self
                .client
                .list_folder_continue(&page.cursor)
                .await
                .map_err(|e| map_error(e, &VPath::root()))?;
            self.pending = Some(next);
        }
        let entries = page
            .entries
            .iter()
            .filter(|meta| !matches!(meta, Metadata::Deleted(_)))
            .map(file_info)
            .collect();
        Ok(Some(entries))
    }
}

/// A file being downloaded, pinned to the version that was current at OPEN: every request
/// names that revision (`rev:` path), so a file replaced while the handle is open can never mix
/// versions. Sequential READs are answered from one streaming HTTP response; a READ at another
/// offset starts a new ranged download, which must come back as exactly the asked range (206
/// from that offset). If the version is gone or the answer does not fit, the READ fails:
/// a client gets an error, never a short or mixed file.
pub struct DropboxReader {
    client: DropboxClient,
    /// `rev:<rev>`, the download path of the pinned version.
    pinned: String,
    rev: String,
    path: VPath,
    info: FileInfo,
    stream: Option<ReadStream>,
}

struct ReadStream {
    download: dropbox::Download,
    /// File offset of the first byte in `buffered`.
    offset: u64,
    buffered: BytesMut,
}

impl DropboxReader {
    async fn open_stream(&self, offset: u64) -> VfsResult<ReadStream> {
        let range = dropbox::ByteRange::from_offset(offset);
        let download = match self.client.download(&self.pinned, Some(range)).await {
            Ok(download) => download,
            Err(e) if e.is_not_found() => return Err(self.version_gone()),
            Err(e) => return Err(map_error(e, &self.path)),
        };
        self.check_answer(&download, offset)?;
        Ok(ReadStream {
            download,
            offset,
            buffered: BytesMut::new(),
        })
    }

    /// The answer must be the pinned version's bytes from `offset` on, and nothing else.
    fn check_answer(&self, download: &dropbox::Download, offset: u64) -> VfsResult<()> {
        if download.metadata.rev != self.rev || download.metadata.size != self.info.size {
            return Err(self.version_gone());
        }
        let range = download.content_range();
        let fits = download.is_partial()
            && range
                .is_some_and(|r| r.start == offset && r.total.is_none_or(|t| t == self.info.size));
        if fits {
            return Ok(());
        }
        Err(VfsError::Failure(format!(
            "download of {} failed: asked for the bytes from {offset}, Dropbox answered {} {}",
            self.path,
            download.response.status(),
            range.map_or("without a Content-Range".to_string(), |r| format!(
                "bytes {}-{}",
                r.start, r.end
            )),
        )))
    }

    fn version_gone(&self) -> VfsError {
        VfsError::Failure(format!(
            "{} changed on Dropbox since it was opened (version {} is no longer available); \
             open it again",
            self.path, self.rev
        ))
    }
}

impl FileReader for DropboxReader {
    async fn read(&mut self, offset: u64, len: u32) -> VfsResult<Bytes> {
        if offset >= self.info.size || len == 0 {
            return Ok(Bytes::new());
        }
        let reusable = self.stream.as_ref().is_some_and(|s| s.offset == offset);
        if !reusable {
            self.stream = None;
            self.stream = Some(self.open_stream(offset).await?);
        }
        let stream = self.stream.as_mut().expect("stream opened above");
        let wanted = (len as u64).min(self.info.size - offset) as usize;
        while stream.buffered.len() < wanted {
            let failure = match stream.download.next_chunk().await {
                Ok(Some(chunk)) => {
                    stream.buffered.extend_from_slice(&chunk);
                    continue;
                }
                Ok(None) => "the download ended before the end of the file".to_string(),
                Err(e) => e.to_string(),
            };
            self.stream = None;
            return Err(VfsError::Failure(format!(
                "download of {} failed: {failure}",
                self.path
            )));
        }
        let data = stream.buffered.split_to(wanted).freeze();
        stream.offset += wanted as u64;
        Ok(data)
    }

    fn stat(&self) -> FileInfo {
        self.info.clone()
    }
}

/// A listing entry that stands for something in the folder (not a deletion).
fn is_present(entry: &Metadata) -> bool {
    !matches!(entry, Metadata::Deleted(_))
}

fn root_info() -> FileInfo {
    FileInfo {
        name: "/".to_string(),
        kind: FileKind::Folder,
        size: 0,
        mtime: None,
    }
}

/// Listing attributes: a file's mtime is its client_modified (what the uploader said).
pub(crate) fn file_info(meta: &Metadata) -> FileInfo {
    match meta {
        Metadata::File(file) => FileInfo {
            name: file.name.clone(),
            kind: FileKind::File,
            size: file.size,
            mtime: dropbox::parse_timestamp(&file.client_modified)
                .or_else(|| dropbox::parse_timestamp(&file.server_modified)),
        },
        Metadata::Folder(folder) => FileInfo {
            name: folder.name.clone(),
            kind: FileKind::Folder,
            size: 0,
            mtime: None,
        },
        Metadata::Deleted(deleted) => FileInfo {
            name: deleted.name.clone(),
            kind: FileKind::File,
            size: 0,
            mtime: None,
        },
    }
}

/// Dropbox's naming rules that a client could otherwise only learn from a failed request.
fn check_name(name: &str) -> VfsResult<()> {
    if name.contains('\\') {
        return Err(VfsError::InvalidPath(format!(
            "{name:?}: Dropbox does not allow \\ in names"
        )));
    }
    if name.ends_with(' ') {
        return Err(VfsError::InvalidPath(format!(
            "{name:?}: Dropbox does not allow a name that ends with a space"
        )));
    }
    if DISALLOWED_NAMES.contains(&name.to_lowercase().as_str()) {
        return Err(VfsError::InvalidPath(format!(
            "{name:?}: Dropbox does not store files with this name"
        )));
    }
    Ok(())
}

fn not_found(path: &VPath) -> VfsError {
    VfsError::NotFound(format!("{path}: no such file or folder"))
}

/// The one place a Dropbox error becomes a filesystem error.
pub(crate) fn map_error(error: DropboxError, path: &VPath) -> VfsError {
    if error.is_not_found() {
        return not_found(path);
    }
    if error.is_conflict() {
        return VfsError::AlreadyExists(format!("{path} already exists"));
    }
    let tags = error.tags();
    if tags
        .iter()
        .any(|t| t == "disallowed_name" || t == "malformed_path")
    {
        return VfsError::InvalidPath(format!("{path}: Dropbox does not accept this name"));
    }
    VfsError::Failure(format!("{path}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropbox_naming_rules_are_checked_before_any_request() {
        assert!(check_name("report.pdf").is_ok());
        assert!(check_name("résumé 日本 🎉.txt").is_ok());
        assert!(check_name("a\\b").is_err());
        assert!(check_name("trailing ").is_err());
        assert!(check_name("Thumbs.db").is_err());
        assert!(check_name(".DS_Store").is_err());
    }

    /// One READ of 100 bytes at 600 from a stand-in server whose `answer` to a download from
    /// `offset` is (status, Content-Range, body length): it can ignore the Range (200), answer
    /// another range or size, or end the body early, as a misbehaving server or proxy might.
    async fn read_from_server(answer: fn(u64) -> (u16, Option<String>, u64)) -> VfsResult<Bytes> {
        use axum::http::{HeaderMap, HeaderValue, StatusCode};
        use axum::response::IntoResponse;

        const SIZE: u64 = 1000;
        let download = move |headers: HeaderMap| async move {
            let offset: u64 = headers["range"]
                .to_str()
                .unwrap()
                .trim_start_matches("bytes=")
                .trim_end_matches('-')
                .parse()
                .unwrap();
            let (status, content_range, len) = answer(offset);
            let meta = r#"{"name":"a.bin","id":"id:a","client_modified":"2026-01-01T00:00:00Z","server_modified":"2026-01-01T00:00:00Z","rev":"0123456789","size":1000}"#;
            let mut response = (
                StatusCode::from_u16(status).unwrap(),
                vec![7u8; len as usize],
            )
                .into_response();
            let headers = response.headers_mut();
            headers.insert("dropbox-api-result", HeaderValue::from_static(meta));
            if let Some(range) = content_range {
                headers.insert("content-range", HeaderValue::from_str(&range).unwrap());
            }
            response
        };
        let app = axum::Router::new().route("/2/files/download", axum::routing::post(download));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });

        let endpoints = dropbox::Endpoints::all(&base).unwrap();
        let credentials = dropbox::Credentials::AccessToken("token".into());
        let client = DropboxClient::new(dropbox::ClientOptions::new(endpoints, credentials));
        let mut reader = DropboxReader {
            client: client.unwrap(),
            pinned: "rev:0123456789".into(),
            rev: "0123456789".into(),
            path: VPath::parse("/a.bin").unwrap(),
            info: FileInfo {
                name: "a.bin".into(),
                kind: FileKind::File,
                size: SIZE,
                mtime: None,
            },
            stream: None,
        };
        reader.read(600, 100).await
    }

    #[tokio::test]
    async fn a_read_accepts_only_the_asked_range_of_the_pinned_version() {
        fn range(at: u64) -> Option<String> {
            Some(format!("bytes {at}-999/1000"))
        }
        let exact = read_from_server(|at| (206, range(at), 1000 - at)).await;
        assert_eq!(exact.unwrap().len(), 100);

        for answer in [
            // The whole file, the Range ignored.
            (|_| (200, None, 1000)) as fn(u64) -> (u16, Option<String>, u64),
            // Another range than the one asked for.
            |_| (206, Some("bytes 0-999/1000".into()), 1000),
            // Another file size than the pinned version's.
            |at| (206, Some(format!("bytes {at}-999/2000")), 1000 - at),
            // The body ends before the asked bytes.
            |at| (206, range(at), 50),
        ] {
            let read = read_from_server(answer).await;
            assert!(matches!(read, Err(VfsError::Failure(_))), "{read:?}");
        }
    }
}
