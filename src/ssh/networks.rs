//! Address ranges as operators and certificates write them: `192.0.2.0/24`, `2001:db8::/32`,
//! or a bare address meaning just that one. Used for `trusted_proxies` and for a certificate's
//! `source-address` option.

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

fn parse_one(entry: &str) -> Result<IpNet, String> {
    entry
        .parse::<IpNet>()
        .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{entry:?} is not an IP address or a range such as 10.0.0.0/8"))
}

/// An IPv4 client on a dual-stack socket shows up as `::ffff:a.b.c.d`; ranges are written
/// with the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
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
    }

    #[test]
    fn a_bad_entry_is_named() {
        let err = Networks::parse(["10.0.0.0/8", "localhost"]).unwrap_err();
        assert!(err.contains("\"localhost\""), "{err}");
    }
}
