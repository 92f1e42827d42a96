//! The end-to-end tests, one module per topic, in one test binary (one link of the library
//! instead of one per file). Every test drives real clients against a real gateway and the
//! real emulator over loopback sockets.
//!
//! The tests run in parallel threads of this one process, so none may rely on being alone in
//! it: each bench has its own temp dir, emulator and ports; tests that read the process-wide
//! counters (metrics, Dropbox retries) ask for the bench to run alone
//! (`BenchOptions::reads_process_counters`). Tests that measure the test process itself (its
//! memory, its descriptors) are binaries of their own next to this one.

// The helpers live in tests/common so that the separate binaries share them too.
#[path = "../common/mod.rs"]
mod common;

mod access;
mod accounts;
mod activity;
mod admin_browser;
mod admin_page;
mod ambiguous_failures;
mod audit;
mod batch_commits;
mod browser_harness;
mod certificates;
mod commit_rules;
mod concurrent_uploads;
mod demo;
mod downloads;
mod dropbox_lag;
mod env_overrides;
mod fault_soak;
mod folders_and_renames;
mod gateway_control;
mod handle_limits;
mod hooks;
mod host_keys;
mod hostile_paths;
mod legacy_scp;
mod listing;
mod log_spans;
mod login_limits;
mod metrics;
mod names;
mod nothing_lost;
mod operational_logs;
mod other_clients;
mod packaging;
mod partner_clients;
mod partner_uploads;
mod permissions;
mod preflight;
mod proxy_protocol;
mod rate_limits;
mod readiness;
mod realistic_soak;
mod reload;
mod round_trips;
mod secrets;
mod session_bounds;
mod shutdown;
mod tls_trust;
mod upload_policy;
mod uploads;
mod write_lock;
