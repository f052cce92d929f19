//! `pb-tools backup`: writes a self-contained archive (zip: manifest, log range, snapshots and
//! the stored files its restore points need) of a data dir at a point in time.
//!
//! 1. The data dir is only read (no lock, a read transaction for the projection copy), so
//!    backups never stop a running server's writes.
//! 2. The archive appears only when complete (written as `.tmp`, fsynced, renamed).

use super::phase_bar;
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `backup`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The data dir (a server may be running on it).
    #[arg(long, default_value = "pb_data")]
    pub dir: PathBuf,
    /// The archive to write (must not exist).
    #[arg(long)]
    pub out: PathBuf,
    /// The point to back up: a log position (seq) or an RFC 3339 time; default: now.
    #[arg(long)]
    pub at: Option<String>,
    /// Leave out the history before the point (the archive then restores only to the point).
    #[arg(long)]
    pub no_history: bool,
}

/// Runs `backup`.
pub fn run(args: &Args) -> Result<()> {
    super::log_dir(&args.dir)?;
    let at = super::restore::parse_at(args.at.as_deref())?;
    let started = Instant::now();
    let (bar, mut update) = phase_bar();
    let result = engine::admin::write_backup(
        &args.dir,
        &args.out,
        engine::admin::RestoreOptions {
            at,
            history: !args.no_history,
            ..engine::admin::RestoreOptions::default()
        },
        &mut update,
    );
    bar.finish_and_clear();
    let report = result.with_context(|| format!("cannot write {}", args.out.display()))?;
    let manifest = &report.manifest;
    println!(
        "wrote {} ({} bytes): state at seq {}{}, log seq {}..{}, snapshots {:?}, {} stored files, \
         in {:.2}s",
        args.out.display(),
        report.bytes,
        manifest.seq_last,
        manifest
            .time_last_ms
            .map(|ms| format!(" ({})", super::rfc3339(ms)))
            .unwrap_or_default(),
        manifest.seq_first,
        manifest.seq_last,
        manifest.snapshots,
        manifest
            .files
            .iter()
            .filter(|file| file.path.starts_with("storage/"))
            .count(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
