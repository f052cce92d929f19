//! Commits larger than the log's frame limit (issue #13 item 4), through the HTTP API:
//!
//! 1. A legal request whose commit would exceed the limit (deleting a record whose cascade
//!    takes more than 64 MiB of rows) fails alone with a clear 400, changes nothing, and the
//!    server keeps writing (it used to fail the whole group and poison the engine).
//! 2. Truncating a collection whose rows exceed the limit works (it is split into several
//!    commits), and the server keeps writing.

mod common;

use serde_json::{json, Value};

const CHILDREN: usize = 70;
const CHILD_BYTES: usize = 1 << 20;

/// A `parents` collection with one record, and `children` (cascade-deleted with their parent)
/// holding more than 64 MiB of text. Returns the parent's id.
async fn setup(server: &common::TestServer) -> String {
    let admin = Some(server.admin.as_str());
    let parents = server
        .json(
            "POST",
            "/api/collections",
            json!({"name": "parents", "listRule": "", "fields": [{"name": "title", "type": "text"}]}),
            admin,
            200,
        )
        .await;
    let parents_id = parents["id"].as_str().expect("id").to_string();
    server
        .json(
            "POST",
            "/api/collections",
            json!({"name": "children", "listRule": "", "fields": [
                {"name": "parent", "type": "relation", "collectionId": parents_id, "maxSelect": 1, "cascadeDelete": true},
                {"name": "body", "type": "text", "max": 2000000}]}),
            admin,
            200,
        )
        .await;
    let parent = server
        .json(
            "POST",
            "/api/collections/parents/records",
            json!({"title": "p"}),
            admin,
            200,
        )
        .await;
    let parent_id = parent["id"].as_str().expect("id").to_string();
    for index in 0..CHILDREN {
        let body = format!("{index:04}{}", "x".repeat(CHILD_BYTES));
        server
            .json(
                "POST",
                "/api/collections/children/records",
                json!({"parent": parent_id, "body": body}),
                admin,
                200,
            )
            .await;
    }
    parent_id
}

async fn count(server: &common::TestServer, collection: &str) -> i64 {
    let admin = Some(server.admin.as_str());
    let list = server
        .json(
            "GET",
            &format!("/api/collections/{collection}/records?perPage=1&fields=id"),
            Value::Null,
            admin,
            200,
        )
        .await;
    list["totalItems"].as_i64().expect("totalItems")
}

#[tokio::test]
async fn a_commit_over_the_limit_fails_alone_with_a_clear_400() {
    let server = common::start().await;
    let admin = Some(server.admin.as_str());
    let parent_id = setup(&server).await;
    let deleted = server
        .send(
            "DELETE",
            &format!("/api/collections/parents/records/{parent_id}"),
            None,
            admin,
        )
        .await;
    assert_eq!(deleted.status, 400, "{}", deleted.text);
    assert_eq!(deleted.json["status"], 400);
    assert!(
        deleted.json["message"]
            .as_str()
            .is_some_and(|message| message.contains("too large")),
        "{}",
        deleted.text
    );
    assert!(server.state.engine.poisoned().is_none());
    assert_eq!(count(&server, "children").await, CHILDREN as i64);
    assert_eq!(count(&server, "parents").await, 1);
    // The server keeps writing.
    server
        .json(
            "POST",
            "/api/collections/parents/records",
            json!({"title": "after"}),
            admin,
            200,
        )
        .await;
    assert_eq!(count(&server, "parents").await, 2);
}

#[tokio::test]
async fn truncating_a_collection_larger_than_one_commit_works() {
    let server = common::start().await;
    let admin = Some(server.admin.as_str());
    setup(&server).await;
    let seq_before = server.state.engine.last_seq();
    let truncated = server
        .send("DELETE", "/api/collections/children/truncate", None, admin)
        .await;
    assert_eq!(truncated.status, 204, "{}", truncated.text);
    assert_eq!(count(&server, "children").await, 0);
    assert!(server.state.engine.poisoned().is_none());
    assert!(
        server.state.engine.last_seq() >= seq_before + 2,
        "split into several commits"
    );
    server
        .json(
            "POST",
            "/api/collections/parents/records",
            json!({"title": "after"}),
            admin,
            200,
        )
        .await;
    assert_eq!(count(&server, "parents").await, 2);
}
