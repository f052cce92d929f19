//! `pb-tools redact`: erases a record's values from the whole data dir (the right to
//! erasure): appends a redaction commit, then rewrites every earlier log frame, every snapshot
//! and the projection without them (see FORMAT.md "Redaction" and `engine/src/redact.rs`).
//!
//! 1. Takes the data dir lock (a running server redacts through
//!    `POST /api/collections/{c}/records/{id}/redact`): the same engine code runs in-process.
//! 2. Crash-safe: an interrupted run is finished by the next open of the data dir (by this
//!    tool, the server, or any other command that opens it with the engine).
//! 3. Backup archives made before the redaction still hold the values: they are the
//!    operator's to delete.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;

/// Environment variable naming the step at which the process aborts (crash tests only).
pub const ABORT_AT_ENV: &str = "PB_TOOLS_REDACT_ABORT_AT";

/// Arguments of `redact`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The data dir (no server may be running on it).
    #[arg(long, default_value = "pb_data")]
    pub dir: PathBuf,
    /// The collection (name or id).
    #[arg(long)]
    pub collection: String,
    /// The record id.
    #[arg(long)]
    pub record: String,
    /// Comma-separated field names to erase (default: every field but id, created, updated,
    /// tokenKey and fields under a unique index without a WHERE).
    #[arg(long, value_delimiter = ',')]
    pub fields: Vec<String>,
}

/// Runs `redact`.
pub fn run(args: &Args) -> Result<()> {
    super::log_dir(&args.dir)?;
    let engine = match engine::Engine::open(&args.dir, engine::EngineConfig::default()) {
        Ok((engine, _)) => engine,
        Err(engine::Error::Locked(dir)) => bail!(
            "data dir {} is locked by a running server; stop it first, or redact through the \
             server (POST /api/collections/{{collection}}/records/{{id}}/redact)",
            dir.display()
        ),
        Err(err) => return Err(err).context("cannot open the data dir"),
    };
    let fields: Vec<String> = args
        .fields
        .iter()
        .map(|field| field.trim().to_string())
        .filter(|field| !field.is_empty())
        .collect();
    // Crash tests: `PB_TOOLS_REDACT_ABORT_AT=N` kills the process at the Nth step.
    let abort_at: Option<u32> = std::env::var(ABORT_AT_ENV)
        .ok()
        .and_then(|text| text.parse().ok());
    let mut steps = 0u32;
    let result = engine.redact_with_steps(
        engine::Actor::System,
        &args.collection,
        &args.record,
        &fields,
        &mut |step| {
            steps += 1;
            if abort_at == Some(steps) {
                eprintln!("aborting at step {steps}: {step:?}");
                std::process::abort();
            }
            Ok(())
        },
    );
    engine.shutdown();
    let report = result.context("redaction failed")?;
    println!(
        "redacted record {} of {} at seq {}: {} earlier commits rewritten in {} segments, {} \
         snapshots rewritten; backups made before now still hold the values",
        args.record,
        args.collection,
        report.seq,
        report.commits_rewritten,
        report.segments_rewritten,
        report.snapshots_rewritten
    );
    Ok(())
}
