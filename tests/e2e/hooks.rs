//! Event hooks end to end: real OpenSSH clients against the gateway, a webhook receiver of the
//! test's own on a loopback port (it checks each request's signature, counts deliveries, and
//! can answer 500 or hang), a command hook (a shell script), and a `dropgate serve` process
//! killed with SIGKILL between accepting an event and delivering it.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::common::{
    dropgate_binary, free_port, host_key, output_text, poll_until, wait_for_client,
    write_random_file, Bench, GatewayConfig, Hook, HookQueue, Metrics, ServeDir, TestUser,
};

const SECRET: &str = "test-signing-secret";

// ---- the receiver ----

/// What the receiver answers to one request.
#[derive(Clone, Copy)]
enum Answer {
    Status(u16),
    /// Answers nothing for a minute (longer than any hook timeout here).
    Hang,
}

/// One request as received.
#[derive(Clone, Debug)]
struct Delivery {
    event_id: String,
    content_type: String,
    signature_ok: bool,
    signed_at: u64,
    body: Value,
    raw_headers: String,
    raw_body: String,
}

#[derive(Default)]
struct ReceiverState {
    deliveries: Vec<Delivery>,
    /// Answers for the next requests, in order; 200 once they run out.
    plan: VecDeque<Answer>,
}

/// A webhook receiver on a loopback port.
struct Receiver {
    port: u16,
    state: Arc<Mutex<ReceiverState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(plan: &[Answer]) -> Receiver {
        Receiver::start_on(free_port(), plan).await
    }

    async fn start_on(port: u16, plan: &[Answer]) -> Receiver {
        let state = Arc::new(Mutex::new(ReceiverState {
            deliveries: Vec::new(),
            plan: plan.iter().copied().collect(),
        }));
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver { port, state, task }
    }

    fn url(&self) -> String {
        url_on(self.port)
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.state.lock().unwrap().deliveries.clone()
    }

    /// Waits (at most `limit`) until `count` requests have come in; all of them.
    async fn wait_for(&self, count: usize, limit: Duration) -> Vec<Delivery> {
        poll_until(limit, || {
            std::future::ready(self.deliveries().len() >= count)
        })
        .await;
        self.deliveries()
    }

    fn stop(self) {
        self.task.abort();
    }
}

fn url_on(port: u16) -> String {
    format!("http://127.0.0.1:{port}/hook")
}

async fn receive(
    State(state): State<Arc<Mutex<ReceiverState>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let signature = header("dropgate-signature");
    let (signed_at, signature_ok) = verify(SECRET.as_bytes(), &signature, &body);
    let mut raw_headers: Vec<String> = headers
        .iter()
        .map(|(name, value)| format!("{name}: {}", value.to_str().unwrap_or("?")))
        .collect();
    raw_headers.sort();
    let answer = {
        let mut state = state.lock().unwrap();
        state.deliveries.push(Delivery {
            event_id: header("dropgate-event-id"),
            content_type: header("content-type"),
            signature_ok,
            signed_at,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            raw_headers: raw_headers.join("\n"),
            raw_body: String::from_utf8_lossy(&body).into_owned(),
        });
        state.plan.pop_front().unwrap_or(Answer::Status(200))
    };
    match answer {
        Answer::Status(code) => StatusCode::from_u16(code).unwrap(),
        Answer::Hang => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            StatusCode::OK
        }
    }
}

/// Checks `t=<time>,v1=<hex>` against an HMAC-SHA256 of "<time>.<body>", as a receiver would:
/// (the time, whether the signature is right).
fn verify(secret: &[u8], header: &str, body: &[u8]) -> (u64, bool) {
    let mut timestamp = None;
    let mut given = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<u64>().ok(),
            Some(("v1", value)) => given = hex::decode(value).ok(),
            _ => {}
        }
    }
    let (Some(timestamp), Some(given)) = (timestamp, given) else {
        return (0, false);
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    (timestamp, mac.verify_slice(&given).is_ok())
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

// ---- benches ----

/// A bench with `hooks` and their queues in `hooks/` of the bench dir.
async fn bench_with(hooks: Vec<Hook>) -> Bench {
    Bench::configured(move |config, dir| {
        config.hook_queue = Some(HookQueue {
            dir: dir.join("hooks"),
        });
        config.hooks = hooks;
    })
    .await
}

/// Uploads `data` as `remote` as `user`, through OpenSSH sftp.
async fn put(bench: &Bench, user: &TestUser, remote: &str, data: &[u8]) {
    let local = bench.path("local.bin");
    std::fs::write(&local, data).unwrap();
    bench
        .sftp_ok(user, &format!("put {} {remote}\n", local.display()))
        .await;
}

/// Waits a little and returns what came in: for checking that nothing more arrives.
async fn settled(receiver: &Receiver) -> Vec<Delivery> {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    receiver.deliveries()
}

// ---- tests ----

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_is_one_signed_delivery_with_the_audit_fields() {
    let receiver = Receiver::start(&[]).await;
    let bench = bench_with(vec![Hook::webhook(
        "partner",
        &["upload"],
        &receiver.url(),
        SECRET,
    )])
    .await;
    let alice = bench.user("alice");
    bench.sftp_ok(&alice, "mkdir in\n").await;
    put(&bench, &alice, "in/orders.csv", b"id,qty\n1,2\n").await;

    let deliveries = receiver.wait_for(1, Duration::from_secs(20)).await;
    let deliveries_now = settled(&receiver).await;
    assert_eq!(
        deliveries_now.len(),
        1,
        "one upload, one delivery (the mkdir is not hooked): {deliveries_now:?}"
    );
    let delivery = &deliveries[0];
    eprintln!(
        "one webhook delivery as received:\n{}\n\n{}",
        delivery.raw_headers, delivery.raw_body
    );
    assert!(
        delivery.signature_ok,
        "bad signature: {}",
        delivery.raw_headers
    );
    assert!(unix_now().abs_diff(delivery.signed_at) < 60);
    assert_eq!(delivery.content_type, "application/json");
    let event = &delivery.body;
    assert_eq!(event["id"], delivery.event_id.as_str());
    assert_eq!(event["id"].as_str().unwrap().len(), 32);
    assert_eq!(event["event"], "upload");
    assert_eq!(event["op"], "upload");
    assert_eq!(event["user"], "alice");
    assert_eq!(event["path"], "/in/orders.csv");
    assert_eq!(event["bytes"], 11);
    assert!(event["remote"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(event["time"].as_str().unwrap().ends_with('Z'));
    // The stored file's identity, as Dropbox itself reports it.
    let stored = bench.dropbox_stored("/alice/in/orders.csv").await;
    assert_eq!(event["dropbox_id"], stored["id"]);
    assert_eq!(event["rev"], stored["rev"]);
    assert_eq!(event["content_hash"], stored["content_hash"]);
    // Delivered: the queue is empty.
    assert_eq!(
        std::fs::metadata(bench.path("hooks/partner.queue"))
            .unwrap()
            .len(),
        0
    );
    receiver.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn legacy_scp_transfers_are_events_like_sftp_ones() {
    let receiver = Receiver::start(&[]).await;
    let bench = bench_with(vec![Hook::webhook(
        "partner",
        &["upload", "download"],
        &receiver.url(),
        SECRET,
    )])
    .await;
    let alice = bench.user("alice");
    let local = bench.path("orders.csv");
    std::fs::write(&local, b"id,qty\n1,2\n").unwrap();

    let up = [
        "-O".to_string(),
        local.display().to_string(),
        bench.remote(&alice, "orders.csv"),
    ];
    let out = bench.scp(&alice, &up).await;
    assert!(
        out.status.success(),
        "scp -O upload:\n{}",
        output_text(&out)
    );
    let down = [
        "-O".to_string(),
        bench.remote(&alice, "orders.csv"),
        bench.path("back.csv").display().to_string(),
    ];
    let out = bench.scp(&alice, &down).await;
    assert!(
        out.status.success(),
        "scp -O download:\n{}",
        output_text(&out)
    );

    receiver.wait_for(2, Duration::from_secs(20)).await;
    let deliveries = settled(&receiver).await;
    let events: Vec<(&str, &str)> = deliveries
        .iter()
        .map(|d| {
            (
                d.body["event"].as_str().unwrap(),
                d.body["path"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        events,
        [("upload", "/orders.csv"), ("download", "/orders.csv")],
        "{deliveries:?}"
    );
    let stored = bench.dropbox_stored("/alice/orders.csv").await;
    assert_eq!(deliveries[0].body["content_hash"], stored["content_hash"]);
    assert!(deliveries.iter().all(|d| d.signature_ok));
    receiver.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_500_is_retried_with_the_same_event_id() {
    let receiver = Receiver::start(&[Answer::Status(500), Answer::Status(503)]).await;
    let bench = bench_with(vec![Hook::webhook(
        "partner",
        &["upload"],
        &receiver.url(),
        SECRET,
    )])
    .await;
    put(&bench, &bench.user("alice"), "a.csv", b"a").await;

    let deliveries = receiver.wait_for(3, Duration::from_secs(30)).await;
    let deliveries = {
        let later = settled(&receiver).await;
        assert_eq!(
            later.len(),
            3,
            "two refusals, then one success, then nothing: {later:?}"
        );
        deliveries
    };
    assert!(deliveries.iter().all(|d| d.signature_ok));
    let ids: Vec<&str> = deliveries.iter().map(|d| d.event_id.as_str()).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(deliveries[2].body, deliveries[0].body);
    receiver.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_receiver_times_out_and_the_event_is_sent_again() {
    let receiver = Receiver::start(&[Answer::Hang]).await;
    let mut hook = Hook::webhook("partner", &["upload"], &receiver.url(), SECRET);
    hook.timeout_secs = Some(1);
    let bench = bench_with(vec![hook]).await;
    let started = Instant::now();
    put(&bench, &bench.user("alice"), "a.csv", b"a").await;
    // The upload itself did not wait for the receiver.
    assert!(started.elapsed() < Duration::from_secs(20));

    let deliveries = receiver.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(deliveries.len(), 2, "{deliveries:?}");
    assert_eq!(deliveries[0].event_id, deliveries[1].event_id);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the hung request held the queue for {:?}",
        started.elapsed()
    );
    receiver.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn events_of_one_path_arrive_in_order() {
    // The first try fails, so the later events queue up behind the first.
    let receiver = Receiver::start(&[Answer::Status(500)]).await;
    let bench = bench_with(vec![Hook::webhook(
        "partner",
        &["upload", "rename", "delete", "mkdir"],
        &receiver.url(),
        SECRET,
    )])
    .await;
    let alice = bench.user("alice");
    let local = bench.path("local.bin");
    std::fs::write(&local, b"v1").unwrap();
    bench
        .sftp_ok(
            &alice,
            &format!(
                "mkdir in\nput {0} in/a.part\nrename in/a.part in/a.csv\nrm in/a.csv\nrmdir in\n",
                local.display()
            ),
        )
        .await;

    let deliveries = receiver.wait_for(6, Duration::from_secs(30)).await;
    let settled = settled(&receiver).await;
    assert_eq!(settled.len(), 6, "{settled:?}");
    let seen: Vec<(String, String)> = deliveries
        .iter()
        .map(|d| {
            (
                d.body["event"].as_str().unwrap().to_string(),
                d.body["path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [
        ("mkdir", "/in"),
        ("mkdir", "/in"),
        ("upload", "/in/a.part"),
        ("rename", "/in/a.part"),
        ("delete", "/in/a.csv"),
        ("delete", "/in"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(e, p)| (e.to_string(), p.to_string()))
        .collect();
    assert_eq!(seen, expected);
    assert_eq!(deliveries[0].event_id, deliveries[1].event_id);
    assert_eq!(deliveries[3].body["target"], "/in/a.csv");
    assert_eq!(deliveries[4].body["op"], "remove");
    assert_eq!(deliveries[5].body["op"], "rmdir");
    receiver.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn filters_by_user_and_path() {
    let receiver = Receiver::start(&[]).await;
    let mut hook = Hook::webhook("partner", &["upload"], &receiver.url(), SECRET);
    hook.users = vec!["alice".into()];
    hook.paths = vec!["/in/*.csv".into()];
    let bench = bench_with(vec![hook]).await;
    let (alice, bob) = (bench.user("alice"), bench.user("bob"));
    bench.sftp_ok(&alice, "mkdir in\nmkdir in/old\n").await;
    bench.sftp_ok(&bob, "mkdir in\n").await;
    put(&bench, &alice, "in/wanted.csv", b"1").await;
    put(&bench, &alice, "in/not-csv.txt", b"2").await;
    put(&bench, &alice, "in/old/deeper.csv", b"3").await;
    put(&bench, &bob, "in/bobs.csv", b"4").await;

    receiver.wait_for(1, Duration::from_secs(20)).await;
    let deliveries = settled(&receiver).await;
    let paths: Vec<&str> = deliveries
        .iter()
        .map(|d| d.body["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/in/wanted.csv"]);
    receiver.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_login_is_an_event_and_a_successful_one_is_not() {
    let receiver = Receiver::start(&[]).await;
    let bench = bench_with(vec![Hook::webhook(
        "security",
        &["login_failed"],
        &receiver.url(),
        SECRET,
    )])
    .await;
    let stranger_key = bench.path("stranger");
    host_key::write_key_pair(&host_key::generate(), &stranger_key).unwrap();
    let stranger = TestUser {
        name: "alice",
        key: stranger_key,
        root: "/alice",
    };
    let refused = bench.sftp(&stranger, "ls\n").await;
    assert!(!refused.status.success(), "{}", output_text(&refused));
    bench.sftp_ok(&bench.user("alice"), "ls\n").await;

    receiver.wait_for(1, Duration::from_secs(20)).await;
    let deliveries = settled(&receiver).await;
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    let event = &deliveries[0].body;
    assert_eq!(event["event"], "login_failed");
    assert_eq!(event["user"], "alice");
    assert_eq!(event["method"], "publickey");
    assert!(event.get("path").is_none());
    receiver.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_hook_gets_the_event_on_stdin_and_in_its_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let script = dir.path().join("on-upload.sh");
    // Each file is written elsewhere and moved in whole: the test counts the files in `out`, and
    // a file created by `>` would be there, empty, before the command wrote it.
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nset -e\ncat > {work}/\"$DROPGATE_EVENT_ID.json\"\n\
             printf '%s|%s|%s|%s|%s\\n' \"$1\" \"$DROPGATE_EVENT\" \"$DROPGATE_USER\" \
             \"$DROPGATE_PATH\" \"$DROPGATE_BYTES\" > {work}/\"$DROPGATE_EVENT_ID.env\"\n\
             mv {work}/\"$DROPGATE_EVENT_ID.json\" {work}/\"$DROPGATE_EVENT_ID.env\" {out}/\n",
            work = work.display(),
            out = out.display()
        ),
    )
    .unwrap();
    set_mode(&script, 0o755);
    let bench = bench_with(vec![Hook::command(
        "job",
        &["upload"],
        &[script.to_str().unwrap(), "--from-dropgate"],
    )])
    .await;
    put(&bench, &bench.user("alice"), "report.csv", b"12345").await;

    let arrived = poll_until(Duration::from_secs(20), || {
        std::future::ready(std::fs::read_dir(&out).unwrap().count() == 2)
    })
    .await;
    assert!(arrived, "the command did not run");
    let json_file = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .unwrap();
    let event: Value = serde_json::from_slice(&std::fs::read(&json_file).unwrap()).unwrap();
    assert_eq!(event["event"], "upload");
    assert_eq!(event["path"], "/report.csv");
    assert_eq!(event["bytes"], 5);
    assert_eq!(
        json_file.file_stem().unwrap().to_str().unwrap(),
        event["id"].as_str().unwrap()
    );
    let env = std::fs::read_to_string(json_file.with_extension("env")).unwrap();
    assert_eq!(env.trim(), "--from-dropgate|upload|alice|/report.csv|5");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_command_is_retried_until_it_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let tries = dir.path().join("tries");
    let script = dir.path().join("flaky.sh");
    // Fails (exit 1, a message on stderr) on the first run, succeeds on the second.
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$DROPGATE_EVENT_ID\" >> {tries}\n\
             [ \"$(wc -l < {tries})\" -ge 2 ] || {{ echo 'not yet' >&2; exit 1; }}\n",
            tries = tries.display()
        ),
    )
    .unwrap();
    set_mode(&script, 0o755);
    let bench = bench_with(vec![Hook::command(
        "job",
        &["upload"],
        &[script.to_str().unwrap()],
    )])
    .await;
    put(&bench, &bench.user("alice"), "a.csv", b"a").await;
    let read = || std::fs::read_to_string(&tries).unwrap_or_default();
    assert!(
        poll_until(Duration::from_secs(20), || std::future::ready(
            read().lines().count() >= 2
        ))
        .await,
        "not run twice: {:?}",
        read()
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let ids: Vec<String> = read().lines().map(str::to_string).collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert_eq!(ids[0], ids[1]);
}

#[tokio::test]
async fn check_config_names_a_hook_that_cannot_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = GatewayConfig::without_accounts(dir.path());
    config.hook_queue = Some(HookQueue {
        dir: dir.path().join("hooks"),
    });
    config.hooks = vec![
        Hook::webhook("ok-hook", &["upload"], "https://hooks.example/in", SECRET),
        Hook::command("missing", &["upload"], &["/nonexistent/on-upload"]),
    ];
    let path = dir.path().join("dropgate.toml");
    config.write(&path);
    let out = dropgate_binary("error")
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    let rows: Vec<String> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert!(
        rows.contains(&"ok-hook ok: POST https://hooks.example/in on upload".to_string()),
        "{stdout}"
    );
    assert!(rows.contains(&"missing FAILED [1]".to_string()), "{stdout}");
    assert!(
        rows.iter().any(|row| row.starts_with(
            "FAILED [1] hooks.missing: command: /nonexistent/on-upload does not exist"
        )),
        "{stdout}"
    );
    // The gateway itself does not start with it, rather than fail at the first event.
    let serve = tokio::time::timeout(
        Duration::from_secs(30),
        dropgate_binary("error")
            .args(["serve", "--config"])
            .arg(&path)
            .output(),
    )
    .await
    .expect("dropgate serve started despite the missing command")
    .unwrap();
    let stderr = String::from_utf8_lossy(&serve.stderr);
    assert!(!serve.status.success());
    assert!(
        stderr.contains("/nonexistent/on-upload does not exist"),
        "{stderr}"
    );

    // A webhook without a secret is refused with the config file, naming the hook.
    config.hooks = vec![Hook {
        secret: None,
        ..Hook::webhook("unsigned", &["upload"], "https://hooks.example/in", SECRET)
    }];
    config.write(&path);
    let out = dropgate_binary("error")
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("hooks.unsigned\n") && stderr.contains("a webhook needs a secret"),
        "{stderr}"
    );
}

/// The event is accepted (its record fsynced) before the client hears OK; the gateway is
/// killed with SIGKILL before it could deliver (the receiver is down); after a restart, and
/// once the receiver is up, the event arrives, with the id it was given before the kill.
#[tokio::test(flavor = "multi_thread")]
async fn an_event_accepted_before_a_kill_is_delivered_after_the_restart() {
    let served = ServeDir::new().await;
    let receiver_port = free_port();
    let metrics_port = free_port();
    let mut config = served.config();
    config.metrics = Some(Metrics {
        listen: format!("127.0.0.1:{metrics_port}"),
    });
    config.hook_queue = Some(HookQueue {
        dir: served.path("hooks"),
    });
    config.hooks = vec![Hook::webhook(
        "partner",
        &["upload"],
        &url_on(receiver_port),
        SECRET,
    )];
    let log = served.path("gateway.log");
    let mut gateway = served
        .serve(
            &config,
            "dropgate=info",
            std::fs::File::create(&log).unwrap().into(),
        )
        .await;

    let hash = write_random_file(&served.path("orders.csv"), 64 * 1024);
    let upload = served
        .sftp_as_alice(&served.path("alice"), "put orders.csv orders.csv\n", &[])
        .spawn()
        .unwrap();
    let out = wait_for_client(upload, "the upload").await;
    assert!(out.status.success(), "{}", output_text(&out));
    let accepted_at = Instant::now();

    // The client has its OK, so the record is on disk: read its id from the queue file.
    let queued = queued_events(&served.path("hooks/partner.queue"));
    assert_eq!(queued.len(), 1, "{queued:?}");
    let id = queued[0]["event"]["id"].as_str().unwrap().to_string();

    gateway.start_kill().unwrap();
    gateway.wait().await.unwrap();
    let tries_before_kill = count_in(&log, "hook delivery failed");

    let log2 = served.path("gateway-2.log");
    let _gateway = served
        .serve(
            &config,
            "dropgate=info",
            std::fs::File::create(&log2).unwrap().into(),
        )
        .await;
    let restarted_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Waiting, and failing to reach the receiver, as the metrics show.
    let metrics = scrape(metrics_port).await;
    assert_eq!(
        sample(&metrics, "dropgate_hook_queue_length{hook=\"partner\"}"),
        Some(1)
    );
    assert!(
        sample(
            &metrics,
            "dropgate_hook_oldest_undelivered_seconds{hook=\"partner\"}"
        ) >= Some(1)
    );
    assert!(
        sample(
            &metrics,
            "dropgate_hook_deliveries_total{hook=\"partner\",result=\"failed\"}"
        ) >= Some(1),
        "{metrics}"
    );
    let receiver = Receiver::start_on(receiver_port, &[]).await;
    let receiver_up_at = Instant::now();
    let deliveries = receiver.wait_for(1, Duration::from_secs(60)).await;
    let delivered_at = Instant::now();
    let deliveries = {
        let later = settled(&receiver).await;
        assert_eq!(later.len(), 1, "{later:?}");
        deliveries
    };
    let delivery = &deliveries[0];
    assert!(delivery.signature_ok);
    assert_eq!(delivery.event_id, id);
    assert_eq!(delivery.body["path"], "/orders.csv");
    let stored = served
        .dropbox()
        .metadata("/alice/orders.csv")
        .await
        .unwrap();
    assert_eq!(stored["content_hash"], hash.as_str());
    assert_eq!(delivery.body["content_hash"], hash.as_str());
    let tries_after_restart = count_in(&log2, "hook delivery failed");
    eprintln!(
        "restart test: tries before the kill {tries_before_kill} (receiver down), tries after \
         the restart before the receiver was up {tries_after_restart}, deliveries received {}, \
         accepted → killed and restarted {:?}, restart → receiver up {:?}, receiver up → \
         delivered {:?}, same event id {id}",
        deliveries.len(),
        restarted_at - accepted_at,
        receiver_up_at - restarted_at,
        delivered_at - receiver_up_at,
    );
    assert!(count_in(&log2, "hook ready") == 1);
    // Delivered and marked: the queue file is empty again.
    assert!(
        poll_until(Duration::from_secs(5), || std::future::ready(
            queued_events(&served.path("hooks/partner.queue")).is_empty()
        ))
        .await
    );
    let metrics = scrape(metrics_port).await;
    assert_eq!(
        sample(&metrics, "dropgate_hook_queue_length{hook=\"partner\"}"),
        Some(0)
    );
    assert_eq!(
        sample(
            &metrics,
            "dropgate_hook_deliveries_total{hook=\"partner\",result=\"ok\"}"
        ),
        Some(1)
    );
    receiver.stop();
}

async fn scrape(port: u16) -> String {
    reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of the sample whose name and labels are `series`.
fn sample(metrics: &str, series: &str) -> Option<u64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

/// The records of a queue file, parsed.
fn queued_events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn count_in(log: &Path, text: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches(text)
        .count()
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The receiver example in the README's "Hooks" section, run as written: it accepts the
/// gateway's signed delivery and refuses one signed with another secret.
#[tokio::test(flavor = "multi_thread")]
async fn the_readme_receiver_verifies_a_real_delivery() {
    let readme = include_str!("../../README.md");
    let marker = readme
        .find("<!-- hooks-receiver-example")
        .expect("the README's receiver example");
    let program = readme[marker..]
        .split("```python\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("a python block after the marker");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("receiver.py");
    std::fs::write(&script, program).unwrap();
    let port = free_port();
    let mut receiver = tokio::process::Command::new("python3")
        .arg(&script)
        .arg(port.to_string())
        .env("DROPGATE_HOOK_SECRET", SECRET)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("python3");
    assert!(crate::common::wait_until_listening(port).await);

    let bench = bench_with(vec![
        Hook::webhook("right", &["upload"], &url_on(port), SECRET),
        Hook::webhook("wrong", &["upload"], &url_on(port), "another secret"),
    ])
    .await;
    put(&bench, &bench.user("alice"), "orders.csv", b"1,2\n").await;

    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(
        receiver.stdout.take().unwrap(),
    ));
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("the receiver printed nothing")
        .unwrap()
        .unwrap();
    let words: Vec<&str> = line.split(' ').collect();
    assert_eq!(words[1..], ["upload", "alice", "/orders.csv"], "{line}");
    assert_eq!(words[0].len(), 32);
    // The other hook's request was refused (401) every time: still queued, never printed.
    let more = tokio::time::timeout(Duration::from_secs(3), lines.next_line()).await;
    assert!(more.is_err(), "a second event was accepted: {more:?}");
    assert_eq!(queued_events(&bench.path("hooks/wrong.queue")).len(), 1);
    assert_eq!(
        queued_events(&bench.path("hooks/wrong.queue"))[0]["event"]["id"],
        words[0]
    );
}

/// A queue that cannot be written (here its file is /dev/full, whose every write fails with
/// ENOSPC, as on a full disk): the event is counted as lost and the upload still succeeds.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_queue_disk_loses_the_event_but_not_the_upload() {
    let receiver = Receiver::start(&[]).await;
    let url = receiver.url();
    let bench = Bench::configured(move |config, dir| {
        let queues = dir.join("hooks");
        std::fs::create_dir(&queues).unwrap();
        std::os::unix::fs::symlink("/dev/full", queues.join("full-disk.queue")).unwrap();
        config.hook_queue = Some(HookQueue { dir: queues });
        config.hooks = vec![Hook::webhook("full-disk", &["upload"], &url, SECRET)];
    })
    .await;
    put(&bench, &bench.user("alice"), "kept.csv", b"kept").await;
    assert_eq!(bench.dropbox_download("/alice/kept.csv").await, b"kept");
    let metrics = dropgate::metrics::render();
    assert_eq!(
        sample(
            &metrics,
            "dropgate_hook_deliveries_total{hook=\"full-disk\",result=\"lost\"}"
        ),
        Some(1),
        "{metrics}"
    );
    assert!(settled(&receiver).await.is_empty());
    receiver.stop();
}
