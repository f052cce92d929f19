//! Files through the HTTP API (issue #15): multipart uploads, file field modifiers and
//! validation codes, local storage, serving (headers, ranges, conditional requests),
//! protected files with file tokens, and hostile bodies (each a clear 4xx, nothing written).

mod common;

use common::{start, start_with, Reply, TestServer};
use serde_json::{json, Value};
use std::path::PathBuf;

/// A part: (name, file name for file parts, content).
type Part<'a> = (&'a str, Option<&'a str>, &'a [u8]);

const BOUNDARY: &str = "----pocketlogTestBoundary7MA4YWxk";

fn multipart(parts: &[Part<'_>]) -> (String, Vec<u8>) {
    let mut body = Vec::new();
    for (name, file, content) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match file {
            Some(file) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={BOUNDARY}"), body)
}

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
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        json,
        text,
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

/// A 2x1 PNG (valid signature and header).
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x02\0\0\0\x01\x08\x02\0\0\0\x7b\x40\xe8\xdd\0\0\0\x0cIDATx\x9cc\xf8\xcf\xc0\0\0\x03\x01\x01\0\xc9\xfe\x92\xef\0\0\0\0IEND\xaeB`\x82";

async fn docs(server: &TestServer, view_rule: &str) -> String {
    let collection = server
        .collection(json!({
            "name": "docs", "type": "base",
            "listRule": "", "viewRule": view_rule, "createRule": "", "updateRule": "", "deleteRule": "",
            "fields": [
                {"name": "title", "type": "text"},
                {"name": "one", "type": "file", "maxSelect": 1, "maxSize": 1000},
                {"name": "many", "type": "file", "maxSelect": 3, "maxSize": 100000},
                {"name": "img", "type": "file", "maxSelect": 2, "mimeTypes": ["image/png", "image/jpeg"]},
                {"name": "prot", "type": "file", "maxSelect": 1, "protected": true}
            ]
        }))
        .await;
    collection["id"].as_str().expect("id").to_string()
}

fn data_dir(server: &TestServer) -> PathBuf {
    server.state.engine.dir().to_path_buf()
}

/// Every regular file under `dir` (recursively).
fn files_under(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn assert_stored_name(name: &str, prefix: &str, ext: &str) {
    let rest = name
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .and_then(|rest| rest.strip_suffix(ext))
        .unwrap_or_else(|| panic!("{name} is not {prefix}_<random>{ext}"));
    assert_eq!(rest.len(), 10, "{name}");
    assert!(
        rest.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
        "{name}"
    );
}

#[tokio::test]
async fn upload_then_download_with_the_reference_headers() {
    let server = start().await;
    let cid = docs(&server, "").await;
    let reply = upload(
        &server,
        "POST",
        "/api/collections/docs/records",
        &[
            ("title", None, b"hi"),
            ("one", Some("Second File.TXT"), b"hello world\n"),
            ("many", Some("red.png"), PNG),
            ("many", Some("../../etc/pa ss wd"), b"plain"),
            ("img", Some("red.png"), PNG),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let record = reply.json;
    assert_eq!(record["title"], "hi");
    let id = record["id"].as_str().expect("id").to_string();
    let one = record["one"].as_str().expect("one").to_string();
    assert_stored_name(&one, "second_file", ".TXT");
    let many: Vec<String> = serde_json::from_value(record["many"].clone()).expect("many");
    assert_eq!(many.len(), 2);
    assert_stored_name(&many[0], "red", ".png");
    assert_stored_name(&many[1], "pa_ss_wd", ".txt");
    assert_eq!(record["img"].as_array().expect("img").len(), 1);
    assert_eq!(record["prot"], "");

    // Stored in PocketBase's layout, nothing left in the temp dir.
    let stored = data_dir(&server).join("storage").join(&cid).join(&id);
    assert_eq!(
        std::fs::read(stored.join(&one)).expect("stored"),
        b"hello world\n"
    );
    assert_eq!(
        std::fs::read(stored.join(&many[1])).expect("stored"),
        b"plain"
    );
    assert!(files_under(&data_dir(&server).join(".tmp-uploads")).is_empty());

    // The commit says which files it added.
    let commits = server
        .state
        .engine
        .recent_commits(server.state.engine.last_seq(), 1)
        .expect("recent");
    let added: Vec<String> = commits
        .iter()
        .flat_map(|commit| commit.changes.iter())
        .filter_map(|change| match change {
            engine::Change::FilesChanged { added, removed, .. } => {
                assert!(removed.is_empty());
                Some(added.clone())
            }
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(added.len(), 4, "{added:?}");

    // Text file: attachment, sniffed type, PocketBase's cache and CSP headers.
    let file = get(&server, &format!("/api/files/docs/{id}/{one}"), &[]).await;
    assert_eq!(file.status, 200);
    assert_eq!(file.text, "hello world\n");
    let h = &file.headers;
    assert_eq!(h["content-type"], "text/plain; charset=utf-8");
    assert_eq!(
        h["content-disposition"],
        format!("attachment; filename=\"{one}\"").as_str()
    );
    assert_eq!(
        h["cache-control"],
        "max-age=2592000, stale-while-revalidate=86400"
    );
    assert_eq!(
        h["content-security-policy"],
        "default-src 'none'; media-src 'self'; style-src 'unsafe-inline'; sandbox"
    );
    assert_eq!(h["accept-ranges"], "bytes");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h.get("x-frame-options").is_none());
    assert!(h.get("last-modified").is_some());
    let etag = h["etag"].to_str().expect("etag").to_string();

    // By collection id too; images inline unless ?download=1.
    let png = get(&server, &format!("/api/files/{cid}/{id}/{}", many[0]), &[]).await;
    assert_eq!(png.status, 200);
    assert_eq!(png.headers["content-type"], "image/png");
    assert_eq!(
        png.headers["content-disposition"],
        format!("inline; filename=\"{}\"", many[0]).as_str()
    );
    let png = get(
        &server,
        &format!("/api/files/docs/{id}/{}?download=1", many[0]),
        &[],
    )
    .await;
    assert_eq!(
        png.headers["content-disposition"],
        format!("attachment; filename=\"{}\"", many[0]).as_str()
    );

    // Range, unsatisfiable range, conditional.
    let url = format!("/api/files/docs/{id}/{one}");
    let part = get(&server, &url, &[("range", "bytes=2-5")]).await;
    assert_eq!(part.status, 206);
    assert_eq!(part.text, "llo ");
    assert_eq!(part.headers["content-range"], "bytes 2-5/12");
    let part = get(&server, &url, &[("range", "bytes=-3")]).await;
    assert_eq!((part.status, part.text.as_str()), (206, "ld\n"));
    let bad = get(&server, &url, &[("range", "bytes=100-200")]).await;
    assert_eq!(bad.status, 416);
    assert_eq!(bad.headers["content-range"], "bytes */12");
    let cached = get(&server, &url, &[("if-none-match", &etag)]).await;
    assert_eq!(cached.status, 304);
    let head = send_raw(&server, "HEAD", &url, "text/plain", Vec::new(), &[]).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.headers["content-length"], "12");

    // Missing things are 404 envelopes.
    let missing = get(&server, &format!("/api/files/docs/{id}/nothere.txt"), &[]).await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.json["message"],
        "The requested resource wasn't found."
    );
    let missing = get(&server, &format!("/api/files/nope/{id}/{one}"), &[]).await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.json["message"],
        "Missing or invalid collection context."
    );
    let missing = get(
        &server,
        &format!("/api/files/docs/zzzzzzzzzzzzzzz/{one}"),
        &[],
    )
    .await;
    assert_eq!(missing.status, 404);
    // Traversal in the URL never leaves the record's directory.
    for path in [
        format!("/api/files/docs/{id}/..%2F..%2F..%2Fdata.db"),
        format!("/api/files/docs/{id}/%2E%2E"),
        format!("/api/files/docs/..%2F{id}/{one}"),
    ] {
        let reply = get(&server, &path, &[]).await;
        assert_eq!(reply.status, 404, "{path}");
    }
}

#[tokio::test]
async fn modifiers_replace_append_remove_and_validation_codes() {
    let server = start().await;
    let cid = docs(&server, "").await;
    let created = upload(
        &server,
        "POST",
        "/api/collections/docs/records",
        &[
            ("many", Some("aaa.txt"), b"aaa"),
            ("many", Some("bbb.txt"), b"bbb"),
        ],
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.text);
    let id = created.json["id"].as_str().expect("id").to_string();
    let url = format!("/api/collections/docs/records/{id}");
    let names = |reply: &Reply| -> Vec<String> {
        serde_json::from_value(reply.json["many"].clone()).expect("many")
    };
    let start_names = names(&created);

    // many+ appends, +many prepends.
    let appended = upload(
        &server,
        "PATCH",
        &url,
        &[("many+", Some("ccc.txt"), b"ccc")],
    )
    .await;
    assert_eq!(appended.status, 200, "{}", appended.text);
    let after = names(&appended);
    assert_eq!(after.len(), 3);
    assert_eq!(after[..2], start_names[..]);
    assert_stored_name(&after[2], "ccc", ".txt");

    // Over maxSelect.
    let over = upload(
        &server,
        "PATCH",
        &url,
        &[("+many", Some("ddd.txt"), b"ddd")],
    )
    .await;
    assert_eq!(over.status, 400);
    assert_eq!(
        over.json["data"]["many"]["code"],
        "validation_too_many_files"
    );
    assert_eq!(over.json["data"]["many"]["params"], json!({"maxSelect": 3}));

    // many- removes (unknown names ignored); the removed file is gone from the API at once,
    // its bytes stay.
    let removed = server
        .json(
            "PATCH",
            &url,
            json!({"many-": [after[0], "nothere.txt"]}),
            None,
            200,
        )
        .await;
    assert_eq!(removed["many"], json!([after[1], after[2]]));
    let gone = get(&server, &format!("/api/files/docs/{id}/{}", after[0]), &[]).await;
    assert_eq!(gone.status, 404);
    let stored = data_dir(&server).join("storage").join(&cid).join(&id);
    assert!(
        stored.join(&after[0]).exists(),
        "bytes are kept (retention)"
    );

    // A file part replaces, but existing names sent in the same body are kept.
    let replaced = upload(
        &server,
        "PATCH",
        &url,
        &[
            ("many", None, after[2].as_bytes()),
            ("many", Some("eee.txt"), b"eee"),
        ],
    )
    .await;
    assert_eq!(replaced.status, 200, "{}", replaced.text);
    let now = names(&replaced);
    assert_eq!(now.len(), 2);
    assert_eq!(now[0], after[2]);
    assert_stored_name(&now[1], "eee", ".txt");

    // Prepend works when there is room.
    let prepended = upload(
        &server,
        "PATCH",
        &url,
        &[("+many", Some("fff.txt"), b"fff")],
    )
    .await;
    assert_eq!(prepended.status, 200, "{}", prepended.text);
    let now = names(&prepended);
    assert_stored_name(&now[0], "fff", ".txt");

    // A name that is not stored on the record.
    let invalid = server
        .json(
            "PATCH",
            &url,
            json!({"many": ["nonexistent.txt", now[0]], "one": "x.txt"}),
            None,
            400,
        )
        .await;
    assert_eq!(invalid["data"]["many"]["code"], "validation_invalid_file");
    assert_eq!(
        invalid["data"]["many"]["message"],
        "Invalid new files: [nonexistent.txt]."
    );
    assert_eq!(
        invalid["data"]["many"]["params"],
        json!({"invalidFiles": ["nonexistent.txt"]})
    );
    assert_eq!(invalid["data"]["one"]["code"], "validation_invalid_file");

    // Keeping existing names by JSON, clearing with null / [].
    let kept = server
        .json("PATCH", &url, json!({"many": [now[1]]}), None, 200)
        .await;
    assert_eq!(kept["many"], json!([now[1]]));
    let cleared = server
        .json("PATCH", &url, json!({"many": null}), None, 200)
        .await;
    assert_eq!(cleared["many"], json!([]));

    // Single field: the last upload wins.
    let single = upload(
        &server,
        "PATCH",
        &url,
        &[
            ("one", Some("xxx.txt"), b"x"),
            ("one", Some("yyy.txt"), b"y"),
        ],
    )
    .await;
    assert_eq!(single.status, 200, "{}", single.text);
    assert_stored_name(single.json["one"].as_str().expect("one"), "yyy", ".txt");

    // Deleting the record drops its files from the API.
    let one = single.json["one"].as_str().expect("one").to_string();
    server.send("DELETE", &url, None, None).await;
    let gone = get(&server, &format!("/api/files/docs/{id}/{one}"), &[]).await;
    assert_eq!(gone.status, 404);
    let commits = server
        .state
        .engine
        .recent_commits(server.state.engine.last_seq(), 1)
        .expect("recent");
    let released = commits.iter().flat_map(|c| c.changes.iter()).any(|change| {
        matches!(change, engine::Change::FilesChanged { removed, .. } if removed.contains(&one))
    });
    assert!(released, "the delete's commit releases the record's files");
}

#[tokio::test]
async fn size_and_sniffed_mime_are_checked_and_nothing_is_written() {
    let server = start().await;
    let cid = docs(&server, "").await;
    let big = vec![b'x'; 2000];
    let reply = upload(
        &server,
        "POST",
        "/api/collections/docs/records",
        &[("one", Some("big.bin"), &big)],
    )
    .await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.json["data"]["one"]["code"],
        "validation_file_size_limit"
    );
    assert_eq!(
        reply.json["data"]["one"]["message"],
        "Failed to upload big.bin - the maximum allowed file size is 1000 bytes."
    );
    assert_eq!(
        reply.json["data"]["one"]["params"],
        json!({"file": "big.bin", "maxSize": 1000})
    );
    // A text file named .png (and claimed image/png by the part) is not a PNG.
    let reply = upload(
        &server,
        "POST",
        "/api/collections/docs/records",
        &[("img", Some("fake.png"), b"hello, I am text")],
    )
    .await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.json["data"]["img"]["code"],
        "validation_invalid_mime_type"
    );
    let message = reply.json["data"]["img"]["message"]
        .as_str()
        .expect("message");
    assert!(message.starts_with("\"fake_"), "{message}");
    assert!(
        message.ends_with(".png\" mime type must be one of: image/png, image/jpeg."),
        "{message}"
    );
    assert!(files_under(&data_dir(&server).join("storage").join(&cid)).is_empty());
    assert!(files_under(&data_dir(&server).join(".tmp-uploads")).is_empty());
}

#[tokio::test]
async fn protected_files_need_a_file_token_that_passes_the_view_rule() {
    let server = start().await;
    docs(&server, "@request.auth.id != \"\"").await;
    let created = upload(
        &server,
        "POST",
        "/api/collections/docs/records",
        &[("prot", Some("secret.txt"), b"top secret")],
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.text);
    let id = created.json["id"].as_str().expect("id");
    let name = created.json["prot"].as_str().expect("prot");
    let url = format!("/api/files/docs/{id}/{name}");
    assert_eq!(get(&server, &url, &[]).await.status, 404);
    // An auth token in the header does not count for files.
    let (_, user_token) = server.user("u@example.com", "password123").await;
    assert_eq!(
        get(&server, &url, &[("authorization", &user_token)])
            .await
            .status,
        404
    );
    assert_eq!(
        get(&server, &format!("{url}?token={user_token}"), &[])
            .await
            .status,
        404
    );
    assert_eq!(
        get(&server, &format!("{url}?token=abc"), &[]).await.status,
        404
    );
    let token = server
        .json(
            "POST",
            "/api/files/token",
            json!({}),
            Some(&user_token),
            200,
        )
        .await["token"]
        .as_str()
        .expect("token")
        .to_string();
    let file = get(&server, &format!("{url}?token={token}"), &[]).await;
    assert_eq!(file.status, 200);
    assert_eq!(file.text, "top secret");
    // Superuser file token.
    let admin = server.admin.clone();
    let token = server
        .json("POST", "/api/files/token", json!({}), Some(&admin), 200)
        .await["token"]
        .as_str()
        .expect("token")
        .to_string();
    assert_eq!(
        get(&server, &format!("{url}?token={token}"), &[])
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn multipart_without_files_works_where_json_does() {
    let server = start().await;
    server.user("form@example.com", "password123").await;
    // Sign in with FormData.
    let reply = upload(
        &server,
        "POST",
        "/api/collections/users/auth-with-password",
        &[
            ("identity", None, b"form@example.com"),
            ("password", None, b"password123"),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.json["token"].as_str().is_some());
    // A record without file fields, with @jsonPayload winning over a plain key.
    server
        .collection(
            json!({"name": "notes", "type": "base", "createRule": "", "updateRule": "",
            "fields": [{"name": "title", "type": "text"}, {"name": "n", "type": "number"},
                       {"name": "tags", "type": "json"}]}),
        )
        .await;
    let reply = upload(
        &server,
        "POST",
        "/api/collections/notes/records",
        &[
            ("title", None, b"plain"),
            ("n", None, b"42"),
            (
                "@jsonPayload",
                None,
                br#"{"title":"from payload","tags":["a","b"]}"#,
            ),
            ("stray", Some("x.txt"), b"ignored file"),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["title"], "from payload");
    assert_eq!(reply.json["n"], 42);
    assert_eq!(reply.json["tags"], json!(["a", "b"]));
    assert!(files_under(&data_dir(&server).join("storage")).is_empty());
    assert!(files_under(&data_dir(&server).join(".tmp-uploads")).is_empty());
    // A malformed multipart body is a 400 envelope.
    let reply = send_raw(
        &server,
        "POST",
        "/api/collections/users/auth-with-password",
        &format!("multipart/form-data; boundary={BOUNDARY}"),
        b"garbage".to_vec(),
        &[],
    )
    .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json["status"], 400);
}

#[tokio::test]
async fn hostile_bodies_get_a_clear_4xx_and_write_nothing() {
    let server = start_with(api::ServerOptions {
        body_limit_bytes: 256 * 1024,
        ..Default::default()
    })
    .await;
    let cid = docs(&server, "").await;
    let path = "/api/collections/docs/records";
    let nothing_written = |server: &TestServer| {
        assert!(files_under(&data_dir(server).join("storage").join(&cid)).is_empty());
        assert!(files_under(&data_dir(server).join(".tmp-uploads")).is_empty());
    };
    // 10,000 parts.
    let names: Vec<String> = (0..10_000).map(|i| format!("k{i}")).collect();
    let parts: Vec<Part<'_>> = names
        .iter()
        .map(|name| ("many", Some(name.as_str()), &b"x"[..]))
        .collect();
    let reply = upload(&server, "POST", path, &parts).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    nothing_written(&server);
    // A 1 MB part header.
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"many\"; filename=\"a.txt\"\r\nX-Pad: "
    )
    .into_bytes();
    body.extend(vec![b'a'; 1024 * 1024]);
    body.extend(format!("\r\n\r\nx\r\n--{BOUNDARY}--\r\n").as_bytes());
    let reply = send_raw(
        &server,
        "POST",
        path,
        &format!("multipart/form-data; boundary={BOUNDARY}"),
        body,
        &[],
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    nothing_written(&server);
    // Beyond the body limit (server limit + the collection's file capacity).
    let huge =
        vec![b'z'; 256 * 1024 + 1000 + 3 * 100_000 + 2 * 5 * 1024 * 1024 + 5 * 1024 * 1024 + 10];
    let reply = upload(&server, "POST", path, &[("many", Some("huge.bin"), &huge)]).await;
    assert_eq!(reply.status, 413, "{}", reply.text);
    assert_eq!(reply.json["message"], "Request entity too large.");
    nothing_written(&server);
    // Within the collection's capacity though above the server's JSON limit: accepted
    // (as the reference), then refused by the field's maxSize.
    let big = vec![b'z'; 300 * 1024];
    let reply = upload(&server, "POST", path, &[("many", Some("big.bin"), &big)]).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(
        reply.json["data"]["many"]["code"],
        "validation_file_size_limit"
    );
    nothing_written(&server);
    // A collection without file fields keeps the server's limit.
    server
        .collection(json!({"name": "plain", "type": "base", "createRule": "",
            "fields": [{"name": "title", "type": "text"}]}))
        .await;
    let reply = upload(
        &server,
        "POST",
        "/api/collections/plain/records",
        &[("title", None, &big)],
    )
    .await;
    assert_eq!(reply.status, 413, "{}", reply.text);
}

#[tokio::test]
async fn batch_multipart_binds_files_per_sub_request() {
    let server = start().await;
    let cid = docs(&server, "").await;
    server.enable_batch(10).await;
    let existing = upload(
        &server,
        "POST",
        "/api/collections/docs/records",
        &[("one", Some("first.txt"), b"first")],
    )
    .await;
    let existing_id = existing.json["id"].as_str().expect("id").to_string();
    let payload = json!({"requests": [
        {"method": "POST", "url": "/api/collections/docs/records", "body": {"title": "created"}},
        {"method": "PATCH", "url": format!("/api/collections/docs/records/{existing_id}"), "body": {}},
        {"method": "PUT", "url": "/api/collections/docs/records", "body": {"id": "upsertdoc000001"}}
    ]})
    .to_string();
    let reply = upload(
        &server,
        "POST",
        "/api/batch",
        &[
            ("@jsonPayload", None, payload.as_bytes()),
            ("requests.0.many", Some("alpha.txt"), b"alpha"),
            ("requests.0.many", Some("beta.txt"), b"beta"),
            ("requests.1.one", Some("second.txt"), b"second"),
            ("requests.2.one", Some("upsert.txt"), b"upserted"),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let created = &reply.json[0]["body"];
    let many: Vec<String> = serde_json::from_value(created["many"].clone()).expect("many");
    assert_eq!(many.len(), 2);
    assert_stored_name(&many[0], "alpha", ".txt");
    let updated = &reply.json[1]["body"];
    assert_stored_name(updated["one"].as_str().expect("one"), "second", ".txt");
    let upserted = &reply.json[2]["body"];
    assert_eq!(upserted["id"], "upsertdoc000001");
    assert_stored_name(upserted["one"].as_str().expect("one"), "upsert", ".txt");
    let id = created["id"].as_str().expect("id");
    let file = get(&server, &format!("/api/files/docs/{id}/{}", many[1]), &[]).await;
    assert_eq!((file.status, file.text.as_str()), (200, "beta"));
    let file = get(
        &server,
        &format!(
            "/api/files/docs/upsertdoc000001/{}",
            upserted["one"].as_str().expect("one")
        ),
        &[],
    )
    .await;
    assert_eq!((file.status, file.text.as_str()), (200, "upserted"));

    // A failing sub-request fails the batch and stores none of its files.
    let before = files_under(&data_dir(&server).join("storage").join(&cid)).len();
    let payload = json!({"requests": [
        {"method": "POST", "url": "/api/collections/docs/records", "body": {}},
        {"method": "POST", "url": "/api/collections/docs/records", "body": {"one": "nonexistent.txt"}}
    ]})
    .to_string();
    let reply = upload(
        &server,
        "POST",
        "/api/batch",
        &[
            ("@jsonPayload", None, payload.as_bytes()),
            ("requests.0.many", Some("gamma.txt"), b"gamma"),
        ],
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(
        files_under(&data_dir(&server).join("storage").join(&cid)).len(),
        before
    );
    assert!(files_under(&data_dir(&server).join(".tmp-uploads")).is_empty());
}

#[tokio::test]
async fn leftover_temp_uploads_are_swept_at_start() {
    // A crash between an upload and its commit leaves a temp file; the next start removes it.
    let dir = tempfile::tempdir().expect("dir");
    let tmp = dir.path().join(".tmp-uploads");
    std::fs::create_dir_all(&tmp).expect("tmp dir");
    std::fs::write(tmp.join("upload-crashed"), b"partial upload").expect("write");
    let (engine, _report) = engine::Engine::open(
        dir.path(),
        engine::EngineConfig {
            sync: engine::SyncPolicy::None,
            ..Default::default()
        },
    )
    .expect("open");
    let _state = api::AppState::new(engine, api::ServerOptions::default()).expect("state");
    assert!(files_under(&tmp).is_empty());
}

#[tokio::test]
async fn thumbnails_for_offered_sizes_are_generated_once_and_cached() {
    let server = start().await;
    let cid = server
        .collection(json!({
            "name": "pics", "type": "base", "viewRule": "", "createRule": "",
            "fields": [{"name": "img", "type": "file", "maxSelect": 1, "thumbs": ["60x30b", "0x40"]}]
        }))
        .await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let mut png = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
        300,
        200,
        image::Rgb([9, 99, 199]),
    ))
    .write_to(&mut png, image::ImageFormat::Png)
    .expect("png");
    let reply = upload(
        &server,
        "POST",
        "/api/collections/pics/records",
        &[("img", Some("photo.png"), png.get_ref())],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let id = reply.json["id"].as_str().expect("id").to_string();
    let name = reply.json["img"].as_str().expect("img").to_string();
    let fetch_image = |query: &'static str| {
        let url = format!("{}/api/files/pics/{id}/{name}?{query}", server.base);
        let client = server.client.clone();
        async move {
            let response = client.get(url).send().await.expect("get");
            assert_eq!(response.status(), 200);
            let disposition = response.headers()["content-disposition"]
                .to_str()
                .expect("disposition")
                .to_string();
            let bytes = response.bytes().await.expect("bytes");
            let image = image::load_from_memory(&bytes).expect("decodes");
            (disposition, image.width(), image.height())
        }
    };
    // The default size and the field's sizes, in their modes.
    let (disposition, w, h) = fetch_image("thumb=100x100").await;
    assert_eq!((w, h), (100, 100));
    assert_eq!(disposition, format!("inline; filename=\"100x100_{name}\""));
    assert_eq!(fetch_image("thumb=60x30b").await.1, 60);
    let (_, w, h) = fetch_image("thumb=0x40").await;
    assert_eq!((w, h), (60, 40));
    // A size the field does not offer serves the original.
    let (disposition, w, h) = fetch_image("thumb=50x50").await;
    assert_eq!((w, h), (300, 200));
    assert_eq!(disposition, format!("inline; filename=\"{name}\""));
    // Cached next to the original, in PocketBase's layout.
    let cached = data_dir(&server)
        .join("storage")
        .join(&cid)
        .join(&id)
        .join(format!("thumbs_{name}"))
        .join(format!("100x100_{name}"));
    assert!(cached.exists());
    let modified = std::fs::metadata(&cached)
        .expect("meta")
        .modified()
        .expect("mtime");
    let _ = fetch_image("thumb=100x100").await;
    assert_eq!(
        std::fs::metadata(&cached)
            .expect("meta")
            .modified()
            .expect("mtime"),
        modified,
        "served from the cache, not regenerated"
    );
}
