//! The emulator's command-line options, one definition for both commands that run it:
//! `dropbox-emulator` and `dropgate emulator` (which flattens these into its subcommand).

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::EmulatorConfig;

/// `--root DIR --listen ADDR [--page-size N]`.
#[derive(clap::Args, Debug, Clone)]
pub struct EmulatorArgs {
    #[arg(long, default_value = "emulator-data")]
    pub root: PathBuf,
    #[arg(long, default_value = "127.0.0.1:8700")]
    pub listen: SocketAddr,
    /// Largest list_folder page the emulator returns.
    #[arg(long, default_value_t = 500)]
    pub page_size: usize,
}

impl From<EmulatorArgs> for EmulatorConfig {
    fn from(args: EmulatorArgs) -> Self {
        EmulatorConfig {
            root: args.root,
            listen: args.listen,
            page_size: args.page_size,
        }
    }
}
