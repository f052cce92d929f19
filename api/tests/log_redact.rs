//! `POST /api/collections/{c}/records/{id}/redact`: superusers only; the erased values leave
//! every file of the data dir (log, snapshots, `data.db` and its WAL, `auxiliary.db`); the
//! record reads back with the fields empty, its other fields and other records untouched;
//! history shows "redacted" for the erased fields of every earlier version plus a `redact`
//! item; bad input is a 400/404 in PocketBase's envelope and writes nothing; an auth record
//! signed in over the API is locked out once its password is redacted.

mod common;

use common::start;
use serde_json::{json, Value};
use std::path::Path;

fn files_holding(dir: &Path, needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                if bytes
                    .windows(needle.len())
                    .any(|window| window == needle.as_bytes())
                {
                    out.push(path.display().to_string());
                }
            }
        }
    }
    out
}

async fn people(server: &common::TestServer) {
    server
        .collection(
            json!({"name": "people", "type": "base", "listRule": "", "viewRule": "",
            "createRule": "", "updateRule": "", "deleteRule": "", "fields": [
            {"name": "name", "type": "text"}, {"name": "email", "type": "email"},
            {"name": "bio", "type": "text"}, {"name": "age", "type": "number"}]}),
        )
        .await;
}

#[tokio::test]
async fn redaction_erases_values_everywhere_and_history_says_redacted() {
    let server = start().await;
    people(&server).await;
    let dir = server.state.engine.dir().to_path_buf();
    let mut ids = Vec::new();
    for person in 0..3 {
        let record = server
            .json(
                "POST",
                "/api/collections/people/records",
                json!({"name": format!("Name{person}Kq"), "email": format!("p{person}v0@secret-mail.test"),
                       "bio": format!("Bio{person}V0Zx"), "age": 40 + person}),
                None,
                200,
            )
            .await;
        ids.push(record["id"].as_str().expect("id").to_string());
    }
    for version in 1..3 {
        for (person, id) in ids.iter().enumerate() {
            server
                .json(
                    "PATCH",
                    &format!("/api/collections/people/records/{id}"),
                    json!({"email": format!("p{person}v{version}@secret-mail.test"),
                           "bio": format!("Bio{person}V{version}Zx")}),
                    None,
                    200,
                )
                .await;
        }
        server.state.engine.snapshot().expect("snapshot");
    }
    let target = &ids[1];
    let path = format!("/api/collections/people/records/{target}/redact");
    // Guests and records may not; nothing is written.
    let last = server.state.engine.last_seq();
    let reply = server
        .send("POST", &path, Some(r#"{"fields":["email"]}"#), None)
        .await;
    assert_eq!(reply.status, 401, "{}", reply.text);
    let (_, user_token) = server.user("someone@example.com", "12345678aA").await;
    let last_after_user = server.state.engine.last_seq();
    assert!(last_after_user > last);
    let reply = server
        .send(
            "POST",
            &path,
            Some(r#"{"fields":["email"]}"#),
            Some(&user_token),
        )
        .await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    // Bad input.
    let admin = server.admin.clone();
    for (body, status, fragment) in [
        (r#"{"fields":["nope"]}"#, 400, "validation_invalid_value"),
        (r#"{"fields":["id"]}"#, 400, "validation_invalid_value"),
        (r#"{"fields":"email"}"#, 400, "fields"),
        (r#"{"other":1}"#, 400, "fields"),
        ("not json", 400, "fields"),
    ] {
        let reply = server.send("POST", &path, Some(body), Some(&admin)).await;
        assert_eq!(reply.status, status, "{body}: {}", reply.text);
        assert!(reply.text.contains(fragment), "{body}: {}", reply.text);
        assert_eq!(reply.json["status"], json!(status));
    }
    let reply = server
        .send(
            "POST",
            "/api/collections/people/records/nosuchrecord123/redact",
            Some(r#"{"fields":["email"]}"#),
            Some(&admin),
        )
        .await;
    assert_eq!(reply.status, 404, "{}", reply.text);
    let reply = server
        .send(
            "POST",
            &format!("/api/collections/nothere/records/{target}/redact"),
            Some("{}"),
            Some(&admin),
        )
        .await;
    assert_eq!(reply.status, 404, "{}", reply.text);
    assert_eq!(
        server.state.engine.last_seq(),
        last_after_user,
        "bad input wrote"
    );
    // A past state materialised for `asOf` holds the values until the redaction drops it.
    let early = server.state.engine.last_seq();
    let past_path = format!("/api/collections/people/records/{target}?asOf={early}");
    let past = server
        .json("GET", &past_path, json!({}), Some(&admin), 200)
        .await;
    assert_eq!(past["email"], json!("p1v2@secret-mail.test"));
    assert!(!server.state.asof.is_empty());
    // The redaction.
    let summary = server
        .json(
            "POST",
            &path,
            json!({"fields": ["email", "bio"]}),
            Some(&admin),
            200,
        )
        .await;
    assert_eq!(summary["fields"], json!(["email", "bio"]));
    assert_eq!(summary["recordId"], json!(target));
    assert_eq!(summary["position"], json!(server.state.engine.last_seq()));
    assert_eq!(summary["commitsRewritten"], json!(3));
    assert_eq!(summary["snapshotsRewritten"], json!(2));
    assert!(
        server.state.asof.is_empty(),
        "asOf states survived the redaction"
    );
    let past = server
        .json("GET", &past_path, json!({}), Some(&admin), 200)
        .await;
    assert_eq!(past["email"], json!(""), "{past}");
    assert_eq!(past["bio"], json!(""), "{past}");
    let record = server
        .json(
            "GET",
            &format!("/api/collections/people/records/{target}"),
            json!({}),
            None,
            200,
        )
        .await;
    assert_eq!(record["email"], json!(""));
    assert_eq!(record["bio"], json!(""));
    assert_eq!(record["name"], json!("Name1Kq"));
    assert_eq!(record["age"], json!(41));
    let other = server
        .json(
            "GET",
            &format!("/api/collections/people/records/{}", ids[2]),
            json!({}),
            None,
            200,
        )
        .await;
    assert_eq!(other["email"], json!("p2v2@secret-mail.test"));
    // History: every earlier version shows "redacted"; the redaction is an item.
    let history = server
        .json(
            "GET",
            &format!("/api/collections/people/records/{target}/history"),
            json!({}),
            Some(&admin),
            200,
        )
        .await;
    let items = history["items"].as_array().expect("items");
    assert_eq!(items.len(), 4, "{history}");
    for item in &items[..3] {
        assert_eq!(item["record"]["email"], json!("redacted"), "{item}");
        assert_eq!(item["record"]["bio"], json!("redacted"), "{item}");
        assert_eq!(item["record"]["name"], json!("Name1Kq"), "{item}");
    }
    assert_eq!(items[3]["action"], json!("redact"));
    assert_eq!(items[3]["fields"], json!(["email", "bio"]));
    assert_eq!(items[3]["actor"]["type"], json!("superuser"));
    // Later writes are history again, not redacted.
    server
        .json(
            "PATCH",
            &format!("/api/collections/people/records/{target}"),
            json!({"bio": "new bio after"}),
            None,
            200,
        )
        .await;
    let history = server
        .json(
            "GET",
            &format!("/api/collections/people/records/{target}/history"),
            json!({}),
            Some(&admin),
            200,
        )
        .await;
    assert_eq!(history["items"][4]["record"]["bio"], json!("new bio after"));
    // No byte of the erased values anywhere in the data dir; the others are still there.
    for version in 0..3 {
        for gone in [
            format!("p1v{version}@secret-mail.test"),
            format!("Bio1V{version}Zx"),
        ] {
            assert_eq!(files_holding(&dir, &gone), Vec::<String>::new(), "{gone}");
        }
        assert!(!files_holding(&dir.join("log"), &format!("Bio2V{version}Zx")).is_empty());
    }
    assert!(!files_holding(&dir.join("log"), "Name1Kq").is_empty());
    // A redaction with no body erases the default set: every non-system field.
    let summary = server
        .json(
            "POST",
            &format!("/api/collections/people/records/{}/redact", ids[0]),
            json!({}),
            Some(&admin),
            200,
        )
        .await;
    let fields: Vec<String> = serde_json::from_value(summary["fields"].clone()).expect("fields");
    assert_eq!(fields, ["name", "email", "bio", "age"]);
    let record = server
        .json(
            "GET",
            &format!("/api/collections/people/records/{}", ids[0]),
            json!({}),
            None,
            200,
        )
        .await;
    assert_eq!(record["age"], json!(0));
    assert_eq!(record["name"], json!(""));
    assert!(files_holding(&dir, "Name0Kq").is_empty());
}

#[tokio::test]
async fn a_redacted_auth_record_is_locked_out_and_a_deleted_record_is_redactable() {
    let server = start().await;
    let admin = server.admin.clone();
    let (id, token) = server.user("erase.me@example.com", "12345678aA").await;
    let me = server
        .send(
            "POST",
            "/api/collections/users/auth-refresh",
            None,
            Some(&token),
        )
        .await;
    assert_eq!(me.status, 200, "{}", me.text);
    let summary: Value = server
        .json(
            "POST",
            &format!("/api/collections/users/records/{id}/redact"),
            json!({"fields": ["email", "password"]}),
            Some(&admin),
            200,
        )
        .await;
    assert_eq!(summary["fields"], json!(["email", "password"]));
    let reply = server
        .send(
            "POST",
            "/api/collections/users/auth-with-password",
            Some(r#"{"identity":"erase.me@example.com","password":"12345678aA"}"#),
            None,
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(files_holding(server.state.engine.dir(), "erase.me@example.com").is_empty());
    // A deleted record's history is redactable.
    people(&server).await;
    let record = server
        .json(
            "POST",
            "/api/collections/people/records",
            json!({"bio": "GoneBioQx"}),
            None,
            200,
        )
        .await;
    let gone = record["id"].as_str().expect("id").to_string();
    let reply = server
        .send(
            "DELETE",
            &format!("/api/collections/people/records/{gone}"),
            None,
            None,
        )
        .await;
    assert_eq!(reply.status, 204);
    server
        .json(
            "POST",
            &format!("/api/collections/people/records/{gone}/redact"),
            json!({"fields": ["bio"]}),
            Some(&admin),
            200,
        )
        .await;
    assert!(files_holding(server.state.engine.dir(), "GoneBioQx").is_empty());
    let trash = server
        .json(
            "GET",
            "/api/collections/people/trash",
            json!({}),
            Some(&admin),
            200,
        )
        .await;
    assert_eq!(trash["items"][0]["record"]["bio"], json!(""));
}
