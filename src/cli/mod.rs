//! The `dropgate` command line: one module per command.
//!
//! [`serve`] runs the gateway; [`demo`] runs it on the built-in emulator (feature `demo`);
//! [`auth`] registers a Dropbox account; [`check`] is `check-config`; [`keygen`] and
//! [`hash_password`] make a key pair and a password hash for the config.

pub mod auth;
pub mod check;
#[cfg(feature = "demo")]
pub mod demo;
pub mod hash_password;
pub mod keygen;
pub mod serve;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use auth::AuthArgs;

use crate::config::Config;
use crate::logging::LogFormat;

#[derive(Parser)]
#[command(version, about = "An SSH/SFTP server that serves Dropbox")]
pub struct Cli {
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
        /// The log's format on stderr (default: `[server] log_format`, else text).
        #[arg(long, value_enum)]
        log_format: Option<LogFormat>,
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
        /// Default: the first user's authorized_keys_file without `.pub`.
        #[arg(long)]
        user_key: Option<PathBuf>,
    },
    /// Run only the Dropbox API emulator.
    #[cfg(feature = "demo")]
    Emulator(dropbox_emulator::EmulatorArgs),
    /// Create an ed25519 key pair (host key or user key): PATH (0600) and PATH.pub.
    Keygen { path: PathBuf },
    /// Register a Dropbox account: sign in once, store its refresh token in a token file.
    Auth(AuthArgs),
    /// Print an argon2id hash of a password, for a user's `password_hash`. The password is read
    /// from the terminal (asked twice, not shown) or from the first line of stdin.
    HashPassword,
    /// Check the config before starting (or reloading) the gateway: sign in to every account,
    /// check every user, the host keys, the spool folder, the audit log, the addresses and the
    /// hooks; print who gets what. Exits non-zero if anything failed.
    CheckConfig {
        #[arg(long, default_value = "config/dropgate.toml")]
        config: PathBuf,
        /// The gateway is running with this config (`systemctl reload`): its listen and
        /// metrics addresses being in use is expected, not a failure.
        #[arg(long)]
        running: bool,
    },
}

impl Cli {
    /// Runs the command, with the log on stderr (see [`crate::logging`]).
    pub async fn run(self) -> anyhow::Result<()> {
        crate::logging::init(self.log_format());
        match self.command {
            Command::Serve { config, .. } => serve::run(&config).await,
            #[cfg(feature = "demo")]
            Command::Demo {
                config,
                data,
                user_key,
            } => demo::run(&config, &data, user_key.as_deref()).await,
            #[cfg(feature = "demo")]
            Command::Emulator(args) => dropbox_emulator::run(args.into()).await,
            Command::Auth(args) => auth::run(args).await,
            Command::CheckConfig { config, running } => check::run(&config, running).await,
            Command::HashPassword => hash_password::run(),
            Command::Keygen { path } => keygen::run(&path),
        }
    }

    /// `serve`'s flag, else its config's `log_format` (a config that does not load is
    /// reported by `serve` itself, in text); text for every other command.
    fn log_format(&self) -> LogFormat {
        match &self.command {
            Command::Serve {
                log_format: Some(format),
                ..
            } => *format,
            Command::Serve { config, .. } => Config::load(config)
                .map(|config| config.server.log_format)
                .unwrap_or_default(),
            _ => LogFormat::Text,
        }
    }
}
