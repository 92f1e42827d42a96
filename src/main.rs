//! The `dropgate` binary; the commands live in [`dropgate::cli`].

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    dropgate::cli::Cli::parse().run().await
}
