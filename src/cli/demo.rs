//! `dropgate demo` and `dropgate emulator`: the gateway on the built-in Dropbox emulator, or the
//! emulator alone (feature `demo`; a production build has neither).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use dropbox_emulator::EmulatorConfig;

use crate::config::Config;
use crate::gateway::Gateway;
use crate::ssh::host_key;

/// Starts the emulator where the config's first account points, then the gateway, and prints
/// the exact command that connects. The demo user's key is `user_key`, else the one whose
/// `.pub` the config's first user authorizes; created if missing.
pub async fn run(config_path: &Path, data: &Path, user_key: Option<&Path>) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    let user_key = match user_key {
        Some(path) => path.to_path_buf(),
        None => demo_user_key(&config)?,
    };
    let user_key = user_key.as_path();
    if !user_key.exists() {
        host_key::write_key_pair(&host_key::generate(), user_key)?;
    }
    let emulator_addr = demo_emulator_addr(&config)?;
    let emulator = dropbox_emulator::Emulator::start(EmulatorConfig {
        root: data.to_path_buf(),
        listen: emulator_addr,
        ..EmulatorConfig::default()
    })
    .await
    .with_context(|| format!("cannot start the emulator on {emulator_addr}"))?;
    let mut config = config;
    let admin_password = demo_admin(&mut config, &emulator.base_url(), data)?;
    let gateway = Gateway::start(&config).await?;
    let admin = crate::admin::start_for(&gateway, &config.admin)
        .await?
        .context("the demo's admin page did not start")?;

    let known_hosts = data.join("known_hosts");
    let host_public = host_key::load(&config.server.host_key)?
        .public_key()
        .to_openssh()?;
    let port = gateway.addr().port();
    std::fs::write(&known_hosts, format!("[127.0.0.1]:{port} {host_public}\n"))?;

    let user = config.users.first().context("the config has no users")?;
    println!(
        "dropgate demo: the emulator at {} stores files under {}",
        emulator.base_url(),
        data.display()
    );
    println!("Connect with:");
    println!(
        "sftp -P {port} -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile={} {}@127.0.0.1",
        user_key.display(),
        known_hosts.display(),
        user.name
    );
    println!(
        "admin {}/ user={DEMO_ADMIN} password={admin_password}",
        admin.url()
    );
    println!("Press Ctrl-C to stop.");
    tokio::select! {
        result = gateway.wait() => result?,
        _ = tokio::signal::ctrl_c() => {}
    }
    emulator.shutdown().await;
    Ok(())
}

/// The demo's admin user; its password is new at each start.
const DEMO_ADMIN: &str = "admin";

/// Turns the admin page on at a loopback port, for the user `admin` with a new password
/// (returned), connecting new accounts to the demo's emulator.
fn demo_admin(config: &mut Config, emulator_url: &str, data: &Path) -> anyhow::Result<String> {
    let password = crate::admin::sessions::random_token();
    let admin = &mut config.admin;
    admin.listen = Some(
        admin
            .listen
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0))),
    );
    admin.users = vec![crate::admin::settings::AdminUserConfig {
        name: DEMO_ADMIN.to_string(),
        password_hash: crate::users::password::hash_password(&password)?,
    }];
    admin
        .api_url
        .get_or_insert_with(|| emulator_url.to_string());
    admin.accounts_dir = data.join("accounts");
    Ok(password)
}

/// The private half of the first user's `authorized_keys_file` (`keys/demo_user_ed25519.pub`
/// beside the demo config).
fn demo_user_key(config: &Config) -> anyhow::Result<PathBuf> {
    let public = config
        .users
        .first()
        .and_then(|user| user.authorized_keys_file.as_ref())
        .context("the demo needs a first user with an authorized_keys_file (or --user-key)")?;
    Ok(public.with_extension(""))
}

/// The emulator listens where the demo config's account expects Dropbox to be.
fn demo_emulator_addr(config: &Config) -> anyhow::Result<SocketAddr> {
    let account = config
        .accounts
        .first()
        .context("the config has no accounts")?;
    let url = account
        .api_url
        .as_deref()
        .context("the demo needs an account with api_url pointing at 127.0.0.1")?;
    let url = url::Url::parse(url).with_context(|| format!("api_url {url:?}"))?;
    let host = url.host_str().unwrap_or("127.0.0.1");
    let port = url.port_or_known_default().unwrap_or(8700);
    format!("{host}:{port}")
        .parse()
        .with_context(|| format!("api_url {url} is not an IP address and port"))
}
