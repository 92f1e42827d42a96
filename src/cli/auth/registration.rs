//! `dropgate auth`: registering a Dropbox account once, so the gateway never needs the admin
//! again.
//!
//! The flow (that of CrushFTP's "Dropbox Integration", whose app registrations dropgate
//! accepts as they are, done with today's OAuth): print the authorize URL (offline access,
//! PKCE S256, a fresh `state`); catch Dropbox's redirect on the redirect URL's host and port
//! ([`redirect`]) or, headless, read the code the admin pastes; trade the code for a refresh
//! token (`crate::backend::dropbox::api::oauth`, where Dropbox requests are built); learn who authorized (a
//! person's account id and email, or a team); and store it all in a token file only its owner
//! can read ([`token_file`]), which the config names. Secrets are never printed: not the app
//! secret, not the code, not the tokens.

use super::redirect;

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use url::Url;

use crate::backend::dropbox::api::oauth::{self as wire, AuthorizeParams, CodeExchange};
use crate::backend::dropbox::api::{Endpoints, Secret};
use crate::backend::dropbox::authorization::{self, pkce, Authorized};
use crate::backend::dropbox::token_file::TokenFile;
use crate::tls_trust::Trust;

/// Everything `dropgate auth` was told.
pub struct Registration {
    /// The name the config will know the account by.
    pub account: String,
    pub app_key: String,
    pub app_secret: Secret,
    /// Required unless `headless`; must end with `?command=register_dropbox_api`.
    pub redirect_url: Option<String>,
    /// No listener: Dropbox shows the code and the admin pastes it.
    pub headless: bool,
    /// Listen here instead of the redirect URL's host and port (behind a TLS proxy).
    pub listen: Option<String>,
    /// One base URL for the api, content and oauth hosts (the emulator); Dropbox when None.
    pub api_url: Option<String>,
    /// Base URL of the authorize page; `api_url` or Dropbox's when None.
    pub authorize_base: Option<String>,
    /// Outbound proxy for the token exchange; None = HTTPS_PROXY from the environment.
    pub proxy: Option<String>,
    /// The CAs Dropbox's certificate (or an inspecting proxy's) may chain to.
    pub trust: Trust,
    pub token_file: PathBuf,
    /// How long to wait for the redirect.
    pub timeout: Duration,
}

/// Runs the whole registration and writes the token file. Instructions go to stdout; in
/// headless mode the code is read from stdin.
pub async fn register(registration: &Registration) -> anyhow::Result<TokenFile> {
    let endpoints = match &registration.api_url {
        Some(url) => Endpoints::all(url)?,
        None => Endpoints::default(),
    };
    let authorize_base = authorize_base(registration)?;
    let attempt = pkce::Attempt::new();
    let (code, redirect_uri) = if registration.headless {
        print_authorize_url(&authorize_base, registration, &attempt, None)?;
        (read_pasted_code().await?, None)
    } else {
        let text = registration
            .redirect_url
            .as_deref()
            .context("give --redirect-url (or --no-browser to paste the code instead)")?;
        let url = redirect::parse_redirect_url(text)?;
        let address = redirect::listen_address(&url, registration.listen.as_deref())?;
        let listener = redirect::bind(&address).await?;
        print_authorize_url(&authorize_base, registration, &attempt, Some(text))?;
        let code =
            redirect::catch_code(listener, &url, &attempt.state, registration.timeout).await?;
        (code, Some(text))
    };
    let exchange = CodeExchange {
        app_key: &registration.app_key,
        app_secret: &registration.app_secret,
        code: &code,
        code_verifier: &attempt.verifier,
        redirect_uri,
    };
    let issued = wire::exchange_code(
        &endpoints,
        registration.proxy.as_deref(),
        &registration.trust,
        &exchange,
    )
    .await?;
    let file = authorization::token_file(
        &Authorized {
            account: &registration.account,
            app_key: &registration.app_key,
            app_secret: &registration.app_secret,
            endpoints: &endpoints,
            proxy: registration.proxy.as_deref(),
            trust: &registration.trust,
        },
        issued,
    )
    .await?;
    file.write(&registration.token_file)?;
    print_done(registration, &file);
    Ok(file)
}

fn authorize_base(registration: &Registration) -> anyhow::Result<Url> {
    let text = registration
        .authorize_base
        .as_deref()
        .or(registration.api_url.as_deref())
        .unwrap_or(wire::AUTHORIZE_BASE);
    Url::parse(text).with_context(|| format!("the authorize base URL {text:?} is not a URL"))
}

fn print_authorize_url(
    base: &Url,
    registration: &Registration,
    attempt: &pkce::Attempt,
    redirect_uri: Option<&str>,
) -> anyhow::Result<()> {
    let url = wire::authorize_url(
        base,
        &AuthorizeParams {
            app_key: &registration.app_key,
            redirect_uri,
            state: &attempt.state,
            code_challenge: &attempt.challenge,
        },
    );
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Open this URL in a browser, sign in to Dropbox as the account to register \
         (a team admin for a Business team app) and allow access:"
    )?;
    writeln!(out)?;
    writeln!(out, "{url}")?;
    writeln!(out)?;
    match redirect_uri {
        Some(_) => writeln!(
            out,
            "Waiting for Dropbox to redirect the browser back here..."
        )?,
        None => write!(
            out,
            "Then paste the code Dropbox shows here and press Enter: "
        )?,
    }
    out.flush()?;
    Ok(())
}

async fn read_pasted_code() -> anyhow::Result<Secret> {
    let line = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map(|_| line)
    })
    .await?
    .context("cannot read the code from the terminal")?;
    let code = line.trim();
    if code.is_empty() {
        bail!("no code was pasted");
    }
    Ok(Secret::new(code))
}

fn print_done(registration: &Registration, file: &TokenFile) {
    let who = match (&file.email, &file.team_id) {
        (Some(email), _) => format!("the Dropbox account {email}"),
        (None, Some(team_id)) => format!("the Dropbox Business team {team_id}"),
        (None, None) => "the Dropbox account".to_string(),
    };
    println!();
    println!(
        "Registered {who}. The refresh token is in {} (mode 0600).",
        registration.token_file.display()
    );
    println!("Add this account to the config:");
    println!();
    println!("[[accounts]]");
    println!("name = {:?}", registration.account);
    if let Some(api_url) = &registration.api_url {
        println!("api_url = {api_url:?}");
    }
    println!(
        "token_file = {:?}",
        registration.token_file.display().to_string()
    );
    if file.team {
        println!("# A team token: name the member whose Dropbox the users see.");
        println!("team_member_email = \"member@example.com\"");
        println!("# team_space = true   # to see the team folders too");
    }
}
