//! `GET /api/collections/{c}/trash`: the deleted records of a collection, read from the log —
//! superusers only, newest delete first, the record as it was (hidden fields out), and a
//! record created again with the same id leaves the trash.

mod common;

use common::start;
use serde_json::json;

#[tokio::test]
async fn trash_lists_deleted_records_newest_first() {
    let server = start().await;
    server
        .collection(
            json!({"name": "notes", "type": "base", "listRule": "", "viewRule": "",
            "createRule": "", "deleteRule": "", "fields": [{"name": "title", "type": "text"},
            {"name": "secret", "type": "text", "hidden": true}]}),
        )
        .await;
    let mut ids = Vec::new();
    for title in ["a", "b", "c"] {
        let record = server
            .json(
                "POST",
                "/api/collections/notes/records",
                json!({"title": title, "secret": "s"}),
                None,
                200,
            )
            .await;
        ids.push(record["id"].as_str().expect("id").to_string());
    }
    let empty = server
        .json(
            "GET",
            "/api/collections/notes/trash",
            json!({}),
            Some(&server.admin),
            200,
        )
        .await;
    assert_eq!(empty["totalItems"], json!(0));
    for id in [&ids[0], &ids[1]] {
        let reply = server
            .send(
                "DELETE",
                &format!("/api/collections/notes/records/{id}"),
                None,
                None,
            )
            .await;
        assert_eq!(reply.status, 204);
    }
    let delete_b_seq = server.state.engine.last_seq();
    let trash = server
        .json(
            "GET",
            "/api/collections/notes/trash",
            json!({}),
            Some(&server.admin),
            200,
        )
        .await;
    assert_eq!(trash["totalItems"], json!(2));
    let items = trash["items"].as_array().expect("items");
    assert_eq!(items[0]["id"], json!(ids[1]), "newest first");
    assert_eq!(items[0]["position"], json!(delete_b_seq));
    assert_eq!(items[0]["record"]["title"], json!("b"));
    assert!(items[0]["record"].get("secret").is_none(), "hidden field");
    assert_eq!(items[0]["actor"]["type"], json!("guest"));
    assert!(items[0]["deletedAt"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert_eq!(items[1]["record"]["title"], json!("a"));
    // Created again with the same id: out of the trash.
    server
        .json(
            "POST",
            "/api/collections/notes/records",
            json!({"id": ids[0], "title": "a again"}),
            Some(&server.admin),
            200,
        )
        .await;
    let trash = server
        .json(
            "GET",
            "/api/collections/notes/trash",
            json!({}),
            Some(&server.admin),
            200,
        )
        .await;
    assert_eq!(trash["totalItems"], json!(1));
    assert_eq!(trash["items"][0]["id"], json!(ids[1]));
    // By collection id too.
    let collection = server
        .json(
            "GET",
            "/api/collections/notes",
            json!({}),
            Some(&server.admin),
            200,
        )
        .await;
    let by_id = format!(
        "/api/collections/{}/trash",
        collection["id"].as_str().expect("id")
    );
    let trash = server
        .json("GET", &by_id, json!({}), Some(&server.admin), 200)
        .await;
    assert_eq!(trash["totalItems"], json!(1));
}

#[tokio::test]
async fn trash_is_for_superusers() {
    let server = start().await;
    let guest = server
        .send("GET", "/api/collections/users/trash", None, None)
        .await;
    assert_eq!(guest.status, 401);
    let (_, token) = server.user("t1@example.com", "Passw0rd123").await;
    let user = server
        .send("GET", "/api/collections/users/trash", None, Some(&token))
        .await;
    assert_eq!(user.status, 403);
    let unknown = server
        .send(
            "GET",
            "/api/collections/nope/trash",
            None,
            Some(&server.admin),
        )
        .await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.text.contains("\"status\":404"));
}
