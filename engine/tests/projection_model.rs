//! Model-based property: random sequences of inserts, updates, deletes, multi-change commits,
//! failing commands, reopens, simulated crashes (drop without shutdown, deleted `data.db`,
//! projection rewound to an older copy) and partial replays run against the engine and a
//! `BTreeMap` model. After every step the projection read through `Engine::read` equals the
//! model, and the whole projection equals a fresh replay of the log; a replay up to any seq
//! equals the model as it was at that seq.
//!
//! Run length: `PROPTEST_CASES` (default 32). proptest prints the failing op sequence and
//! persists its seed under `proptest-regressions/`.
//!
//! Guards against: catch-up after a crash applying a commit twice or not at all, a failed
//! command leaking staged rows, and replay diverging from the live write path.
#![allow(
    clippy::disallowed_methods,
    reason = "tests damage and inspect log files directly"
)]

mod common;

use common::*;
use engine::{Actor, Change, Engine, EngineConfig, Failure, SyncPolicy, Value};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

type Model = BTreeMap<String, i64>;

#[derive(Debug, Clone)]
enum Op {
    Insert(u8, i64),
    Update(u8, i64),
    Delete(u8),
    /// Two inserts in one commit (all or nothing).
    InsertPair(u8, u8, i64),
    /// Stages an insert, then fails: must leave no trace.
    Failing(u8),
    Reopen,
    CrashDrop,
    CrashDeleteDb,
    Snapshot,
    CrashRewind,
    ReplayTo(u8),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..10, -50i64..50).prop_map(|(id, n)| Op::Insert(id, n)),
        4 => (0u8..10, -50i64..50).prop_map(|(id, n)| Op::Update(id, n)),
        3 => (0u8..10).prop_map(Op::Delete),
        2 => (0u8..10, 0u8..10, -50i64..50).prop_map(|(a, b, n)| Op::InsertPair(a, b, n)),
        2 => (0u8..10).prop_map(Op::Failing),
        1 => Just(Op::Reopen),
        1 => Just(Op::CrashDrop),
        1 => Just(Op::CrashDeleteDb),
        1 => Just(Op::Snapshot),
        1 => Just(Op::CrashRewind),
        1 => any::<u8>().prop_map(Op::ReplayTo),
    ]
}

fn key(id: u8) -> String {
    format!("r{id}")
}

fn record(id: &str, n: i64) -> Vec<(String, Value)> {
    vec![
        ("id".into(), Value::from(id)),
        ("title".into(), Value::from("")),
        ("n".into(), Value::Int(n)),
    ]
}

fn exists(tx: &engine::Tx<'_>, id: &str) -> Result<bool, String> {
    tx.query("SELECT 1 FROM notes WHERE id = ?1", &[Value::from(id)])
        .map(|rows| !rows.is_empty())
        .map_err(|err| err.to_string())
}

fn engine_state(engine: &Engine) -> Model {
    notes(engine)
        .into_iter()
        .map(|(id, _, n)| (id, n))
        .collect()
}

fn replay_state(dir: &Path, to: u64) -> Model {
    let (reader, _) = engine::LogReader::open_dir(
        std::sync::Arc::new(engine::FsStorage),
        &dir.join(engine::admin::LOG_DIR),
    )
    .expect("open log");
    let scratch = tempfile::tempdir().expect("tempdir");
    let path = scratch.path().join("r.db");
    let last = engine::admin::Projection::open(&path)
        .expect("db")
        .replay(&reader, 1, to, |_| {})
        .expect("replay");
    assert_eq!(last, to);
    let conn = rusqlite::Connection::open(&path).expect("reopen");
    let mut statement = conn.prepare("SELECT id, n FROM notes").expect("prepare");
    let rows = statement
        .query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })
        .expect("query");
    rows.map(|row| row.expect("row")).collect()
}

fn remove_db(dir: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("{}{suffix}", engine::admin::DATA_DB)));
    }
}

struct Harness {
    dir: tempfile::TempDir,
    engine: Option<Engine>,
    model: Model,
    /// Model state after each seq (index = seq; seq 1 created the collection).
    history: Vec<Model>,
    snapshot: Option<(tempfile::TempDir, u64)>,
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = open(dir.path(), SyncPolicy::None);
        create_notes(&engine);
        Harness {
            dir,
            engine: Some(engine),
            model: Model::new(),
            history: vec![Model::new(), Model::new()],
            snapshot: None,
        }
    }

    fn engine(&self) -> &Engine {
        self.engine.as_ref().expect("engine is open")
    }

    fn reopen(&mut self, between: impl FnOnce(&Path)) {
        if let Some(engine) = self.engine.take() {
            drop(engine);
        }
        between(self.dir.path());
        let config = EngineConfig {
            sync: SyncPolicy::None,
            ..EngineConfig::default()
        };
        self.engine = Some(Engine::open(self.dir.path(), config).expect("reopen").0);
    }

    fn run_command(
        &mut self,
        command: impl FnOnce(&mut engine::Tx<'_>) -> Result<(), String> + Send + 'static,
        apply: impl FnOnce(&mut Model),
    ) {
        match self.engine().execute(Actor::System, command) {
            Ok(outcome) => {
                let commit = outcome.commit.expect("a successful command staged changes");
                apply(&mut self.model);
                assert_eq!(commit.seq as usize, self.history.len(), "seqs are gap-free");
                self.history.push(self.model.clone());
            }
            Err(Failure::Command(_)) => {}
            Err(Failure::Engine(err)) => panic!("engine failure: {err}"),
        }
    }

    fn step(&mut self, op: &Op) {
        match op.clone() {
            Op::Insert(id, n) => {
                let id = key(id);
                let model_id = id.clone();
                self.run_command(
                    move |tx| {
                        tx.stage(Change::RecordCreated {
                            collection_id: "c_notes".into(),
                            id: id.clone(),
                            values: record(&id, n),
                        })
                        .map_err(|err| err.to_string())
                    },
                    move |model| {
                        assert!(
                            model.insert(model_id, n).is_none(),
                            "insert of an existing id succeeded"
                        );
                    },
                );
            }
            Op::Update(id, n) => {
                let id = key(id);
                let model_id = id.clone();
                self.run_command(
                    move |tx| {
                        if !exists(tx, &id)? {
                            return Err("missing".into());
                        }
                        tx.stage(Change::RecordUpdated {
                            collection_id: "c_notes".into(),
                            id: id.clone(),
                            values: record(&id, n),
                        })
                        .map_err(|err| err.to_string())
                    },
                    move |model| {
                        assert!(model.insert(model_id, n).is_some());
                    },
                );
            }
            Op::Delete(id) => {
                let id = key(id);
                let model_id = id.clone();
                self.run_command(
                    move |tx| {
                        if !exists(tx, &id)? {
                            return Err("missing".into());
                        }
                        tx.stage(Change::RecordDeleted {
                            collection_id: "c_notes".into(),
                            id: id.clone(),
                            old: Vec::new(),
                        })
                        .map_err(|err| err.to_string())
                    },
                    move |model| {
                        assert!(model.remove(&model_id).is_some());
                    },
                );
            }
            Op::InsertPair(a, b, n) => {
                let (a, b) = (key(a), key(b));
                let (model_a, model_b) = (a.clone(), b.clone());
                // The second insert fails when it duplicates the first or an existing row;
                // then neither may remain.
                self.run_command(
                    move |tx| {
                        for id in [&a, &b] {
                            tx.stage(Change::RecordCreated {
                                collection_id: "c_notes".into(),
                                id: id.clone(),
                                values: record(id, n),
                            })
                            .map_err(|err| err.to_string())?;
                        }
                        Ok(())
                    },
                    move |model| {
                        assert!(model.insert(model_a, n).is_none());
                        assert!(model.insert(model_b, n).is_none());
                    },
                );
            }
            Op::Failing(id) => {
                let id = key(id);
                let fresh = format!("{id}-failing");
                self.run_command(
                    move |tx| {
                        tx.stage(Change::RecordCreated {
                            collection_id: "c_notes".into(),
                            id: fresh.clone(),
                            values: record(&fresh, 0),
                        })
                        .map_err(|err| err.to_string())?;
                        Err("fails after staging".into())
                    },
                    |_| panic!("a failing command succeeded"),
                );
            }
            Op::Reopen => {
                self.engine().shutdown();
                self.reopen(|_| {});
            }
            Op::CrashDrop => self.reopen(|_| {}),
            Op::CrashDeleteDb => self.reopen(remove_db),
            Op::Snapshot => {
                let copy = tempfile::tempdir().expect("tempdir");
                let target = copy.path().join("snap.db");
                let conn = rusqlite::Connection::open(self.dir.path().join(engine::admin::DATA_DB))
                    .expect("open projection for a copy");
                conn.execute("VACUUM INTO ?1", [target.to_string_lossy()])
                    .expect("vacuum into");
                let seq = engine::admin::Projection::open_read_only(&target)
                    .and_then(|copy| copy.last_applied())
                    .expect("last seq");
                self.snapshot = Some((copy, seq));
            }
            Op::CrashRewind => {
                if let Some((copy, _)) = &self.snapshot {
                    let source = copy.path().join("snap.db");
                    self.reopen(|dir| {
                        remove_db(dir);
                        std::fs::copy(&source, dir.join(engine::admin::DATA_DB)).expect("restore");
                    });
                }
            }
            Op::ReplayTo(fraction) => {
                let last = (self.history.len() - 1) as u64;
                let to = 1 + u64::from(fraction) * (last - 1) / 255;
                assert_eq!(
                    replay_state(self.dir.path(), to),
                    self.history[to as usize],
                    "replay to seq {to}"
                );
            }
        }
    }

    fn check(&self, step: usize, op: &Op) {
        let engine = self.engine();
        assert_eq!(
            engine_state(engine),
            self.model,
            "step {step} {op:?}: projection vs model"
        );
        assert_eq!(
            engine.last_seq() as usize,
            self.history.len() - 1,
            "step {step}"
        );
        assert_eq!(
            live_dump(engine),
            fresh_replay_dump(self.dir.path()),
            "step {step} {op:?}: projection vs fresh replay"
        );
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(32)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn projection_equals_model_and_replay(ops in proptest::collection::vec(op_strategy(), 1..40)) {
        let mut harness = Harness::new();
        for (step, op) in ops.iter().enumerate() {
            harness.step(op);
            harness.check(step, op);
        }
        harness.engine().shutdown();
    }
}
