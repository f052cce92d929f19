//! Compaction of a log that fits in one segment: the history before the retention window goes
//! (the active segment is rolled, the segment holding the cut split), offline and while the
//! engine serves, and a crash after any step (or an I/O failure at any rename or directory
//! fsync) leaves a valid data dir that a second compaction finishes.
//!
//! Guards against: `--retain-commits 10` removing nothing on a small log; a split that loses,
//! duplicates or reorders a commit; an overlap of the old segment and its copy that recovery,
//! `verify` or readers refuse; concurrent writers or readers failing during a roll or split.
#![expect(
    clippy::disallowed_methods,
    reason = "tests copy and inspect data dirs directly"
)]

mod common;

use common::{create_notes, insert_many, insert_note, notes, segments};
use engine::admin::{compact_dir, CompactStep};
use engine::testing::{Fault, FaultOp, FaultyStorage};
use engine::{Engine, EngineConfig, Error, FsStorage, LogReader, Retention, SyncPolicy};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn config() -> EngineConfig {
    EngineConfig {
        sync: SyncPolicy::None,
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

fn log_bytes(dir: &Path) -> u64 {
    segments(dir)
        .iter()
        .map(|path| std::fs::metadata(path).expect("stat").len())
        .sum()
}

/// 1 collection + 99 notes = seqs 1..=100, all in one segment.
fn build(dir: &Path) -> Vec<(String, String, i64)> {
    let engine = common::open_with(dir, config());
    create_notes(&engine);
    insert_many(&engine, 0, 99);
    assert_eq!(engine.last_seq(), 100);
    let expected = notes(&engine);
    engine.shutdown();
    assert_eq!(segments(dir).len(), 1);
    expected
}

/// The dir opens, holds `expected`, reads the same log read-only (what `verify` does), and
/// every position from the log's first seq on reads back in order.
fn check_valid(dir: &Path, expected: &[(String, String, i64)], last: u64, context: &str) {
    let (reader, report) =
        LogReader::open_dir(Arc::new(FsStorage), &dir.join(engine::admin::LOG_DIR))
            .unwrap_or_else(|err| panic!("{context}: read-only scan: {err}"));
    assert_eq!(report.torn_tail, None, "{context}");
    assert_eq!(reader.last_seq(), last, "{context}");
    let first = reader.first_seq();
    // The whole retained range (a busy run can retain more than one read's worth).
    let span = (last + 1).saturating_sub(first) as usize;
    let commits = reader.read_from(first, span.max(1)).expect("read");
    let seqs: Vec<u64> = commits.iter().map(|commit| commit.seq).collect();
    assert_eq!(seqs, (first..=last).collect::<Vec<_>>(), "{context}");
    let (engine, _) =
        Engine::open(dir, config()).unwrap_or_else(|err| panic!("{context}: open refused: {err}"));
    assert_eq!(engine.last_seq(), last, "{context}");
    assert_eq!(notes(&engine), expected, "{context}");
    let commits = engine.log().read_from(first, span.max(1)).expect("read");
    assert_eq!(
        commits.len() as u64,
        (last + 1).saturating_sub(first),
        "{context}"
    );
    engine.shutdown();
}

#[test]
fn retain_commits_on_a_one_segment_log_removes_the_older_history() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("d");
    let expected = build(&dir);
    let before = log_bytes(&dir);
    let engine = common::open_with(&dir, config());
    let report = engine.compact(Retention::Commits(10)).expect("compact");
    assert_eq!(
        (report.first_before, report.first_after, report.last_seq),
        (1, 91, 100)
    );
    assert_eq!(report.snapshot_seq, 90);
    assert!(report.segments_removed >= 1, "{report:?}");
    assert!(report.bytes_copied > 0, "{report:?}");
    assert_eq!(engine.log().first_seq(), 91);
    assert!(matches!(
        engine.log().read_from(90, 1),
        Err(Error::SeqUnavailable { .. })
    ));
    let kept = engine.log().read_from(91, 100).expect("read the window");
    assert_eq!(
        kept.iter().map(|commit| commit.seq).collect::<Vec<_>>(),
        (91..=100).collect::<Vec<_>>()
    );
    assert_eq!(notes(&engine), expected);
    // Writing goes on in the rolled segment.
    assert_eq!(insert_note(&engine, "more", "more", 1), Ok(101));
    engine.shutdown();
    drop(engine);
    let after = log_bytes(&dir);
    assert!(
        after * 5 < before,
        "the log shrank from {before} to {after} bytes"
    );
    let mut expected = expected;
    expected.push(("more".into(), "more".into(), 1));
    expected.sort();
    check_valid(&dir, &expected, 101, "after compaction");
    // Keeping no commit at all leaves an empty segment after a snapshot at the last seq.
    let engine = common::open_with(&dir, config());
    let report = engine.compact(Retention::Commits(0)).expect("compact all");
    assert_eq!(report.first_after, 102);
    engine.shutdown();
    drop(engine);
    check_valid(&dir, &expected, 101, "after compacting everything");
}

#[test]
fn offline_compaction_splits_the_last_segment_too() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("d");
    let expected = build(&dir);
    let reader = LogReader::open_dir(Arc::new(FsStorage), &dir.join(engine::admin::LOG_DIR))
        .expect("open")
        .0;
    let report = compact_dir(
        &FsStorage,
        &dir,
        &reader,
        Retention::Commits(10),
        &mut |_| {},
        &mut |_| Ok(()),
    )
    .expect("compact");
    assert_eq!(report.first_after, 91);
    check_valid(&dir, &expected, 100, "offline");
    // A torn last segment is refused (open the dir first), and nothing is removed.
    let segment = segments(&dir).pop().expect("segment");
    let mut bytes = std::fs::read(&segment).expect("read");
    bytes.extend_from_slice(&[7, 0, 0, 0, 1]);
    std::fs::write(&segment, &bytes).expect("write");
    let engine = common::open_with(&dir, config());
    insert_many(&engine, 200, 20);
    engine.shutdown();
    drop(engine);
    let mut bytes = std::fs::read(&segment).expect("read");
    bytes.extend_from_slice(&[7, 0, 0, 0, 1]);
    std::fs::write(&segment, &bytes).expect("write");
    let reader = LogReader::open_dir(Arc::new(FsStorage), &dir.join(engine::admin::LOG_DIR))
        .expect("open")
        .0;
    let refused = compact_dir(
        &FsStorage,
        &dir,
        &reader,
        Retention::Commits(5),
        &mut |_| {},
        &mut |_| Ok(()),
    );
    assert!(matches!(refused, Err(Error::Corrupt { .. })), "{refused:?}");
    assert_eq!(reader.first_seq(), 91);
}

/// A crash after every step in turn, with a live engine whose active segment holds the cut;
/// then reopen, check, and compact again.
#[test]
fn a_crash_after_every_step_of_a_split_leaves_a_valid_dir() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let source = scratch.path().join("src");
    let expected = build(&source);
    let mut step_index = 0usize;
    let mut seen_steps = Vec::new();
    loop {
        let dir: PathBuf = scratch.path().join(format!("crash-{step_index}"));
        copy_dir(&source, &dir);
        let engine = common::open_with(&dir, config());
        let mut seen = 0usize;
        let mut last_step = None;
        let result = compact_dir(
            &FsStorage,
            &dir,
            engine.log(),
            Retention::Commits(10),
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
        engine.shutdown();
        drop(engine);
        let context = format!("crash after step {step_index} ({last_step:?})");
        seen_steps.push(format!("{last_step:?}"));
        check_valid(&dir, &expected, 100, &context);
        let engine = common::open_with(&dir, config());
        let report = engine
            .compact(Retention::Commits(10))
            .unwrap_or_else(|err| panic!("{context}: compacting again: {err}"));
        assert_eq!(report.first_after, 91, "{context}");
        engine.shutdown();
        drop(engine);
        check_valid(&dir, &expected, 100, &format!("{context}, compacted again"));
        assert_eq!(
            segments(&dir)
                .iter()
                .filter_map(|path| path
                    .file_name()?
                    .to_str()
                    .and_then(engine::admin::parse_segment_name))
                .next(),
            Some(91),
            "{context}"
        );
        let _ = std::fs::remove_dir_all(&dir);
        if result.is_ok() || matches!(last_step, Some(CompactStep::Done)) {
            break;
        }
        step_index += 1;
        assert!(step_index < 100, "compaction has a bounded number of steps");
    }
    let steps = seen_steps.join(" ");
    for name in [
        "Rolled",
        "SnapshotWritten",
        "SplitCopied",
        "SplitNamed",
        "SegmentRemoved",
    ] {
        assert!(steps.contains(name), "step {name} exercised: {steps}");
    }
}

/// Every rename and directory fsync of a compaction fails in turn (a crash-like I/O error);
/// the compaction reports it, the dir stays valid, a clean run finishes.
#[test]
fn a_failed_rename_or_fsync_at_any_point_leaves_a_valid_dir() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let source = scratch.path().join("src");
    let expected = build(&source);
    let mut failures = 0;
    for nth in 1..=8 {
        let dir = scratch.path().join(format!("fault-{nth}"));
        copy_dir(&source, &dir);
        let storage = FaultyStorage::new();
        let engine = common::open_with(
            &dir,
            EngineConfig {
                storage: Arc::new(storage.clone()),
                ..config()
            },
        );
        storage.plan(Fault {
            op: FaultOp::Rename,
            nth,
            persistent: false,
            kind: std::io::ErrorKind::Other,
        });
        let result = engine.compact(Retention::Commits(10));
        storage.clear();
        if result.is_err() {
            failures += 1;
        }
        // A write after a failed roll is refused (poisoned) or durable; never lost.
        let after = insert_note(&engine, "after", "after", 5);
        engine.shutdown();
        drop(engine);
        let mut expected = expected.clone();
        let last = match after {
            Ok(seq) => {
                expected.push(("after".into(), "after".into(), 5));
                expected.sort();
                seq
            }
            Err(_) => 100,
        };
        let context = format!("rename/fsync #{nth} failed ({result:?})");
        check_valid(&dir, &expected, last, &context);
        let engine = common::open_with(&dir, config());
        engine.compact(Retention::Commits(10)).expect("clean run");
        engine.shutdown();
        drop(engine);
        check_valid(
            &dir,
            &expected,
            last,
            &format!("{context}, compacted again"),
        );
    }
    assert!(failures >= 4, "faults hit the compaction {failures} times");
}

/// Writers and readers keep going while compaction rolls and splits the active segment again
/// and again: every acknowledged note stays, readers see either the commits or an explicit
/// "unavailable", never another error.
#[test]
fn compaction_while_serving_rolls_and_splits_under_writers_and_readers() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("d");
    let engine = common::open_with(&dir, config());
    create_notes(&engine);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let engine = engine.clone();
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut written = 0i64;
            while !stop.load(Ordering::SeqCst) || written < 50 {
                insert_note(&engine, &format!("w{written:05}"), "", written).expect("insert");
                written += 1;
            }
            written
        })
    };
    let reader = {
        let engine = engine.clone();
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let first = engine.log().first_seq();
                match engine.log().read_from(first, 64) {
                    Ok(commits) => {
                        for pair in commits.windows(2) {
                            assert_eq!(pair[1].seq, pair[0].seq + 1, "commits in order");
                        }
                        reads += 1;
                    }
                    Err(Error::SeqUnavailable { .. }) => {}
                    Err(other) => panic!("reader failed: {other}"),
                }
            }
            reads
        })
    };
    let mut compactions = 0;
    let mut copied = 0;
    while compactions < 15 {
        std::thread::sleep(std::time::Duration::from_millis(20));
        let report = engine.compact(Retention::Commits(7)).expect("compact");
        copied += report.bytes_copied;
        compactions += 1;
    }
    stop.store(true, Ordering::SeqCst);
    let written = writer.join().expect("writer");
    let reads = reader.join().expect("reader");
    assert!(reads > 0 && copied > 0, "reads {reads}, copied {copied}");
    let last = engine.last_seq();
    assert_eq!(last, written as u64 + 1);
    assert!(engine.log().first_seq() > 1);
    let expected: Vec<(String, String, i64)> = (0..written)
        .map(|index| (format!("w{index:05}"), String::new(), index))
        .collect();
    assert_eq!(notes(&engine), expected);
    engine.shutdown();
    drop(engine);
    check_valid(&dir, &expected, last, "after serving");
}
