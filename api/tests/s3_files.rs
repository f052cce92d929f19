//! Record files in S3 (`settings.s3`) against a real S3 server (moto, `s3_support`): uploads
//! land at the reference's keys and nothing lands locally, downloads (whole, range, HEAD,
//! conditional), thumbnails cached in the bucket, the secret never returned, local files not
//! moved when S3 is switched on (404, as the reference), `POST /api/settings/test/s3`, and a
//! bucket that cannot be reached (404 on downloads, 400 on uploads with nothing committed,
//! never a hang).

mod common;
mod s3_support;

use common::{start, Reply, TestServer};
use s3_support::{dead_endpoint, multipart, png, s3_block, Moto, Part};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn send_raw(
    server: &TestServer,
    method: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> Reply {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = server
        .client
        .request(method, format!("{}{}", server.base, path))
        .header("content-type", content_type)
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request");
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

async fn upload(server: &TestServer, method: &str, path: &str, parts: &[Part<'_>]) -> Reply {
    let (content_type, body) = multipart(parts);
    send_raw(server, method, path, &content_type, body, &[]).await
}

async fn get(server: &TestServer, path: &str, headers: &[(&str, &str)]) -> Reply {
    send_raw(server, "GET", path, "text/plain", Vec::new(), headers).await
}

async fn patch_settings(server: &TestServer, patch: Value) -> Reply {
    server
        .send(
            "PATCH",
            "/api/settings",
            Some(&patch.to_string()),
            Some(&server.admin),
        )
        .await
}

async fn docs(server: &TestServer) -> String {
    let collection = server
        .collection(json!({
            "name": "docs", "type": "base",
            "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
            "fields": [
                {"name": "title", "type": "text"},
                {"name": "file", "type": "file", "maxSelect": 5, "maxSize": 10_000_000,
                 "thumbs": ["50x50"]}
            ]
        }))
        .await;
    collection["id"].as_str().expect("id").to_string()
}

fn local_storage_files(server: &TestServer) -> usize {
    fn count(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|entry| {
                        if entry.path().is_dir() {
                            count(&entry.path())
                        } else {
                            1
                        }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    count(&server.state.engine.dir().join("storage"))
}

async fn s3_server() -> (Moto, TestServer, String) {
    let moto = Moto::start().await;
    moto.create_bucket("files").await;
    let server = start().await;
    let collection_id = docs(&server).await;
    let reply = patch_settings(&server, json!({"s3": s3_block(&moto.endpoint, "files")})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    (moto, server, collection_id)
}

#[tokio::test]
async fn files_are_stored_and_served_from_s3() {
    let (moto, server, collection_id) = s3_server().await;
    // The secret is write-only, as on the reference.
    let settings = server
        .send("GET", "/api/settings", None, Some(&server.admin))
        .await;
    assert_eq!(settings.json["s3"]["enabled"], true);
    assert_eq!(settings.json["s3"]["bucket"], "files");
    assert!(settings.json["s3"].get("secret").is_none());
    assert!(!settings.text.contains("test-secret-do-not-leak"));

    let picture = png(200, 120);
    let created = upload(
        &server,
        "POST",
        "/api/collections/docs/records",
        &[
            ("title", None, b"a"),
            ("file", Some("hello.txt"), b"hello world\n"),
            ("file", Some("red.png"), &picture),
        ],
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.text);
    let id = created.json["id"].as_str().expect("id").to_string();
    let names: Vec<String> = created.json["file"]
        .as_array()
        .expect("names")
        .iter()
        .map(|name| name.as_str().expect("name").to_string())
        .collect();
    assert_eq!(names.len(), 2);
    let (text_name, png_name) = (&names[0], &names[1]);

    // In the bucket at the reference's keys, nothing in local storage.
    let keys = moto.keys("files").await;
    assert_eq!(
        keys,
        vec![
            (format!("{collection_id}/{id}/{text_name}"), 12),
            (
                format!("{collection_id}/{id}/{png_name}"),
                picture.len() as u64
            ),
        ]
    );
    assert_eq!(local_storage_files(&server), 0);
    let in_bucket = moto
        .object("files", &format!("{collection_id}/{id}/{png_name}"))
        .await
        .expect("object");
    assert!(in_bucket == picture, "the bucket holds the uploaded bytes");

    // Whole file, with the reference's headers.
    let url = format!("/api/files/docs/{id}/{text_name}");
    let whole = get(&server, &url, &[]).await;
    assert_eq!(whole.status, 200);
    assert_eq!(whole.text, "hello world\n");
    assert_eq!(whole.headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(
        whole.headers["content-disposition"],
        format!("attachment; filename=\"{text_name}\"").as_str()
    );
    assert_eq!(whole.headers["accept-ranges"], "bytes");
    assert_eq!(
        whole.headers["cache-control"],
        "max-age=2592000, stale-while-revalidate=86400"
    );
    // Range, suffix range, unsatisfiable range.
    let part = get(&server, &url, &[("range", "bytes=2-5")]).await;
    assert_eq!(part.status, 206);
    assert_eq!(part.text, "llo ");
    assert_eq!(part.headers["content-range"], "bytes 2-5/12");
    let suffix = get(&server, &url, &[("range", "bytes=-3")]).await;
    assert_eq!((suffix.status, suffix.text.as_str()), (206, "ld\n"));
    let bad = get(&server, &url, &[("range", "bytes=100-200")]).await;
    assert_eq!(bad.status, 416);
    // Conditional request.
    let etag = whole.headers["etag"].to_str().expect("etag").to_string();
    let cached = get(&server, &url, &[("if-none-match", &etag)]).await;
    assert_eq!(cached.status, 304);
    // HEAD: the length, no body.
    let head = send_raw(&server, "HEAD", &url, "text/plain", Vec::new(), &[]).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.headers["content-length"], "12");
    assert!(head.text.is_empty());
    // The image inline; a file the record does not hold is 404.
    let image = get(&server, &format!("/api/files/docs/{id}/{png_name}"), &[]).await;
    assert_eq!(image.status, 200);
    assert_eq!(image.headers["content-type"], "image/png");
    assert_eq!(
        get(&server, &format!("/api/files/docs/{id}/other.txt"), &[])
            .await
            .status,
        404
    );

    // A thumbnail: generated once, cached in the bucket at the reference's key.
    let thumb_url = format!("/api/files/docs/{id}/{png_name}?thumb=50x50");
    let (first, second) =
        tokio::join!(get(&server, &thumb_url, &[]), get(&server, &thumb_url, &[]));
    for thumb in [&first, &second] {
        assert_eq!(thumb.status, 200);
        assert_eq!(
            thumb.headers["content-disposition"],
            format!("inline; filename=\"50x50_{png_name}\"").as_str()
        );
    }
    let thumb_key = format!("{collection_id}/{id}/thumbs_{png_name}/50x50_{png_name}");
    let stored = moto
        .object("files", &thumb_key)
        .await
        .expect("thumb cached");
    let decoded = image::load_from_memory(&stored).expect("decodes");
    assert_eq!((decoded.width(), decoded.height()), (50, 50));
    let served = reqwest::get(format!("{}{thumb_url}", server.base))
        .await
        .expect("thumb")
        .bytes()
        .await
        .expect("bytes");
    assert!(served.to_vec() == stored, "the cached thumbnail is served");
    // A size the field does not offer serves the original.
    let original = get(
        &server,
        &format!("/api/files/docs/{id}/{png_name}?thumb=30x30"),
        &[],
    )
    .await;
    assert_eq!(
        original.headers["content-length"],
        picture.len().to_string().as_str()
    );

    // Update: append a file, remove one; removed files leave the API (their bytes stay).
    let updated = upload(
        &server,
        "PATCH",
        &format!("/api/collections/docs/records/{id}"),
        &[
            ("file+", Some("more.txt"), b"more"),
            ("file-", None, text_name.as_bytes()),
        ],
    )
    .await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(get(&server, &url, &[]).await.status, 404);
    let more = updated.json["file"][1].as_str().expect("more").to_string();
    assert_eq!(
        get(&server, &format!("/api/files/docs/{id}/{more}"), &[])
            .await
            .text,
        "more"
    );
    assert!(moto
        .object("files", &format!("{collection_id}/{id}/{text_name}"))
        .await
        .is_some());

    // Listing for retention/GC sees every object of the record, thumbnails included.
    let storage = api::files::storage::Storage::current(&server.state).expect("storage");
    let listed = storage
        .list(&format!("{collection_id}/{id}/"))
        .await
        .expect("list");
    assert_eq!(listed.len(), 4, "{listed:?}");
    storage.delete(&thumb_key).await.expect("delete");
    assert!(moto.object("files", &thumb_key).await.is_none());
}

#[tokio::test]
async fn local_files_stay_local_when_s3_is_switched_on() {
    let moto = Moto::start().await;
    moto.create_bucket("files").await;
    let server = start().await;
    docs(&server).await;
    let created = upload(
        &server,
        "POST",
        "/api/collections/docs/records",
        &[("file", Some("local.txt"), b"local bytes")],
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.text);
    let url = format!(
        "/api/files/docs/{}/{}",
        created.json["id"].as_str().expect("id"),
        created.json["file"][0].as_str().expect("name")
    );
    assert_eq!(get(&server, &url, &[]).await.text, "local bytes");
    assert_eq!(local_storage_files(&server), 1);

    // As on the reference: files are not moved; with S3 on they are looked up in the bucket.
    patch_settings(&server, json!({"s3": s3_block(&moto.endpoint, "files")})).await;
    assert_eq!(get(&server, &url, &[]).await.status, 404);
    assert!(moto.keys("files").await.is_empty());
    assert_eq!(local_storage_files(&server), 1);
    // And back.
    patch_settings(&server, json!({"s3": {"enabled": false}})).await;
    assert_eq!(get(&server, &url, &[]).await.text, "local bytes");
}

#[tokio::test]
async fn test_s3_endpoint_answers_as_the_reference() {
    let moto = Moto::start().await;
    moto.create_bucket("files").await;
    moto.create_bucket("backups").await;
    let server = start().await;
    let test = |body: &'static str, token: Option<String>| {
        let server = &server;
        async move {
            server
                .send(
                    "POST",
                    "/api/settings/test/s3",
                    Some(body),
                    token.as_deref(),
                )
                .await
        }
    };
    let admin = Some(server.admin.clone());
    // Superusers only.
    assert_eq!(test(r#"{"filesystem":"storage"}"#, None).await.status, 401);
    // Validation.
    let blank = test("{}", admin.clone()).await;
    assert_eq!(blank.status, 400);
    assert_eq!(
        blank.json,
        json!({"data":{"filesystem":{"code":"validation_required","message":"Cannot be blank."}},
               "message":"Failed to test the S3 filesystem.","status":400})
    );
    let invalid = test(r#"{"filesystem":"x"}"#, admin.clone()).await;
    assert_eq!(
        invalid.json["data"]["filesystem"]["code"],
        "validation_in_invalid"
    );
    // Not enabled.
    for filesystem in ["storage", "backups"] {
        let body = format!(r#"{{"filesystem":"{filesystem}"}}"#);
        let reply = server
            .send(
                "POST",
                "/api/settings/test/s3",
                Some(&body),
                admin.as_deref(),
            )
            .await;
        assert_eq!(reply.status, 400);
        assert_eq!(
            reply.json["message"],
            "Failed to test the S3 filesystem. Raw error: \nS3 storage filesystem is not enabled."
        );
    }
    // Working buckets: 204, and the test object is gone afterwards.
    patch_settings(
        &server,
        json!({"s3": s3_block(&moto.endpoint, "files"),
               "backups": {"s3": s3_block(&moto.endpoint, "backups")}}),
    )
    .await;
    assert_eq!(
        test(r#"{"filesystem":"storage"}"#, admin.clone())
            .await
            .status,
        204
    );
    assert_eq!(
        test(r#"{"filesystem":"backups"}"#, admin.clone())
            .await
            .status,
        204
    );
    assert!(moto.keys("files").await.is_empty());
    assert!(moto.keys("backups").await.is_empty());
    // A missing bucket, then an endpoint nothing listens on: 400 with the cause, quickly.
    patch_settings(&server, json!({"s3": {"bucket": "missing"}})).await;
    let missing = test(r#"{"filesystem":"storage"}"#, admin.clone()).await;
    assert_eq!(missing.status, 400);
    let message = missing.json["message"].as_str().expect("message");
    assert!(
        message.starts_with("Failed to test the S3 filesystem. Raw error: \nfailed to upload a test file: [key: pb_settings_test_"),
        "{message}"
    );
    assert!(!missing.text.contains("test-secret-do-not-leak"));
    patch_settings(
        &server,
        json!({"s3": {"bucket": "files", "endpoint": dead_endpoint()}}),
    )
    .await;
    let started = Instant::now();
    let dead = test(r#"{"filesystem":"storage"}"#, admin.clone()).await;
    assert_eq!(dead.status, 400, "{}", dead.text);
    assert!(dead.json["message"]
        .as_str()
        .expect("message")
        .starts_with("Failed to test the S3 filesystem. Raw error: \n"));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_unreachable_bucket_is_404_on_download_and_400_on_upload_with_nothing_committed() {
    let (moto, server, _) = s3_server().await;
    let created = upload(
        &server,
        "POST",
        "/api/collections/docs/records",
        &[("title", None, b"kept"), ("file", Some("a.txt"), b"abc")],
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.text);
    let id = created.json["id"].as_str().expect("id").to_string();
    let url = format!(
        "/api/files/docs/{id}/{}",
        created.json["file"][0].as_str().expect("name")
    );
    assert_eq!(get(&server, &url, &[]).await.text, "abc");
    drop(moto);
    patch_settings(&server, json!({"s3": {"endpoint": dead_endpoint()}})).await;

    let started = Instant::now();
    assert_eq!(get(&server, &url, &[]).await.status, 404);
    let refused = upload(
        &server,
        "POST",
        "/api/collections/docs/records",
        &[("title", None, b"lost"), ("file", Some("b.txt"), b"def")],
    )
    .await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert_eq!(refused.json["message"], "Failed to create record.");
    let refused_update = upload(
        &server,
        "PATCH",
        &format!("/api/collections/docs/records/{id}"),
        &[
            ("title", None, b"changed"),
            ("file+", Some("c.txt"), b"ghi"),
        ],
    )
    .await;
    assert_eq!(refused_update.status, 400, "{}", refused_update.text);
    assert_eq!(refused_update.json["message"], "Failed to update record.");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    // Nothing committed: one record, unchanged; no temp upload left behind.
    let list = server
        .send("GET", "/api/collections/docs/records", None, None)
        .await;
    assert_eq!(list.json["totalItems"], 1);
    assert_eq!(list.json["items"][0]["title"], "kept");
    assert_eq!(
        list.json["items"][0]["file"].as_array().map(Vec::len),
        Some(1)
    );
    let tmp = server.state.engine.dir().join(".tmp-uploads");
    let left = std::fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "temp uploads are dropped");
    // A record write without files still works while the bucket is away.
    let plain = server
        .send(
            "POST",
            "/api/collections/docs/records",
            Some(r#"{"title":"no files"}"#),
            None,
        )
        .await;
    assert_eq!(plain.status, 200, "{}", plain.text);
}
