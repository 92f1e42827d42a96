//! Host and user key files: created on first use with mode 0600, refused when others can read.
//!
//! A private key that other local users can read is as good as published, so loading one that
//! is group- or world-readable is an error rather than a warning.
//!
//! The gateway serves three host keys at once, ed25519, RSA and ECDSA P-256 ([`KeyKind`]),
//! because partners' clients differ in what they accept: an old appliance or Java library may
//! know only RSA, a FIPS-minded one only ECDSA or RSA. Each is created on first start unless
//! the admin names an existing file; its fingerprint is what partners are told to expect.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context};
use rand::RngCore;
use russh::keys::ssh_key::private::{EcdsaKeypair, Ed25519Keypair, KeypairData, RsaKeypair};
use russh::keys::ssh_key::LineEnding;
use russh::keys::{EcdsaCurve, HashAlg, PrivateKey};

use crate::config::ServerConfig;

/// The size of a new RSA host key, in bits: what OpenSSH creates today.
pub const RSA_BITS: usize = 3072;
/// The smallest RSA host key loaded; anything shorter is breakable or refused by clients.
const RSA_MIN_BITS: usize = 2048;

/// The kinds of host key the gateway serves, in the order they are listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Ed25519,
    Rsa,
    /// On the NIST P-256 curve.
    Ecdsa,
}

impl KeyKind {
    pub const ALL: [KeyKind; 3] = [KeyKind::Ed25519, KeyKind::Rsa, KeyKind::Ecdsa];

    /// The type as `ssh-keygen -l` shows it.
    pub fn label(self) -> &'static str {
        match self {
            KeyKind::Ed25519 => "ED25519",
            KeyKind::Rsa => "RSA",
            KeyKind::Ecdsa => "ECDSA",
        }
    }

    /// A new random key of this kind. An RSA key takes a moment (up to seconds in a debug
    /// build).
    pub fn generate(self) -> anyhow::Result<PrivateKey> {
        let mut rng = russh::keys::key::safe_rng();
        let data = match self {
            KeyKind::Ed25519 => return Ok(generate()),
            KeyKind::Rsa => KeypairData::from(RsaKeypair::random(&mut rng, RSA_BITS)?),
            KeyKind::Ecdsa => {
                KeypairData::from(EcdsaKeypair::random(&mut rng, EcdsaCurve::NistP256)?)
            }
        };
        Ok(PrivateKey::new(data, "")?)
    }

    /// `ssh-keygen`'s options that make a key of this kind.
    fn keygen_options(self) -> &'static str {
        match self {
            KeyKind::Ed25519 => "-t ed25519",
            KeyKind::Rsa => "-t rsa -b 3072",
            KeyKind::Ecdsa => "-t ecdsa -b 256",
        }
    }

    fn of(key: &PrivateKey) -> Option<KeyKind> {
        match key.key_data() {
            KeypairData::Ed25519(_) => Some(KeyKind::Ed25519),
            KeypairData::Rsa(_) => Some(KeyKind::Rsa),
            KeypairData::Ecdsa(EcdsaKeypair::NistP256 { .. }) => Some(KeyKind::Ecdsa),
            _ => None,
        }
    }
}

/// A host key file the config names (or the default one), and the kind it must hold.
#[derive(Debug, Clone, PartialEq)]
pub struct HostKeyFile {
    pub kind: KeyKind,
    pub path: std::path::PathBuf,
}

/// The three host key files of `server`: `host_key` (ed25519), `host_key_rsa` and
/// `host_key_ecdsa`, the last two beside the first unless set.
pub fn configured_files(server: &ServerConfig) -> Vec<HostKeyFile> {
    let beside = |name: &str| server.host_key.with_file_name(name);
    let rsa = server.host_key_rsa.clone();
    let ecdsa = server.host_key_ecdsa.clone();
    vec![
        HostKeyFile {
            kind: KeyKind::Ed25519,
            path: server.host_key.clone(),
        },
        HostKeyFile {
            kind: KeyKind::Rsa,
            path: rsa.unwrap_or_else(|| beside("ssh_host_rsa_key")),
        },
        HostKeyFile {
            kind: KeyKind::Ecdsa,
            path: ecdsa.unwrap_or_else(|| beside("ssh_host_ecdsa_key")),
        },
    ]
}

impl HostKeyFile {
    /// Loads the key; a file that does not exist yet is created (with its `.pub`) if
    /// `create`, else refused with how to make one. A file holding another kind of key, or a
    /// short RSA key, is refused.
    ///
    /// A new key is logged at WARN with its path and fingerprint: to partners it is a changed
    /// host identity, which must never pass unnoticed (a config started from the wrong folder
    /// used to do exactly that).
    pub fn load_or_create(&self, create: bool) -> anyhow::Result<PrivateKey> {
        if self.path.exists() {
            return self.load();
        }
        if !create {
            return Err(self.missing());
        }
        let key = self.kind.generate()?;
        write_key_pair(&key, &self.path)?;
        tracing::warn!(
            path = %self.path.display(),
            key = %describe(&key),
            "created a new host key: partners who knew another key for this server will be \
             warned that it changed"
        );
        Ok(key)
    }

    /// The refusal of a missing key when `server.host_key_create` is false.
    pub fn missing(&self) -> anyhow::Error {
        anyhow::anyhow!(
            "host key {} does not exist and server.host_key_create is false: restore the key, \
             or create one with `ssh-keygen {} -N '' -f {}` as the user dropgate runs as",
            self.path.display(),
            self.kind.keygen_options(),
            self.path.display()
        )
    }

    /// Loads the key, which must exist.
    pub fn load(&self) -> anyhow::Result<PrivateKey> {
        let key = load(&self.path)?;
        let found = KeyKind::of(&key);
        if found != Some(self.kind) {
            bail!(
                "host key {} holds a {} key, not {} (host_key is ed25519, host_key_rsa RSA, \
                 host_key_ecdsa ECDSA P-256)",
                self.path.display(),
                key.algorithm(),
                self.kind.label()
            );
        }
        if self.kind == KeyKind::Rsa && key_bits(&key) < RSA_MIN_BITS {
            bail!(
                "host key {} is a {}-bit RSA key; use at least {RSA_MIN_BITS} bits",
                self.path.display(),
                key_bits(&key)
            );
        }
        Ok(key)
    }
}

/// `BITS SHA256:... (TYPE)`, as `ssh-keygen -lf` prints it (without the comment).
pub fn describe(key: &PrivateKey) -> String {
    let kind = KeyKind::of(key).map(KeyKind::label).unwrap_or("?");
    format!("{} {} ({kind})", key_bits(key), fingerprint(key))
}

/// The key's size as `ssh-keygen` counts it.
fn key_bits(key: &PrivateKey) -> usize {
    match key.key_data() {
        KeypairData::Rsa(rsa) => {
            let modulus = rsa.public().n().as_positive_bytes().unwrap_or_default();
            let leading = modulus.first().map_or(8, |b| b.leading_zeros() as usize);
            modulus.len() * 8 - leading
        }
        KeypairData::Ecdsa(ecdsa) => match ecdsa.curve() {
            EcdsaCurve::NistP256 => 256,
            EcdsaCurve::NistP384 => 384,
            EcdsaCurve::NistP521 => 521,
        },
        _ => 256,
    }
}

/// Loads the ed25519 key at `path`, creating it (and its `.pub`) if it does not exist yet.
pub fn load_or_create(path: &Path) -> anyhow::Result<PrivateKey> {
    if path.exists() {
        return load(path);
    }
    let key = generate();
    write_key_pair(&key, path)?;
    tracing::warn!(path = %path.display(), key = %describe(&key), "created a new key");
    Ok(key)
}

/// Loads a private key, refusing one that anyone but its owner can read.
pub fn load(path: &Path) -> anyhow::Result<PrivateKey> {
    let mode = std::fs::metadata(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        bail!(
            "key file {} is readable by others (mode {:o}); run: chmod 600 {}",
            path.display(),
            mode & 0o777,
            path.display()
        );
    }
    PrivateKey::read_openssh_file(path)
        .with_context(|| format!("cannot parse key file {}", path.display()))
}

/// A new random ed25519 key.
pub fn generate() -> PrivateKey {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    PrivateKey::from(Ed25519Keypair::from_seed(&seed))
}

/// Writes `key` to `path` (0600) and its public half to `path.pub` (0644).
pub fn write_key_pair(key: &PrivateKey, path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create folder {}", dir.display()))?;
    }
    let private = key.to_openssh(LineEnding::LF)?;
    write_new_file(path, private.as_bytes(), 0o600)?;
    let public = key.public_key().to_openssh()?;
    write_new_file(
        &path.with_extension("pub"),
        format!("{public}\n").as_bytes(),
        0o644,
    )?;
    Ok(())
}

/// Creates a file that must not exist yet, with `mode` from the first byte on (no window in
/// which a secret sits in a file with default permissions).
fn write_new_file(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(contents)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The fingerprint OpenSSH shows (`SHA256:...`).
pub fn fingerprint(key: &PrivateKey) -> String {
    key.public_key().fingerprint(HashAlg::Sha256).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_is_private_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/host_key");
        let created = load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let loaded = load_or_create(&path).unwrap();
        assert_eq!(fingerprint(&created), fingerprint(&loaded));
        assert!(path.with_extension("pub").exists());
    }

    #[test]
    fn each_kind_is_created_private_and_a_file_of_another_kind_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for kind in [KeyKind::Ecdsa, KeyKind::Rsa] {
            let file = HostKeyFile {
                kind,
                path: dir.path().join(kind.label()),
            };
            let created = file.load_or_create(true).unwrap();
            let mode = std::fs::metadata(&file.path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            assert_eq!(KeyKind::of(&created), Some(kind));
            assert_eq!(fingerprint(&file.load().unwrap()), fingerprint(&created));
        }
        assert!(describe(
            &HostKeyFile {
                kind: KeyKind::Rsa,
                path: dir.path().join("RSA")
            }
            .load()
            .unwrap()
        )
        .starts_with("3072 SHA256:"));
        let wrong = HostKeyFile {
            kind: KeyKind::Rsa,
            path: dir.path().join("ECDSA"),
        };
        let err = wrong.load().unwrap_err().to_string();
        assert!(err.contains("not RSA"), "{err}");
    }

    #[test]
    fn a_missing_key_is_not_created_when_creating_is_off() {
        let dir = tempfile::tempdir().unwrap();
        let file = HostKeyFile {
            kind: KeyKind::Ecdsa,
            path: dir.path().join("ecdsa"),
        };
        let err = file.load_or_create(false).unwrap_err().to_string();
        assert!(err.contains("host_key_create is false"), "{err}");
        assert!(err.contains("ssh-keygen -t ecdsa -b 256"), "{err}");
        assert!(!file.path.exists());
    }

    #[test]
    fn a_world_readable_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host_key");
        load_or_create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load(&path).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
}
