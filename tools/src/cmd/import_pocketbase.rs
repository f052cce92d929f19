//! `pocketlog import-pocketbase --from OLD_pb_data [--dir pb_data]`: the CLI over
//! `api::import` (which holds what is imported and its invariants), with a progress bar,
//! the printed report, and the hint `serve` gives when it meets a PocketBase data dir.
//!
//! Invariants: the target appears only when the import is complete: it is built in
//! `.<name>.importing` beside it and renamed at the end (a failed import leaves no
//! half-imported target; the next run refuses until that staging dir is removed, so it never
//! deletes an import that is still running). A non-empty target is refused, unchanged.

use anyhow::{bail, Context, Result};
pub use api::import::{is_pocketbase_backup, is_pocketbase_dir, Report};
use std::path::Path;
use std::time::Instant;

/// The error `serve` gives for a PocketBase data dir, or `None` for anything else.
#[allow(dead_code)] // `pocketlog serve` uses it; `pb-tools` (which shares this file) does not
pub fn serve_hint(dir: &Path) -> Option<String> {
    is_pocketbase_dir(dir).then(|| {
        format!(
            "{} is a PocketBase data dir; pocketlog cannot serve it directly. Import it into a \
             new pocketlog data dir with: pocketlog import-pocketbase --from {} --dir <new dir>",
            dir.display(),
            dir.display()
        )
    })
}

/// Where the import is built before it is renamed to `to`: `.<name>.importing` beside it.
fn staging_dir(to: &Path) -> Result<std::path::PathBuf> {
    let name = to
        .file_name()
        .with_context(|| format!("{} has no directory name", to.display()))?;
    Ok(to.with_file_name(format!(".{}.importing", name.to_string_lossy())))
}

/// Runs the import; prints progress and the report.
pub fn run(from: &Path, to: &Path, options: api::ServerOptions) -> Result<Report> {
    let started = Instant::now();
    if from.is_file() && !is_pocketbase_backup(from) {
        bail!(
            "{} is neither a PocketBase data dir nor a PocketBase backup zip",
            from.display()
        );
    }
    api::import::check_target(from, to)?;
    let staging = staging_dir(to)?;
    if staging.exists() {
        // An import that failed or still runs: never removed behind its back.
        bail!(
            "{} holds an unfinished (or running) import into {}: remove it and run again",
            staging.display(),
            to.display()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "importing records [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style);
    }
    let result = api::import::import(
        api::import::Import {
            from,
            target: &staging,
            options,
            scratch: None,
        },
        runtime.handle(),
        &mut |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    );
    bar.finish_and_clear();
    let report = result.with_context(|| {
        format!(
            "the import failed; {} was not created (the unfinished import, if any, is in {})",
            to.display(),
            staging.display()
        )
    })?;
    std::fs::rename(&staging, to).with_context(|| {
        format!(
            "moving the finished import {} to {}",
            staging.display(),
            to.display()
        )
    })?;
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    print_report(&report, started.elapsed(), to);
    Ok(report)
}

fn print_report(report: &Report, elapsed: std::time::Duration, to: &Path) {
    let records: u64 = report.records.values().sum();
    let secs = elapsed.as_secs_f64().max(1e-9);
    println!(
        "Imported {} collections and {records} records into {} in {:.1}s ({:.0} records/s, {:.2} MB/s)",
        report.collections_imported,
        to.display(),
        secs,
        records as f64 / secs,
        report.bytes as f64 / 1e6 / secs
    );
    for (name, count) in &report.records {
        println!("├─ {name}: {count} records");
    }
    println!(
        "├─ settings: {}",
        if report.settings {
            "imported"
        } else {
            "skipped (pocketlog's defaults)"
        }
    );
    for (table, count) in &report.skipped {
        println!("├─ skipped table {table}: {count} rows (no such collection in pocketlog)");
    }
    println!(
        "├─ files: {} copied ({:.2} MB)",
        report.files_imported,
        report.file_bytes as f64 / 1e6
    );
    if report.files_in_s3 {
        println!(
            "├─ warning: PocketBase stores the files in S3 (s3.enabled): they were NOT imported; \
             pocketlog serves files from its local storage only"
        );
    }
    if report.files_missing > 0 {
        println!(
            "├─ warning: {} files named by records are missing from storage/ (not imported)",
            report.files_missing
        );
    }
    if report.files_skipped > 0 {
        println!(
            "├─ {} files in storage/ that no record names were not copied",
            report.files_skipped
        );
    }
    println!(
        "└─ Every token PocketBase issued is now invalid (new token secrets and keys): users and \
         superusers sign in again with their old passwords."
    );
}
