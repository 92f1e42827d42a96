//! Which certificate authorities the gateway's HTTPS clients trust (Dropbox, webhooks).
//!
//! A corporate proxy that inspects TLS re-signs every site with its own CA, which the operator
//! installs into the system's trust store; so the system store is what is trusted, as curl and
//! the OS's own tools do, and not a list of web roots frozen into the binary. A `ca_file` adds
//! CAs of its own (the proxy's, a webhook receiver's internal CA) without touching the system
//! store. Only when the system store holds no certificate at all (a bare container without
//! ca-certificates) are the web roots compiled into dropgate trusted instead, so such a gateway
//! still reaches Dropbox; it says so once in the log.
//!
//! A `ca_file` that cannot be read, or holds nothing usable, is refused when the client is
//! built, naming the file: a typo must not surface as "certificate not trusted" at the first
//! upload.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{bail, Context};

/// The CAs an HTTPS client trusts: the system's (see the module doc) plus those of a `ca_file`.
#[derive(Clone, Default)]
pub struct Trust {
    extra: Vec<reqwest::Certificate>,
    ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trust")
            .field("ca_file", &self.ca_file)
            .field("extra_certificates", &self.extra.len())
            .finish()
    }
}

impl Trust {
    /// The system's trust store alone.
    pub fn system() -> Trust {
        Trust::default()
    }

    /// The system's trust store plus the certificates of `ca_file` (PEM, one or more), if any.
    pub fn with_ca_file(ca_file: Option<&Path>) -> anyhow::Result<Trust> {
        let Some(path) = ca_file else {
            return Ok(Trust::system());
        };
        Ok(Trust {
            extra: read_ca_file(path)?,
            ca_file: Some(path.to_path_buf()),
        })
    }

    /// `builder` trusting these CAs.
    pub fn apply(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        let mut builder = builder
            .tls_built_in_native_certs(true)
            .tls_built_in_webpki_certs(system_store_is_empty());
        for certificate in &self.extra {
            builder = builder.add_root_certificate(certificate.clone());
        }
        builder
    }
}

/// The certificates in a PEM file, each checked to be one rustls can use as a trust anchor.
fn read_ca_file(path: &Path) -> anyhow::Result<Vec<reqwest::Certificate>> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("ca_file {}: cannot read it", path.display()))?;
    let certificates = reqwest::Certificate::from_pem_bundle(&bytes).map_err(|_| {
        anyhow::anyhow!("ca_file {}: not a PEM file of certificates", path.display())
    })?;
    if certificates.is_empty() {
        bail!(
            "ca_file {}: holds no certificate (expected PEM: -----BEGIN CERTIFICATE-----)",
            path.display()
        );
    }
    // reqwest parses the DER only when a client is built: do that now, with these alone.
    let mut probe = reqwest::Client::builder().tls_built_in_root_certs(false);
    for certificate in &certificates {
        probe = probe.add_root_certificate(certificate.clone());
    }
    probe.build().map_err(|_| {
        anyhow::anyhow!(
            "ca_file {}: holds a certificate that cannot be used as a CA",
            path.display()
        )
    })?;
    Ok(certificates)
}

/// True when the system's trust store has no certificate; asked once per process.
fn system_store_is_empty() -> bool {
    static EMPTY: OnceLock<bool> = OnceLock::new();
    *EMPTY.get_or_init(|| {
        let empty = rustls_native_certs::load_native_certs().certs.is_empty();
        if empty {
            tracing::warn!(
                "the system trust store has no certificates (install ca-certificates, or set \
                 SSL_CERT_FILE); trusting the web roots built into dropgate instead"
            );
        }
        empty
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_that_is_missing_empty_or_not_pem_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let message = format!("{:#}", Trust::with_ca_file(Some(&missing)).unwrap_err());
        assert!(message.contains("missing.pem: cannot read it"), "{message}");

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let message = format!("{:#}", Trust::with_ca_file(Some(&empty)).unwrap_err());
        assert!(
            message.contains("empty.pem: holds no certificate"),
            "{message}"
        );

        let key_only = dir.path().join("key.pem");
        std::fs::write(
            &key_only,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let message = format!("{:#}", Trust::with_ca_file(Some(&key_only)).unwrap_err());
        assert!(message.contains("key.pem"), "{message}");

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let message = format!("{:#}", Trust::with_ca_file(Some(&garbage)).unwrap_err());
        assert!(message.contains("garbage.pem"), "{message}");
    }

    #[test]
    fn no_ca_file_is_the_system_store() {
        let trust = Trust::with_ca_file(None).unwrap();
        assert!(trust.extra.is_empty());
        trust.apply(reqwest::Client::builder()).build().unwrap();
    }
}
