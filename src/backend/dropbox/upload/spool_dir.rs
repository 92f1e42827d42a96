//! The spool folder, checked before anyone uploads.
//!
//! Every upload creates its spool file in this folder. A folder that cannot hold one (missing
//! and not creatable, not a folder, read-only) used to be found by the first upload, which
//! failed with a bare "No such file or directory" while the gateway looked healthy. So `serve`
//! makes the folder ready at start and refuses to start without it ([`prepare`]), and
//! `check-config` checks it ([`check`]) without leaving anything behind: it does not even create
//! a missing folder, which, run as root, would be root's and useless to the service user.

use std::path::Path;

use anyhow::{bail, Context};

use super::spool::SPOOL_PREFIX;

/// What the check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolFolder {
    /// Free bytes on the folder's file system (its nearest existing parent's, if missing).
    pub free: u64,
    /// False: it does not exist yet, and `serve` will create it.
    pub exists: bool,
}

/// At start: creates the folder if missing and a spool file in it (removed at once); the free
/// space of its file system.
pub fn prepare(dir: &Path) -> anyhow::Result<u64> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("spool folder {}: cannot create it", dir.display()))?;
    probe(dir)
}

/// Checks that `prepare` would succeed, creating nothing that stays: a missing folder is
/// checked by creating (and removing) a folder in its nearest existing parent.
pub fn check(dir: &Path) -> anyhow::Result<SpoolFolder> {
    if dir.is_dir() {
        return Ok(SpoolFolder {
            free: probe(dir)?,
            exists: true,
        });
    }
    if dir.exists() {
        bail!("spool folder {}: not a folder", dir.display());
    }
    let parent = dir
        .ancestors()
        .skip(1)
        .find(|a| a.exists())
        .unwrap_or(Path::new("/"));
    if !parent.is_dir() {
        bail!(
            "spool folder {}: cannot be created, {} is not a folder",
            dir.display(),
            parent.display()
        );
    }
    tempfile::Builder::new()
        .prefix(SPOOL_PREFIX)
        .tempdir_in(parent)
        .with_context(|| {
            format!(
                "spool folder {}: cannot be created, no folder can be made in {}",
                dir.display(),
                parent.display()
            )
        })?;
    Ok(SpoolFolder {
        free: free_space(parent)?,
        exists: false,
    })
}

/// Creates a spool file in `dir` and removes it; the free space beside it.
fn probe(dir: &Path) -> anyhow::Result<u64> {
    tempfile::Builder::new()
        .prefix(SPOOL_PREFIX)
        .tempfile_in(dir)
        .with_context(|| format!("spool folder {}: cannot create a file in it", dir.display()))?;
    free_space(dir)
}

fn free_space(dir: &Path) -> anyhow::Result<u64> {
    let stat = rustix::fs::statvfs(dir)
        .with_context(|| format!("spool folder {}: cannot read its free space", dir.display()))?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_that_can_hold_spool_files_passes_and_nothing_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let found = check(dir.path()).unwrap();
        assert!(found.exists && found.free > 0);
        let missing = dir.path().join("a/b");
        assert!(!check(&missing).unwrap().exists);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "left nothing"
        );
        prepare(&missing).unwrap();
        assert!(missing.is_dir());
        assert_eq!(std::fs::read_dir(&missing).unwrap().count(), 0);
    }

    /// Under a regular file (ENOTDIR): unusable even for root, unlike a folder's mode.
    #[test]
    fn a_folder_under_a_file_is_refused_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let spool = file.join("spool");
        let err = format!("{:#}", check(&spool).unwrap_err());
        assert!(err.contains(&spool.display().to_string()), "{err}");
        assert!(err.contains("is not a folder"), "{err}");
        let err = format!("{:#}", prepare(&spool).unwrap_err());
        assert!(err.contains("cannot create it"), "{err}");
        let err = format!("{:#}", check(&file).unwrap_err());
        assert!(err.contains("not a folder"), "{err}");
    }
}
