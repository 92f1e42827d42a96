//! The `dropgate` binary; the commands live in [`dropgate::cli`].

use clap::Parser;

fn main() -> anyhow::Result<()> {
    limit_malloc_arenas();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(dropgate::cli::Cli::parse().run())
}

/// glibc's malloc gives each thread that allocates while others do an arena of its own, up to
/// eight per core, and memory freed into one arena is not reused by the others. Every upload's
/// spool writes run on the blocking pool (dozens of threads with 50 uploads at once), so the
/// gateway's peak memory swung by tens of MB from run to run; two arenas held 50 parallel
/// 10 MiB uploads at 57-60 MB in three runs out of three (vs 57-78 MB) at the same speed.
/// Set before any thread starts; `MALLOC_ARENA_MAX` in the environment still wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only tunes the allocator; called before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}
