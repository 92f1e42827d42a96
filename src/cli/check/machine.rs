//! The checks of `check-config` against this machine, as `sshd -t` makes them: can the gateway
//! write its spool and audit log and bind its addresses, here and now?
//!
//! Each returns what it found (for the table) or why it fails, naming the absolute path or
//! the address. None of them leaves anything behind: a missing folder or file is tested by
//! creating and removing a temporary one beside it, because `check-config` may be run as root
//! and must not leave root's files where the service user writes.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{bail, Context};

use crate::backend::dropbox::upload::spool_dir;
use crate::config::Config;

/// The spool folder holds spool files, with free space above `upload.min_free_space`.
pub fn spool(config: &Config) -> anyhow::Result<String> {
    let dir = config.upload.spool_dir();
    let found = spool_dir::check(&dir)?;
    let floor = config.upload.min_free_space;
    if found.free < floor {
        bail!(
            "spool folder {}: {} free, below upload.min_free_space ({}); uploads would be refused",
            dir.display(),
            gib(found.free),
            gib(floor)
        );
    }
    let state = match found.exists {
        true => "writable",
        false => "will be created",
    };
    Ok(format!("ok: {state}, {} free", gib(found.free)))
}

/// The audit log can be appended to: the file, or a new file in its (existing) folder.
pub fn audit_log(output: &str) -> anyhow::Result<String> {
    if output == "stderr" {
        return Ok("ok: stderr".into());
    }
    let path = Path::new(output);
    if path.exists() {
        std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .with_context(|| format!("audit log {}: cannot open it for appending", output))?;
        return Ok("ok: appending".into());
    }
    let folder = path.parent().unwrap_or(Path::new("/"));
    if !folder.is_dir() {
        bail!(
            "audit log {output}: its folder {} does not exist (or is not a folder)",
            folder.display()
        );
    }
    tempfile::tempfile_in(folder).with_context(|| {
        format!(
            "audit log {output}: cannot create a file in {}",
            folder.display()
        )
    })?;
    Ok("ok: will be created".into())
}

/// A missing host key that `serve` will create: something can be created where it goes (in
/// its folder, or, if that is missing too, in the nearest folder that exists).
pub fn host_key_creatable(path: &Path) -> anyhow::Result<()> {
    let folder = path.parent().unwrap_or(Path::new("/"));
    let existing = folder
        .ancestors()
        .find(|a| a.exists())
        .unwrap_or(Path::new("/"));
    if !existing.is_dir() {
        bail!(
            "host key {}: cannot be created, {} is not a folder",
            path.display(),
            existing.display()
        );
    }
    tempfile::tempdir_in(existing).with_context(|| {
        format!(
            "host key {}: cannot be created, nothing can be made in {}",
            path.display(),
            existing.display()
        )
    })?;
    Ok(())
}

/// The address can be listened on: bound and released at once. `running`: the gateway is
/// already up with this config (`systemctl reload`), so its own addresses are in use by it.
pub fn bindable(key: &str, addr: SocketAddr, running: bool) -> anyhow::Result<String> {
    match std::net::TcpListener::bind(addr) {
        Ok(_) => Ok("ok: free".into()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && running => {
            Ok("ok: in use (by the running gateway, --running)".into())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => bail!(
            "{key} {addr}: the address is in use by another process (if it is this gateway \
             running, check with --running)"
        ),
        Err(e) => Err(e).with_context(|| format!("{key} {addr}: cannot listen on it")),
    }
}

/// Bytes in GiB with one decimal: what `df -h` would make of them.
fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_in_use_fails_unless_the_gateway_runs() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let err = format!("{:#}", bindable("server.listen", addr, false).unwrap_err());
        assert!(err.contains(&format!("server.listen {addr}")), "{err}");
        assert!(err.contains("in use"), "{err}");
        assert!(bindable("server.listen", addr, true).is_ok());
        drop(taken);
        assert_eq!(bindable("server.listen", addr, false).unwrap(), "ok: free");
    }

    #[test]
    fn a_host_key_must_be_creatable_where_it_goes() {
        let dir = tempfile::tempdir().unwrap();
        host_key_creatable(&dir.path().join("keys/host")).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        std::fs::write(dir.path().join("file"), "x").unwrap();
        let err = format!(
            "{:#}",
            host_key_creatable(&dir.path().join("file/host")).unwrap_err()
        );
        assert!(err.contains("is not a folder"), "{err}");
        let err = format!(
            "{:#}",
            host_key_creatable(Path::new("/proc/host")).unwrap_err()
        );
        assert!(err.contains("nothing can be made in /proc"), "{err}");
    }

    #[test]
    fn an_audit_log_needs_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.jsonl");
        let shown = log.display().to_string();
        assert_eq!(audit_log(&shown).unwrap(), "ok: will be created");
        assert!(!log.exists(), "nothing left behind");
        std::fs::write(&log, "").unwrap();
        assert_eq!(audit_log(&shown).unwrap(), "ok: appending");
        let missing = dir.path().join("no/audit.jsonl").display().to_string();
        let err = format!("{:#}", audit_log(&missing).unwrap_err());
        assert!(
            err.contains(&missing) && err.contains("does not exist"),
            "{err}"
        );
    }
}
