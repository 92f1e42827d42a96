//! The emulator's command-line options, one definition for both commands that run it:
//! `dropbox-emulator` and `dropgate emulator` (which flattens these into its subcommand).

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::realism::{Profile, Realism};
use crate::EmulatorConfig;

/// `--root DIR --listen ADDR [--page-size N] [--profile realistic] [--realism JSON]`.
#[derive(clap::Args, Debug, Clone)]
pub struct EmulatorArgs {
    #[arg(long, default_value = "emulator-data")]
    pub root: PathBuf,
    #[arg(long, default_value = "127.0.0.1:8700")]
    pub listen: SocketAddr,
    /// Largest list_folder page the emulator returns.
    #[arg(long, default_value_t = 500)]
    pub page_size: usize,
    /// Models of real Dropbox behaviour to switch on: `plain` (none) or `realistic` (all,
    /// with short delays).
    #[arg(long, value_enum, default_value = "plain")]
    pub profile: Profile,
    /// The models as JSON (see `PUT /__emulator/realism`); replaces `--profile`'s.
    #[arg(long, value_parser = parse_realism)]
    pub realism: Option<Realism>,
}

fn parse_realism(json: &str) -> Result<Realism, String> {
    serde_json::from_str(json).map_err(|e| format!("--realism: {e}"))
}

impl From<EmulatorArgs> for EmulatorConfig {
    fn from(args: EmulatorArgs) -> Self {
        EmulatorConfig {
            root: args.root,
            listen: args.listen,
            page_size: args.page_size,
            realism: args
                .realism
                .unwrap_or_else(|| Realism::of_profile(args.profile)),
        }
    }
}
