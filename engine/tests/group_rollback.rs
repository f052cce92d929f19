//! Failing commands inside one group commit: each one rolls back alone, whatever ran before or
//! after it in the same group (commands run without a savepoint until one fails after staging;
//! see writer.rs), and the projection still equals a fresh replay of the log.
#![allow(
    clippy::disallowed_methods,
    reason = "tests damage and inspect log files directly"
)]

mod common;

use common::*;
use engine::{Actor, Change, CollectionDef, ColumnDef, Failure, SyncPolicy, Tx, Value};
use std::sync::mpsc;

type Reply = Result<Option<u64>, String>;

fn note(id: &str, title: &str) -> Change {
    Change::RecordCreated {
        collection_id: "c_notes".into(),
        id: id.into(),
        values: vec![
            ("id".into(), Value::from(id)),
            ("title".into(), Value::from(title)),
            ("n".into(), Value::Int(1)),
        ],
    }
}

fn other_def() -> CollectionDef {
    named_def("c_other", "other")
}

fn named_def(id: &str, name: &str) -> CollectionDef {
    CollectionDef {
        id: id.into(),
        name: name.into(),
        kind: "base".into(),
        columns: vec![ColumnDef {
            id: "f_id".into(),
            name: "id".into(),
            decl: "TEXT PRIMARY KEY NOT NULL".into(),
        }],
        indexes: Vec::new(),
        view_query: None,
        meta: "{}".into(),
    }
}

/// Submits `command`; its outcome (commit seq or error text) goes to the returned receiver.
fn submit(
    engine: &engine::Engine,
    command: impl FnOnce(&mut Tx<'_>) -> Result<(), String> + Send + 'static,
) -> mpsc::Receiver<Reply> {
    let (sender, receiver) = mpsc::channel();
    engine
        .submit(Actor::System, command, move |result| {
            let _ = sender.send(match result {
                Ok(outcome) => Ok(outcome.commit.map(|commit| commit.seq)),
                Err(Failure::Command(message)) => Err(message),
                Err(other) => Err(format!("{other:?}")),
            });
        })
        .expect("submit");
    receiver
}

fn stage(tx: &mut Tx<'_>, change: Change) -> Result<(), String> {
    tx.stage(change).map_err(|err| err.to_string())
}

#[test]
fn failures_inside_one_group_roll_back_alone() {
    for sync in [SyncPolicy::None, SyncPolicy::Always] {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = open(dir.path(), sync);
        create_notes(&engine);
        // The first job holds the writer until every other job is queued, so they form one group.
        let (release, gate) = mpsc::channel::<()>();
        let first = submit(&engine, move |tx| {
            gate.recv().expect("released");
            stage(tx, note("a", "a"))
        });
        let ok_b = submit(&engine, |tx| stage(tx, note("b", "b")));
        let fail_c = submit(&engine, |tx| {
            stage(tx, note("c", "c"))?;
            Err("c changed its mind".into())
        });
        let ok_d = submit(&engine, |tx| {
            // Sees b (staged earlier in the group) but not c (rolled back).
            let rows = tx
                .query(
                    "SELECT group_concat(id, ',') FROM (SELECT id FROM notes ORDER BY id)",
                    &[],
                )
                .map_err(|err| err.to_string())?;
            assert_eq!(rows.rows[0][0], Value::from("a,b"));
            stage(tx, note("d", "d"))
        });
        let fail_e = submit(&engine, |tx| {
            stage(tx, Change::CollectionCreated(other_def()))?;
            stage(tx, note("e", "e"))?;
            Err("e changed its mind".into())
        });
        let fail_f = submit(&engine, |_| Err("f fails before staging".into()));
        let fail_g = submit(&engine, |tx| stage(tx, note("g", "b"))); // duplicate title
        let panics_h = submit(&engine, |tx| {
            stage(tx, note("h", "h"))?;
            panic!("h panics")
        });
        let ok_i = submit(&engine, |tx| {
            // The catalog was brought back: `other` does not exist, so it can be created.
            stage(tx, Change::CollectionCreated(other_def()))?;
            stage(tx, note("i", "i"))
        });
        release.send(()).expect("release");

        let recv = |receiver: mpsc::Receiver<Reply>| receiver.recv().expect("answered");
        assert_eq!(recv(first), Ok(Some(2)));
        assert_eq!(recv(ok_b), Ok(Some(3)));
        assert_eq!(recv(fail_c), Err("c changed its mind".into()));
        assert_eq!(recv(ok_d), Ok(Some(4)));
        assert_eq!(recv(fail_e), Err("e changed its mind".into()));
        assert_eq!(recv(fail_f), Err("f fails before staging".into()));
        let duplicate = recv(fail_g).expect_err("duplicate");
        assert!(duplicate.to_lowercase().contains("unique"), "{duplicate}");
        assert!(recv(panics_h).expect_err("panicked").contains("panicked"));
        assert_eq!(recv(ok_i), Ok(Some(5)));

        // A group whose first failure (after staging) is a collection change.
        let (release, gate) = mpsc::channel::<()>();
        let first = submit(&engine, move |tx| {
            gate.recv().expect("released");
            stage(tx, note("j", "j"))
        });
        let ok_k = submit(&engine, |tx| stage(tx, note("k", "k")));
        let fail_l = submit(&engine, |tx| {
            stage(tx, Change::CollectionCreated(named_def("c_third", "third")))?;
            stage(tx, note("l", "l"))?;
            Err("l changed its mind".into())
        });
        let ok_m = submit(&engine, |tx| {
            stage(tx, Change::CollectionCreated(named_def("c_third", "third")))?;
            stage(tx, note("m", "m"))
        });
        release.send(()).expect("release");
        assert_eq!(recv(first), Ok(Some(6)));
        assert_eq!(recv(ok_k), Ok(Some(7)));
        assert_eq!(recv(fail_l), Err("l changed its mind".into()));
        assert_eq!(recv(ok_m), Ok(Some(8)));

        let ids: Vec<String> = notes(&engine).into_iter().map(|(id, _, _)| id).collect();
        assert_eq!(ids, ["a", "b", "d", "i", "j", "k", "m"]);
        assert_eq!(engine.last_seq(), 8);
        let before = engine.read(|conn| conn.dump()).expect("dump");
        engine.shutdown();
        drop(engine);

        // A fresh replay of the log gives the same projection.
        std::fs::remove_file(dir.path().join(engine::admin::DATA_DB)).expect("remove db");
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(
                dir.path()
                    .join(format!("{}{suffix}", engine::admin::DATA_DB)),
            );
        }
        let engine = open(dir.path(), sync);
        let after = engine.read(|conn| conn.dump()).expect("dump");
        assert_eq!(before, after);
    }
}
