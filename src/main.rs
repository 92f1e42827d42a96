//! The `dropgate` command line.

use std::io::{BufRead, Write};
#[cfg(feature = "demo")]
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[cfg(feature = "demo")]
use dropbox_emulator::{EmulatorArgs, EmulatorConfig};
use dropgate::config::Config;
use dropgate::gateway::reload::Reloader;
use dropgate::gateway::{check, Gateway};
use dropgate::oauth::{self, Registration};
use dropgate::ssh::host_key;
use dropgate::users::password;

#[derive(Parser)]
#[command(version, about = "An SSH/SFTP server that serves Dropbox")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per run: the size of the largest variant costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        #[arg(long, default_value = "config/dropgate.toml")]
        config: PathBuf,
    },
    /// Try it without a Dropbox account: the built-in Dropbox emulator plus the gateway.
    #[cfg(feature = "demo")]
    Demo {
        #[arg(long, default_value = "config/dropgate.toml")]
        config: PathBuf,
        /// Where the emulator keeps the demo Dropbox's files.
        #[arg(long, default_value = "demo-data")]
        data: PathBuf,
        /// The demo user's private key (created if missing; its .pub is the authorized key).
        #[arg(long, default_value = "keys/demo_user_ed25519")]
        user_key: PathBuf,
    },
    /// Run only the Dropbox API emulator.
    #[cfg(feature = "demo")]
    Emulator(EmulatorArgs),
    /// Create an ed25519 key pair (host key or user key): PATH (0600) and PATH.pub.
    Keygen { path: PathBuf },
    /// Register a Dropbox account: sign in once, store its refresh token in a token file.
    Auth(AuthArgs),
    /// Print an argon2id hash of a password, for a user's `password_hash`. The password is read
    /// from the terminal (asked twice, not shown) or from the first line of stdin.
    HashPassword,
    /// Load the config, sign in to every account, check every user; print who gets what.
    CheckConfig {
        #[arg(long, default_value = "config/dropgate.toml")]
        config: PathBuf,
    },
}

#[derive(clap::Args)]
struct AuthArgs {
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
    /// How long to wait for the redirect, in seconds.
    #[arg(long, default_value_t = 600, value_name = "SECS")]
    timeout: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve { config } => serve(&config).await,
        #[cfg(feature = "demo")]
        Command::Demo {
            config,
            data,
            user_key,
        } => demo(&config, &data, &user_key).await,
        #[cfg(feature = "demo")]
        Command::Emulator(args) => dropbox_emulator::run(args.into()).await,
        Command::Auth(args) => auth(args).await,
        Command::CheckConfig { config } => check_config(&config).await,
        Command::HashPassword => {
            let password = read_new_password()?;
            println!("{}", password::hash_password(&password)?);
            Ok(())
        }
        Command::Keygen { path } => {
            let key = host_key::generate();
            host_key::write_key_pair(&key, &path)?;
            println!("{} {}", path.display(), host_key::fingerprint(&key));
            Ok(())
        }
    }
}

/// Runs until the listener fails, or until SIGTERM/SIGINT (SIGHUP reloads users and keys): then no new connections, open
/// uploads get `shutdown_timeout_secs` to commit, and a second signal exits at once.
async fn serve(config_path: &Path) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    // Listening for the signals before anything starts: their default action ends the process.
    let mut signals = StopSignals::new()?;
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot listen for SIGHUP")?;
    let gateway = Gateway::start(&config).await?;
    let drainer = gateway.drainer();
    tokio::spawn(reload_on_hangup(
        hangups,
        gateway.reloader(),
        config_path.to_path_buf(),
    ));
    tokio::select! {
        result = gateway.wait() => return result,
        name = signals.next() => {
            let timeout = Duration::from_secs(config.server.shutdown_timeout_secs);
            tracing::info!(
                signal = name,
                open_uploads = drainer.open_uploads(),
                timeout_secs = timeout.as_secs(),
                "shutting down: no new connections; waiting for open uploads to commit"
            );
            tokio::select! {
                finished = drainer.drain(timeout) => {
                    if finished {
                        tracing::info!("all uploads finished; exiting");
                    }
                }
                name = signals.next() => {
                    tracing::warn!(signal = name, "second signal: exiting now");
                }
            }
        }
    }
    Ok(())
}

/// Each SIGHUP reloads the users and keys from the config file (see `gateway::reload`).
async fn reload_on_hangup(
    mut hangups: tokio::signal::unix::Signal,
    reloader: Reloader,
    config_path: PathBuf,
) {
    while hangups.recv().await.is_some() {
        tracing::info!(config = %config_path.display(), "SIGHUP: reloading users and keys");
        reloader.reload_file(&config_path);
    }
}

/// SIGTERM and SIGINT, whichever comes.
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn new() -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(StopSignals {
            term: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
        })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

async fn auth(args: AuthArgs) -> anyhow::Result<()> {
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
    let (app_key, app_secret) = oauth::app_credentials(&args.app_key, secret)?;
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
        token_file,
        timeout: Duration::from_secs(args.timeout),
    };
    oauth::register(&registration).await?;
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

/// The password to hash: typed twice at a terminal (not echoed), else stdin's first line.
fn read_new_password() -> anyhow::Result<String> {
    use std::io::IsTerminal;
    let password = if std::io::stdin().is_terminal() {
        let first = ask_hidden("Password: ")?;
        if ask_hidden("Again: ")? != first {
            anyhow::bail!("the two passwords differ");
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if password.is_empty() {
        anyhow::bail!("the password is empty");
    }
    Ok(password)
}

/// Asks on stderr and reads a line from the terminal with echo off (restored afterwards).
fn ask_hidden(prompt: &str) -> anyhow::Result<String> {
    use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).context("cannot read the terminal's settings")?;
    let mut silent = saved.clone();
    silent.local_modes.remove(LocalModes::ECHO);
    tcsetattr(&stdin, OptionalActions::Now, &silent)
        .context("cannot turn off the terminal's echo")?;
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    let _ = tcsetattr(&stdin, OptionalActions::Now, &saved);
    eprintln!();
    read?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

async fn check_config(config_path: &Path) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    let report = check::check_config(&config).await;
    print!("{}", report.text);
    if !report.ok {
        anyhow::bail!(
            "{}: some accounts or users failed the check",
            config_path.display()
        );
    }
    Ok(())
}

/// Starts the emulator where the config's first account points, then the gateway, and prints
/// the exact command that connects.
#[cfg(feature = "demo")]
async fn demo(config_path: &Path, data: &Path, user_key: &Path) -> anyhow::Result<()> {
    if !user_key.exists() {
        host_key::write_key_pair(&host_key::generate(), user_key)?;
    }
    let config = Config::load(config_path)?;
    let emulator_addr = demo_emulator_addr(&config)?;
    let emulator = dropbox_emulator::Emulator::start(EmulatorConfig {
        root: data.to_path_buf(),
        listen: emulator_addr,
        ..EmulatorConfig::default()
    })
    .await
    .with_context(|| format!("cannot start the emulator on {emulator_addr}"))?;
    let gateway = Gateway::start(&config).await?;

    let known_hosts = data.join("known_hosts");
    let host_public = host_key::load(&config.server.host_key)?
        .public_key()
        .to_openssh()?;
    let port = gateway.addr().port();
    std::fs::write(&known_hosts, format!("[127.0.0.1]:{port} {host_public}\n"))?;

    let user = config.users.first().context("the config has no users")?;
    println!(
        "dropgate demo: the emulator at {} stores files under {}",
        emulator.base_url(),
        data.display()
    );
    println!("Connect with:");
    println!(
        "sftp -P {port} -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile={} {}@127.0.0.1",
        user_key.display(),
        known_hosts.display(),
        user.name
    );
    println!("Press Ctrl-C to stop.");
    tokio::select! {
        result = gateway.wait() => result?,
        _ = tokio::signal::ctrl_c() => {}
    }
    emulator.shutdown().await;
    Ok(())
}

/// The emulator listens where the demo config's account expects Dropbox to be.
#[cfg(feature = "demo")]
fn demo_emulator_addr(config: &Config) -> anyhow::Result<SocketAddr> {
    let account = config
        .accounts
        .first()
        .context("the config has no accounts")?;
    let url = account
        .api_url
        .as_deref()
        .context("the demo needs an account with api_url pointing at 127.0.0.1")?;
    let url = url::Url::parse(url).with_context(|| format!("api_url {url:?}"))?;
    let host = url.host_str().unwrap_or("127.0.0.1");
    let port = url.port_or_known_default().unwrap_or(8700);
    format!("{host}:{port}")
        .parse()
        .with_context(|| format!("api_url {url} is not an IP address and port"))
}
