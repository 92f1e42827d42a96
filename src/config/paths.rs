//! Relative paths in the config are relative to the config file's folder.
//!
//! Taken from the working directory instead, the same file meant different keys depending on
//! where `dropgate` was started: started from the wrong folder, `serve` created a new host key
//! and every partner saw "REMOTE HOST IDENTIFICATION HAS CHANGED". So [`Config::load`] makes
//! every path absolute here, once, and nothing after it ever joins a path with a base again;
//! the messages that name a file then name it absolutely.
//!
//! A new path setting must be added to [`make_absolute`], or it would silently follow the
//! working directory again (the test below sets every one).

use std::path::{Component, Path, PathBuf};

use super::Config;

/// The audit log's `output` that is not a file.
const STDERR: &str = "stderr";

/// Makes every path in `config` absolute, taking relative ones from `base` (an absolute
/// folder: the config file's).
pub(super) fn make_absolute(config: &mut Config, base: &Path) {
    let join = |path: &mut PathBuf| *path = from_folder(base, path);
    let join_some = |path: &mut Option<PathBuf>| {
        if let Some(path) = path {
            join(path)
        }
    };
    let server = &mut config.server;
    join(&mut server.host_key);
    join_some(&mut server.host_key_rsa);
    join_some(&mut server.host_key_ecdsa);
    join_some(&mut server.trusted_user_ca_keys_file);
    join_some(&mut server.ca_file);
    join_some(&mut config.upload.spool_dir);
    for account in &mut config.accounts {
        join_some(&mut account.token_file);
        join_some(&mut account.ca_file);
        join_some(&mut account.app_secret_file);
        join_some(&mut account.refresh_token_file);
        join_some(&mut account.access_token_file);
    }
    for user in &mut config.users {
        join_some(&mut user.authorized_keys_file);
    }
    if let Some(output) = config.audit.output.as_mut().filter(|o| *o != STDERR) {
        *output = from_folder(base, Path::new(output)).display().to_string();
    }
    for hook in &mut config.hooks {
        join_some(&mut hook.secret_file);
    }
    join(&mut config.hook_queue.dir);
    let admin = &mut config.admin;
    join(&mut admin.accounts_dir);
    join_some(&mut admin.tls_certificate);
    join_some(&mut admin.tls_key);
}

/// `path` from `base`, with its leading `..` taken off `base` (`/etc/dropgate` and
/// `../keys/k` make `/etc/keys/k`, as the messages should show it). That is what the kernel
/// does too, because `base` has no symbolic links ([`folder_of`]).
fn from_folder(base: &Path, path: &Path) -> PathBuf {
    let mut joined = base.to_path_buf();
    let mut rest = path.components();
    loop {
        let mut ahead = rest.clone();
        match ahead.next() {
            Some(Component::ParentDir) => {
                joined.pop();
            }
            Some(Component::CurDir) => {}
            _ => break,
        }
        rest = ahead;
    }
    joined.join(rest.as_path())
}

/// The folder the config file at `path` is named in (a symbolic link to the file is taken
/// where it is, as the operator named it): absolute, without symbolic links in it.
pub(super) fn folder_of(path: &Path) -> anyhow::Result<PathBuf> {
    let absolute = std::path::absolute(path)?;
    let folder = absolute.parent().unwrap_or(Path::new("/"));
    Ok(std::fs::canonicalize(folder)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_setting_is_taken_from_the_config_folder() {
        let text = r#"
            [server]
            listen = "127.0.0.1:2222"
            host_key = "keys/ed"
            host_key_rsa = "keys/rsa"
            host_key_ecdsa = "/abs/ecdsa"
            trusted_user_ca_keys_file = "ca.pub"
            [upload]
            spool_dir = "spool"
            [audit]
            output = "log/audit.jsonl"
            [hook_queue]
            dir = "state/hooks"
            [[hooks]]
            name = "h"
            on = ["upload"]
            webhook = "http://x/"
            secret_file = "hook.secret"
            [[accounts]]
            name = "main"
            token_file = "main.token"
            [[users]]
            name = "alice"
            account = "main"
            authorized_keys_file = "alice.keys"
            [admin]
            accounts_dir = "web-accounts"
            tls_certificate = "tls/cert.pem"
            tls_key = "tls/key.pem"
        "#;
        let mut config: Config = toml::from_str(text).unwrap();
        make_absolute(&mut config, Path::new("/etc/dropgate"));
        let at = |p: &Path| p.display().to_string();
        let server = &config.server;
        assert_eq!(at(&server.host_key), "/etc/dropgate/keys/ed");
        assert_eq!(
            at(server.host_key_rsa.as_ref().unwrap()),
            "/etc/dropgate/keys/rsa"
        );
        assert_eq!(at(server.host_key_ecdsa.as_ref().unwrap()), "/abs/ecdsa");
        assert_eq!(
            at(server.trusted_user_ca_keys_file.as_ref().unwrap()),
            "/etc/dropgate/ca.pub"
        );
        assert_eq!(
            at(config.upload.spool_dir.as_ref().unwrap()),
            "/etc/dropgate/spool"
        );
        assert_eq!(
            config.audit.output.as_deref(),
            Some("/etc/dropgate/log/audit.jsonl")
        );
        assert_eq!(at(&config.hook_queue.dir), "/etc/dropgate/state/hooks");
        assert_eq!(
            at(config.hooks[0].secret_file.as_ref().unwrap()),
            "/etc/dropgate/hook.secret"
        );
        assert_eq!(
            at(config.accounts[0].token_file.as_ref().unwrap()),
            "/etc/dropgate/main.token"
        );
        assert_eq!(
            at(config.users[0].authorized_keys_file.as_ref().unwrap()),
            "/etc/dropgate/alice.keys"
        );
        let admin = &config.admin;
        assert_eq!(at(&admin.accounts_dir), "/etc/dropgate/web-accounts");
        assert_eq!(
            at(admin.tls_certificate.as_ref().unwrap()),
            "/etc/dropgate/tls/cert.pem"
        );
        assert_eq!(
            at(admin.tls_key.as_ref().unwrap()),
            "/etc/dropgate/tls/key.pem"
        );
    }

    #[test]
    fn stderr_stays_stderr_and_defaults_follow_the_config_too() {
        let mut config: Config =
            toml::from_str("[server]\nlisten = \"127.0.0.1:2222\"\n[audit]\noutput = \"stderr\"\n")
                .unwrap();
        make_absolute(&mut config, Path::new("/srv/gw"));
        assert_eq!(config.audit.output.as_deref(), Some("stderr"));
        assert_eq!(
            config.server.host_key,
            Path::new("/srv/gw/keys/ssh_host_ed25519_key")
        );
        assert_eq!(config.upload.spool_dir, None, "the system temp folder");
    }

    #[test]
    fn the_folder_of_a_relative_config_is_absolute() {
        let folder = folder_of(Path::new("config/dropgate.toml")).unwrap();
        assert!(folder.is_absolute());
        assert!(folder.ends_with("config"));
    }

    #[test]
    fn leading_parent_folders_are_taken_off_the_base() {
        let base = Path::new("/etc/dropgate");
        let at = |path: &str| from_folder(base, Path::new(path));
        assert_eq!(at("../keys/k"), Path::new("/etc/keys/k"));
        assert_eq!(at("./k"), Path::new("/etc/dropgate/k"));
        assert_eq!(
            at("a/../k"),
            Path::new("/etc/dropgate/a/../k"),
            "only leading ones"
        );
        assert_eq!(at("/abs/k"), Path::new("/abs/k"));
        assert_eq!(at("../../../k"), Path::new("/k"));
    }
}
