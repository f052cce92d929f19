//! The schema follows commits (`AppState::follow`): a commit that changes collections is in
//! the schema before its writer gets the answer, whichever path made it (a write that no
//! handler wrapped, a blocking execute, an import, the engine directly with the realtime hub
//! following), and each commit is reloaded for at most once.
//!
//! Guards against: a handler or tool forgetting to reload the schema after a collection
//! change (the next request would 404 or validate against the old fields), and reloading on
//! every commit.

mod common;

use api::collections::new_collection;
use common::start;
use engine::{Actor, Change};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;

fn definition(name: &str) -> Map<String, Value> {
    let body = json!({"name": name, "listRule": "", "fields": [{"name": "title", "type": "text"}]});
    let Value::Object(body) = body else {
        unreachable!("an object literal")
    };
    body
}

/// A create of `name`, staged as the system.
fn create_def(name: &str) -> engine::CollectionDef {
    new_collection(&definition(name))
        .expect("a valid definition")
        .to_def()
}

#[tokio::test]
async fn a_write_that_no_handler_wraps_is_visible_to_the_next_request() {
    let server = start().await;
    let listed = server
        .send("GET", "/api/collections/notes/records", None, None)
        .await;
    assert_eq!(listed.status, 404, "{}", listed.text);
    let before = server.state.schema_seq();
    let def = create_def("notes");
    let outcome = server
        .state
        .write(Actor::System, move |tx| {
            tx.stage(Change::CollectionCreated(def))
                .map_err(api::error::ApiError::from)
        })
        .await
        .expect("commit");
    let commit = outcome.commit.expect("a commit");
    assert!(commit.seq > before);
    assert_eq!(server.state.schema_seq(), commit.seq);
    // No reload by hand: the write followed its own commit.
    let listed = server
        .send("GET", "/api/collections/notes/records", None, None)
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.json["totalItems"], 0);
    let created = server
        .send(
            "POST",
            "/api/collections/notes/records",
            Some(r#"{"title":"hello"}"#),
            Some(&server.admin),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.text);
    assert_eq!(created.json["title"], "hello");

    // Following the same commit again is a no-op: the schema is not rebuilt.
    let schema = server.state.schema();
    server.state.follow(&commit).expect("follow");
    assert!(Arc::ptr_eq(&schema, &server.state.schema()));
    // A commit that does not touch collections does not rebuild it either.
    let record_commit = server
        .state
        .write(Actor::System, |tx| {
            tx.stage(Change::ParamSet {
                key: "unrelated".into(),
                value: Some("1".into()),
            })
            .map_err(api::error::ApiError::from)
        })
        .await
        .expect("commit")
        .commit
        .expect("a commit");
    assert!(record_commit.seq > commit.seq);
    assert!(Arc::ptr_eq(&schema, &server.state.schema()));
    assert_eq!(server.state.schema_seq(), commit.seq);
}

#[tokio::test]
async fn a_blocking_execute_follows_its_commit() {
    let server = start().await;
    let state = Arc::clone(&server.state);
    let def = create_def("blocking");
    tokio::task::spawn_blocking(move || {
        state
            .execute(Actor::System, move |tx: &mut engine::Tx<'_>| {
                tx.stage(Change::CollectionCreated(def))
            })
            .map(|_| ())
            .map_err(|_| "execute failed")
    })
    .await
    .expect("join")
    .expect("commit");
    let viewed = server
        .send(
            "GET",
            "/api/collections/blocking",
            None,
            Some(&server.admin),
        )
        .await;
    assert_eq!(viewed.status, 200, "{}", viewed.text);
    assert_eq!(viewed.json["name"], "blocking");
}

#[tokio::test]
async fn an_import_is_visible_to_the_next_request() {
    let server = start().await;
    let imported = server
        .send(
            "PUT",
            "/api/collections/import",
            Some(&json!({"collections": [definition("imported")]}).to_string()),
            Some(&server.admin),
        )
        .await;
    assert_eq!(imported.status, 204, "{}", imported.text);
    let listed = server
        .send("GET", "/api/collections/imported/records", None, None)
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text);
}

#[tokio::test]
async fn the_realtime_hub_follows_commits_made_on_the_engine_directly() {
    let server = start().await;
    server.state.realtime.ensure_started(&server.state).await;
    let engine_state = Arc::clone(&server.state);
    let def = create_def("direct");
    let seq = tokio::task::spawn_blocking(move || {
        engine_state
            .engine
            .execute(Actor::System, move |tx: &mut engine::Tx<'_>| {
                tx.stage(Change::CollectionCreated(def))
            })
            .ok()
            .and_then(|outcome| outcome.commit)
            .map(|commit| commit.seq)
    })
    .await
    .expect("join")
    .expect("commit");
    // Nothing but the hub's dispatcher makes the schema follow this commit.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while server.state.schema_seq() < seq {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the hub did not follow commit {seq}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let listed = server
        .send("GET", "/api/collections/direct/records", None, None)
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text);
}
