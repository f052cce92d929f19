//! Durable webhooks through the real HTTP API, against real HTTP receivers on loopback
//! (`webhooks_support`): configuration (superuser CRUD, validation, the write-only secret),
//! delivery in log order with a verifiable HMAC, retries with backoff without loss or
//! reordering, a hanging receiver (timeout, others unaffected), dead letters, a receiver that
//! restarts, the server restarting mid-stream (the cursor resumes: at least once, no gaps),
//! the filter and events, replay, the backlog metric, and write latency with slow endpoints.

mod realtime_support;
mod webhooks_support;

use api::webhooks::{delivery::signature, Tuning};
use api::ServerOptions;
use realtime_support::{temp_dir, Server};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use webhooks_support::{Mode, Receiver};

const SECRET: &str = "s3cret-key-for-tests";
const WAIT: Duration = Duration::from_secs(20);

/// Short timings so retries and dead letters happen within a test.
fn fast(max_attempts: u32) -> Tuning {
    Tuning {
        timeout: Duration::from_millis(400),
        backoff_base: Duration::from_millis(20),
        backoff_cap: Duration::from_millis(100),
        max_attempts,
    }
}

async fn start(path: &std::path::Path, tuning: Tuning) -> Server {
    let server = Server::start(path, ServerOptions::default()).await;
    server.state.webhooks.set_tuning(tuning);
    api::webhooks::start(&server.state)
        .await
        .expect("start webhooks");
    server
}

async fn stop(server: Server) {
    server.state.webhooks.stop();
    server.stop().await;
}

async fn create_notes(server: &Server) {
    server
        .create_collection(json!({
            "name": "notes", "type": "base",
            "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
            "fields": [{"name": "title", "type": "text"}, {"name": "status", "type": "text"},
                       {"name": "n", "type": "number"}]
        }))
        .await;
}

async fn add_hook(server: &Server, body: Value) -> Value {
    let (status, reply) = server
        .send("POST", "/api/webhooks", Some(body), Some(&server.admin))
        .await;
    assert_eq!(status, 200, "webhook create failed: {reply}");
    reply
}

async fn note(server: &Server, n: i64) -> Value {
    server
        .create(
            "notes",
            json!({"title": format!("note {n}"), "n": n, "status": "draft"}),
            None,
        )
        .await
}

async fn metrics_text(server: &Server) -> String {
    let response = server
        .http
        .get(server.url("/api/metrics"))
        .header("Authorization", &server.admin)
        .send()
        .await
        .expect("metrics");
    assert_eq!(response.status(), 200);
    response.text().await.expect("text")
}

fn positions(received: &[webhooks_support::Received]) -> Vec<u64> {
    received
        .iter()
        .map(|r| r.json["position"].as_u64().expect("position"))
        .collect()
}

fn numbers(received: &[webhooks_support::Received]) -> Vec<i64> {
    received
        .iter()
        .map(|r| r.json["record"]["n"].as_i64().expect("n"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_config_is_superuser_only_validated_and_hides_the_secret() {
    let (_dir, path) = temp_dir();
    let server = start(&path, fast(3)).await;
    create_notes(&server).await;
    let (_, user_token) = server.user("ann").await;
    let body = json!({"url": "http://127.0.0.1:9/hook", "secret": SECRET});
    let (status, _) = server
        .send("POST", "/api/webhooks", Some(body.clone()), None)
        .await;
    assert_eq!(status, 401);
    let (status, _) = server
        .send(
            "POST",
            "/api/webhooks",
            Some(body.clone()),
            Some(&user_token),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = server
        .send("GET", "/api/webhooks", None, Some(&user_token))
        .await;
    assert_eq!(status, 403);

    // Validation: one entry per bad field, nothing stored.
    let (status, reply) = server
        .send(
            "POST",
            "/api/webhooks",
            Some(
                json!({"url": "ftp://x", "collections": ["nope"], "events": ["upsert"],
                        "filter": "title ~", "secret": "short"}),
            ),
            Some(&server.admin),
        )
        .await;
    assert_eq!(status, 400, "{reply}");
    for field in ["url", "collections", "events", "secret"] {
        assert!(reply["data"][field]["code"].is_string(), "{field}: {reply}");
    }
    let (status, reply) = server
        .send(
            "POST",
            "/api/webhooks",
            Some(
                json!({"url": "http://127.0.0.1:9/hook", "collections": ["notes"],
                        "filter": "missing_field = 1", "secret": SECRET}),
            ),
            Some(&server.admin),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(reply["data"]["filter"]["code"], "validation_invalid_filter");
    let (status, reply) = server
        .send(
            "POST",
            "/api/webhooks",
            Some(json!({"url": "http://127.0.0.1:9/h"})),
            Some(&server.admin),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(reply["data"]["secret"]["code"], "validation_required");
    let (_, list) = server
        .send("GET", "/api/webhooks", None, Some(&server.admin))
        .await;
    assert_eq!(list["totalItems"], 0);

    let hook = add_hook(
        &server,
        json!({"url": "http://127.0.0.1:9/hook", "collections": ["notes"], "events": ["create"],
               "filter": "status = 'published'", "secret": SECRET}),
    )
    .await;
    let id = hook["id"].as_str().expect("id").to_string();
    assert_eq!(hook["collections"], json!(["notes"]));
    assert_eq!(hook["events"], json!(["create"]));
    assert_eq!(hook["active"], true);
    assert_eq!(hook["hasSecret"], true);
    assert!(!hook.to_string().contains(SECRET), "secret leaked: {hook}");
    let (status, view) = server
        .send(
            "GET",
            &format!("/api/webhooks/{id}"),
            None,
            Some(&server.admin),
        )
        .await;
    assert_eq!(status, 200);
    assert!(!view.to_string().contains(SECRET));
    // The secret is not in the settings either.
    let (_, settings) = server
        .send("GET", "/api/settings", None, Some(&server.admin))
        .await;
    assert!(!settings.to_string().contains(SECRET));

    // PATCH without a secret keeps it; a rename of the collection keeps the webhook.
    let (status, patched) = server
        .send(
            "PATCH",
            &format!("/api/webhooks/{id}"),
            Some(json!({"active": false, "events": ["create", "delete"]})),
            Some(&server.admin),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["active"], false);
    assert_eq!(patched["hasSecret"], true);
    let (status, _) = server
        .send(
            "PATCH",
            "/api/collections/notes",
            Some(json!({"name": "memos"})),
            Some(&server.admin),
        )
        .await;
    assert_eq!(status, 200);
    let (_, view) = server
        .send(
            "GET",
            &format!("/api/webhooks/{id}"),
            None,
            Some(&server.admin),
        )
        .await;
    assert_eq!(view["collections"], json!(["memos"]));

    // The configuration is in the log: it survives a restart.
    stop(server).await;
    let server = start(&path, fast(3)).await;
    let (_, list) = server
        .send("GET", "/api/webhooks", None, Some(&server.admin))
        .await;
    assert_eq!(list["totalItems"], 1);
    assert_eq!(list["items"][0]["id"], id.as_str());
    let (status, _) = server
        .send(
            "DELETE",
            &format!("/api/webhooks/{id}"),
            None,
            Some(&server.admin),
        )
        .await;
    assert_eq!(status, 204);
    for path in [
        format!("/api/webhooks/{id}"),
        format!("/api/webhooks/{id}/deliveries"),
    ] {
        let (status, reply) = server.send("GET", &path, None, Some(&server.admin)).await;
        assert_eq!(status, 404, "{path}: {reply}");
    }
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_deliver_in_log_order_with_a_valid_signature() {
    let (_dir, path) = temp_dir();
    let server = start(&path, fast(3)).await;
    create_notes(&server).await;
    let receiver = Receiver::start(Mode::Ok).await;
    let users = Receiver::start(Mode::Ok).await;
    add_hook(
        &server,
        json!({"url": receiver.url(), "collections": ["notes"], "secret": SECRET}),
    )
    .await;
    add_hook(
        &server,
        json!({"url": users.url(), "collections": ["users"], "secret": SECRET}),
    )
    .await;
    let mut ids = Vec::new();
    for n in 0..20 {
        ids.push(
            note(&server, n).await["id"]
                .as_str()
                .expect("id")
                .to_string(),
        );
    }
    let (status, _) = server
        .send(
            "PATCH",
            &format!("/api/collections/notes/records/{}", ids[0]),
            Some(json!({"title": "changed"})),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = server
        .send(
            "DELETE",
            &format!("/api/collections/notes/records/{}", ids[1]),
            None,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let got = receiver.wait_accepted(22, WAIT).await;
    assert_eq!(got.len(), 22, "exactly the 22 events");
    let seen = positions(&got);
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "positions in log order: {seen:?}"
    );
    assert_eq!(numbers(&got[..20]), (0..20).collect::<Vec<i64>>());
    assert_eq!(got[20].json["action"], "update");
    assert_eq!(got[20].json["record"]["title"], "changed");
    assert_eq!(got[21].json["action"], "delete");
    assert_eq!(got[21].json["record"]["id"], ids[1].as_str());
    for received in &got {
        assert_eq!(received.json["collection"], "notes");
        let header = received.headers["x-pocketlog-signature"]
            .to_str()
            .expect("ascii");
        assert_eq!(
            header,
            signature(SECRET, &received.body),
            "HMAC of the raw body"
        );
        assert_ne!(header, signature("another-secret", &received.body));
        let position = received.headers["x-pocketlog-position"]
            .to_str()
            .expect("ascii");
        assert_eq!(position, received.json["position"].to_string());
        assert_eq!(received.headers["content-type"], "application/json");
    }
    // An independent HMAC-SHA256 check of one body.
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(&got[0].body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        got[0].headers["x-pocketlog-signature"],
        format!("sha256={hex}").as_str()
    );

    // The users webhook sees the superuser view, never password or tokenKey.
    server.user("bob").await;
    let got = users.wait_accepted(1, WAIT).await;
    let record = &got[0].json["record"];
    assert_eq!(record["email"], "bob@example.com");
    assert!(
        record.get("password").is_none() && record.get("tokenKey").is_none(),
        "{record}"
    );
    assert_eq!(
        receiver.accepted().len(),
        22,
        "notes hook got no users event"
    );
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_retry_with_backoff_without_loss_or_reordering() {
    let (_dir, path) = temp_dir();
    let server = start(&path, fast(10)).await;
    create_notes(&server).await;
    let receiver = Receiver::start(Mode::Ok).await;
    receiver.fail_next(4);
    let hook = add_hook(&server, json!({"url": receiver.url(), "secret": SECRET})).await;
    let id = hook["id"].as_str().expect("id");
    for n in 0..5 {
        note(&server, n).await;
    }
    let got = receiver.wait_accepted(5, WAIT).await;
    assert_eq!(numbers(&got), vec![0, 1, 2, 3, 4], "no loss, no reordering");
    let all = receiver.received();
    assert_eq!(all.len(), 9, "4 failed attempts + 5 deliveries");
    // The first event was tried 5 times, with attempt headers 1..5 and growing gaps.
    let first: Vec<_> = all.iter().filter(|r| r.json["record"]["n"] == 0).collect();
    assert_eq!(first.len(), 5);
    let attempts: Vec<&str> = first
        .iter()
        .map(|r| r.headers["x-pocketlog-attempt"].to_str().expect("ascii"))
        .collect();
    assert_eq!(attempts, vec!["1", "2", "3", "4", "5"]);
    let gaps: Vec<Duration> = first.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(
        gaps[0] >= Duration::from_millis(15),
        "backoff waited: {gaps:?}"
    );
    assert!(
        gaps[2] >= Duration::from_millis(60),
        "backoff grew: {gaps:?}"
    );
    let (status, log) = server
        .send(
            "GET",
            &format!("/api/webhooks/{id}/deliveries"),
            None,
            Some(&server.admin),
        )
        .await;
    assert_eq!(status, 200);
    let items = log["items"].as_array().expect("items");
    assert_eq!(items.len(), 9);
    assert_eq!(items.iter().filter(|i| i["status"] == 500).count(), 4);
    assert_eq!(items[0]["status"], 200, "newest first");
    let (_, dead) = server
        .send(
            "GET",
            &format!("/api/webhooks/{id}/dead"),
            None,
            Some(&server.admin),
        )
        .await;
    assert_eq!(dead["items"], json!([]));
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_hanging_and_failing_endpoints_dead_letter_without_affecting_others() {
    let (_dir, path) = temp_dir();
    let server = start(&path, fast(2)).await;
    create_notes(&server).await;
    let hanging = Receiver::start(Mode::Hang).await;
    let failing = Receiver::start(Mode::Fail).await;
    let healthy = Receiver::start(Mode::Ok).await;
    let hang_hook = add_hook(&server, json!({"url": hanging.url(), "secret": SECRET})).await;
    let fail_hook = add_hook(&server, json!({"url": failing.url(), "secret": SECRET})).await;
    add_hook(&server, json!({"url": healthy.url(), "secret": SECRET})).await;
    let started = Instant::now();
    for n in 0..4 {
        note(&server, n).await;
    }
    let got = healthy.wait_accepted(4, WAIT).await;
    assert_eq!(numbers(&got), vec![0, 1, 2, 3]);
    // Hanging costs the hanging endpoint 4 events x 2 attempts x 400 ms; the healthy one
    // does not wait for it.
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );

    // Every event reaches the dead-letter list of both bad endpoints, in order, with the body.
    for (hook, error) in [(&hang_hook, "timeout"), (&fail_hook, "HTTP 500")] {
        let id = hook["id"].as_str().expect("id");
        let deadline = Instant::now() + WAIT;
        let dead = loop {
            let (_, dead) = server
                .send(
                    "GET",
                    &format!("/api/webhooks/{id}/dead"),
                    None,
                    Some(&server.admin),
                )
                .await;
            if dead["items"].as_array().map_or(0, Vec::len) >= 4 || Instant::now() > deadline {
                break dead;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let items = dead["items"].as_array().expect("items");
        assert_eq!(items.len(), 4, "{dead}");
        let ns: Vec<i64> = items
            .iter()
            .rev()
            .map(|i| i["body"]["record"]["n"].as_i64().expect("n"))
            .collect();
        assert_eq!(ns, vec![0, 1, 2, 3]);
        assert!(
            items
                .iter()
                .all(|i| i["attempts"] == 2 && i["error"] == error),
            "{dead}"
        );
    }
    assert_eq!(failing.received().len(), 8, "2 attempts per event");
    // Delivery continues after dead letters: a recovered endpoint gets the next events.
    failing.set_mode(Mode::Ok);
    note(&server, 4).await;
    let got = failing.wait_accepted(1, WAIT).await;
    assert_eq!(numbers(&got), vec![4]);
    let metrics = metrics_text(&server).await;
    let line = format!(
        "pocketlog_webhook_dead_letters_total{{webhook=\"{}\"}} 4",
        fail_hook["id"].as_str().expect("id")
    );
    assert!(metrics.contains(&line), "{metrics}");
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_survive_a_receiver_restart() {
    let (_dir, path) = temp_dir();
    let server = start(&path, fast(1000)).await;
    create_notes(&server).await;
    let receiver = Receiver::start(Mode::Ok).await;
    add_hook(&server, json!({"url": receiver.url(), "secret": SECRET})).await;
    for n in 0..3 {
        note(&server, n).await;
    }
    receiver.wait_accepted(3, WAIT).await;
    receiver.stop().await;
    for n in 3..8 {
        note(&server, n).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    receiver.restart().await;
    let got = receiver.wait_accepted(8, WAIT).await;
    assert_eq!(
        numbers(&got),
        (0..8).collect::<Vec<i64>>(),
        "nothing lost across the restart"
    );
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_resume_from_the_cursor_after_a_server_restart() {
    let (_dir, path) = temp_dir();
    let server = start(&path, fast(1000)).await;
    create_notes(&server).await;
    let receiver = Receiver::start(Mode::Slow(Duration::from_millis(30))).await;
    let hook = add_hook(
        &server,
        json!({"url": receiver.url(), "collections": ["notes"], "secret": SECRET}),
    )
    .await;
    let id = hook["id"].as_str().expect("id").to_string();
    for n in 0..40 {
        note(&server, n).await;
    }
    // Stop the server mid-stream.
    receiver.wait_accepted(5, WAIT).await;
    stop(server).await;
    let before = receiver.accepted().len();
    assert!(before < 40, "the stop came mid-stream ({before} delivered)");
    let server = start(&path, fast(1000)).await;
    for n in 40..45 {
        note(&server, n).await;
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let mut seen = numbers(&receiver.accepted());
        seen.sort_unstable();
        seen.dedup();
        if seen.len() == 45 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of 45 events arrived",
            seen.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = numbers(&receiver.accepted());
    // At least once, in order: the first occurrences are 0..45 in order, and a repeat can only
    // be an event in flight at the stop (at most one here).
    let mut first = Vec::new();
    for n in &got {
        if !first.contains(n) {
            first.push(*n);
        }
    }
    assert_eq!(first, (0..45).collect::<Vec<i64>>());
    assert!(got.len() - 45 <= 1, "too many repeats: {got:?}");
    // The cursor catches up with the head (it moves just after the receiver answered).
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, view) = server
            .send(
                "GET",
                &format!("/api/webhooks/{id}"),
                None,
                Some(&server.admin),
            )
            .await;
        if view["backlog"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the backlog stays: {view}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_filter_events_and_replay() {
    let (_dir, path) = temp_dir();
    let server = start(&path, fast(3)).await;
    create_notes(&server).await;
    let published = Receiver::start(Mode::Ok).await;
    let deletes = Receiver::start(Mode::Ok).await;
    let hook = add_hook(
        &server,
        json!({"url": published.url(), "collections": ["notes"], "filter": "status = 'published' && n >= 2",
               "secret": SECRET}),
    )
    .await;
    add_hook(
        &server,
        json!({"url": deletes.url(), "events": ["delete"], "secret": SECRET}),
    )
    .await;
    let mut records = Vec::new();
    for n in 0..5 {
        let status = if n % 2 == 0 { "published" } else { "draft" };
        records.push(
            server
                .create(
                    "notes",
                    json!({"title": "t", "n": n, "status": status}),
                    None,
                )
                .await,
        );
    }
    let (status, _) = server
        .send(
            "DELETE",
            &format!(
                "/api/collections/notes/records/{}",
                records[1]["id"].as_str().expect("id")
            ),
            None,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let got = published.wait_accepted(2, WAIT).await;
    let gone = deletes.wait_accepted(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        numbers(&published.accepted()),
        vec![2, 4],
        "only matching records"
    );
    assert_eq!(deletes.accepted().len(), 1, "only the delete event");
    assert_eq!(gone[0].json["action"], "delete");
    assert_eq!(gone[0].json["record"]["n"], 1);

    // Replay from the position of the first delivered event: both come again, in order.
    let id = hook["id"].as_str().expect("id");
    let from = got[0].json["position"].as_u64().expect("position");
    let (status, reply) = server
        .send(
            "POST",
            &format!("/api/webhooks/{id}/replay"),
            Some(json!({"from": from})),
            Some(&server.admin),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    let got = published.wait_accepted(4, WAIT).await;
    assert_eq!(numbers(&got), vec![2, 4, 2, 4]);
    // Bad positions are validation errors.
    for bad in [
        json!({"from": -1}),
        json!({"from": "x"}),
        json!({}),
        json!({"from": 1_000_000}),
    ] {
        let (status, reply) = server
            .send(
                "POST",
                &format!("/api/webhooks/{id}/replay"),
                Some(bad.clone()),
                Some(&server.admin),
            )
            .await;
        assert_eq!(status, 400, "{bad}: {reply}");
        assert!(reply["data"]["from"]["code"].is_string());
    }
    let (status, _) = server
        .send(
            "POST",
            "/api/webhooks/nope/replay",
            Some(json!({"from": 1})),
            Some(&server.admin),
        )
        .await;
    assert_eq!(status, 404);
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_backlog_metric_follows_a_paused_endpoint() {
    let (_dir, path) = temp_dir();
    let server = start(&path, fast(3)).await;
    create_notes(&server).await;
    let receiver = Receiver::start(Mode::Ok).await;
    let hook = add_hook(&server, json!({"url": receiver.url(), "secret": SECRET})).await;
    let id = hook["id"].as_str().expect("id");
    note(&server, 0).await;
    receiver.wait_accepted(1, WAIT).await;
    let (status, _) = server
        .send(
            "PATCH",
            &format!("/api/webhooks/{id}"),
            Some(json!({"active": false})),
            Some(&server.admin),
        )
        .await;
    assert_eq!(status, 200);
    for n in 1..4 {
        note(&server, n).await;
    }
    let metrics = metrics_text(&server).await;
    let prefix = format!("pocketlog_webhook_backlog_commits{{webhook=\"{id}\"}} ");
    let backlog: u64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .expect("backlog line")
        .parse()
        .expect("number");
    // The three notes wait; the pause commit itself counts unless the task passed it before
    // it stopped.
    assert!((3..=4).contains(&backlog), "{metrics}");
    let (status, _) = server
        .send(
            "PATCH",
            &format!("/api/webhooks/{id}"),
            Some(json!({"active": true})),
            Some(&server.admin),
        )
        .await;
    assert_eq!(status, 200);
    let got = receiver.wait_accepted(4, WAIT).await;
    assert_eq!(
        numbers(&got),
        vec![0, 1, 2, 3],
        "paused events delivered on resume"
    );
    stop(server).await;
}

fn p99(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[(samples.len() * 99 / 100).min(samples.len() - 1)]
}

async fn write_latencies(server: &Server, count: i64) -> Vec<Duration> {
    let mut out = Vec::new();
    for n in 0..count {
        let started = Instant::now();
        note(server, n).await;
        out.push(started.elapsed());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_slow_endpoints_do_not_slow_writes() {
    let writes: i64 = std::env::var("WEBHOOK_BENCH_WRITES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let (_dir, path) = temp_dir();
    let server = start(
        &path,
        Tuning {
            max_attempts: 1000,
            ..fast(3)
        },
    )
    .await;
    create_notes(&server).await;
    write_latencies(&server, 20).await; // warm-up
    let none = p99(write_latencies(&server, writes).await);
    let mut slow = Vec::new();
    for _ in 0..10 {
        let receiver = Receiver::start(Mode::Slow(Duration::from_millis(200))).await;
        add_hook(&server, json!({"url": receiver.url(), "secret": SECRET})).await;
        slow.push(receiver);
    }
    let with_slow = p99(write_latencies(&server, writes).await);
    // Deliveries per second to one local receiver.
    let fast_receiver = Receiver::start(Mode::Ok).await;
    let (_dir2, path2) = temp_dir();
    let other = start(&path2, fast(3)).await;
    create_notes(&other).await;
    let paused = add_hook(
        &other,
        json!({"url": fast_receiver.url(), "secret": SECRET, "active": false}),
    )
    .await;
    write_latencies(&other, writes).await;
    let started = Instant::now();
    let (status, _) = other
        .send(
            "PATCH",
            &format!("/api/webhooks/{}", paused["id"].as_str().expect("id")),
            Some(json!({"active": true})),
            Some(&other.admin),
        )
        .await;
    assert_eq!(status, 200);
    fast_receiver.wait_accepted(writes as usize, WAIT * 3).await;
    let rate = writes as f64 / started.elapsed().as_secs_f64();
    println!(
        "webhooks: write p99 over {writes} writes: no endpoints {:.2} ms, 10 slow (200 ms) endpoints {:.2} ms; \
         deliveries/s to one local receiver (draining a backlog of {writes}) {rate:.0}",
        none.as_secs_f64() * 1000.0,
        with_slow.as_secs_f64() * 1000.0
    );
    // Loose bound: slow endpoints must not make writes wait for them (a write that waited for
    // one 200 ms delivery would be far above this).
    assert!(
        with_slow < none * 4 + Duration::from_millis(150),
        "writes slowed down: {none:?} vs {with_slow:?}"
    );
    for receiver in &slow {
        assert!(
            !receiver.received().is_empty(),
            "slow endpoints got deliveries"
        );
    }
    stop(other).await;
    stop(server).await;
}
