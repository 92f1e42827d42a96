//! The token file: what `dropgate auth` obtained, kept where only its owner can read it.
//!
//! A refresh token is a lasting key to someone's Dropbox, so it does not go into the config
//! (which people paste into tickets); the config names the file instead (`token_file`). The file
//! is TOML, written to a temporary file created with mode 0600 and then renamed into place, so
//! there is never a moment in which the token sits in a file others can read; and it is refused
//! on load when its mode lets others read it. Written by root into a folder another user owns
//! (the service's), it becomes that user's, so the service can read it.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// What a registration stores. Debug hides the secrets.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenFile {
    /// The account name given to `dropgate auth` (what the config's `[[accounts]] name` is).
    pub account: String,
    pub app_key: String,
    pub app_secret: String,
    pub refresh_token: String,
    /// True for a team-scoped (Business) token: user calls need `team_member_email`.
    pub team: bool,
    /// The person who authorized a user-scoped token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The team of a team-scoped token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
    /// The scopes Dropbox granted, space-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// When the registration happened (UTC).
    pub created: String,
    /// An account connected from the admin page keeps its team settings here, since the config
    /// does not name it: the member a team token acts as, and whether paths start at the team
    /// space.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_member_email: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub team_space: bool,
}

impl fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenFile")
            .field("account", &self.account)
            .field("app_key", &self.app_key)
            .field("app_secret", &"[redacted]")
            .field("refresh_token", &"[redacted]")
            .field("team", &self.team)
            .field("account_id", &self.account_id)
            .field("email", &self.email)
            .field("team_id", &self.team_id)
            .field("scope", &self.scope)
            .field("created", &self.created)
            .finish()
    }
}

const HEADER: &str = "# dropgate token file, written by `dropgate auth`. It unlocks a Dropbox \
account: keep it mode 0600 and out of backups others can read.\n\n";

impl TokenFile {
    /// Writes the file (mode 0600), replacing any earlier one; creates its folder if needed.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let folder = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(folder)
            .with_context(|| format!("cannot create the folder {}", folder.display()))?;
        let text = format!("{HEADER}{}", toml::to_string(self)?);
        // tempfile creates it 0600 from the first byte; the rename makes the write atomic.
        let mut temp = tempfile::Builder::new()
            .prefix(".token-")
            .permissions(std::fs::Permissions::from_mode(0o600))
            .tempfile_in(folder)
            .with_context(|| format!("cannot create a file in {}", folder.display()))?;
        temp.write_all(text.as_bytes())?;
        give_to_folder_owner(temp.as_file(), folder)?;
        temp.as_file().sync_all()?;
        temp.persist(path)
            .with_context(|| format!("cannot write the token file {}", path.display()))?;
        Ok(())
    }

    /// Reads a token file, refusing one that others can read.
    pub fn read(path: &Path) -> anyhow::Result<TokenFile> {
        let metadata = match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "no token file at {} yet: register the account with `dropgate auth --config \
                 CONFIG --account NAME`, which writes it there",
                path.display()
            ),
            other => {
                other.with_context(|| format!("cannot read the token file {}", path.display()))?
            }
        };
        let mode = metadata.permissions().mode();
        if mode & 0o077 != 0 {
            bail!(
                "the token file {} is readable by others (mode {:o}); run: chmod 600 {}",
                path.display(),
                mode & 0o777,
                path.display()
            );
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the token file {}", path.display()))?;
        // toml's message quotes the offending line, which may hold a token: say less.
        toml::from_str(&text).map_err(|_| {
            anyhow::anyhow!(
                "the token file {} is not a dropgate token file (run dropgate auth again)",
                path.display()
            )
        })
    }
}

/// Root writing into a folder someone else owns (`dropgate auth` run with sudo, the token going
/// to the service's /var/lib/dropgate): the file becomes the folder owner's, still 0600, so the
/// service can read it. Anyone else's file stays their own.
fn give_to_folder_owner(file: &std::fs::File, folder: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let folder_meta = std::fs::metadata(folder)?;
    if file.metadata()?.uid() == 0 && folder_meta.uid() != 0 {
        std::os::unix::fs::fchown(file, Some(folder_meta.uid()), Some(folder_meta.gid()))
            .with_context(|| {
                format!(
                    "cannot give the token file to the owner of {}",
                    folder.display()
                )
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TokenFile {
        TokenFile {
            account: "main".into(),
            app_key: "key".into(),
            app_secret: "SECRET-A".into(),
            refresh_token: "SECRET-R".into(),
            team: false,
            account_id: Some("dbid:1".into()),
            email: Some("a@example.com".into()),
            team_id: None,
            scope: None,
            created: "2026-01-01T00:00:00Z".into(),
            team_member_email: None,
            team_space: false,
        }
    }

    #[test]
    fn written_0600_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/main.token");
        sample().write(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let back = TokenFile::read(&path).unwrap();
        assert_eq!(back.refresh_token, "SECRET-R");
        assert_eq!(back.email.as_deref(), Some("a@example.com"));
        // Overwriting keeps the mode.
        sample().write(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.token");
        sample().write(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = TokenFile::read(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn debug_hides_secrets() {
        let shown = format!("{:?}", sample());
        assert!(!shown.contains("SECRET"), "{shown}");
    }
}
