//! What an operator installs: the production config example, the systemd unit's hardening and
//! the Debian package, checked as they ship.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::common::Config;

fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// config/production.toml loads and validates as it is (no network: loading signs in nowhere),
/// and keeps what production needs: absolute paths, a token file, an audit log, metrics on
/// loopback only, the real Dropbox.
#[test]
fn the_production_config_example_loads_as_it_ships() {
    let config = Config::load(&repo_file("config/production.toml")).unwrap();

    assert_eq!(config.server.listen, "0.0.0.0:2222".parse().unwrap());
    let metrics: SocketAddr = config.metrics.listen.expect("metrics listen");
    assert!(metrics.ip().is_loopback(), "metrics on {metrics}");
    assert_eq!(
        config.audit.output.as_deref(),
        Some("/var/log/dropgate/audit.jsonl")
    );

    let [account] = &config.accounts[..] else {
        panic!("one account: {:?}", config.accounts)
    };
    assert_eq!(account.api_url, None, "the real Dropbox, not the emulator");
    assert_eq!(
        account.token_file.as_deref(),
        Some(Path::new("/var/lib/dropgate/main.token"))
    );
    assert!(account.refresh_token.is_none() && account.access_token.is_none());

    let mut paths = vec![
        config.server.host_key.clone(),
        config.upload.spool_dir.clone().expect("spool_dir"),
        config.hook_queue.dir.clone(),
    ];
    paths.extend(config.server.host_key_rsa.clone());
    paths.extend(config.server.host_key_ecdsa.clone());
    paths.extend(
        config
            .users
            .iter()
            .filter_map(|u| u.authorized_keys_file.clone()),
    );
    for path in &paths {
        assert!(path.is_absolute(), "{} is relative", path.display());
    }
    assert!(!config.users.is_empty(), "a users example");
}

/// The unit's hardening, as systemd itself rates it: `systemd-analyze security` scores what the
/// service could still do if it were taken over (0 = nothing, 10 = everything); 3.0 or lower is
/// what the unit promises. .ci/run installs systemd-analyze (Debian's `systemd`) when missing.
#[test]
fn the_systemd_unit_is_hardened_to_an_exposure_of_3_or_less() {
    let unit = repo_file("packaging/dropgate.service");
    let out = std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze (Debian's systemd package) is needed");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    let score: f64 = text
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for dropgate.service:"))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no score in:\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert!(score <= 3.0, "exposure {score} > 3.0:\n{text}");
}
