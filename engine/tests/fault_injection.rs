//! Property: when an append, fsync, rename or directory sync of the log fails (once or
//! persistently; "disk full" is not poisoning and is covered by `disk_full.rs`), the caller of the failing commit gets an error and
//! never success, the engine is poisoned (later writes fail with `Error::Poisoned`), and after
//! reopening on healthy storage every acknowledged commit is present, no unacknowledged commit
//! is visible, multi-change commits are all-or-nothing, and the projection equals a fresh
//! replay. Also under segment rolling with tiny segments, and with concurrent submitters.
//!
//! Guards against: acknowledging a commit whose bytes did not reach the disk, committing the
//! SQLite transaction after a failed fsync, leaving half a frame behind that a later open
//! replays, and writing on after a failed fsync.
#![allow(
    clippy::disallowed_methods,
    reason = "tests damage and inspect log files directly"
)]

mod common;

use common::*;
use engine::testing::{Fault, FaultOp, FaultyStorage};
use engine::{Actor, Change, Engine, EngineConfig, Error, Failure, SyncPolicy, Value};
use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::path::Path;
use std::sync::{Arc, Mutex};

fn config(storage: &FaultyStorage, segment_bytes_max: u64) -> EngineConfig {
    EngineConfig {
        sync: SyncPolicy::Always,
        segment_bytes_max,
        storage: Arc::new(storage.clone()),
        ..EngineConfig::default()
    }
}

/// One commit with two records, `<id>a` and `<id>b`.
fn insert_pair(engine: &Engine, id: &str) -> Result<u64, Failure<Error>> {
    let id = id.to_string();
    engine
        .execute(Actor::System, move |tx| {
            for suffix in ["a", "b"] {
                let rid = format!("{id}{suffix}");
                tx.stage(Change::RecordCreated {
                    collection_id: "c_notes".into(),
                    id: rid.clone(),
                    values: vec![
                        ("id".into(), Value::Text(rid)),
                        ("title".into(), Value::from("")),
                        ("n".into(), Value::Int(1)),
                    ],
                })?;
            }
            Ok::<_, Error>(())
        })
        .map(|outcome| outcome.commit.expect("a commit").seq)
}

/// Checks the reopened data dir: exactly the acknowledged pairs, each whole.
fn check_after_reopen(dir: &Path, acked: &BTreeSet<String>, context: &str) {
    let (engine, _) = Engine::open(dir, EngineConfig::default())
        .unwrap_or_else(|err| panic!("{context}: reopen on healthy storage failed: {err}"));
    let ids: BTreeSet<String> = notes(&engine).into_iter().map(|(id, _, _)| id).collect();
    let expected: BTreeSet<String> = acked
        .iter()
        .flat_map(|id| [format!("{id}a"), format!("{id}b")])
        .collect();
    assert_eq!(
        ids, expected,
        "{context}: visible records vs acknowledged commits"
    );
    assert_eq!(engine.last_seq(), 1 + acked.len() as u64, "{context}");
    assert_projection_matches_replay(&engine);
    // The reopened engine writes again and continues the seq.
    let seq = insert_pair(&engine, "after").unwrap_or_else(|err| panic!("{context}: {err:?}"));
    assert_eq!(seq, 2 + acked.len() as u64, "{context}");
    engine.shutdown();
}

fn run_sequential(
    op: FaultOp,
    nth: u64,
    persistent: bool,
    kind: ErrorKind,
    segment_bytes_max: u64,
) {
    let context =
        format!("{op:?} #{nth} persistent={persistent} {kind:?} segment_max={segment_bytes_max}");
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = FaultyStorage::new();
    let (engine, _) = Engine::open(dir.path(), config(&storage, segment_bytes_max)).expect("open");
    create_notes(&engine);
    let mut acked = BTreeSet::new();
    for index in 0..3 {
        let id = format!("pre{index}");
        insert_pair(&engine, &id).expect("healthy insert");
        acked.insert(id);
    }
    storage.plan(Fault {
        op,
        nth,
        persistent,
        kind,
    });
    let mut failed = None;
    for index in 0..40 {
        let id = format!("k{index:02}");
        match insert_pair(&engine, &id) {
            Ok(_) => {
                assert!(failed.is_none(), "{context}: success after a failure");
                acked.insert(id);
            }
            Err(Failure::Engine(err)) => {
                if failed.is_none() {
                    // The failing group's callers get the I/O error (wrapped as the poison
                    // reason, since the engine is poisoned by it at the same moment).
                    assert!(
                        matches!(&err, Error::Io { .. } | Error::Poisoned(_))
                            && err.to_string().contains("injected"),
                        "{context}: first failure should carry the I/O error, got {err}"
                    );
                    failed = Some(id);
                } else {
                    assert!(matches!(err, Error::Poisoned(_)), "{context}: {err}");
                }
            }
            Err(Failure::Command(err)) => panic!("{context}: command failed: {err}"),
        }
    }
    assert!(failed.is_some(), "{context}: the fault never fired");
    assert!(engine.poisoned().is_some(), "{context}");
    // Even with the fault gone, the poisoned engine refuses writes until reopened.
    storage.clear();
    match insert_pair(&engine, "late") {
        Err(Failure::Engine(Error::Poisoned(_))) => {}
        other => panic!("{context}: expected Poisoned, got {other:?}"),
    }
    engine.shutdown();
    drop(engine);
    check_after_reopen(dir.path(), &acked, &context);
}

#[test]
fn a_failed_append_poisons_and_loses_nothing_acknowledged() {
    for nth in [1, 2, 5] {
        for persistent in [false, true] {
            run_sequential(FaultOp::Append, nth, persistent, ErrorKind::Other, u64::MAX);
        }
    }
    run_sequential(
        FaultOp::Append,
        3,
        true,
        ErrorKind::PermissionDenied,
        u64::MAX,
    );
}

#[test]
fn a_failed_fsync_poisons_and_loses_nothing_acknowledged() {
    for nth in [1, 4] {
        for persistent in [false, true] {
            run_sequential(FaultOp::Sync, nth, persistent, ErrorKind::Other, u64::MAX);
        }
    }
    run_sequential(
        FaultOp::Sync,
        2,
        false,
        ErrorKind::PermissionDenied,
        u64::MAX,
    );
}

#[test]
fn faults_while_rolling_segments() {
    // Tiny segments: every group or two rolls, so renames and directory syncs happen often.
    for nth in 1..=4 {
        run_sequential(FaultOp::Rename, nth, false, ErrorKind::Other, 300);
        run_sequential(FaultOp::Rename, nth, true, ErrorKind::PermissionDenied, 300);
    }
    for nth in [1, 3, 7] {
        run_sequential(
            FaultOp::Append,
            nth,
            false,
            ErrorKind::PermissionDenied,
            300,
        );
        run_sequential(FaultOp::Sync, nth, true, ErrorKind::Other, 300);
    }
}

/// Many submitters at once: a failing group fails every commit in it, none is acknowledged.
#[test]
fn concurrent_submitters_under_a_fault() {
    for (op, nth) in [
        (FaultOp::Sync, 5),
        (FaultOp::Append, 3),
        (FaultOp::Rename, 2),
    ] {
        let context = format!("concurrent {op:?} #{nth}");
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = FaultyStorage::new();
        let (engine, _) = Engine::open(dir.path(), config(&storage, 2000)).expect("open");
        create_notes(&engine);
        storage.plan(Fault {
            op,
            nth,
            persistent: false,
            kind: ErrorKind::Other,
        });
        let acked = Arc::new(Mutex::new(BTreeSet::new()));
        let threads: Vec<_> = (0..8)
            .map(|thread| {
                let engine = engine.clone();
                let acked = Arc::clone(&acked);
                std::thread::spawn(move || {
                    for index in 0..25 {
                        let id = format!("t{thread}i{index:02}");
                        match insert_pair(&engine, &id) {
                            Ok(_) => {
                                acked.lock().expect("lock").insert(id);
                            }
                            Err(Failure::Engine(Error::Poisoned(_) | Error::Io { .. })) => {}
                            Err(other) => panic!("unexpected {other:?}"),
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("thread");
        }
        assert!(
            engine.poisoned().is_some(),
            "{context}: the fault never fired"
        );
        engine.shutdown();
        drop(engine);
        let acked = acked.lock().expect("lock").clone();
        check_after_reopen(dir.path(), &acked, &context);
    }
}
