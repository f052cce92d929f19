//! `pb-tools bench-backup`: backup and point-in-time restore rates on a large data dir, and
//! commit latency during a backup versus without one.
//!
//! Scenarios (one JSON line each): load N small records (one commit each, `sync = none`);
//! `backup` of the whole dir (records/s); `restore_latest` from the archive; `restore_pitr` at
//! the middle of the log (snapshot-less replay of half the log); then the p99 and worst latency
//! of creates from 8 submitters (`sync = always`) with no backup running and while a backup
//! runs. The target is a p99 during the backup of at most 2x the baseline.

use super::bench::{bench_def, insert};
use anyhow::{bail, Context, Result};
use engine::admin::RestoreOptions;
use engine::{Actor, Change, Engine, EngineConfig, SyncPolicy};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Arguments of `bench-backup`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Records in the data dir.
    #[arg(long, default_value_t = 1_000_000)]
    pub records: u64,
    /// Concurrent creators for the latency scenarios.
    #[arg(long, default_value_t = 8)]
    pub submitters: u64,
    /// Run in this (new or empty) directory instead of a temporary one.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

fn line(scenario: &str, fields: serde_json::Value) {
    let mut object = serde_json::json!({ "scenario": scenario });
    if let (Some(target), Some(source)) = (object.as_object_mut(), fields.as_object()) {
        for (key, value) in source {
            target.insert(key.clone(), value.clone());
        }
    }
    println!("{object}");
}

fn rate(count: u64, seconds: f64) -> f64 {
    (count as f64 / seconds.max(1e-9)).round()
}

fn latencies_while(
    engine: &Engine,
    submitters: u64,
    prefix: &str,
    during: impl FnOnce() -> Result<()>,
) -> Result<(Vec<Duration>, f64)> {
    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..submitters)
        .map(|thread| {
            let (engine, stop, samples) = (engine.clone(), Arc::clone(&stop), Arc::clone(&samples));
            let prefix = prefix.to_string();
            std::thread::spawn(move || -> Result<()> {
                let mut index = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let started = Instant::now();
                    insert(
                        &engine,
                        format!("{prefix}{thread:03}i{index:09}"),
                        index as i64,
                    )?;
                    samples
                        .lock()
                        .map_err(|_| anyhow::anyhow!("poisoned"))?
                        .push(started.elapsed());
                    index += 1;
                }
                Ok(())
            })
        })
        .collect();
    let started = Instant::now();
    let outcome = during();
    let seconds = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    for thread in threads {
        thread
            .join()
            .map_err(|_| anyhow::anyhow!("a submitter thread panicked"))??;
    }
    outcome?;
    let mut samples = samples
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    samples.sort();
    Ok((samples, seconds))
}

fn percentile(samples: &[Duration], per_mille: usize) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let index = (samples.len() * per_mille / 1000).min(samples.len() - 1);
    samples[index].as_secs_f64() * 1000.0
}

fn load(dir: &Path, records: u64) -> Result<()> {
    let config = EngineConfig {
        sync: SyncPolicy::None,
        ..EngineConfig::default()
    };
    let (engine, _) = Engine::open(dir, config).context("cannot open the bench data dir")?;
    engine
        .execute(Actor::System, |tx| {
            tx.stage(Change::CollectionCreated(bench_def()))
        })
        .map_err(|failure| anyhow::anyhow!("create collection: {failure:?}"))?;
    let started = Instant::now();
    let threads = 16u64;
    let per_thread = records.div_ceil(threads);
    let handles: Vec<_> = (0..threads)
        .map(|thread| {
            let engine = engine.clone();
            std::thread::spawn(move || -> Result<()> {
                for index in 0..per_thread {
                    if thread * per_thread + index >= records {
                        break;
                    }
                    insert(&engine, format!("l{thread:03}i{index:09}"), index as i64)?;
                }
                Ok(())
            })
        })
        .collect();
    for handle in handles {
        handle
            .join()
            .map_err(|_| anyhow::anyhow!("a loader thread panicked"))??;
    }
    let seconds = started.elapsed().as_secs_f64();
    line(
        "load",
        serde_json::json!({"records": records, "seconds": seconds, "records_per_s": rate(records, seconds)}),
    );
    engine.shutdown();
    Ok(())
}

/// Runs the benchmark.
pub fn run(args: &Args) -> Result<()> {
    if args.records == 0 || args.submitters == 0 {
        bail!("--records and --submitters must be at least 1");
    }
    let scratch;
    let root = match &args.dir {
        Some(dir) => {
            if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
                bail!(
                    "{} is not empty; bench-backup needs a new directory",
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
    let dir = root.join("data");
    load(&dir, args.records)?;
    let records = args.records;

    let archive = root.join("full.tar");
    let started = Instant::now();
    let report =
        engine::admin::write_backup(&dir, &archive, RestoreOptions::default(), &mut |_| {})
            .context("backup")?;
    let seconds = started.elapsed().as_secs_f64();
    line(
        "backup",
        serde_json::json!({"records": records, "bytes": report.bytes, "seconds": seconds,
            "records_per_s": rate(records, seconds)}),
    );

    let started = Instant::now();
    engine::admin::restore_archive(
        &archive,
        &root.join("restored"),
        RestoreOptions::default(),
        &mut |_| {},
    )
    .context("restore")?;
    let seconds = started.elapsed().as_secs_f64();
    line(
        "restore_latest",
        serde_json::json!({"records": records, "seconds": seconds, "records_per_s": rate(records, seconds)}),
    );

    let middle = records / 2 + 1;
    let started = Instant::now();
    let pitr = engine::admin::restore_dir(
        &dir,
        &root.join("pitr"),
        RestoreOptions {
            at: engine::admin::At::Seq(middle),
            ..RestoreOptions::default()
        },
        &mut |_| {},
    )
    .context("point-in-time restore")?;
    let seconds = started.elapsed().as_secs_f64();
    line(
        "restore_pitr",
        serde_json::json!({"records": middle - 1, "replayed_commits": pitr.replayed,
            "seconds": seconds, "records_per_s": rate(middle - 1, seconds)}),
    );

    // Latency: the same load with and without a backup running.
    let config = EngineConfig {
        sync: SyncPolicy::Always,
        ..EngineConfig::default()
    };
    let (engine, _) = Engine::open(&dir, config).context("cannot reopen the bench data dir")?;
    let mut backup_seconds = 0.0;
    let (during, _) = latencies_while(&engine, args.submitters, "b", || {
        let started = Instant::now();
        engine::admin::write_backup(
            &dir,
            &root.join("during.tar"),
            RestoreOptions::default(),
            &mut |_| {},
        )
        .context("backup during writes")?;
        backup_seconds = started.elapsed().as_secs_f64();
        Ok(())
    })?;
    let (baseline, _) = latencies_while(&engine, args.submitters, "q", || {
        std::thread::sleep(Duration::from_secs_f64(backup_seconds.max(1.0)));
        Ok(())
    })?;
    engine.shutdown();
    let (p99_base, p99_during) = (percentile(&baseline, 990), percentile(&during, 990));
    line(
        "create_latency",
        serde_json::json!({
            "submitters": args.submitters,
            "backup_seconds": backup_seconds,
            "without_backup": {"creates": baseline.len(), "p50_ms": percentile(&baseline, 500),
                "p99_ms": p99_base, "max_ms": percentile(&baseline, 1000)},
            "during_backup": {"creates": during.len(), "p50_ms": percentile(&during, 500),
                "p99_ms": p99_during, "max_ms": percentile(&during, 1000)},
            "p99_ratio": (p99_during / p99_base.max(1e-9) * 100.0).round() / 100.0,
        }),
    );
    Ok(())
}
