//! Realtime protocol, byte for byte: the `PB_CONNECT` frame and response headers, the
//! `POST /api/realtime` validation errors and auth transitions, event frames (`id` =
//! `<clientId>.<seq>.<part>`, `event` = the subscription string, `data` = `{"record","action"}`),
//! one frame per matching subscription, listRule/viewRule filtering, and the change feed.
//!
//! Method: a real server on a socket and a raw SSE client that sees the exact chunk-decoded
//! bytes. Guards against: spaces after colons, a PB_CONNECT id that is not the client id,
//! events leaking past the rules, and a change feed that skips or repeats changes.

mod realtime_support;

use api::ServerOptions;
use realtime_support::{temp_dir, Server, Sse};
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_protocol_frames_and_errors() {
    let (_dir, path) = temp_dir();
    let server = Server::start(&path, ServerOptions::default()).await;
    server.create_messages().await;

    let (mut sse, connect) = Sse::connect(&server.addr, None).await;
    let client_id = sse.client_id.clone();
    assert_eq!(client_id.len(), 40);
    assert!(client_id.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(
        connect.raw,
        format!("id:{client_id}\nevent:PB_CONNECT\ndata:{{\"clientId\":\"{client_id}\"}}\n\n")
    );
    let head = sse.head.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
    assert!(
        head.contains("content-type: text/event-stream\r\n"),
        "{head}"
    );
    assert!(head.contains("cache-control: no-store\r\n"), "{head}");
    assert!(head.contains("x-accel-buffering: no\r\n"), "{head}");
    assert!(head.contains("transfer-encoding: chunked\r\n"), "{head}");

    // Validation errors, exactly as the spec captured them.
    let (status, body) = server
        .send("POST", "/api/realtime", Some(json!({})), None)
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"data":{"clientId":{"code":"validation_required","message":"Cannot be blank."}},
               "message":"Something went wrong while processing your request.","status":400})
    );
    let (status, body) = server
        .send(
            "POST",
            "/api/realtime",
            Some(json!({"clientId": "nope", "subscriptions": []})),
            None,
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"data":{},"message":"Missing or invalid client id.","status":404})
    );
    let many: Vec<String> = (0..1001).map(|i| format!("messages/{i}")).collect();
    let (status, body) = server
        .send(
            "POST",
            "/api/realtime",
            Some(json!({"clientId": client_id, "subscriptions": many})),
            None,
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"data":{"subscriptions":{"code":"validation_length_too_long",
               "message":"The length must be no more than 1000.","params":{"max":1000,"min":0}}},
               "message":"Something went wrong while processing your request.","status":400})
    );

    // Two topics matching the same record: one frame per topic, in subscription order.
    let options = "messages/*?options=%7B%22query%22%3A%7B%22fields%22%3A%22id%2Ctext%22%7D%7D";
    assert_eq!(
        server
            .subscribe(&client_id, &["messages/*", options], None)
            .await,
        204
    );
    let created = server
        .create("messages", json!({"text": "hello"}), None)
        .await;
    let seq = server.state.engine.published_seq();
    let frames = sse.take(2).await;
    let expected_data = json!({"record": created.clone(), "action": "create"}).to_string();
    assert_eq!(
        frames[0].raw,
        format!("id:{client_id}.{seq}.0\nevent:messages/*\ndata:{expected_data}\n\n")
    );
    let id = created["id"].as_str().expect("id");
    assert_eq!(
        frames[1].raw,
        format!(
            "id:{client_id}.{seq}.1\nevent:{options}\ndata:{{\"record\":{{\"id\":\"{id}\",\"text\":\"hello\"}},\"action\":\"create\"}}\n\n"
        )
    );

    // Delete carries the record as it was.
    let (status, _) = server
        .send(
            "DELETE",
            &format!("/api/collections/messages/records/{id}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let frames = sse.take(2).await;
    assert_eq!(
        frames[0].json(),
        json!({"record": created, "action": "delete"})
    );

    // Auth transitions: guest → user allowed, user → other user 403, user → guest 403.
    let (_alice, alice_token) = server.user("alice").await;
    let (_bob, bob_token) = server.user("bob").await;
    assert_eq!(
        server
            .subscribe(&client_id, &["messages/*"], Some(&alice_token))
            .await,
        204
    );
    assert_eq!(
        server
            .subscribe(&client_id, &["messages/*"], Some(&alice_token))
            .await,
        204
    );
    let (status, body) = server
        .send(
            "POST",
            "/api/realtime",
            Some(json!({"clientId": client_id, "subscriptions": []})),
            Some(&bob_token),
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(
        body,
        json!({"data":{},"message":"The current and the previous request authorization don't match.","status":403})
    );
    assert_eq!(server.subscribe(&client_id, &[], None).await, 403);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_protocol_rules_and_hidden_fields() {
    let (_dir, path) = temp_dir();
    let server = Server::start(&path, ServerOptions::default()).await;
    let (alice, alice_token) = server.user("alice").await;
    let (bob, bob_token) = server.user("bob").await;
    server
        .create_collection(json!({
            "name": "notes", "type": "base",
            "listRule": "owner = @request.auth.id", "viewRule": "",
            "createRule": "@request.auth.id != \"\"",
            "fields": [
                {"name": "body", "type": "text"},
                {"name": "secret", "type": "text", "hidden": true},
                {"name": "owner", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1}
            ]
        }))
        .await;
    let (mut alice_sse, _) = Sse::connect(&server.addr, None).await;
    let (mut admin_sse, _) = Sse::connect(&server.addr, None).await;
    let (mut guest_sse, _) = Sse::connect(&server.addr, None).await;
    let bob_note = server
        .create(
            "notes",
            json!({"body": "b", "secret": "s", "owner": bob}),
            Some(&bob_token),
        )
        .await;
    let note_id = bob_note["id"].as_str().expect("id").to_string();
    let record_topic = format!("notes/{note_id}");
    assert_eq!(
        server
            .subscribe(
                &alice_sse.client_id.clone(),
                &["notes/*", &record_topic],
                Some(&alice_token)
            )
            .await,
        204
    );
    assert_eq!(
        server
            .subscribe(
                &admin_sse.client_id.clone(),
                &["notes/*"],
                Some(&server.admin)
            )
            .await,
        204
    );
    assert_eq!(
        server
            .subscribe(&guest_sse.client_id.clone(), &["notes/*", "users/*"], None)
            .await,
        204
    );
    let (status, _) = server
        .send(
            "PATCH",
            &format!("/api/collections/notes/records/{note_id}"),
            Some(json!({"body": "b2", "secret": "s"})),
            Some(&server.admin),
        )
        .await;
    assert_eq!(status, 200);
    // Alice: the listRule fails, the viewRule ("") passes for the record topic.
    let frame = alice_sse.take(1).await.remove(0);
    assert_eq!(frame.event, record_topic);
    assert_eq!(frame.json()["record"]["body"], "b2");
    assert!(
        frame.json()["record"].get("secret").is_none(),
        "hidden field leaked"
    );
    // The superuser sees everything, hidden fields included.
    let frame = admin_sse.take(1).await.remove(0);
    assert_eq!(frame.json()["record"]["secret"], "s");
    // Alice's own note reaches her list topic; the guest never gets anything.
    server
        .create(
            "notes",
            json!({"body": "a", "owner": alice}),
            Some(&alice_token),
        )
        .await;
    let frame = alice_sse.take(1).await.remove(0);
    assert_eq!(frame.event, "notes/*");
    guest_sse.expect_silence(Duration::from_millis(300)).await;
    alice_sse.expect_silence(Duration::from_millis(100)).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_change_feed_pages_and_rules() {
    let (_dir, path) = temp_dir();
    let server = Server::start(&path, ServerOptions::default()).await;
    server.create_messages().await;
    let start = server.state.engine.published_seq();
    let mut ids = Vec::new();
    for index in 0..7 {
        let record = server
            .create("messages", json!({"text": format!("m{index}")}), None)
            .await;
        ids.push(record["id"].as_str().expect("id").to_string());
    }
    let (status, _) = server
        .send(
            "DELETE",
            &format!("/api/collections/messages/records/{}", ids[0]),
            None,
            None,
        )
        .await;
    assert_eq!(status, 204);
    // Page through with perPage=3: every change once, in log order, with its position.
    let mut since = start;
    let mut seen: Vec<(String, String, u64)> = Vec::new();
    loop {
        let (status, body) = server
            .send(
                "GET",
                &format!("/api/collections/messages/changes?since={since}&perPage=3"),
                None,
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        for item in body["items"].as_array().expect("items") {
            seen.push((
                item["action"].as_str().expect("action").to_string(),
                item["record"]["id"].as_str().expect("id").to_string(),
                item["position"].as_u64().expect("position"),
            ));
        }
        since = body["next"].as_u64().expect("next");
        if !body["hasMore"].as_bool().expect("hasMore") {
            break;
        }
    }
    assert_eq!(seen.len(), 8);
    assert!(seen.windows(2).all(|w| w[0].2 < w[1].2), "positions ascend");
    assert_eq!(seen[7], ("delete".to_string(), ids[0].clone(), since));
    for (index, id) in ids.iter().enumerate() {
        assert_eq!(seen[index].0, "create");
        assert_eq!(&seen[index].1, id);
    }
    // Filter.
    let (_, body) = server
        .send(
            "GET",
            &format!("/api/collections/messages/changes?since={start}&filter=text%3D%22m3%22"),
            None,
            None,
        )
        .await;
    let items = body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["record"]["text"], "m3");
    // Locked listRule: superusers only.
    server
        .create_collection(
            json!({"name": "locked", "type": "base", "fields": [{"name": "t", "type": "text"}]}),
        )
        .await;
    let (status, _) = server
        .send("GET", "/api/collections/locked/changes", None, None)
        .await;
    assert_eq!(status, 403);
    let (status, body) = server
        .send(
            "GET",
            "/api/collections/locked/changes",
            None,
            Some(&server.admin),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["items"], Value::Array(Vec::new()));
    // Bad position.
    let (status, body) = server
        .send(
            "GET",
            "/api/collections/messages/changes?since=x",
            None,
            None,
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["data"]["since"]["code"], "validation_invalid_position");
    server.stop().await;
}
