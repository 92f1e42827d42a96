//! OpenSSH user certificates: whether one lets its holder log in as a user.
//!
//! russh has already checked that the client holds the certificate's key and that the
//! certificate's own signature is sound; that alone proves nothing, since anyone can sign a
//! certificate. Here the rest is checked, as sshd does with `TrustedUserCAKeys`: it was signed
//! by a CA the operator trusts, it is a user (not host) certificate, it is valid now, its
//! principals name the user, and every critical option is one we understand and honour
//! (`source-address`); any other critical option refuses the certificate, because ignoring a
//! restriction the CA meant to impose would grant more than it allowed. A certificate without
//! principals is refused too (sshd does the same for CA-trusted certificates).

use std::net::IpAddr;

use russh::keys::ssh_key::certificate::CertType;
use russh::keys::ssh_key::{Certificate, HashAlg};
use russh::keys::PublicKey;

use crate::users::networks::Networks;

/// Why a certificate was refused, in plain words (for the server's log, not the client).
pub type Refusal = String;

/// Checks `cert` for a login as `user` from `peer` at `now` (seconds since 1970).
pub fn check(
    cert: &Certificate,
    user: &str,
    trusted_cas: &[PublicKey],
    peer: IpAddr,
    now: u64,
) -> Result<(), Refusal> {
    let trusted: Vec<_> = trusted_cas
        .iter()
        .filter(|ca| ca.key_data() == cert.signature_key())
        .map(|ca| ca.fingerprint(HashAlg::Sha256))
        .collect();
    if trusted.is_empty() {
        return Err("the certificate is not signed by a trusted CA".into());
    }
    if cert.cert_type() != CertType::User {
        return Err("it is a host certificate, not a user certificate".into());
    }
    if now < cert.valid_after() {
        return Err("the certificate is not valid yet".into());
    }
    if now >= cert.valid_before() {
        return Err("the certificate has expired".into());
    }
    // The signature, the CA and the validity window once more, by the key library's own check.
    cert.validate_at(now, &trusted)
        .map_err(|_| "the certificate's signature does not verify".to_string())?;
    if cert.valid_principals().is_empty() {
        return Err("the certificate names no principals".into());
    }
    if !cert.valid_principals().iter().any(|p| p == user) {
        return Err(format!(
            "the certificate's principals do not include {user:?}"
        ));
    }
    check_critical_options(cert, peer)
}

fn check_critical_options(cert: &Certificate, peer: IpAddr) -> Result<(), Refusal> {
    for (name, value) in cert.critical_options().iter() {
        match name.as_str() {
            "source-address" => {
                let allowed = Networks::parse(value.split(','))
                    .map_err(|e| format!("the certificate's source-address: {e}"))?;
                if !allowed.contains(peer) {
                    return Err(format!(
                        "the certificate's source-address does not allow {peer}"
                    ));
                }
            }
            other => {
                return Err(format!(
                    "the certificate has a critical option dropgate does not support: {other}"
                ))
            }
        }
    }
    Ok(())
}

/// Seconds since 1970, for [`check`].
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    /// `ssh-keygen` signs `user.pub` with `ca` using `args`; returns the certificate.
    fn sign(dir: &Path, args: &[&str]) -> Certificate {
        let status = Command::new("ssh-keygen")
            .args(["-q", "-s"])
            .arg(dir.join("ca"))
            .args(["-I", "test-cert"])
            .args(args)
            .arg(dir.join("user.pub"))
            .status()
            .expect("ssh-keygen runs");
        assert!(status.success());
        let text = std::fs::read_to_string(dir.join("user-cert.pub")).unwrap();
        Certificate::from_openssh(text.trim()).unwrap()
    }

    fn keygen(path: &Path) -> PublicKey {
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(path)
            .status()
            .expect("ssh-keygen runs");
        assert!(status.success());
        let text = std::fs::read_to_string(path.with_extension("pub")).unwrap();
        PublicKey::from_openssh(text.trim()).unwrap()
    }

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));

    #[test]
    fn principals_time_ca_type_and_options_are_all_checked() {
        let dir = tempfile::tempdir().unwrap();
        let ca = keygen(&dir.path().join("ca"));
        let other_ca = keygen(&dir.path().join("other"));
        keygen(&dir.path().join("user"));
        let now = unix_now();
        let cas = std::slice::from_ref(&ca);

        let good = sign(dir.path(), &["-n", "alice,ops", "-V", "-5m:+1h"]);
        assert_eq!(check(&good, "alice", cas, PEER, now), Ok(()));
        let err = check(&good, "bob", cas, PEER, now).unwrap_err();
        assert!(err.contains("principals"), "{err}");
        let err = check(&good, "alice", &[other_ca], PEER, now).unwrap_err();
        assert!(err.contains("trusted CA"), "{err}");
        let err = check(&good, "alice", cas, PEER, now + 7200).unwrap_err();
        assert!(err.contains("expired"), "{err}");
        let err = check(&good, "alice", cas, PEER, now - 3600).unwrap_err();
        assert!(err.contains("not valid yet"), "{err}");

        let host = sign(dir.path(), &["-h", "-n", "alice"]);
        assert!(check(&host, "alice", cas, PEER, now).is_err());
        let no_principals = sign(dir.path(), &[]);
        assert!(check(&no_principals, "alice", cas, PEER, now).is_err());

        let limited = sign(
            dir.path(),
            &["-n", "alice", "-O", "source-address=192.0.2.0/24"],
        );
        assert_eq!(check(&limited, "alice", cas, PEER, now), Ok(()));
        let elsewhere: IpAddr = "198.51.100.1".parse().unwrap();
        assert!(check(&limited, "alice", cas, elsewhere, now).is_err());
        let forced = sign(
            dir.path(),
            &["-n", "alice", "-O", "force-command=/bin/true"],
        );
        let err = check(&forced, "alice", cas, PEER, now).unwrap_err();
        assert!(err.contains("force-command"), "{err}");
    }
}
