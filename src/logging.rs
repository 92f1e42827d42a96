//! The operational log on stderr: its format, its colours and which lines it keeps.
//!
//! It is for people and for log shippers reading the service's output (the journal, a file):
//! `text` is the human-readable line, `json` one object per line with the spans' fields
//! (`conn`, `peer`, `user`, `session`) so a shipper can index them. Colour is only for a
//! terminal; a file or the journal would get escape codes. Without `RUST_LOG`, dropgate's own
//! lines are kept from INFO up and its dependencies' (russh, hyper, ...) only from WARN: at
//! debug level they drown the gateway's lines by a thousand to one. `RUST_LOG` as given
//! replaces that default whole.

use std::io::IsTerminal;

use serde::Deserialize;
use tracing_subscriber::EnvFilter;

/// `[server] log_format` / `serve --log-format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// What is kept without `RUST_LOG`: the gateway's crates at INFO, everything else at WARN.
pub const DEFAULT_FILTER: &str = "warn,dropgate=info,dropbox_emulator=info";

/// Installs the log for this process; call once, before anything logs.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .init(),
    }
}
