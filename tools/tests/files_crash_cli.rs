//! Crash injection between an upload's rename into storage and its commit, against the built
//! `pocketlog` binary: with `POCKETLOG_FAILPOINT=after_file_persist` the server aborts right
//! after the uploaded file is durable in `storage/` and before the commit is appended. The
//! upload was never acknowledged; after a restart no referenced file is missing
//! (`pb-tools verify` passes), the orphan is swept by the background start-up sweep, and uploads
//! work again.

mod support;

use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::{create_superuser, pb_tools, runtime, Server};

const BOUNDARY: &str = "----pocketlogCrashBoundary";

fn multipart(file: &[u8]) -> (String, Vec<u8>) {
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"a.txt\"\r\n\
             Content-Type: text/plain\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={BOUNDARY}"), body)
}

/// Every regular file under `dir` (recursively).
fn files_under(dir: &Path) -> Vec<PathBuf> {
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

async fn upload(server: &Server, token: &str, file: &[u8]) -> reqwest::Result<reqwest::Response> {
    let (content_type, body) = multipart(file);
    reqwest::Client::new()
        .post(server.url("/api/collections/docs/records"))
        .header("content-type", content_type)
        .header("authorization", token)
        .body(body)
        .timeout(Duration::from_secs(30))
        .send()
        .await
}

#[test]
fn a_crash_between_file_write_and_commit_leaves_nothing_missing_and_the_orphan_is_swept() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("pb_data");
    create_superuser(&dir);
    let storage = dir.join("storage");
    runtime().block_on(async {
        // A first server (no failpoint) makes the collection and one committed file.
        let mut server = Server::start(&dir, &[]).await;
        let token = server.login().await;
        let (status, body) = server
            .call(
                "POST",
                "/api/collections",
                Some(&token),
                Some(json!({
                    "name": "docs", "type": "base",
                    "createRule": "", "viewRule": "",
                    "fields": [{"name": "doc", "type": "file", "maxSelect": 1, "maxSize": 100000}]
                })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let response = upload(&server, &token, b"committed before the crash")
            .await
            .expect("upload");
        assert_eq!(response.status().as_u16(), 200);
        assert!(server.terminate(), "clean stop");
        let committed = files_under(&storage);
        assert_eq!(committed.len(), 1);
        let seq_before = last_seq(&dir);

        // The failpoint: the process aborts after the upload is in storage, before its commit.
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
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            !server.terminate(),
            "the process aborted: {}",
            server.stderr()
        );
        let orphans: Vec<PathBuf> = files_under(&storage)
            .into_iter()
            .filter(|path| !committed.contains(path))
            .collect();
        assert_eq!(
            orphans.len(),
            1,
            "the aborted upload left its file in storage"
        );
        assert_eq!(last_seq(&dir), seq_before, "nothing was committed");

        // Nothing referenced is missing, before and after the restart.
        let (code, out) = pb_tools(&["verify"], &dir);
        assert_eq!(code, 0, "{out}");
        let mut server = Server::start(&dir, &[]).await;
        // The start-up sweep runs in the background, right after the start.
        let deadline = Instant::now() + Duration::from_secs(20);
        while (orphans[0].exists() || !server.stderr().contains("start-up sweep of stored files"))
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            !orphans[0].exists(),
            "the start-up sweep removed the orphan: {}",
            server.stderr()
        );
        assert!(
            server.stderr().contains("start-up sweep of stored files"),
            "one summary line: {}",
            server.stderr()
        );
        assert_eq!(
            files_under(&storage),
            committed,
            "the committed file is kept"
        );
        let token = server.login().await;
        let response = upload(&server, &token, b"after the restart")
            .await
            .expect("upload");
        assert_eq!(response.status().as_u16(), 200);
        let record: serde_json::Value = response.json().await.expect("json");
        let name = record["doc"].as_str().expect("name").to_string();
        let (status, _) = server
            .call(
                "GET",
                &format!(
                    "/api/files/docs/{}/{name}",
                    record["id"].as_str().expect("id")
                ),
                None,
                None,
            )
            .await;
        assert_eq!(status, 200);
        assert!(server.terminate());
        let (code, out) = pb_tools(&["verify"], &dir);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("files: 2 referenced, 0 missing"), "{out}");
    });
}

fn last_seq(dir: &Path) -> u64 {
    let (reader, _) = engine::LogReader::open_dir(
        std::sync::Arc::new(engine::FsStorage),
        &dir.join(engine::admin::LOG_DIR),
    )
    .expect("log");
    reader.last_seq()
}
