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

#[tokio::test]
async fn restore_brings_a_record_back_as_a_create_and_reports_broken_relations() {
    let server = start().await;
    let tags = server
        .collection(
            json!({"name": "tags", "type": "base", "listRule": "", "viewRule": "",
            "createRule": "", "deleteRule": "", "fields": [{"name": "label", "type": "text"}]}),
        )
        .await;
    server
        .collection(
            json!({"name": "posts", "type": "base", "listRule": "", "viewRule": "",
            "createRule": "", "deleteRule": "", "fields": [{"name": "title", "type": "text"},
            {"name": "tags", "type": "relation", "collectionId": tags["id"], "maxSelect": 5}]}),
        )
        .await;
    let keep = server
        .json(
            "POST",
            "/api/collections/tags/records",
            json!({"label": "keep"}),
            None,
            200,
        )
        .await;
    let gone = server
        .json(
            "POST",
            "/api/collections/tags/records",
            json!({"label": "gone"}),
            None,
            200,
        )
        .await;
    let (keep, gone) = (
        keep["id"].as_str().expect("id").to_string(),
        gone["id"].as_str().expect("id").to_string(),
    );
    let post = server
        .json(
            "POST",
            "/api/collections/posts/records",
            json!({"title": "hello", "tags": [keep, gone]}),
            None,
            200,
        )
        .await;
    let post_id = post["id"].as_str().expect("id").to_string();
    let restore_path = format!("/api/collections/posts/records/{post_id}/restore");
    // Not deleted (yet): nothing to restore.
    let early = server
        .send("POST", &restore_path, None, Some(&server.admin))
        .await;
    assert_eq!(early.status, 404);
    for path in [
        format!("/api/collections/posts/records/{post_id}"),
        format!("/api/collections/tags/records/{gone}"),
    ] {
        assert_eq!(server.send("DELETE", &path, None, None).await.status, 204);
    }
    let guest = server.send("POST", &restore_path, None, None).await;
    assert_eq!(guest.status, 401);
    let restored = server
        .json("POST", &restore_path, json!({}), Some(&server.admin), 200)
        .await;
    assert_eq!(restored["record"]["id"], json!(post_id));
    assert_eq!(restored["record"]["title"], json!("hello"));
    assert_eq!(restored["record"]["created"], post["created"]);
    assert_eq!(restored["missingRelations"], json!({"tags": [gone]}));
    assert_eq!(restored["position"], json!(server.state.engine.last_seq()));
    // An ordinary record again: viewable, out of the trash, in history as a create.
    let viewed = server
        .json(
            "GET",
            &format!("/api/collections/posts/records/{post_id}"),
            json!({}),
            None,
            200,
        )
        .await;
    assert_eq!(viewed["title"], json!("hello"));
    let trash = server
        .json(
            "GET",
            "/api/collections/posts/trash",
            json!({}),
            Some(&server.admin),
            200,
        )
        .await;
    assert_eq!(trash["totalItems"], json!(0));
    let history = server
        .json(
            "GET",
            &format!("/api/collections/posts/records/{post_id}/history"),
            json!({}),
            Some(&server.admin),
            200,
        )
        .await;
    let actions: Vec<&str> = history["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["action"].as_str().expect("action"))
        .collect();
    assert_eq!(actions, ["create", "delete", "create"]);
    // A second restore: the record exists now.
    let again = server
        .send("POST", &restore_path, None, Some(&server.admin))
        .await;
    assert_eq!(again.status, 404, "no longer in the trash: {}", again.text);
}

#[tokio::test]
async fn a_restored_user_gets_a_new_token_key() {
    let server = start().await;
    let (id, token) = server.user("gone@example.com", "Passw0rd123").await;
    let path = format!("/api/collections/users/records/{id}");
    assert_eq!(
        server
            .send("DELETE", &path, None, Some(&server.admin))
            .await
            .status,
        204
    );
    server
        .json(
            "POST",
            &format!("{path}/restore"),
            json!({}),
            Some(&server.admin),
            200,
        )
        .await;
    // The old token is still revoked; the password still works.
    let old = server
        .send(
            "POST",
            "/api/collections/users/auth-refresh",
            None,
            Some(&token),
        )
        .await;
    assert_ne!(old.status, 200, "{}", old.text);
    server
        .login("users", "gone@example.com", "Passw0rd123")
        .await;
}
