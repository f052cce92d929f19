//! The `pb-tools` subcommands, one module each, plus helpers they share.
//!
//! 1. Commands return `anyhow::Result`; every I/O carries a context naming the path.
//! 2. Commands never call `std::process::exit`; the binary maps results to exit codes.

pub mod bench;
pub mod inspect;
pub mod replay;
pub mod verify;

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// What `verify` concluded (other commands are `Sound` or an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Everything holds.
    Sound,
    /// Corruption or a projection that differs from the log.
    Problem,
    /// Sound, but the next open has repair work to do (torn tail, projection behind).
    NeedsRecovery,
}

/// The log directory of a data dir, after checking that both exist.
pub fn log_dir(dir: &Path) -> Result<PathBuf> {
    let meta = std::fs::metadata(dir)
        .with_context(|| format!("cannot read data dir {}", dir.display()))?;
    if !meta.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    let log = dir.join(engine::LOG_DIR);
    if !log.is_dir() {
        bail!(
            "{} has no {}/ directory: is it a pocketlog data dir?",
            dir.display(),
            engine::LOG_DIR
        );
    }
    Ok(log)
}

/// RFC 3339 text (UTC, milliseconds) of a commit timestamp.
pub fn rfc3339(timestamp_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(timestamp_ms)
        .map(|time| time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| format!("invalid-timestamp({timestamp_ms})"))
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn progress_bar(total: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{what} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}} ({{per_sec}}, eta {{eta}})"
        ))
        .expect("the progress template is valid"),
    );
    bar
}

/// Replays log commits `[1, last]` (stopping early at the first commit newer than `until_ms`)
/// into a fresh projection at `out`, calling `progress` per batch. Returns (last applied seq,
/// commits applied).
pub fn replay_to_file(
    reader: &engine::LogReader,
    out: &Path,
    last: engine::Seq,
    until_ms: Option<i64>,
    mut progress: impl FnMut(u64),
) -> Result<(engine::Seq, u64)> {
    let conn = engine::open_projection(out)
        .with_context(|| format!("cannot create projection {}", out.display()))?;
    let mut catalog = engine::Catalog::default();
    let mut next = 1;
    let mut applied = 0u64;
    let mut last_applied = 0;
    while next <= last {
        let limit = ((last - next + 1) as usize).min(engine::REPLAY_BATCH_COMMITS);
        let mut commits = reader
            .read_from(next, limit)
            .with_context(|| format!("cannot read the log at seq {next}"))?;
        if commits.is_empty() {
            break;
        }
        let mut stop = false;
        if let Some(until) = until_ms {
            if let Some(cut) = commits.iter().position(|c| c.timestamp_ms > until) {
                commits.truncate(cut);
                stop = true;
            }
        }
        if let Some(end) = commits.last() {
            last_applied = engine::apply_commits(&conn, &mut catalog, &commits)
                .with_context(|| format!("cannot apply commits up to seq {}", end.seq))?;
            applied += commits.len() as u64;
            progress(commits.len() as u64);
            next = last_applied + 1;
        }
        if stop || commits.is_empty() {
            break;
        }
    }
    Ok((last_applied, applied))
}
