//! Dropbox HTTP API v2 client: the only part of dropgate that speaks to Dropbox.
//!
//! The vfs layer calls [`DropboxClient`]; nothing here knows about SFTP. Inside:
//! [`options`] (configuration), `request` (the one place requests are built), `transport`
//! (tokens, timeouts, logging; each request's outcome goes into [`health`]), [`retry`] (the one place that decides what is sent again),
//! [`body`] (upload bodies that can be made again for a retry), `watchdog` (uploads never
//! hang), `checked` (every change to Dropbox, tried again only after a look at what the
//! last try did), `concurrent_append` (a piece of a concurrent upload session, repeated
//! safely after a lost answer), `batch` (file commits that meet, committed together), `lag` (a path written just now
//! that Dropbox does not find yet), `auth` (access tokens from
//! refresh tokens), [`error`] (the one place failures are decoded), [`types`] and [`upload_args`] (the spec's data types),
//! [`arg`] (the `Dropbox-API-Arg` header encoding), [`content_hash`](mod@content_hash), [`time`] (timestamps),
//! [`download`] (ranges and streamed bodies), `secret` (keeping secrets out of text) and
//! [`oauth`] (the authorize URL and the code exchange of `dropgate auth`).
//! Facts about the API come from the Stone spec (dropbox/dropbox-api-spec); the ones this
//! client relies on are collected in `docs/dropbox-api.md`.

pub mod arg;
mod auth;
mod batch;
pub mod body;
mod checked;
pub mod client;
mod concurrent_append;
pub mod content_hash;
pub mod download;
pub mod error;
pub mod health;
mod lag;
pub mod oauth;
pub mod options;
mod request;
pub mod retry;
mod secret;
pub mod time;
mod transport;
pub mod types;
pub mod upload_args;
mod watchdog;

pub use arg::to_header_json;
pub use batch::{CommitInFlight, MAX_BATCH};
pub use body::{BodyFactory, UploadBody};
pub use client::DropboxClient;
pub use content_hash::{content_hash, ContentHasher};
pub use download::{ByteRange, ContentRange, Download};
pub use error::DropboxError;
pub use health::Health;
pub use options::{ClientOptions, Credentials, Endpoints, NO_PROXY};
pub use retry::{retries_made, RetryPolicy, DEFAULT_RATE_LIMIT_WAIT};
pub use secret::{scrub, Secret};
pub use time::{parse_timestamp, timestamp};
pub use types::{
    DeletedMetadata, FileMetadata, FolderMetadata, FullAccount, ListFolderResult, Metadata, Name,
    RootInfo, SpaceAllocation, SpaceUsage,
};
pub use upload_args::{
    CommitInfo, SessionType, UploadArg, UploadSessionAppendArg, UploadSessionCursor,
    UploadSessionFinishArg, UploadSessionStartArg, WriteMode,
};

#[cfg(test)]
mod tests;
