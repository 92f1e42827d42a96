//! `dropgate keygen`: an ed25519 key pair, for a host key or a user key.

use std::path::Path;

use crate::ssh::host_key;

/// Writes PATH (mode 0600) and PATH.pub, and prints the key's fingerprint.
pub fn run(path: &Path) -> anyhow::Result<()> {
    let key = host_key::generate();
    host_key::write_key_pair(&key, path)?;
    println!("{} {}", path.display(), host_key::fingerprint(&key));
    Ok(())
}
