//! `pb-tools inspect`: prints commits as JSON lines.
//!
//! One line per commit: `{"seq", "time" (RFC 3339), "timestamp_ms", "actor", "changes"}`, the
//! actor and changes in the engine's serde form. Read-only and lock-free.

use super::{log_dir, rfc3339};
use anyhow::{Context, Result};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// Commits read from the log per batch.
const INSPECT_BATCH: usize = 1024;

/// Arguments of `inspect`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The data dir (holds log/).
    #[arg(long, default_value = "pb_data")]
    pub dir: PathBuf,
    /// First seq to print.
    #[arg(long, default_value_t = 1)]
    pub from_seq: u64,
    /// Print at most this many commits.
    #[arg(long)]
    pub limit: Option<u64>,
}

/// Runs `inspect`.
pub fn run(args: &Args) -> Result<()> {
    let log = log_dir(&args.dir)?;
    let (reader, _) = engine::LogReader::open_dir(Arc::new(engine::FsStorage), &log)
        .context("cannot read the log (run pb-tools verify for details)")?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut next = args.from_seq.max(reader.first_seq());
    let mut left = args.limit.unwrap_or(u64::MAX);
    while left > 0 && next <= reader.last_seq() {
        let batch = reader
            .read_from(next, (left.min(INSPECT_BATCH as u64)) as usize)
            .with_context(|| format!("cannot read the log at seq {next}"))?;
        let Some(last) = batch.last() else { break };
        next = last.seq + 1;
        for commit in &batch {
            let line = serde_json::json!({
                "seq": commit.seq,
                "time": rfc3339(commit.timestamp_ms),
                "timestamp_ms": commit.timestamp_ms,
                "actor": commit.actor,
                "changes": commit.changes,
            });
            match writeln!(out, "{line}") {
                Ok(()) => {}
                // A closed pipe (`| head`) is a normal way to stop reading.
                Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                Err(err) => return Err(err).context("cannot write to stdout"),
            }
        }
        left -= batch.len() as u64;
    }
    match out.flush() {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(err).context("cannot write to stdout")
        }
        _ => Ok(()),
    }
}
