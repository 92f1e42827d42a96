//! Per-user permissions end to end: for each permission, a user without it is refused
//! the operation (OpenSSH shows "Permission denied", and nothing changes in Dropbox) while a
//! user with it succeeds; and an upload-only partner can put but not ls, get, rm or overwrite.
//!
//! What changed is read back from the emulator's own API, never through the gateway.

use crate::common::{output_text, Bench, Config, GatewayConfig, Permission, Permissions, TestUser};

/// alice has every permission but `missing`; bob has all of them.
async fn bench_without(missing: Permission) -> Bench {
    bench_where_alice_has(Permissions::all_but(missing)).await
}

async fn bench_where_alice_has(permissions: Permissions) -> Bench {
    let bench =
        Bench::configured(move |config, _| config.user("alice").permissions = Some(permissions))
            .await;
    std::fs::write(bench.path("local.txt"), b"new content").unwrap();
    for root in ["/alice", "/bob"] {
        bench
            .dropbox_upload(&format!("{root}/existing.txt"), b"old content".to_vec())
            .await;
        bench
            .dropbox_upload(&format!("{root}/folder/inside.txt"), b"x".to_vec())
            .await;
        bench
            .dropbox_upload(&format!("{root}/empty/keep.txt"), b"x".to_vec())
            .await;
    }
    bench
}

/// The sftp batch line that needs `permission`.
fn command_needing(permission: Permission) -> &'static str {
    match permission {
        Permission::List => "ls /",
        Permission::Read => "get existing.txt fetched.txt",
        Permission::Upload => "put local.txt brand-new.txt",
        Permission::Overwrite => "put local.txt existing.txt",
        Permission::Delete => "rm existing.txt",
        Permission::Rename => "rename existing.txt renamed.txt",
        Permission::Mkdir => "mkdir made",
    }
}

/// Whether the operation's effect is visible in `root` (read from the emulator).
async fn took_effect(bench: &Bench, permission: Permission, root: &str) -> bool {
    let exists = |name: &str| {
        let path = format!("{root}/{name}");
        async move { bench.dropbox_metadata(&path).await.is_some() }
    };
    match permission {
        Permission::List => true,
        Permission::Read => bench.path("fetched.txt").exists(),
        Permission::Upload => exists("brand-new.txt").await,
        Permission::Overwrite => {
            bench
                .dropbox_download(&format!("{root}/existing.txt"))
                .await
                == b"new content"
        }
        Permission::Delete => !exists("existing.txt").await,
        Permission::Rename => exists("renamed.txt").await,
        Permission::Mkdir => exists("made").await,
    }
}

async fn assert_denied(bench: &Bench, user: &TestUser, command: &str) {
    let out = bench.sftp(user, &format!("{command}\n")).await;
    // OpenSSH's batch mode lets a bare `ls` fail without failing the batch; it still prints
    // the error.
    assert!(
        command == "ls" || !out.status.success(),
        "{} should be refused `{command}`:\n{}",
        user.name,
        output_text(&out)
    );
    assert!(
        crate::common::stderr(&out).contains("Permission denied"),
        "expected a permission error for `{command}`:\n{}",
        output_text(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn each_permission_is_refused_without_it_and_allowed_with_it() {
    for permission in Permission::ALL {
        let bench = bench_without(permission).await;
        let command = command_needing(permission);
        let (alice, bob) = (bench.user("alice"), bench.user("bob"));

        assert_denied(&bench, &alice, command).await;
        if permission != Permission::List {
            assert!(
                !took_effect(&bench, permission, "/alice").await,
                "`{command}` changed something for alice without {permission:?}"
            );
        }

        bench.sftp_ok(&bob, &format!("{command}\n")).await;
        assert!(
            took_effect(&bench, permission, "/bob").await,
            "`{command}` did nothing for bob"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rmdir_needs_delete_and_a_replacing_rename_needs_overwrite() {
    let bench = bench_without(Permission::Delete).await;
    let alice = bench.user("alice");
    bench.sftp_ok(&alice, "mkdir gone\n").await;
    assert_denied(&bench, &alice, "rmdir gone").await;
    assert!(bench.dropbox_metadata("/alice/gone").await.is_some());
    // One bench at a time: a bench holds the process counters' lock shared until it is dropped.
    drop(bench);

    let bench = bench_without(Permission::Overwrite).await;
    let alice = bench.user("alice");
    bench.sftp_ok(&alice, "put local.txt other.txt\n").await;
    // OpenSSH's rename is posix-rename@openssh.com, which replaces its target.
    assert_denied(&bench, &alice, "rename other.txt existing.txt").await;
    assert_eq!(
        bench.dropbox_download("/alice/existing.txt").await,
        b"old content"
    );
    bench
        .sftp_ok(&alice, "rename other.txt fresh-name.txt\n")
        .await;
    assert!(bench
        .dropbox_metadata("/alice/fresh-name.txt")
        .await
        .is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_only_partner_can_put_but_not_look_fetch_replace_or_remove() {
    let bench = bench_where_alice_has(Permissions::preset("upload-only")).await;
    let alice = bench.user("alice");

    bench.sftp_ok(&alice, "put local.txt delivery.txt\n").await;
    assert_eq!(
        bench.dropbox_download("/alice/delivery.txt").await,
        b"new content"
    );
    // put into the current folder by name only (OpenSSH STATs the target first).
    bench.sftp_ok(&alice, "put local.txt\n").await;
    assert!(bench.dropbox_metadata("/alice/local.txt").await.is_some());

    assert_denied(&bench, &alice, "ls").await;
    assert_denied(&bench, &alice, "get existing.txt fetched.txt").await;
    assert_denied(&bench, &alice, "rm existing.txt").await;
    assert_denied(&bench, &alice, "put local.txt existing.txt").await;
    assert_denied(&bench, &alice, "mkdir sub").await;
    assert_eq!(
        bench.dropbox_download("/alice/existing.txt").await,
        b"old content"
    );
    assert!(!bench.path("fetched.txt").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_permission_name_stops_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = GatewayConfig::bench(dir.path(), "http://127.0.0.1:1");
    config.user("alice").permissions =
        Some(Permissions::List(vec!["upload".into(), "write".into()]));
    let path = dir.path().join("dropgate.toml");
    config.write(&path);
    let err = Config::load(&path).unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("users.alice.permissions") && text.contains("\"write\""),
        "{text}"
    );
}
