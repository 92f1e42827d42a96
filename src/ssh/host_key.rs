//! Host and user key files: created on first use with mode 0600, refused when others can read.
//!
//! A private key that other local users can read is as good as published, so loading one that
//! is group- or world-readable is an error rather than a warning.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context};
use rand::RngCore;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::ssh_key::LineEnding;
use russh::keys::{HashAlg, PrivateKey};

/// Loads the ed25519 key at `path`, creating it (and its `.pub`) if it does not exist yet.
pub fn load_or_create(path: &Path) -> anyhow::Result<PrivateKey> {
    if path.exists() {
        return load(path);
    }
    let key = generate();
    write_key_pair(&key, path)?;
    tracing::info!(path = %path.display(), "created a new host key");
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
    fn a_world_readable_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host_key");
        load_or_create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load(&path).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
}
