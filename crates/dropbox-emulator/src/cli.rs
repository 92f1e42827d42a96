//! The emulator's command-line options, one definition for both commands that run it:
//! `dropbox-emulator` and `dropgate emulator` (which flattens these into its subcommand).

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::realism::{Profile, Realism};
use crate::{Distance, EmulatorConfig};

/// `--root DIR --listen ADDR [--page-size N] [--profile plain|realistic|wan] [--realism JSON]
/// [--latency-ms N] [--connection-rate BYTES_PER_SEC]`.
#[derive(clap::Args, Debug, Clone)]
pub struct EmulatorArgs {
    #[arg(long, default_value = "emulator-data")]
    pub root: PathBuf,
    #[arg(long, default_value = "127.0.0.1:8700")]
    pub listen: SocketAddr,
    /// Largest list_folder page the emulator returns.
    #[arg(long, default_value_t = 500)]
    pub page_size: usize,
    /// Models of real Dropbox behaviour to switch on: `plain` (none), `realistic` (all, with
    /// short delays) or `wan` (none, but 40 ms away with 25 MB/s per connection).
    #[arg(long, value_enum, default_value = "plain")]
    pub profile: Profile,
    /// Milliseconds added to every answer and to each new connection; replaces `--profile`'s.
    #[arg(long)]
    pub latency_ms: Option<u64>,
    /// Most bytes per second one connection carries in each direction (0: no cap); replaces
    /// `--profile`'s.
    #[arg(long)]
    pub connection_rate: Option<u64>,
    /// The models as JSON (see `PUT /__emulator/realism`); replaces `--profile`'s.
    #[arg(long, value_parser = parse_realism)]
    pub realism: Option<Realism>,
}

fn parse_realism(json: &str) -> Result<Realism, String> {
    serde_json::from_str(json).map_err(|e| format!("--realism: {e}"))
}

impl EmulatorArgs {
    fn distance(&self) -> Distance {
        let mut distance = match self.profile {
            Profile::Wan => Distance::wan(),
            Profile::Plain | Profile::Realistic => Distance::default(),
        };
        if let Some(latency_ms) = self.latency_ms {
            distance.latency_ms = latency_ms;
        }
        if let Some(rate) = self.connection_rate {
            distance.connection_bytes_per_sec = (rate > 0).then_some(rate);
        }
        distance
    }
}

impl From<EmulatorArgs> for EmulatorConfig {
    fn from(args: EmulatorArgs) -> Self {
        EmulatorConfig {
            distance: args.distance(),
            root: args.root,
            listen: args.listen,
            page_size: args.page_size,
            realism: args
                .realism
                .unwrap_or_else(|| Realism::of_profile(args.profile)),
        }
    }
}
