//! The basic write path: commands stage changes, commits are durable and survive reopen,
//! a failing command rolls back alone, a second open of the same dir is refused.
#![allow(
    clippy::disallowed_methods,
    reason = "tests damage and inspect log files directly"
)]

mod common;

use common::*;
use engine::{
    Actor, Change, ConstraintKind, Engine, EngineConfig, Error, Failure, SyncPolicy, Value,
};

#[test]
fn commits_survive_reopen_and_failures_roll_back_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let engine = open(dir.path(), SyncPolicy::Always);
        create_notes(&engine);
        assert_eq!(insert_note(&engine, "a", "first", 1), Ok(2));
        // Unique index violation: the command fails, nothing is committed.
        let err = insert_note(&engine, "b", "first", 2).expect_err("duplicate title");
        assert!(err.contains("kind: Unique"), "{err}");
        assert_eq!(insert_note(&engine, "c", "third", 3), Ok(3));
        assert!(matches!(
            Engine::open(dir.path(), EngineConfig::default()),
            Err(Error::Locked(_))
        ));
        engine.shutdown();
    }
    let engine = open(dir.path(), SyncPolicy::Always);
    assert_eq!(
        notes(&engine),
        vec![
            ("a".into(), "first".into(), 1),
            ("c".into(), "third".into(), 3)
        ]
    );
    assert_eq!(engine.last_seq(), 3);
}

#[test]
fn a_command_sees_earlier_staged_changes_and_its_error_is_returned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = open(dir.path(), SyncPolicy::None);
    create_notes(&engine);
    let result = engine.execute(Actor::System, |tx| {
        tx.stage(Change::RecordCreated {
            collection_id: "c_notes".into(),
            id: "x".into(),
            values: vec![
                ("id".into(), Value::from("x")),
                ("title".into(), Value::from("t")),
            ],
        })
        .map_err(|err| err.to_string())?;
        let rows = tx
            .query("SELECT count(*) FROM notes", &[])
            .map_err(|err| err.to_string())?;
        assert_eq!(rows.rows[0][0], Value::Int(1));
        Err::<(), String>("changed my mind".into())
    });
    assert!(matches!(result, Err(Failure::Command(message)) if message == "changed my mind"));
    assert!(notes(&engine).is_empty());
    assert_eq!(engine.last_seq(), 1);
}

#[test]
fn a_broken_unique_index_is_a_typed_constraint_error_naming_the_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = open(dir.path(), SyncPolicy::None);
    create_notes(&engine);
    insert_note(&engine, "a", "first", 1).expect("insert");
    let result = engine.execute(Actor::System, |tx| {
        tx.stage(Change::RecordCreated {
            collection_id: "c_notes".into(),
            id: "b".into(),
            values: vec![
                ("id".into(), Value::from("b")),
                ("title".into(), Value::from("first")),
            ],
        })
    });
    match result {
        Err(Failure::Command(Error::Constraint(violation))) => {
            assert_eq!(violation.kind, ConstraintKind::Unique);
            assert_eq!(violation.table, "notes");
            assert_eq!(violation.columns, ["title"]);
        }
        other => panic!("expected a unique violation, got {other:?}"),
    }
    assert_eq!(engine.last_seq(), 2);
}

#[test]
fn tx_query_runs_reads_and_refuses_writes_without_running_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = open(dir.path(), SyncPolicy::None);
    create_notes(&engine);
    insert_note(&engine, "a", "first", 1).expect("insert");
    let refused = engine
        .execute(Actor::System, |tx| {
            let read = tx.query(
                "WITH t AS (SELECT title FROM notes) SELECT count(*) FROM t",
                &[],
            )?;
            assert_eq!(read.rows[0][0], Value::Int(1));
            let mut refused = Vec::new();
            for sql in [
                "INSERT INTO notes (id, title, n) VALUES ('x', 'sneaky', 0)",
                "UPDATE notes SET n = 99",
                "DELETE FROM notes",
                "CREATE TABLE extra (a)",
                "DROP INDEX idx_notes_title",
            ] {
                match tx.query(sql, &[]) {
                    Err(Error::Sqlite(message)) => {
                        assert!(message.contains("read-only"), "{sql}: {message}");
                        refused.push(sql);
                    }
                    other => panic!("{sql}: expected a refusal, got {other:?}"),
                }
            }
            Ok::<_, Error>(refused.len())
        })
        .expect("the command itself succeeds");
    assert_eq!(refused.value, 5);
    assert!(refused.commit.is_none(), "nothing was staged");
    assert_eq!(notes(&engine), vec![("a".into(), "first".into(), 1)]);
    assert_projection_matches_replay(&engine);
}

#[test]
fn subscription_sees_every_commit_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = EngineConfig {
        sync: SyncPolicy::None,
        hub_ring_commits: 4,
        ..EngineConfig::default()
    };
    let engine = Engine::open(dir.path(), config).expect("open").0;
    create_notes(&engine);
    let mut subscription = engine.subscribe(1).expect("subscribe");
    for index in 0..50 {
        insert_note(&engine, &format!("id{index:03}"), "", index).expect("insert");
    }
    let mut seen = Vec::new();
    // Wait (bounded) until every commit has been read.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while seen.len() < 51 && std::time::Instant::now() < deadline {
        subscription.wait(std::time::Duration::from_millis(100));
        let batch = subscription.try_next_batch(7).expect("batch");
        seen.extend(batch.iter().map(|commit| commit.seq));
    }
    assert_eq!(seen, (1..=51).collect::<Vec<u64>>());
}
