//! The start-up orphan sweep with files in S3, against the built `pocketlog` binary and a real
//! S3 server (moto, started here on a free loopback port): with
//! `POCKETLOG_FAILPOINT=after_file_persist` the server aborts after the upload is in the
//! bucket and before its commit. After a restart the background sweep deletes that orphan
//! key, keeps the key of a committed record and the key of a deleted record (a retained
//! restore point still needs it), and logs one summary line; a start whose stored files are
//! all referenced reads no log.

mod support;

use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{create_superuser, runtime, Server};

const BOUNDARY: &str = "----pocketlogS3SweepBoundary";
const BUCKET: &str = "files";

/// moto in server mode, killed when dropped.
struct Moto {
    endpoint: String,
    child: Child,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn moto() -> Moto {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port");
    let child = Command::new("python3")
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 with moto[server] (.ci/run installs it)");
    let moto = Moto {
        endpoint: format!("http://127.0.0.1:{port}"),
        child,
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !client
        .get(&moto.endpoint)
        .send()
        .await
        .is_ok_and(|response| response.status().is_success())
    {
        assert!(Instant::now() < deadline, "moto did not start");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let created = client
        .put(format!("{}/{BUCKET}", moto.endpoint))
        .send()
        .await
        .expect("create bucket");
    assert!(created.status().is_success());
    moto
}

/// The keys in the bucket, sorted.
async fn keys(moto: &Moto) -> Vec<String> {
    let text = reqwest::get(format!("{}/{BUCKET}?list-type=2", moto.endpoint))
        .await
        .expect("list")
        .text()
        .await
        .expect("list body");
    let mut out: Vec<String> = text
        .split("<Key>")
        .skip(1)
        .filter_map(|rest| rest.split("</Key>").next())
        .map(str::to_string)
        .collect();
    out.sort();
    out
}

async fn upload(server: &Server, token: &str, file: &[u8]) -> reqwest::Result<reqwest::Response> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"a.txt\"\r\n\
         Content-Type: text/plain\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    reqwest::Client::new()
        .post(server.url("/api/collections/docs/records"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .header("authorization", token)
        .body(body)
        .timeout(Duration::from_secs(30))
        .send()
        .await
}

async fn create(server: &Server, token: &str, content: &[u8]) -> serde_json::Value {
    let response = upload(server, token, content).await.expect("upload");
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.expect("json")
}

/// `text` without ANSI colour sequences (the log is coloured).
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for next in chars.by_ref() {
                if next == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The start-up sweep's summary line in `log`, uncoloured.
fn summary(log: &str) -> String {
    plain(log)
        .lines()
        .find(|line| line.contains("start-up sweep of stored files"))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no summary line in {log}"))
}

fn key(collection_id: &str, record: &serde_json::Value) -> String {
    format!(
        "{collection_id}/{}/{}",
        record["id"].as_str().expect("id"),
        record["doc"].as_str().expect("name")
    )
}

#[test]
fn an_orphan_key_of_a_crashed_upload_is_swept_after_the_restart_and_needed_keys_stay() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("pb_data");
    create_superuser(&dir);
    runtime().block_on(async {
        let moto = moto().await;
        let mut server = Server::start(&dir, &[]).await;
        let token = server.login().await;
        let (status, collection) = server
            .call(
                "POST",
                "/api/collections",
                Some(&token),
                Some(json!({
                    "name": "docs", "type": "base",
                    "createRule": "", "viewRule": "", "deleteRule": "",
                    "fields": [{"name": "doc", "type": "file", "maxSelect": 1, "maxSize": 100000}]
                })),
            )
            .await;
        assert_eq!(status, 200, "{collection}");
        let collection_id = collection["id"].as_str().expect("id").to_string();
        let (status, body) = server
            .call(
                "PATCH",
                "/api/settings",
                Some(&token),
                Some(json!({"s3": {
                    "enabled": true, "bucket": BUCKET, "region": "us-east-1",
                    "endpoint": moto.endpoint, "accessKey": "k", "secret": "s",
                    "forcePathStyle": true
                }})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        // A start with no stored file reads no log.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !server.stderr().contains("start-up sweep of stored files")
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let line = summary(&server.stderr());
        assert!(
            line.contains("candidates=0") && line.contains("log_read=false"),
            "{line}"
        );
        let kept = create(&server, &token, b"kept").await;
        let released = create(&server, &token, b"deleted, still needed").await;
        let (status, _) = server
            .call(
                "DELETE",
                &format!(
                    "/api/collections/docs/records/{}",
                    released["id"].as_str().expect("id")
                ),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(status, 204);
        let needed = vec![key(&collection_id, &kept), key(&collection_id, &released)];
        let mut expected = needed.clone();
        expected.sort();
        assert_eq!(keys(&moto).await, expected);
        assert!(server.terminate(), "clean stop");

        // The crash: the upload is in the bucket, its commit never happens.
        std::env::set_var("POCKETLOG_FAILPOINT", "after_file_persist");
        let mut server = Server::start(&dir, &[]).await;
        std::env::remove_var("POCKETLOG_FAILPOINT");
        let result = upload(&server, &token, b"never committed").await;
        assert!(
            result.is_err() || result.is_ok_and(|response| !response.status().is_success()),
            "the upload was not acknowledged"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while !server.stderr().contains("failpoint hit") && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!server.terminate(), "the process aborted");
        let after_crash = keys(&moto).await;
        assert_eq!(
            after_crash.len(),
            3,
            "the orphan is in the bucket: {after_crash:?}"
        );
        // The sweep only takes objects older than the start minus the clock-skew allowance.
        tokio::time::sleep(Duration::from_millis(
            api::files::gc::S3_CLOCK_SKEW_MS + 500,
        ))
        .await;

        let mut server = Server::start(&dir, &[]).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        while (keys(&moto).await != expected
            || !server.stderr().contains("start-up sweep of stored files"))
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(keys(&moto).await, expected, "{}", server.stderr());
        let line = summary(&server.stderr());
        assert!(line.contains("removed=1"), "{line}");
        assert!(line.contains("log_read=true"), "{line}");
        assert!(server.terminate());

        // With no orphan, the next start removes nothing (the deleted record's file is not
        // referenced now, so the retained log is read to find it needed).
        let mut server = Server::start(&dir, &[]).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !server.stderr().contains("start-up sweep of stored files")
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let line = summary(&server.stderr());
        assert!(line.contains("candidates=1"), "{line}");
        assert!(line.contains("removed=0"), "{line}");
        assert_eq!(keys(&moto).await, expected);
        assert!(server.terminate());
    });
}
