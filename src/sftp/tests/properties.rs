//! Property tests: hostile packets and paths. Random packets (any type byte, any declared length,
//! truncated bodies, lengths past 256 KiB) never panic the decoder and either decode or give a
//! clean error; a session fed random packets always ends; no path spelling leaves the jail.
//! The fuzz targets in `fuzz/` explore the same ground without a time limit.

use bytes::Bytes;
use proptest::prelude::*;
use russh_sftp::protocol::{
    Close, FileAttributes, Init, Open, OpenFlags, Packet, Read, RealPath, Stat, Write,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::memfs::MemFs;
use crate::sftp::framing::{read_packet, Incoming, MAX_PACKET_LEN};
use crate::sftp::{serve, SessionLimits};
use crate::vfs::VPath;

/// Reads one packet the way a session does.
fn read_one(stream: &[u8]) -> anyhow::Result<Option<Incoming>> {
    let mut reader = stream;
    futures::executor::block_on(read_packet(&mut reader))
}

fn framed(body: &[u8], declared: u32) -> Vec<u8> {
    let mut out = declared.to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// A request packet with random fields, as a client might build it.
fn request() -> impl Strategy<Value = Packet> {
    let path = ".{0,40}";
    prop_oneof![
        any::<u32>().prop_map(|version| Init {
            version,
            extensions: Default::default()
        }
        .into()),
        (any::<u32>(), path).prop_map(|(id, path)| Stat { id, path }.into()),
        (any::<u32>(), path).prop_map(|(id, path)| RealPath { id, path }.into()),
        (any::<u32>(), path, any::<u32>(), any::<Option<u64>>()).prop_map(
            |(id, filename, flags, size)| Open {
                id,
                filename,
                pflags: OpenFlags::from_bits_truncate(flags),
                attrs: FileAttributes {
                    size,
                    ..FileAttributes::empty()
                },
            }
            .into()
        ),
        (any::<u32>(), "[0-9]{1,3}", any::<u64>(), any::<u32>()).prop_map(
            |(id, handle, offset, len)| Read {
                id,
                handle,
                offset,
                len
            }
            .into()
        ),
        (
            any::<u32>(),
            "[0-9]{1,3}",
            0u64..4096,
            prop::collection::vec(any::<u8>(), 0..512)
        )
            .prop_map(|(id, handle, offset, data)| Write {
                id,
                handle,
                offset,
                data
            }
            .into()),
        (any::<u32>(), "[0-9]{1,3}").prop_map(|(id, handle)| Close { id, handle }.into()),
    ]
}

/// The packet body (type byte onwards) of an encoded request.
fn body_of(packet: Packet) -> Vec<u8> {
    Bytes::try_from(packet).unwrap()[4..].to_vec()
}

proptest! {
    /// Any type byte, any body, a length that matches: a request, an unsupported type with its
    /// id, or an error. Never a panic.
    #[test]
    fn random_packets_decode_or_fail_cleanly(
        packet_type in any::<u8>(),
        payload in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut body = vec![packet_type];
        body.extend_from_slice(&payload);
        match read_one(&framed(&body, body.len() as u32)) {
            Ok(Some(Incoming::Unsupported { id, packet_type: t })) => {
                prop_assert_eq!(t, packet_type);
                prop_assert_eq!(&id.to_be_bytes()[..], &payload[..4]);
            }
            Ok(Some(Incoming::Write(write))) => {
                prop_assert_eq!(packet_type, 6);
                prop_assert_eq!(&write.id.to_be_bytes()[..], &payload[..4]);
            }
            Ok(Some(Incoming::Request(_))) | Err(_) => {}
            Ok(None) => prop_assert!(false, "a whole packet read as the end of the stream"),
        }
    }

    /// A declared length that disagrees with the bytes that follow: shorter bodies are a
    /// truncated stream (error), longer ones decode the declared prefix or fail. Never a panic.
    #[test]
    fn declared_lengths_that_lie_never_panic(
        packet in request(),
        declared in 0u32..600,
    ) {
        let body = body_of(packet);
        let result = read_one(&framed(&body, declared));
        if declared as usize > body.len() || declared == 0 {
            prop_assert!(result.is_err());
        }
    }

    /// A valid request cut short anywhere, its length field fixed to match: decodes (some
    /// trailing fields are optional) or fails cleanly; the same cut without fixing the length is
    /// a stream that ended mid-packet.
    #[test]
    fn truncated_bodies_never_panic(packet in request(), cut in any::<prop::sample::Index>()) {
        let body = body_of(packet);
        let keep = cut.index(body.len());
        let _ = read_one(&framed(&body[..keep], keep as u32));
        prop_assert!(read_one(&framed(&body[..keep], body.len() as u32)).is_err());
    }

    /// Whole requests round-trip through the codec and keep their type; WRITE, decoded by the
    /// framing itself, keeps every field the codec encoded.
    #[test]
    fn valid_requests_decode(packet in request()) {
        let expected = match &packet {
            Packet::Write(w) => Some((w.id, w.handle.clone(), w.offset, w.data.clone())),
            _ => None,
        };
        let body = body_of(packet);
        let incoming = read_one(&framed(&body, body.len() as u32));
        match (incoming, expected) {
            (Ok(Some(Incoming::Write(w))), Some(expected)) => {
                prop_assert_eq!((w.id, w.handle, w.offset, w.data.to_vec()), expected);
            }
            (Ok(Some(Incoming::Request(_))), None) => {}
            (other, _) => prop_assert!(false, "{:?}", other),
        }
    }

    /// A length past the limit is refused before the body is read (no allocation of the
    /// declared size), however much or little follows.
    #[test]
    fn oversized_lengths_are_refused(
        declared in (MAX_PACKET_LEN + 1)..=u32::MAX,
        tail in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let error = read_one(&framed(&tail, declared)).unwrap_err();
        prop_assert!(error.to_string().contains("limit"), "{:#}", error);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Bodies really longer than 256 KiB (a WRITE carrying too much data): a body up to the
    /// limit decodes, one past it is refused.
    #[test]
    fn writes_around_the_limit(extra in 0usize..2048) {
        let header = body_of(Write { id: 1, handle: "1".into(), offset: 0, data: Vec::new() }.into());
        let data_len = MAX_PACKET_LEN as usize - header.len() - 1024 + extra;
        let body = body_of(Write { id: 1, handle: "1".into(), offset: 0, data: vec![7; data_len] }.into());
        let result = read_one(&framed(&body, body.len() as u32));
        if body.len() <= MAX_PACKET_LEN as usize {
            prop_assert!(matches!(result, Ok(Some(Incoming::Write(w))) if w.data.len() == data_len));
        } else {
            prop_assert!(result.is_err());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// A whole session of random packets (valid, cut short or garbage) after INIT: `serve`
    /// returns once the client closes, without a panic, having answered or refused each one.
    #[test]
    fn random_sessions_always_end(
        packets in prop::collection::vec(
            prop_oneof![
                3 => request().prop_map(|p| Bytes::try_from(p).unwrap().to_vec()),
                1 => prop::collection::vec(any::<u8>(), 0..40),
            ],
            0..12,
        ),
        in_flight in 1usize..4,
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let result = runtime.block_on(async move {
            let fs = MemFs::new();
            fs.add_file("/f", b"data", 1);
            let limits = SessionLimits { max_in_flight: in_flight, max_handles: 2, ..SessionLimits::default() };
            let (client, server) = tokio::io::duplex(16 * 1024);
            let session = tokio::spawn(serve(server, fs, limits));
            let (mut rx, mut tx) = tokio::io::split(client);
            let send = async move {
                let mut stream = Bytes::try_from(Packet::from(Init::new())).unwrap().to_vec();
                stream.extend(packets.concat());
                if tx.write_all(&stream).await.is_ok() {
                    let _ = tx.shutdown().await;
                }
            };
            let drain = async move {
                let mut sink = Vec::new();
                let _ = rx.read_to_end(&mut sink).await;
            };
            let bounded = tokio::time::timeout(std::time::Duration::from_secs(20), async {
                let ((), (), result) = tokio::join!(send, drain, session);
                result
            });
            bounded.await
        });
        let joined = result.expect("serve did not return after the client closed");
        prop_assert!(joined.is_ok(), "serve panicked: {:?}", joined);
    }
}

/// Path pieces a hostile client would try.
fn path_part() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("..".to_string()),
        Just(".".to_string()),
        Just(String::new()),
        Just("...".to_string()),
        Just(" ".to_string()),
        Just("a ".to_string()),
        "[a-z]{1,3}",
        "\\PC{1,8}",
        "x{250,260}",
    ]
}

fn hostile_path() -> impl Strategy<Value = String> {
    (any::<bool>(), prop::collection::vec(path_part(), 0..12)).prop_map(|(absolute, parts)| {
        let joined = parts.join("/");
        if absolute {
            format!("/{joined}")
        } else {
            joined
        }
    })
}

/// The jail's invariants for a parsed path.
fn check_jailed(input: &str, path: &VPath) -> Result<(), TestCaseError> {
    let shown = path.to_string();
    prop_assert!(shown.starts_with('/'), "{:?} → {:?}", input, shown);
    for part in path.components() {
        prop_assert!(
            !part.is_empty() && part != "." && part != "..",
            "{:?} → {:?}",
            input,
            shown
        );
        prop_assert!(!part.contains('/') && !part.contains('\0'));
        prop_assert!(unicode_normalization::is_nfc(part), "{:?} is not NFC", part);
    }
    // Normal form: parsing what it shows gives it back.
    prop_assert_eq!(&VPath::parse(&shown).unwrap(), path);
    Ok(())
}

/// What the jail should make of `input`: `..` pops, but never above the root; names in NFC.
fn expected_components(input: &str) -> Vec<String> {
    let mut parts = Vec::new();
    for part in input.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            name => parts.push(unicode_normalization::UnicodeNormalization::nfc(name).collect()),
        }
    }
    parts
}

proptest! {
    #[test]
    fn any_string_stays_in_the_jail(input in any::<String>()) {
        if let Ok(path) = VPath::parse(&input) {
            check_jailed(&input, &path)?;
        }
        if input.contains('\0') {
            prop_assert!(VPath::parse(&input).is_err());
        }
    }

    #[test]
    fn dot_dot_chains_never_leave_the_root(input in hostile_path()) {
        match VPath::parse(&input) {
            Ok(path) => {
                check_jailed(&input, &path)?;
                let expected = expected_components(&input);
                prop_assert_eq!(path.components().collect::<Vec<_>>(), expected);
            }
            Err(_) => {
                // Refused only for a reason the jail names: bytes that were not UTF-8 (the
                // codec's replacement character). Name lengths are the backend's rule.
                prop_assert!(
                    input.contains(char::REPLACEMENT_CHARACTER),
                    "{:?}",
                    input
                );
            }
        }
    }

    #[test]
    fn joining_a_hostile_name_stays_in_the_jail(base in hostile_path(), name in hostile_path()) {
        if let Ok(base) = VPath::parse(&base) {
            if let Ok(path) = base.join(&name) {
                check_jailed(&name, &path)?;
            }
        }
    }
}
