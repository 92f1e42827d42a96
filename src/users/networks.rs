//! Address ranges as operators and certificates write them: `192.0.2.0/24`, `2001:db8::/32`,
//! or a bare address meaning just that one. Used for `trusted_proxies`, a user's
//! `allowed_networks` and a certificate's `source-address` option; [`AddressPatterns`] adds
//! the wildcards and negations of an authorized_keys `from=` option on top, so every "which
//! client addresses" check is here.

use std::net::IpAddr;

use ipnet::IpNet;

/// A list of ranges; an address is in it if any range holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Networks(Vec<IpNet>);

impl Networks {
    /// Parses each entry; the error names the one that is not an address or range.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Networks, String> {
        entries
            .into_iter()
            .map(|entry| parse_one(entry.trim()))
            .collect::<Result<Vec<_>, _>>()
            .map(Networks)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }
}

impl std::fmt::Display for Networks {
    /// The ranges, comma separated (`10.0.0.0/8, 192.0.2.7/32`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ranges: Vec<String> = self.0.iter().map(IpNet::to_string).collect();
        f.write_str(&ranges.join(", "))
    }
}

fn parse_one(entry: &str) -> Result<IpNet, String> {
    entry
        .parse::<IpNet>()
        .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{entry:?} is not an IP address or a range such as 10.0.0.0/8"))
}

/// The patterns of an authorized_keys `from="..."` option, as sshd(8) reads them: a comma
/// separated list of addresses, CIDR ranges and `*`/`?` wildcard patterns, each possibly
/// negated with `!`. An address is allowed if some pattern matches it and no negated one does.
///
/// sshd matches wildcard patterns against the client's host name as well as its address, but
/// only when it looks names up (`UseDNS`, off by default); dropgate never does, so a pattern
/// is matched against the address text alone, as sshd does by default, and a name pattern
/// such as `*.example.com` matches nobody.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressPatterns(Vec<AddressPattern>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct AddressPattern {
    negated: bool,
    kind: PatternKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PatternKind {
    Range(IpNet),
    /// Lower-cased; matched against the address's text.
    Wildcard(String),
}

impl AddressPatterns {
    /// Parses `list`; an empty pattern, or a range with a bad prefix, is an error (sshd would
    /// fail such a line at every login: better said once, when the key loads).
    pub fn parse(list: &str) -> Result<AddressPatterns, String> {
        list.split(',')
            .map(parse_pattern)
            .collect::<Result<Vec<_>, _>>()
            .map(AddressPatterns)
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        let text = ip.to_string();
        let mut allowed = false;
        for pattern in &self.0 {
            let matched = match &pattern.kind {
                PatternKind::Range(net) => net.contains(&ip),
                PatternKind::Wildcard(glob) => wildcard_match(glob.as_bytes(), text.as_bytes()),
            };
            if matched && pattern.negated {
                return false;
            }
            allowed |= matched;
        }
        allowed
    }
}

fn parse_pattern(entry: &str) -> Result<AddressPattern, String> {
    let (negated, body) = match entry.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, entry),
    };
    if body.is_empty() {
        return Err(format!("{entry:?} is an empty pattern"));
    }
    // sshd would keep it as a pattern that can never match an address: say so instead.
    if body.contains(char::is_whitespace) {
        return Err(format!("{entry:?}: a pattern may not contain spaces"));
    }
    let kind = match parse_one(body) {
        Ok(net) => PatternKind::Range(net),
        Err(e) if body.contains('/') => return Err(e),
        Err(_) => PatternKind::Wildcard(body.to_ascii_lowercase()),
    };
    Ok(AddressPattern { negated, kind })
}

/// `*` is any run of characters, `?` any one; the rest must equal (sshd's `match_pattern`).
/// Iterative, with one backtrack point, so no pattern can make it take more than
/// pattern × text steps.
fn wildcard_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// An IPv4 client on a dual-stack socket shows up as `::ffff:a.b.c.d`; ranges are written
/// with the IPv4 address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_single_addresses_match() {
        let nets = Networks::parse(["127.0.0.1/32", "10.0.0.0/8", "2001:db8::1"]).unwrap();
        assert!(nets.contains("127.0.0.1".parse().unwrap()));
        assert!(nets.contains("10.20.30.40".parse().unwrap()));
        assert!(nets.contains("::ffff:10.1.1.1".parse().unwrap()));
        assert!(nets.contains("2001:db8::1".parse().unwrap()));
        assert!(!nets.contains("127.0.0.2".parse().unwrap()));
        assert!(!nets.contains("2001:db8::2".parse().unwrap()));
        assert_eq!(
            nets.to_string(),
            "127.0.0.1/32, 10.0.0.0/8, 2001:db8::1/128"
        );
    }

    #[test]
    fn from_patterns_match_as_sshd_does() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let patterns =
            AddressPatterns::parse("10.0.0.0/8,!10.9.9.9,192.0.2.?,2001:db8::*").unwrap();
        assert!(patterns.allows(ip("10.1.2.3")));
        assert!(!patterns.allows(ip("10.9.9.9")), "negation wins");
        assert!(patterns.allows(ip("192.0.2.7")));
        assert!(!patterns.allows(ip("192.0.2.77")));
        assert!(patterns.allows(ip("2001:DB8::42")));
        assert!(patterns.allows(ip("::ffff:10.0.0.1")));
        assert!(!patterns.allows(ip("127.0.0.1")));
        let only = AddressPatterns::parse("10.9.9.9").unwrap();
        assert!(!only.allows(ip("127.0.0.1")));
        assert!(only.allows(ip("10.9.9.9")));
        let names = AddressPatterns::parse("*.example.com").unwrap();
        assert!(
            !names.allows(ip("127.0.0.1")),
            "no reverse DNS: names match nobody"
        );
        let anything_but = AddressPatterns::parse("*,!127.0.0.1").unwrap();
        assert!(!anything_but.allows(ip("127.0.0.1")));
        assert!(anything_but.allows(ip("127.0.0.2")));
        for bad in [
            "",
            "10.0.0.1,",
            "!",
            "10.0.0.0/33",
            "1.2.3.4/x",
            "10.0.0.1, 10.0.0.2",
        ] {
            assert!(AddressPatterns::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn wildcards_backtrack() {
        assert!(wildcard_match(b"*1*3", b"10.1.2.3"));
        assert!(wildcard_match(b"*", b""));
        assert!(!wildcard_match(b"?", b""));
        assert!(wildcard_match(b"1?.*.*.*", b"10.0.0.1"));
        assert!(!wildcard_match(b"*.5", b"10.0.0.1"));
    }

    #[test]
    fn a_bad_entry_is_named() {
        let err = Networks::parse(["10.0.0.0/8", "localhost"]).unwrap_err();
        assert!(err.contains("\"localhost\""), "{err}");
    }
}
