//! Backward compatibility: a data dir written by an earlier format version still opens, its log
//! replays into the same state, and new commits continue its seq numbering.
//!
//! Method: copy `tests/fixtures/format-v<N>/log` into a temp dir, open the engine (the
//! projection is rebuilt from the log), query the state the fixture is known to hold.

use engine::{Engine, EngineConfig, SyncPolicy, Value};
use std::path::Path;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create target dir");
    for entry in std::fs::read_dir(from).expect("read fixture dir") {
        let entry = entry.expect("fixture entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy fixture file");
    }
}

#[test]
fn format_v1_data_dir_opens_and_replays() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/format-v1/log");
    let dir = tempfile::tempdir().expect("temp dir");
    copy_dir(&fixture, &dir.path().join(engine::admin::LOG_DIR));
    let config = EngineConfig {
        sync: SyncPolicy::None,
        ..EngineConfig::default()
    };
    let (engine, report) = Engine::open(dir.path(), config).expect("a v1 data dir opens");
    assert_eq!(report.commits, 8, "{report:?}");
    assert_eq!(report.replayed, 8, "the projection is rebuilt from the log");
    assert!(report.torn_tail.is_none());
    assert_eq!(engine.last_seq(), 8);
    let rows = engine
        .read(|conn| conn.query("SELECT id, title, n, tags FROM notes ORDER BY id", &[]))
        .expect("the notes table exists");
    assert_eq!(
        rows.rows,
        vec![
            vec![
                Value::from("note00000000001"),
                Value::from("note 1"),
                Value::Int(1),
                Value::from(r#"["a","b"]"#),
            ],
            vec![
                Value::from("note00000000002"),
                Value::from("note 2"),
                Value::Int(42),
                Value::from(r#"["a","b"]"#),
            ],
        ]
    );
    let superusers = engine
        .read(|conn| conn.query("SELECT email FROM _superusers", &[]))
        .expect("superusers");
    assert_eq!(
        superusers.rows,
        vec![vec![Value::from("admin@example.com")]]
    );
    let commits = engine.log().read_from(1, 100).expect("read the whole log");
    assert_eq!(commits.len(), 8);
    assert!(commits
        .windows(2)
        .all(|pair| pair[1].seq == pair[0].seq + 1));
}
