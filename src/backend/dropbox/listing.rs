//! Folder listings, page by page: a large folder never sits in memory at once, and the client
//! never waits for more than the page it asked for.
//!
//! A page is handed out as soon as it has arrived; the page after it (`list_folder/continue`)
//! is fetched in the background meanwhile, so the client's work on one page (and the SSH round
//! trips of its READDIRs) overlaps the Dropbox round trip of the next. At most one page is
//! fetched ahead: memory stays at two pages whatever the size of the folder.

use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;

use super::api::{self, DropboxClient, DropboxError, Metadata};
use super::{file_info, map_error};
use crate::vfs::{DirLister, FileInfo, VPath, VfsError, VfsResult};

/// The most entries one page may hold (`files/list_folder`'s `limit`, 1–2000): the fewer the
/// pages, the fewer round trips a large folder costs.
pub(super) const PAGE_LIMIT: u32 = 2000;

/// Pages of a Dropbox folder listing, each handed out at once, the next fetched behind it.
pub struct DropboxLister {
    client: DropboxClient,
    /// The listed folder, for error messages.
    path: VPath,
    next: Next,
}

/// Where the next page comes from.
enum Next {
    /// Already here (the first page, fetched by OPENDIR).
    Ready(api::ListFolderResult),
    /// Being fetched; dropping the lister (CLOSE, disconnect) cancels the fetch.
    Fetching(AbortOnDropHandle<Result<api::ListFolderResult, DropboxError>>),
    /// The listing is complete.
    Done,
    /// A fetch failed: the listing cannot go on, and must not look complete either.
    Failed(String),
}

impl DropboxLister {
    /// Hands out `first` (None: an empty listing), then the pages its cursor leads to.
    pub(super) fn new(
        client: DropboxClient,
        path: VPath,
        first: Option<api::ListFolderResult>,
    ) -> Self {
        DropboxLister {
            client,
            path,
            next: first.map_or(Next::Done, Next::Ready),
        }
    }

    /// The page due now, waiting for its fetch if it has not arrived yet.
    async fn take_page(&mut self) -> VfsResult<Option<api::ListFolderResult>> {
        let fetched = match std::mem::replace(&mut self.next, Next::Done) {
            Next::Done => return Ok(None),
            Next::Ready(page) => return Ok(Some(page)),
            Next::Failed(reason) => return Err(VfsError::Failure(reason)),
            Next::Fetching(fetch) => match fetch.await {
                Ok(fetched) => fetched.map_err(|e| map_error(e, &self.path)),
                Err(stopped) => Err(VfsError::Failure(format!(
                    "{}: the listing's fetch stopped: {stopped}",
                    self.path
                ))),
            },
        };
        if fetched.is_err() {
            self.next = Next::Failed(format!("{}: the listing failed earlier", self.path));
        }
        fetched.map(Some)
    }

    /// Starts fetching the page after `page`, if there is one.
    fn fetch_after(&mut self, page: &api::ListFolderResult) {
        if !page.has_more {
            return;
        }
        let client = self.client.clone();
        let cursor = page.cursor.clone();
        let fetch = async move { client.list_folder_continue(&cursor).await };
        let fetch = tokio::spawn(fetch.in_current_span());
        self.next = Next::Fetching(AbortOnDropHandle::new(fetch));
    }
}

impl DirLister for DropboxLister {
    async fn next_page(&mut self) -> VfsResult<Option<Vec<FileInfo>>> {
        let Some(page) = self.take_page().await? else {
            return Ok(None);
        };
        self.fetch_after(&page);
        let entries = page
            .entries
            .iter()
            .filter(|meta| !matches!(meta, Metadata::Deleted(_)))
            .map(file_info)
            .collect();
        Ok(Some(entries))
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use serde_json::{json, Value};

    use super::*;
    use crate::backend::dropbox::contract::{home_paged, Keep};
    use crate::backend::dropbox::DropboxFs;
    use crate::vfs::Vfs;

    /// `count` folders `d0000`, `d0001`, ... in the home folder.
    async fn make_folders(fs: &DropboxFs, count: usize) {
        use futures::StreamExt;
        futures::stream::iter(0..count)
            .map(|i| async move {
                fs.mkdir(&VPath::parse(&format!("/d{i:04}")).unwrap())
                    .await
                    .unwrap()
            })
            .buffer_unordered(16)
            .collect::<Vec<()>>()
            .await;
    }

    /// Replaces the emulator's fault rules.
    async fn faults(keep: &Keep, rules: Value) {
        let url = format!("{}/__emulator/faults", keep.0.base_url());
        let response = reqwest::Client::new()
            .post(url)
            .json(&json!({ "rules": rules }))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
    }

    async fn names_of(lister: &mut DropboxLister) -> Vec<String> {
        let page = lister.next_page().await.unwrap().unwrap();
        page.into_iter().map(|info| info.name).collect()
    }

    /// Each page is handed out as soon as it is here, and the next is fetched meanwhile: with
    /// every `list_folder/continue` answered after 1 s, the first page costs no continue at all,
    /// and a page asked for 1 s after the one before it is already here.
    #[tokio::test]
    async fn pages_are_handed_out_at_once_and_the_next_is_fetched_behind_them() {
        let (fs, keep) = home_paged(3).await;
        make_folders(&fs, 7).await;
        let slow_continue = json!([{ "kind": "delay_after",
            "route": "files/list_folder/continue", "delay_ms": 1000 }]);
        faults(&keep, slow_continue).await;
        let mut lister = fs.open_dir(&VPath::root()).await.unwrap();

        let asked = Instant::now();
        let mut names = names_of(&mut lister).await;
        assert!(
            asked.elapsed() < Duration::from_millis(500),
            "{:?}",
            asked.elapsed()
        );
        // The client's own work on the first page, during which the second arrives.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let asked = Instant::now();
        names.extend(names_of(&mut lister).await);
        assert!(
            asked.elapsed() < Duration::from_millis(500),
            "{:?}",
            asked.elapsed()
        );
        names.extend(names_of(&mut lister).await);
        assert!(lister.next_page().await.unwrap().is_none());

        names.sort();
        let expected: Vec<String> = (0..7).map(|i| format!("d{i:04}")).collect();
        assert_eq!(names, expected, "every entry once");
    }

    /// A page that cannot be fetched fails the call that needed it, with the folder's name,
    /// and the listing never looks complete after that.
    #[tokio::test]
    async fn a_failed_continue_fails_the_listing_for_good() {
        let (fs, keep) = home_paged(2).await;
        fs.mkdir(&VPath::parse("/box").unwrap()).await.unwrap();
        for name in ["a", "b", "c"] {
            fs.mkdir(&VPath::parse(&format!("/box/{name}")).unwrap())
                .await
                .unwrap();
        }
        let reset = json!([{ "kind": "error", "route": "files/list_folder/continue",
            "status": 409, "body": { "error_summary": "reset/..", "error": { ".tag": "reset" } } }]);
        faults(&keep, reset).await;
        let mut lister = fs.open_dir(&VPath::parse("/box").unwrap()).await.unwrap();

        assert_eq!(names_of(&mut lister).await.len(), 2);
        let error = lister.next_page().await.unwrap_err();
        assert!(matches!(error, VfsError::Failure(_)), "{error:?}");
        assert!(error.to_string().contains("/box"), "{error}");
        assert!(
            lister.next_page().await.is_err(),
            "a failed listing never ends cleanly"
        );
    }

    /// OPENDIR asks for Dropbox's largest page (2000 entries): with an emulator that would
    /// hand out more, the first page holds exactly 2000 of 2001.
    #[tokio::test]
    async fn the_listing_asks_for_pages_of_2000() {
        let (fs, _keep) = home_paged(5000).await;
        make_folders(&fs, 2001).await;
        let mut lister = fs.open_dir(&VPath::root()).await.unwrap();
        assert_eq!(names_of(&mut lister).await.len(), PAGE_LIMIT as usize);
        assert_eq!(names_of(&mut lister).await.len(), 1);
        assert!(lister.next_page().await.unwrap().is_none());
    }
}
