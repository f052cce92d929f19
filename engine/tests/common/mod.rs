//! Shared helpers for the engine's integration tests.
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
