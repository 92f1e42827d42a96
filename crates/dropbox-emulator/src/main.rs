//! The `dropbox-emulator` command line: runs only the Dropbox API emulator, until Ctrl-C.

use clap::Parser;

use dropbox_emulator::EmulatorArgs;

#[derive(Parser)]
#[command(version, about = "A Dropbox API v2 emulator")]
struct Cli {
    #[command(flatten)]
    args: EmulatorArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    dropbox_emulator::run(Cli::parse().args.into()).await
}
