//! Record files in S3 (moto, `s3_support`) and their lifecycle outside the happy path:
//! a refused write leaves no key in the bucket (its files were uploaded before the command and
//! are deleted after it), a create without an id stores its files under the id it gets,
//! compaction deletes a key (and its thumbnail) once no retained restore point needs it and
//! keeps the keys retained points need, and small writes do not queue behind a large S3
//! upload (the upload runs before its command, not on the writer thread).

mod common;
mod s3_support;

use api::files::gc::BucketFiles;
use common::{start, Reply, TestServer};
use s3_support::{multipart, png, s3_block, Moto, Part};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BUCKET: &str = "files";

async fn upload(server: &TestServer, method: &str, path: &str, parts: &[Part<'_>]) -> Reply {
    let (content_type, body) = multipart(parts);
    let response = server
        .client
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
            format!("{}{}", server.base, path),
        )
        .header("content-type", content_type)
        .header("authorization", &server.admin)
        .body(body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body");
    Reply {
        status,
        json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        text: String::from_utf8_lossy(&bytes).into_owned(),
        headers,
    }
}

/// moto with a bucket, a server whose files go there, and a `docs` collection (its id).
async fn s3_server() -> (Moto, TestServer, String) {
    let moto = Moto::start().await;
    moto.create_bucket(BUCKET).await;
    let server = start().await;
    let collection = server
        .collection(json!({
            "name": "docs", "type": "base",
            "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
            "fields": [
                {"name": "title", "type": "text", "max": 10},
                {"name": "file", "type": "file", "maxSelect": 5, "maxSize": 100_000_000,
                 "thumbs": ["50x50"]}
            ]
        }))
        .await;
    let reply = server
        .send(
            "PATCH",
            "/api/settings",
            Some(&json!({"s3": s3_block(&moto.endpoint, BUCKET)}).to_string()),
            Some(&server.admin),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let id = collection["id"].as_str().expect("id").to_string();
    (moto, server, id)
}

fn keys_of(keys: &[(String, u64)]) -> Vec<String> {
    keys.iter().map(|(key, _)| key.clone()).collect()
}

fn file_key(collection_id: &str, record: &Value, index: usize) -> String {
    format!(
        "{collection_id}/{}/{}",
        record["id"].as_str().expect("id"),
        record["file"][index].as_str().expect("file name")
    )
}

#[tokio::test]
async fn a_refused_write_leaves_no_key_and_a_create_gets_its_files_under_its_id() {
    let (moto, server, collection_id) = s3_server().await;
    let records = "/api/collections/docs/records";
    let created = upload(
        &server,
        "POST",
        records,
        &[
            ("title", None, b"ok"),
            ("file", Some("a.txt"), b"first file"),
        ],
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.text);
    let first_key = file_key(&collection_id, &created.json, 0);
    let before = keys_of(&moto.keys(BUCKET).await);
    assert_eq!(
        before,
        std::slice::from_ref(&first_key),
        "the file is under the record's id"
    );

    // A create refused by validation (title too long): its pre-uploaded file is deleted.
    let refused = upload(
        &server,
        "POST",
        records,
        &[
            ("title", None, b"far too long a title"),
            ("file", Some("b.txt"), b"refused file"),
        ],
    )
    .await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert_eq!(
        refused.json["data"]["title"]["code"],
        "validation_max_text_constraint"
    );
    assert_eq!(keys_of(&moto.keys(BUCKET).await), before, "no key left");

    // An update refused the same way.
    let id = created.json["id"].as_str().expect("id");
    let path = format!("{records}/{id}");
    let refused = upload(
        &server,
        "PATCH",
        &path,
        &[
            ("title", None, b"far too long a title"),
            ("file+", Some("c.txt"), b"refused too"),
        ],
    )
    .await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert_eq!(keys_of(&moto.keys(BUCKET).await), before, "no key left");

    // An update of a record that does not exist uploads nothing.
    let missing = upload(
        &server,
        "PATCH",
        &format!("{records}/nosuchrecord123"),
        &[("file+", Some("d.txt"), b"nowhere")],
    )
    .await;
    assert_eq!(missing.status, 404, "{}", missing.text);
    assert_eq!(keys_of(&moto.keys(BUCKET).await), before, "no key left");

    // A good update adds its key; a create with the client's id stores under that id.
    let updated = upload(
        &server,
        "PATCH",
        &path,
        &[("file+", Some("e.txt"), b"added")],
    )
    .await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    let second_key = file_key(&collection_id, &updated.json, 1);
    let given = upload(
        &server,
        "POST",
        records,
        &[
            ("id", None, b"givenid12345678"),
            ("file", Some("f.txt"), b"client id"),
        ],
    )
    .await;
    assert_eq!(given.status, 200, "{}", given.text);
    assert_eq!(given.json["id"], "givenid12345678");
    let given_key = file_key(&collection_id, &given.json, 0);
    assert!(given_key.starts_with(&format!("{collection_id}/givenid12345678/")));
    let mut expected = vec![first_key, second_key, given_key.clone()];
    expected.sort();
    assert_eq!(keys_of(&moto.keys(BUCKET).await), expected);
    assert_eq!(
        moto.object(BUCKET, &given_key).await.as_deref(),
        Some(&b"client id"[..])
    );
    // A duplicate id is refused after the upload: the key it uploaded is deleted.
    let duplicate = upload(
        &server,
        "POST",
        records,
        &[
            ("id", None, b"givenid12345678"),
            ("file", Some("g.txt"), b"duplicate"),
        ],
    )
    .await;
    assert_eq!(duplicate.status, 400, "{}", duplicate.text);
    assert_eq!(keys_of(&moto.keys(BUCKET).await), expected);
}

#[tokio::test]
async fn compaction_deletes_an_s3_key_and_its_thumb_once_no_retained_point_needs_it() {
    let (moto, server, collection_id) = s3_server().await;
    let records = "/api/collections/docs/records";
    let image = png(200, 100);
    let kept = upload(&server, "POST", records, &[("file", Some("k.png"), &image)]).await;
    assert_eq!(kept.status, 200, "{}", kept.text);
    let gone = upload(&server, "POST", records, &[("file", Some("g.png"), &image)]).await;
    assert_eq!(gone.status, 200, "{}", gone.text);
    let (kept_key, gone_key) = (
        file_key(&collection_id, &kept.json, 0),
        file_key(&collection_id, &gone.json, 0),
    );
    // A thumbnail of the file that goes (cached in the bucket).
    let gone_id = gone.json["id"].as_str().expect("id");
    let gone_name = gone.json["file"][0].as_str().expect("name");
    let thumb = server
        .send(
            "GET",
            &format!("/api/files/docs/{gone_id}/{gone_name}?thumb=50x50"),
            None,
            None,
        )
        .await;
    assert_eq!(thumb.status, 200);
    let thumb_key = format!("{collection_id}/{gone_id}/thumbs_{gone_name}/50x50_{gone_name}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !keys_of(&moto.keys(BUCKET).await).contains(&thumb_key) {
        assert!(
            Instant::now() < deadline,
            "the thumbnail is cached in the bucket"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deleted = server
        .send(
            "DELETE",
            &format!("{records}/{gone_id}"),
            None,
            Some(&server.admin),
        )
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    let all = keys_of(&moto.keys(BUCKET).await);
    assert_eq!(all.len(), 3, "{all:?}");

    let compact = |retention: engine::Retention| {
        let state = Arc::clone(&server.state);
        async move {
            tokio::task::spawn_blocking(move || state.engine.compact(retention))
                .await
                .expect("join")
                .expect("compact")
        }
    };
    // The sweep of fresh objects (S3 objects cannot be aged).
    server
        .state
        .engine
        .set_external_files(Arc::new(BucketFiles::with_grace(&server.state, 0)));
    // The whole log is retained: the deleted record's file is needed by its restore points.
    let report = compact(engine::Retention::Commits(1_000)).await;
    assert_eq!(report.files_removed, 0);
    assert_eq!(
        keys_of(&moto.keys(BUCKET).await),
        all,
        "retained points keep it"
    );

    // Compaction's own grace period keeps a young object even when nothing needs it.
    server
        .state
        .engine
        .set_external_files(Arc::new(BucketFiles::new(&server.state)));
    let report = compact(engine::Retention::Commits(0)).await;
    assert_eq!(report.files_removed, 0);
    assert_eq!(
        keys_of(&moto.keys(BUCKET).await),
        all,
        "younger than the grace"
    );

    // Past the grace, a compaction past the delete removes the key and its thumbnail.
    server
        .state
        .engine
        .set_external_files(Arc::new(BucketFiles::with_grace(&server.state, 0)));
    let report = compact(engine::Retention::Commits(0)).await;
    assert_eq!(report.files_removed, 1);
    assert_eq!(
        keys_of(&moto.keys(BUCKET).await),
        std::slice::from_ref(&kept_key)
    );
    assert!(!keys_of(&moto.keys(BUCKET).await).contains(&gone_key));
    // The kept file still downloads.
    let kept_id = kept.json["id"].as_str().expect("id");
    let kept_name = kept.json["file"][0].as_str().expect("name");
    let download = server
        .send(
            "GET",
            &format!("/api/files/docs/{kept_id}/{kept_name}"),
            None,
            None,
        )
        .await;
    assert_eq!(download.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_writes_do_not_wait_for_a_large_s3_upload() {
    const LARGE: usize = 30 * 1024 * 1024;
    let (moto, server, _) = s3_server().await;
    let server = Arc::new(server);
    let large: Vec<u8> = (0..LARGE).map(|i| (i % 251) as u8).collect();
    let started = Instant::now();
    let big = {
        let server = Arc::clone(&server);
        tokio::spawn(async move {
            let reply = upload(
                &server,
                "POST",
                "/api/collections/docs/records",
                &[("file", Some("large.bin"), &large)],
            )
            .await;
            (reply, started.elapsed())
        })
    };
    // Small creates, one after another, for as long as the large upload runs.
    let mut latencies = Vec::new();
    while !big.is_finished() && latencies.len() < 2_000 {
        let at = Instant::now();
        let reply = server
            .send(
                "POST",
                "/api/collections/docs/records",
                Some(r#"{"title":"small"}"#),
                Some(&server.admin),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        latencies.push(at.elapsed());
    }
    let (reply, large_took) = big.await.expect("join");
    assert_eq!(reply.status, 200, "{}", reply.text);
    let slowest = latencies.iter().max().copied().unwrap_or_default();
    println!(
        "large upload {large_took:?}; {} small creates meanwhile, slowest {slowest:?}",
        latencies.len()
    );
    assert!(
        latencies.len() >= 20,
        "small creates completed while the large upload ran: {}",
        latencies.len()
    );
    assert!(
        slowest * 2 < large_took,
        "no small create waited for the large upload ({slowest:?} of {large_took:?})"
    );
    let key = format!(
        "{}/{}/{}",
        reply.json["collectionId"].as_str().expect("collection"),
        reply.json["id"].as_str().expect("id"),
        reply.json["file"][0].as_str().expect("name")
    );
    let stored = moto.object(BUCKET, &key).await.expect("stored");
    assert_eq!(stored.len(), LARGE);
    assert!(stored
        .iter()
        .enumerate()
        .all(|(i, b)| *b == (i % 251) as u8));
}
