//! A commit larger than the frame limit fails alone with `Error::CommitTooLarge`: the other
//! jobs of its group commit, nothing of it is staged or logged, and the engine keeps writing
//! (issue #13 item 4: the limit used to be checked only at the group's append, failing every
//! job of the group and poisoning the engine).

mod common;

use common::*;
use engine::{Actor, Change, Error, Failure, SyncPolicy, Value, FRAME_PAYLOAD_MAX};
use std::sync::{Arc, Barrier};

fn big_insert(id: &str, bytes: usize) -> Change {
    Change::RecordCreated {
        collection_id: "c_notes".into(),
        id: id.into(),
        values: vec![
            ("id".into(), Value::Text(id.into())),
            // Distinct titles: the collection has a unique index on title.
            (
                "title".into(),
                Value::Text(format!("{id}{}", "x".repeat(bytes))),
            ),
            ("n".into(), Value::Int(0)),
        ],
    }
}

#[test]
fn a_too_large_commit_fails_alone_and_poisons_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = open(dir.path(), SyncPolicy::None);
    create_notes(&engine);
    insert_note(&engine, "before", "", 1).expect("insert");
    let seq_before = engine.last_seq();
    // Several small writers race the big one so they likely share its group.
    let barrier = Arc::new(Barrier::new(5));
    let small: Vec<_> = (0..4)
        .map(|index| {
            let engine = engine.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                insert_note(&engine, &format!("small{index}"), "", index)
            })
        })
        .collect();
    barrier.wait();
    // Two changes of 40 MiB each: each fits a frame, together they do not.
    let result = engine.execute(Actor::System, |tx| {
        tx.stage(big_insert("big1", 40 << 20))?;
        tx.stage(big_insert("big2", 40 << 20))?;
        assert!(tx.staged_bytes() > FRAME_PAYLOAD_MAX as u64);
        Ok::<_, Error>(())
    });
    match result {
        Err(Failure::Engine(Error::CommitTooLarge { bytes, max })) => {
            assert!(
                bytes > max && max == FRAME_PAYLOAD_MAX as u64,
                "{bytes} {max}"
            );
        }
        other => panic!("expected CommitTooLarge, got {other:?}"),
    }
    for thread in small {
        thread
            .join()
            .expect("thread")
            .expect("a small write next to the big one");
    }
    assert!(engine.poisoned().is_none());
    let ids: Vec<String> = notes(&engine).into_iter().map(|(id, _, _)| id).collect();
    assert!(!ids.iter().any(|id| id.starts_with("big")), "{ids:?}");
    assert_eq!(ids.len(), 5, "{ids:?}");
    assert_eq!(engine.last_seq(), seq_before + 4);
    // A big commit under the limit still works.
    let outcome = engine
        .execute(Actor::System, |tx| tx.stage(big_insert("big3", 30 << 20)))
        .expect("a commit under the limit");
    assert!(outcome.commit.is_some());
    insert_note(&engine, "after", "", 9).expect("writes go on");
    assert_projection_matches_replay(&engine);
    engine.shutdown();
}

#[test]
fn staged_bytes_matches_the_encoded_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = open(dir.path(), SyncPolicy::None);
    create_notes(&engine);
    let outcome = engine
        .execute(Actor::Superuser("someone".into()), |tx| {
            let empty = tx.staged_bytes();
            tx.stage(big_insert("a", 10))?;
            let one = tx.staged_bytes();
            tx.stage(big_insert("b", 1000))?;
            Ok::<_, Error>((empty, one, tx.staged_bytes()))
        })
        .expect("execute");
    let (empty, one, two) = outcome.value;
    assert!(empty < one && one < two, "{empty} {one} {two}");
    let commit = outcome.commit.expect("commit");
    assert_eq!(two, engine::admin::encode_commit(&commit).len() as u64);
    engine.shutdown();
}
