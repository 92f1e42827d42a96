//! Secrets kept in files of their own (`app_secret_file`, `refresh_token_file`,
//! `access_token_file`, a webhook's `secret_file`): how such a file is read, in one place.
//!
//! A file lets a secret stay out of the config, which people paste into tickets, and come from
//! where secrets managers put them (systemd credentials, a mounted secret). Like a private key,
//! the file must be readable by its owner alone; a trailing newline (what `echo` and editors
//! leave) is not part of the secret. Messages name the setting and the file, never the content.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{bail, Context};

/// The secret in `path` without its trailing newline. `setting` names where the path was
/// given (e.g. `accounts.main.app_secret_file`), for the messages.
pub fn read(setting: &str, path: &Path) -> anyhow::Result<String> {
    let shown = path.display();
    let mode = std::fs::metadata(path)
        .with_context(|| format!("{setting} {shown}: cannot read it"))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        bail!(
            "{setting} {shown} is readable by others (mode {:o}); run: chmod 600 {shown}",
            mode & 0o777
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{setting} {shown}: cannot read it"))?;
    let secret = text.trim_end_matches(['\r', '\n']);
    if secret.is_empty() {
        bail!("{setting} {shown} is empty");
    }
    Ok(secret.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_private_non_empty_file_is_read_without_its_newline() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "s3cret\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let message = format!("{:#}", read("x_file", &file).unwrap_err());
        assert!(message.contains("x_file"), "{message}");
        assert!(
            message.contains("readable by others (mode 640)"),
            "{message}"
        );
        assert!(!message.contains("s3cret"), "{message}");

        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read("x_file", &file).unwrap(), "s3cret");

        std::fs::write(&file, "\n").unwrap();
        let message = format!("{:#}", read("x_file", &file).unwrap_err());
        assert!(message.contains("is empty"), "{message}");

        let missing = dir.path().join("missing");
        let message = format!("{:#}", read("x_file", &missing).unwrap_err());
        assert!(
            message.contains("x_file") && message.contains("missing"),
            "{message}"
        );
    }
}
