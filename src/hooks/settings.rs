//! The `[[hooks]]` tables and `[hook_queue]`: what an operator writes, checked before anything
//! runs.
//!
//! Two levels of checks, because they need different things: [`validate`] needs
//! only the text (one action, a URL that parses, globs that compile, a secret for a webhook)
//! and runs with the rest of the config file; [`HookConfig::resolve`] looks at the machine (the
//! command exists and is executable, the secret file is readable by its owner alone) and runs
//! at start and in `check-config`, so a reload of users never fails for a hook's sake.

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;

use super::event::EventKind;
use super::filter::Filter;

/// One `[[hooks]]` table.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookConfig {
    /// Names the hook in logs, metrics and its queue file; unique.
    pub name: String,
    /// The events it fires on.
    pub on: Vec<EventKind>,
    /// Only these users' events; all users when empty.
    #[serde(default)]
    pub users: Vec<String>,
    /// Only events whose path (or a rename's target) matches one of these globs; all paths when
    /// empty.
    #[serde(default)]
    pub paths: Vec<String>,
    /// POST the event here (http or https).
    pub webhook: Option<String>,
    /// The webhook's signing key.
    pub secret: Option<String>,
    /// A file holding the signing key (mode 0600), instead of `secret`.
    pub secret_file: Option<PathBuf>,
    /// Run this program (and arguments) with the event on stdin.
    pub command: Option<Vec<String>>,
    /// How long one delivery (a POST, a command run) may take before it counts as failed.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// An event not delivered this long after it happened is dropped (logged at ERROR).
    #[serde(default = "default_max_age_secs")]
    pub max_age_secs: u64,
}

impl std::fmt::Debug for HookConfig {
    /// The secret stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookConfig")
            .field("name", &self.name)
            .field("on", &self.on)
            .field("users", &self.users)
            .field("paths", &self.paths)
            .field("webhook", &self.webhook)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("secret_file", &self.secret_file)
            .field("command", &self.command)
            .field("timeout_secs", &self.timeout_secs)
            .field("max_age_secs", &self.max_age_secs)
            .finish()
    }
}

fn default_timeout_secs() -> u64 {
    10
}

/// A day: long enough for a receiver's weekend outage to be noticed and fixed the same day.
fn default_max_age_secs() -> u64 {
    24 * 3600
}

/// `[hook_queue]`: where undelivered events are kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HookQueueConfig {
    /// The folder of the queue files (one per hook) and their delivery marks. It must survive a
    /// reboot, so not a tmpfs; relative paths are from the config file's folder.
    pub dir: PathBuf,
}

impl Default for HookQueueConfig {
    fn default() -> Self {
        HookQueueConfig {
            dir: PathBuf::from("state/hooks"),
        }
    }
}

/// What a hook does with an event, resolved against the machine.
#[derive(Clone)]
pub enum Action {
    Webhook { url: url::Url, secret: Vec<u8> },
    Command { program: PathBuf, args: Vec<String> },
}

/// A hook ready to run: its checked filter and action.
pub struct ResolvedHook {
    pub name: String,
    pub filter: Filter,
    pub action: Action,
    pub timeout: Duration,
    pub max_age: Duration,
}

/// Checks every hook and that their names are unique; errors name the hook.
pub fn validate(hooks: &[HookConfig]) -> anyhow::Result<()> {
    let mut names = HashSet::new();
    for hook in hooks {
        if !names.insert(hook.name.as_str()) {
            bail!("hooks: the name {:?} is used twice", hook.name);
        }
        hook.validate()
            .with_context(|| format!("hooks.{}", hook.name))?;
    }
    Ok(())
}

impl HookConfig {
    fn validate(&self) -> anyhow::Result<()> {
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bail!("name: use letters, digits, - and _ (it names the hook's queue file)");
        }
        if self.on.is_empty() {
            bail!("on: list at least one event (upload, download, delete, rename, mkdir, login_failed)");
        }
        Filter::new(&self.users, &self.paths)?;
        if self.timeout_secs == 0 {
            bail!("timeout_secs must be at least 1");
        }
        if self.max_age_secs == 0 {
            bail!("max_age_secs must be at least 1");
        }
        match (&self.webhook, &self.command) {
            (Some(url), None) => self.validate_webhook(url),
            (None, Some(command)) => {
                if self.secret.is_some() || self.secret_file.is_some() {
                    bail!("secret and secret_file go with webhook, not command");
                }
                match command.first() {
                    Some(program) if !program.is_empty() => Ok(()),
                    _ => bail!(
                        "command: give the program first, e.g. [\"/usr/local/bin/on-upload\"]"
                    ),
                }
            }
            _ => bail!("set exactly one of webhook and command"),
        }
    }

    fn validate_webhook(&self, url: &str) -> anyhow::Result<()> {
        let parsed = url::Url::parse(url)
            .map_err(|e| anyhow::anyhow!("webhook {url:?} is not a URL ({e})"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
            bail!("webhook {url:?} must be an http:// or https:// URL with a host");
        }
        match (&self.secret, &self.secret_file) {
            (Some(secret), None) if !secret.is_empty() => Ok(()),
            (None, Some(_)) => Ok(()),
            (Some(_), Some(_)) => bail!("set only one of secret and secret_file"),
            _ => bail!("a webhook needs a secret (or secret_file) to sign its requests"),
        }
    }

    /// The hook checked against the machine: the secret read, the command found executable.
    pub fn resolve(&self) -> anyhow::Result<ResolvedHook> {
        self.validate()
            .with_context(|| format!("hooks.{}", self.name))?;
        let action = self
            .action()
            .with_context(|| format!("hooks.{}", self.name))?;
        Ok(ResolvedHook {
            name: self.name.clone(),
            filter: Filter::new(&self.users, &self.paths)?.with_events(&self.on),
            action,
            timeout: Duration::from_secs(self.timeout_secs),
            max_age: Duration::from_secs(self.max_age_secs),
        })
    }

    fn action(&self) -> anyhow::Result<Action> {
        if let Some(url) = &self.webhook {
            let secret = match (&self.secret, &self.secret_file) {
                (Some(secret), _) => secret.as_bytes().to_vec(),
                (None, Some(file)) => crate::secret_file::read("secret_file", file)?.into_bytes(),
                (None, None) => bail!("a webhook needs a secret"),
            };
            return Ok(Action::Webhook {
                url: url::Url::parse(url)?,
                secret,
            });
        }
        let command = self.command.as_deref().unwrap_or_default();
        let program = PathBuf::from(&command[0]);
        check_executable(&program)?;
        Ok(Action::Command {
            program,
            args: command[1..].to_vec(),
        })
    }
}

/// A command must be given by its full path (no search of PATH, which differs between a shell
/// and a service) and be an executable file.
fn check_executable(program: &Path) -> anyhow::Result<()> {
    if !program.is_absolute() {
        bail!(
            "command: {} is not an absolute path (write the program's full path)",
            program.display()
        );
    }
    let metadata = std::fs::metadata(program)
        .with_context(|| format!("command: {} does not exist", program.display()))?;
    if !metadata.is_file() || metadata.permissions().mode() & 0o111 == 0 {
        bail!("command: {} is not an executable file", program.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> HookConfig {
        toml::from_str(text).unwrap()
    }

    fn error(hook: &HookConfig) -> String {
        format!("{:#}", validate(std::slice::from_ref(hook)).unwrap_err())
    }

    #[test]
    fn a_webhook_needs_a_secret_and_an_http_url() {
        let hook = parse("name = \"n\"\non = [\"upload\"]\nwebhook = \"https://x.example/h\"");
        assert!(error(&hook).contains("hooks.n: a webhook needs a secret"));
        let hook = parse("name = \"n\"\non = [\"upload\"]\nwebhook = \"ftp://x\"\nsecret = \"s\"");
        assert!(error(&hook).contains("must be an http:// or https:// URL"));
        let hook =
            parse("name = \"n\"\non = [\"upload\"]\nwebhook = \"not a url\"\nsecret = \"s\"");
        assert!(error(&hook).contains("is not a URL"));
        let hook =
            parse("name = \"n\"\non = [\"upload\"]\nwebhook = \"http://x/\"\nsecret = \"s\"");
        validate(&[hook]).unwrap();
    }

    #[test]
    fn exactly_one_action() {
        let hook = parse("name = \"n\"\non = [\"upload\"]");
        assert!(error(&hook).contains("exactly one of webhook and command"));
        let hook = parse(
            "name = \"n\"\non = [\"upload\"]\nwebhook = \"http://x/\"\nsecret = \"s\"\ncommand = [\"/bin/true\"]",
        );
        assert!(error(&hook).contains("exactly one of webhook and command"));
    }

    #[test]
    fn unknown_events_and_bad_globs_are_refused() {
        let bad = toml::from_str::<HookConfig>(
            "name = \"n\"\non = [\"uplaod\"]\ncommand = [\"/bin/true\"]",
        );
        assert!(bad.is_err());
        let hook =
            parse("name = \"n\"\non = [\"upload\"]\npaths = [\"/a/[\"]\ncommand = [\"/bin/true\"]");
        assert!(error(&hook).contains("paths"), "{}", error(&hook));
    }

    #[test]
    fn names_are_unique() {
        let hook = parse("name = \"n\"\non = [\"upload\"]\ncommand = [\"/bin/true\"]");
        let message = format!("{:#}", validate(&[hook.clone(), hook]).unwrap_err());
        assert!(message.contains("used twice"));
    }

    #[test]
    fn a_command_must_be_an_absolute_executable() {
        let hook = parse("name = \"n\"\non = [\"upload\"]\ncommand = [\"true\"]");
        let message = format!("{:#}", hook.resolve().err().unwrap());
        assert!(message.contains("not an absolute path"), "{message}");
        let hook = parse("name = \"n\"\non = [\"upload\"]\ncommand = [\"/nonexistent/x\"]");
        let message = format!("{:#}", hook.resolve().err().unwrap());
        assert!(
            message.contains("hooks.n: command: /nonexistent/x does not exist"),
            "{message}"
        );
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "x").unwrap();
        let hook = parse(&format!(
            "name = \"n\"\non = [\"upload\"]\ncommand = [{:?}]",
            plain.display().to_string()
        ));
        let message = format!("{:#}", hook.resolve().err().unwrap());
        assert!(message.contains("not an executable file"), "{message}");
    }

    /// The commented example in config/dropgate.toml, uncommented, is a valid config.
    #[test]
    fn the_example_config_hooks_are_valid() {
        let example = include_str!("../../config/dropgate.toml");
        let config: crate::config::Config = toml::from_str(example).unwrap();
        assert!(config.hooks.is_empty(), "the demo runs without hooks");
        let start = example.find("# [[hooks]]").expect("an example hook");
        let uncommented: String = example[start..]
            .lines()
            .take_while(|line| line.starts_with('#'))
            .map(|line| line.trim_start_matches('#').trim_start())
            .collect::<Vec<_>>()
            .join("\n");
        #[derive(Deserialize)]
        struct Example {
            hooks: Vec<HookConfig>,
        }
        let example: Example = toml::from_str(&uncommented).unwrap();
        assert_eq!(example.hooks.len(), 2);
        validate(&example.hooks).unwrap();
    }

    #[test]
    fn a_secret_file_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "s3cret\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let text = format!(
            "name = \"n\"\non = [\"upload\"]\nwebhook = \"http://x/\"\nsecret_file = {:?}",
            file.display().to_string()
        );
        let message = format!("{:#}", parse(&text).resolve().err().unwrap());
        assert!(message.contains("readable by others"), "{message}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        match parse(&text).resolve().unwrap().action {
            Action::Webhook { secret, .. } => assert_eq!(secret, b"s3cret"),
            Action::Command { .. } => panic!("a webhook"),
        }
    }
}
