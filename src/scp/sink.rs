//! `scp -t`: the client uploads, we receive.
//!
//! Each file goes through the vfs the way an SFTP upload does (open_write, write, commit), so
//! permissions, audit, spool and the verified commit apply unchanged. The client's file is
//! acknowledged only once the commit has succeeded: an acknowledged file is in Dropbox. A file
//! that fails anywhere is answered with an error the client prints, and its writer is dropped,
//! which stores nothing. Its remaining content is still read, so the next record is found.

use bytes::Bytes;
use tokio::io::{AsyncBufRead, AsyncWrite};
use tracing::Instrument;

use super::wire::{Ack, Broken, Record, WireResult};
use super::Transfer;
use crate::vfs::{FileWriter, VPath, Vfs, VfsError, VfsResult, WriteOptions};

/// How much content goes to the writer at a time.
const CHUNK: usize = 256 * 1024;

/// Where the next file or folder lands: inside a folder, or at the target path itself.
#[derive(Clone)]
enum Place {
    Inside(VPath),
    At(VPath),
}

impl Place {
    fn of(&self, name: &[u8]) -> VfsResult<VPath> {
        let name = component(name)?;
        match self {
            Place::Inside(folder) => folder.join(name),
            Place::At(path) => Ok(path.clone()),
        }
    }
}

/// A name in a C or D record must be one path component: scp sends names, never paths, and
/// anything else would let a client place a file where its command did not say.
fn component(name: &[u8]) -> VfsResult<&str> {
    let name = std::str::from_utf8(name).map_err(|_| {
        VfsError::InvalidPath(
            "the name is not valid UTF-8; Dropbox stores UTF-8 names only".to_string(),
        )
    })?;
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(VfsError::InvalidPath(format!(
            "{name:?}: not a file name (scp must send one path component)"
        )));
    }
    Ok(name)
}

impl<F, R, W> Transfer<'_, F, R, W>
where
    F: Vfs,
    R: AsyncBufRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    /// Receives everything the client sends into `target`.
    pub(super) async fn receive(&mut self, target: VPath) -> WireResult<()> {
        let top = match self.target_place(&target).await {
            Ok(place) => place,
            Err(error) => return self.refuse(&target, &error).await,
        };
        self.link.send_ok().await?;
        // The folders entered with D records, innermost last.
        let mut folders: Vec<VPath> = Vec::new();
        let mut mtime = None;
        loop {
            let place = folders.last().cloned().map_or(top.clone(), Place::Inside);
            let Some(record) = self.link.read_record().await? else {
                if folders.is_empty() {
                    return Ok(());
                }
                return Err(Broken::Io(std::io::ErrorKind::UnexpectedEof.into()));
            };
            match record {
                Record::Times { mtime: time } => {
                    mtime = Some(time);
                    self.link.send_ok().await?;
                }
                Record::File { size, name } => {
                    let path = place.of(&name);
                    self.receive_file(path, size, mtime.take()).await?;
                }
                Record::Folder { name } => {
                    mtime = None;
                    if let Some(folder) = self.enter_folder(place.of(&name)).await? {
                        folders.push(folder);
                    }
                }
                Record::EndFolder => {
                    if folders.pop().is_none() {
                        return Err(Broken::Protocol("E outside a folder".to_string()));
                    }
                    self.link.send_ok().await?;
                }
                // The client could not read one of its files; it says so itself and goes on.
                Record::Warning(message) => {
                    self.failed = true;
                    tracing::info!(message = %crate::log_safe::Untrusted(&message), "scp client reported an error");
                }
                Record::Fatal(message) => return Err(Broken::ClientGaveUp(message)),
            }
        }
    }

    /// An existing folder takes the files inside; anything else is the one file's own path,
    /// unless the client said there are several (`-d`).
    async fn target_place(&self, target: &VPath) -> VfsResult<Place> {
        let is_folder = match self.fs.stat(target).await {
            Ok(info) => info.is_dir(),
            Err(VfsError::NotFound(_)) => false,
            Err(error) => return Err(error),
        };
        if is_folder {
            Ok(Place::Inside(target.clone()))
        } else if self.command.target_must_be_folder {
            Err(VfsError::NotFound(format!("{target}: not a folder")))
        } else {
            Ok(Place::At(target.clone()))
        }
    }

    /// One C record and its content.
    async fn receive_file(
        &mut self,
        path: VfsResult<VPath>,
        size: u64,
        mtime: Option<i64>,
    ) -> WireResult<()> {
        let path = match path {
            Ok(path) => path,
            Err(error) => return self.refuse_name(&error).await,
        };
        let options = WriteOptions {
            truncate: true,
            ..WriteOptions::default()
        };
        let writer = match self.fs.open_write(&path, options).await {
            Ok(writer) => writer,
            // Refused before the content: the client does not send it.
            Err(error) => return self.refuse(&path, &error).await,
        };
        self.link.send_ok().await?;
        let mut upload = Ok(writer);
        self.take_content(&mut upload, size).await?;
        match self.link.read_ack().await? {
            Ack::Ok => {}
            Ack::Error(message) => {
                upload = Err(VfsError::Failure(format!(
                    "the client could not send the whole file ({message}); nothing was stored"
                )));
            }
            Ack::Fatal(message) => return Err(Broken::ClientGaveUp(message)),
        }
        let stored = match upload {
            Ok(mut writer) => {
                if let Some(mtime) = mtime.filter(|_| self.command.preserve_times) {
                    writer.set_mtime(mtime);
                }
                commit(writer).await
            }
            Err(error) => Err(error),
        };
        match stored {
            Ok(()) => self.link.send_ok().await,
            Err(error) => self.refuse(&path, &error).await,
        }
    }

    /// Reads `size` bytes of content into the upload. A failed write replaces the writer with
    /// its error (dropped uncommitted, it stores nothing and gives its spool back at once); the
    /// rest is still read, and dropped, so that the next record is where the client puts it.
    async fn take_content(
        &mut self,
        upload: &mut VfsResult<F::Writer>,
        size: u64,
    ) -> WireResult<()> {
        let mut offset = 0u64;
        while offset < size {
            let len = (size - offset).min(CHUNK as u64) as usize;
            let mut buf = vec![0u8; len];
            self.link.read_content(&mut buf).await?;
            if let Ok(writer) = upload {
                if let Err(error) = writer.write(offset, Bytes::from(buf)).await {
                    *upload = Err(error);
                }
            }
            offset += len as u64;
        }
        Ok(())
    }

    /// A D record: the folder is created unless it exists. `None` if refused (the client then
    /// skips the folder's content).
    async fn enter_folder(&mut self, path: VfsResult<VPath>) -> WireResult<Option<VPath>> {
        let path = match path {
            Ok(path) => path,
            Err(error) => return self.refuse_name(&error).await.map(|()| None),
        };
        let made = if self.command.recursive {
            self.make_folder(&path).await
        } else {
            Err(VfsError::Unsupported(
                "received a folder without -r".to_string(),
            ))
        };
        match made {
            Ok(()) => {
                self.link.send_ok().await?;
                Ok(Some(path))
            }
            Err(error) => {
                self.refuse(&path, &error).await?;
                Ok(None)
            }
        }
    }

    async fn make_folder(&self, path: &VPath) -> VfsResult<()> {
        match self.fs.stat(path).await {
            Ok(info) if info.is_dir() => Ok(()),
            Ok(_) => Err(VfsError::AlreadyExists(format!(
                "{path}: a file of that name exists"
            ))),
            Err(VfsError::NotFound(_)) => self.fs.mkdir(path).await,
            Err(error) => Err(error),
        }
    }

    /// A record whose name is refused: the message names it.
    async fn refuse_name(&mut self, error: &VfsError) -> WireResult<()> {
        self.refuse_text(&error.to_string()).await
    }
}

/// The commit runs on a task of its own, which the end of the channel does not abort: the
/// client has handed over the whole file, so a disconnect now must neither cut the commit off
/// halfway nor lose the file (as for an SFTP CLOSE).
async fn commit<W: FileWriter>(writer: W) -> VfsResult<()> {
    tokio::spawn(writer.commit().in_current_span())
        .await
        .map_err(|e| VfsError::Failure(format!("the commit stopped unexpectedly: {e}")))?
        .map(drop)
}
