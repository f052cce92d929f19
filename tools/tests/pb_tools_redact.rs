//! `pb-tools redact` end to end: the erased values leave every file of the data dir, `verify`
//! passes afterwards, a restore to a point before the redaction has the fields empty, the
//! other records and fields are untouched, and a process killed at each step of a redaction
//! (a real abort) leaves a dir whose next open (any command) completes it or never started it.

use engine::{Actor, Change, CollectionDef, ColumnDef, Engine, EngineConfig, SyncPolicy, Value};
use std::path::Path;
use std::process::{Command, Output};

fn pb_tools(args: &[&str], env: Option<(&str, &str)>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pb-tools"));
    command.args(args);
    if let Some((key, value)) = env {
        command.env(key, value);
    }
    command.output().expect("run pb-tools")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn def() -> CollectionDef {
    let column = |name: &str, decl: &str| ColumnDef {
        id: format!("f_{name}"),
        name: name.into(),
        decl: decl.into(),
    };
    CollectionDef {
        id: "c_people".into(),
        name: "people".into(),
        kind: "base".into(),
        columns: vec![
            column("id", "TEXT PRIMARY KEY NOT NULL"),
            column("name", "TEXT DEFAULT '' NOT NULL"),
            column("email", "TEXT DEFAULT '' NOT NULL"),
        ],
        indexes: Vec::new(),
        view_query: None,
        meta: "{}".into(),
    }
}

fn secret(record: u32, field: &str, version: u32) -> String {
    format!("Sx{record:03}{field}V{version:03}Qz")
}

/// Records p1..p5, each written 4 times, a snapshot after every round; small segments.
fn build(dir: &Path) {
    let config = EngineConfig {
        sync: SyncPolicy::None,
        segment_bytes_max: 1024,
        ..EngineConfig::default()
    };
    let (engine, _) = Engine::open(dir, config).expect("open");
    let write = |change: Change| {
        engine
            .execute(Actor::System, move |tx| tx.stage(change))
            .map_err(|_| "write")
            .expect("write");
    };
    write(Change::CollectionCreated(def()));
    for version in 0..4u32 {
        for record in 1..=5u32 {
            let values = vec![
                ("id".into(), Value::Text(format!("p{record}"))),
                ("name".into(), Value::Text(secret(record, "name", version))),
                (
                    "email".into(),
                    Value::Text(secret(record, "email", version)),
                ),
            ];
            let (collection_id, id) = ("c_people".to_string(), format!("p{record}"));
            write(if version == 0 {
                Change::RecordCreated {
                    collection_id,
                    id,
                    values,
                }
            } else {
                Change::RecordUpdated {
                    collection_id,
                    id,
                    values,
                }
            });
        }
        engine.snapshot().expect("snapshot");
    }
    engine.shutdown();
}

fn files_holding(dir: &Path, needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read");
                if bytes
                    .windows(needle.len())
                    .any(|window| window == needle.as_bytes())
                {
                    out.push(path.display().to_string());
                }
            }
        }
    }
    out
}

fn row(db: &Path, id: &str) -> (String, String) {
    let conn = rusqlite::Connection::open(db).expect("open db");
    conn.query_row(
        "SELECT name, email FROM people WHERE id = ?1",
        [id],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
    .expect("row")
}

#[test]
fn redact_erases_everywhere_and_verify_and_restore_agree() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("pb_data");
    build(&dir);
    let d = dir.to_str().expect("utf8");
    let output = pb_tools(
        &[
            "redact",
            "--dir",
            d,
            "--collection",
            "people",
            "--record",
            "p2",
            "--fields",
            "email",
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        text(&output).contains("redacted record p2 of people at seq 22"),
        "{}",
        text(&output)
    );
    for version in 0..4 {
        let gone = secret(2, "email", version);
        assert_eq!(files_holding(&dir, &gone), Vec::<String>::new(), "{gone}");
        // The name of p2 and the other records' values are untouched.
        assert!(!files_holding(&dir.join("log"), &secret(2, "name", version)).is_empty());
        assert!(!files_holding(&dir.join("log"), &secret(3, "email", version)).is_empty());
    }
    let verify = pb_tools(&["verify", "--dir", d], None);
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify));
    assert_eq!(
        row(&dir.join("data.db"), "p2"),
        (secret(2, "name", 3), String::new())
    );
    // A restore to a point before the redaction (seq 12: p2's second version) has it erased.
    let restored = tmp.path().join("restored");
    let output = pb_tools(
        &[
            "restore",
            "--dir",
            d,
            "--to",
            restored.to_str().expect("utf8"),
            "--at",
            "12",
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(
        row(&restored.join("data.db"), "p2"),
        (secret(2, "name", 1), String::new())
    );
    assert_eq!(
        row(&restored.join("data.db"), "p3"),
        (secret(3, "name", 1), secret(3, "email", 1))
    );
    // Bad input: one error line, exit code 3, nothing committed.
    let output = pb_tools(
        &[
            "redact",
            "--dir",
            d,
            "--collection",
            "people",
            "--record",
            "p2",
            "--fields",
            "nope",
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    assert!(
        text(&output).contains("has no field nope"),
        "{}",
        text(&output)
    );
}

#[test]
fn a_redaction_killed_at_any_step_is_finished_or_never_started() {
    let mut stop = 1;
    loop {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("pb_data");
        build(&dir);
        let d = dir.to_str().expect("utf8");
        let step = stop.to_string();
        let output = pb_tools(
            &[
                "redact",
                "--dir",
                d,
                "--collection",
                "people",
                "--record",
                "p4",
            ],
            Some(("PB_TOOLS_REDACT_ABORT_AT", &step)),
        );
        if output.status.success() {
            // Past the last step: the run completed without being killed.
            assert!(stop > 6, "only {stop} steps");
            break;
        }
        assert!(
            text(&output).contains("aborting at step"),
            "{}",
            text(&output)
        );
        // verify sees the unfinished redaction (until the last step removed the journal).
        if dir.join(engine::REDACT_JOURNAL).exists() {
            let pending = pb_tools(&["verify", "--dir", d], None);
            assert_eq!(
                pending.status.code(),
                Some(4),
                "stop {stop}: {}",
                text(&pending)
            );
            assert!(
                text(&pending).contains("interrupted redaction"),
                "{}",
                text(&pending)
            );
        }
        // Any command that opens the dir with the engine finishes it; verify then passes.
        let output = pb_tools(
            &["compact", "--dir", d, "--retain-commits", "1000000"],
            None,
        );
        assert_eq!(
            output.status.code(),
            Some(0),
            "stop {stop}: {}",
            text(&output)
        );
        let verify = pb_tools(&["verify", "--dir", d], None);
        assert_eq!(
            verify.status.code(),
            Some(0),
            "stop {stop}: {}",
            text(&verify)
        );
        assert!(!dir.join(engine::REDACT_JOURNAL).exists());
        let left: Vec<String> = (0..4)
            .flat_map(|version| files_holding(&dir, &secret(4, "email", version)))
            .collect();
        if stop == 1 {
            // Killed before the commit: never started.
            assert!(!left.is_empty(), "stop 1 erased values");
            assert_eq!(row(&dir.join("data.db"), "p4").1, secret(4, "email", 3));
        } else {
            assert_eq!(left, Vec::<String>::new(), "stop {stop}");
            assert_eq!(
                row(&dir.join("data.db"), "p4"),
                (String::new(), String::new())
            );
        }
        stop += 1;
    }
}
