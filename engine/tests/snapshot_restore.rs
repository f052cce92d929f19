//! Point-in-time restore equals the model state at that point.
//!
//! Property: for a random workload (inserts, updates, deletes of notes, snapshots cut between
//! commits, commits sharing a millisecond), restoring a data dir at a random position or time
//! gives exactly the state after the last commit at or before it, the restored dir opens as a
//! normal data dir, and its next commit continues the seq numbering. Method: a `BTreeMap` model
//! recorded after every commit, a controllable clock, `restore_dir` and `Engine::open`.
//! Guards against: off-by-one at the restore point, a snapshot newer than the point being used,
//! time resolution picking the wrong one of several commits in the same millisecond.

mod common;

use common::{create_notes, notes};
use engine::admin::{At, RestoreOptions};
use engine::{Change, Engine, EngineConfig, Error, SyncPolicy, Value};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

type Model = BTreeMap<String, (String, i64)>;

#[derive(Debug, Clone)]
enum Op {
    Insert(u8, i64),
    Update(u8, i64),
    Delete(u8),
    Snapshot,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..24, any::<i64>()).prop_map(|(k, n)| Op::Insert(k, n)),
        3 => (0u8..24, any::<i64>()).prop_map(|(k, n)| Op::Update(k, n)),
        2 => (0u8..24).prop_map(Op::Delete),
        1 => Just(Op::Snapshot),
    ]
}

fn open_clocked(dir: &Path, clock: &Arc<AtomicI64>) -> Engine {
    let clock = Arc::clone(clock);
    let config = EngineConfig {
        sync: SyncPolicy::None,
        clock: Arc::new(move || clock.load(Ordering::SeqCst)),
        ..EngineConfig::default()
    };
    Engine::open(dir, config).expect("open").0
}

fn write(engine: &Engine, change: Change) -> u64 {
    engine
        .execute(engine::Actor::System, move |tx| tx.stage(change))
        .map_err(|failure| format!("{failure:?}"))
        .expect("write")
        .commit
        .expect("a commit")
        .seq
}

fn values(id: &str, n: i64) -> Vec<(String, Value)> {
    vec![
        ("id".into(), Value::Text(id.into())),
        ("title".into(), Value::Text(format!("t-{id}-{n}"))),
        ("n".into(), Value::Int(n)),
    ]
}

struct Run {
    /// (seq, time, model after it); index 0 is the collection commit.
    history: Vec<(u64, i64, Model)>,
}

fn run_workload(dir: &Path, ops: &[(Op, u8)]) -> Run {
    let clock = Arc::new(AtomicI64::new(1_700_000_000_000));
    let engine = open_clocked(dir, &clock);
    create_notes(&engine);
    let mut model = Model::new();
    let mut history = vec![(1, clock.load(Ordering::SeqCst), model.clone())];
    for (op, advance) in ops {
        clock.fetch_add(i64::from(*advance % 3), Ordering::SeqCst);
        let change = match op {
            Op::Insert(key, n) => {
                let id = format!("k{key:02}");
                if model.contains_key(&id) {
                    continue;
                }
                model.insert(id.clone(), (format!("t-{id}-{n}"), *n));
                Change::RecordCreated {
                    collection_id: "c_notes".into(),
                    id: id.clone(),
                    values: values(&id, *n),
                }
            }
            Op::Update(key, n) => {
                let id = format!("k{key:02}");
                if !model.contains_key(&id) {
                    continue;
                }
                model.insert(id.clone(), (format!("t-{id}-{n}"), *n));
                Change::RecordUpdated {
                    collection_id: "c_notes".into(),
                    id: id.clone(),
                    values: values(&id, *n),
                }
            }
            Op::Delete(key) => {
                let id = format!("k{key:02}");
                if model.remove(&id).is_none() {
                    continue;
                }
                Change::RecordDeleted {
                    collection_id: "c_notes".into(),
                    id,
                    old: Vec::new(),
                }
            }
            Op::Snapshot => {
                engine.snapshot().expect("snapshot");
                continue;
            }
        };
        let seq = write(&engine, change);
        history.push((seq, clock.load(Ordering::SeqCst), model.clone()));
    }
    engine.shutdown();
    Run { history }
}

fn as_rows(model: &Model) -> Vec<(String, String, i64)> {
    model
        .iter()
        .map(|(id, (title, n))| (id.clone(), title.clone(), *n))
        .collect()
}

fn check_restore(source: &Path, run: &Run, at: At, scratch: &Path, label: &str) {
    let last = run.history.last().map_or(0, |entry| entry.0);
    let expected: &Model = match at {
        At::Seq(seq) => {
            &run.history
                .iter()
                .rev()
                .find(|entry| entry.0 <= seq)
                .expect("seq >= 1")
                .2
        }
        At::TimeMs(time) => {
            &run.history
                .iter()
                .rev()
                .find(|entry| entry.1 <= time)
                .expect("time at or after the first commit")
                .2
        }
        At::Latest => &run.history.last().expect("history").2,
    };
    let target = scratch.join(label);
    let report = engine::admin::restore_dir(
        source,
        &target,
        RestoreOptions {
            at,
            ..RestoreOptions::default()
        },
        &mut |_| {},
    )
    .expect("restore");
    let restored = common::open(&target, SyncPolicy::None);
    assert_eq!(notes(&restored), as_rows(expected), "{label}: {at:?}");
    assert_eq!(restored.last_seq(), report.seq, "{label}");
    assert!(report.seq <= last);
    // The restored dir continues the numbering.
    let next = write(
        &restored,
        Change::RecordCreated {
            collection_id: "c_notes".into(),
            id: "zz-after-restore".into(),
            values: values("zz-after-restore", 1),
        },
    );
    assert_eq!(next, report.seq + 1, "{label}");
    restored.shutdown();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn restore_at_random_points_equals_the_model(
        ops in proptest::collection::vec((op(), any::<u8>()), 5..60),
        picks in proptest::collection::vec((any::<bool>(), any::<u16>()), 3),
    ) {
        let scratch = tempfile::tempdir().expect("tempdir");
        let source = scratch.path().join("src");
        let run = run_workload(&source, &ops);
        let last = run.history.last().map_or(1, |entry| entry.0);
        let first_time = run.history[0].1;
        let last_time = run.history.last().map_or(first_time, |entry| entry.1);
        for (index, (by_time, pick)) in picks.iter().enumerate() {
            let at = if *by_time {
                At::TimeMs(first_time + i64::from(*pick) % (last_time - first_time + 2))
            } else {
                At::Seq(1 + u64::from(*pick) % last)
            };
            check_restore(&source, &run, at, scratch.path(), &format!("r{index}"));
        }
        check_restore(&source, &run, At::Latest, scratch.path(), "latest");
    }
}

#[test]
fn bad_restore_points_are_refused_and_create_nothing() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let source = scratch.path().join("src");
    let ops: Vec<(Op, u8)> = (0..10).map(|k| (Op::Insert(k, 1), 1)).collect();
    let run = run_workload(&source, &ops);
    let last = run.history.last().expect("history").0;
    let target = scratch.path().join("out");
    let restore = |at: At| {
        engine::admin::restore_dir(
            &source,
            &target,
            RestoreOptions {
                at,
                ..RestoreOptions::default()
            },
            &mut |_| {},
        )
    };
    match restore(At::Seq(last + 1)) {
        Err(Error::SeqUnavailable { seq, .. }) => assert_eq!(seq, last + 1),
        other => panic!("beyond the end: {other:?}"),
    }
    assert!(!target.exists());
    match restore(At::TimeMs(run.history[0].1 - 1)) {
        Err(Error::InvalidTarget(reason)) => assert!(reason.contains("before the first commit")),
        other => panic!("before the first commit: {other:?}"),
    }
    assert!(!target.exists());
    assert!(matches!(
        "yesterday".parse::<At>(),
        Err(Error::InvalidTarget(_))
    ));
    assert_eq!("12".parse::<At>().ok(), Some(At::Seq(12)));
    // A non-empty target is refused and left alone.
    std::fs::create_dir_all(&target).expect("mkdir");
    std::fs::write(target.join("keep.txt"), b"mine").expect("write");
    assert!(matches!(restore(At::Latest), Err(Error::InvalidTarget(_))));
    assert_eq!(
        std::fs::read(target.join("keep.txt")).expect("read"),
        b"mine"
    );
    // Seq 0 is the empty state.
    let empty = scratch.path().join("empty");
    let report = engine::admin::restore_dir(
        &source,
        &empty,
        RestoreOptions {
            at: At::Seq(0),
            ..RestoreOptions::default()
        },
        &mut |_| {},
    )
    .expect("restore at 0");
    assert_eq!(report.seq, 0);
    let restored = common::open(&empty, SyncPolicy::None);
    assert_eq!(restored.last_seq(), 0);
}

#[test]
fn snapshots_preserve_rowids_and_equal_a_replay() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("d");
    let engine = common::open(&dir, SyncPolicy::None);
    create_notes(&engine);
    common::insert_many(&engine, 0, 50);
    for index in (0..50).step_by(3) {
        write(
            &engine,
            Change::RecordDeleted {
                collection_id: "c_notes".into(),
                id: format!("n{index:04}"),
                old: Vec::new(),
            },
        );
    }
    let (seq, path) = engine.snapshot().expect("snapshot");
    assert_eq!(seq, engine.last_seq());
    assert_eq!(
        path.file_name().and_then(|n| n.to_str()),
        Some(engine::admin::snapshot_name(seq).as_str())
    );
    let live: Vec<(i64, String)> = {
        let rows = engine
            .read(|conn| conn.query("SELECT rowid, id FROM notes ORDER BY rowid", &[]))
            .expect("read");
        rows.rows
            .iter()
            .map(|row| {
                (
                    row[0].as_i64().expect("rowid"),
                    row[1].as_str().expect("id").to_string(),
                )
            })
            .collect()
    };
    let snap = rusqlite::Connection::open(&path).expect("open snapshot");
    let copied: Vec<(i64, String)> = snap
        .prepare("SELECT rowid, id FROM notes ORDER BY rowid")
        .expect("prepare")
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(live, copied);
    assert_eq!(
        engine::admin::Projection::open_read_only(&path)
            .and_then(|snapshot| snapshot.dump())
            .expect("dump"),
        common::live_dump(&engine)
    );
}
