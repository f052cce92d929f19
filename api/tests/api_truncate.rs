//! Truncating a collection deletes each record exactly as the records API does: relations that
//! point at it are cleared, `cascadeDelete` relations delete their records, and a required
//! reference without cascade refuses the whole truncate (nothing is deleted).

mod common;

use serde_json::{json, Value};

#[tokio::test]
async fn truncate_cleans_up_references_like_delete() {
    let server = common::start().await;
    let admin = server.admin.clone();
    let admin = Some(admin.as_str());
    let parents = server
        .json("POST", "/api/collections", json!({"name": "parents", "listRule": "", "fields": [{"name": "title", "type": "text"}]}), admin, 200)
        .await;
    let parents_id = parents["id"].as_str().expect("id").to_string();
    server
        .json("POST", "/api/collections", json!({"name": "owned", "listRule": "", "fields": [
            {"name": "parent", "type": "relation", "collectionId": parents_id, "maxSelect": 1, "cascadeDelete": true}]}), admin, 200)
        .await;
    server
        .json(
            "POST",
            "/api/collections",
            json!({"name": "linked", "listRule": "", "fields": [
            {"name": "parents", "type": "relation", "collectionId": parents_id, "maxSelect": 5}]}),
            admin,
            200,
        )
        .await;
    let mut ids = Vec::new();
    for title in ["a", "b"] {
        let record = server
            .json(
                "POST",
                "/api/collections/parents/records",
                json!({"title": title}),
                admin,
                200,
            )
            .await;
        ids.push(record["id"].as_str().expect("id").to_string());
    }
    server
        .json(
            "POST",
            "/api/collections/owned/records",
            json!({"parent": ids[0]}),
            admin,
            200,
        )
        .await;
    let linked = server
        .json(
            "POST",
            "/api/collections/linked/records",
            json!({"parents": ids}),
            admin,
            200,
        )
        .await;
    let truncated = server
        .send("DELETE", "/api/collections/parents/truncate", None, admin)
        .await;
    assert_eq!(truncated.status, 204, "{}", truncated.text);
    let count = |value: &Value| value["totalItems"].as_i64();
    let parents_left = server
        .json(
            "GET",
            "/api/collections/parents/records",
            Value::Null,
            admin,
            200,
        )
        .await;
    assert_eq!(count(&parents_left), Some(0));
    let owned_left = server
        .json(
            "GET",
            "/api/collections/owned/records",
            Value::Null,
            admin,
            200,
        )
        .await;
    assert_eq!(
        count(&owned_left),
        Some(0),
        "cascadeDelete removed the owned record"
    );
    let linked_now = server
        .json(
            "GET",
            &format!(
                "/api/collections/linked/records/{}",
                linked["id"].as_str().expect("id")
            ),
            Value::Null,
            admin,
            200,
        )
        .await;
    assert_eq!(
        linked_now["parents"],
        json!([]),
        "references to truncated records are cleared"
    );

    // A required reference without cascade refuses the truncate as a whole.
    let record = server
        .json(
            "POST",
            "/api/collections/parents/records",
            json!({"title": "c"}),
            admin,
            200,
        )
        .await;
    server
        .json("POST", "/api/collections", json!({"name": "needs", "listRule": "", "fields": [
            {"name": "parent", "type": "relation", "collectionId": parents_id, "maxSelect": 1, "required": true}]}), admin, 200)
        .await;
    server
        .json(
            "POST",
            "/api/collections/needs/records",
            json!({"parent": record["id"]}),
            admin,
            200,
        )
        .await;
    let refused = server
        .send("DELETE", "/api/collections/parents/truncate", None, admin)
        .await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    let parents_left = server
        .json(
            "GET",
            "/api/collections/parents/records",
            Value::Null,
            admin,
            200,
        )
        .await;
    assert_eq!(count(&parents_left), Some(1), "nothing was deleted");
}
