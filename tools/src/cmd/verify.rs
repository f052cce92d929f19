//! `pb-tools verify`: checks the log frame by frame and the projection against a fresh replay.
//!
//! Read-only and lock-free, so it is safe while a server runs (a server that writes meanwhile
//! can make the projection look ahead of the scanned log; run it again).
//! 1. Log problems are reported with the segment file and byte offset of the first bad frame.
//! 2. A torn tail or a projection merely behind the log is "needs recovery", not a problem.
//! 3. Every stored file the retained log references (`FilesChanged`) must exist in
//!    `storage/`; a missing one is a problem.

use super::{log_dir, replay_to_file, rfc3339, Verdict};
use anyhow::{Context, Result};
use engine::admin::Projection;
use std::path::PathBuf;
use std::sync::Arc;

/// Arguments of `verify`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The data dir (holds log/ and data.db).
    #[arg(long, default_value = "pb_data")]
    pub dir: PathBuf,
}

/// Runs `verify`.
pub fn run(args: &Args) -> Result<Verdict> {
    let log = log_dir(&args.dir)?;
    let (reader, report) = match engine::LogReader::open_dir(Arc::new(engine::FsStorage), &log) {
        Ok(found) => found,
        Err(engine::Error::Corrupt {
            segment,
            offset,
            reason,
        }) => {
            println!(
                "FAIL log corrupt: segment {} offset {offset}: {reason}",
                segment.display()
            );
            return Ok(Verdict::Problem);
        }
        Err(err) => return Err(err).context("cannot scan the log"),
    };
    let last = reader.last_seq();
    let first = reader.first_seq();
    let (first_time, last_time) = if last >= first {
        let first_commit = reader.read_from(first, 1).context("read first commit")?;
        let last_commit = reader.read_from(last, 1).context("read last commit")?;
        (
            first_commit.first().map(|c| rfc3339(c.timestamp_ms)),
            last_commit.first().map(|c| rfc3339(c.timestamp_ms)),
        )
    } else {
        (None, None)
    };
    println!(
        "log: {} segments, {} commits, {} bytes, seq {}..{}, time {} .. {}",
        report.segments,
        report.commits,
        report.bytes,
        if report.commits > 0 { first } else { 0 },
        last,
        first_time.as_deref().unwrap_or("-"),
        last_time.as_deref().unwrap_or("-"),
    );
    let mut verdict = Verdict::Sound;
    if let Some(torn) = &report.torn_tail {
        println!(
            "RECOVERY torn tail: segment {} offset {} ({} bytes); the next open cuts it",
            torn.segment.display(),
            torn.offset,
            torn.bytes
        );
        verdict = Verdict::NeedsRecovery;
    }
    if args.dir.join(engine::REDACT_JOURNAL).exists() {
        println!(
            "RECOVERY an interrupted redaction ({}); the next open finishes it",
            engine::REDACT_JOURNAL
        );
        verdict = Verdict::NeedsRecovery;
    }
    // The projection.
    let db_path = args.dir.join(engine::admin::DATA_DB);
    if !db_path.exists() {
        println!(
            "RECOVERY projection {} is missing; the next open rebuilds it",
            db_path.display()
        );
        return Ok(Verdict::NeedsRecovery);
    }
    let db = Projection::open_read_only(&db_path)
        .with_context(|| format!("cannot open {}", db_path.display()))?;
    let applied = db
        .last_applied()
        .with_context(|| format!("cannot read the last applied seq of {}", db_path.display()))?;
    if applied > last {
        println!(
            "FAIL projection is ahead of the log: applied seq {applied}, log ends at {last} \
             (an unsynced log tail was lost); the next open rebuilds it"
        );
        return Ok(Verdict::Problem);
    }
    let scratch = tempfile::tempdir().context("cannot create a temporary directory")?;
    let replay_path = scratch.path().join("replay.db");
    let bar = super::progress_bar(applied, "replaying");
    let (replayed_to, _) = replay_to_file(&reader, &replay_path, applied, None, |n| bar.inc(n))?;
    bar.finish_and_clear();
    let replayed = Projection::open(&replay_path).context("reopen the replay")?;
    let live_dump = db.dump().context("cannot dump the projection")?;
    let replay_dump = replayed.dump().context("cannot dump the replay")?;
    if replayed_to != applied || live_dump != replay_dump {
        let diff = live_dump
            .iter()
            .zip(&replay_dump)
            .position(|(a, b)| a != b)
            .unwrap_or(live_dump.len().min(replay_dump.len()));
        println!(
            "FAIL projection differs from a fresh replay of seq 1..={applied} at dump line {diff}: \
             projection {:?} vs replay {:?}",
            live_dump.get(diff),
            replay_dump.get(diff)
        );
        return Ok(Verdict::Problem);
    }
    if applied < last {
        println!(
            "RECOVERY projection is behind the log: applied {applied} of {last} (a crash before \
             catch-up); it equals a replay up to {applied}; the next open catches it up"
        );
        return Ok(Verdict::NeedsRecovery);
    }
    println!("projection: equals a fresh replay of seq 1..={applied}");
    if check_files(&reader, &args.dir)? {
        verdict = Verdict::Problem;
    }
    if verdict == Verdict::Sound {
        println!("OK");
    }
    Ok(verdict)
}

/// Checks that every stored file the log still references (added by a `FilesChanged` in
/// the retained log and not removed since) exists under `storage/`; prints each missing one.
/// Returns true when one is missing. Files added before the log start are checked through the
/// projection's stored-files table.
fn check_files(reader: &engine::LogReader, dir: &std::path::Path) -> Result<bool> {
    use std::collections::BTreeSet;
    let mut referenced: BTreeSet<(String, String, String)> = BTreeSet::new();
    let mut seq = reader.first_seq();
    let last = reader.last_seq();
    while seq <= last {
        let commits = reader
            .read_from(seq, 1000)
            .with_context(|| format!("cannot read the log from seq {seq}"))?;
        let Some(tail) = commits.last() else {
            break;
        };
        seq = tail.seq + 1;
        for commit in &commits {
            for change in &commit.changes {
                match change {
                    engine::Change::FilesChanged {
                        collection_id,
                        record_id,
                        added,
                        removed,
                    } => {
                        for name in removed {
                            referenced.remove(&(
                                collection_id.clone(),
                                record_id.clone(),
                                name.clone(),
                            ));
                        }
                        for name in added {
                            referenced.insert((
                                collection_id.clone(),
                                record_id.clone(),
                                name.clone(),
                            ));
                        }
                    }
                    engine::Change::CollectionDeleted { id, .. } => {
                        referenced.retain(|(collection, _, _)| collection != id);
                    }
                    _ => {}
                }
            }
        }
    }
    // Files added before the log start that records still reference: the projection's
    // stored-files table (absent in projections made before it existed).
    let projection = dir.join(engine::admin::DATA_DB);
    if projection.exists() {
        if let Some(current) = engine::admin::referenced_at(&projection)
            .context("cannot read the projection's stored-files table")?
        {
            referenced.extend(current);
        }
    }
    let storage = dir.join("storage");
    let mut missing = 0usize;
    for (collection, record, name) in &referenced {
        let path = storage.join(collection).join(record).join(name);
        if !path.is_file() {
            println!("FAIL referenced file missing: {}", path.display());
            missing += 1;
        }
    }
    println!(
        "files: {} referenced, {} missing",
        referenced.len(),
        missing
    );
    Ok(missing > 0)
}
