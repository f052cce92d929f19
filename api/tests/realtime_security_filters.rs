//! Realtime security (issue #12, hole 2): subscription options are not an oracle.
//!
//! `options.query.filter` of a subscription gets exactly the restrictions the list API
//! applies to the same caller: hidden fields, `@request.*` and `@collection.*` are refused
//! for non-superusers (the topic then matches nothing), every traversed collection's
//! listRule is AND-ed in, and emails only match where visible. So comparing the events
//! delivered for `hiddenf ~ 'X'` and `hiddenf ~ 'Y'` reveals nothing. `fields` never
//! reveals hidden fields. The change feed (`/changes?filter=`) answers such filters with the
//! list API's error.
//!
//! Method: one record is created while guest, alice, bob and a superuser are subscribed to
//! many variants; a public marker event afterwards tells that every frame is in.

mod realtime_support;

use api::ServerOptions;
use realtime_support::{temp_dir, Server, Sse};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// `pub/*?options=<query>` as the SDK builds it.
fn topic(query: Value) -> String {
    let options = json!({ "query": query }).to_string();
    let mut encoded = String::new();
    for byte in options.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("pub/*?options={encoded}")
}

/// The variants, by label.
fn variants() -> Vec<(&'static str, String)> {
    vec![
        ("plain", "pub/*".to_string()),
        ("hidden_x", topic(json!({"filter": "hiddenf ~ 'X'"}))),
        ("hidden_y", topic(json!({"filter": "hiddenf ~ 'Y'"}))),
        ("visible", topic(json!({"filter": "note ~ 'n'"}))),
        (
            "request",
            topic(json!({"filter": "@request.query.a = '1'", "a": "1"})),
        ),
        (
            "collection",
            topic(json!({"filter": "@collection.users.id != ''"})),
        ),
        (
            "traversal",
            topic(json!({"filter": "ref.verified = false"})),
        ),
        ("relation_id", topic(json!({"filter": "ref.id != ''"}))),
        ("email", topic(json!({"filter": "ref.email != ''"}))),
        ("hidden_relation", topic(json!({"filter": "hrel != ''"}))),
        ("fields", topic(json!({"fields": "id,hiddenf,note"}))),
    ]
}

/// Labels that received the record, and the `fields` variant's record.
async fn received(
    server: &Server,
    token: Option<&str>,
    run: impl std::future::Future<Output = ()>,
) -> (Vec<&'static str>, Value) {
    let (mut sse, _) = Sse::connect(&server.addr, None).await;
    let variants = variants();
    let mut topics: Vec<&str> = variants.iter().map(|(_, t)| t.as_str()).collect();
    topics.push("messages/*");
    assert_eq!(
        server
            .subscribe(&sse.client_id.clone(), &topics, token)
            .await,
        204
    );
    run.await;
    let by_topic: BTreeMap<&str, &'static str> =
        variants.iter().map(|(l, t)| (t.as_str(), *l)).collect();
    let mut labels = Vec::new();
    let mut fields = Value::Null;
    loop {
        let frame = sse.take(1).await.remove(0);
        if frame.event == "messages/*" {
            break;
        }
        let label = by_topic[frame.event.as_str()];
        if label == "fields" {
            fields = frame.json()["record"].clone();
        }
        labels.push(label);
    }
    labels.sort();
    (labels, fields)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_subscription_filters_get_the_list_apis_restrictions() {
    let (_dir, path) = temp_dir();
    let server = Server::start(&path, ServerOptions::default()).await;
    server.create_messages().await;
    let (status, body) = server
        .send(
            "PATCH",
            "/api/collections/users",
            Some(json!({"listRule": "id = @request.auth.id", "viewRule": "id = @request.auth.id"})),
            Some(&server.admin),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    server
        .create_collection(json!({
            "name": "pub", "type": "base",
            "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
            "fields": [
                {"name": "note", "type": "text"},
                {"name": "hiddenf", "type": "text", "hidden": true},
                {"name": "ref", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1},
                {"name": "hrel", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1, "hidden": true}
            ]
        }))
        .await;
    let (alice, alice_token) = server.user("alice").await;
    let (_bob, bob_token) = server.user("bob").await;

    let write = || async {
        server
            .create(
                "pub",
                json!({"note": "n1", "hiddenf": "XXX", "ref": alice, "hrel": alice}),
                Some(&server.admin),
            )
            .await;
        server
            .create("messages", json!({"text": "marker"}), None)
            .await;
    };

    let (guest, fields) = received(&server, None, write()).await;
    assert_eq!(
        guest,
        vec!["fields", "plain", "relation_id", "visible"],
        "guest"
    );
    assert_eq!(fields, json!({"id": fields["id"], "note": "n1"}));

    let (alice_got, fields) = received(&server, Some(&alice_token), write()).await;
    // alice may list her own users record, so the traversal passes for her; her email is
    // not visible (emailVisibility false), so it never matches, as in the list API.
    assert_eq!(
        alice_got,
        vec!["fields", "plain", "relation_id", "traversal", "visible"],
        "alice"
    );
    assert!(fields.get("hiddenf").is_none());

    let (bob_got, _) = received(&server, Some(&bob_token), write()).await;
    assert_eq!(
        bob_got,
        vec!["fields", "plain", "relation_id", "visible"],
        "bob"
    );

    // Superusers get what their list API allows.
    let (admin_got, fields) = received(&server, Some(&server.admin), write()).await;
    assert_eq!(
        admin_got,
        vec![
            "collection",
            "email",
            "fields",
            "hidden_relation",
            "hidden_x",
            "plain",
            "relation_id",
            "request",
            "traversal",
            "visible"
        ],
        "superuser"
    );
    assert_eq!(fields["hiddenf"], "XXX");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_change_feed_filters_get_the_list_apis_errors() {
    let (_dir, path) = temp_dir();
    let server = Server::start(&path, ServerOptions::default()).await;
    server
        .create_collection(json!({
            "name": "pub", "type": "base",
            "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
            "fields": [
                {"name": "note", "type": "text"},
                {"name": "hiddenf", "type": "text", "hidden": true}
            ]
        }))
        .await;
    server
        .create(
            "pub",
            json!({"note": "n1", "hiddenf": "XXX"}),
            Some(&server.admin),
        )
        .await;
    let (_alice, alice_token) = server.user("alice").await;
    for token in [None, Some(alice_token.as_str())] {
        for filter in [
            "hiddenf ~ 'X'",
            "hiddenf ~ 'Y'",
            "@request.query.a = ''",
            "@collection.users.id != ''",
        ] {
            let encoded: String = filter
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            let list = server
                .send(
                    "GET",
                    &format!("/api/collections/pub/records?filter={encoded}"),
                    None,
                    token,
                )
                .await;
            let feed = server
                .send(
                    "GET",
                    &format!("/api/collections/pub/changes?filter={encoded}"),
                    None,
                    token,
                )
                .await;
            assert!(list.0 >= 400, "{filter}: {list:?}");
            assert_eq!(feed, list, "{filter}");
        }
    }
    // A superuser may filter by hidden fields in both.
    let feed = server
        .send(
            "GET",
            "/api/collections/pub/changes?filter=hiddenf%20~%20%27X%27",
            None,
            Some(&server.admin),
        )
        .await;
    assert_eq!(feed.0, 200);
    assert_eq!(feed.1["items"].as_array().map(Vec::len), Some(1));
    server.stop().await;
}
