//! The `pb-tools` binary end to end on data dirs written by the engine: `verify` passes on a
//! good dir, fails with the segment and offset on a corrupted one, reports a projection behind
//! the log as needing recovery; `replay --to-seq` and `--to-time` give the state at that point;
//! `inspect` prints one JSON line per commit; a missing or locked dir is one error line with
//! exit code 3, never a panic.

use engine::{Actor, Change, CollectionDef, ColumnDef, Engine, EngineConfig, SyncPolicy, Value};
use std::path::Path;
use std::process::{Command, Output};

fn pb_tools(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pb-tools"))
        .args(args)
        .output()
        .expect("run pb-tools")
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
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
            column("n", "NUMERIC DEFAULT 0 NOT NULL"),
        ],
        indexes: Vec::new(),
        view_query: None,
        meta: "{}".into(),
    }
}

/// A data dir with the collection (seq 1) and items i1..=i`count` (seqs 2..), one per commit,
/// the clock advancing 1000 ms per commit from 2024-01-01T00:00:00Z.
fn build(dir: &Path, count: i64) -> Engine {
    let clock = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(1_704_067_200_000));
    let config = EngineConfig {
        sync: SyncPolicy::None,
        clock: std::sync::Arc::new(move || {
            clock.fetch_add(1000, std::sync::atomic::Ordering::SeqCst)
        }),
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
        engine
            .execute(Actor::Superuser("su1".into()), move |tx| {
                tx.stage(Change::RecordCreated {
                    collection_id: "c_items".into(),
                    id: format!("i{index}"),
                    values: vec![
                        ("id".into(), Value::Text(format!("i{index}"))),
                        ("n".into(), Value::Int(index)),
                    ],
                })
            })
            .map_err(|_| "insert")
            .expect("insert");
    }
    engine
}

fn count_items(db: &Path) -> i64 {
    let conn = rusqlite::Connection::open(db).expect("open db");
    conn.query_row("SELECT count(*) FROM items", [], |row| row.get(0))
        .expect("count")
}

#[test]
fn verify_passes_on_a_good_dir_and_prints_a_summary() {
    let dir = tempfile::tempdir().expect("tempdir");
    build(dir.path(), 20).shutdown();
    let output = pb_tools(&["verify", "--dir", dir.path().to_str().expect("utf8")]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("1 segments, 21 commits"), "{stdout}");
    assert!(stdout.contains("seq 1..21"), "{stdout}");
    assert!(stdout.contains("2024-01-01T00:00:00.000Z"), "{stdout}");
    assert!(stdout.contains("2024-01-01T00:00:20.000Z"), "{stdout}");
    assert!(stdout.contains("OK"), "{stdout}");
}

#[test]
fn verify_fails_with_the_segment_and_offset_of_a_corrupted_frame() {
    let dir = tempfile::tempdir().expect("tempdir");
    build(dir.path(), 20).shutdown();
    let segment = dir.path().join("log").join(engine::admin::segment_name(1));
    let mut bytes = std::fs::read(&segment).expect("read");
    // Find the 5th frame's offset and flip a byte in its payload.
    let mut offset = engine::admin::SEGMENT_HEADER_LEN;
    for _ in 0..4 {
        match engine::admin::decode_frame(&bytes[offset..]) {
            engine::admin::FrameRead::Frame { frame_len, .. } => offset += frame_len,
            other => panic!("{other:?}"),
        }
    }
    bytes[offset + 12] ^= 0x40;
    std::fs::write(&segment, bytes).expect("write");
    let output = pb_tools(&["verify", "--dir", dir.path().to_str().expect("utf8")]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains(&format!("offset {offset}")), "{stdout}");
    assert!(stdout.contains("seg-0000000000000001.log"), "{stdout}");
}

#[test]
fn verify_reports_a_projection_behind_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = build(dir.path(), 5);
    let copy = dir.path().join("old.db");
    rusqlite::Connection::open(dir.path().join(engine::admin::DATA_DB))
        .expect("open")
        .execute("VACUUM INTO ?1", [copy.to_str().expect("utf8")])
        .expect("vacuum");
    engine.shutdown();
    drop(engine);
    // More commits, then put the old projection back: it is now behind the log.
    let engine = build_more(dir.path());
    engine.shutdown();
    drop(engine);
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(
            dir.path()
                .join(format!("{}{suffix}", engine::admin::DATA_DB)),
        );
    }
    std::fs::rename(&copy, dir.path().join(engine::admin::DATA_DB)).expect("restore");
    let output = pb_tools(&["verify", "--dir", dir.path().to_str().expect("utf8")]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(4), "{stdout}{stderr}");
    assert!(stdout.contains("behind the log: applied 6 of"), "{stdout}");
}

fn build_more(dir: &Path) -> Engine {
    let (engine, _) = Engine::open(dir, EngineConfig::default()).expect("open");
    for index in 100..103 {
        engine
            .execute(Actor::System, move |tx| {
                tx.stage(Change::RecordCreated {
                    collection_id: "c_items".into(),
                    id: format!("i{index}"),
                    values: vec![
                        ("id".into(), Value::Text(format!("i{index}"))),
                        ("n".into(), Value::Int(index)),
                    ],
                })
            })
            .map_err(|_| "insert")
            .expect("insert");
    }
    engine
}

#[test]
fn replay_to_seq_and_to_time_give_the_state_at_that_point() {
    let dir = tempfile::tempdir().expect("tempdir");
    build(dir.path(), 20).shutdown();
    let root = dir.path().to_str().expect("utf8");
    let out = dir.path().join("at8.db");
    let output = pb_tools(&[
        "replay",
        "--dir",
        root,
        "--to-seq",
        "8",
        "--out",
        out.to_str().expect("utf8"),
    ]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("commits/s"), "{stdout}");
    assert_eq!(count_items(&out), 7);
    // Seq k was committed at 2024-01-01T00:00:(k-1)s.
    let out = dir.path().join("at-time.db");
    let output = pb_tools(&[
        "replay",
        "--dir",
        root,
        "--to-time",
        "2024-01-01T00:00:10.500Z",
        "--out",
        out.to_str().expect("utf8"),
    ]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    assert_eq!(count_items(&out), 10);
    // Refuses to overwrite.
    let output = pb_tools(&[
        "replay",
        "--dir",
        root,
        "--out",
        out.to_str().expect("utf8"),
    ]);
    assert_eq!(output.status.code(), Some(3));
    // Into the data dir itself.
    std::fs::remove_file(dir.path().join(engine::admin::DATA_DB)).expect("remove");
    let output = pb_tools(&["replay", "--dir", root]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    assert_eq!(count_items(&dir.path().join(engine::admin::DATA_DB)), 20);
    assert_eq!(pb_tools(&["verify", "--dir", root]).status.code(), Some(0));
}

#[test]
fn replay_refuses_a_locked_data_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = build(dir.path(), 2);
    let output = pb_tools(&["replay", "--dir", dir.path().to_str().expect("utf8")]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(3), "{stdout}{stderr}");
    assert!(stderr.contains("locked by a running server"), "{stderr}");
    engine.shutdown();
}

#[test]
fn inspect_prints_one_json_line_per_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    build(dir.path(), 5).shutdown();
    let output = pb_tools(&[
        "inspect",
        "--dir",
        dir.path().to_str().expect("utf8"),
        "--from-seq",
        "3",
        "--limit",
        "2",
    ]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(lines[0]["seq"], 3);
    assert_eq!(lines[1]["seq"], 4);
    assert_eq!(lines[0]["time"], "2024-01-01T00:00:02.000Z");
    assert_eq!(lines[0]["actor"], serde_json::json!({"Superuser": "su1"}));
    assert_eq!(lines[0]["changes"][0]["RecordCreated"]["id"], "i2");
}

#[test]
fn a_missing_or_damaged_dir_is_one_error_line_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope");
    for command in ["verify", "replay", "inspect"] {
        let output = pb_tools(&[command, "--dir", missing.to_str().expect("utf8")]);
        let (stdout, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(3), "{command}: {stdout}{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{command}: {stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // A log dir holding a segment with a bad header.
    std::fs::create_dir_all(dir.path().join("log")).expect("mkdir");
    std::fs::write(
        dir.path().join("log").join(engine::admin::segment_name(1)),
        b"garbage garbage garbage",
    )
    .expect("write");
    let output = pb_tools(&["verify", "--dir", dir.path().to_str().expect("utf8")]);
    assert_eq!(output.status.code(), Some(1), "{:?}", text(&output));
    for command in ["replay", "inspect"] {
        let output = pb_tools(&[command, "--dir", dir.path().to_str().expect("utf8")]);
        let (_, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(3), "{command}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn help_documents_exit_codes() {
    for args in [
        &["--help"][..],
        &["verify", "--help"],
        &["replay", "--help"],
    ] {
        let output = pb_tools(args);
        let (stdout, _) = text(&output);
        assert_eq!(output.status.code(), Some(0));
        assert!(stdout.contains("Exit codes"), "{stdout}");
    }
}
