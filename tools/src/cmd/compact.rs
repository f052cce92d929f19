//! `pb-tools compact`: takes a snapshot and removes log history older than the retention
//! window; the cut is the window's first commit, even inside the segment being written (the
//! engine rolls it and splits the segment holding the cut, see FORMAT.md "Compaction").
//!
//! 1. Takes the data dir lock: a running server compacts itself (`pocketlog serve
//!    --compact-retain ...`), so the tool never removes segments under a live engine.
//! 2. Crash-safe at every step (see `engine/src/compact.rs` and FORMAT.md): an interrupted run
//!    leaves a valid dir, and running it again finishes the job.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;

/// Arguments of `compact`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The data dir (no server may be running on it).
    #[arg(long, default_value = "pb_data")]
    pub dir: PathBuf,
    /// Keep the history of this long (e.g. 30d, 12h, 90m).
    #[arg(
        long,
        conflicts_with = "retain_commits",
        required_unless_present = "retain_commits"
    )]
    pub retain: Option<String>,
    /// Keep at least the last N commits.
    #[arg(long)]
    pub retain_commits: Option<u64>,
}

/// Runs `compact`.
pub fn run(args: &Args) -> Result<()> {
    let retention = match (&args.retain, args.retain_commits) {
        (Some(text), None) => engine::Retention::Duration {
            window_ms: super::parse_duration_ms(text)?,
            now_ms: chrono::Utc::now().timestamp_millis(),
        },
        (None, Some(count)) => engine::Retention::Commits(count),
        _ => bail!("give exactly one of --retain or --retain-commits"),
    };
    super::log_dir(&args.dir)?;
    // Opening the engine takes the data dir lock and brings the projection level (torn tail
    // cut, catch-up) as a server start would; the compaction then runs in-process.
    let engine = match engine::Engine::open(&args.dir, engine::EngineConfig::default()) {
        Ok((engine, _)) => engine,
        Err(engine::Error::Locked(dir)) => bail!(
            "data dir {} is locked by a running server; stop it first, or let the server \
             compact itself (pocketlog serve --compact-retain DURATION)",
            dir.display()
        ),
        Err(err) => return Err(err).context("cannot open the data dir"),
    };
    let result = engine
        .snapshot()
        .context("cannot take a snapshot")
        .and_then(|_| {
            engine
                .compact(retention)
                .context("compaction failed (the data dir is still valid; run it again)")
        })
        .and_then(|report| {
            // The data dir is locked and nothing writes: no upload can be in flight, so
            // unneeded stored files go without a grace period.
            let sweep = engine::admin::sweep_unneeded(&args.dir, engine.log(), 0)
                .context("sweeping unreferenced stored files failed")?;
            Ok((report, sweep))
        });
    engine.shutdown();
    let (report, sweep) = result?;
    println!(
        "stored files: {} kept, {} removed ({} bytes) that no retained restore point needs",
        sweep.kept,
        report.files_removed + sweep.removed,
        report.file_bytes_removed + sweep.bytes_removed
    );
    if report.segments_removed == 0 {
        println!(
            "nothing to remove: the log already starts at seq {} (last seq {})",
            report.first_before, report.last_seq
        );
    } else {
        println!(
            "removed {} segments ({} bytes, {} bytes of the window copied into a new segment): \
             the log now starts at seq {} (was {}), snapshot at seq {}, last seq {}; {} old \
             snapshots removed",
            report.segments_removed,
            report.bytes_removed,
            report.bytes_copied,
            report.first_after,
            report.first_before,
            report.snapshot_seq,
            report.last_seq,
            report.snapshots_removed
        );
    }
    Ok(())
}
