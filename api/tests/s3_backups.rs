//! Backups in S3 (`settings.backups.s3`) against a real S3 server (moto, `s3_support`):
//! created and uploaded backups land at the bucket's root (nothing stays in
//! `pb_data/backups/`), are listed, downloaded with a superuser file token, restored (staged
//! from the bucket) and deleted; an unreachable bucket gives the reference's 400s quickly.

mod common;
mod s3_support;

use common::{start, TestServer};
use s3_support::{dead_endpoint, multipart, s3_block, Moto};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn patch_settings(server: &TestServer, patch: Value) {
    let reply = server
        .send(
            "PATCH",
            "/api/settings",
            Some(&patch.to_string()),
            Some(&server.admin),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

fn local_backups(server: &TestServer) -> Vec<String> {
    std::fs::read_dir(server.state.engine.dir().join("backups"))
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn file_token(server: &TestServer) -> String {
    let reply = server
        .send("POST", "/api/files/token", None, Some(&server.admin))
        .await;
    reply.json["token"]
        .as_str()
        .expect("file token")
        .to_string()
}

#[tokio::test]
async fn backups_are_created_listed_downloaded_restored_and_deleted_in_s3() {
    let moto = Moto::start().await;
    moto.create_bucket("backups").await;
    let server = start().await;
    let admin = server.admin.clone();
    patch_settings(
        &server,
        json!({"backups": {"s3": s3_block(&moto.endpoint, "backups")}}),
    )
    .await;
    server
        .collection(
            json!({"name": "notes", "type": "base", "listRule": "", "createRule": "",
                           "fields": [{"name": "title", "type": "text"}]}),
        )
        .await;
    for title in ["one", "two"] {
        let created = server
            .send(
                "POST",
                "/api/collections/notes/records",
                Some(&json!({"title": title}).to_string()),
                None,
            )
            .await;
        assert_eq!(created.status, 200);
    }

    // Create: the archive goes to the bucket's root; no local copy stays.
    let created = server
        .send(
            "POST",
            "/api/backups",
            Some(r#"{"name":"first.zip"}"#),
            Some(&admin),
        )
        .await;
    assert_eq!(created.status, 204, "{}", created.text);
    let keys = moto.keys("backups").await;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].0, "first.zip");
    assert!(keys[0].1 > 0);
    assert!(
        !local_backups(&server)
            .iter()
            .any(|name| !name.starts_with('.')),
        "{:?}",
        local_backups(&server)
    );
    // The same name again: the reference's validation error.
    let again = server
        .send(
            "POST",
            "/api/backups",
            Some(r#"{"name":"first.zip"}"#),
            Some(&admin),
        )
        .await;
    assert_eq!(again.status, 400);

    // List: from the bucket.
    let list = server.send("GET", "/api/backups", None, Some(&admin)).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.json.as_array().map(Vec::len), Some(1));
    assert_eq!(list.json[0]["key"], "first.zip");
    assert_eq!(list.json[0]["size"], json!(keys[0].1));

    // Download with a file token: the bucket's bytes.
    let token = file_token(&server).await;
    let response = server
        .client
        .get(format!(
            "{}/api/backups/first.zip?token={token}",
            server.base
        ))
        .send()
        .await
        .expect("download");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/zip");
    let downloaded = response.bytes().await.expect("bytes").to_vec();
    let stored = moto
        .object("backups", "first.zip")
        .await
        .expect("in the bucket");
    assert!(downloaded == stored, "the download is the bucket's object");
    let no_token = server
        .client
        .get(format!("{}/api/backups/first.zip", server.base))
        .send()
        .await
        .expect("download");
    assert_eq!(no_token.status(), 403);
    let unknown = server
        .client
        .get(format!(
            "{}/api/backups/nope.zip?token={token}",
            server.base
        ))
        .send()
        .await
        .expect("download");
    assert_eq!(unknown.status(), 400);

    // Upload: a downloaded archive under a new name goes to the bucket too.
    let (content_type, body) = multipart(&[("file", Some("copy.zip"), &downloaded)]);
    let uploaded = server
        .client
        .post(format!("{}/api/backups/upload", server.base))
        .header("authorization", &admin)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("upload");
    assert_eq!(uploaded.status(), 204);
    let names: Vec<String> = moto
        .keys("backups")
        .await
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    assert_eq!(names, vec!["copy.zip".to_string(), "first.zip".to_string()]);
    assert!(!local_backups(&server)
        .iter()
        .any(|name| !name.starts_with('.')));

    // Restore from the bucket: staged for the next start, the fetched copy removed.
    let missing = server
        .send("POST", "/api/backups/nope.zip/restore", None, Some(&admin))
        .await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.json["message"], "Missing or invalid backup file.");
    let restored = server
        .send("POST", "/api/backups/first.zip/restore", None, Some(&admin))
        .await;
    assert_eq!(restored.status, 204, "{}", restored.text);
    let staged = server
        .state
        .engine
        .dir()
        .join(format!("{}.ready", engine::admin::PENDING_RESTORE));
    assert!(staged.is_dir(), "the restore is staged");
    assert!(
        local_backups(&server).is_empty()
            || !local_backups(&server)
                .iter()
                .any(|n| n.contains("first.zip"))
    );

    // Delete: gone from the bucket and the list; a missing key is no error (as S3).
    let deleted = server
        .send("DELETE", "/api/backups/first.zip", None, Some(&admin))
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    assert!(moto.object("backups", "first.zip").await.is_none());
    let list = server.send("GET", "/api/backups", None, Some(&admin)).await;
    assert_eq!(list.json.as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn an_unreachable_backups_bucket_gives_the_reference_400s_quickly() {
    let server = start().await;
    let admin = server.admin.clone();
    patch_settings(
        &server,
        json!({"backups": {"s3": s3_block(&dead_endpoint(), "backups")}}),
    )
    .await;
    let started = Instant::now();
    let list = server.send("GET", "/api/backups", None, Some(&admin)).await;
    assert_eq!(list.status, 400);
    assert!(list.json["message"]
        .as_str()
        .expect("message")
        .starts_with("Failed to retrieve backup items. Raw error: \n"));
    let created = server
        .send(
            "POST",
            "/api/backups",
            Some(r#"{"name":"x.zip"}"#),
            Some(&admin),
        )
        .await;
    assert_eq!(created.status, 400);
    let deleted = server
        .send("DELETE", "/api/backups/x.zip", None, Some(&admin))
        .await;
    assert_eq!(deleted.status, 400);
    assert!(deleted.json["message"]
        .as_str()
        .expect("message")
        .starts_with("Invalid or already deleted backup file. Raw error: \n"));
    let restore = server
        .send("POST", "/api/backups/x.zip/restore", None, Some(&admin))
        .await;
    assert_eq!(restore.status, 400);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        local_backups(&server).is_empty(),
        "{:?}",
        local_backups(&server)
    );
}
