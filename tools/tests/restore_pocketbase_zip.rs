//! A PocketBase backup zip, made by the reference binary in the test itself, switched to
//! pocketlog two ways: through the backups API (`POST /api/backups/upload`, then
//! `POST /api/backups/{key}/restore`, which imports it into the restore stage and restarts
//! the server) and offline with `pb-tools restore --from <zip> --to <dir>`. After each, the
//! records list, the file downloads byte-identical, and a user and the superuser sign in with
//! their PocketBase (bcrypt) passwords.
//!
//! The reference binary is `$POCKETBASE_BIN` (default `/tmp/pocketbase`, fetched by
//! `.ci/get-pocketbase.sh`); without it the test fails, it never skips.

mod support;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{runtime, Server};

const PB_EMAIL: &str = "a@b.c";
const PB_PASSWORD: &str = "1234567890";
const USER_EMAIL: &str = "user@example.com";
const USER_PASSWORD: &str = "userpass123";

fn pocketbase_bin() -> PathBuf {
    let bin = PathBuf::from(
        std::env::var("POCKETBASE_BIN").unwrap_or_else(|_| "/tmp/pocketbase".to_string()),
    );
    assert!(
        bin.is_file(),
        "the reference PocketBase binary is missing at {} (run `bash .ci/get-pocketbase.sh`); \
         this test does not skip",
        bin.display()
    );
    bin
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The attachment: bytes that are not text, so a re-encoding would show.
fn attachment() -> Vec<u8> {
    (0..5000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// A multipart body with text fields and one file part; returns (content type, body).
fn multipart(fields: &[(&str, &str)], file: (&str, &str, &[u8])) -> (String, Vec<u8>) {
    let boundary = "restorepbzipboundary42";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    let (field, file_name, bytes) = file;
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; \
             filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn json_call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = http.request(method, url);
    if let Some(token) = token {
        request = request.header("Authorization", token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn login(
    http: &reqwest::Client,
    base: &str,
    collection: &str,
    email: &str,
    password: &str,
) -> (u16, Value) {
    json_call(
        http,
        reqwest::Method::POST,
        format!("{base}/api/collections/{collection}/auth-with-password"),
        None,
        Some(json!({"identity": email, "password": password})),
    )
    .await
}

/// Runs the reference on `dir`, fills it (a collection with a file field, a record with a
/// file, a user), makes a backup and returns the zip's bytes.
async fn reference_backup(dir: &Path) -> Vec<u8> {
    let bin = pocketbase_bin();
    let status = Command::new(&bin)
        .args(["superuser", "upsert", PB_EMAIL, PB_PASSWORD, "--dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("pocketbase superuser upsert");
    assert!(status.success());
    let address = format!("127.0.0.1:{}", free_port());
    let child: Child = Command::new(&bin)
        .args(["serve", "--http", &address, "--automigrate=false", "--dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn pocketbase");
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _guard = Kill(child);
    let base = format!("http://{address}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while http.get(format!("{base}/api/health")).send().await.is_err() {
        assert!(Instant::now() < deadline, "the reference did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = login(&http, &base, "_superusers", PB_EMAIL, PB_PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().expect("token").to_string();
    let (status, body) = json_call(
        &http,
        reqwest::Method::POST,
        format!("{base}/api/collections"),
        Some(&token),
        Some(json!({
            "name": "docs",
            "type": "base",
            "listRule": "",
            "viewRule": "",
            "fields": [
                {"name": "title", "type": "text"},
                {"name": "attachment", "type": "file", "maxSelect": 1, "maxSize": 1048576}
            ]
        })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (content_type, body) = multipart(
        &[("title", "first doc")],
        ("attachment", "report.bin", &attachment()),
    );
    let response = http
        .post(format!("{base}/api/collections/docs/records"))
        .header("Authorization", &token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("create record");
    assert_eq!(response.status().as_u16(), 200);
    let (status, body) = json_call(
        &http,
        reqwest::Method::POST,
        format!("{base}/api/collections/users/records"),
        None,
        Some(json!({
            "email": USER_EMAIL,
            "password": USER_PASSWORD,
            "passwordConfirm": USER_PASSWORD
        })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = json_call(
        &http,
        reqwest::Method::POST,
        format!("{base}/api/backups"),
        Some(&token),
        Some(json!({"name": "pb_made.zip"})),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = json_call(
        &http,
        reqwest::Method::POST,
        format!("{base}/api/files/token"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let file_token = body["token"].as_str().expect("file token");
    let response = http
        .get(format!("{base}/api/backups/pb_made.zip?token={file_token}"))
        .send()
        .await
        .expect("download backup");
    assert_eq!(response.status().as_u16(), 200);
    response.bytes().await.expect("zip").to_vec()
}

/// What every switched server must show: the record, its file byte-identical, and the
/// PocketBase passwords signing in.
async fn check_switched(base: &str) {
    let http = reqwest::Client::new();
    let (status, body) = json_call(
        &http,
        reqwest::Method::GET,
        format!("{base}/api/collections/docs/records"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["totalItems"], json!(1), "{body}");
    let record = &body["items"][0];
    assert_eq!(record["title"], json!("first doc"));
    let id = record["id"].as_str().expect("id");
    let name = record["attachment"].as_str().expect("file name");
    assert!(name.starts_with("report_"), "{name}");
    let response = http
        .get(format!("{base}/api/files/docs/{id}/{name}"))
        .send()
        .await
        .expect("download file");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.bytes().await.expect("bytes").to_vec(),
        attachment()
    );
    let (status, body) = login(&http, base, "users", USER_EMAIL, USER_PASSWORD).await;
    assert_eq!(status, 200, "the bcrypt user signs in: {body}");
    assert_eq!(body["record"]["email"], json!(USER_EMAIL));
    let (status, _) = login(&http, base, "users", USER_EMAIL, "wrong-password").await;
    assert_eq!(status, 400);
    let (status, body) = login(&http, base, "_superusers", PB_EMAIL, PB_PASSWORD).await;
    assert_eq!(status, 200, "the PocketBase superuser signs in: {body}");
}

async fn upload(server: &Server, token: &str, name: &str, bytes: &[u8]) -> (u16, Value) {
    let boundary = "uploadpbzipboundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
         Content-Type: application/zip\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let response = server
        .http
        .post(server.url("/api/backups/upload"))
        .header("Authorization", token)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .expect("upload");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[test]
fn a_pocketbase_backup_zip_restores_through_the_api_and_pb_tools() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let rt = runtime();
    let zip = rt.block_on(reference_backup(&tmp.path().join("pb")));
    let zip_path = tmp.path().join("pb_made.zip");
    std::fs::write(&zip_path, &zip).expect("write zip");

    // Through the API of a running pocketlog.
    let live = tmp.path().join("live");
    std::fs::create_dir_all(&live).expect("dir");
    support::create_superuser(&live);
    rt.block_on(async {
        let server = Server::start(&live, &[]).await;
        let token = server.login().await;
        let (status, body) = upload(&server, &token, "from_pocketbase.zip", &zip).await;
        assert_eq!(status, 204, "{body}");
        // The reference's answer to a taken name.
        let (status, body) = upload(&server, &token, "from_pocketbase.zip", &zip).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(
            body["data"]["file"]["code"],
            json!("validation_backup_name_exists"),
            "{body}"
        );
        let (status, body) = server.call("GET", "/api/backups", Some(&token), None).await;
        assert_eq!(status, 200);
        assert!(
            body.as_array()
                .expect("list")
                .iter()
                .any(|item| item["key"] == json!("from_pocketbase.zip")),
            "{body}"
        );
        let (status, body) = server
            .call(
                "POST",
                "/api/backups/from_pocketbase.zip/restore",
                Some(&token),
                None,
            )
            .await;
        assert_eq!(status, 204, "{body}");
        // The server restarts (same address) into the imported data; the PocketBase
        // superuser replaces pocketlog's.
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let signed_in = http
                .post(server.url("/api/collections/_superusers/auth-with-password"))
                .json(&json!({"identity": PB_EMAIL, "password": PB_PASSWORD}))
                .send()
                .await
                .map(|response| response.status().as_u16() == 200)
                .unwrap_or(false);
            if signed_in {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the restore was not applied: {}",
                server.stderr()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        check_switched(&server.base).await;
        let (status, _) = login(
            &http,
            &server.base,
            "_superusers",
            support::EMAIL,
            support::PASSWORD,
        )
        .await;
        assert_eq!(
            status, 400,
            "pocketlog's superuser before the restore is gone"
        );
    });

    // Offline, with pb-tools.
    let offline = tmp.path().join("offline");
    let output = Command::new(env!("CARGO_BIN_EXE_pb-tools"))
        .args(["restore", "--from"])
        .arg(&zip_path)
        .arg("--to")
        .arg(&offline)
        .output()
        .expect("run pb-tools restore");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    rt.block_on(async {
        let server = Server::start(&offline, &[]).await;
        check_switched(&server.base).await;
    });
}
