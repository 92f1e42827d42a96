//! What an operator installs: the production config example, the systemd unit's hardening and
//! the Debian package, checked as they ship.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::common::{
    output_text, wait_for_client, wait_until_listening, write_random_file, Config, ServeDir,
};

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

/// Linux's own W^X switch (prctl PR_SET_MDWE, kernel 6.3+), inherited across exec.
const PR_SET_MDWE: libc::c_int = 65;
const PR_MDWE_REFUSE_EXEC_GAIN: libc::c_ulong = 1;

/// `command` runs with memory that is writable and executable refused, as the unit's
/// MemoryDenyWriteExecute=yes does (systemd with a seccomp filter; here the kernel's switch,
/// which refuses the same mappings).
fn deny_write_execute(command: &mut tokio::process::Command) {
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// MemoryDenyWriteExecute=yes does not break the gateway: under the kernel's W^X switch it
/// creates its host keys (aws-lc), signs partners in and moves a file both ways through
/// chacha20-poly1305. The switch is first shown to bite: python asking for W+X memory is refused.
#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_works_with_write_execute_memory_denied() {
    let mut probe = tokio::process::Command::new("python3");
    probe.args([
        "-c",
        "import mmap; mmap.mmap(-1, 4096, prot=mmap.PROT_READ|mmap.PROT_WRITE|mmap.PROT_EXEC)",
    ]);
    deny_write_execute(&mut probe);
    let refused = probe
        .output()
        .await
        .expect("prctl(PR_SET_MDWE) refused: the kernel must be 6.3 or newer");
    assert!(
        !refused.status.success(),
        "W+X memory was not refused: is the kernel older than 6.3?"
    );

    let served = ServeDir::new().await;
    let log = std::fs::File::create(served.path("gateway.log")).unwrap();
    let mut command = served.serve_command(&served.config(), "dropgate=info");
    command.stderr(log);
    deny_write_execute(&mut command);
    let _server = command.spawn().unwrap();
    let log = || std::fs::read_to_string(served.path("gateway.log")).unwrap_or_default();
    assert!(wait_until_listening(served.port).await, "{}", log());
    served.trust_host_key();

    let hash = write_random_file(&served.path("up.bin"), 3 * 1024 * 1024);
    let cipher = vec![
        "-c".to_string(),
        "chacha20-poly1305@openssh.com".to_string(),
    ];
    let transfer = served
        .sftp_as_alice(
            &served.path("alice"),
            "put up.bin up.bin\nget up.bin down.bin\n",
            &cipher,
        )
        .spawn()
        .unwrap();
    let out = wait_for_client(transfer, "put and get").await;
    assert!(out.status.success(), "{}\n{}", output_text(&out), log());
    let meta = served.dropbox().metadata("/alice/up.bin").await.unwrap();
    assert_eq!(meta["content_hash"], hash.as_str(), "{meta}");
    assert_eq!(
        std::fs::read(served.path("down.bin")).unwrap(),
        std::fs::read(served.path("up.bin")).unwrap()
    );
}

/// Runs `program args` to the end; its output, or a panic with it if it failed.
fn run_ok(program: &str, args: &[&std::ffi::OsStr]) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{program} {args:?}: {text}");
    text
}

/// An empty system for dpkg --root: only root in its user files, an empty dpkg database.
fn scratch_root(root: &Path) {
    for folder in [
        "etc",
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/log",
    ] {
        std::fs::create_dir_all(root.join(folder)).unwrap();
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    for (file, line) in [
        ("passwd", "root:x:0:0:root:/root:/bin/sh"),
        ("group", "root:x:0:"),
        ("shadow", "root:*:19000:0:99999:7:::"),
        ("gshadow", "root:*::"),
    ] {
        std::fs::write(root.join("etc").join(file), format!("{line}\n")).unwrap();
    }
}

/// dpkg on the scratch root, running the maintainer scripts outside a chroot with DPKG_ROOT
/// set (the root has no shell to chroot into), and without its dependencies (libc6, passwd:
/// the root has no packages). Under fakeroot when the test is not root.
fn dpkg(root: &Path, action: &[&std::ffi::OsStr]) -> String {
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "dpkg".as_ref(),
        "--root".as_ref(),
        root.as_os_str(),
        "--force-script-chrootless".as_ref(),
        "--force-depends".as_ref(),
        "--log=/dev/null".as_ref(),
    ];
    args.extend_from_slice(action);
    // SAFETY: geteuid has no preconditions.
    match unsafe { libc::geteuid() } {
        0 => run_ok("dpkg", &args[1..]),
        _ => run_ok("fakeroot", &args),
    }
}

fn mode_and_owner(path: &Path) -> (u32, u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (meta.mode() & 0o7777, meta.uid(), meta.gid())
}

/// The Debian package, built by packaging/build-deb.sh from the debug binary (the same files
/// and scripts `cargo deb` packs, read from Cargo.toml), installed with dpkg into a scratch
/// root: the binary, the unit and the production config as a conffile are in place, the
/// postinst made a `dropgate` system user without a login shell, its folders, and a config it
/// can read but not change; then the installed binary checks the installed config, which fails
/// as it must before `dropgate auth`, saying what to run. A purge keeps the host keys.
#[test]
fn the_debian_package_installs_the_service_and_its_config() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_ok(
        "env",
        &[
            "DEB_COMPRESSION=none".as_ref(),
            repo_file("packaging/build-deb.sh").as_os_str(),
            env!("CARGO_BIN_EXE_dropgate").as_ref(),
            dir.path().as_os_str(),
        ],
    );
    let deb = PathBuf::from(out.trim());
    let files = run_ok("dpkg-deb", &["--contents".as_ref(), deb.as_os_str()]);
    println!("{}:\n{files}", deb.display());
    for file in [
        "./usr/bin/dropgate",
        "./lib/systemd/system/dropgate.service",
        "./etc/dropgate/dropgate.toml",
        "./usr/share/doc/dropgate/README.md",
    ] {
        assert!(files.contains(file), "{file} not in the package");
    }
    let conffiles = run_ok(
        "dpkg-deb",
        &["--info".as_ref(), deb.as_os_str(), "conffiles".as_ref()],
    );
    assert_eq!(conffiles.trim(), "/etc/dropgate/dropgate.toml");

    let root = dir.path().join("root");
    scratch_root(&root);
    dpkg(&root, &["--install".as_ref(), deb.as_os_str()]);

    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    let user = passwd
        .lines()
        .find(|l| l.starts_with("dropgate:"))
        .unwrap_or_else(|| panic!("no dropgate user:\n{passwd}"));
    let fields: Vec<&str> = user.split(':').collect();
    assert_eq!(
        fields[5..],
        ["/var/lib/dropgate", "/usr/sbin/nologin"],
        "{user}"
    );
    let uid: u32 = fields[2].parse().unwrap();
    let gid: u32 = fields[3].parse().unwrap();
    assert!(uid < 1000, "not a system user: {user}");

    assert_eq!(
        mode_and_owner(&root.join("etc/dropgate/dropgate.toml")),
        (0o640, 0, gid)
    );
    assert_eq!(mode_and_owner(&root.join("etc/dropgate")), (0o750, 0, gid));
    for folder in [
        "var/lib/dropgate",
        "var/lib/dropgate/spool",
        "var/log/dropgate",
    ] {
        assert_eq!(
            mode_and_owner(&root.join(folder)),
            (0o750, uid, gid),
            "{folder}"
        );
    }
    assert_eq!(
        std::fs::read(root.join("etc/dropgate/dropgate.toml")).unwrap(),
        std::fs::read(repo_file("config/production.toml")).unwrap()
    );

    let check = std::process::Command::new(root.join("usr/bin/dropgate"))
        .args(["check-config", "--config"])
        .arg(root.join("etc/dropgate/dropgate.toml"))
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&check.stdout);
    println!(
        "check-config:\n{report}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(!check.status.success(), "{report}");
    assert!(
        report.contains(
            "accounts.main: no token file at /var/lib/dropgate/main.token yet: register the \
             account with `dropgate auth"
        ),
        "{report}"
    );

    std::fs::write(
        root.join("var/lib/dropgate/keys/ssh_host_ed25519_key"),
        "kept",
    )
    .unwrap();
    dpkg(&root, &["--purge".as_ref(), "dropgate".as_ref()]);
    assert!(!root.join("usr/bin/dropgate").exists());
    assert!(!root.join("etc/dropgate/dropgate.toml").exists());
    assert!(!root.join("var/log/dropgate").exists());
    assert!(root
        .join("var/lib/dropgate/keys/ssh_host_ed25519_key")
        .exists());
}
