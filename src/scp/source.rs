//! `scp -f`: the client downloads, we send.
//!
//! Files are read through the vfs reader (so the "download" permission and the audit log apply)
//! and folders listed page by page with open_dir/next_page, depth first with one open listing
//! per level, so a large tree never sits in memory at once. What cannot be sent (a missing
//! path, a folder without `-r`, a refused read) is an error line the client prints; the rest of
//! the transfer goes on.

use std::collections::VecDeque;

use tokio::io::{AsyncBufRead, AsyncWrite};

use super::wire::{self, Ack, Broken, WireResult};
use super::Transfer;
use crate::vfs::{DirLister, FileInfo, FileReader, VPath, Vfs, VfsError, VfsResult};

/// How much is read from the backend at a time.
const CHUNK: u32 = 256 * 1024;

/// A folder being sent: its listing and the entries of the current page not sent yet.
struct Level<L> {
    path: VPath,
    lister: L,
    pending: VecDeque<FileInfo>,
}

impl<F, R, W> Transfer<'_, F, R, W>
where
    F: Vfs,
    R: AsyncBufRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    /// Sends each path; the client first says it is ready.
    pub(super) async fn send(&mut self, paths: &[String]) -> WireResult<()> {
        self.expect_ack().await?;
        for path in paths {
            match super::resolve(path) {
                Ok(path) => self.send_path(&path).await?,
                Err(error) => self.refuse_text(&format!("{path}: {error}")).await?,
            }
        }
        Ok(())
    }

    async fn send_path(&mut self, path: &VPath) -> WireResult<()> {
        match self.fs.stat(path).await {
            Ok(info) if info.is_dir() => self.send_tree(path, &info).await,
            Ok(_) => self.send_file(path).await,
            Err(error) => self.refuse(path, &error).await,
        }
    }

    /// A file: (T), C, its content, a status byte; each answered by the client.
    async fn send_file(&mut self, path: &VPath) -> WireResult<()> {
        let mut reader = match self.fs.open_read(path).await {
            Ok(reader) => reader,
            Err(error) => return self.refuse(path, &error).await,
        };
        let info = reader.stat();
        let Some(name) = self.sendable_name(path, &info).await? else {
            return Ok(());
        };
        if !self.send_times(&info).await? {
            return Ok(());
        }
        self.link
            .send_record(&wire::file_record(info.size, &name))
            .await?;
        if !self.expect_ack().await? {
            return Ok(());
        }
        match self.send_content(&mut reader, info.size).await? {
            Ok(()) => self.link.send_ok().await?,
            // The content went out padded to its announced size; this line tells the client
            // the file is not what it should be.
            Err(error) => self.refuse(path, &error).await?,
        }
        self.expect_ack().await?;
        Ok(())
    }

    /// Exactly `size` bytes: a read that fails or ends early is padded with zeros so the
    /// client stays in step, and its error is returned.
    async fn send_content(
        &mut self,
        reader: &mut F::Reader,
        size: u64,
    ) -> WireResult<VfsResult<()>> {
        let mut offset = 0u64;
        while offset < size {
            let want = (size - offset).min(u64::from(CHUNK)) as u32;
            let read = match reader.read(offset, want).await {
                Ok(data) if data.is_empty() => Err(VfsError::Failure(
                    "the file ended before its size; it changed while being read".to_string(),
                )),
                other => other,
            };
            match read {
                Ok(data) => {
                    let data = &data[..data.len().min(want as usize)];
                    self.link.send_content(data).await?;
                    offset += data.len() as u64;
                }
                Err(error) => {
                    self.pad(size - offset).await?;
                    return Ok(Err(error));
                }
            }
        }
        Ok(Ok(()))
    }

    async fn pad(&mut self, mut missing: u64) -> WireResult<()> {
        let zeros = vec![0u8; CHUNK as usize];
        while missing > 0 {
            let len = missing.min(CHUNK as u64) as usize;
            self.link.send_content(&zeros[..len]).await?;
            missing -= len as u64;
        }
        Ok(())
    }

    /// A folder: without `-r` an error; with it D, everything inside depth first, E.
    async fn send_tree(&mut self, path: &VPath, info: &FileInfo) -> WireResult<()> {
        if !self.command.recursive {
            let error = VfsError::Unsupported(format!("{path}: not a regular file"));
            return self.refuse(path, &error).await;
        }
        let mut levels = match self.enter(path, info).await? {
            Some(level) => vec![level],
            None => return Ok(()),
        };
        while let Some(level) = levels.last_mut() {
            let Some(entry) = level.pending.pop_front() else {
                match level.lister.next_page().await {
                    Ok(Some(page)) => level.pending.extend(page),
                    Ok(None) => self.leave(&mut levels).await?,
                    Err(error) => {
                        let path = level.path.clone();
                        self.refuse(&path, &error).await?;
                        self.leave(&mut levels).await?;
                    }
                }
                continue;
            };
            let child = match level.path.join(&entry.name) {
                Ok(child) => child,
                Err(error) => {
                    let path = level.path.clone();
                    self.refuse(&path, &error).await?;
                    continue;
                }
            };
            if entry.is_dir() {
                if let Some(inner) = self.enter(&child, &entry).await? {
                    levels.push(inner);
                }
            } else {
                self.send_file(&child).await?;
            }
        }
        Ok(())
    }

    /// Lists the folder, then (T) and D; `None` if it cannot be sent or the client refused it.
    async fn enter(
        &mut self,
        path: &VPath,
        info: &FileInfo,
    ) -> WireResult<Option<Level<F::Lister>>> {
        let lister = match self.fs.open_dir(path).await {
            Ok(lister) => lister,
            Err(error) => {
                self.refuse(path, &error).await?;
                return Ok(None);
            }
        };
        let Some(name) = self.sendable_name(path, info).await? else {
            return Ok(None);
        };
        if !self.send_times(info).await? {
            return Ok(None);
        }
        self.link.send_record(&wire::folder_record(&name)).await?;
        if !self.expect_ack().await? {
            return Ok(None);
        }
        Ok(Some(Level {
            path: path.clone(),
            lister,
            pending: VecDeque::new(),
        }))
    }

    async fn leave(&mut self, levels: &mut Vec<Level<F::Lister>>) -> WireResult<()> {
        levels.pop();
        self.link.send_record(wire::END_FOLDER).await?;
        self.expect_ack().await?;
        Ok(())
    }

    /// With `-p`, the T record before a C or D; false if the client refused it.
    async fn send_times(&mut self, info: &FileInfo) -> WireResult<bool> {
        if !self.command.preserve_times {
            return Ok(true);
        }
        let mtime = info.mtime.unwrap_or_else(|| chrono::Utc::now().timestamp());
        self.link.send_record(&wire::times_record(mtime)).await?;
        self.expect_ack().await
    }

    /// The name as a record carries it: a name with a line break would end the record early,
    /// so such an entry is refused instead. The root's name is "/" here; it goes as its own.
    async fn sendable_name(&mut self, path: &VPath, info: &FileInfo) -> WireResult<Option<String>> {
        let name = if path.is_root() {
            "home"
        } else {
            info.name.as_str()
        };
        if name.contains(['\n', '\r']) {
            let error = VfsError::InvalidPath(format!(
                "{path}: the name holds a line break, which scp cannot carry"
            ));
            self.refuse(path, &error).await?;
            return Ok(None);
        }
        Ok(Some(name.to_string()))
    }

    /// The client's answer: true if it went on, false if it refused (it printed why).
    async fn expect_ack(&mut self) -> WireResult<bool> {
        match self.link.read_ack().await? {
            Ack::Ok => Ok(true),
            Ack::Error(message) => {
                self.failed = true;
                tracing::info!(message = %crate::log_safe::Untrusted(&message), "scp client refused");
                Ok(false)
            }
            Ack::Fatal(message) => Err(Broken::ClientGaveUp(message)),
        }
    }
}
