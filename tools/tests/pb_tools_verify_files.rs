//! `pb-tools verify` and stored files: every file the log references (`FilesChanged` added
//! and not removed since) must exist under `storage/`; a missing one fails verification,
//! a removed one is not required.

use engine::{Actor, Change, Engine, EngineConfig, SyncPolicy};
use std::process::Command;

fn verify(dir: &std::path::Path) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_pb-tools"))
        .args(["verify", "--dir", dir.to_str().expect("utf8")])
        .output()
        .expect("run pb-tools");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn verify_reports_referenced_files_that_are_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = EngineConfig {
        sync: SyncPolicy::None,
        ..EngineConfig::default()
    };
    let (engine, _) = Engine::open(dir.path(), config).expect("open");
    let files = |added: &[&str], removed: &[&str]| Change::FilesChanged {
        collection_id: "c1".into(),
        record_id: "r1".into(),
        added: added.iter().map(|s| s.to_string()).collect(),
        removed: removed.iter().map(|s| s.to_string()).collect(),
    };
    let first = files(&["a_0123456789.txt", "b_0123456789.txt"], &[]);
    engine
        .execute(Actor::System, move |tx| tx.stage(first))
        .map_err(|_| "stage")
        .expect("commit");
    engine.shutdown();
    drop(engine);
    let record = dir.path().join("storage/c1/r1");
    std::fs::create_dir_all(&record).expect("dir");
    std::fs::write(record.join("a_0123456789.txt"), b"a").expect("write");

    let (code, stdout) = verify(dir.path());
    assert_ne!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains("FAIL referenced file missing:") && stdout.contains("b_0123456789.txt"),
        "{stdout}"
    );
    assert!(
        stdout.contains("files: 2 referenced, 1 missing"),
        "{stdout}"
    );

    // Once the missing file is released by a later commit, the dir verifies.
    let (engine, _) = Engine::open(
        dir.path(),
        EngineConfig {
            sync: SyncPolicy::None,
            ..EngineConfig::default()
        },
    )
    .expect("reopen");
    let release = files(&[], &["b_0123456789.txt"]);
    engine
        .execute(Actor::System, move |tx| tx.stage(release))
        .map_err(|_| "stage")
        .expect("commit");
    engine.shutdown();
    drop(engine);
    let (code, stdout) = verify(dir.path());
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains("files: 1 referenced, 0 missing"),
        "{stdout}"
    );
}
