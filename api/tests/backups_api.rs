//! The backups API and record history, end to end over HTTP.
//!
//! Round trip: records are written, a backup is created (also one at an earlier seq through the
//! `at` extension), listed, downloaded with a token, uploaded back under a new name, restored
//! (staged for the next start) and deleted; the staged data dir holds the state at the
//! backup's point. History lists every version of a record with seq, time, action and actor.
//! Bad input (names, restore points, non-archives, unknown keys, missing auth) gets 400/401/403
//! and changes nothing. One test function: backups are one-at-a-time per process.

mod common;

use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backups_round_trip_and_history() {
    let server = common::start().await;
    let admin = server.admin.clone();
    server
        .collection(
            json!({"name": "notes", "type": "base", "fields": [{"name": "text", "type": "text"}],
            "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": ""}),
        )
        .await;
    let mut ids = Vec::new();
    for index in 0..5 {
        let record = server
            .json(
                "POST",
                "/api/collections/notes/records",
                json!({"text": format!("note {index}")}),
                Some(&admin),
                200,
            )
            .await;
        ids.push(record["id"].as_str().expect("id").to_string());
    }
    let seq_after_five = server.state.engine.last_seq();
    server
        .json(
            "PATCH",
            &format!("/api/collections/notes/records/{}", ids[0]),
            json!({"text": "edited"}),
            Some(&admin),
            200,
        )
        .await;
    server
        .send(
            "DELETE",
            &format!("/api/collections/notes/records/{}", ids[1]),
            None,
            Some(&admin),
        )
        .await;

    // History.
    let history = server
        .json(
            "GET",
            &format!("/api/collections/notes/records/{}/history", ids[0]),
            Value::Null,
            Some(&admin),
            200,
        )
        .await;
    let items = history["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{history}");
    assert_eq!(items[0]["action"], "create");
    assert_eq!(items[1]["action"], "update");
    assert_eq!(items[1]["record"]["text"], "edited");
    assert_eq!(items[0]["actor"]["type"], "superuser");
    assert!(items[0]["seq"].as_u64() < items[1]["seq"].as_u64());
    let deleted = server
        .json(
            "GET",
            &format!("/api/collections/notes/records/{}/history", ids[1]),
            Value::Null,
            Some(&admin),
            200,
        )
        .await;
    assert_eq!(deleted["items"][1]["action"], "delete");
    assert_eq!(
        server
            .send(
                "GET",
                &format!("/api/collections/notes/records/{}/history", ids[0]),
                None,
                None
            )
            .await
            .status,
        401
    );
    assert_eq!(
        server
            .send(
                "GET",
                "/api/collections/nope/records/x/history",
                None,
                Some(&admin)
            )
            .await
            .status,
        404
    );

    // Create, validate.
    assert_eq!(
        server.send("GET", "/api/backups", None, None).await.status,
        401
    );
    let bad = server
        .send(
            "POST",
            "/api/backups",
            Some(r#"{"name":"Bad Name.zip"}"#),
            Some(&admin),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.text.contains("validation_match_invalid"),
        "{}",
        bad.text
    );
    let beyond = server
        .send(
            "POST",
            "/api/backups",
            Some(&json!({"name": "x.zip", "at": 1_000_000}).to_string()),
            Some(&admin),
        )
        .await;
    assert_eq!(beyond.status, 400, "{}", beyond.text);
    let before_first = server
        .send(
            "POST",
            "/api/backups",
            Some(r#"{"name":"y.zip","at":"2001-01-01T00:00:00Z"}"#),
            Some(&admin),
        )
        .await;
    assert_eq!(before_first.status, 400, "{}", before_first.text);
    assert!(
        before_first.text.contains("before the first commit"),
        "{}",
        before_first.text
    );
    server
        .json(
            "POST",
            "/api/backups",
            json!({"name": "full.zip"}),
            Some(&admin),
            204,
        )
        .await;
    server
        .json(
            "POST",
            "/api/backups",
            json!({"name": "early.zip", "at": seq_after_five}),
            Some(&admin),
            204,
        )
        .await;
    server
        .json("POST", "/api/backups", json!({}), Some(&admin), 204)
        .await;
    let list = server
        .json("GET", "/api/backups", Value::Null, Some(&admin), 200)
        .await;
    let keys: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|item| item["key"].as_str())
        .collect();
    assert!(
        keys.contains(&"full.zip") && keys.contains(&"early.zip"),
        "{list}"
    );
    assert!(
        keys.iter().any(|key| key.starts_with("pb_backup_")),
        "{list}"
    );
    assert!(list[0]["size"].as_u64() > Some(0));

    // Download: needs a superuser *file* token in `?token=`; an auth token is refused.
    let forbidden = server
        .send("GET", "/api/backups/full.zip", None, None)
        .await;
    assert_eq!(forbidden.status, 403);
    let with_auth_token = server
        .client
        .get(format!(
            "{}/api/backups/early.zip?token={admin}",
            server.base
        ))
        .send()
        .await
        .expect("download with an auth token");
    assert_eq!(with_auth_token.status().as_u16(), 403);
    let file_token = server
        .json("POST", "/api/files/token", Value::Null, Some(&admin), 200)
        .await;
    let file_token = file_token["token"]
        .as_str()
        .expect("file token")
        .to_string();
    let response = server
        .client
        .get(format!(
            "{}/api/backups/early.zip?token={file_token}",
            server.base
        ))
        .send()
        .await
        .expect("download");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "application/zip");
    assert!(response.headers()["content-disposition"]
        .to_str()
        .unwrap_or("")
        .contains("early.zip"));
    let archive = response.bytes().await.expect("bytes");

    // Upload it back under a new name; a non-archive is refused.
    let upload = |name: &str, bytes: Vec<u8>| {
        let boundary = "pocketlogboundary7f3a";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/zip\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(&bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        server
            .client
            .post(format!("{}/api/backups/upload", server.base))
            .header("authorization", &admin)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
    };
    assert_eq!(
        upload("copy.zip", archive.to_vec())
            .await
            .expect("upload")
            .status()
            .as_u16(),
        204
    );
    let text = upload("hello.txt", b"hello".to_vec())
        .await
        .expect("upload");
    assert_eq!(text.status().as_u16(), 400);
    assert!(text
        .text()
        .await
        .unwrap_or_default()
        .contains("validation_invalid_mime_type"));
    let fake = upload("fake.zip", b"PK\x03\x04 not really".to_vec())
        .await
        .expect("upload");
    assert_eq!(fake.status().as_u16(), 400);

    // Delete.
    assert_eq!(
        server
            .send("DELETE", "/api/backups/full.zip", None, Some(&admin))
            .await
            .status,
        204
    );
    let again = server
        .send("DELETE", "/api/backups/full.zip", None, Some(&admin))
        .await;
    assert_eq!(again.status, 400);
    assert!(again
        .text
        .contains("Invalid or already deleted backup file"));

    // Restore: unknown key, then a real one (staged for the next start).
    let missing = server
        .send("POST", "/api/backups/nope.zip/restore", None, Some(&admin))
        .await;
    assert_eq!(missing.status, 400);
    assert!(missing.text.contains("Missing or invalid backup file"));
    let data_dir = server.state.engine.dir().to_path_buf();
    assert_eq!(
        server
            .send("POST", "/api/backups/copy.zip/restore", None, Some(&admin))
            .await
            .status,
        204
    );
    let staged = data_dir.join(format!("{}.ready", engine::admin::PENDING_RESTORE));
    assert!(staged.is_dir(), "the restore is staged");
    // The staged dir holds the state at the early backup's point: five notes, none edited.
    let check = tempfile::tempdir().expect("tempdir");
    let copy = check.path().join("copy");
    engine::admin::restore_dir(
        &staged,
        &copy,
        engine::admin::RestoreOptions::default(),
        &mut |_| {},
    )
    .expect("copy");
    let (restored, _) = engine::Engine::open(&copy, engine::EngineConfig::default()).expect("open");
    assert_eq!(restored.last_seq(), seq_after_five);
    let rows = restored
        .read(|conn| conn.query("SELECT text FROM notes ORDER BY text", &[]))
        .expect("read");
    let texts: Vec<String> = rows
        .rows
        .iter()
        .filter_map(|row| row[0].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        texts,
        (0..5)
            .map(|index| format!("note {index}"))
            .collect::<Vec<_>>()
    );
}
