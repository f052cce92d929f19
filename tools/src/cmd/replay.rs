//! `pb-tools replay`: rebuilds the projection from the log, optionally only up to a seq or a
//! time.
//!
//! 1. Writing into the data dir's own `data.db` takes the data dir lock, so it never races a
//!    running server; the new projection is built beside it and moved into place at the end.
//! 2. `--out FILE` writes a separate database and needs no lock; it refuses to overwrite.
//! 3. The previous `data.db` (and its WAL files) is renamed to `data.db.before-replay-<ms>`,
//!    never deleted: it may be the only evidence of what went wrong.

use super::{log_dir, progress_bar, replay_to_file};
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Arguments of `replay`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The data dir (holds log/ and data.db).
    #[arg(long, default_value = "pb_data")]
    pub dir: PathBuf,
    /// Stop after this seq.
    #[arg(long, conflicts_with = "to_time")]
    pub to_seq: Option<u64>,
    /// Stop after the last commit at or before this time (RFC 3339, e.g. 2025-01-31T12:00:00Z).
    #[arg(long)]
    pub to_time: Option<String>,
    /// Write the projection to this new file instead of DIR/data.db.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Runs `replay`.
pub fn run(args: &Args) -> Result<()> {
    let until_ms = match &args.to_time {
        Some(text) => Some(
            chrono::DateTime::parse_from_rfc3339(text)
                .with_context(|| format!("--to-time {text:?} is not an RFC 3339 time"))?
                .timestamp_millis(),
        ),
        None => None,
    };
    let log = log_dir(&args.dir)?;
    let (reader, _) = engine::LogReader::open_dir(Arc::new(engine::FsStorage), &log)
        .context("cannot read the log (run pb-tools verify for details)")?;
    let last = match args.to_seq {
        Some(seq) if seq > reader.last_seq() => bail!(
            "--to-seq {seq} is past the end of the log (last seq {})",
            reader.last_seq()
        ),
        Some(seq) => seq,
        None => reader.last_seq(),
    };
    let started = Instant::now();
    let bar = progress_bar(last, "replaying");
    let (target, lock) = match &args.out {
        Some(out) => {
            if out.exists() {
                bail!("{} exists already; choose a new file", out.display());
            }
            (out.clone(), None)
        }
        None => (
            args.dir.join(engine::admin::DATA_DB),
            Some(lock_dir(&args.dir)?),
        ),
    };
    let building = match &args.out {
        Some(out) => out.clone(),
        None => args
            .dir
            .join(format!("{}.replay-tmp", engine::admin::DATA_DB)),
    };
    remove_db_files(&building)?;
    let (last_applied, applied) =
        replay_to_file(&reader, &building, last, until_ms, |n| bar.inc(n))?;
    bar.finish_and_clear();
    if args.out.is_none() {
        // The old projection (possibly damaged) is kept beside, never deleted.
        let kept = keep_aside(&target)?;
        if let Some(kept) = &kept {
            println!(
                "kept the previous {} as {}",
                target.display(),
                kept.display()
            );
        }
        for suffix in ["", "-wal", "-shm"] {
            let from = PathBuf::from(format!("{}{suffix}", building.display()));
            let to = PathBuf::from(format!("{}{suffix}", target.display()));
            if from.exists() {
                std::fs::rename(&from, &to).with_context(|| {
                    format!("cannot move {} to {}", from.display(), to.display())
                })?;
            }
        }
    }
    drop(lock);
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "replayed {applied} commits (up to seq {last_applied}) into {} in {seconds:.2}s ({:.0} commits/s)",
        target.display(),
        applied as f64 / seconds.max(1e-9)
    );
    if args.out.is_none() && last_applied < reader.last_seq() {
        println!(
            "note: the log goes on to seq {}; the next server start catches data.db up to it \
             (use --out FILE for a point-in-time copy)",
            reader.last_seq()
        );
    }
    Ok(())
}

fn lock_dir(dir: &std::path::Path) -> Result<std::fs::File> {
    use fs2::FileExt;
    let path = dir.join(engine::admin::LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    if file.try_lock_exclusive().is_err() {
        bail!(
            "data dir {} is locked by a running server; stop it first, or replay into a \
             separate file with --out FILE",
            dir.display()
        );
    }
    Ok(file)
}

/// Renames `path` and its WAL files to `<path>.before-replay-<ms>[-wal|-shm]`; `None` when
/// there was no file.
fn keep_aside(path: &std::path::Path) -> Result<Option<PathBuf>> {
    if !path.exists() {
        remove_db_files(path)?;
        return Ok(None);
    }
    let aside = PathBuf::from(format!(
        "{}.before-replay-{}",
        path.display(),
        chrono::Utc::now().timestamp_millis()
    ));
    for suffix in ["", "-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{suffix}", path.display()));
        let to = PathBuf::from(format!("{}{suffix}", aside.display()));
        match std::fs::rename(&from, &to) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(err).with_context(|| format!("cannot move {} aside", from.display()))
            }
        }
    }
    Ok(Some(aside))
}

fn remove_db_files(path: &std::path::Path) -> Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(err).with_context(|| format!("cannot remove {}", file.display()))
            }
        }
    }
    Ok(())
}
