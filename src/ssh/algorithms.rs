//! Algorithm policies: which key exchanges, ciphers, MACs and host key signatures the server
//! offers, by name (`modern`, `compatible`, `fips-like`) or as explicit lists.
//!
//! A partner's client is whatever the partner has, and some of them only speak algorithms that
//! are weak by today's standards (SHA-1 signatures and MACs, CBC ciphers). Rather than have
//! every admin learn the SSH algorithm zoo, the policies are named sets, like a managed SFTP
//! service's security policies: `modern` (russh's defaults without SHA-1), `compatible` (modern
//! plus what old systems need, each such connection logged with a warning) and `fips-like`
//! (only NIST/FIPS-approved algorithms). An admin who needs something else lists the names.
//!
//! The server's lists become russh's [`Preferred`]. russh does not tell the handler what was
//! negotiated, so [`Policy::negotiate`] applies the rule of RFC 4253 section 7.1 (per category,
//! the first algorithm on the client's list that the server also supports) to the client's
//! KEXINIT, which `client_hello` records as it passes by. That is the rule russh applies
//! itself, so the answer is what russh chose.

use std::borrow::Cow;
use std::fmt;

use russh::keys::{Algorithm, EcdsaCurve, HashAlg};
use russh::{cipher, kex, mac, Preferred};

use crate::audit_log::Negotiation;
use crate::config::AlgorithmsConfig;

/// The policy the server runs with: its name and its four lists, most preferred first.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// `modern`, `compatible`, `fips-like`, or `custom` for explicit lists.
    pub name: String,
    pub kex: Vec<kex::Name>,
    pub ciphers: Vec<cipher::Name>,
    pub macs: Vec<mac::Name>,
    pub host_keys: Vec<Algorithm>,
}

/// The named policies, as a config file spells them.
pub const POLICY_NAMES: &[&str] = &["modern", "compatible", "fips-like"];

/// Key exchanges today's clients use; russh's own default order.
const MODERN_KEX: &[kex::Name] = &[
    kex::MLKEM768X25519_SHA256,
    kex::CURVE25519,
    kex::CURVE25519_PRE_RFC_8731,
    kex::DH_GEX_SHA256,
    kex::DH_G18_SHA512,
    kex::DH_G17_SHA512,
    kex::DH_G16_SHA512,
    kex::DH_G15_SHA512,
    kex::DH_G14_SHA256,
];
/// NIST curves: not in russh's defaults, but sound, and what many Java and Windows clients
/// pick first.
const NIST_ECDH_KEX: &[kex::Name] = &[
    kex::ECDH_SHA2_NISTP256,
    kex::ECDH_SHA2_NISTP384,
    kex::ECDH_SHA2_NISTP521,
];
/// SHA-1 key exchanges, for clients that know nothing newer.
const LEGACY_KEX: &[kex::Name] = &[kex::DH_G14_SHA1, kex::DH_GEX_SHA1];
const FIPS_KEX: &[kex::Name] = &[
    kex::ECDH_SHA2_NISTP256,
    kex::ECDH_SHA2_NISTP384,
    kex::ECDH_SHA2_NISTP521,
    kex::DH_GEX_SHA256,
    kex::DH_G18_SHA512,
    kex::DH_G16_SHA512,
    kex::DH_G14_SHA256,
];
/// Not algorithms but signals in the kex list: extension negotiation (RFC 8308) and strict
/// key exchange (the Terrapin fix). Every policy sends them.
const KEX_EXTENSIONS: &[kex::Name] = &[
    kex::EXTENSION_SUPPORT_AS_CLIENT,
    kex::EXTENSION_SUPPORT_AS_SERVER,
    kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT,
    kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
];

const MODERN_CIPHERS: &[cipher::Name] = &[
    cipher::CHACHA20_POLY1305,
    cipher::AES_256_GCM,
    cipher::AES_256_CTR,
    cipher::AES_192_CTR,
    cipher::AES_128_CTR,
];
const LEGACY_CIPHERS: &[cipher::Name] = &[
    cipher::AES_256_CBC,
    cipher::AES_192_CBC,
    cipher::AES_128_CBC,
];
const FIPS_CIPHERS: &[cipher::Name] = &[
    cipher::AES_256_GCM,
    cipher::AES_128_GCM,
    cipher::AES_256_CTR,
    cipher::AES_192_CTR,
    cipher::AES_128_CTR,
];

const SHA2_MACS: &[mac::Name] = &[
    mac::HMAC_SHA512_ETM,
    mac::HMAC_SHA256_ETM,
    mac::HMAC_SHA512,
    mac::HMAC_SHA256,
];
const LEGACY_MACS: &[mac::Name] = &[mac::HMAC_SHA1_ETM, mac::HMAC_SHA1];

const ECDSA_P256: Algorithm = Algorithm::Ecdsa {
    curve: EcdsaCurve::NistP256,
};
const RSA_SHA512: Algorithm = Algorithm::Rsa {
    hash: Some(HashAlg::Sha512),
};
const RSA_SHA256: Algorithm = Algorithm::Rsa {
    hash: Some(HashAlg::Sha256),
};
/// `ssh-rsa`: an RSA key signing with SHA-1.
const RSA_SHA1: Algorithm = Algorithm::Rsa { hash: None };

/// Host key signatures: only those the gateway's three keys can make (russh would leave out
/// the others anyway, so listing them would only mislead).
const MODERN_HOST_KEYS: &[Algorithm] = &[Algorithm::Ed25519, ECDSA_P256, RSA_SHA512, RSA_SHA256];
const FIPS_HOST_KEYS: &[Algorithm] = &[ECDSA_P256, RSA_SHA512, RSA_SHA256];

impl Policy {
    /// russh's default set without `ssh-rsa` (SHA-1) and the ECDSA curves the gateway has no
    /// key for: what the gateway always offered.
    pub fn modern() -> Policy {
        Policy {
            name: "modern".into(),
            kex: MODERN_KEX.to_vec(),
            ciphers: MODERN_CIPHERS.to_vec(),
            macs: SHA2_MACS.to_vec(),
            host_keys: MODERN_HOST_KEYS.to_vec(),
        }
    }

    /// Modern, then the NIST curves, then what old partner systems need (SHA-1 key exchange,
    /// signatures and MACs, CBC ciphers) last.
    pub fn compatible() -> Policy {
        Policy {
            name: "compatible".into(),
            kex: [MODERN_KEX, NIST_ECDH_KEX, LEGACY_KEX].concat(),
            ciphers: [MODERN_CIPHERS, &[cipher::AES_128_GCM], LEGACY_CIPHERS].concat(),
            macs: [SHA2_MACS, LEGACY_MACS].concat(),
            host_keys: [MODERN_HOST_KEYS, &[RSA_SHA1]].concat(),
        }
    }

    /// Only NIST/FIPS-approved algorithms: no curve25519, chacha20 or ed25519. (This chooses
    /// algorithms; it does not make the crypto library a validated module.)
    pub fn fips_like() -> Policy {
        Policy {
            name: "fips-like".into(),
            kex: FIPS_KEX.to_vec(),
            ciphers: FIPS_CIPHERS.to_vec(),
            macs: SHA2_MACS.to_vec(),
            host_keys: FIPS_HOST_KEYS.to_vec(),
        }
    }

    pub fn named(name: &str) -> Result<Policy, PolicyError> {
        match name {
            "modern" => Ok(Policy::modern()),
            "compatible" => Ok(Policy::compatible()),
            "fips-like" => Ok(Policy::fips_like()),
            _ => Err(PolicyError(format!(
                "server.algorithms: no policy named {name:?}; the policies are {}",
                POLICY_NAMES.join(", ")
            ))),
        }
    }

    /// The policy a config asks for: a name, or explicit lists (a list left out is the
    /// `modern` one). Unknown or unsupported names are refused, each category naming what it
    /// knows.
    pub fn from_config(config: &AlgorithmsConfig) -> Result<Policy, PolicyError> {
        let lists = match config {
            AlgorithmsConfig::Named(name) => return Policy::named(name),
            AlgorithmsConfig::Lists(lists) => lists,
        };
        let modern = Policy::modern();
        let policy = Policy {
            name: "custom".into(),
            kex: parse_list("kex", lists.kex.as_deref(), &catalog_kex(), modern.kex)?,
            ciphers: parse_list(
                "ciphers",
                lists.ciphers.as_deref(),
                &catalog_ciphers(),
                modern.ciphers,
            )?,
            macs: parse_list("macs", lists.macs.as_deref(), &catalog_macs(), modern.macs)?,
            host_keys: parse_list(
                "host_keys",
                lists.host_keys.as_deref(),
                &catalog_host_keys(),
                modern.host_keys,
            )?,
        };
        Ok(policy)
    }

    /// The lists as russh takes them (compression as russh's default).
    pub fn preferred(&self) -> Preferred {
        let kex = self.kex.iter().chain(KEX_EXTENSIONS).copied().collect();
        Preferred {
            kex: Cow::Owned(kex),
            key: Cow::Owned(self.host_keys.clone()),
            cipher: Cow::Owned(self.ciphers.clone()),
            mac: Cow::Owned(self.macs.clone()),
            ..Preferred::default()
        }
    }

    /// Whether the policy lets a client use any algorithm of the legacy set.
    pub fn allows_legacy(&self) -> bool {
        self.kex.iter().any(|k| LEGACY_KEX.contains(k))
            || self.ciphers.iter().any(is_legacy_cipher)
            || self.macs.iter().any(|m| LEGACY_MACS.contains(m))
            || self.host_keys.contains(&RSA_SHA1)
    }

    /// What russh will pick for a client that sent `client` (its KEXINIT lists), given the
    /// host keys the server has: RFC 4253 7.1, the first algorithm on the client's list the
    /// server supports. An error names the first category without a common algorithm.
    pub fn negotiate(
        &self,
        client: &ClientAlgorithms,
        server_keys: &[Algorithm],
    ) -> Result<Negotiated, NoCommonAlgorithm> {
        let kex_names: Vec<String> = self.kex.iter().map(|k| k.as_ref().to_string()).collect();
        let kex = first_common(&client.kex, &kex_names, "key exchange", self)?;
        let usable_keys: Vec<String> = self
            .host_keys
            .iter()
            .filter(|a| server_keys.iter().any(|k| same_key_type(k, a)))
            .map(|a| a.to_string())
            .collect();
        let host_key = first_common(&client.host_keys, &usable_keys, "host key", self)?;
        let ciphers: Vec<String> = self.ciphers.iter().map(|c| c.as_ref().into()).collect();
        let cipher = first_common(&client.ciphers, &ciphers, "cipher", self)?;
        let mac = if is_aead(&cipher) {
            // An AEAD cipher authenticates the packets itself; no MAC is used.
            None
        } else {
            let macs: Vec<String> = self.macs.iter().map(|m| m.as_ref().into()).collect();
            Some(first_common(&client.macs, &macs, "MAC", self)?)
        };
        Ok(Negotiated {
            kex,
            host_key,
            cipher,
            mac,
        })
    }

    /// The four lists by category, each as the comma-separated names SSH uses.
    pub fn lists(&self) -> [(&'static str, String); 4] {
        let host_keys: Vec<String> = self.host_keys.iter().map(|a| a.to_string()).collect();
        [
            ("kex", join(&self.kex)),
            ("ciphers", join(&self.ciphers)),
            ("macs", join(&self.macs)),
            ("host keys", host_keys.join(",")),
        ]
    }

    /// One line for the log: the policy and its lists.
    pub fn describe(&self) -> String {
        let lists: Vec<String> = self
            .lists()
            .iter()
            .map(|(category, names)| format!("{category} {names}"))
            .collect();
        format!("{}: {}", self.name, lists.join("; "))
    }
}

/// A policy that cannot be used, in words for the admin.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyError(pub String);

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PolicyError {}

/// The client's algorithm lists from its KEXINIT (client-to-server directions).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientAlgorithms {
    pub kex: Vec<String>,
    pub host_keys: Vec<String>,
    pub ciphers: Vec<String>,
    pub macs: Vec<String>,
}

/// What a connection negotiated.
#[derive(Debug, Clone, PartialEq)]
pub struct Negotiated {
    pub kex: String,
    pub host_key: String,
    pub cipher: String,
    /// None with an AEAD cipher (GCM, chacha20-poly1305), which needs no MAC.
    pub mac: Option<String>,
}

impl Negotiated {
    /// The legacy algorithms among those negotiated (SHA-1, CBC), for the warning.
    pub fn legacy(&self) -> Vec<&str> {
        let mut found = Vec::new();
        if kex::Name::try_from(self.kex.as_str()).is_ok_and(|k| LEGACY_KEX.contains(&k)) {
            found.push(self.kex.as_str());
        }
        if self.host_key == RSA_SHA1.to_string() {
            found.push(self.host_key.as_str());
        }
        if cipher::Name::try_from(self.cipher.as_str()).is_ok_and(|c| is_legacy_cipher(&c)) {
            found.push(self.cipher.as_str());
        }
        if let Some(mac) = &self.mac {
            if mac::Name::try_from(mac.as_str()).is_ok_and(|m| LEGACY_MACS.contains(&m)) {
                found.push(mac.as_str());
            }
        }
        found
    }
}

/// A connection's key exchange as its client's hello settles it: who the client says it is,
/// and what was chosen (or why nothing could be).
#[derive(Debug, Clone, PartialEq)]
pub struct Handshake {
    /// The client's version line (client text).
    pub client_version: String,
    pub negotiated: Result<Negotiated, NoCommonAlgorithm>,
}

impl Handshake {
    /// The client's version and the negotiated algorithms, as the login lines carry them.
    pub fn for_audit(&self) -> Negotiation {
        let chosen = self.negotiated.as_ref().ok();
        Negotiation {
            client_version: self.client_version.clone(),
            kex: chosen.map(|c| c.kex.clone()),
            cipher: chosen.map(|c| c.cipher.clone()),
            mac: chosen.and_then(|c| c.mac.clone()),
            host_key_alg: chosen.map(|c| c.host_key.clone()),
        }
    }
}

/// No algorithm of one category on both lists: why a key exchange failed.
#[derive(Debug, Clone, PartialEq)]
pub struct NoCommonAlgorithm {
    pub category: &'static str,
    pub client: Vec<String>,
    pub policy: String,
    pub allowed: Vec<String>,
}

impl fmt::Display for NoCommonAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no common {} algorithm: client offered {}, policy {} allows {}",
            self.category,
            self.client.join(","),
            self.policy,
            self.allowed.join(",")
        )
    }
}

fn first_common(
    client: &[String],
    server: &[String],
    category: &'static str,
    policy: &Policy,
) -> Result<String, NoCommonAlgorithm> {
    client
        .iter()
        .find(|c| server.contains(c))
        .cloned()
        .ok_or_else(|| NoCommonAlgorithm {
            category,
            // Extension signals are not algorithms; leaving them out keeps the line readable.
            client: client
                .iter()
                .filter(|c| !is_kex_extension(c))
                .cloned()
                .collect(),
            policy: policy.name.clone(),
            allowed: server.to_vec(),
        })
}

fn is_kex_extension(name: &str) -> bool {
    KEX_EXTENSIONS.iter().any(|e| e.as_ref() == name)
}

/// An RSA key serves every RSA signature algorithm; other keys serve their own only.
fn same_key_type(key: &Algorithm, algorithm: &Algorithm) -> bool {
    match (key, algorithm) {
        (Algorithm::Rsa { .. }, Algorithm::Rsa { .. }) => true,
        _ => key == algorithm,
    }
}

fn is_aead(cipher: &str) -> bool {
    [
        cipher::CHACHA20_POLY1305,
        cipher::AES_256_GCM,
        cipher::AES_128_GCM,
    ]
    .iter()
    .any(|c| c.as_ref() == cipher)
}

fn is_legacy_cipher(cipher: &cipher::Name) -> bool {
    LEGACY_CIPHERS.contains(cipher)
}

fn join<T: AsRef<str>>(names: &[T]) -> String {
    names
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(",")
}

/// Every key exchange an explicit list may name: what russh implements, without `none` and
/// the 1024-bit group1.
fn catalog_kex() -> Vec<kex::Name> {
    [MODERN_KEX, NIST_ECDH_KEX, LEGACY_KEX].concat()
}

fn catalog_ciphers() -> Vec<cipher::Name> {
    [MODERN_CIPHERS, &[cipher::AES_128_GCM], LEGACY_CIPHERS].concat()
}

fn catalog_macs() -> Vec<mac::Name> {
    [SHA2_MACS, LEGACY_MACS].concat()
}

fn catalog_host_keys() -> Vec<Algorithm> {
    [MODERN_HOST_KEYS, &[RSA_SHA1]].concat()
}

/// A name an explicit list may hold, matched by its SSH spelling.
trait Named: Clone {
    fn ssh_name(&self) -> String;
}

impl Named for kex::Name {
    fn ssh_name(&self) -> String {
        self.as_ref().to_string()
    }
}

impl Named for cipher::Name {
    fn ssh_name(&self) -> String {
        self.as_ref().to_string()
    }
}

impl Named for mac::Name {
    fn ssh_name(&self) -> String {
        self.as_ref().to_string()
    }
}

impl Named for Algorithm {
    fn ssh_name(&self) -> String {
        self.to_string()
    }
}

/// The configured names of one category, each looked up in `catalog`; `None` is `default`.
fn parse_list<T: Named>(
    category: &str,
    names: Option<&[String]>,
    catalog: &[T],
    default: Vec<T>,
) -> Result<Vec<T>, PolicyError> {
    let Some(names) = names else {
        return Ok(default);
    };
    if names.is_empty() {
        return Err(PolicyError(format!(
            "server.algorithms.{category}: the list is empty; leave it out for the modern set"
        )));
    }
    names
        .iter()
        .map(|name| {
            catalog
                .iter()
                .find(|known| known.ssh_name() == *name)
                .cloned()
                .ok_or_else(|| {
                    let known: Vec<String> = catalog.iter().map(Named::ssh_name).collect();
                    PolicyError(format!(
                        "server.algorithms.{category}: unknown or unsupported algorithm \
                         {name:?}; known: {}",
                        known.join(", ")
                    ))
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AlgorithmLists;

    fn names<T: Named>(list: &[T]) -> Vec<String> {
        list.iter().map(Named::ssh_name).collect()
    }

    #[test]
    fn modern_is_russh_default_without_sha1() {
        let modern = Policy::modern();
        let default = Preferred::default();
        let default_kex: Vec<_> = default
            .kex
            .iter()
            .filter(|k| !is_kex_extension(k.as_ref()))
            .copied()
            .collect();
        assert_eq!(modern.kex, default_kex);
        assert_eq!(modern.ciphers, default.cipher.to_vec());
        assert_eq!(modern.macs, default.mac.to_vec());
        let servable: Vec<_> = default
            .key
            .iter()
            .filter(|a| **a != RSA_SHA1)
            .filter(|a| !matches!(a, Algorithm::Ecdsa { curve } if *curve != EcdsaCurve::NistP256))
            .cloned()
            .collect();
        assert_eq!(modern.host_keys, servable);
        assert!(!modern.allows_legacy());
    }

    #[test]
    fn compatible_adds_the_legacy_algorithms_and_keeps_modern_first() {
        let compatible = Policy::compatible();
        let modern = Policy::modern();
        assert!(compatible.allows_legacy());
        assert_eq!(compatible.kex[..modern.kex.len()], modern.kex[..]);
        for name in [
            "diffie-hellman-group14-sha1",
            "diffie-hellman-group-exchange-sha1",
        ] {
            assert!(names(&compatible.kex).contains(&name.to_string()), "{name}");
        }
        assert!(names(&compatible.host_keys).contains(&"ssh-rsa".to_string()));
        assert!(names(&compatible.macs).contains(&"hmac-sha1".to_string()));
        assert!(names(&compatible.ciphers).contains(&"aes128-cbc".to_string()));
    }

    #[test]
    fn fips_like_has_no_curve25519_chacha_or_ed25519() {
        let fips = Policy::fips_like();
        let all = [
            names(&fips.kex),
            names(&fips.ciphers),
            names(&fips.macs),
            names(&fips.host_keys),
        ]
        .concat();
        for banned in ["curve25519", "chacha20", "ed25519", "sha1", "cbc", "mlkem"] {
            assert!(
                all.iter().all(|n| !n.contains(banned)),
                "{banned} in {all:?}"
            );
        }
        assert!(names(&fips.kex).contains(&"ecdh-sha2-nistp256".to_string()));
        assert!(names(&fips.host_keys).contains(&"rsa-sha2-256".to_string()));
        assert!(!fips.allows_legacy());
    }

    #[test]
    fn every_named_policy_uses_only_what_russh_implements() {
        for name in POLICY_NAMES {
            let policy = Policy::named(name).unwrap();
            for k in &policy.kex {
                assert!(kex::Name::try_from(k.as_ref()).is_ok(), "{k:?}");
            }
            for c in &policy.ciphers {
                assert!(cipher::Name::try_from(c.as_ref()).is_ok(), "{c:?}");
            }
            for m in &policy.macs {
                assert!(mac::Name::try_from(m.as_ref()).is_ok(), "{m:?}");
            }
        }
    }

    #[test]
    fn an_unknown_policy_or_algorithm_is_refused_by_name() {
        let err = Policy::named("strong").unwrap_err();
        assert!(
            err.0.contains("\"strong\"") && err.0.contains("fips-like"),
            "{err}"
        );
        let lists = AlgorithmLists {
            ciphers: Some(vec!["aes256-ctr".into(), "rot13".into()]),
            ..AlgorithmLists::default()
        };
        let err = Policy::from_config(&AlgorithmsConfig::Lists(lists)).unwrap_err();
        assert!(
            err.0.contains("server.algorithms.ciphers") && err.0.contains("\"rot13\""),
            "{err}"
        );
        let lists = AlgorithmLists {
            kex: Some(vec!["none".into()]),
            ..AlgorithmLists::default()
        };
        assert!(Policy::from_config(&AlgorithmsConfig::Lists(lists)).is_err());
        let lists = AlgorithmLists {
            macs: Some(vec![]),
            ..AlgorithmLists::default()
        };
        assert!(Policy::from_config(&AlgorithmsConfig::Lists(lists)).is_err());
    }

    #[test]
    fn explicit_lists_replace_only_what_they_name() {
        let lists = AlgorithmLists {
            kex: Some(vec!["ecdh-sha2-nistp256".into()]),
            host_keys: Some(vec!["rsa-sha2-256".into(), "ssh-rsa".into()]),
            ..AlgorithmLists::default()
        };
        let policy = Policy::from_config(&AlgorithmsConfig::Lists(lists)).unwrap();
        assert_eq!(policy.name, "custom");
        assert_eq!(policy.kex, vec![kex::ECDH_SHA2_NISTP256]);
        assert_eq!(policy.host_keys, vec![RSA_SHA256, RSA_SHA1]);
        assert_eq!(policy.ciphers, Policy::modern().ciphers);
        assert!(policy.allows_legacy());
    }

    fn client(kex: &str, host_keys: &str, ciphers: &str, macs: &str) -> ClientAlgorithms {
        let split = |s: &str| s.split(',').map(str::to_string).collect();
        ClientAlgorithms {
            kex: split(kex),
            host_keys: split(host_keys),
            ciphers: split(ciphers),
            macs: split(macs),
        }
    }

    #[test]
    fn negotiation_takes_the_clients_first_choice_the_server_supports() {
        let keys = [Algorithm::Ed25519, RSA_SHA1, ECDSA_P256];
        let old = client(
            "diffie-hellman-group14-sha1,ext-info-c",
            "ssh-rsa",
            "aes128-cbc,aes128-ctr",
            "hmac-sha1",
        );
        let got = Policy::compatible().negotiate(&old, &keys).unwrap();
        assert_eq!(got.kex, "diffie-hellman-group14-sha1");
        assert_eq!(got.host_key, "ssh-rsa");
        assert_eq!(got.cipher, "aes128-cbc");
        assert_eq!(got.mac.as_deref(), Some("hmac-sha1"));
        assert_eq!(
            got.legacy(),
            [
                "diffie-hellman-group14-sha1",
                "ssh-rsa",
                "aes128-cbc",
                "hmac-sha1"
            ]
        );

        let err = Policy::modern().negotiate(&old, &keys).unwrap_err();
        assert_eq!(err.category, "key exchange");
        let text = err.to_string();
        assert!(
            text.starts_with(
                "no common key exchange algorithm: client offered \
                 diffie-hellman-group14-sha1, policy modern allows mlkem768x25519-sha256,"
            ),
            "{text}"
        );

        let new = client(
            "curve25519-sha256",
            "ssh-ed25519,rsa-sha2-256",
            "chacha20-poly1305@openssh.com",
            "hmac-sha2-256",
        );
        let got = Policy::modern().negotiate(&new, &keys).unwrap();
        assert_eq!(got.mac, None, "an AEAD cipher uses no MAC");
        assert!(got.legacy().is_empty());
        // fips-like does not offer ed25519: the client's next choice it supports is taken.
        let fips_client = client(
            "ecdh-sha2-nistp256",
            "ssh-ed25519,rsa-sha2-256",
            "aes256-gcm@openssh.com",
            "hmac-sha2-256",
        );
        let got = Policy::fips_like().negotiate(&fips_client, &keys).unwrap();
        assert_eq!(got.host_key, "rsa-sha2-256");
    }

    #[test]
    fn a_host_key_algorithm_without_its_key_cannot_be_negotiated() {
        let wants_ecdsa = client(
            "curve25519-sha256",
            "ecdsa-sha2-nistp256",
            "aes256-ctr",
            "hmac-sha2-256",
        );
        let err = Policy::modern()
            .negotiate(&wants_ecdsa, &[Algorithm::Ed25519])
            .unwrap_err();
        assert_eq!(err.category, "host key");
        assert_eq!(err.allowed, ["ssh-ed25519"]);
    }
}
