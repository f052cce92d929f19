//! Redaction leaves no trace of the erased values anywhere in the data dir.
//!
//! Property: for random records (inserts, updates, deletes, snapshots, a column rename, small
//! segments so the log has many), then random redactions (random records, random subsets of
//! their fields), no file under the data dir (log segments, snapshots, `data.db` and its
//! WAL, every byte including SQLite's free pages) contains any erased value; the values of
//! everything not redacted are unchanged; the projection equals a fresh replay of the
//! rewritten log (what `verify` checks) and every snapshot equals a replay up to its seq.
//! Crash test: a redaction stopped after each of its steps (a failpoint), then the engine
//! dropped and reopened, is complete (or, stopped before its commit, not started), and the
//! same checks pass.

mod common;

use common::fresh_replay_dump;
use engine::{
    Actor, Change, CollectionDef, ColumnDef, Engine, EngineConfig, Error, RedactStep, SyncPolicy,
    Value,
};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

const FIELDS: [&str; 3] = ["name", "email", "note"];

fn people_def(note_name: &str) -> CollectionDef {
    let column = |id: &str, name: &str, decl: &str| ColumnDef {
        id: id.into(),
        name: name.into(),
        decl: decl.into(),
    };
    CollectionDef {
        id: "c_people".into(),
        name: "people".into(),
        kind: "base".into(),
        columns: vec![
            column("f_id", "id", "TEXT PRIMARY KEY NOT NULL"),
            column("f_name", "name", "TEXT DEFAULT '' NOT NULL"),
            column("f_email", "email", "TEXT DEFAULT '' NOT NULL"),
            column("f_note", note_name, "TEXT DEFAULT '' NOT NULL"),
            column("f_age", "age", "NUMERIC DEFAULT 0 NOT NULL"),
        ],
        indexes: vec![
            "CREATE UNIQUE INDEX idx_people_email ON people (email) WHERE email != ''".into(),
        ],
        view_query: None,
        meta: "{}".into(),
    }
}

fn open(dir: &Path) -> Engine {
    let config = EngineConfig {
        sync: SyncPolicy::None,
        segment_bytes_max: 1500,
        scrub_every_ms: None,
        ..EngineConfig::default()
    };
    Engine::open(dir, config).expect("open").0
}

fn write(engine: &Engine, change: Change) {
    engine
        .execute(Actor::System, move |tx| tx.stage(change))
        .map_err(|failure| format!("{failure:?}"))
        .expect("write");
}

#[derive(Debug, Clone)]
enum Op {
    Upsert(u8),
    Delete(u8),
    Snapshot,
    RenameNote,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..8).prop_map(Op::Upsert),
        1 => (0u8..8).prop_map(Op::Delete),
        1 => Just(Op::Snapshot),
        1 => Just(Op::RenameNote),
    ]
}

/// The workload's bookkeeping: every value ever written per (record, field id).
#[derive(Default)]
struct World {
    counter: u64,
    live: BTreeMap<String, bool>,
    written: BTreeMap<(String, String), Vec<String>>,
    note_name: String,
}

impl World {
    /// A value found nowhere else: a marker plus a counter.
    fn token(&mut self, record: &str, field: &str) -> String {
        self.counter += 1;
        format!("Zq{record}{field}Tok{:06}Xw", self.counter)
    }
}

fn run_ops(engine: &Engine, world: &mut World, ops: &[Op]) {
    world.note_name = "note".into();
    write(engine, Change::CollectionCreated(people_def("note")));
    for op in ops {
        match op {
            Op::Upsert(key) => {
                let id = format!("rec{key:012}");
                let mut values = vec![("id".to_string(), Value::Text(id.clone()))];
                for (field, field_id) in
                    [("name", "f_name"), ("email", "f_email"), ("note", "f_note")]
                {
                    let token = world.token(&id, field);
                    world
                        .written
                        .entry((id.clone(), field_id.to_string()))
                        .or_default()
                        .push(token.clone());
                    let column = if field == "note" {
                        world.note_name.clone()
                    } else {
                        field.to_string()
                    };
                    values.push((column, Value::Text(token)));
                }
                values.push(("age".into(), Value::Int(i64::from(*key) + 30)));
                let exists = world.live.get(&id).copied().unwrap_or(false);
                let change = if exists {
                    Change::RecordUpdated {
                        collection_id: "c_people".into(),
                        id: id.clone(),
                        values,
                    }
                } else {
                    Change::RecordCreated {
                        collection_id: "c_people".into(),
                        id: id.clone(),
                        values,
                    }
                };
                write(engine, change);
                world.live.insert(id, true);
            }
            Op::Delete(key) => {
                let id = format!("rec{key:012}");
                if world.live.get(&id).copied().unwrap_or(false) {
                    let old = engine
                        .read({
                            let id = id.clone();
                            move |conn| {
                                conn.query("SELECT * FROM people WHERE id = ?1", &[Value::Text(id)])
                            }
                        })
                        .expect("read");
                    let values = old
                        .columns
                        .iter()
                        .cloned()
                        .zip(old.rows[0].iter().cloned())
                        .collect();
                    write(
                        engine,
                        Change::RecordDeleted {
                            collection_id: "c_people".into(),
                            id: id.clone(),
                            old: values,
                        },
                    );
                    world.live.insert(id, false);
                }
            }
            Op::Snapshot => {
                engine.snapshot().expect("snapshot");
            }
            Op::RenameNote => {
                world.note_name = if world.note_name == "note" {
                    "memo".into()
                } else {
                    "note".into()
                };
                write(
                    engine,
                    Change::CollectionUpdated(people_def(&world.note_name)),
                );
            }
        }
    }
}

/// Every file under `dir`, recursively.
fn all_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// Asserts that no byte sequence of `erased` is in any file of `dir`.
fn assert_no_trace(dir: &Path, erased: &[String]) {
    let files = all_files(dir);
    assert!(files.iter().any(|path| path.ends_with("data.db")));
    for path in files {
        let bytes = std::fs::read(&path).expect("read file");
        for token in erased {
            let needle = token.as_bytes();
            assert!(
                !bytes.windows(needle.len()).any(|window| window == needle),
                "{token} survives in {}",
                path.display()
            );
        }
    }
}

/// `verify`'s checks: the projection equals a replay of the log, every snapshot equals a
/// replay up to its seq, and no redaction is left unfinished.
fn assert_consistent(engine: &Engine) {
    common::assert_projection_matches_replay(engine);
    let dir = engine.dir();
    assert!(
        !dir.join(engine::REDACT_JOURNAL).exists(),
        "journal left behind"
    );
    let (reader, _) = engine::LogReader::open_dir(
        std::sync::Arc::new(engine::FsStorage),
        &dir.join(engine::admin::LOG_DIR),
    )
    .expect("open log read-only");
    let snapshots = engine::admin::snapshots_dir(dir);
    if let Ok(entries) = std::fs::read_dir(&snapshots) {
        for entry in entries {
            let path = entry.expect("entry").path();
            let Some(seq) = path
                .file_name()
                .and_then(|name| name.to_str())
                .and_then(engine::admin::parse_snapshot_name)
            else {
                continue;
            };
            let scratch = tempfile::tempdir().expect("tempdir");
            let mut replay =
                engine::admin::Projection::open(&scratch.path().join("r.db")).expect("open replay");
            replay.replay(&reader, 1, seq, |_| {}).expect("replay");
            let snapshot = engine::admin::Projection::open_read_only(&path).expect("open snapshot");
            assert_eq!(
                snapshot.dump().expect("dump"),
                replay.dump().expect("dump"),
                "snapshot {} differs from a replay up to its seq",
                path.display()
            );
        }
    }
}

/// Current values of the table, by (record id, field id).
fn current(engine: &Engine, note_name: &str) -> BTreeMap<(String, String), String> {
    let sql = format!("SELECT id, name, email, {note_name} FROM people");
    let rows = engine
        .read(move |conn| conn.query(&sql, &[]))
        .expect("read");
    let mut out = BTreeMap::new();
    for row in rows.rows {
        let id = row[0].as_str().expect("id").to_string();
        for (index, field_id) in ["f_name", "f_email", "f_note"].iter().enumerate() {
            out.insert(
                (id.clone(), field_id.to_string()),
                row[index + 1].as_str().expect("text").to_string(),
            );
        }
    }
    out
}

fn field_id(field: &str) -> String {
    format!("f_{field}")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    #[test]
    fn redaction_leaves_no_trace(
        ops in proptest::collection::vec(op(), 10..60),
        redactions in proptest::collection::vec((0u8..8, proptest::collection::btree_set(0usize..3, 1..=3)), 1..4),
    ) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("pb_data");
        let engine = open(&dir);
        let mut world = World::default();
        run_ops(&engine, &mut world, &ops);
        let before = current(&engine, &world.note_name);
        let mut erased_pairs = std::collections::BTreeSet::new();
        for (key, fields) in &redactions {
            let id = format!("rec{key:012}");
            if !world.written.keys().any(|(record, _)| *record == id) {
                continue;
            }
            let names: Vec<String> = fields
                .iter()
                .map(|index| match FIELDS[*index] {
                    "note" => world.note_name.clone(),
                    other => other.to_string(),
                })
                .collect();
            let report = engine
                .redact(Actor::System, "people", &id, &names)
                .expect("redact");
            prop_assert!(report.seq > 0);
            for index in fields {
                erased_pairs.insert((id.clone(), field_id(FIELDS[*index])));
            }
        }
        // Everything not redacted is unchanged; everything redacted is empty.
        let after = current(&engine, &world.note_name);
        prop_assert_eq!(before.len(), after.len());
        for (key, value) in &before {
            if erased_pairs.contains(key) {
                prop_assert_eq!(after.get(key).map(String::as_str), Some(""));
            } else {
                prop_assert_eq!(after.get(key), Some(value));
            }
        }
        assert_consistent(&engine);
        drop(engine);
        let erased: Vec<String> = world
            .written
            .iter()
            .filter(|(key, _)| erased_pairs.contains(key))
            .flat_map(|(_, values)| values.iter().cloned())
            .collect();
        assert_no_trace(&dir, &erased);
        // Values that were not erased are still in the log (the scan would find them).
        let kept: Vec<&String> = world
            .written
            .iter()
            .filter(|(key, _)| !erased_pairs.contains(key))
            .flat_map(|(_, values)| values.iter())
            .collect();
        if let Some(token) = kept.first() {
            let found = all_files(&dir.join("log")).iter().any(|path| {
                let bytes = std::fs::read(path).expect("read");
                bytes.windows(token.len()).any(|window| window == token.as_bytes())
            });
            prop_assert!(found, "an untouched value vanished from the log");
        }
        // Reopened, it is the same state.
        let engine = open(&dir);
        prop_assert_eq!(current(&engine, &world.note_name), after);
        assert_consistent(&engine);
    }
}

/// A fixed workload: three records, updates across several segments, two snapshots.
fn fixed_world(engine: &Engine) -> World {
    let mut world = World::default();
    let mut ops = Vec::new();
    for round in 0..6u8 {
        for key in 0..3u8 {
            ops.push(Op::Upsert(key));
        }
        if round % 2 == 1 {
            ops.push(Op::Snapshot);
        }
    }
    ops.push(Op::Delete(2));
    run_ops(engine, &mut world, &ops);
    world
}

fn tokens_of(world: &World, record: &str, fields: &[&str]) -> Vec<String> {
    fields
        .iter()
        .flat_map(|field| {
            world
                .written
                .get(&(record.to_string(), field_id(field)))
                .cloned()
                .unwrap_or_default()
        })
        .collect()
}

fn log_holds(dir: &Path, token: &str) -> bool {
    all_files(dir).iter().any(|path| {
        let bytes = std::fs::read(path).expect("read");
        bytes
            .windows(token.len())
            .any(|window| window == token.as_bytes())
    })
}

#[test]
fn a_redaction_stopped_at_any_step_is_finished_by_the_next_open() {
    // Steps counted in a full run: journal, commit, segments (written and swapped), snapshots,
    // projection, done.
    let mut steps = 0;
    {
        let tmp = tempfile::tempdir().expect("tempdir");
        let engine = open(tmp.path());
        fixed_world(&engine);
        engine
            .redact_with_steps(
                Actor::System,
                "people",
                &format!("rec{:012}", 2),
                &["email".to_string(), "note".to_string()],
                &mut |_| {
                    steps += 1;
                    Ok(())
                },
            )
            .expect("redact");
    }
    assert!(
        steps > 6,
        "only {steps} steps: the workload spans too few segments"
    );
    for stop_at in 1..=steps {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("pb_data");
        let engine = open(&dir);
        let world = fixed_world(&engine);
        let record = format!("rec{:012}", 2);
        let erased = tokens_of(&world, &record, &["email", "note"]);
        let kept = tokens_of(&world, &record, &["name"]);
        let mut seen = 0;
        let mut stopped_step = None;
        let result = engine.redact_with_steps(
            Actor::System,
            "people",
            &record,
            &["email".to_string(), "note".to_string()],
            &mut |step| {
                seen += 1;
                if seen == stop_at {
                    stopped_step = Some(step.clone());
                    return Err(Error::InvalidChange(format!("failpoint at {step:?}")));
                }
                Ok(())
            },
        );
        assert!(
            result.is_err(),
            "stop {stop_at}: the failpoint did not fire"
        );
        drop(engine);
        // The next open finishes (or drops) it.
        let engine = open(&dir);
        assert_consistent(&engine);
        drop(engine);
        if matches!(stopped_step, Some(RedactStep::JournalWritten)) {
            // Stopped before the commit: not started, everything still there.
            for token in &erased {
                assert!(
                    log_holds(&dir.join("log"), token),
                    "stop {stop_at}: {token} vanished"
                );
            }
        } else {
            assert_no_trace(&dir, &erased);
        }
        for token in &kept {
            assert!(
                log_holds(&dir.join("log"), token),
                "stop {stop_at}: kept {token} vanished"
            );
        }
        assert!(!dir.join(engine::REDACT_JOURNAL).exists());
        let _ = fresh_replay_dump(&dir);
    }
}

#[test]
fn a_redaction_refuses_bad_fields_and_leaves_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let engine = open(tmp.path());
    let world = fixed_world(&engine);
    let record = format!("rec{:012}", 0);
    let last = engine.last_seq();
    for fields in [vec!["nope".to_string()], vec!["id".to_string()]] {
        let err = engine
            .redact(Actor::System, "people", &record, &fields)
            .expect_err("refused");
        assert!(
            matches!(err, Error::InvalidChange(_)),
            "{fields:?}: {err:?}"
        );
    }
    assert!(matches!(
        engine.redact(Actor::System, "nothere", &record, &["name".to_string()]),
        Err(Error::InvalidChange(_))
    ));
    assert_eq!(
        engine.last_seq(),
        last,
        "a refused redaction committed something"
    );
    assert!(!tmp.path().join(engine::REDACT_JOURNAL).exists());
    for token in tokens_of(&world, &record, &["name", "email", "note"]) {
        assert!(log_holds(&tmp.path().join("log"), &token));
    }
    // No field named: every field but id (and timestamps, token key) is erased.
    let other = format!("rec{:012}", 1);
    engine
        .redact(Actor::System, "people", &other, &[])
        .expect("redact all");
    let commits = engine.log().read_from(engine.last_seq(), 1).expect("read");
    assert!(matches!(
        &commits[0].changes[0],
        Change::Redacted { fields, .. } if fields == &["name", "email", "note", "age"]
    ));
    for token in tokens_of(&world, &other, &["name", "email", "note"]) {
        assert!(!log_holds(&tmp.path().join("log"), &token), "{token} kept");
    }
    // The log records the redaction itself as a commit with the field names.
    engine
        .redact(Actor::System, "people", &record, &["name".to_string()])
        .expect("redact");
    let commits = engine.log().read_from(engine.last_seq(), 1).expect("read");
    assert!(matches!(
        &commits[0].changes[0],
        Change::Redacted { id, fields, field_ids, .. }
            if *id == record && fields == &["name".to_string()] && field_ids == &["f_name".to_string()]
    ));
}
