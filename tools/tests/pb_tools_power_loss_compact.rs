//! `pb-tools` on the two states of issue #13 items 1 and 9, end to end through the binary:
//! `verify` on a log whose last, never-acknowledged frame lost its first page to a power loss
//! (`[synced frames][zeros][the rest of a frame]`) reports a torn tail (exit 4), not
//! corruption, and the next open repairs it; `compact --retain-commits 10` on a log that fits
//! in one segment removes the history before the window, and `verify` passes afterwards.

use engine::{Actor, Change, CollectionDef, ColumnDef, Engine, EngineConfig, SyncPolicy, Value};
use std::path::Path;
use std::process::{Command, Output};

fn pb_tools(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pb-tools"))
        .args(args)
        .output()
        .expect("run pb-tools")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn def() -> CollectionDef {
    let column = |name: &str, decl: &str| ColumnDef {
        id: format!("f_{name}"),
        name: name.into(),
        decl: decl.into(),
    };
    CollectionDef {
        id: "c_items".into(),
        name: "items".into(),
        kind: "base".into(),
        columns: vec![
            column("id", "TEXT PRIMARY KEY NOT NULL"),
            column("body", "TEXT DEFAULT '' NOT NULL"),
        ],
        indexes: Vec::new(),
        view_query: None,
        meta: "{}".into(),
    }
}

/// The collection (seq 1) and `count` items, item `i` with a body of `body(i)` bytes.
fn build(dir: &Path, count: usize, body: impl Fn(usize) -> usize) {
    let config = EngineConfig {
        sync: SyncPolicy::None,
        ..EngineConfig::default()
    };
    let (engine, _) = Engine::open(dir, config).expect("open");
    engine
        .execute(Actor::System, |tx| {
            tx.stage(Change::CollectionCreated(def()))
        })
        .map_err(|_| "create")
        .expect("create collection");
    for index in 1..=count {
        let text = "x".repeat(body(index));
        engine
            .execute(Actor::System, move |tx| {
                tx.stage(Change::RecordCreated {
                    collection_id: "c_items".into(),
                    id: format!("i{index}"),
                    values: vec![
                        ("id".into(), Value::Text(format!("i{index}"))),
                        ("body".into(), Value::Text(text)),
                    ],
                })
            })
            .map_err(|_| "insert")
            .expect("insert");
    }
    engine.shutdown();
}

#[test]
fn verify_reports_a_lost_first_page_of_the_last_frame_as_a_torn_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The last item is ~10 KiB: its frame straddles several 4 KiB pages.
    build(dir.path(), 5, |index| if index == 5 { 10_000 } else { 10 });
    let segment = dir.path().join("log").join(engine::admin::segment_name(1));
    let mut bytes = std::fs::read(&segment).expect("read");
    let mut offset = engine::admin::SEGMENT_HEADER_LEN;
    for _ in 0..5 {
        match engine::admin::decode_frame(&bytes[offset..]) {
            engine::admin::FrameRead::Frame { frame_len, .. } => offset += frame_len,
            other => panic!("{other:?}"),
        }
    }
    // The page holding the last frame's start never reached the disk; the next ones did.
    let page_end = (offset / 4096 + 1) * 4096;
    for byte in &mut bytes[offset..page_end] {
        *byte = 0;
    }
    std::fs::write(&segment, &bytes).expect("write");
    // The projection must not already hold the lost commit (it was never acknowledged).
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.path().join(format!("data.db{suffix}")));
    }
    let root = dir.path().to_str().expect("utf8");
    let output = pb_tools(&["verify", "--dir", root]);
    let out = text(&output);
    assert_eq!(output.status.code(), Some(4), "{out}");
    assert!(out.contains("torn tail: segment"), "{out}");
    assert!(out.contains(&format!("offset {offset}")), "{out}");
    assert!(!out.contains("impossible frame length"), "{out}");
    let (engine, report) = Engine::open(dir.path(), EngineConfig::default()).expect("open");
    assert_eq!(engine.last_seq(), 5);
    assert_eq!(
        report.torn_tail.map(|torn| torn.offset),
        Some(offset as u64)
    );
    engine.shutdown();
    drop(engine);
    let output = pb_tools(&["verify", "--dir", root]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
}

#[test]
fn compact_retain_commits_shrinks_a_one_segment_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    build(dir.path(), 199, |_| 100);
    let root = dir.path().to_str().expect("utf8");
    let log_bytes = || -> u64 {
        std::fs::read_dir(dir.path().join("log"))
            .expect("log dir")
            .flatten()
            .filter(|entry| {
                entry
                    .file_name()
                    .to_str()
                    .and_then(engine::admin::parse_segment_name)
                    .is_some()
            })
            .map(|entry| entry.metadata().expect("stat").len())
            .sum()
    };
    let before = log_bytes();
    let output = pb_tools(&["compact", "--dir", root, "--retain-commits", "10"]);
    let out = text(&output);
    assert_eq!(output.status.code(), Some(0), "{out}");
    assert!(out.contains("the log now starts at seq 191"), "{out}");
    let after = log_bytes();
    assert!(after * 10 < before, "log {before} -> {after} bytes: {out}");
    let output = pb_tools(&["verify", "--dir", root]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let (engine, _) = Engine::open(dir.path(), EngineConfig::default()).expect("open");
    assert_eq!((engine.log().first_seq(), engine.last_seq()), (191, 200));
    let count = engine
        .read(|conn| conn.query("SELECT count(*) FROM items", &[]))
        .expect("count");
    assert_eq!(count.rows[0][0].as_i64(), Some(199));
    engine.shutdown();
    drop(engine);
    // Running it again with the same window has nothing left to remove.
    let output = pb_tools(&["compact", "--dir", root, "--retain-commits", "10"]);
    let out = text(&output);
    assert_eq!(output.status.code(), Some(0), "{out}");
    assert!(out.contains("nothing to remove"), "{out}");
}
