//! Folder listings, page by page: a large folder never sits in memory at once.

use super::api::{self, DropboxClient, Metadata};
use super::{file_info, map_error};
use crate::vfs::{DirLister, FileInfo, VPath, VfsResult};

/// Pages of a Dropbox folder listing, fetched one at a time as the client reads them.
pub struct DropboxLister {
    client: DropboxClient,
    /// The page to hand out next; its cursor leads to the one after.
    pending: Option<api::ListFolderResult>,
}

impl DropboxLister {
    /// Hands out `first` (None: an empty listing), then the pages its cursor leads to.
    pub(super) fn new(client: DropboxClient, first: Option<api::ListFolderResult>) -> Self {
        DropboxLister {
            client,
            pending: first,
        }
    }
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
