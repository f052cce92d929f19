//! Snapshot, then stream: a list carries the log position it was read at
//! (`X-Pocketlog-Position`, and `position` in the envelope with `withPosition=1`); a realtime
//! subscription with `options.query.position` then delivers exactly the commits after it, so
//! the page plus the stream equals the final state — nothing missed, nothing twice — whether
//! the client connected before or after it read the page, and with writes racing both.

mod realtime_support;

use api::ServerOptions;
use proptest::prelude::*;
use realtime_support::{temp_dir, Server, Sse};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// A list of `messages` (all of it): its items by id and the position header.
async fn list_at(server: &Server, with_field: bool) -> (BTreeMap<String, String>, u64) {
    let suffix = if with_field { "&withPosition=1" } else { "" };
    let response = reqwest::get(server.url(&format!(
        "/api/collections/messages/records?perPage=500&skipTotal=1{suffix}"
    )))
    .await
    .expect("list");
    assert_eq!(response.status().as_u16(), 200);
    let position: u64 = response
        .headers()
        .get("x-pocketlog-position")
        .expect("position header")
        .to_str()
        .expect("ascii")
        .parse()
        .expect("number");
    let body: Value = response.json().await.expect("json");
    if with_field {
        assert_eq!(body["position"], json!(position));
    } else {
        assert!(body.get("position").is_none());
    }
    let items = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| {
            (
                item["id"].as_str().expect("id").to_string(),
                item["text"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    (items, position)
}

fn positioned(topic: &str, position: u64) -> String {
    let options = json!({"query": {"position": position}}).to_string();
    let encoded: String = options
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("{topic}?options={encoded}")
}

/// Applies stream frames to a page; returns the seqs seen.
fn apply(state: &mut BTreeMap<String, String>, frames: &[realtime_support::Frame]) -> Vec<u64> {
    let mut seqs = Vec::new();
    for frame in frames {
        let data = frame.json();
        let id = data["record"]["id"].as_str().expect("id").to_string();
        match data["action"].as_str().expect("action") {
            "create" | "update" => {
                state.insert(id, data["record"]["text"].as_str().unwrap_or("").into());
            }
            "delete" => {
                state.remove(&id);
            }
            other => panic!("action {other}"),
        }
        seqs.push(frame.seq());
    }
    seqs
}

/// Reads frames until the `marker` record's create arrives.
async fn until_marker(sse: &mut Sse, marker: &str) -> Vec<realtime_support::Frame> {
    let mut frames = Vec::new();
    loop {
        let frame = sse
            .next(Duration::from_secs(10))
            .await
            .expect("the marker event arrives");
        let done = frame.json()["record"]["text"] == json!(marker);
        frames.push(frame);
        if done {
            return frames;
        }
    }
}

async fn final_state(server: &Server) -> BTreeMap<String, String> {
    list_at(server, false).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_then_connect_streams_exactly_the_changes_after_the_page() {
    let (_dir, path) = temp_dir();
    let server = Server::start(&path, ServerOptions::default()).await;
    server.create_messages().await;
    let a = server.create("messages", json!({"text": "a"}), None).await;
    let b = server.create("messages", json!({"text": "b"}), None).await;
    let (mut page, position) = list_at(&server, true).await;
    assert_eq!(position, server.state.engine.last_seq());
    assert_eq!(page.len(), 2);
    // Changes after the page, before the client connects.
    server.create("messages", json!({"text": "c"}), None).await;
    let a_id = a["id"].as_str().expect("id");
    let b_id = b["id"].as_str().expect("id");
    let (status, _) = server
        .send(
            "PATCH",
            &format!("/api/collections/messages/records/{a_id}"),
            Some(json!({"text": "a2"})),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = server
        .send(
            "DELETE",
            &format!("/api/collections/messages/records/{b_id}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (mut sse, _) = Sse::connect(&server.addr, None).await;
    let topic = positioned("messages/*", position);
    assert_eq!(server.subscribe(&sse.client_id, &[&topic], None).await, 204);
    server
        .create("messages", json!({"text": "end"}), None)
        .await;
    let frames = until_marker(&mut sse, "end").await;
    let seqs = apply(&mut page, &frames);
    assert_eq!(frames.len(), 4, "c, a2, delete b, end: {frames:?}");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in log order");
    assert!(seqs.iter().all(|seq| *seq > position));
    assert_eq!(page, final_state(&server).await);
    assert!(frames.iter().all(|f| f.event == topic));
    sse.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_list_plan_carries_the_position() {
    let (_dir, path) = temp_dir();
    let server = Server::start(&path, ServerOptions::default()).await;
    server.create_messages().await;
    for text in ["b", "a", "c"] {
        server.create("messages", json!({"text": text}), None).await;
    }
    // A filter and a sort no index serves (the page and the total counted in one scan), a
    // plain page with its total, and a page without it.
    for query in [
        "filter=text%21%3D%27%27&sort=-text",
        "sort=text",
        "skipTotal=1",
    ] {
        let response =
            reqwest::get(server.url(&format!("/api/collections/messages/records?{query}")))
                .await
                .expect("list");
        assert_eq!(response.status().as_u16(), 200, "{query}");
        let position = response.headers()["x-pocketlog-position"]
            .to_str()
            .expect("ascii")
            .to_string();
        assert_eq!(
            position,
            server.state.engine.last_seq().to_string(),
            "{query}"
        );
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["items"].as_array().map(Vec::len), Some(3), "{query}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_positioned_topic_does_not_replay_for_the_other_topics() {
    let (_dir, path) = temp_dir();
    let server = Server::start(&path, ServerOptions::default()).await;
    server.create_messages().await;
    let (mut sse, _) = Sse::connect(&server.addr, None).await;
    let id = sse.client_id.clone();
    assert_eq!(server.subscribe(&id, &["messages/*"], None).await, 204);
    server.create("messages", json!({"text": "x"}), None).await;
    let (page, position) = list_at(&server, false).await;
    assert_eq!(page.len(), 1);
    let live = sse.take(1).await;
    assert_eq!(live[0].json()["record"]["text"], json!("x"));
    server.create("messages", json!({"text": "y"}), None).await;
    // y was delivered to the plain topic; the positioned one starts before it.
    let live = sse.take(1).await;
    assert_eq!(live[0].json()["record"]["text"], json!("y"));
    let topic = positioned("messages", position);
    assert_eq!(
        server.subscribe(&id, &["messages/*", &topic], None).await,
        204
    );
    server.create("messages", json!({"text": "z"}), None).await;
    let mut frames = until_marker(&mut sse, "z").await;
    // z reaches both topics: the second z frame follows the first.
    frames.extend(sse.take(1).await);
    let got: Vec<(String, String)> = frames
        .iter()
        .map(|f| {
            (
                f.event.clone(),
                f.json()["record"]["text"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect();
    // y once more, for the positioned topic only; then z for both, in subscription order.
    assert_eq!(
        got,
        vec![
            (topic.clone(), "y".to_string()),
            ("messages/*".to_string(), "z".to_string()),
            (topic.clone(), "z".to_string()),
        ]
    );
    sse.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_positions_are_refused_or_match_nothing() {
    let (_dir, path) = temp_dir();
    let server = Server::start(&path, ServerOptions::default()).await;
    server.create_messages().await;
    let (mut sse, _) = Sse::connect(&server.addr, None).await;
    let id = sse.client_id.clone();
    let future = positioned("messages/*", server.state.engine.last_seq() + 100);
    let (status, body) = server
        .send(
            "POST",
            "/api/realtime",
            Some(json!({"clientId": id, "subscriptions": [future]})),
            None,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["status"], json!(400));
    let junk = "messages/*?options=%7B%22query%22%3A%7B%22position%22%3A%22soon%22%7D%7D";
    assert_eq!(server.subscribe(&id, &[junk], None).await, 204);
    server.create("messages", json!({"text": "q"}), None).await;
    sse.expect_silence(Duration::from_millis(300)).await;
}

#[derive(Debug, Clone)]
enum Op {
    Create,
    Update(usize),
    Delete(usize),
    /// Read the page (once; later ones are no-ops).
    List,
    /// Open the stream (once).
    Connect,
    Pause(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Create),
        2 => (0usize..8).prop_map(Op::Update),
        1 => (0usize..8).prop_map(Op::Delete),
        1 => Just(Op::List),
        1 => Just(Op::Connect),
        1 => (0u8..5).prop_map(Op::Pause),
    ]
}

/// One case: a background writer races the client's ops; the client reads a page, connects
/// (in whatever order the ops say), subscribes from the page's position; at the end
/// page + stream must equal the final state.
async fn run(ops: Vec<Op>, racing_writes: usize) -> Result<(), TestCaseError> {
    let (_dir, path) = temp_dir();
    let server = std::sync::Arc::new(Server::start(&path, ServerOptions::default()).await);
    server.create_messages().await;
    let racer = {
        let server = std::sync::Arc::clone(&server);
        tokio::spawn(async move {
            for n in 0..racing_writes {
                server
                    .create("messages", json!({"text": format!("r{n}")}), None)
                    .await;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let mut ids: Vec<String> = Vec::new();
    let mut page: Option<(BTreeMap<String, String>, u64)> = None;
    let mut sse: Option<Sse> = None;
    for (index, op) in ops.iter().enumerate() {
        match op {
            Op::Create => {
                let record = server
                    .create("messages", json!({"text": format!("o{index}")}), None)
                    .await;
                ids.push(record["id"].as_str().expect("id").to_string());
            }
            Op::Update(n) if !ids.is_empty() => {
                let id = &ids[n % ids.len()];
                server
                    .send(
                        "PATCH",
                        &format!("/api/collections/messages/records/{id}"),
                        Some(json!({"text": format!("u{index}")})),
                        None,
                    )
                    .await;
            }
            Op::Delete(n) if !ids.is_empty() => {
                let id = ids.remove(n % ids.len());
                server
                    .send(
                        "DELETE",
                        &format!("/api/collections/messages/records/{id}"),
                        None,
                        None,
                    )
                    .await;
            }
            Op::List if page.is_none() => page = Some(list_at(&server, false).await),
            Op::Connect if sse.is_none() => sse = Some(Sse::connect(&server.addr, None).await.0),
            Op::Pause(ms) => tokio::time::sleep(Duration::from_millis(u64::from(*ms))).await,
            _ => {}
        }
    }
    let (mut state, position) = match page {
        Some(page) => page,
        None => list_at(&server, false).await,
    };
    let mut sse = match sse {
        Some(sse) => sse,
        None => Sse::connect(&server.addr, None).await.0,
    };
    let topic = positioned("messages/*", position);
    prop_assert_eq!(server.subscribe(&sse.client_id, &[&topic], None).await, 204);
    racer.await.expect("racer");
    server
        .create("messages", json!({"text": "marker"}), None)
        .await;
    let frames = until_marker(&mut sse, "marker").await;
    let seqs = apply(&mut state, &frames);
    prop_assert!(
        seqs.windows(2).all(|w| w[0] <= w[1]),
        "log order: {:?}",
        seqs
    );
    prop_assert!(seqs.iter().all(|seq| *seq > position));
    let mut unique = seqs.clone();
    unique.dedup();
    prop_assert_eq!(unique.len(), seqs.len(), "no commit twice");
    prop_assert_eq!(state, final_state(&server).await);
    drop(sse);
    if let Ok(server) = std::sync::Arc::try_unwrap(server) {
        server.stop().await;
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("SNAPSHOT_STREAM_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn snapshot_plus_stream_equals_the_final_state(
        ops in proptest::collection::vec(op(), 4..30),
        racing_writes in 0usize..20,
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(run(ops, racing_writes))?;
    }
}
