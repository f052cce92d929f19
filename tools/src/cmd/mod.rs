//! The `pb-tools` subcommands, one module each, plus helpers they share.
//!
//! 1. Commands return `anyhow::Result`; every I/O carries a context naming the path.
//! 2. Commands never call `std::process::exit`; the binary maps results to exit codes.

pub mod backup;
pub mod bench;
pub mod bench_backup;
pub mod compact;
pub mod export;
pub mod import;
pub mod import_pocketbase;
pub mod inspect;
pub mod redact;
pub mod replay;
pub mod restore;
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
    let log = dir.join(engine::admin::LOG_DIR);
    if !log.is_dir() {
        bail!(
            "{} has no {}/ directory: is it a pocketlog data dir?",
            dir.display(),
            engine::admin::LOG_DIR
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

/// A progress bar that follows an engine operation's phases.
pub fn phase_bar() -> (indicatif::ProgressBar, impl FnMut(engine::admin::Progress)) {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>9} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
        )
        .expect("the progress template is valid"),
    );
    let handle = bar.clone();
    let update = move |progress: engine::admin::Progress| {
        if handle.message() != progress.phase {
            handle.set_message(progress.phase);
            handle.reset();
        }
        handle.set_length(progress.total);
        handle.set_position(progress.done);
    };
    (bar, update)
}

pub use crate::duration::parse_duration_ms;

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

/// Replays log commits `[1, last]` (stopping early at the last commit at or before `until_ms`)
/// into a fresh projection at `out`, calling `progress` per batch. Returns (last applied seq,
/// commits applied). A compacted log (first seq > 1) starts from the snapshot at or after its
/// start (`snapshots/` beside `log/`); an uncompacted one is always replayed from seq 1, so
/// `verify` never trusts a snapshot it does not need.
pub fn replay_to_file(
    reader: &engine::LogReader,
    out: &Path,
    last: engine::Seq,
    until_ms: Option<i64>,
    progress: impl FnMut(u64),
) -> Result<(engine::Seq, u64)> {
    let target = match until_ms {
        Some(time_ms) => {
            match engine::admin::resolve_target(reader, engine::admin::At::TimeMs(time_ms)) {
                Ok(seq) => seq.min(last),
                Err(engine::Error::InvalidTarget(_)) if reader.first_seq() == 1 => 0,
                Err(err) => return Err(err).context("cannot resolve the time"),
            }
        }
        None => last,
    };
    let snapshots = match reader.log_dir() {
        Some(log) if reader.first_seq() > 1 => engine::admin::snapshots_dir(
            log.parent()
                .context("the log directory has no parent data dir")?,
        ),
        _ => PathBuf::from("/nonexistent-no-snapshots-needed"),
    };
    let report = engine::admin::build_projection_at(reader, &snapshots, target, out, progress)
        .with_context(|| format!("cannot build the projection up to seq {target}"))?;
    Ok((report.seq, report.replayed))
}
