//! `pb-tools replay` into a data dir keeps the previous `data.db` as
//! `data.db.before-replay-<ms>` (it may be the damaged file someone needs to inspect) instead
//! of deleting it, and the rebuilt projection is complete.
#![allow(
    clippy::disallowed_methods,
    reason = "the test inspects and damages files directly"
)]

use engine::{Engine, EngineConfig, SyncPolicy};
use std::process::Command;

#[test]
fn replay_into_the_data_dir_keeps_the_previous_projection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (engine, _) = Engine::open(
        dir.path(),
        EngineConfig {
            sync: SyncPolicy::None,
            scrub_every_ms: None,
            ..EngineConfig::default()
        },
    )
    .expect("open");
    engine
        .execute(engine::Actor::System, |tx| {
            tx.stage(engine::Change::ParamSet {
                key: "k".into(),
                value: Some("\"v\"".into()),
            })
        })
        .expect("write");
    engine.shutdown();
    drop(engine);
    let db = dir.path().join(engine::admin::DATA_DB);
    // A damaged projection: zeroed header.
    let mut bytes = std::fs::read(&db).expect("read");
    bytes[..100].fill(0);
    std::fs::write(&db, &bytes).expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_pb-tools"))
        .args(["replay", "--dir", dir.path().to_str().expect("utf8")])
        .output()
        .expect("run pb-tools");
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let kept: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read dir")
        .filter_map(|entry| entry.ok())
        .filter(|entry| {
            entry.file_name().to_str().is_some_and(|name| {
                name.starts_with("data.db.before-replay-")
                    && !name.ends_with("-wal")
                    && !name.ends_with("-shm")
            })
        })
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(std::fs::read(kept[0].path()).expect("kept"), bytes);
    let conn = rusqlite::Connection::open(&db).expect("open rebuilt");
    let value: String = conn
        .query_row("SELECT value FROM _params WHERE key = 'k'", [], |row| {
            row.get(0)
        })
        .expect("row");
    assert_eq!(value, "\"v\"");
}
