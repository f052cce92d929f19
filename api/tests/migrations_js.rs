//! JS migrations (`pb_migrations`): a migration creating a collection with rules and one adding
//! a field, applied in order and recorded; down and up again give the same schema.

#![allow(clippy::unwrap_used)]

mod common;

use serde_json::{json, Value};
use std::path::Path;

fn migrations_dir() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/migrations_files"
    ))
}

async fn schema_of(server: &common::TestServer) -> Value {
    let mut collection = server
        .json(
            "GET",
            "/api/collections/articles",
            json!({}),
            Some(&server.admin),
            200,
        )
        .await;
    // Timestamps move with every save; the schema is the rest.
    collection.as_object_mut().unwrap().remove("updated");
    collection.as_object_mut().unwrap().remove("created");
    collection
}

#[tokio::test]
async fn migrations_apply_in_order_and_revert() {
    let server = common::start().await;
    let state = &server.state;
    let applied = api::migrations::up(state, migrations_dir()).await.unwrap();
    assert_eq!(
        applied,
        vec!["1700000000_create_posts.js", "1700000100_add_body.js"]
    );
    assert_eq!(api::migrations::applied(state).unwrap(), applied);
    let first = schema_of(&server).await;
    assert_eq!(first["listRule"], json!(""));
    assert_eq!(first["createRule"], json!("@request.auth.id != ''"));
    assert_eq!(first["updateRule"], Value::Null);
    let names: Vec<&str> = first["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["id", "title", "body"]);
    // Applying again does nothing.
    let before = state.engine.last_seq();
    assert!(api::migrations::up(state, migrations_dir())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(state.engine.last_seq(), before);
    // Down one: the field is gone; up again: the same schema.
    let reverted = api::migrations::down(state, migrations_dir(), 1)
        .await
        .unwrap();
    assert_eq!(reverted, vec!["1700000100_add_body.js"]);
    let without = schema_of(&server).await;
    assert_eq!(without["fields"].as_array().unwrap().len(), 2);
    api::migrations::up(state, migrations_dir()).await.unwrap();
    assert_eq!(schema_of(&server).await, first);
    // Down all: the collection is gone; up: equal again (ids of new fields aside).
    api::migrations::down(state, migrations_dir(), 2)
        .await
        .unwrap();
    assert_eq!(
        server
            .send(
                "GET",
                "/api/collections/articles",
                None,
                Some(&server.admin)
            )
            .await
            .status,
        404
    );
    assert!(api::migrations::applied(state).unwrap().is_empty());
    api::migrations::up(state, migrations_dir()).await.unwrap();
    let again = schema_of(&server).await;
    let strip = |mut v: Value| {
        v.as_object_mut().unwrap().remove("id");
        for field in v["fields"].as_array_mut().unwrap() {
            field.as_object_mut().unwrap().remove("id");
        }
        v
    };
    assert_eq!(strip(again), strip(first));
}

#[tokio::test]
async fn a_failing_migration_commits_nothing() {
    let server = common::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("1_bad.js"),
        r#"migrate((app) => { app.save(new Collection({name: "half", type: "base"})); throw new Error("boom") })"#,
    )
    .unwrap();
    let before = server.state.engine.last_seq();
    assert!(api::migrations::up(&server.state, dir.path())
        .await
        .is_err());
    assert_eq!(server.state.engine.last_seq(), before);
    assert!(api::migrations::applied(&server.state).unwrap().is_empty());
}

/// The shape of the reference's own `--automigrate` files: `new Field({type, ...})` and
/// `collection.fields.addAt(index, field)`.
#[tokio::test]
async fn reference_generated_field_helpers_run() {
    let server = common::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("1_create.js"),
        r#"migrate((app) => {
  const collection = new Collection({ name: "notes", type: "base", listRule: "", fields: [
    { name: "title", type: "text" }, { name: "body", type: "text" } ] })
  return app.save(collection)
}, (app) => app.delete(app.findCollectionByNameOrId("notes")))"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("2_updated_notes.js"),
        r#"migrate((app) => {
  const collection = app.findCollectionByNameOrId("notes")
  collection.fields.addAt(2, new Field({ "hidden": false, "name": "score", "type": "number", "onlyInt": true }))
  return app.save(collection)
}, (app) => {
  const collection = app.findCollectionByNameOrId("notes")
  collection.fields.removeByName("score")
  return app.save(collection)
})"#,
    )
    .unwrap();
    api::migrations::up(&server.state, dir.path())
        .await
        .unwrap();
    let collection = server
        .json(
            "GET",
            "/api/collections/notes",
            json!({}),
            Some(&server.admin),
            200,
        )
        .await;
    let fields = collection["fields"].as_array().unwrap();
    let names: Vec<&str> = fields.iter().map(|f| f["name"].as_str().unwrap()).collect();
    // `id` first, then title; the new field lands at index 2, before `body`.
    assert_eq!(names, vec!["id", "title", "score", "body"]);
    assert_eq!(fields[2]["type"], json!("number"));
    assert_eq!(fields[2]["onlyInt"], json!(true));
}
