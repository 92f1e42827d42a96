//! A raw SFTP client for tests: hand-built packets over an in-memory duplex stream, replies read
//! back whole, so edge cases (pipelining, bad packets) can be sent exactly.

use std::collections::HashMap;

use bytes::Bytes;
use russh_sftp::protocol::{
    Close, Data, Extended, FileAttributes, Handle, Init, Name, Open, OpenFlags, Packet, Read,
    Status, StatusCode, Write,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::task::JoinHandle;

use super::memfs::MemFs;
use crate::sftp::{serve, SessionLimits};

pub struct Raw {
    pub stream: DuplexStream,
}

/// Starts a session on `fs`; returns the client end and the session's result.
pub fn start(fs: MemFs, limits: SessionLimits) -> (Raw, JoinHandle<anyhow::Result<()>>) {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let session = tokio::spawn(serve(server, fs, limits));
    (Raw { stream: client }, session)
}

/// Starts a session and completes INIT.
pub async fn connect(fs: MemFs) -> (Raw, JoinHandle<anyhow::Result<()>>) {
    let (mut raw, session) = start(fs, SessionLimits::default());
    raw.send(Init::new().into()).await;
    assert!(matches!(raw.recv().await, Packet::Version(_)));
    (raw, session)
}

impl Raw {
    pub async fn send(&mut self, packet: Packet) {
        let bytes = Bytes::try_from(packet).unwrap();
        self.send_bytes(&bytes).await;
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next reply and its size on the wire (length field included).
    pub async fn recv_sized(&mut self) -> (Packet, usize) {
        let len = self.stream.read_u32().await.unwrap();
        let mut body = vec![0u8; len as usize];
        self.stream.read_exact(&mut body).await.unwrap();
        let packet = Packet::try_from(&mut Bytes::from(body)).unwrap();
        (packet, len as usize + 4)
    }

    pub async fn recv(&mut self) -> Packet {
        self.recv_sized().await.0
    }

    /// Sends one request and returns its reply (no other requests outstanding).
    pub async fn call(&mut self, packet: Packet) -> Packet {
        self.send(packet).await;
        self.recv().await
    }

    pub async fn open(&mut self, id: u32, path: &str, flags: OpenFlags) -> Result<String, Status> {
        let open = Open {
            id,
            filename: path.into(),
            pflags: flags,
            attrs: FileAttributes::empty(),
        };
        match self.call(open.into()).await {
            Packet::Handle(Handle { handle, .. }) => Ok(handle),
            other => Err(status(other)),
        }
    }

    pub async fn close(&mut self, id: u32, handle: &str) -> Status {
        status(
            self.call(
                Close {
                    id,
                    handle: handle.into(),
                }
                .into(),
            )
            .await,
        )
    }

    /// Sends every write before reading any reply, as OpenSSH does with 64 in flight.
    pub async fn pipelined_writes(&mut self, handle: &str, data: &[u8], chunk: usize) {
        let mut ids = Vec::new();
        for (i, piece) in data.chunks(chunk).enumerate() {
            let id = 1000 + i as u32;
            ids.push(id);
            let write = Write {
                id,
                handle: handle.into(),
                offset: (i * chunk) as u64,
                data: piece.to_vec(),
            };
            self.send(write.into()).await;
        }
        for _ in &ids {
            let reply = status(self.recv().await);
            assert_eq!(reply.status_code, StatusCode::Ok, "{reply:?}");
        }
    }

    /// Sends every read before reading any reply; returns the data by offset.
    pub async fn pipelined_reads(&mut self, handle: &str, len: u64, chunk: u32) -> Vec<u8> {
        let mut offsets = HashMap::new();
        for (i, offset) in (0..len).step_by(chunk as usize).enumerate() {
            let id = 5000 + i as u32;
            offsets.insert(id, offset);
            let read = Read {
                id,
                handle: handle.into(),
                offset,
                len: chunk,
            };
            self.send(read.into()).await;
        }
        let mut out = vec![0u8; len as usize];
        for _ in 0..offsets.len() {
            let Packet::Data(Data { id, data }) = self.recv().await else {
                panic!("expected DATA");
            };
            let offset = offsets.remove(&id).expect("a reply per request") as usize;
            out[offset..offset + data.len()].copy_from_slice(&data);
        }
        out
    }

    pub async fn extended(&mut self, id: u32, request: &str, data: Vec<u8>) -> Packet {
        let extended = Extended {
            id,
            request: request.into(),
            data,
        };
        self.call(extended.into()).await
    }
}

pub fn status(packet: Packet) -> Status {
    match packet {
        Packet::Status(status) => status,
        other => panic!("expected STATUS, got {other:?}"),
    }
}

/// An SSH string.
pub fn ssh_string(s: &str) -> Vec<u8> {
    let mut out = (s.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(s.as_bytes());
    out
}

pub fn write_flags() -> OpenFlags {
    OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE
}

pub fn names(packet: Packet) -> Vec<String> {
    let Packet::Name(Name { files, .. }) = packet else {
        panic!("expected NAME, got {packet:?}");
    };
    files.into_iter().map(|f| f.filename).collect()
}
