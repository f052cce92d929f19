//! The typed model over real HTTP: collection and field types parse from their JSON spelling
//! and serialize back unchanged, an unknown collection type is reported together with the
//! other validation errors, and the options parsed once at load (relation target and cascade,
//! autodate onCreate/onUpdate, select maxSelect) drive record writes.
//!
//! Guards against: a type spelled differently on output than on input (`geoPoint`), a
//! collection JSON that changes when saved unchanged, options read from a stale or wrong key.

mod common;

use common::start;
use serde_json::{json, Value};

/// One field of every type PocketBase knows.
fn every_field_type(users_id: &str) -> Value {
    json!([
        {"name": "t", "type": "text", "min": 1, "max": 20, "pattern": "^[a-z]+$"},
        {"name": "n", "type": "number", "min": 0, "onlyInt": true},
        {"name": "b", "type": "bool"},
        {"name": "e", "type": "email", "onlyDomains": ["example.com"]},
        {"name": "u", "type": "url"},
        {"name": "ed", "type": "editor", "maxSize": 100},
        {"name": "d", "type": "date"},
        {"name": "ad", "type": "autodate", "onCreate": true, "onUpdate": true},
        {"name": "s", "type": "select", "maxSelect": 2, "values": ["a", "b", "c"]},
        {"name": "j", "type": "json"},
        {"name": "f", "type": "file", "maxSelect": 3, "mimeTypes": ["image/png"], "protected": true},
        {"name": "r", "type": "relation", "collectionId": users_id, "maxSelect": 1, "cascadeDelete": true},
        {"name": "g", "type": "geoPoint"},
        {"name": "p", "type": "password", "min": 8}
    ])
}

#[tokio::test]
async fn collection_json_round_trips_for_every_type() {
    let server = start().await;
    let admin = server.admin.clone();
    let users = server
        .json(
            "GET",
            "/api/collections/users",
            json!({}),
            Some(&admin),
            200,
        )
        .await;
    let users_id = users["id"].as_str().expect("users id");
    let created = server
        .collection(json!({"name": "kinds", "fields": every_field_type(users_id)}))
        .await;
    let types: Vec<&str> = created["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| f["type"].as_str().expect("type"))
        .collect();
    assert_eq!(
        types,
        [
            "text", "text", "number", "bool", "email", "url", "editor", "date", "autodate",
            "select", "json", "file", "relation", "geoPoint", "password"
        ],
        "the id field first, then every submitted type spelled as submitted"
    );
    assert_eq!(created["type"], "base");

    // Saved unchanged, the JSON stays the same byte for byte (except `updated`).
    let viewed = server
        .send("GET", "/api/collections/kinds", None, Some(&admin))
        .await;
    assert_eq!(viewed.json, created);
    let saved = server
        .json(
            "PATCH",
            "/api/collections/kinds",
            viewed.json.clone(),
            Some(&admin),
            200,
        )
        .await;
    let mut expected = viewed.json.clone();
    expected["updated"] = saved["updated"].clone();
    assert_eq!(saved.to_string(), expected.to_string());

    // The same for the auth and view types (their type-specific keys included).
    for (name, body) in [
        ("people", json!({"name": "people", "type": "auth"})),
        (
            "kinds_view",
            json!({"name": "kinds_view", "type": "view", "viewQuery": "SELECT id, t, n FROM kinds"}),
        ),
    ] {
        let created = server.collection(body).await;
        let viewed = server
            .send(
                "GET",
                &format!("/api/collections/{name}"),
                None,
                Some(&admin),
            )
            .await;
        assert_eq!(viewed.text, created.to_string(), "{name}");
        let saved = server
            .json(
                "PATCH",
                &format!("/api/collections/{name}"),
                created.clone(),
                Some(&admin),
                200,
            )
            .await;
        let mut expected = created.clone();
        expected["updated"] = saved["updated"].clone();
        assert_eq!(saved.to_string(), expected.to_string(), "{name}");
    }
    let people = server
        .json(
            "GET",
            "/api/collections/people",
            json!({}),
            Some(&admin),
            200,
        )
        .await;
    assert_eq!(people["type"], "auth");
    assert_eq!(people["authRule"], "");
    assert_eq!(people["manageRule"], Value::Null);
    let view = server
        .json(
            "GET",
            "/api/collections/kinds_view",
            json!({}),
            Some(&admin),
            200,
        )
        .await;
    assert_eq!(view["type"], "view");
    assert_eq!(view["createRule"], Value::Null);
}

#[tokio::test]
async fn an_unknown_collection_type_is_reported_with_the_other_errors() {
    let server = start().await;
    let admin = server.admin.clone();
    let reply = server
        .json(
            "POST",
            "/api/collections",
            json!({"name": "", "type": "Auth", "listRule": "(("}),
            Some(&admin),
            400,
        )
        .await;
    assert_eq!(reply["message"], "Failed to create collection.");
    assert_eq!(reply["data"]["type"]["code"], "validation_in_invalid");
    assert_eq!(reply["data"]["name"]["code"], "validation_required");
    assert_eq!(reply["data"]["listRule"]["code"], "validation_invalid_rule");
    // A type change to an unknown or another type is refused; the same type is fine.
    server
        .collection(json!({"name": "posts", "type": "base"}))
        .await;
    for kind in ["nope", "view", "auth"] {
        let reply = server
            .json(
                "PATCH",
                "/api/collections/posts",
                json!({"type": kind}),
                Some(&admin),
                400,
            )
            .await;
        assert_eq!(
            reply["data"]["type"]["code"], "validation_collection_type_change",
            "{kind}"
        );
    }
    server
        .json(
            "PATCH",
            "/api/collections/posts",
            json!({"type": "base"}),
            Some(&admin),
            200,
        )
        .await;
}

#[tokio::test]
async fn parsed_field_options_drive_record_writes() {
    let server = start().await;
    let admin = server.admin.clone();
    let posts = server
        .collection(
            json!({"name": "posts", "listRule": "", "viewRule": "", "createRule": "",
            "updateRule": "", "deleteRule": "", "fields": [
            {"name": "title", "type": "text"},
            {"name": "tags", "type": "select", "maxSelect": 2, "values": ["a", "b", "c"]},
            {"name": "created", "type": "autodate", "onCreate": true},
            {"name": "updated", "type": "autodate", "onCreate": true, "onUpdate": true}]}),
        )
        .await;
    let posts_id = posts["id"].as_str().expect("posts id");
    // `collectionId` by name (hand-written schemas) and by id; one cascades, one is required.
    server
        .collection(
            json!({"name": "comments", "listRule": "", "viewRule": "", "createRule": "",
            "deleteRule": "", "fields": [
            {"name": "post", "type": "relation", "collectionId": "posts", "maxSelect": 1,
             "cascadeDelete": true}]}),
        )
        .await;
    server
        .collection(
            json!({"name": "pins", "listRule": "", "viewRule": "", "createRule": "",
            "fields": [
            {"name": "post", "type": "relation", "collectionId": posts_id, "maxSelect": 1,
             "required": true}]}),
        )
        .await;

    // select: maxSelect 2 holds a list and refuses a third value.
    let post = server
        .json(
            "POST",
            "/api/collections/posts/records",
            json!({"title": "one", "tags": ["a", "b"]}),
            None,
            200,
        )
        .await;
    assert_eq!(post["tags"], json!(["a", "b"]));
    let refused = server
        .json(
            "POST",
            "/api/collections/posts/records",
            json!({"tags": ["a", "b", "c"]}),
            None,
            400,
        )
        .await;
    assert_eq!(
        refused["data"]["tags"]["code"],
        "validation_too_many_values"
    );

    // autodate: `updated` moves on update, `created` does not.
    let post_id = post["id"].as_str().expect("post id");
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let updated = server
        .json(
            "PATCH",
            &format!("/api/collections/posts/records/{post_id}"),
            json!({"title": "two"}),
            None,
            200,
        )
        .await;
    assert_eq!(updated["created"], post["created"]);
    assert_ne!(updated["updated"], post["updated"]);

    // relation by name: expand follows it; deleting the post cascades to the comment.
    let comment = server
        .json(
            "POST",
            "/api/collections/comments/records?expand=post",
            json!({"post": post_id}),
            None,
            200,
        )
        .await;
    assert_eq!(comment["expand"]["post"]["id"], post_id);
    let other = server
        .json(
            "POST",
            "/api/collections/posts/records",
            json!({"title": "pinned"}),
            None,
            200,
        )
        .await;
    let other_id = other["id"].as_str().expect("other id");
    server
        .json(
            "POST",
            "/api/collections/pins/records",
            json!({"post": other_id}),
            None,
            200,
        )
        .await;
    let reply = server
        .send(
            "DELETE",
            &format!("/api/collections/posts/records/{post_id}"),
            None,
            None,
        )
        .await;
    assert_eq!(reply.status, 204, "{}", reply.text);
    let comments = server
        .json(
            "GET",
            "/api/collections/comments/records",
            json!({}),
            None,
            200,
        )
        .await;
    assert_eq!(comments["totalItems"], 0, "the comment went with its post");
    // A required, non-cascading relation refuses the delete of what it points at.
    let reply = server
        .send(
            "DELETE",
            &format!("/api/collections/posts/records/{other_id}"),
            None,
            None,
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    // And a collection something points at cannot be deleted.
    let reply = server
        .send("DELETE", "/api/collections/posts", None, Some(&admin))
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(
        reply.text.contains("existing reference in"),
        "{}",
        reply.text
    );
}
