//! Compaction keeps state, verification and restore points inside the window, and a crash at
//! any of its steps leaves a valid data dir.
//!
//! Method: a workload over many small segments; compaction in-process (`Engine::compact`) and
//! offline (`compact_dir`) with a crash injected after every step in turn (the step hook stops
//! the compaction there, as a killed process would). After each: the dir opens, the notes equal
//! the expected state, the projection equals snapshot + replay, the log is contiguous, positions
//! before the window are `SeqUnavailable`, and compacting again completes.
//! Guards against: removing a segment before the snapshot it needs is durable, a gap in the log
//! after a partial removal, recovery refusing a log that starts after seq 1.

#![expect(
    clippy::disallowed_methods,
    reason = "tests damage and clean data dirs directly"
)]

mod common;

use common::{create_notes, insert_many, notes};
use engine::admin::{compact_dir, At, CompactStep, RestoreOptions};
use engine::{EngineConfig, Error, FsStorage, LogReader, Retention, SyncPolicy};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn small_segments() -> EngineConfig {
    EngineConfig {
        sync: SyncPolicy::None,
        segment_bytes_max: 2048,
        ..EngineConfig::default()
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != ".lock" {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

fn reader(dir: &Path) -> LogReader {
    LogReader::open_dir(Arc::new(FsStorage), &dir.join(engine::admin::LOG_DIR))
        .expect("open log")
        .0
}

/// Projection built from the newest usable snapshot plus a replay, dumped.
fn rebuilt_dump(dir: &Path) -> Vec<String> {
    let reader = reader(dir);
    let scratch = tempfile::tempdir().expect("tempdir");
    let out = scratch.path().join("rebuilt.db");
    engine::admin::build_projection_at(
        &reader,
        &engine::admin::snapshots_dir(dir),
        reader.last_seq(),
        &out,
        |_| {},
    )
    .expect("rebuild");
    let built = engine::admin::Projection::open_read_only(&out).expect("open");
    built.dump().expect("dump")
}

fn build_source(dir: &Path) -> Vec<(String, String, i64)> {
    let engine = common::open_with(dir, small_segments());
    create_notes(&engine);
    insert_many(&engine, 0, 300);
    engine.snapshot().expect("snapshot");
    insert_many(&engine, 300, 100);
    let expected = notes(&engine);
    engine.shutdown();
    expected
}

fn check_valid(dir: &Path, expected: &[(String, String, i64)], label: &str) {
    let log = reader(dir);
    assert!(log.first_seq() >= 1);
    let engine = common::open_with(dir, small_segments());
    assert_eq!(notes(&engine), expected, "{label}: state changed");
    assert_eq!(
        common::live_dump(&engine),
        rebuilt_dump(dir),
        "{label}: projection differs from snapshot + replay"
    );
    engine.shutdown();
}

#[test]
fn in_process_compaction_keeps_state_and_restore_points() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("d");
    let expected = build_source(&dir);
    let engine = common::open_with(&dir, small_segments());
    let before_bytes =
        engine::admin::scan_log_dir(&FsStorage, &dir.join(engine::admin::LOG_DIR), |_| {})
            .expect("scan")
            .bytes;
    let last = engine.last_seq();
    let report = engine.compact(Retention::Commits(50)).expect("compact");
    assert!(report.first_after > 1, "{report:?}");
    assert!(
        report.first_after <= last - 49,
        "the window is kept: {report:?}"
    );
    assert!(report.segments_removed > 0);
    assert_eq!(engine.log().first_seq(), report.first_after);
    assert_eq!(notes(&engine), expected);
    // Positions before the window are reported as gone, inside it they read.
    match engine.log().read_from(1, 10) {
        Err(Error::SeqUnavailable { seq, .. }) => assert_eq!(seq, 1),
        other => panic!("old position: {other:?}"),
    }
    assert!(matches!(
        engine.subscribe(1),
        Err(Error::SeqUnavailable { .. })
    ));
    let inside = engine
        .log()
        .read_from(last - 49, 100)
        .expect("read inside the window");
    assert_eq!(inside.len(), 50);
    // Writes go on.
    common::insert_note(&engine, "after", "after compaction", 7).expect("insert");
    let mut expected_after = notes(&engine);
    engine.shutdown();
    drop(engine);
    let after_bytes =
        engine::admin::scan_log_dir(&FsStorage, &dir.join(engine::admin::LOG_DIR), |_| {})
            .expect("scan")
            .bytes;
    assert!(after_bytes < before_bytes, "the log shrinks");
    check_valid(&dir, &expected_after, "reopened");
    // A restore point inside the window still works, one before it is refused.
    let restored = scratch.path().join("restored");
    let point = last - 10;
    engine::admin::restore_dir(
        &dir,
        &restored,
        RestoreOptions {
            at: At::Seq(point),
            ..RestoreOptions::default()
        },
        &mut |_| {},
    )
    .expect("restore inside the window");
    let engine = common::open_with(&restored, small_segments());
    assert_eq!(engine.last_seq(), point);
    engine.shutdown();
    drop(engine);
    let refused = engine::admin::restore_dir(
        &dir,
        &scratch.path().join("too-old"),
        RestoreOptions {
            at: At::Seq(5),
            ..RestoreOptions::default()
        },
        &mut |_| {},
    );
    assert!(
        matches!(refused, Err(Error::SeqUnavailable { .. })),
        "{refused:?}"
    );
    // The projection gone entirely: the open starts from the snapshot.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("data.db{suffix}")));
    }
    expected_after.sort();
    check_valid(
        &dir,
        &expected_after,
        "projection rebuilt from the snapshot",
    );
}

#[test]
fn a_crash_at_every_step_of_compaction_leaves_a_valid_data_dir() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let source = scratch.path().join("src");
    let expected = build_source(&source);
    let mut step_index = 0usize;
    loop {
        let dir: PathBuf = scratch.path().join(format!("crash-{step_index}"));
        copy_dir(&source, &dir);
        let log = reader(&dir);
        let mut seen = 0usize;
        let mut last_step = None;
        let result = compact_dir(
            &FsStorage,
            &dir,
            &log,
            Retention::Commits(40),
            &mut |_| {},
            &mut |step| {
                last_step = Some(step.clone());
                if seen == step_index {
                    return Err(Error::Closed);
                }
                seen += 1;
                Ok(())
            },
        );
        let finished = result.is_ok();
        check_valid(
            &dir,
            &expected,
            &format!("crash after step {step_index} ({last_step:?})"),
        );
        // Compacting again completes and keeps the state.
        let log = reader(&dir);
        compact_dir(
            &FsStorage,
            &dir,
            &log,
            Retention::Commits(40),
            &mut |_| {},
            &mut |_| Ok(()),
        )
        .expect("compaction after the crash completes");
        check_valid(
            &dir,
            &expected,
            &format!("recompacted after step {step_index}"),
        );
        assert!(reader(&dir).first_seq() > 1);
        let _ = std::fs::remove_dir_all(&dir);
        if finished {
            break;
        }
        if matches!(last_step, Some(CompactStep::Done)) {
            break;
        }
        step_index += 1;
        assert!(
            step_index < 1000,
            "compaction has a bounded number of steps"
        );
    }
    assert!(step_index >= 3, "steps exercised: {step_index}");
}

#[test]
fn retention_by_time_keeps_the_recent_commits() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("d");
    let expected = build_source(&dir);
    let log = reader(&dir);
    let last = log.last_seq();
    let last_time = log.read_from(last, 1).expect("read")[0].timestamp_ms;
    // A window ending at the last commit's time keeps at least that commit.
    let report = compact_dir(
        &FsStorage,
        &dir,
        &log,
        Retention::Duration {
            window_ms: 0,
            now_ms: last_time,
        },
        &mut |_| {},
        &mut |_| Ok(()),
    )
    .expect("compact");
    assert!(report.first_after <= last);
    check_valid(&dir, &expected, "time retention");
}
