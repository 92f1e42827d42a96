//! `dropgate auth`: registers a Dropbox account once (see `registration`).

mod pkce;
mod redirect;
mod registration;

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Duration;

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
    let (app_key, app_secret) = registration::app_credentials(&args.app_key, secret)?;
    let token_file = args
        .token_file
        .unwrap_or_else(|| PathBuf::from(format!("keys/{}.token", args.account)));
    let registration = Registration {
        account: args.account,
        app_key,
        app_secret,
        redirect_url: args.redirect_url,
        headless: args.no_browser,
        listen: args.listen,
        api_url: args.api_url,
        authorize_base: args.authorize_base,
        proxy: args.proxy,
        trust: crate::tls_trust::Trust::with_ca_file(args.ca_file.as_deref())?,
        token_file,
        timeout: Duration::from_secs(args.timeout),
    };
    registration::register(&registration).await?;
    Ok(())
}

/// Asks on stderr, reads one line from stdin.
fn ask(prompt: &str) -> anyhow::Result<String> {
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim().to_string())
}
