//! `pb-tools restore`: builds a new data dir at a point in time, from a data dir (`--dir`) or a
//! backup archive (`--from`).
//!
//! 1. The source is only read (no lock), so this works while a server runs on it.
//! 2. The new dir appears only when complete; bad input (a time before the first commit, a
//!    position past the end, a damaged or unsafe archive, a non-empty target) changes nothing.

use super::phase_bar;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `restore`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The data dir to restore from (a server may be running on it).
    #[arg(long, conflicts_with = "from", required_unless_present = "from")]
    pub dir: Option<PathBuf>,
    /// The backup archive to restore from (made by `pb-tools backup` or the backups API).
    #[arg(long)]
    pub from: Option<PathBuf>,
    /// The new data dir (must not exist, or be empty).
    #[arg(long)]
    pub to: PathBuf,
    /// The restore point: a log position (seq) or an RFC 3339 time; default: the newest state
    /// (of an archive: the state it was made at).
    #[arg(long)]
    pub at: Option<String>,
    /// Copy only what is needed to go on from the point (a snapshot and an empty log that
    /// continues the numbering), not the history before it.
    #[arg(long)]
    pub no_history: bool,
}

/// Parses `--at`.
pub fn parse_at(at: Option<&str>) -> Result<engine::At> {
    match at {
        None => Ok(engine::At::Latest),
        Some(text) => text.parse::<engine::At>().map_err(anyhow::Error::new),
    }
}

/// Runs `restore`.
pub fn run(args: &Args) -> Result<()> {
    let at = parse_at(args.at.as_deref())?;
    let options = engine::RestoreOptions {
        at,
        history: !args.no_history,
        ..engine::RestoreOptions::default()
    };
    let started = Instant::now();
    let (bar, mut update) = phase_bar();
    let result = match (&args.dir, &args.from) {
        (Some(dir), None) => {
            super::log_dir(dir)?;
            engine::restore_dir(dir, &args.to, options, &mut update)
        }
        (None, Some(archive)) => {
            if !archive.is_file() {
                bail!("{} is not a file", archive.display());
            }
            engine::restore_archive(archive, &args.to, options, &mut update)
        }
        _ => bail!("give exactly one of --dir or --from"),
    };
    bar.finish_and_clear();
    let report = result.with_context(|| format!("cannot restore into {}", args.to.display()))?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "restored {} at seq {}{} (from snapshot {} + {} replayed commits; log seq {}..{}, {} \
         snapshots) in {seconds:.2}s",
        args.to.display(),
        report.seq,
        report
            .time_ms
            .map(|ms| format!(" ({})", super::rfc3339(ms)))
            .unwrap_or_default(),
        report.base_seq,
        report.replayed,
        report.log_first,
        report.seq,
        report.snapshots.len(),
    );
    println!("start it with: pocketlog serve --dir {}", args.to.display());
    Ok(())
}
