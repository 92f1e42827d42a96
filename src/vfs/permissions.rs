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
//! STAT and statvfs are always allowed: OpenSSH's `put` STATs its target to see whether it is a
//! folder, and paramiko STATs an upload afterwards to check its size, so an upload-only partner
//! needs them.

use super::{
    Capabilities, FileInfo, Renamed, SpaceUsage, VPath, Vfs, VfsError, VfsResult, WriteOptions,
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

/// A backend with a user's permissions checked in front of it.
pub struct Permissioned<F> {
    inner: F,
    granted: Permissions,
}

impl<F: Vfs> Permissioned<F> {
    pub fn new(inner: F, granted: Permissions) -> Self {
        Permissioned { inner, granted }
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
    type Writer = F::Writer;
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

    async fn open_write(&self, path: &VPath, options: WriteOptions) -> VfsResult<F::Writer> {
        let options = self.write_options(path, options).await?;
        self.inner.open_write(path, options).await
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
        self.inner.remove(path).await
    }

    async fn rename(&self, from: &VPath, to: &VPath, replace: bool) -> VfsResult<Renamed> {
        self.granted.require(Permission::Rename, "renaming", from)?;
        // Only a replacing rename can destroy the target; a plain one fails on it anyway.
        if replace && !self.granted.allows(Permission::Overwrite) && self.exists(to).await? {
            self.granted
                .require(Permission::Overwrite, "renaming onto an existing file", to)?;
        }
        self.inner.rename(from, to, replace).await
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
}
