//! Crash test: a child process commits continuously (several submitters, `sync = always`) and
//! prints every acknowledged commit; the parent kills it with SIGKILL at random moments, reopens
//! the data dir and checks that every acknowledged commit is present, that no commit is half
//! applied (each commit inserts three records and bumps a counter: all or nothing), and that
//! the projection equals a fresh replay of the log.
//!
//! `harness = false`: the same binary is parent and child (child mode when `CRASH_CHILD_DIR` is
//! set). `CRASH_CYCLES` sets the number of kills (default 20), `CRASH_SEED` replays a run; the
//! seed is printed first. Ends with an `N passed, M failed` line.
//!
//! Guards against: acknowledging before fsync, replaying a commit twice or not at all on
//! catch-up, and torn tails that block start-up.

use engine::{Actor, Change, CollectionDef, ColumnDef, Engine, EngineConfig, SyncPolicy, Value};
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const CHILD_ENV: &str = "CRASH_CHILD_DIR";
const CYCLE_ENV: &str = "CRASH_CHILD_CYCLE";
const SUBMITTERS: usize = 4;

fn def() -> CollectionDef {
    let column = |name: &str, decl: &str| ColumnDef {
        id: format!("f_{name}"),
        name: name.into(),
        decl: decl.into(),
    };
    CollectionDef {
        id: "c_crash".into(),
        name: "crash".into(),
        kind: "base".into(),
        columns: vec![
            column("id", "TEXT PRIMARY KEY NOT NULL"),
            column("grp", "TEXT DEFAULT '' NOT NULL"),
            column("n", "NUMERIC DEFAULT 0 NOT NULL"),
        ],
        indexes: Vec::new(),
        view_query: None,
        meta: "{}".into(),
    }
}

fn row(id: &str, group: &str, n: i64) -> Vec<(String, Value)> {
    vec![
        ("id".into(), Value::from(id)),
        ("grp".into(), Value::from(group)),
        ("n".into(), Value::Int(n)),
    ]
}

fn open(dir: &Path) -> Engine {
    let config = EngineConfig {
        sync: SyncPolicy::Always,
        segment_bytes_max: 64 * 1024,
        ..EngineConfig::default()
    };
    Engine::open(dir, config).expect("open").0
}

/// Child: commit forever, print `ACK <seq> <group>` after each acknowledged commit.
fn child(dir: &Path, cycle: &str) -> ! {
    let engine = open(dir);
    let _ = engine.execute(Actor::System, |tx| {
        if tx.collection("c_crash").is_some() {
            return Ok(());
        }
        tx.stage(Change::CollectionCreated(def()))?;
        tx.stage(Change::RecordCreated {
            collection_id: "c_crash".into(),
            id: "counter".into(),
            values: row("counter", "", 0),
        })
    });
    let stdout = Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let threads: Vec<_> = (0..SUBMITTERS)
        .map(|thread| {
            let engine = engine.clone();
            let stdout = Arc::clone(&stdout);
            let cycle = cycle.to_string();
            std::thread::spawn(move || {
                for index in 0u64.. {
                    let group = format!("c{cycle}t{thread}i{index}");
                    let staged = group.clone();
                    let result = engine.execute(Actor::System, move |tx| {
                        for part in ["a", "b", "c"] {
                            let id = format!("{staged}{part}");
                            tx.stage(Change::RecordCreated {
                                collection_id: "c_crash".into(),
                                id: id.clone(),
                                values: row(&id, &staged, index as i64),
                            })?;
                        }
                        let rows = tx.query("SELECT n FROM crash WHERE id = 'counter'", &[])?;
                        let n = rows.rows[0][0].as_i64().unwrap_or_default();
                        tx.stage(Change::RecordUpdated {
                            collection_id: "c_crash".into(),
                            id: "counter".into(),
                            values: row("counter", "", n + 1),
                        })
                    });
                    match result {
                        Ok(outcome) => {
                            let seq = outcome.commit.map(|commit| commit.seq).unwrap_or(0);
                            let mut out = stdout.lock().expect("stdout lock");
                            let _ = writeln!(out, "ACK {seq} {group}");
                            let _ = out.flush();
                        }
                        Err(failure) => {
                            eprintln!("child: commit failed: {failure:?}");
                            std::process::exit(2);
                        }
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
    std::process::exit(0)
}

/// Checks the data dir after a kill; returns a list of problems.
fn check(dir: &Path, acked: &BTreeMap<String, u64>) -> Vec<String> {
    let mut problems = Vec::new();
    let (engine, report) = match Engine::open(dir, EngineConfig::default()) {
        Ok(opened) => opened,
        Err(err) => return vec![format!("reopen failed: {err}")],
    };
    let rows = engine
        .read(|conn| conn.query("SELECT id, grp, n FROM crash ORDER BY id", &[]))
        .expect("read");
    let mut groups: BTreeMap<String, usize> = BTreeMap::new();
    let mut counter = 0;
    for row in &rows.rows {
        let id = row[0].as_str().unwrap_or_default();
        if id == "counter" {
            counter = row[2].as_i64().unwrap_or_default();
        } else {
            *groups
                .entry(row[1].as_str().unwrap_or_default().to_string())
                .or_default() += 1;
        }
    }
    for (group, count) in &groups {
        if *count != 3 {
            problems.push(format!(
                "commit {group} is half applied: {count} of 3 records"
            ));
        }
    }
    if counter != groups.len() as i64 {
        problems.push(format!(
            "counter {counter} but {} complete commits",
            groups.len()
        ));
    }
    let present: BTreeSet<&String> = groups.keys().collect();
    for (group, seq) in acked {
        if !present.contains(group) {
            problems.push(format!(
                "acknowledged commit {group} (seq {seq}) is missing"
            ));
        }
    }
    if let Some(max) = acked.values().max() {
        if engine.last_seq() < *max {
            problems.push(format!(
                "log ends at {} but seq {max} was acknowledged",
                engine.last_seq()
            ));
        }
    }
    let live = engine.read(|conn| conn.dump()).expect("dump");
    let (reader, _) = engine::LogReader::open_dir(
        Arc::new(engine::FsStorage),
        &dir.join(engine::admin::LOG_DIR),
    )
    .expect("read log");
    let scratch = tempfile::tempdir().expect("tempdir");
    let mut replay =
        engine::admin::Projection::open(&scratch.path().join("r.db")).expect("replay db");
    replay
        .replay(&reader, 1, reader.last_seq(), |_| {})
        .expect("replay");
    if replay.dump().expect("dump") != live {
        problems.push("projection differs from a fresh replay".into());
    }
    if let Some(torn) = &report.torn_tail {
        println!("  torn tail cut at {} (+{} bytes)", torn.offset, torn.bytes);
    }
    engine.shutdown();
    problems
}

fn main() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(
            Path::new(&dir),
            &std::env::var(CYCLE_ENV).unwrap_or_default(),
        );
    }
    let cycles: u64 = std::env::var("CRASH_CYCLES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(rand::random);
    println!("crash test: {cycles} cycles, seed {seed} (CRASH_SEED={seed} to replay)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("current exe");
    let mut acked: BTreeMap<String, u64> = BTreeMap::new();
    let (mut passed, mut failed) = (0u64, 0u64);
    for cycle in 0..cycles {
        let mut child = Command::new(&exe)
            .env(CHILD_ENV, dir.path())
            .env(CYCLE_ENV, cycle.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("child stdout");
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in std::io::BufReader::new(stdout).lines() {
                match line {
                    Ok(line) => lines.push(line),
                    Err(_) => break,
                }
            }
            lines
        });
        let delay = rng.gen_range(30..400);
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().expect("SIGKILL the child");
        let _ = child.wait();
        let lines = reader.join().expect("reader thread");
        let mut new = 0;
        for line in lines {
            let mut parts = line.split_whitespace();
            if let (Some("ACK"), Some(seq), Some(group)) =
                (parts.next(), parts.next(), parts.next())
            {
                acked.insert(group.to_string(), seq.parse().unwrap_or(0));
                new += 1;
            }
        }
        let problems = check(dir.path(), &acked);
        if problems.is_empty() {
            passed += 1;
            println!(
                "cycle {cycle}: killed after {delay} ms, {new} new acks ({} total): ok",
                acked.len()
            );
        } else {
            failed += 1;
            println!("cycle {cycle}: killed after {delay} ms: FAILED (seed {seed})");
            for problem in problems.iter().take(10) {
                println!("  {problem}");
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 || acked.is_empty() {
        if acked.is_empty() {
            println!("no commit was ever acknowledged");
        }
        std::process::exit(1);
    }
}
