//! The background scrub (issue #13 item 3): while serving, a projection whose content no
//! longer matches the log is found by comparing it with a replay, moved aside (kept) and
//! replaced by the rebuild; readers and writers go on. A healthy projection is left alone.
#![allow(
    clippy::disallowed_methods,
    reason = "tests tamper with the projection file directly"
)]

mod common;

use common::*;
use engine::{Engine, EngineConfig, ScrubReport, SyncPolicy};
use std::path::Path;
use std::time::{Duration, Instant};

fn config(scrub_every_ms: Option<u64>) -> EngineConfig {
    EngineConfig {
        sync: SyncPolicy::None,
        scrub_every_ms,
        ..EngineConfig::default()
    }
}

fn populate(engine: &Engine) {
    create_notes(engine);
    for index in 0..50 {
        insert_note(engine, &format!("n{index:04}"), &format!("t{index}"), index).expect("insert");
    }
}

/// Changes a row of the live projection behind the engine's back (silent damage: SQLite's
/// own checks cannot see it, only a comparison with the log can).
fn tamper(dir: &Path) {
    let conn = rusqlite::Connection::open(dir.join(engine::admin::DATA_DB)).expect("open");
    conn.busy_timeout(Duration::from_secs(5)).expect("timeout");
    let changed = conn
        .execute("UPDATE notes SET title = 'tampered' WHERE id = 'n0007'", [])
        .expect("tamper");
    assert_eq!(changed, 1);
}

fn damaged_copies(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .expect("read dir")
        .filter(|entry| {
            entry.as_ref().is_ok_and(|entry| {
                entry.file_name().to_str().is_some_and(|name| {
                    name.starts_with("data.db.damaged-")
                        && !name.contains("-wal")
                        && !name.contains("-shm")
                })
            })
        })
        .count()
}

fn title_of(engine: &Engine, id: &str) -> String {
    notes(engine)
        .into_iter()
        .find(|(note, _, _)| note == id)
        .map(|(_, title, _)| title)
        .expect("note")
}

#[test]
fn a_healthy_projection_scrubs_clean() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (engine, _) = Engine::open(dir.path(), config(None)).expect("open");
    populate(&engine);
    let report = engine.scrub().expect("scrub");
    assert_eq!(
        report,
        ScrubReport::Clean {
            seq: engine.last_seq()
        }
    );
    assert_eq!(damaged_copies(dir.path()), 0);
    engine.shutdown();
}

#[test]
fn a_diverged_projection_is_found_and_replaced_while_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (engine, _) = Engine::open(dir.path(), config(None)).expect("open");
    populate(&engine);
    let expected = notes(&engine);
    tamper(dir.path());
    assert_eq!(
        title_of(&engine, "n0007"),
        "tampered",
        "served silently before"
    );
    match engine.scrub().expect("scrub") {
        ScrubReport::Repaired { reason } => assert!(reason.contains("differs"), "{reason}"),
        other => panic!("expected a repair, got {other:?}"),
    }
    assert_eq!(damaged_copies(dir.path()), 1, "the diverged file is kept");
    // Readers see the rebuilt projection; writers go on.
    assert_eq!(notes(&engine), expected);
    insert_note(&engine, "after", "after", 1).expect("write after the repair");
    assert_eq!(notes(&engine).len(), expected.len() + 1);
    assert_projection_matches_replay(&engine);
    assert_eq!(
        engine.scrub().expect("scrub again"),
        ScrubReport::Clean {
            seq: engine.last_seq()
        }
    );
    engine.shutdown();
    drop(engine);
    let (engine, report) = Engine::open(dir.path(), config(None)).expect("reopen");
    assert!(!report.rebuilt_projection);
    assert_eq!(notes(&engine).len(), expected.len() + 1);
    engine.shutdown();
}

#[test]
fn the_periodic_scrub_repairs_on_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (engine, _) = Engine::open(dir.path(), config(Some(100))).expect("open");
    populate(&engine);
    tamper(dir.path());
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut written = 0;
    while title_of(&engine, "n0007") != "t7" {
        assert!(
            Instant::now() < deadline,
            "the scrub never repaired the projection"
        );
        // Writes keep flowing meanwhile.
        written += 1;
        insert_note(&engine, &format!("w{written:05}"), "", 0).expect("write during scrubs");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(damaged_copies(dir.path()) >= 1);
    engine.shutdown();
    drop(engine);
    let (engine, _) = Engine::open(dir.path(), config(None)).expect("reopen");
    assert_projection_matches_replay(&engine);
    engine.shutdown();
}

/// Page damage while serving: the read that hits it fails (as SQLite reports it), the writer
/// confirms the damage with an integrity check and rebuilds the projection from the log at
/// once (not at the next scheduled scrub), and later reads are correct.
#[test]
fn a_read_that_hits_damaged_pages_triggers_a_rebuild() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (engine, _) = Engine::open(dir.path(), config(None)).expect("open");
    create_notes(&engine);
    for index in 0..300 {
        insert_note(
            &engine,
            &format!("n{index:04}"),
            &format!("title {index} {}", "z".repeat(200)),
            index,
        )
        .expect("insert");
    }
    let expected = notes(&engine);
    // Fold the WAL into data.db so the damage hits the pages readers use.
    let conn =
        rusqlite::Connection::open(dir.path().join(engine::admin::DATA_DB)).expect("open db");
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .expect("checkpoint");
    drop(conn);
    let db = dir.path().join(engine::admin::DATA_DB);
    let mut bytes = std::fs::read(&db).expect("read");
    // Every page holding note 150's row (the live leaf of `notes`, and any stale copy a page
    // split left in a free page), wherever the projection's other tables put them.
    let marker = b"title 150 z";
    let pages: std::collections::BTreeSet<usize> = bytes
        .windows(marker.len())
        .enumerate()
        .filter(|(_, window)| *window == marker)
        .map(|(at, _)| 4096 * (at / 4096))
        .collect();
    assert!(!pages.is_empty(), "note 150's row is in data.db");
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(&db)
            .expect("open");
        for &page in &pages {
            for (index, byte) in bytes[page..page + 4096].iter_mut().enumerate() {
                *byte = (index * 37 % 251) as u8;
            }
            file.seek(SeekFrom::Start(page as u64)).expect("seek");
            file.write_all(&bytes[page..page + 4096]).expect("damage");
        }
    }
    let first = engine.read(|conn| conn.query("SELECT id, title, n FROM notes ORDER BY id", &[]));
    assert!(
        matches!(first, Err(engine::Error::ProjectionDamaged(_))),
        "the damaged read: {first:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let read = engine.read(|conn| conn.query("SELECT id, title, n FROM notes", &[]));
        if read.is_ok_and(|rows| rows.rows.len() == expected.len()) {
            break;
        }
        assert!(Instant::now() < deadline, "never rebuilt");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(notes(&engine), expected);
    assert_eq!(damaged_copies(dir.path()), 1);
    insert_note(&engine, "after", "", 1).expect("writes on");
    assert_projection_matches_replay(&engine);
    engine.shutdown();
}
