//! `restoreRule`, restore and revert for non-superusers, over HTTP: the rule is stored and
//! shown like the other rules (only when set), the trash of a non-superuser lists only what
//! the `restoreRule` and the `listRule` let them restore, a restore passes the `createRule`
//! and the `restoreRule` (a failing rule commits nothing), and `POST …/revert` writes an old
//! version back as an update through the `updateRule` and the `restoreRule`, reporting
//! relations that point at records deleted since and refusing versions whose files are gone.

mod common;

use common::{start, TestServer};
use serde_json::{json, Value};

const OWNED: &str = "owner = @request.auth.id";

async fn notes(server: &TestServer, restore_rule: Value) -> Value {
    let users = server
        .json(
            "GET",
            "/api/collections/users",
            json!({}),
            Some(&server.admin),
            200,
        )
        .await;
    server
        .collection(json!({"name": "notes", "type": "base", "listRule": OWNED,
            "viewRule": OWNED, "createRule": OWNED, "updateRule": OWNED, "deleteRule": OWNED,
            "restoreRule": restore_rule,
            "fields": [{"name": "title", "type": "text"},
                {"name": "owner", "type": "relation", "collectionId": users["id"], "maxSelect": 1}]}))
        .await
}

async fn note(server: &TestServer, token: &str, owner: &str, title: &str) -> String {
    let record = server
        .json(
            "POST",
            "/api/collections/notes/records",
            json!({"title": title, "owner": owner}),
            Some(token),
            200,
        )
        .await;
    record["id"].as_str().expect("id").to_string()
}

fn ids(trash: &Value) -> Vec<String> {
    trash["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["id"].as_str().expect("id").to_string())
        .collect()
}

#[tokio::test]
async fn restore_rule_is_stored_shown_when_set_and_validated() {
    let server = start().await;
    let created = notes(&server, json!(OWNED)).await;
    assert_eq!(created["restoreRule"], json!(OWNED));
    let plain = server
        .collection(json!({"name": "plain", "type": "base", "fields": []}))
        .await;
    assert!(
        plain.get("restoreRule").is_none(),
        "absent (null) unless set: {plain}"
    );
    let bad = server
        .send(
            "PATCH",
            "/api/collections/notes",
            Some(&json!({"restoreRule": "nope = 1"}).to_string()),
            Some(&server.admin),
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert_eq!(
        bad.json["data"]["restoreRule"]["code"],
        json!("validation_invalid_rule")
    );
    let cleared = server
        .json(
            "PATCH",
            "/api/collections/notes",
            json!({"restoreRule": null}),
            Some(&server.admin),
            200,
        )
        .await;
    assert!(cleared.get("restoreRule").is_none());
    let view = server
        .collection(json!({"name": "v", "type": "view", "listRule": "",
            "viewQuery": "SELECT id, title FROM notes", "restoreRule": ""}))
        .await;
    assert!(view.get("restoreRule").is_none(), "views have no restore");
}

#[tokio::test]
async fn non_superusers_see_and_restore_only_what_the_rules_allow() {
    let server = start().await;
    notes(&server, json!(OWNED)).await;
    let (alice, alice_token) = server.user("alice@example.com", "Passw0rd123").await;
    let (bob, bob_token) = server.user("bob@example.com", "Passw0rd123").await;
    let a = note(&server, &alice_token, &alice, "alice's").await;
    let b = note(&server, &bob_token, &bob, "bob's").await;
    for (id, token) in [(&a, &alice_token), (&b, &bob_token)] {
        let path = format!("/api/collections/notes/records/{id}");
        assert_eq!(
            server.send("DELETE", &path, None, Some(token)).await.status,
            204
        );
    }
    let trash = "/api/collections/notes/trash";
    let mine = server
        .json("GET", trash, json!({}), Some(&alice_token), 200)
        .await;
    assert_eq!(ids(&mine), vec![a.as_str()]);
    assert_eq!(mine["items"][0]["record"]["title"], json!("alice's"));
    let theirs = server
        .json("GET", trash, json!({}), Some(&bob_token), 200)
        .await;
    assert_eq!(ids(&theirs), vec![b.as_str()]);
    let guest = server.json("GET", trash, json!({}), None, 200).await;
    assert!(ids(&guest).is_empty());
    let all = server
        .json("GET", trash, json!({}), Some(&server.admin), 200)
        .await;
    assert_eq!(all["totalItems"], json!(2));
    // Alice cannot restore Bob's note (the restoreRule fails on it): 404, nothing written.
    let head = server.state.engine.last_seq();
    let denied = server
        .send(
            "POST",
            &format!("/api/collections/notes/records/{b}/restore"),
            None,
            Some(&alice_token),
        )
        .await;
    assert_eq!(denied.status, 404, "{}", denied.text);
    assert_eq!(
        server.state.engine.last_seq(),
        head,
        "a failed rule commits nothing"
    );
    let restored = server
        .json(
            "POST",
            &format!("/api/collections/notes/records/{a}/restore"),
            json!({}),
            Some(&alice_token),
            200,
        )
        .await;
    assert_eq!(restored["record"]["title"], json!("alice's"));
    assert_eq!(restored["position"], json!(head + 1));
    let mine = server
        .json("GET", trash, json!({}), Some(&alice_token), 200)
        .await;
    assert!(ids(&mine).is_empty());
}

#[tokio::test]
async fn locked_rules_keep_the_trash_for_superusers_and_the_create_rule_applies() {
    let server = start().await;
    notes(&server, Value::Null).await;
    let (alice, alice_token) = server.user("alice@example.com", "Passw0rd123").await;
    let a = note(&server, &alice_token, &alice, "x").await;
    let path = format!("/api/collections/notes/records/{a}");
    assert_eq!(
        server
            .send("DELETE", &path, None, Some(&alice_token))
            .await
            .status,
        204
    );
    let trash = "/api/collections/notes/trash";
    assert_eq!(server.send("GET", trash, None, None).await.status, 401);
    assert_eq!(
        server
            .send("GET", trash, None, Some(&alice_token))
            .await
            .status,
        403
    );
    let restore = format!("{path}/restore");
    assert_eq!(
        server
            .send("POST", &restore, None, Some(&alice_token))
            .await
            .status,
        403
    );
    // Open restoreRule, but a createRule the record no longer passes: 400, nothing written.
    server
        .json(
            "PATCH",
            "/api/collections/notes",
            json!({"restoreRule": "", "createRule": "@request.auth.verified = true"}),
            Some(&server.admin),
            200,
        )
        .await;
    let head = server.state.engine.last_seq();
    let refused = server
        .send("POST", &restore, None, Some(&alice_token))
        .await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert!(refused.text.contains("Failed to restore record."));
    assert_eq!(server.state.engine.last_seq(), head);
    // A locked listRule hides the trash from non-superusers (403).
    server
        .json(
            "PATCH",
            "/api/collections/notes",
            json!({"listRule": null}),
            Some(&server.admin),
            200,
        )
        .await;
    assert_eq!(
        server
            .send("GET", trash, None, Some(&alice_token))
            .await
            .status,
        403
    );
}

async fn history_seqs(server: &TestServer, id: &str) -> Vec<u64> {
    let history = server
        .json(
            "GET",
            &format!("/api/collections/notes/records/{id}/history"),
            json!({}),
            Some(&server.admin),
            200,
        )
        .await;
    history["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["seq"].as_u64().expect("seq"))
        .collect()
}

#[tokio::test]
async fn revert_writes_an_old_version_back_as_an_update() {
    let server = start().await;
    notes(&server, json!(OWNED)).await;
    let (alice, alice_token) = server.user("alice@example.com", "Passw0rd123").await;
    let (_, bob_token) = server.user("bob@example.com", "Passw0rd123").await;
    let before = server.state.engine.last_seq();
    let id = note(&server, &alice_token, &alice, "v1").await;
    let path = format!("/api/collections/notes/records/{id}");
    for title in ["v2", "v3"] {
        server
            .json(
                "PATCH",
                &path,
                json!({"title": title}),
                Some(&alice_token),
                200,
            )
            .await;
    }
    let seqs = history_seqs(&server, &id).await;
    let revert = format!("{path}/revert");
    // Bad bodies and positions: clear 400s, nothing written.
    let head = server.state.engine.last_seq();
    let missing = server
        .send(
            "POST",
            &revert,
            Some(&json!({}).to_string()),
            Some(&alice_token),
        )
        .await;
    assert_eq!(missing.status, 400);
    assert_eq!(
        missing.json["data"]["position"]["code"],
        json!("validation_required")
    );
    let negative = server
        .send(
            "POST",
            &revert,
            Some(&json!({"position": -1}).to_string()),
            Some(&alice_token),
        )
        .await;
    assert_eq!(negative.status, 400);
    let beyond = server
        .send(
            "POST",
            &revert,
            Some(&json!({"position": head + 10}).to_string()),
            Some(&alice_token),
        )
        .await;
    assert_eq!(beyond.status, 400);
    assert!(
        beyond.text.contains("beyond the head of the log"),
        "{}",
        beyond.text
    );
    let earlier = server
        .send(
            "POST",
            &revert,
            Some(&json!({"position": before}).to_string()),
            Some(&alice_token),
        )
        .await;
    assert_eq!(earlier.status, 400);
    assert!(
        earlier.text.contains("did not exist at position"),
        "{}",
        earlier.text
    );
    // Bob fails the updateRule: 404.
    let bob = server
        .send(
            "POST",
            &revert,
            Some(&json!({"position": seqs[0]}).to_string()),
            Some(&bob_token),
        )
        .await;
    assert_eq!(bob.status, 404, "{}", bob.text);
    assert_eq!(server.state.engine.last_seq(), head);
    // Alice reverts to v1.
    let reverted = server
        .json(
            "POST",
            &revert,
            json!({"position": seqs[0]}),
            Some(&alice_token),
            200,
        )
        .await;
    assert_eq!(reverted["record"]["title"], json!("v1"));
    assert_eq!(reverted["revertedTo"], json!(seqs[0]));
    assert_eq!(reverted["position"], json!(head + 1));
    let viewed = server
        .json("GET", &path, json!({}), Some(&alice_token), 200)
        .await;
    assert_eq!(viewed["title"], json!("v1"));
    // A position between versions takes the version in force then (v2).
    let reverted = server
        .json(
            "POST",
            &revert,
            json!({"position": seqs[1]}),
            Some(&alice_token),
            200,
        )
        .await;
    assert_eq!(reverted["record"]["title"], json!("v2"));
    let history = server
        .json(
            "GET",
            &format!("{path}/history"),
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
    assert_eq!(actions, ["create", "update", "update", "update", "update"]);
    // A locked restoreRule: superusers only.
    server
        .json(
            "PATCH",
            "/api/collections/notes",
            json!({"restoreRule": null}),
            Some(&server.admin),
            200,
        )
        .await;
    let locked = server
        .send(
            "POST",
            &revert,
            Some(&json!({"position": seqs[0]}).to_string()),
            Some(&alice_token),
        )
        .await;
    assert_eq!(locked.status, 403);
    let guest = server
        .send(
            "POST",
            &revert,
            Some(&json!({"position": seqs[0]}).to_string()),
            None,
        )
        .await;
    assert_eq!(guest.status, 401);
    server
        .json(
            "POST",
            &revert,
            json!({"position": seqs[0]}),
            Some(&server.admin),
            200,
        )
        .await;
    // A deleted record is restored, not reverted.
    assert_eq!(
        server
            .send("DELETE", &path, None, Some(&server.admin))
            .await
            .status,
        204
    );
    let gone = server
        .send(
            "POST",
            &revert,
            Some(&json!({"position": seqs[0]}).to_string()),
            Some(&server.admin),
        )
        .await;
    assert_eq!(gone.status, 404);
}

#[tokio::test]
async fn revert_reports_relations_to_records_deleted_since() {
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
            "createRule": "", "updateRule": "", "restoreRule": "",
            "fields": [{"name": "title", "type": "text"},
            {"name": "tags", "type": "relation", "collectionId": tags["id"], "maxSelect": 5}]}),
        )
        .await;
    let mut tag_ids = Vec::new();
    for label in ["keep", "gone"] {
        let tag = server
            .json(
                "POST",
                "/api/collections/tags/records",
                json!({"label": label}),
                None,
                200,
            )
            .await;
        tag_ids.push(tag["id"].as_str().expect("id").to_string());
    }
    let post = server
        .json(
            "POST",
            "/api/collections/posts/records",
            json!({"title": "p", "tags": tag_ids}),
            None,
            200,
        )
        .await;
    let version = server.state.engine.last_seq();
    let path = format!(
        "/api/collections/posts/records/{}",
        post["id"].as_str().expect("id")
    );
    server
        .json(
            "PATCH",
            &path,
            json!({"title": "q", "tags": [tag_ids[0]]}),
            None,
            200,
        )
        .await;
    let gone_path = format!("/api/collections/tags/records/{}", tag_ids[1]);
    assert_eq!(
        server.send("DELETE", &gone_path, None, None).await.status,
        204
    );
    let reverted = server
        .json(
            "POST",
            &format!("{path}/revert"),
            json!({"position": version}),
            None,
            200,
        )
        .await;
    assert_eq!(reverted["record"]["title"], json!("p"));
    assert_eq!(reverted["missingRelations"], json!({"tags": [tag_ids[1]]}));
    assert_eq!(
        reverted["record"]["tags"],
        json!(tag_ids),
        "kept, not dropped"
    );
}

const BOUNDARY: &str = "----pocketlogRevertBoundary";

async fn upload(server: &TestServer, method: reqwest::Method, path: &str, name: &str) -> Value {
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"{name}\"\r\n\
             Content-Type: text/plain\r\n\r\n{name} bytes\r\n--{BOUNDARY}--\r\n"
        )
        .as_bytes(),
    );
    let response = server
        .client
        .request(method, format!("{}{path}", server.base))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .header("authorization", &server.admin)
        .body(body)
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.expect("json")
}

#[tokio::test]
async fn revert_brings_files_back_while_stored_and_refuses_when_gone() {
    let server = start().await;
    server
        .collection(
            json!({"name": "docs", "type": "base", "listRule": "", "viewRule": "",
            "fields": [{"name": "doc", "type": "file", "maxSelect": 1, "maxSize": 1000}]}),
        )
        .await;
    let first = upload(
        &server,
        reqwest::Method::POST,
        "/api/collections/docs/records",
        "one.txt",
    )
    .await;
    let version = server.state.engine.last_seq();
    let id = first["id"].as_str().expect("id").to_string();
    let old_name = first["doc"].as_str().expect("doc").to_string();
    let path = format!("/api/collections/docs/records/{id}");
    let second = upload(&server, reqwest::Method::PATCH, &path, "two.txt").await;
    let new_name = second["doc"].as_str().expect("doc").to_string();
    assert_ne!(old_name, new_name);
    let reverted = server
        .json(
            "POST",
            &format!("{path}/revert"),
            json!({"position": version}),
            Some(&server.admin),
            200,
        )
        .await;
    assert_eq!(reverted["record"]["doc"], json!(old_name));
    let file = server
        .send(
            "GET",
            &format!("/api/files/docs/{id}/{old_name}"),
            None,
            None,
        )
        .await;
    assert_eq!(file.status, 200);
    assert_eq!(file.text, "one.txt bytes");
    // The bytes of the second version gone from storage: reverting to it is a 400.
    let second_version = server.state.engine.last_seq() - 1;
    let collection_id = reverted["record"]["collectionId"]
        .as_str()
        .expect("cid")
        .to_string();
    let stored = server
        .state
        .engine
        .dir()
        .join("storage")
        .join(&collection_id)
        .join(&id)
        .join(&new_name);
    std::fs::remove_file(&stored).expect("remove the stored bytes");
    let head = server.state.engine.last_seq();
    let refused = server
        .send(
            "POST",
            &format!("{path}/revert"),
            Some(&json!({"position": second_version}).to_string()),
            Some(&server.admin),
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert!(
        refused.text.contains("no longer stored"),
        "{}",
        refused.text
    );
    assert!(refused.text.contains(&new_name));
    assert_eq!(server.state.engine.last_seq(), head);
}
