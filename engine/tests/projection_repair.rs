//! A damaged `data.db` is rebuilt from the log at open (issue #13 item 3): a truncated file,
//! a zeroed header and damaged pages inside the file. The damaged file is moved aside as
//! `data.db.damaged-<ms>` (never deleted), the rebuilt projection equals a replay of the log,
//! and the engine writes on. Before: `open` refused (truncated, zeroed header) or served the
//! damage silently (pages inside the file).
#![allow(
    clippy::disallowed_methods,
    reason = "tests damage the projection file directly"
)]

mod common;

use common::*;
use engine::{Engine, EngineConfig, SyncPolicy};
use std::path::{Path, PathBuf};

/// A data dir with a few hundred notes (several pages), shut down cleanly (WAL folded in).
fn populated() -> (tempfile::TempDir, Vec<(String, String, i64)>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = open(dir.path(), SyncPolicy::None);
    create_notes(&engine);
    for index in 0..300 {
        insert_note(
            &engine,
            &format!("n{index:04}"),
            &format!("title {index} {}", "y".repeat(200)),
            index,
        )
        .expect("insert");
    }
    let expected = notes(&engine);
    engine.shutdown();
    drop(engine);
    // Fold the WAL into data.db so the damage below hits the only copy of the pages.
    let conn =
        rusqlite::Connection::open(dir.path().join(engine::admin::DATA_DB)).expect("open db");
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .expect("checkpoint");
    conn.pragma_update(None, "journal_mode", "DELETE")
        .expect("leave WAL mode");
    drop(conn);
    assert!(!dir.path().join("data.db-wal").exists());
    (dir, expected)
}

fn damaged_copies(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| {
                    name.starts_with("data.db.damaged-")
                        && !name.ends_with("-wal")
                        && !name.ends_with("-shm")
                })
        })
        .collect();
    out.sort();
    out
}

fn reopen_and_check(dir: &Path, expected: &[(String, String, i64)], damaged_len: u64) {
    let (engine, report) = Engine::open(dir, EngineConfig::default()).expect("open repairs");
    assert!(report.rebuilt_projection, "{report:?}");
    assert_eq!(notes(&engine), expected);
    assert_projection_matches_replay(&engine);
    let aside = damaged_copies(dir);
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        std::fs::metadata(&aside[0]).expect("aside").len(),
        damaged_len,
        "the damaged file is kept as it was"
    );
    insert_note(&engine, "after", "", 1).expect("writes on");
    engine.shutdown();
    drop(engine);
    // The next open is a plain one: nothing more is moved aside.
    let (engine, report) = Engine::open(dir, EngineConfig::default()).expect("open again");
    assert!(!report.rebuilt_projection);
    assert_eq!(notes(&engine).len(), expected.len() + 1);
    assert_eq!(damaged_copies(dir).len(), 1);
    engine.shutdown();
}

#[test]
fn a_truncated_data_db_is_moved_aside_and_rebuilt() {
    let (dir, expected) = populated();
    let db = dir.path().join(engine::admin::DATA_DB);
    let len = std::fs::metadata(&db).expect("db").len();
    assert!(len > 8 * 4096, "{len}");
    truncate_to(&db, len / 2);
    reopen_and_check(dir.path(), &expected, len / 2);
}

#[test]
fn a_zeroed_header_is_moved_aside_and_rebuilt() {
    let (dir, expected) = populated();
    let db = dir.path().join(engine::admin::DATA_DB);
    let len = std::fs::metadata(&db).expect("db").len();
    let mut bytes = std::fs::read(&db).expect("read");
    bytes[..100].fill(0);
    std::fs::write(&db, bytes).expect("write");
    reopen_and_check(dir.path(), &expected, len);
}

#[test]
fn damaged_pages_inside_the_file_are_found_at_open_and_rebuilt() {
    let (dir, expected) = populated();
    let db = dir.path().join(engine::admin::DATA_DB);
    let len = std::fs::metadata(&db).expect("db").len();
    // Garbage over a page in the middle of the file (b-tree pages of the notes table).
    let mut bytes = std::fs::read(&db).expect("read");
    let page = 4096 * (len as usize / 4096 / 2);
    for (index, byte) in bytes[page..page + 4096].iter_mut().enumerate() {
        *byte = (index * 37 % 251) as u8;
    }
    std::fs::write(&db, bytes).expect("write");
    reopen_and_check(dir.path(), &expected, len);
}

#[test]
fn a_healthy_projection_is_never_moved_aside() {
    let (dir, expected) = populated();
    let (engine, report) = Engine::open(dir.path(), EngineConfig::default()).expect("open");
    assert!(!report.rebuilt_projection);
    assert_eq!(notes(&engine), expected);
    assert!(damaged_copies(dir.path()).is_empty());
    engine.shutdown();
}

#[test]
fn a_projection_that_does_not_fit_the_log_is_moved_aside_and_rebuilt() {
    let (dir, expected) = populated();
    let db = dir.path().join(engine::admin::DATA_DB);
    // The projection claims to be at seq 1 while it holds everything: the catch-up re-applies
    // seq 2.. and fails (the records exist already). Before: `open` refused to start.
    let conn = rusqlite::Connection::open(&db).expect("open db");
    conn.execute("UPDATE _meta SET value = 1 WHERE key = 'last_seq'", [])
        .expect("tamper");
    drop(conn);
    let len = std::fs::metadata(&db).expect("db").len();
    reopen_and_check(dir.path(), &expected, len);
}
