//! Entry points for the fuzz targets in `fuzz/` (feature `testing`). Not a stable API.

use super::dispatch::{self, Route};
use super::framing;
use crate::vfs::VPath;

/// What [`decode_stream`] read before the stream ended or a packet ended the session.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// INIT packets, and whether the stream started with one.
    pub inits: usize,
    pub starts_with_init: bool,
    /// The ids of every other packet in order, each owed exactly one reply: the requests the
    /// dispatcher routes and the packet types it answers with OP_UNSUPPORTED.
    pub ids: Vec<u32>,
}

/// Reads `stream` as a client's byte stream: packet after packet through the session's framing
/// and decoder, each request routed as the dispatcher would route it, and every path it names
/// resolved in the jail. Returns `Ok` at the end of the stream, `Err` at the first packet that
/// would end a session. Never panics, whatever the bytes; the fuzz targets check that.
pub fn decode_stream(stream: &[u8]) -> anyhow::Result<Decoded> {
    let mut reader = stream;
    let mut decoded = Decoded::default();
    // Reading from a slice never waits, so a trivial executor is enough.
    futures::executor::block_on(async {
        while let Some(incoming) = framing::read_packet(&mut reader).await? {
            let first = decoded.inits == 0 && decoded.ids.is_empty();
            let id = match dispatch::route(incoming)? {
                Route::Init => {
                    decoded.inits += 1;
                    decoded.starts_with_init |= first;
                    continue;
                }
                Route::Path { id, request } => {
                    for path in request.paths() {
                        // A path either resolves inside the jail or is refused.
                        let _ = VPath::parse(path);
                    }
                    id
                }
                Route::Open { id, .. }
                | Route::Handle { id, .. }
                | Route::Copy { id, .. }
                | Route::Unsupported { id, .. } => id,
            };
            decoded.ids.push(id);
        }
        Ok(decoded)
    })
}
