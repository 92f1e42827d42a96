//! `dropgate auth`: registers a Dropbox account once (see `registration`).
//!
//! With `--config`, the token file goes exactly where that config's account expects it (its
//! `token_file`; a relative one is taken from the config file's folder), and the account's
//! `api_url` and proxy apply, so what `auth` writes is what `serve` reads, whichever folder it
//! runs in. Without it, `--token-file` (default `keys/ACCOUNT.token` in the working folder).

mod redirect;
mod registration;

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use crate::config::Config;

use registration::Registration;

// The field docs are also `--help` text, where a URL must stay bare.
#[allow(rustdoc::bare_urls)]
#[derive(clap::Args)]
pub struct AuthArgs {
    /// The name the config will know this account by (letters, digits, '.', '_', '-').
    #[arg(long)]
    account: String,
    /// The Dropbox app's App key, or KEY~SECRET (App key and App secret in one).
    #[arg(long, value_name = "KEY")]
    app_key: String,
    /// The app's App secret (else the DROPGATE_APP_SECRET variable, else it is asked for).
    #[arg(long, value_name = "SECRET")]
    app_secret: Option<String>,
    /// The redirect URL registered for the app; must end with ?command=register_dropbox_api.
    /// dropgate listens on its host and port for Dropbox's redirect.
    #[arg(long, value_name = "URL")]
    redirect_url: Option<String>,
    /// Headless: no redirect; paste the code Dropbox shows.
    #[arg(long)]
    no_browser: bool,
    /// Listen for the redirect here instead of the redirect URL's host:port.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<String>,
    /// The config that names this account: the token file goes where its `token_file` says,
    /// and its `api_url` and `proxy` are used.
    #[arg(long, value_name = "FILE", conflicts_with = "token_file")]
    config: Option<PathBuf>,
    /// Where to write the token file (mode 0600) [default: keys/ACCOUNT.token].
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// One base URL for Dropbox's api, content and oauth hosts (the emulator).
    #[arg(long, value_name = "URL")]
    api_url: Option<String>,
    /// Base URL of the authorize page [default: --api-url, else https://www.dropbox.com].
    #[arg(long, value_name = "URL")]
    authorize_base: Option<String>,
    /// Outbound proxy for the token exchange (default: HTTPS_PROXY; "none" for none).
    #[arg(long, value_name = "URL")]
    proxy: Option<String>,
    /// A PEM file of CAs to trust besides the system's (a proxy that inspects TLS).
    #[arg(long, value_name = "PATH")]
    ca_file: Option<PathBuf>,
    /// How long to wait for the redirect, in seconds.
    #[arg(long, default_value_t = 600, value_name = "SECS")]
    timeout: u64,
}

pub async fn run(args: AuthArgs) -> anyhow::Result<()> {
    let valid_name = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if args.account.is_empty() || !args.account.chars().all(valid_name) {
        anyhow::bail!(
            "--account {:?}: use letters, digits, '.', '_' and '-' only",
            args.account
        );
    }
    let secret = match args.app_secret {
        Some(secret) => Some(secret),
        None if args.app_key.contains('~') => None,
        None => Some(match std::env::var("DROPGATE_APP_SECRET") {
            Ok(secret) => secret,
            Err(_) => ask("App secret: ")?,
        }),
    };
    let (app_key, app_secret) =
        crate::backend::dropbox::authorization::app_credentials(&args.app_key, secret)?;
    let from_config = match &args.config {
        Some(config) => from_config(config, &args.account)?,
        None => FromConfig {
            token_file: args
                .token_file
                .unwrap_or_else(|| PathBuf::from(format!("keys/{}.token", args.account))),
            ..FromConfig::default()
        },
    };
    let token_file = from_config.token_file;
    // Said as an absolute path, so the `token_file` line printed at the end is right anywhere.
    let token_file = std::path::absolute(&token_file)
        .with_context(|| format!("cannot resolve {}", token_file.display()))?;
    let registration = Registration {
        account: args.account,
        app_key,
        app_secret,
        redirect_url: args.redirect_url,
        headless: args.no_browser,
        listen: args.listen,
        api_url: args.api_url.or(from_config.api_url),
        authorize_base: args.authorize_base,
        proxy: args.proxy.or(from_config.proxy),
        // --ca-file wins; else what the config trusts for this account.
        trust: match (&args.ca_file, from_config.trust) {
            (Some(file), _) => crate::tls_trust::Trust::with_ca_file(Some(file))?,
            (None, Some(trust)) => trust,
            (None, None) => crate::tls_trust::Trust::with_ca_file(None)?,
        },
        token_file,
        timeout: Duration::from_secs(args.timeout),
    };
    registration::register(&registration).await?;
    Ok(())
}

/// What `--config` says about the account being registered.
#[derive(Default)]
struct FromConfig {
    /// Where the token goes (the config's paths are absolute once loaded).
    token_file: PathBuf,
    api_url: Option<String>,
    /// The account's effective proxy.
    proxy: Option<String>,
    /// The CAs the account trusts (its `ca_file`, else the server's).
    trust: Option<crate::tls_trust::Trust>,
}

/// The account `name` of the config at `path`: its token file, API URL, effective proxy and
/// trusted CAs.
fn from_config(path: &Path, name: &str) -> anyhow::Result<FromConfig> {
    let config = Config::load(path)?;
    let account = config.account(name).with_context(|| {
        format!(
            "{} has no account named {name:?}: add an [[accounts]] table with name = {name:?} \
             and token_file first",
            path.display()
        )
    })?;
    let token_file = account.token_file.clone().with_context(|| {
        format!(
            "accounts.{name} in {} has no token_file: set token_file to where the token \
             should go",
            path.display()
        )
    })?;
    Ok(FromConfig {
        token_file,
        api_url: account.api_url.clone(),
        proxy: account.effective_proxy(&config.server).map(str::to_string),
        trust: Some(account.trust(&config.server)?),
    })
}

/// Asks on stderr, reads one line from stdin.
fn ask(prompt: &str) -> anyhow::Result<String> {
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim().to_string())
}
