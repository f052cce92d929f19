//! `pb-tools`: tools for a pocketlog data dir (verify, replay, inspect, restore, backup,
//! compact, bench-engine, bench-backup).
//!
//! This file only parses arguments, dispatches to `cmd/*.rs` and maps the result to an exit
//! code; it never does the work itself.
//! 1. Exit codes are set here and only here, and documented in `--help`.
//! 2. Every failure is one plain error line on stderr (plus its causes), never a panic.

#[path = "../cmd/mod.rs"]
mod cmd;
#[path = "../duration.rs"]
mod duration;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

const EXIT_CODES: &str = "\
Exit codes:
  0  success (verify: the log and the projection are sound)
  1  verify found a problem: corruption (the segment and byte offset are printed) or a
     projection that differs from a fresh replay of the log; import: some lines failed
  2  bad command-line arguments
  3  the command could not run: missing or unreadable data dir, locked by a running
     server, I/O error
  4  verify: sound but not yet recovered (a torn tail or a projection behind the log);
     the next server start repairs it";

/// Offline tools for a pocketlog data dir.
#[derive(Parser, Debug)]
#[command(name = "pb-tools", version, about, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check every frame's checksum and seq continuity, and that data.db equals a fresh replay
    /// of the log. Read-only; safe while a server runs.
    #[command(after_help = EXIT_CODES)]
    Verify(cmd::verify::Args),
    /// Rebuild the projection from the log (into DIR/data.db, or into --out FILE).
    #[command(after_help = EXIT_CODES)]
    Replay(cmd::replay::Args),
    /// Print commits as JSON lines (seq, time, actor, changes).
    #[command(after_help = EXIT_CODES)]
    Inspect(cmd::inspect::Args),
    /// Measure engine throughput (commits/s with fsync at 1 and 64 submitters, replay speed)
    /// and print one JSON line per scenario.
    #[command(after_help = EXIT_CODES)]
    BenchEngine(cmd::bench::Args),
    /// Build a new data dir at a point in time (a seq or an RFC 3339 time), from a data dir
    /// (--dir; safe while a server runs) or a backup archive (--from).
    #[command(after_help = EXIT_CODES)]
    Restore(cmd::restore::Args),
    /// Write a self-contained backup archive (tar with a manifest, the log range and
    /// snapshots) of a data dir at a point in time; never blocks a running server's writes.
    #[command(after_help = EXIT_CODES)]
    Backup(cmd::backup::Args),
    /// Take a snapshot and remove log history older than the retention window (whole
    /// segments). Needs the data dir lock: stop the server first, or let it compact itself
    /// (`pocketlog serve --compact-retain DURATION`).
    #[command(after_help = EXIT_CODES)]
    Compact(cmd::compact::Args),
    /// Erase a record's values (some fields or all) from the whole data dir: a redaction
    /// commit, then every earlier log frame, snapshot and the projection rewritten without
    /// them. Needs the data dir lock (a running server redacts through its API).
    #[command(after_help = EXIT_CODES)]
    Redact(cmd::redact::Args),
    /// Measure backup and point-in-time restore rates and create latency during a backup,
    /// one JSON line per scenario.
    #[command(after_help = EXIT_CODES)]
    BenchBackup(cmd::bench_backup::Args),
    /// Stream committed record changes from a log position as NDJSON or CSV (lock-free;
    /// --follow tails a running server's log).
    #[command(after_help = EXIT_CODES)]
    Export(cmd::export::Args),
    /// Bulk-load records from NDJSON or CSV into a collection through validation and the log,
    /// in batched commits (needs the data dir lock: stop the server first).
    #[command(after_help = EXIT_CODES)]
    Import(cmd::import::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let result = match cli.command {
        Command::Verify(args) => cmd::verify::run(&args),
        Command::Replay(args) => cmd::replay::run(&args).map(|()| cmd::Verdict::Sound),
        Command::Inspect(args) => cmd::inspect::run(&args).map(|()| cmd::Verdict::Sound),
        Command::BenchEngine(args) => cmd::bench::run(&args).map(|()| cmd::Verdict::Sound),
        Command::Restore(args) => cmd::restore::run(&args).map(|()| cmd::Verdict::Sound),
        Command::Backup(args) => cmd::backup::run(&args).map(|()| cmd::Verdict::Sound),
        Command::Compact(args) => cmd::compact::run(&args).map(|()| cmd::Verdict::Sound),
        Command::Redact(args) => cmd::redact::run(&args).map(|()| cmd::Verdict::Sound),
        Command::BenchBackup(args) => cmd::bench_backup::run(&args).map(|()| cmd::Verdict::Sound),
        Command::Export(args) => cmd::export::run(&args).map(|_| cmd::Verdict::Sound),
        Command::Import(args) => cmd::import::run(&args).map(|summary| {
            eprintln!(
                "imported {} records in {} commits, {} lines failed",
                summary.imported, summary.commits, summary.failed
            );
            if summary.failed > 0 {
                cmd::Verdict::Problem
            } else {
                cmd::Verdict::Sound
            }
        }),
    };
    match result {
        Ok(cmd::Verdict::Sound) => ExitCode::SUCCESS,
        Ok(cmd::Verdict::Problem) => ExitCode::from(1),
        Ok(cmd::Verdict::NeedsRecovery) => ExitCode::from(4),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(3)
        }
    }
}
