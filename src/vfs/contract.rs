//! The vfs contract: what every backend must do, checked the same way for each.
//!
//! The SFTP layer is written against the [`Vfs`] trait, and its own tests run on the in-memory
//! backend; that is only worth something if the in-memory backend and the Dropbox backend behave
//! alike. So each rule of the trait is one check here, written against the trait alone, and
//! every backend runs all of them ([`vfs_contract!`]): `vfs::memory` on itself, the Dropbox
//! backend on the emulator. A rule that one backend breaks fails that backend's test of the same
//! name, so the two cannot drift apart unnoticed.
//!
//! Each check gets a fresh, empty home and leaves what it made behind.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::{DirLister, FileKind, FileReader, FileWriter, VPath, Vfs, VfsError, WriteOptions};

/// One `#[tokio::test]` per check, each on a fresh home from `$setup` (an async fn returning
/// the filesystem and whatever must stay alive while it is used).
macro_rules! vfs_contract {
    ($setup:path) => {
        $crate::vfs::contract::vfs_contract!(@checks $setup;
            the_root_is_an_empty_folder,
            missing_paths_are_not_found,
            an_upload_is_stored_whole_at_its_commit,
            an_upload_never_committed_stores_nothing,
            a_write_past_the_end_is_refused,
            an_exclusive_upload_leaves_an_existing_file_alone,
            a_truncating_upload_replaces_a_file,
            a_size_change_truncates_and_extends,
            folders_hold_what_is_put_in_them,
            rmdir_removes_only_empty_folders,
            remove_refuses_a_folder,
            rename_replaces_only_when_asked,
            a_renamed_folder_takes_its_contents,
            a_listing_brings_every_entry_once,
            reads_start_at_any_offset,
            a_copy_never_replaces,
        );
    };
    (@checks $setup:path; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                let (fs, _keep) = $setup().await;
                $crate::vfs::contract::$check(&fs).await;
            }
        )*
    };
}
pub(crate) use vfs_contract;

fn path(text: &str) -> VPath {
    VPath::parse(text).unwrap()
}

/// Uploads `data` to `at` in one write and commits it.
async fn put(fs: &impl Vfs, at: &str, data: &[u8]) {
    let mut writer = fs
        .open_write(&path(at), truncating())
        .await
        .unwrap_or_else(|e| panic!("open {at}: {e}"));
    writer
        .write(0, Bytes::copy_from_slice(data))
        .await
        .unwrap_or_else(|e| panic!("write {at}: {e}"));
    writer
        .commit()
        .await
        .unwrap_or_else(|e| panic!("commit {at}: {e}"));
}

fn truncating() -> WriteOptions {
    WriteOptions {
        truncate: true,
        ..WriteOptions::default()
    }
}

/// The whole content of the file at `at`.
async fn content(fs: &impl Vfs, at: &str) -> Vec<u8> {
    let mut reader = fs
        .open_read(&path(at))
        .await
        .unwrap_or_else(|e| panic!("open {at} for reading: {e}"));
    let mut data = Vec::new();
    loop {
        let chunk = reader.read(data.len() as u64, 32 * 1024).await.unwrap();
        if chunk.is_empty() {
            return data;
        }
        data.extend_from_slice(&chunk);
    }
}

/// Every entry of the folder at `at`, by name, with its kind and size.
async fn listing(fs: &impl Vfs, at: &str) -> BTreeMap<String, (FileKind, u64)> {
    let mut lister = fs.open_dir(&path(at)).await.unwrap();
    let mut entries = BTreeMap::new();
    while let Some(page) = lister.next_page().await.unwrap() {
        for entry in page {
            let name = entry.name.clone();
            let duplicate = entries.insert(name.clone(), (entry.kind, entry.size));
            assert!(duplicate.is_none(), "{name} listed twice");
        }
    }
    entries
}

fn assert_not_found<T: std::fmt::Debug>(result: Result<T, VfsError>, what: &str) {
    assert!(
        matches!(result, Err(VfsError::NotFound(_))),
        "{what}: {result:?}"
    );
}

pub(crate) async fn the_root_is_an_empty_folder(fs: &impl Vfs) {
    let root = fs.stat(&VPath::root()).await.unwrap();
    assert!(root.is_dir());
    assert!(listing(fs, "/").await.is_empty());
}

pub(crate) async fn missing_paths_are_not_found(fs: &impl Vfs) {
    let missing = path("/missing");
    assert_not_found(fs.stat(&missing).await, "stat");
    assert_not_found(fs.open_read(&missing).await.map(|_| ()), "open_read");
    assert_not_found(fs.open_dir(&missing).await.map(|_| ()), "open_dir");
    assert_not_found(fs.remove(&missing).await, "remove");
    assert_not_found(fs.rmdir(&missing).await, "rmdir");
    assert_not_found(fs.rename(&missing, &path("/b"), false).await, "rename");
}

pub(crate) async fn an_upload_is_stored_whole_at_its_commit(fs: &impl Vfs) {
    let target = path("/a.txt");
    let mut writer = fs.open_write(&target, truncating()).await.unwrap();
    writer
        .write(0, Bytes::from_static(b"hello "))
        .await
        .unwrap();
    writer.write(6, Bytes::from_static(b"world")).await.unwrap();
    // A write inside what was received rewrites those bytes.
    writer.write(0, Bytes::from_static(b"H")).await.unwrap();
    assert_eq!(writer.stat().size, 11);
    let committed = writer.commit().await.unwrap();
    assert_eq!(committed.info.size, 11);
    assert_eq!(committed.info.kind, FileKind::File);
    let stored = fs.stat(&target).await.unwrap();
    assert_eq!((stored.kind, stored.size), (FileKind::File, 11));
    assert_eq!(content(fs, "/a.txt").await, b"Hello world");
}

pub(crate) async fn an_upload_never_committed_stores_nothing(fs: &impl Vfs) {
    let mut writer = fs
        .open_write(&path("/gone.txt"), truncating())
        .await
        .unwrap();
    writer.write(0, Bytes::from_static(b"data")).await.unwrap();
    drop(writer);
    assert_not_found(fs.stat(&path("/gone.txt")).await, "stat after drop");
}

pub(crate) async fn a_write_past_the_end_is_refused(fs: &impl Vfs) {
    let mut writer = fs
        .open_write(&path("/gap.bin"), truncating())
        .await
        .unwrap();
    writer.write(0, Bytes::from_static(b"0123")).await.unwrap();
    let gap = writer.write(10, Bytes::from_static(b"x")).await;
    assert!(matches!(gap, Err(VfsError::Unsupported(_))), "{gap:?}");
}

pub(crate) async fn an_exclusive_upload_leaves_an_existing_file_alone(fs: &impl Vfs) {
    put(fs, "/kept.txt", b"old").await;
    let exclusive = WriteOptions {
        exclusive: true,
        ..truncating()
    };
    // Refused at OPEN or at the commit; either way with AlreadyExists, and the old file stays.
    let refused = match fs.open_write(&path("/kept.txt"), exclusive).await {
        Err(error) => error,
        Ok(mut writer) => match writer.write(0, Bytes::from_static(b"new")).await {
            Err(error) => error,
            Ok(()) => writer.commit().await.unwrap_err(),
        },
    };
    assert!(matches!(refused, VfsError::AlreadyExists(_)), "{refused:?}");
    assert_eq!(content(fs, "/kept.txt").await, b"old");
}

pub(crate) async fn a_truncating_upload_replaces_a_file(fs: &impl Vfs) {
    put(fs, "/r.txt", b"a longer old content").await;
    put(fs, "/r.txt", b"new").await;
    assert_eq!(content(fs, "/r.txt").await, b"new");
    assert_eq!(fs.stat(&path("/r.txt")).await.unwrap().size, 3);
}

pub(crate) async fn a_size_change_truncates_and_extends(fs: &impl Vfs) {
    let mut writer = fs.open_write(&path("/s.bin"), truncating()).await.unwrap();
    writer
        .write(0, Bytes::from_static(b"abcdef"))
        .await
        .unwrap();
    writer.set_size(3).await.unwrap();
    writer.set_size(5).await.unwrap();
    writer.commit().await.unwrap();
    assert_eq!(content(fs, "/s.bin").await, b"abc\0\0");
}

pub(crate) async fn folders_hold_what_is_put_in_them(fs: &impl Vfs) {
    fs.mkdir(&path("/d")).await.unwrap();
    assert!(fs.stat(&path("/d")).await.unwrap().is_dir());
    let again = fs.mkdir(&path("/d")).await;
    assert!(
        matches!(again, Err(VfsError::AlreadyExists(_))),
        "{again:?}"
    );
    put(fs, "/d/f.txt", b"12345").await;
    fs.mkdir(&path("/d/sub")).await.unwrap();
    let entries = listing(fs, "/d").await;
    assert_eq!(entries.get("f.txt"), Some(&(FileKind::File, 5)));
    assert_eq!(entries.get("sub").map(|e| e.0), Some(FileKind::Folder));
    assert_eq!(entries.len(), 2);
    let of_a_file = fs.open_dir(&path("/d/f.txt")).await.map(|_| ());
    assert!(of_a_file.is_err(), "listing a file: {of_a_file:?}");
}

pub(crate) async fn rmdir_removes_only_empty_folders(fs: &impl Vfs) {
    fs.mkdir(&path("/full")).await.unwrap();
    put(fs, "/full/f", b"x").await;
    let refused = fs.rmdir(&path("/full")).await;
    assert!(matches!(refused, Err(VfsError::NotEmpty(_))), "{refused:?}");
    assert_eq!(content(fs, "/full/f").await, b"x");
    fs.remove(&path("/full/f")).await.unwrap();
    fs.rmdir(&path("/full")).await.unwrap();
    assert_not_found(fs.stat(&path("/full")).await, "stat after rmdir");
}

pub(crate) async fn remove_refuses_a_folder(fs: &impl Vfs) {
    fs.mkdir(&path("/folder")).await.unwrap();
    put(fs, "/folder/inside", b"x").await;
    assert!(fs.remove(&path("/folder")).await.is_err());
    assert_eq!(content(fs, "/folder/inside").await, b"x");
}

pub(crate) async fn rename_replaces_only_when_asked(fs: &impl Vfs) {
    put(fs, "/from.txt", b"from").await;
    put(fs, "/to.txt", b"to").await;
    let refused = fs.rename(&path("/from.txt"), &path("/to.txt"), false).await;
    assert!(
        matches!(refused, Err(VfsError::AlreadyExists(_))),
        "{refused:?}"
    );
    assert_eq!(content(fs, "/from.txt").await, b"from");
    assert_eq!(content(fs, "/to.txt").await, b"to");

    let renamed = fs.rename(&path("/from.txt"), &path("/to.txt"), true).await;
    assert!(renamed.unwrap().replaced);
    assert_not_found(fs.stat(&path("/from.txt")).await, "the source");
    assert_eq!(content(fs, "/to.txt").await, b"from");

    let moved = fs.rename(&path("/to.txt"), &path("/new.txt"), false).await;
    assert!(!moved.unwrap().replaced);
    assert_eq!(content(fs, "/new.txt").await, b"from");
}

pub(crate) async fn a_renamed_folder_takes_its_contents(fs: &impl Vfs) {
    fs.mkdir(&path("/old")).await.unwrap();
    put(fs, "/old/f", b"inside").await;
    fs.rename(&path("/old"), &path("/new"), false)
        .await
        .unwrap();
    assert_not_found(fs.stat(&path("/old")).await, "the old folder");
    assert_eq!(content(fs, "/new/f").await, b"inside");
}

pub(crate) async fn a_listing_brings_every_entry_once(fs: &impl Vfs) {
    // More entries than a page holds in the backends' test setups.
    fs.mkdir(&path("/many")).await.unwrap();
    for i in 0..7 {
        put(fs, &format!("/many/f{i}"), &vec![b'x'; i]).await;
    }
    let entries = listing(fs, "/many").await;
    let expected: BTreeMap<String, (FileKind, u64)> = (0..7)
        .map(|i| (format!("f{i}"), (FileKind::File, i as u64)))
        .collect();
    assert_eq!(entries, expected);
}

pub(crate) async fn reads_start_at_any_offset(fs: &impl Vfs) {
    let data: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    put(fs, "/r.bin", &data).await;
    let mut reader = fs.open_read(&path("/r.bin")).await.unwrap();
    assert_eq!(reader.stat().size, 1000);
    assert_eq!(reader.read(500, 100).await.unwrap(), &data[500..600]);
    assert_eq!(reader.read(0, 10).await.unwrap(), &data[..10]);
    assert_eq!(reader.read(990, 100).await.unwrap(), &data[990..]);
    assert!(reader.read(1000, 10).await.unwrap().is_empty());
}

pub(crate) async fn a_copy_never_replaces(fs: &impl Vfs) {
    assert!(
        fs.capabilities().server_side_copy,
        "the contract setups switch server-side copy on"
    );
    put(fs, "/original", b"original").await;
    let copied = fs.copy_file(&path("/original"), &path("/copy")).await;
    assert_eq!(copied.unwrap().size, 8);
    assert_eq!(content(fs, "/copy").await, b"original");
    put(fs, "/other", b"other").await;
    let refused = fs.copy_file(&path("/original"), &path("/other")).await;
    assert!(
        matches!(refused, Err(VfsError::AlreadyExists(_))),
        "{refused:?}"
    );
    assert_eq!(content(fs, "/other").await, b"other");
}
