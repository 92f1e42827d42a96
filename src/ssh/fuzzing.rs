//! Entry points for the fuzz targets in `fuzz/` (feature `testing`), also run by this crate's
//! property tests. Not a stable API. Each panics only if an invariant breaks, whatever the
//! input.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::proxy_protocol;
use crate::users::authorized_keys::{split_options, AuthorizedKey};

/// Reads `bytes` as the start of a connection from a trusted load balancer. A header that is
/// accepted was consumed exactly, and nothing after it: a v1 line of at most 107 bytes ending
/// in CRLF, or a v2 header of 16 bytes plus the length its header states.
pub fn proxy_header(bytes: &[u8]) {
    let mut rest = bytes;
    let result = futures::executor::block_on(proxy_protocol::read_header(&mut rest));
    let consumed = bytes.len() - rest.len();
    if result.is_err() {
        return;
    }
    if bytes.starts_with(b"PROXY ") {
        assert!(consumed <= 107, "a v1 line of {consumed} bytes");
        assert!(bytes[..consumed].ends_with(b"\r\n"));
    } else {
        let stated = usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
        assert_eq!(consumed, 16 + stated, "a v2 header read past its length");
    }
}

/// Parses `line` as an authorized_keys line. The options split off are well-formed names and
/// the key text is the rest of the line; a parsed key's restrictions can be checked for any
/// address and time.
pub fn authorized_keys_line(line: &str) {
    if let Ok((options, key_text)) = split_options(line) {
        assert!(
            line.ends_with(key_text),
            "the key text is the end of the line"
        );
        for option in &options {
            let name = &option.name;
            assert!(!name.is_empty());
            assert!(!name.contains(|c: char| c == ',' || c == '=' || c == '"' || c.is_whitespace()));
        }
    }
    if let Ok(key) = AuthorizedKey::parse(line) {
        for ip in [
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9)),
        ] {
            for now in [i64::MIN, 0, 1_800_000_000, i64::MAX] {
                let _ = key.check(ip, now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

    /// An option's value with the characters that make quoting matter. Not ending in a
    /// backslash: sshd's format cannot write one there (`\"` is always a quote).
    fn value() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                Just('"'),
                Just(','),
                Just(' '),
                Just('\\'),
                Just('*'),
                Just('1')
            ],
            0..8,
        )
        .prop_map(|chars| chars.into_iter().collect::<String>())
        .prop_filter("ends in a backslash", |value| !value.ends_with('\\'))
    }

    fn option() -> impl Strategy<Value = (String, Option<String>)> {
        (
            prop_oneof![Just("from"), Just("restrict"), Just("x-y"), Just("No-Pty")],
            prop::option::of(value()),
        )
            .prop_map(|(name, value)| (name.to_string(), value))
    }

    /// Writes an option the way sshd reads it: `\"` for a quote inside the value.
    fn written((name, value): &(String, Option<String>)) -> String {
        match value {
            Some(value) => format!("{name}=\"{}\"", value.replace('"', "\\\"")),
            None => name.clone(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_bytes_as_a_proxy_header(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            proxy_header(&bytes);
        }

        #[test]
        fn any_v2_header_shape(
            command in any::<u8>(),
            family in any::<u8>(),
            block in prop::collection::vec(any::<u8>(), 0..48),
            stated_extra in 0u16..4,
        ) {
            let mut bytes = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
            bytes.extend([command, family]);
            bytes.extend((block.len() as u16 + stated_extra).to_be_bytes());
            bytes.extend(&block);
            bytes.extend(b"SSH-2.0-x\r\n");
            proxy_header(&bytes);
        }

        #[test]
        fn any_text_as_an_authorized_keys_line(line in "[ -~]{0,80}") {
            authorized_keys_line(&line);
            authorized_keys_line(&format!("{line} {KEY}"));
        }

        /// Options written with escapes come back as they were, and the key after them.
        #[test]
        fn written_options_split_back(options in prop::collection::vec(option(), 1..5)) {
            let field: Vec<String> = options.iter().map(written).collect();
            let line = format!("{} {KEY} comment", field.join(","));
            let (parsed, rest) = split_options(&line).unwrap();
            prop_assert_eq!(rest, format!("{KEY} comment"));
            let parsed: Vec<_> = parsed.into_iter().map(|o| (o.name, o.value)).collect();
            prop_assert_eq!(parsed, options);
            authorized_keys_line(&line);
        }
    }
}
