//! [`DropboxFs`]: one user's jailed view of one Dropbox account, as a [`Vfs`].
//!
//! This is where Dropbox's limits become SFTP-visible policy: uploads are spooled and committed
//! whole (Dropbox cannot write at an offset), resumes are refused, a stored file's mtime cannot
//! change, and `rmdir` refuses a non-empty folder because Dropbox's delete is recursive.

use std::sync::Arc;

use super::api::{DropboxClient, Metadata};
use super::case_rename::CaseRename;
use super::listing::{DropboxLister, PAGE_LIMIT};
use super::lookup::Lookup;
use super::reader::{DownloadSettings, DropboxReader};
use super::replace;
use super::upload::{Upload, UploadSettings};
use super::writer::{self, DropboxWriter, OpenUploads, RESUME_REFUSED};
use super::{file_info, map_error, not_found};
use crate::log_safe::Untrusted;
pub use crate::users::MtimeChange;
use crate::vfs::{
    case_key, Capabilities, FileInfo, FileKind, Renamed, SpaceUsage, VPath, Vfs, VfsError,
    VfsResult, WriteOptions,
};

/// The reason of a refused mtime change; the message starts with the path, so a client's log
/// of a batch of uploads says which file it was.
const MTIME_REFUSED: &str = "Dropbox does not support changing a file's modification time";

/// The longest name Dropbox stores, in characters (not bytes: a name of 255 Japanese characters
/// is 765 bytes and allowed). Counted after NFC, the form Dropbox stores.
const MAX_NAME_CHARS: usize = 255;

/// Names Dropbox refuses or ignores (compared in lower case).
const DISALLOWED_NAMES: &[&str] = &[
    "desktop.ini",
    "thumbs.db",
    ".ds_store",
    "icon\r",
    ".dropbox",
    ".dropbox.attr",
];

/// The gateway's settings for one user's filesystem: the same for every user but
/// `mtime_change`, which a user may set for themselves.
#[derive(Debug, Clone)]
pub struct FsSettings {
    pub upload: Arc<UploadSettings>,
    pub download: DownloadSettings,
    pub mtime_change: MtimeChange,
}

/// One user's Dropbox, below `root`.
#[derive(Clone)]
pub struct DropboxFs {
    pub(super) client: DropboxClient,
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
    pub(super) async fn metadata_if_any(&self, path: &VPath) -> VfsResult<Option<Metadata>> {
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
        let first = self
            .client
            .list_folder(&dropbox_path, Some(PAGE_LIMIT))
            .await;
        match first {
            Ok(first) => Ok(DropboxLister::new(
                self.client.clone(),
                path.clone(),
                Some(first),
            )),
            // A user's root folder that Dropbox has not seen yet is simply empty.
            Err(e) if path.is_root() && e.is_not_found() => {
                Ok(DropboxLister::new(self.client.clone(), path.clone(), None))
            }
            Err(e) => Err(map_error(e, path)),
        }
    }

    /// The handle reads the version that is current now, whatever happens to the path later.
    async fn open_read(&self, path: &VPath) -> VfsResult<DropboxReader> {
        let file = match self.metadata(path).await? {
            Some(Metadata::File(file)) => file,
            _ => return Err(VfsError::Failure(format!("{path} is a folder"))),
        };
        Ok(DropboxReader::pinned(
            self.client.clone(),
            path.clone(),
            file,
            self.settings.download,
        ))
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
            .delete_empty_folder(&dropbox_path)
            .await
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
            .map_err(|e| map_error(e, path))
    }

    /// A replacing rename never deletes the target before the source is in its place (see
    /// `replace`); a plain one leaves an existing target alone. A rename that changes only case
    /// names one Dropbox path twice, so it goes through a temporary name (see `case_rename`).
    async fn rename(&self, from: &VPath, to: &VPath, replace: bool) -> VfsResult<Renamed> {
        if from.is_root() || to.is_root() {
            return Err(VfsError::PermissionDenied(
                "the home folder cannot be renamed".to_string(),
            ));
        }
        let (from_path, to_path) = (self.dropbox_path(from)?, self.dropbox_path(to)?);
        if case_key(&from_path) == case_key(&to_path) {
            return CaseRename {
                fs: self,
                from,
                to,
                from_path: &from_path,
                to_path: &to_path,
            }
            .run()
            .await;
        }
        // The source's id tells a move whose answer was lost from one that did not happen; it
        // is asked alongside the look at the target, so it costs no time.
        let (source, target) = tokio::join!(self.metadata(from), self.metadata_if_any(to));
        if let Some(target) = target? {
            if !replace {
                return Err(VfsError::AlreadyExists(format!("{to} already exists")));
            }
            let Metadata::File(target) = target else {
                return Err(VfsError::Failure(format!("{to} is a folder")));
            };
            let source = source?.ok_or_else(|| not_found(from))?;
            return replace::Replace {
                fs: self,
                from,
                to,
                from_path,
                to_path,
                source_id: source.id().unwrap_or_default().to_string(),
                target_id: target.id,
            }
            .run()
            .await;
        }
        let source = source?.ok_or_else(|| not_found(from))?;
        self.client
            .move_entry(&from_path, &to_path, source.id().unwrap_or_default())
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
            MtimeChange::Reject => Err(VfsError::PermissionDenied(format!(
                "{path}: {MTIME_REFUSED}"
            ))),
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
            allocated: usage.allocated(),
            available: usage.available(),
        })
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

/// Dropbox's naming rules that a client could otherwise only learn from a failed request, or
/// worse, from a CLOSE after the whole file was sent: checked whenever a path becomes a Dropbox
/// path, so OPEN, MKDIR and RENAME fail at once and name the rule.
fn check_name(name: &str) -> VfsResult<()> {
    let chars = name.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(VfsError::InvalidPath(format!(
            "a name of {chars} characters: Dropbox does not allow a name longer than \
             {MAX_NAME_CHARS} characters"
        )));
    }
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

    #[test]
    fn the_length_limit_counts_characters_not_bytes() {
        let japanese = "日".repeat(MAX_NAME_CHARS);
        assert!(japanese.len() > 255);
        assert!(check_name(&japanese).is_ok());
        let error = check_name(&"x".repeat(MAX_NAME_CHARS + 1)).unwrap_err();
        assert!(
            error.to_string().contains("longer than 255 characters"),
            "{error}"
        );
        assert!(check_name(&"é".repeat(MAX_NAME_CHARS + 1)).is_err());
    }
}
