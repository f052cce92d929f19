//! `pocketlog serve --compact-retain-commits N --compact-interval SECS --snapshot-every-commits N`
//! against the built binary: while records are written over HTTP, the log's first segment
//! advances (old segments removed in the background), periodic snapshots appear, the server keeps
//! answering correctly, a restart opens the compacted log, and `pb-tools verify` passes after
//! shutdown.

mod support;

use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};
use support::{create_superuser, pb_tools, runtime, Server};

/// The first seq of the oldest log segment.
fn first_segment(dir: &Path) -> u64 {
    std::fs::read_dir(dir.join(engine::admin::LOG_DIR))
        .expect("log dir")
        .flatten()
        .filter_map(|entry| engine::admin::parse_segment_name(&entry.file_name().to_string_lossy()))
        .min()
        .expect("a segment")
}

fn snapshot_count(dir: &Path) -> usize {
    std::fs::read_dir(engine::admin::snapshots_dir(dir))
        .map(|entries| {
            entries
                .flatten()
                .filter(|entry| {
                    engine::admin::parse_snapshot_name(&entry.file_name().to_string_lossy())
                        .is_some()
                })
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn serve_compacts_and_snapshots_in_the_background() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("pb_data");
    create_superuser(&dir);
    let flags = [
        "--sync",
        "none",
        "--segment-bytes",
        "2048",
        "--compact-retain-commits",
        "20",
        "--compact-interval",
        "0.2",
        "--snapshot-every-commits",
        "40",
    ];
    runtime().block_on(async {
        let mut server = Server::start(&dir, &flags).await;
        let token = server.login().await;
        let (status, body) = server
            .call(
                "POST",
                "/api/collections",
                Some(&token),
                Some(
                    json!({"name": "notes", "type": "base", "listRule": "", "viewRule": "",
                            "createRule": "", "fields": [{"name": "n", "type": "number"}]}),
                ),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let mut last_id = String::new();
        for n in 0..150 {
            let (status, body) = server
                .call(
                    "POST",
                    "/api/collections/notes/records",
                    None,
                    Some(json!({ "n": n })),
                )
                .await;
            assert_eq!(status, 200, "{body}");
            last_id = body["id"].as_str().expect("id").to_string();
        }
        // The compactor runs every 0.2 s, keeping ~20 of the ~152 commits: the log must soon
        // start well after seq 100.
        let deadline = Instant::now() + Duration::from_secs(20);
        while first_segment(&dir) <= 100 {
            assert!(
                Instant::now() < deadline,
                "no compaction happened: {}",
                server.stderr()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(snapshot_count(&dir) > 0, "no snapshot was written");
        // Still answering correctly.
        let (status, body) = server
            .call(
                "GET",
                "/api/collections/notes/records?perPage=1",
                None,
                None,
            )
            .await;
        assert_eq!((status, &body["totalItems"]), (200, &json!(150)), "{body}");
        let (status, body) = server
            .call(
                "GET",
                &format!("/api/collections/notes/records/{last_id}"),
                None,
                None,
            )
            .await;
        assert_eq!((status, &body["n"]), (200, &json!(149)), "{body}");
        let (status, _) = server
            .call(
                "POST",
                "/api/collections/notes/records",
                None,
                Some(json!({"n": 150})),
            )
            .await;
        assert_eq!(status, 200);
        assert!(
            server
                .stderr()
                .contains("compaction removed old log segments"),
            "the compaction was not logged: {}",
            server.stderr()
        );
        assert!(server.terminate(), "unclean exit: {}", server.stderr());

        // A restart opens the compacted log (from the snapshot at the cut).
        let mut server = Server::start(&dir, &flags).await;
        let (status, body) = server
            .call(
                "GET",
                "/api/collections/notes/records?perPage=1",
                None,
                None,
            )
            .await;
        assert_eq!((status, &body["totalItems"]), (200, &json!(151)), "{body}");
        assert!(server.terminate(), "unclean exit: {}", server.stderr());
    });
    let (code, output) = pb_tools(&["verify"], &dir);
    assert_eq!(code, 0, "pb-tools verify: {output}");
}
