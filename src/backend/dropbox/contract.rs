//! The vfs contract ([`crate::vfs::contract`]) on the Dropbox backend, against the emulator.

use std::sync::Arc;
use std::time::Duration;

use dropbox_emulator::demo_credentials as demo;
use dropbox_emulator::{Emulator, EmulatorConfig};
use tempfile::TempDir;

use super::api::{ClientOptions, Credentials, DropboxClient, Endpoints};
use super::upload::UploadSettings;
use super::{DownloadSettings, DropboxFs, FsSettings, MtimeChange, OpenUploads};

/// What must outlive the filesystem: the emulator and the folders it and the spool use.
pub(super) type Keep = (Emulator, TempDir, TempDir);

/// A user jailed in `/home` of a fresh emulator that lists three entries a page; uploads above
/// 64 KiB go through an upload session.
async fn home() -> (DropboxFs, Keep) {
    home_paged(3).await
}

/// As [`home`], with an emulator that lists at most `page_size` entries a page.
pub(super) async fn home_paged(page_size: usize) -> (DropboxFs, Keep) {
    let storage = TempDir::new().unwrap();
    let spool = TempDir::new().unwrap();
    let emulator = Emulator::start(EmulatorConfig {
        root: storage.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        page_size,
        realism: Default::default(),
        distance: Default::default(),
    })
    .await
    .unwrap();
    let endpoints = Endpoints::all(&emulator.base_url()).unwrap();
    let mut options = ClientOptions::new(
        endpoints,
        Credentials::AccessToken(demo::ACCESS_TOKEN.into()),
    );
    options.request_timeout = Duration::from_secs(10);
    let client = DropboxClient::new(options).unwrap();
    let settings = FsSettings {
        upload: Arc::new(UploadSettings {
            spool_dir: spool.path().to_path_buf(),
            single_upload_limit: 64 * 1024,
            chunk_size: 4 * 1024 * 1024,
            connections: 4,
            max_file_size: 1 << 30,
            min_free_space: 0,
        }),
        download: DownloadSettings::default(),
        mtime_change: MtimeChange::Reject,
    };
    let fs = DropboxFs::new(
        client,
        "/home".to_string(),
        Arc::new(settings),
        OpenUploads::default(),
    );
    (fs, (emulator, storage, spool))
}

crate::vfs::contract::vfs_contract!(home);
