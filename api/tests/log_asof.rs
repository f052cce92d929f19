//! `asOf` time-travel reads over HTTP: a list or view `?asOf=<position|RFC3339>` answers the
//! state at that point under today's rules, with the position in `X-Pocketlog-Position`.
//!
//! 1. Property: at random points of random write sequences (with a snapshot cut midway, so
//!    both "snapshot + replay" and "replay from the start" are exercised), the `asOf` list
//!    equals both the test's own model of the records and a point-in-time restore
//!    (`engine::admin::restore_dir`) of the data dir at that point.
//! 2. Errors: beyond the head, before the first commit, garbage, a collection created since:
//!    400 with the reason, never a 500; today's rules apply to past states.
//! 3. The cache: concurrent requests for one point build it once; distinct points stay
//!    within `ASOF_CACHE_ENTRIES`; an evicted point is built again.
//! 4. Latency: first (materialising) and cached `asOf` lists on a larger log, printed
//!    (`POCKETLOG_ASOF_BENCH_COMMITS` commits, default 2,000).

mod common;

use common::{start, TestServer};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;

type Model = BTreeMap<String, (String, i64)>;

async fn items_collection(server: &TestServer) {
    server
        .collection(
            json!({"name": "items", "type": "base", "listRule": "", "viewRule": "",
            "createRule": "", "updateRule": "", "deleteRule": "",
            "fields": [{"name": "title", "type": "text"}, {"name": "n", "type": "number"}]}),
        )
        .await;
}

async fn as_of_list(server: &TestServer, at: &str, token: Option<&str>) -> common::Reply {
    server
        .send(
            "GET",
            &format!("/api/collections/items/records?asOf={at}&perPage=500&sort=id"),
            None,
            token,
        )
        .await
}

fn listed(reply: &common::Reply) -> Model {
    reply.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| {
            (
                item["id"].as_str().expect("id").to_string(),
                (
                    item["title"].as_str().expect("title").to_string(),
                    item["n"].as_f64().expect("n") as i64,
                ),
            )
        })
        .collect()
}

/// The records of `items` in a point-in-time restore of the server's data dir at `seq`.
fn restored(server: &TestServer, seq: u64) -> Model {
    let scratch = tempfile::tempdir().expect("temp dir");
    let target = scratch.path().join("restored");
    let options = engine::admin::RestoreOptions {
        at: engine::admin::At::Seq(seq),
        ..Default::default()
    };
    engine::admin::restore_dir(server.state.engine.dir(), &target, options, &mut |_| {})
        .expect("restore");
    let projection =
        engine::admin::Projection::open_for_reads(&target.join(engine::admin::DATA_DB))
            .expect("open");
    let rows = projection
        .read(|conn| conn.query("SELECT id, title, n FROM items ORDER BY id", &[]))
        .expect("query");
    rows.rows
        .iter()
        .map(|row| {
            let title = match &row[1] {
                engine::Value::Text(text) => text.clone(),
                _ => String::new(),
            };
            let n = match &row[2] {
                engine::Value::Int(n) => *n,
                engine::Value::Real(n) => *n as i64,
                _ => 0,
            };
            let id = match &row[0] {
                engine::Value::Text(text) => text.clone(),
                other => panic!("id {other:?}"),
            };
            (id, (title, n))
        })
        .collect()
}

#[derive(Debug, Clone)]
enum Op {
    Create(i64),
    Update(usize, i64),
    Delete(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0i64..1000).prop_map(Op::Create),
        2 => (any::<usize>(), 0i64..1000).prop_map(|(i, n)| Op::Update(i, n)),
        1 => any::<usize>().prop_map(Op::Delete),
    ]
}

async fn run(ops: Vec<Op>, picks: Vec<usize>) -> Result<(), TestCaseError> {
    let server = start().await;
    items_collection(&server).await;
    let mut model = Model::new();
    // (position, the model after it) for every write.
    let mut points = vec![(server.state.engine.last_seq(), model.clone())];
    let snapshot_at = ops.len() / 2;
    for (index, op) in ops.iter().enumerate() {
        if index == snapshot_at {
            server.state.engine.snapshot().expect("snapshot");
        }
        let ids: Vec<String> = model.keys().cloned().collect();
        match op {
            Op::Create(n) => {
                let title = format!("t{index}");
                let record = server
                    .json(
                        "POST",
                        "/api/collections/items/records",
                        json!({"title": title, "n": n}),
                        None,
                        200,
                    )
                    .await;
                model.insert(record["id"].as_str().expect("id").to_string(), (title, *n));
            }
            Op::Update(pick, n) if !ids.is_empty() => {
                let id = &ids[pick % ids.len()];
                let title = format!("u{index}");
                server
                    .json(
                        "PATCH",
                        &format!("/api/collections/items/records/{id}"),
                        json!({"title": title, "n": n}),
                        None,
                        200,
                    )
                    .await;
                model.insert(id.clone(), (title, *n));
            }
            Op::Delete(pick) if !ids.is_empty() => {
                let id = &ids[pick % ids.len()];
                let path = format!("/api/collections/items/records/{id}");
                let reply = server.send("DELETE", &path, None, None).await;
                prop_assert_eq!(reply.status, 204);
                model.remove(id);
            }
            _ => continue,
        }
        points.push((server.state.engine.last_seq(), model.clone()));
    }
    for pick in picks {
        let (seq, expected) = &points[pick % points.len()];
        let reply = as_of_list(&server, &seq.to_string(), Some(&server.admin)).await;
        prop_assert_eq!(reply.status, 200, "{}", reply.text);
        let header = reply
            .headers
            .get("x-pocketlog-position")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        prop_assert_eq!(header, Some(*seq));
        let got = listed(&reply);
        prop_assert_eq!(&got, expected, "asOf={} vs the model", seq);
        prop_assert_eq!(&got, &restored(&server, *seq), "asOf={} vs a restore", seq);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 5, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn asof_list_equals_a_point_in_time_restore(
        ops in proptest::collection::vec(op(), 1..25),
        picks in proptest::collection::vec(any::<usize>(), 1..5),
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(run(ops, picks))?;
    }
}

#[tokio::test]
async fn asof_view_times_errors_and_todays_rules() {
    let server = start().await;
    items_collection(&server).await;
    let record = server
        .json(
            "POST",
            "/api/collections/items/records",
            json!({"title": "first", "n": 1}),
            None,
            200,
        )
        .await;
    let id = record["id"].as_str().expect("id").to_string();
    let created_at = server.state.engine.last_seq();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let between = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let path = format!("/api/collections/items/records/{id}");
    server
        .json("PATCH", &path, json!({"title": "second"}), None, 200)
        .await;
    assert_eq!(server.send("DELETE", &path, None, None).await.status, 204);
    // View: the record as it was, by position and by time; the position in the header.
    let viewed = server
        .send("GET", &format!("{path}?asOf={created_at}"), None, None)
        .await;
    assert_eq!(viewed.status, 200, "{}", viewed.text);
    assert_eq!(viewed.json["title"], json!("first"));
    assert_eq!(
        viewed.headers["x-pocketlog-position"].to_str().ok(),
        Some(created_at.to_string().as_str())
    );
    let by_time = server
        .send("GET", &format!("{path}?asOf={between}"), None, None)
        .await;
    assert_eq!(by_time.status, 200, "{}", by_time.text);
    assert_eq!(by_time.json["title"], json!("first"));
    assert_eq!(
        by_time.headers["x-pocketlog-position"].to_str().ok(),
        Some(created_at.to_string().as_str())
    );
    assert_eq!(server.send("GET", &path, None, None).await.status, 404);
    let before = server
        .send(
            "GET",
            &format!("{path}?asOf={}", created_at - 1),
            None,
            None,
        )
        .await;
    assert_eq!(before.status, 404);
    // Errors: 400 with the reason.
    let head = server.state.engine.last_seq();
    let beyond = as_of_list(&server, &(head + 5).to_string(), None).await;
    assert_eq!(beyond.status, 400);
    assert!(
        beyond.text.contains("beyond the end of the log"),
        "{}",
        beyond.text
    );
    let garbage = as_of_list(&server, "yesterday", None).await;
    assert_eq!(garbage.status, 400);
    assert!(garbage.text.contains("RFC 3339"), "{}", garbage.text);
    let ancient = as_of_list(&server, "2001-01-01T00:00:00Z", None).await;
    assert_eq!(ancient.status, 400);
    assert!(
        ancient.text.contains("before the first commit"),
        "{}",
        ancient.text
    );
    // A collection created after the point: 400, not a 500.
    server
        .collection(json!({"name": "later", "type": "base", "listRule": "", "fields": []}))
        .await;
    let later = server
        .send(
            "GET",
            &format!("/api/collections/later/records?asOf={created_at}"),
            None,
            None,
        )
        .await;
    assert_eq!(later.status, 400, "{}", later.text);
    // Today's rules: a listRule locked now locks the past too.
    server
        .json(
            "PATCH",
            "/api/collections/items",
            json!({"listRule": null}),
            Some(&server.admin),
            200,
        )
        .await;
    let locked = as_of_list(&server, &created_at.to_string(), None).await;
    assert_eq!(locked.status, 403);
    let superuser = as_of_list(&server, &created_at.to_string(), Some(&server.admin)).await;
    assert_eq!(superuser.status, 200);
    assert_eq!(superuser.json["totalItems"], json!(1));
}

#[tokio::test]
async fn asof_builds_once_per_point_and_the_cache_is_bounded() {
    let server = start().await;
    items_collection(&server).await;
    let mut positions = Vec::new();
    for n in 0..(api::asof::ASOF_CACHE_ENTRIES as i64 + 3) {
        server
            .json(
                "POST",
                "/api/collections/items/records",
                json!({"title": "x", "n": n}),
                None,
                200,
            )
            .await;
        positions.push(server.state.engine.last_seq());
    }
    let builds = server.state.asof.builds();
    let at = positions[0].to_string();
    let replies = futures_join(&server, &at, 12).await;
    for reply in &replies {
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.json["totalItems"], json!(1));
    }
    assert_eq!(server.state.asof.builds(), builds + 1, "built once");
    for position in &positions {
        let reply = as_of_list(&server, &position.to_string(), None).await;
        assert_eq!(reply.status, 200);
        assert!(server.state.asof.len() <= api::asof::ASOF_CACHE_ENTRIES);
    }
    assert_eq!(
        server.state.asof.builds(),
        builds + positions.len() as u64,
        "the first point was still cached when asked again"
    );
    // The first point was evicted since: asking again builds it again, same answer.
    let again = as_of_list(&server, &at, None).await;
    assert_eq!(again.json["totalItems"], json!(1));
    assert_eq!(
        server.state.asof.builds(),
        builds + positions.len() as u64 + 1
    );
}

async fn futures_join(server: &TestServer, at: &str, count: usize) -> Vec<common::Reply> {
    let mut tasks = Vec::new();
    for _ in 0..count {
        let client = server.client.clone();
        let url = format!(
            "{}/api/collections/items/records?asOf={at}&perPage=500",
            server.base
        );
        tasks.push(tokio::spawn(async move {
            let response = client.get(url).send().await.expect("send");
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let text = response.text().await.expect("text");
            common::Reply {
                status,
                json: serde_json::from_str(&text).unwrap_or(Value::Null),
                text,
                headers,
            }
        }));
    }
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.expect("task"));
    }
    replies
}

#[tokio::test]
async fn asof_list_latency_first_and_cached() {
    let commits: u64 = std::env::var("POCKETLOG_ASOF_BENCH_COMMITS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let server = start().await;
    items_collection(&server).await;
    let schema = server.state.schema();
    let collection = schema.find("items").cloned().expect("items");
    let snapshot_every = (commits / 4).max(1);
    for n in 0..commits {
        api::records::create_record(
            &server.state,
            &schema,
            &collection,
            None,
            json!({"title": format!("r{n}"), "n": n})
                .as_object()
                .cloned()
                .expect("body"),
            api::access::RequestData::default(),
        )
        .await
        .expect("create");
        if (n + 1) % snapshot_every == 0 {
            server.state.engine.snapshot().expect("snapshot");
        }
    }
    let head = server.state.engine.last_seq();
    let middle = head - commits / 2 - commits / 8;
    let timed = |at: String| {
        let server = &server;
        async move {
            let started = std::time::Instant::now();
            let reply = server
                .send(
                    "GET",
                    &format!("/api/collections/items/records?asOf={at}&perPage=30"),
                    None,
                    None,
                )
                .await;
            assert_eq!(reply.status, 200, "{}", reply.text);
            (started.elapsed(), reply)
        }
    };
    let (first, reply) = timed(middle.to_string()).await;
    let (cached, _) = timed(middle.to_string()).await;
    let started = std::time::Instant::now();
    let live = server
        .send(
            "GET",
            "/api/collections/items/records?perPage=30",
            None,
            None,
        )
        .await;
    let live_elapsed = started.elapsed();
    assert_eq!(live.status, 200);
    let expected = (middle - (head - commits)) as i64;
    assert_eq!(reply.json["totalItems"], json!(expected));
    println!(
        "asOf list on a {head}-commit log at position {middle}: first {:?}, cached {:?}; live list {:?}",
        first, cached, live_elapsed
    );
    assert!(
        cached < first,
        "the cached read is cheaper than materialising"
    );
}
