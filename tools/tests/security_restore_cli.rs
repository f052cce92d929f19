//! `pb-tools restore` marks the new data dir so that its first `pocketlog` start rotates every
//! auth collection's token secrets (issue #12 hole 9a; the rotation itself is tested in
//! `api/tests/security_restore.rs`). Guards against: a restored dir that would revive tokens
//! revoked after the restore point.

use engine::{Actor, Change, CollectionDef, ColumnDef, Engine, EngineConfig, SyncPolicy};
use std::process::Command;

fn def() -> CollectionDef {
    let column = |name: &str, decl: &str| ColumnDef {
        id: format!("f_{name}"),
        name: name.into(),
        decl: decl.into(),
    };
    CollectionDef {
        id: "c_items".into(),
        name: "items".into(),
        kind: "base".into(),
        columns: vec![column("id", "TEXT PRIMARY KEY NOT NULL")],
        indexes: Vec::new(),
        view_query: None,
        meta: "{}".into(),
    }
}

#[test]
fn restore_leaves_the_rotation_marker_in_the_new_dir() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let source = scratch.path().join("source");
    {
        let config = EngineConfig {
            sync: SyncPolicy::None,
            ..EngineConfig::default()
        };
        let (engine, _) = Engine::open(&source, config).expect("open");
        engine
            .execute(Actor::System, |tx| {
                tx.stage(Change::CollectionCreated(def()))
            })
            .map_err(|_| "commit")
            .expect("commit");
    }
    let target = scratch.path().join("target");
    let output = Command::new(env!("CARGO_BIN_EXE_pb-tools"))
        .args(["restore", "--dir"])
        .arg(&source)
        .arg("--to")
        .arg(&target)
        .output()
        .expect("run pb-tools");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(target.join(api::backups::ROTATE_SECRETS_MARKER).is_file());
    assert!(
        stdout.contains("rotates every auth collection's token secrets"),
        "{stdout}"
    );
    // A refused restore (the target is not empty now) writes nothing new.
    let again = Command::new(env!("CARGO_BIN_EXE_pb-tools"))
        .args(["restore", "--dir"])
        .arg(&source)
        .arg("--to")
        .arg(&target)
        .output()
        .expect("run pb-tools");
    assert!(!again.status.success());
}
