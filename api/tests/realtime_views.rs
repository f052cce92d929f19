//! Realtime for view collections: when a record of a view's source changes, subscribers of
//! the view (`view/*`, `view/ID`) get one `refresh` event carrying the commit's position;
//! a change elsewhere sends nothing; a locked view rule keeps it for superusers; an
//! expression rule delivers only to subscribers who can see a row of the view.
//!
//! Method: raw SSE over TCP on a real server (`realtime_support`).

mod realtime_support;

use api::ServerOptions;
use realtime_support::{temp_dir, Server, Sse};
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(300);

async fn setup(server: &Server, list_rule: serde_json::Value) {
    server.create_messages().await;
    server
        .create_collection(json!({"name": "other", "type": "base", "createRule": "",
            "fields": [{"name": "x", "type": "text"}]}))
        .await;
    server
        .create_collection(json!({"name": "owned", "type": "base", "createRule": "",
            "updateRule": "", "fields": [{"name": "text", "type": "text"},
            {"name": "owner", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1}]}))
        .await;
    server
        .create_collection(
            json!({"name": "counts", "type": "view", "listRule": list_rule,
            "viewRule": list_rule,
            "viewQuery": "SELECT m.id, m.text FROM messages m"}),
        )
        .await;
    server
        .create_collection(json!({"name": "mine", "type": "view",
            "viewQuery": "SELECT id, text, owner FROM owned"}))
        .await;
    let (status, body) = server
        .send(
            "PATCH",
            "/api/collections/mine",
            Some(json!({"listRule": "owner = @request.auth.id",
                "viewRule": "owner = @request.auth.id"})),
            Some(&server.admin),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // A view over a view: its source is found through it.
    server
        .create_collection(json!({"name": "counts2", "type": "view", "listRule": "",
            "viewQuery": "SELECT id, text FROM counts"}))
        .await;
}

#[tokio::test]
async fn a_source_change_refreshes_the_view_subscribers_with_the_position() {
    let (_dir, path) = temp_dir();
    let server = Server::start(&path, ServerOptions::default()).await;
    setup(&server, json!("")).await;
    let (mut sse, _) = Sse::connect(&server.addr, None).await;
    assert_eq!(
        server
            .subscribe(&sse.client_id, &["counts/*", "counts2", "messages/*"], None)
            .await,
        204
    );
    let record = server.create("messages", json!({"text": "hi"}), None).await;
    let seq = server.state.engine.last_seq();
    let frames = sse.take(3).await;
    assert_eq!(frames[0].event, "messages/*");
    assert_eq!(frames[0].json()["action"], json!("create"));
    assert_eq!(frames[1].event, "counts/*");
    let data = frames[1].json();
    assert_eq!(data["action"], json!("refresh"));
    assert_eq!(data["position"], json!(seq));
    assert_eq!(data["record"]["collectionName"], json!("counts"));
    assert_eq!(frames[1].seq(), seq);
    assert_eq!(frames[2].event, "counts2");
    assert_eq!(frames[2].json()["action"], json!("refresh"));
    // A record topic of the view gets it too, with the id.
    let id = record["id"].as_str().expect("id");
    let topic = format!("counts/{id}");
    assert_eq!(server.subscribe(&sse.client_id, &[&topic], None).await, 204);
    let (status, _) = server
        .send(
            "PATCH",
            &format!("/api/collections/messages/records/{id}"),
            Some(json!({"text": "again"})),
            Some(&server.admin),
        )
        .await;
    assert_eq!(status, 200);
    let frame = sse.next(WAIT).await.expect("refresh");
    assert_eq!(frame.event, topic);
    assert_eq!(frame.json()["record"]["id"], json!(id));
    assert_eq!(
        frame.json()["position"],
        json!(server.state.engine.last_seq())
    );
    // A change in a collection no view reads: nothing.
    server.create("other", json!({"x": "y"}), None).await;
    sse.expect_silence(QUIET).await;
}

#[tokio::test]
async fn view_rules_decide_who_gets_refreshes() {
    let (_dir, path) = temp_dir();
    let server = Server::start(&path, ServerOptions::default()).await;
    setup(&server, serde_json::Value::Null).await;
    let (alice, alice_token) = server.user("alice").await;
    let (_, bob_token) = server.user("bob").await;
    // Locked view: a guest gets nothing, a superuser gets the refresh.
    let (mut guest, _) = Sse::connect(&server.addr, None).await;
    assert_eq!(
        server
            .subscribe(&guest.client_id, &["counts/*"], None)
            .await,
        204
    );
    let (mut admin, _) = Sse::connect(&server.addr, None).await;
    assert_eq!(
        server
            .subscribe(&admin.client_id, &["counts/*"], Some(&server.admin))
            .await,
        204
    );
    server.create("messages", json!({"text": "x"}), None).await;
    let frame = admin.next(WAIT).await.expect("superuser refresh");
    assert_eq!(frame.json()["action"], json!("refresh"));
    guest.expect_silence(QUIET).await;
    // Expression rule: only a subscriber who sees a row of the view.
    let (mut a, _) = Sse::connect(&server.addr, None).await;
    assert_eq!(
        server
            .subscribe(&a.client_id, &["mine/*"], Some(&alice_token))
            .await,
        204
    );
    let (mut b, _) = Sse::connect(&server.addr, None).await;
    assert_eq!(
        server
            .subscribe(&b.client_id, &["mine/*"], Some(&bob_token))
            .await,
        204
    );
    server
        .create("owned", json!({"text": "t", "owner": alice}), None)
        .await;
    let frame = a.next(WAIT).await.expect("owner refresh");
    assert_eq!(frame.event, "mine/*");
    assert_eq!(
        frame.json()["position"],
        json!(server.state.engine.last_seq())
    );
    b.expect_silence(QUIET).await;
}
