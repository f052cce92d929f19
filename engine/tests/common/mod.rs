//! Shared helpers for the engine's integration tests.
#![allow(
    clippy::disallowed_methods,
    reason = "tests damage and inspect log files directly"
)]
#![allow(dead_code, unreachable_pub)]

use engine::{Actor, Change, CollectionDef, ColumnDef, Engine, EngineConfig, SyncPolicy, Value};
use std::path::Path;

/// A small `notes` collection: id, title, n.
pub fn notes_def() -> CollectionDef {
    CollectionDef {
        id: "c_notes".into(),
        name: "notes".into(),
        kind: "base".into(),
        columns: vec![
            ColumnDef {
                id: "f_id".into(),
                name: "id".into(),
                decl: "TEXT PRIMARY KEY NOT NULL".into(),
            },
            ColumnDef {
                id: "f_title".into(),
                name: "title".into(),
                decl: "TEXT DEFAULT '' NOT NULL".into(),
            },
            ColumnDef {
                id: "f_n".into(),
                name: "n".into(),
                decl: "NUMERIC DEFAULT 0 NOT NULL".into(),
            },
        ],
        indexes: vec![
            "CREATE UNIQUE INDEX idx_notes_title ON notes (title) WHERE title != ''".into(),
        ],
        view_query: None,
        meta: "{}".into(),
    }
}

pub fn open(dir: &Path, sync: SyncPolicy) -> Engine {
    let config = EngineConfig {
        sync,
        ..EngineConfig::default()
    };
    Engine::open(dir, config).expect("open").0
}

pub fn create_notes(engine: &Engine) {
    engine
        .execute(Actor::System, |tx| {
            tx.stage(Change::CollectionCreated(notes_def()))
        })
        .map_err(|_| "create collection failed")
        .expect("create collection");
}

pub fn insert_note(engine: &Engine, id: &str, title: &str, n: i64) -> Result<u64, String> {
    let (id, title) = (id.to_string(), title.to_string());
    engine
        .execute(Actor::System, move |tx| {
            tx.stage(Change::RecordCreated {
                collection_id: "c_notes".into(),
                id: id.clone(),
                values: vec![
                    ("id".into(), Value::Text(id)),
                    ("title".into(), Value::Text(title)),
                    ("n".into(), Value::Int(n)),
                ],
            })
        })
        .map(|outcome| outcome.commit.expect("a commit").seq)
        .map_err(|failure| format!("{failure:?}"))
}

pub fn notes(engine: &Engine) -> Vec<(String, String, i64)> {
    engine
        .read(|conn| conn.query("SELECT id, title, n FROM notes ORDER BY id", &[]))
        .expect("read")
        .rows
        .into_iter()
        .map(|row| {
            (
                row[0].as_str().unwrap_or_default().to_string(),
                row[1].as_str().unwrap_or_default().to_string(),
                row[2].as_i64().unwrap_or_default(),
            )
        })
        .collect()
}

/// Opens an engine with the given config tweaks applied on top of the default.
pub fn open_with(dir: &Path, config: EngineConfig) -> Engine {
    Engine::open(dir, config).expect("open").0
}

/// Segment files of a data dir, sorted by first seq.
pub fn segments(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = std::fs::read_dir(dir.join(engine::admin::LOG_DIR))
        .expect("read log dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .and_then(engine::admin::parse_segment_name)
                .is_some()
        })
        .collect();
    out.sort();
    out
}

/// `.broken-*` side files in the log dir.
pub fn broken_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = std::fs::read_dir(dir.join(engine::admin::LOG_DIR))
        .expect("read log dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.to_string_lossy().contains(".broken-"))
        .collect();
    out.sort();
    out
}

/// Byte offsets of every frame of a segment (after the header).
pub fn frame_offsets(segment: &Path) -> Vec<u64> {
    let bytes = std::fs::read(segment).expect("read segment");
    let mut offset = engine::admin::SEGMENT_HEADER_LEN;
    let mut out = Vec::new();
    while offset < bytes.len() {
        match engine::admin::decode_frame(&bytes[offset..]) {
            engine::admin::FrameRead::Frame { frame_len, .. } => {
                out.push(offset as u64);
                offset += frame_len;
            }
            other => panic!("bad frame at {offset}: {other:?}"),
        }
    }
    out
}

/// XORs one byte of a file with `mask`.
pub fn flip_byte(path: &Path, offset: u64, mask: u8) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[offset as usize] ^= mask;
    std::fs::write(path, bytes).expect("write");
}

/// Cuts a file to `len` bytes.
pub fn truncate_to(path: &Path, len: u64) {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open");
    file.set_len(len).expect("set_len");
}

/// Overwrites everything from `offset` to the end of the file with zeros (length unchanged).
pub fn zero_from(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).expect("read");
    for byte in &mut bytes[offset as usize..] {
        *byte = 0;
    }
    std::fs::write(path, bytes).expect("write");
}

/// Rebuilds a projection from the log of `dir` into a fresh temporary database and dumps it.
pub fn fresh_replay_dump(dir: &Path) -> Vec<String> {
    let (reader, _) = engine::LogReader::open_dir(
        std::sync::Arc::new(engine::FsStorage),
        &dir.join(engine::admin::LOG_DIR),
    )
    .expect("open log read-only");
    let scratch = tempfile::tempdir().expect("tempdir");
    let mut replay =
        engine::admin::Projection::open(&scratch.path().join("replay.db")).expect("open replay db");
    replay
        .replay(&reader, 1, reader.last_seq(), |_| {})
        .expect("replay");
    replay.dump().expect("dump")
}

/// The live projection's dump.
pub fn live_dump(engine: &Engine) -> Vec<String> {
    engine.read(|conn| conn.dump()).expect("dump")
}

/// Asserts that the projection equals a fresh replay of the log.
pub fn assert_projection_matches_replay(engine: &Engine) {
    let live = live_dump(engine);
    let replayed = fresh_replay_dump(engine.dir());
    assert_eq!(live, replayed, "projection differs from a fresh replay");
}

/// Inserts `count` notes with ids `n0000..`, starting after the collection; returns their seqs.
pub fn insert_many(engine: &Engine, start: usize, count: usize) -> Vec<u64> {
    (start..start + count)
        .map(|index| {
            insert_note(
                engine,
                &format!("n{index:04}"),
                &format!("title {index}"),
                index as i64,
            )
            .expect("insert")
        })
        .collect()
}
