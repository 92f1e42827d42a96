//! What a user may do, and the [`Vfs`] wrapper that enforces it.
//!
//! Permissions are checked here, at the seam, before anything reaches the backend: the SFTP
//! layer stays unaware of them and every backend gets them for free. A refused operation is
//! [`VfsError::PermissionDenied`] (SSH_FX_PERMISSION_DENIED) whose message names the missing
//! permission, so an operator reading a client's error knows what to grant.
//!
//! Two rules of an upload cannot be settled at OPEN: a file may appear at the path, or its
//! folder vanish, before the upload commits. For those ("overwrite", "mkdir") this layer hands
//! the backend the error to give in [`WriteOptions`], and the backend enforces them when it
//! commits.
//!
//! Renaming needs "rename", with one exception for clients that upload to a temporary name and
//! rename it when done (WinSCP's `.filepart`, lftp, FileZilla): a user with "upload" may rename
//! a file this same session uploaded ([`SessionUploads`]), which finishes the upload rather than
//! moving someone's file. Either way a rename never replaces a file without "overwrite": the
//! backend is then asked for a rename that does not replace, so a file that appears at the
//! target after the look here is left alone too. Without "mkdir" the target's folder must
//! exist (a move would create it).
//!
//! STAT and statvfs are always allowed: OpenSSH's `put` STATs its target to see whether it is a
//! folder, and paramiko STATs an upload afterwards to check its size, so an upload-only partner
//! needs them.

use std::sync::Arc;

use bytes::Bytes;

use super::session_uploads::SessionUploads;
use super::{
    Capabilities, Committed, FileInfo, FileWriter, Renamed, SpaceUsage, VPath, Vfs, VfsError,
    VfsResult, WriteOptions,
};
use crate::users::permissions::{Permission, Permissions};

/// The refusal of what a user's permissions do not cover.
trait Require {
    /// `Err(PermissionDenied)` naming `permission` unless it is granted.
    fn require(self, permission: Permission, action: &str, path: &VPath) -> VfsResult<()>;
}

impl Require for Permissions {
    fn require(self, permission: Permission, action: &str, path: &VPath) -> VfsResult<()> {
        if self.allows(permission) {
            return Ok(());
        }
        Err(VfsError::PermissionDenied(format!(
            "{path}: permission denied: {action} needs the \"{}\" permission, which this user \
             does not have",
            permission.name()
        )))
    }
}

/// A backend with a user's permissions checked in front of it; one per SFTP session.
pub struct Permissioned<F> {
    inner: F,
    granted: Permissions,
    /// What this session has uploaded, which it may rename with "upload" alone.
    uploads: Arc<SessionUploads>,
}

impl<F: Vfs> Permissioned<F> {
    pub fn new(inner: F, granted: Permissions) -> Self {
        Permissioned {
            inner,
            granted,
            uploads: Arc::default(),
        }
    }

    /// "rename", or "upload" for a file this session uploaded (see the module doc).
    fn may_rename(&self, from: &VPath) -> VfsResult<()> {
        if self.granted.allows(Permission::Rename) {
            return Ok(());
        }
        if !self.granted.allows(Permission::Upload) {
            return self.granted.require(Permission::Rename, "renaming", from);
        }
        if self.uploads.contains(from) {
            return Ok(());
        }
        self.granted.require(
            Permission::Rename,
            "renaming a file this session did not upload",
            from,
        )
    }

    /// For a user without "mkdir": the folder a rename moves into must exist already. The
    /// source's own folder does (WinSCP's rename stays in it), so only another one is looked at.
    async fn target_folder_exists(&self, from: &VPath, to: &VPath) -> VfsResult<()> {
        let Some(error) = self.missing_parent_error(to) else {
            return Ok(());
        };
        if from.parent() == to.parent() {
            return Ok(());
        }
        let parent = to.parent().unwrap_or_else(VPath::root);
        match self.inner.stat(&parent).await {
            Ok(info) if info.is_dir() => Ok(()),
            Ok(_) | Err(VfsError::NotFound(_)) => Err(error),
            Err(e) => Err(e),
        }
    }

    /// Whether a file (or anything) is at `path`; NotFound is an answer here, not an error.
    async fn exists(&self, path: &VPath) -> VfsResult<bool> {
        match self.inner.stat(path).await {
            Ok(_) => Ok(true),
            Err(VfsError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// An upload needs "upload" for a new file, "overwrite" for an existing one and "mkdir" for
    /// a folder that does not exist yet. Only a user without "upload" waits for a look at the
    /// path here (whether it may write at all depends on it). The other two rules travel with
    /// the options to the backend, which enforces them at the commit, where they hold even for a
    /// file or folder that changes while the upload is open, and without a round trip at OPEN.
    async fn write_options(
        &self,
        path: &VPath,
        mut options: WriteOptions,
    ) -> VfsResult<WriteOptions> {
        if !self.granted.allows(Permission::Upload) {
            if self.exists(path).await? {
                self.granted
                    .require(Permission::Overwrite, "replacing an existing file", path)?;
            } else {
                self.granted
                    .require(Permission::Upload, "uploading a new file", path)?;
            }
        }
        if let Err(denied) =
            self.granted
                .require(Permission::Overwrite, "replacing an existing file", path)
        {
            options.if_exists = Some(denied);
        }
        options.if_parent_missing = self.missing_parent_error(path);
        Ok(options)
    }

    /// For a user without "mkdir": what an upload into a folder that does not exist gets.
    /// NO_SUCH_FILE, as from a POSIX server, so that a client that creates the folder on such
    /// an error tries `mkdir` and is told which permission is missing. The user's home counts
    /// as existing.
    fn missing_parent_error(&self, path: &VPath) -> Option<VfsError> {
        if self.granted.allows(Permission::Mkdir) {
            return None;
        }
        let parent = path.parent().filter(|parent| !parent.is_root())?;
        Some(VfsError::NotFound(format!(
            "{parent}: no such folder; creating it needs the \"mkdir\" permission, which \
             this user does not have"
        )))
    }
}

impl<F: Vfs> Vfs for Permissioned<F> {
    type Reader = F::Reader;
    type Writer = Tracked<F::Writer>;
    type Lister = F::Lister;

    async fn stat(&self, path: &VPath) -> VfsResult<FileInfo> {
        self.inner.stat(path).await
    }

    async fn open_dir(&self, path: &VPath) -> VfsResult<F::Lister> {
        self.granted
            .require(Permission::List, "listing a folder", path)?;
        self.inner.open_dir(path).await
    }

    async fn open_read(&self, path: &VPath) -> VfsResult<F::Reader> {
        self.granted
            .require(Permission::Read, "downloading a file", path)?;
        self.inner.open_read(path).await
    }

    async fn open_write(&self, path: &VPath, options: WriteOptions) -> VfsResult<Self::Writer> {
        let options = self.write_options(path, options).await?;
        Ok(Tracked {
            inner: self.inner.open_write(path, options).await?,
            path: path.clone(),
            uploads: self.uploads.clone(),
        })
    }

    async fn mkdir(&self, path: &VPath) -> VfsResult<()> {
        self.granted
            .require(Permission::Mkdir, "creating a folder", path)?;
        self.inner.mkdir(path).await
    }

    async fn rmdir(&self, path: &VPath) -> VfsResult<()> {
        self.granted
            .require(Permission::Delete, "removing a folder", path)?;
        self.inner.rmdir(path).await
    }

    async fn remove(&self, path: &VPath) -> VfsResult<()> {
        self.granted
            .require(Permission::Delete, "removing a file", path)?;
        self.inner.remove(path).await?;
        self.uploads.removed(path);
        Ok(())
    }

    async fn rename(&self, from: &VPath, to: &VPath, replace: bool) -> VfsResult<Renamed> {
        self.may_rename(from)?;
        let may_replace = self.granted.allows(Permission::Overwrite);
        // Only a replacing rename can destroy the target; a plain one fails on it anyway.
        if replace && !may_replace && self.exists(to).await? {
            self.granted
                .require(Permission::Overwrite, "renaming onto an existing file", to)?;
        }
        self.target_folder_exists(from, to).await?;
        let renamed = self.inner.rename(from, to, replace && may_replace).await?;
        self.uploads.renamed(from, to);
        Ok(renamed)
    }

    /// Setting a file's time is part of uploading it (WinSCP and rclone do it right after).
    async fn set_mtime(&self, path: &VPath, mtime: i64) -> VfsResult<()> {
        if !self.granted.allows(Permission::Overwrite) {
            self.granted
                .require(Permission::Upload, "setting a file's time", path)?;
        }
        self.inner.set_mtime(path, mtime).await
    }

    async fn space_usage(&self) -> VfsResult<SpaceUsage> {
        self.inner.space_usage().await
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    /// A copy reads one file and creates another (it never replaces one).
    async fn copy_file(&self, from: &VPath, to: &VPath) -> VfsResult<FileInfo> {
        self.granted
            .require(Permission::Read, "copying a file", from)?;
        self.granted
            .require(Permission::Upload, "creating a file", to)?;
        self.inner.copy_file(from, to).await
    }
}

/// An upload that, once committed, is this session's (see [`SessionUploads`]).
pub struct Tracked<W> {
    inner: W,
    path: VPath,
    uploads: Arc<SessionUploads>,
}

impl<W: FileWriter> FileWriter for Tracked<W> {
    async fn write(&mut self, offset: u64, data: Bytes) -> VfsResult<()> {
        self.inner.write(offset, data).await
    }

    async fn set_size(&mut self, size: u64) -> VfsResult<()> {
        self.inner.set_size(size).await
    }

    fn set_mtime(&mut self, mtime: i64) {
        self.inner.set_mtime(mtime);
    }

    fn stat(&self) -> FileInfo {
        self.inner.stat()
    }

    async fn commit(self) -> VfsResult<Committed> {
        let committed = self.inner.commit().await?;
        self.uploads.committed(&self.path);
        Ok(committed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vfs::memory::MemFs;
    use crate::vfs::FileWriter;

    fn path(p: &str) -> VPath {
        VPath::parse(p).unwrap()
    }

    fn fs_with(granted: &[Permission]) -> Permissioned<MemFs> {
        let mem = MemFs::new();
        mem.add_file("/old.txt", b"old", 0);
        mem.add_folder("/dir");
        Permissioned::new(mem, granted.iter().copied().collect())
    }

    fn denied_naming<T>(result: VfsResult<T>, permission: &str) {
        match result {
            Err(VfsError::PermissionDenied(message)) => {
                assert!(message.contains(&format!("\"{permission}\"")), "{message}")
            }
            Err(other) => panic!("expected PermissionDenied, got {other:?}"),
            Ok(_) => panic!("expected PermissionDenied, got Ok"),
        }
    }

    #[tokio::test]
    async fn each_operation_needs_its_permission() {
        let none = fs_with(&[]);
        denied_naming(none.open_dir(&path("/")).await, "list");
        denied_naming(none.open_read(&path("/old.txt")).await, "read");
        denied_naming(
            none.open_write(&path("/new.txt"), WriteOptions::default())
                .await,
            "upload",
        );
        denied_naming(
            none.open_write(&path("/old.txt"), WriteOptions::default())
                .await,
            "overwrite",
        );
        denied_naming(none.mkdir(&path("/d2")).await, "mkdir");
        denied_naming(none.rmdir(&path("/dir")).await, "delete");
        denied_naming(none.remove(&path("/old.txt")).await, "delete");
        denied_naming(
            none.rename(&path("/old.txt"), &path("/x"), false).await,
            "rename",
        );
        assert!(none.stat(&path("/old.txt")).await.is_ok());
    }

    #[tokio::test]
    async fn granted_operations_reach_the_backend() {
        let all = fs_with(&Permission::ALL);
        assert!(all.open_dir(&path("/")).await.is_ok());
        assert!(all.open_read(&path("/old.txt")).await.is_ok());
        assert!(all
            .open_write(&path("/old.txt"), WriteOptions::default())
            .await
            .is_ok());
        assert!(all.mkdir(&path("/d2")).await.is_ok());
        assert!(all.rmdir(&path("/d2")).await.is_ok());
        assert!(all
            .rename(&path("/old.txt"), &path("/moved.txt"), false)
            .await
            .is_ok());
        assert!(all.remove(&path("/moved.txt")).await.is_ok());
    }

    #[tokio::test]
    async fn upload_only_creates_but_never_replaces() {
        let partner = fs_with(&[Permission::Upload]);
        assert!(partner
            .open_write(&path("/new.txt"), WriteOptions::default())
            .await
            .is_ok());
        denied_naming(
            partner
                .open_write(&path("/old.txt"), WriteOptions::default())
                .await,
            "overwrite",
        );
    }

    #[tokio::test]
    async fn a_file_that_appears_after_open_is_not_replaced_without_overwrite() {
        let mem = MemFs::new();
        let partner = Permissioned::new(mem.clone(), [Permission::Upload].into_iter().collect());
        let mut writer = partner
            .open_write(&path("/late.txt"), WriteOptions::default())
            .await
            .unwrap();
        writer
            .write(0, bytes::Bytes::from_static(b"mine"))
            .await
            .unwrap();
        mem.add_file("/late.txt", b"theirs", 0);
        denied_naming(writer.commit().await, "overwrite");
        assert_eq!(mem.stat(&path("/late.txt")).await.unwrap().size, 6);
    }

    #[tokio::test]
    async fn without_mkdir_the_parent_folder_must_exist_except_for_home() {
        let no_mkdir = fs_with(&[Permission::Upload, Permission::Overwrite]);
        let nested = no_mkdir
            .write_options(&path("/new/sub/f.txt"), WriteOptions::default())
            .await
            .unwrap();
        match nested.if_parent_missing {
            Some(VfsError::NotFound(message)) => {
                assert!(
                    message.contains("/new/sub") && message.contains("\"mkdir\""),
                    "{message}"
                )
            }
            other => panic!("expected a NotFound rule, got {other:?}"),
        }
        let at_home = no_mkdir
            .write_options(&path("/f.txt"), WriteOptions::default())
            .await
            .unwrap();
        assert_eq!(at_home.if_parent_missing, None);
        assert_eq!(at_home.if_exists, None);
        let all = fs_with(&Permission::ALL);
        let options = all
            .write_options(&path("/new/sub/f.txt"), WriteOptions::default())
            .await
            .unwrap();
        assert_eq!(options, WriteOptions::default());
    }

    #[tokio::test]
    async fn a_replacing_rename_onto_a_file_needs_overwrite() {
        let renamer = fs_with(&[Permission::Rename, Permission::Upload]);
        denied_naming(
            renamer.rename(&path("/dir"), &path("/old.txt"), true).await,
            "overwrite",
        );
        assert!(renamer
            .rename(&path("/old.txt"), &path("/fresh.txt"), true)
            .await
            .is_ok());
    }

    /// An upload-only session writes `name` through a client's temporary-name habit.
    async fn upload(fs: &impl Vfs, name: &str, data: &'static [u8]) {
        let mut writer = fs
            .open_write(&path(name), WriteOptions::default())
            .await
            .unwrap();
        writer
            .write(0, bytes::Bytes::from_static(data))
            .await
            .unwrap();
        writer.commit().await.unwrap();
    }

    #[tokio::test]
    async fn upload_only_renames_its_own_upload_to_a_new_name_and_nothing_else() {
        let mem = MemFs::new();
        mem.add_file("/seeded.txt", b"seeded", 0);
        let upload_only: Permissions = [Permission::Upload].into_iter().collect();
        let session = Permissioned::new(mem.clone(), upload_only);
        upload(&session, "/report.csv.filepart", b"rows").await;
        session
            .rename(&path("/report.csv.filepart"), &path("/report.csv"), false)
            .await
            .unwrap();
        assert_eq!(mem.stat(&path("/report.csv")).await.unwrap().size, 4);
        assert!(mem.stat(&path("/report.csv.filepart")).await.is_err());
        // Still this session's under its new name; no longer under the old one.
        session
            .rename(&path("/report.csv"), &path("/final.csv"), true)
            .await
            .unwrap();
        mem.add_file("/report.csv.filepart", b"someone else's", 0);
        denied_naming(
            session
                .rename(&path("/report.csv.filepart"), &path("/x"), false)
                .await,
            "rename",
        );

        denied_naming(
            session
                .rename(&path("/seeded.txt"), &path("/mine.txt"), false)
                .await,
            "rename",
        );
        // Another session of the same user (a file uploaded earlier) is not covered.
        let later = Permissioned::new(mem.clone(), upload_only);
        denied_naming(
            later
                .rename(&path("/final.csv"), &path("/moved.csv"), false)
                .await,
            "rename",
        );
        assert_eq!(mem.stat(&path("/final.csv")).await.unwrap().size, 4);
    }

    #[tokio::test]
    async fn an_own_upload_never_replaces_a_file_without_overwrite() {
        let mem = MemFs::new();
        mem.add_file("/report.csv", b"theirs", 0);
        let session = Permissioned::new(mem.clone(), [Permission::Upload].into_iter().collect());
        upload(&session, "/report.csv.filepart", b"mine").await;
        let plain = session
            .rename(&path("/report.csv.filepart"), &path("/report.csv"), false)
            .await;
        assert!(
            matches!(plain, Err(VfsError::AlreadyExists(_))),
            "{plain:?}"
        );
        denied_naming(
            session
                .rename(&path("/report.csv.filepart"), &path("/report.csv"), true)
                .await,
            "overwrite",
        );
        assert_eq!(mem.stat(&path("/report.csv")).await.unwrap().size, 6);
        // With "overwrite" the posix rename the client asked for replaces it.
        let replacer = Permissioned::new(
            mem.clone(),
            [Permission::Upload, Permission::Overwrite]
                .into_iter()
                .collect(),
        );
        upload(&replacer, "/report.csv.filepart", b"mine!").await;
        let renamed = replacer
            .rename(&path("/report.csv.filepart"), &path("/report.csv"), true)
            .await
            .unwrap();
        assert!(renamed.replaced);
        assert_eq!(mem.stat(&path("/report.csv")).await.unwrap().size, 5);
    }

    #[tokio::test]
    async fn a_target_that_appears_after_the_look_is_not_replaced_without_overwrite() {
        let mem = MemFs::new();
        let racing = Racing {
            inner: mem.clone(),
            appears: path("/report.csv"),
        };
        let session = Permissioned::new(racing, [Permission::Upload].into_iter().collect());
        upload(&session, "/report.csv.filepart", b"mine").await;
        let result = session
            .rename(&path("/report.csv.filepart"), &path("/report.csv"), true)
            .await;
        assert!(
            matches!(result, Err(VfsError::AlreadyExists(_))),
            "{result:?}"
        );
        assert_eq!(mem.stat(&path("/report.csv")).await.unwrap().size, 6);
        assert_eq!(
            mem.stat(&path("/report.csv.filepart")).await.unwrap().size,
            4
        );
    }

    #[tokio::test]
    async fn without_mkdir_a_rename_cannot_create_its_target_folder() {
        let session = fs_with(&[Permission::Upload]);
        upload(&session, "/f.filepart", b"x").await;
        let result = session
            .rename(&path("/f.filepart"), &path("/new/f"), false)
            .await;
        match result {
            Err(VfsError::NotFound(message)) => assert!(message.contains("\"mkdir\""), "{message}"),
            other => panic!("expected NotFound, got {other:?}"),
        }
        session
            .rename(&path("/f.filepart"), &path("/dir/f"), false)
            .await
            .unwrap();
    }

    /// A backend where a file ("theirs") lands at `appears` just after a look found nothing
    /// there: the race between the permission check and the rename.
    struct Racing {
        inner: MemFs,
        appears: VPath,
    }

    impl Vfs for Racing {
        type Reader = <MemFs as Vfs>::Reader;
        type Writer = <MemFs as Vfs>::Writer;
        type Lister = <MemFs as Vfs>::Lister;

        async fn stat(&self, p: &VPath) -> VfsResult<FileInfo> {
            let found = self.inner.stat(p).await;
            if *p == self.appears && found.is_err() {
                self.inner.add_file(&p.to_string(), b"theirs", 0);
            }
            found
        }
        async fn open_dir(&self, p: &VPath) -> VfsResult<Self::Lister> {
            self.inner.open_dir(p).await
        }
        async fn open_read(&self, p: &VPath) -> VfsResult<Self::Reader> {
            self.inner.open_read(p).await
        }
        async fn open_write(&self, p: &VPath, options: WriteOptions) -> VfsResult<Self::Writer> {
            self.inner.open_write(p, options).await
        }
        async fn mkdir(&self, p: &VPath) -> VfsResult<()> {
            self.inner.mkdir(p).await
        }
        async fn rmdir(&self, p: &VPath) -> VfsResult<()> {
            self.inner.rmdir(p).await
        }
        async fn remove(&self, p: &VPath) -> VfsResult<()> {
            self.inner.remove(p).await
        }
        async fn rename(&self, from: &VPath, to: &VPath, replace: bool) -> VfsResult<Renamed> {
            self.inner.rename(from, to, replace).await
        }
        async fn set_mtime(&self, p: &VPath, mtime: i64) -> VfsResult<()> {
            self.inner.set_mtime(p, mtime).await
        }
        async fn space_usage(&self) -> VfsResult<SpaceUsage> {
            self.inner.space_usage().await
        }
    }
}
