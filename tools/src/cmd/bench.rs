//! `pb-tools bench-engine`: the engine benchmark.
//!
//! Scenarios (one JSON line each): small commits with `sync = always` from 1 submitter and from
//! 64 concurrent submitters (group commit), then a replay of the whole log into a fresh
//! projection. Runs in a temporary data dir unless `--dir` names a new one.

use anyhow::{bail, Context, Result};
use engine::{Actor, Change, CollectionDef, ColumnDef, Engine, EngineConfig, SyncPolicy, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Arguments of `bench-engine`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Commits for the 64-submitter scenario (the 1-submitter one runs a 20th of it).
    #[arg(long, default_value_t = 100_000)]
    pub commits: u64,
    /// Concurrent submitters for the group-commit scenario.
    #[arg(long, default_value_t = 64)]
    pub submitters: u64,
    /// Run in this (new or empty) directory instead of a temporary one.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

pub(crate) fn bench_def() -> CollectionDef {
    let column = |name: &str, decl: &str| ColumnDef {
        id: format!("f_{name}"),
        name: name.into(),
        decl: decl.into(),
    };
    CollectionDef {
        id: "c_bench".into(),
        name: "bench".into(),
        kind: "base".into(),
        columns: vec![
            column("id", "TEXT PRIMARY KEY NOT NULL"),
            column("body", "TEXT DEFAULT '' NOT NULL"),
            column("n", "NUMERIC DEFAULT 0 NOT NULL"),
            column("created", "TEXT DEFAULT '' NOT NULL"),
        ],
        indexes: Vec::new(),
        view_query: None,
        meta: "{}".into(),
    }
}

/// The values of one benchmark record.
fn record_values(id: String, n: i64, created: i64) -> Vec<(String, Value)> {
    vec![
        ("id".into(), Value::Text(id)),
        (
            "body".into(),
            Value::from("a small chat message of about fifty bytes.."),
        ),
        ("n".into(), Value::Int(n)),
        ("created".into(), Value::Int(created)),
    ]
}

pub(crate) fn insert(engine: &Engine, id: String, n: i64) -> Result<()> {
    engine
        .execute(Actor::Guest, move |tx| {
            let created = tx.timestamp_ms();
            tx.stage(Change::RecordCreated {
                collection_id: "c_bench".into(),
                id: id.clone(),
                values: record_values(id, n, created),
            })
        })
        .map(|_| ())
        .map_err(|failure| anyhow::anyhow!("commit failed: {failure:?}"))
}

fn line(scenario: &str, submitters: u64, kind: &str, commits: u64, seconds: f64) {
    println!(
        "{}",
        serde_json::json!({
            "scenario": scenario,
            "submitters": submitters,
            "submitter_kind": kind,
            "commits": commits,
            "seconds": (seconds * 1000.0).round() / 1000.0,
            "commits_per_s": (commits as f64 / seconds.max(1e-9)).round(),
        })
    );
}

/// [`insert`] for async callers: submits and awaits the reply.
async fn insert_async(engine: &Engine, id: String, n: i64) -> Result<()> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    engine
        .submit(
            Actor::Guest,
            move |tx| {
                let created = tx.timestamp_ms();
                tx.stage(Change::RecordCreated {
                    collection_id: "c_bench".into(),
                    id: id.clone(),
                    values: record_values(id, n, created),
                })
            },
            move |result| {
                let _ = sender.send(result.map(|_| ()));
            },
        )
        .map_err(|err| anyhow::anyhow!("submit failed: {err}"))?;
    receiver
        .await
        .map_err(|_| anyhow::anyhow!("the writer dropped the reply"))?
        .map_err(|failure| anyhow::anyhow!("commit failed: {failure:?}"))
}

/// Runs the benchmark.
pub fn run(args: &Args) -> Result<()> {
    if args.commits == 0 || args.submitters == 0 {
        bail!("--commits and --submitters must be at least 1");
    }
    let scratch;
    let dir = match &args.dir {
        Some(dir) => {
            if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
                bail!(
                    "{} is not empty; bench-engine needs a new directory",
                    dir.display()
                );
            }
            dir.clone()
        }
        None => {
            scratch = tempfile::tempdir().context("cannot create a temporary directory")?;
            scratch.path().to_path_buf()
        }
    };
    let config = EngineConfig {
        sync: SyncPolicy::Always,
        ..EngineConfig::default()
    };
    let (engine, _) = Engine::open(&dir, config).context("cannot open the bench data dir")?;
    engine
        .execute(Actor::System, |tx| {
            tx.stage(Change::CollectionCreated(bench_def()))
        })
        .map_err(|failure| anyhow::anyhow!("create collection: {failure:?}"))?;

    // One submitter: every commit waits for its own fsync.
    let single = (args.commits / 20).max(1);
    let started = Instant::now();
    for index in 0..single {
        insert(&engine, format!("s{index:012}"), index as i64)?;
    }
    line(
        "commit_sync_always",
        1,
        "thread",
        single,
        started.elapsed().as_secs_f64(),
    );

    // Many submitters: each keeps one commit in flight, the writer groups them.
    let per_thread = args.commits.div_ceil(args.submitters);
    let started = Instant::now();
    let threads: Vec<_> = (0..args.submitters)
        .map(|thread| {
            let engine = engine.clone();
            std::thread::spawn(move || -> Result<()> {
                for index in 0..per_thread {
                    insert(&engine, format!("t{thread:03}i{index:09}"), index as i64)?;
                }
                Ok(())
            })
        })
        .collect();
    for thread in threads {
        thread
            .join()
            .map_err(|_| anyhow::anyhow!("a submitter thread panicked"))??;
    }
    let total = per_thread * args.submitters;
    line(
        "commit_sync_always",
        args.submitters,
        "thread",
        total,
        started.elapsed().as_secs_f64(),
    );

    // The same with async submitters, as the server submits: tasks on one runtime thread,
    // each awaiting its reply (the writer wakes one thread per group, not one per commit).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .context("starting the submitters' runtime")?;
    let started = Instant::now();
    runtime.block_on(async {
        let tasks: Vec<_> = (0..args.submitters)
            .map(|task| {
                let engine = engine.clone();
                tokio::spawn(async move {
                    for index in 0..per_thread {
                        insert_async(&engine, format!("a{task:03}i{index:09}"), index as i64)
                            .await?;
                    }
                    Ok::<(), anyhow::Error>(())
                })
            })
            .collect();
        for task in tasks {
            task.await
                .map_err(|_| anyhow::anyhow!("a submitter task panicked"))??;
        }
        Ok::<(), anyhow::Error>(())
    })?;
    line(
        "commit_sync_always",
        args.submitters,
        "task",
        total,
        started.elapsed().as_secs_f64(),
    );
    engine.shutdown();
    drop(engine);

    // Replay the whole log into a fresh projection.
    let (reader, report) = engine::LogReader::open_dir(
        Arc::new(engine::FsStorage),
        &dir.join(engine::admin::LOG_DIR),
    )
    .context("cannot read the bench log")?;
    let out = dir.join("replay.db");
    let started = Instant::now();
    let (_, applied) = super::replay_to_file(&reader, &out, reader.last_seq(), None, |_| {})?;
    line(
        "replay",
        1,
        "thread",
        applied,
        started.elapsed().as_secs_f64(),
    );
    tracing::info!(
        bytes = report.bytes,
        segments = report.segments,
        "bench log"
    );
    Ok(())
}
