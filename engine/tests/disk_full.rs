//! A full disk: "an error answer means not committed; a committed write is answered as a
//! success", no poisoning that needs a restart, reads keep working, writes resume by
//! themselves once space is freed, and a restart on a still-full disk starts and serves reads.
//!
//! Faults are injected deterministically with `FaultyStorage`: `Append`/`Sync` of the log
//! with `ErrorKind::StorageFull` (nothing reaches the log), and `ProjectionCommit` (the SQLite
//! `COMMIT` after the log fsync fails: the commit is durable, so it is a success and the
//! projection catches up from the log later).
//!
//! Guards against: answering 500 for a write that a restart then shows (the bug of issue #13
//! item 2), poisoning the engine on ENOSPC, and refusing to open on a full disk.

mod common;

use common::*;
use engine::testing::{Fault, FaultOp, FaultyStorage};
use engine::{Actor, Engine, EngineConfig, Error, Failure, SyncPolicy};
use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn config(storage: &FaultyStorage) -> EngineConfig {
    EngineConfig {
        sync: SyncPolicy::Always,
        storage: Arc::new(storage.clone()),
        ..EngineConfig::default()
    }
}

fn full(op: FaultOp) -> Fault {
    Fault {
        op,
        nth: 1,
        persistent: true,
        kind: ErrorKind::StorageFull,
    }
}

fn ids(engine: &Engine) -> BTreeSet<String> {
    notes(engine).into_iter().map(|(id, _, _)| id).collect()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reopens on healthy storage: exactly `acked` is visible and the projection equals a replay.
fn check_reopened(dir: &Path, acked: &BTreeSet<String>) {
    let (engine, _) = Engine::open(dir, EngineConfig::default()).expect("reopen");
    assert_eq!(
        &ids(&engine),
        acked,
        "visible records vs acknowledged writes"
    );
    assert_projection_matches_replay(&engine);
    engine.shutdown();
}

#[test]
fn a_full_log_disk_fails_the_write_alone_and_writes_resume_without_restart() {
    for op in [FaultOp::Append, FaultOp::Sync] {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = FaultyStorage::new();
        let (engine, _) = Engine::open(dir.path(), config(&storage)).expect("open");
        create_notes(&engine);
        let mut acked = BTreeSet::new();
        insert_note(&engine, "a", "", 1).expect("healthy write");
        acked.insert("a".to_string());
        storage.plan(full(op));
        for id in ["b", "c"] {
            let err = engine
                .execute(Actor::System, {
                    let id = id.to_string();
                    move |tx| insert_change(tx, &id)
                })
                .expect_err("a write on a full disk fails");
            match err {
                Failure::Engine(err) => assert!(err.is_storage_full(), "{op:?}: {err}"),
                Failure::Command(err) => panic!("{op:?}: {err}"),
            }
        }
        assert!(engine.poisoned().is_none(), "{op:?}: a full disk poisons");
        // Reads keep working and show only what was committed.
        assert_eq!(ids(&engine), acked, "{op:?}");
        // Space is freed: the next write works, same process.
        storage.clear();
        insert_note(&engine, "d", "", 1).expect("write after space is freed");
        acked.insert("d".to_string());
        assert_eq!(ids(&engine), acked, "{op:?}");
        assert_eq!(engine.last_seq(), 3, "{op:?}: failed writes took no seq");
        engine.shutdown();
        drop(engine);
        check_reopened(dir.path(), &acked);
    }
}

#[test]
fn a_projection_commit_failing_after_the_fsync_is_a_success_and_is_caught_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = FaultyStorage::new();
    let (engine, _) = Engine::open(dir.path(), config(&storage)).expect("open");
    create_notes(&engine);
    insert_note(&engine, "a", "", 1).expect("healthy write");
    storage.plan(full(FaultOp::ProjectionCommit));
    // Durable in the log: answered as a success although SQLite did not commit it.
    let seq = insert_note(&engine, "b", "", 2).expect("a committed write is a success");
    assert_eq!(engine.last_seq(), seq);
    assert_eq!(
        engine.published_seq(),
        seq - 1,
        "published before it is applied"
    );
    // Reads serve the last projected state.
    assert_eq!(ids(&engine), BTreeSet::from(["a".to_string()]));
    // New writes are refused (not committed) while the projection cannot catch up.
    match insert_note(&engine, "c", "", 3) {
        Err(text) => assert!(text.contains("StorageFull"), "{text}"),
        Ok(seq) => panic!("write accepted at seq {seq} while the projection is behind"),
    }
    assert!(engine.poisoned().is_none());
    assert_eq!(engine.last_seq(), seq, "a refused write took no seq");
    // Space is freed: the writer catches up on its own, without a new write or a restart.
    storage.clear();
    wait_for("the idle catch-up", || engine.published_seq() == seq);
    assert_eq!(
        ids(&engine),
        BTreeSet::from(["a".to_string(), "b".to_string()])
    );
    insert_note(&engine, "d", "", 4).expect("writes resume");
    assert_projection_matches_replay(&engine);
    engine.shutdown();
    drop(engine);
    check_reopened(
        dir.path(),
        &["a", "b", "d"].iter().map(|id| id.to_string()).collect(),
    );
}

#[test]
fn a_projection_commit_failing_once_is_caught_up_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = FaultyStorage::new();
    let (engine, _) = Engine::open(dir.path(), config(&storage)).expect("open");
    create_notes(&engine);
    storage.plan(Fault {
        op: FaultOp::ProjectionCommit,
        nth: 1,
        persistent: false,
        kind: ErrorKind::Other,
    });
    let seq = insert_note(&engine, "a", "", 1).expect("committed");
    // The writer retried right after the failure.
    assert_eq!(engine.published_seq(), seq);
    insert_note(&engine, "b", "", 2).expect("next write");
    assert_eq!(ids(&engine).len(), 2);
    engine.shutdown();
}

#[test]
fn a_restart_on_a_still_full_disk_starts_and_serves_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = FaultyStorage::new();
    let (engine, _) = Engine::open(dir.path(), config(&storage)).expect("open");
    create_notes(&engine);
    insert_note(&engine, "a", "", 1).expect("healthy write");
    storage.plan(full(FaultOp::ProjectionCommit));
    let seq = insert_note(&engine, "b", "", 2).expect("committed");
    engine.shutdown();
    drop(engine);
    // Still full at the restart: the catch-up at open fails, the engine opens anyway.
    storage.plan(full(FaultOp::ProjectionCommit));
    let (engine, _) = Engine::open(dir.path(), config(&storage)).expect("open on a full disk");
    assert_eq!(engine.last_seq(), seq);
    assert_eq!(engine.published_seq(), seq - 1);
    assert_eq!(ids(&engine), BTreeSet::from(["a".to_string()]));
    match insert_note(&engine, "c", "", 3) {
        Err(text) => assert!(text.contains("StorageFull"), "{text}"),
        Ok(seq) => panic!("write accepted at seq {seq} while the projection is behind"),
    }
    storage.clear();
    wait_for("the catch-up after space is freed", || {
        engine.published_seq() == seq
    });
    insert_note(&engine, "d", "", 4).expect("writes resume");
    assert_eq!(
        ids(&engine),
        ["a", "b", "d"].iter().map(|id| id.to_string()).collect()
    );
    engine.shutdown();
}

#[test]
fn a_full_disk_while_rolling_segments_poisons_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = FaultyStorage::new();
    let config = EngineConfig {
        segment_bytes_max: 300,
        ..config(&storage)
    };
    let (engine, _) = Engine::open(dir.path(), config).expect("open");
    create_notes(&engine);
    let mut acked = BTreeSet::new();
    storage.plan(full(FaultOp::Rename));
    for index in 0..5 {
        let id = format!("r{index}");
        match insert_note(&engine, &id, "", index) {
            Ok(_) => {
                acked.insert(id);
            }
            Err(text) => assert!(text.contains("StorageFull"), "{text}"),
        }
    }
    assert!(engine.poisoned().is_none());
    storage.clear();
    for index in 5..10 {
        let id = format!("r{index}");
        insert_note(&engine, &id, "", index).expect("write after space is freed");
        acked.insert(id);
    }
    assert_eq!(ids(&engine), acked);
    engine.shutdown();
    drop(engine);
    check_reopened(dir.path(), &acked);
}

/// Many writers while the log's disk is full now and then: every write answered with success
/// is there after a reopen, every write answered with an error is not.
#[test]
fn concurrent_writers_error_means_not_committed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = FaultyStorage::new();
    let (engine, _) = Engine::open(dir.path(), config(&storage)).expect("open");
    create_notes(&engine);
    let acked = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let refused = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let threads: Vec<_> = (0..6)
        .map(|thread| {
            let engine = engine.clone();
            let acked = Arc::clone(&acked);
            let refused = Arc::clone(&refused);
            std::thread::spawn(move || {
                for index in 0..40 {
                    let id = format!("t{thread}i{index:02}");
                    match insert_note(&engine, &id, "", index) {
                        Ok(_) => acked.lock().expect("lock").insert(id),
                        Err(_) => refused.lock().expect("lock").insert(id),
                    };
                }
            })
        })
        .collect();
    for (round, op) in [FaultOp::Append, FaultOp::ProjectionCommit, FaultOp::Sync]
        .into_iter()
        .cycle()
        .take(9)
        .enumerate()
    {
        std::thread::sleep(Duration::from_millis(5));
        storage.plan(Fault {
            op,
            nth: 1 + round as u64 % 3,
            persistent: true,
            kind: ErrorKind::StorageFull,
        });
        std::thread::sleep(Duration::from_millis(5));
        storage.clear();
    }
    for thread in threads {
        thread.join().expect("thread");
    }
    assert!(engine.poisoned().is_none());
    wait_for("the catch-up", || {
        engine.published_seq() == engine.last_seq()
    });
    let acked = acked.lock().expect("lock").clone();
    let refused = refused.lock().expect("lock").clone();
    assert_eq!(acked.len() + refused.len(), 240);
    assert_eq!(ids(&engine), acked);
    engine.shutdown();
    drop(engine);
    check_reopened(dir.path(), &acked);
}

fn insert_change(tx: &mut engine::Tx<'_>, id: &str) -> Result<(), Error> {
    tx.stage(engine::Change::RecordCreated {
        collection_id: "c_notes".into(),
        id: id.to_string(),
        values: vec![
            ("id".into(), engine::Value::Text(id.to_string())),
            ("title".into(), engine::Value::from("")),
            ("n".into(), engine::Value::Int(0)),
        ],
    })
}
