//! `pb-tools restore`: builds a new data dir at a point in time, from a data dir (`--dir`) or a
//! backup archive (`--from`).
//!
//! 1. The source is only read (no lock), so this works while a server runs on it.
//! 2. The new dir appears only when complete; bad input (a time before the first commit, a
//!    position past the end, a damaged or unsafe archive, a non-empty target) changes nothing.
//! 3. The new dir gets the marker [`ROTATE_SECRETS_MARKER`]: the first `pocketlog` start on it
//!    rotates every auth collection's token secrets (one commit after the restored state), so
//!    no token issued before the restore works again (`api::backups::finish_restore`).

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
    /// The backup archive to restore from (made by `pb-tools backup` or the backups API), or a
    /// PocketBase backup zip (imported as `pocketlog import-pocketbase` does).
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

/// The marker file asking the next server start to rotate the token secrets; the same name
/// as `api::backups::ROTATE_SECRETS_MARKER` (pb-tools uses only the engine, so it
/// is repeated here; a test keeps them equal).
pub const ROTATE_SECRETS_MARKER: &str = ".restored-rotate-token-secrets";

/// Writes [`ROTATE_SECRETS_MARKER`] into a restored data dir, durably.
pub fn mark_restored(dir: &std::path::Path) -> Result<()> {
    let path = dir.join(ROTATE_SECRETS_MARKER);
    let file =
        std::fs::File::create(&path).with_context(|| format!("cannot write {}", path.display()))?;
    std::io::Write::write_all(
        &mut &file,
        b"a restore happened: the next start rotates every auth collection's token secrets\n",
    )?;
    file.sync_all()?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Parses `--at`.
pub fn parse_at(at: Option<&str>) -> Result<engine::admin::At> {
    match at {
        None => Ok(engine::admin::At::Latest),
        Some(text) => text
            .parse::<engine::admin::At>()
            .map_err(anyhow::Error::new),
    }
}

/// Runs `restore`.
pub fn run(args: &Args) -> Result<()> {
    let at = parse_at(args.at.as_deref())?;
    let options = engine::admin::RestoreOptions {
        at,
        history: !args.no_history,
        ..engine::admin::RestoreOptions::default()
    };
    let started = Instant::now();
    let (bar, mut update) = phase_bar();
    let result = match (&args.dir, &args.from) {
        (Some(dir), None) => {
            super::log_dir(dir)?;
            engine::admin::restore_dir(dir, &args.to, options, &mut update)
        }
        (None, Some(archive)) => {
            if !archive.is_file() {
                bail!("{} is not a file", archive.display());
            }
            if super::import_pocketbase::is_pocketbase_backup(archive) {
                // A PocketBase backup zip: imported as `pocketlog import-pocketbase` does.
                bar.finish_and_clear();
                if args.at.is_some() || args.no_history {
                    bail!("--at and --no-history do not apply to a PocketBase backup");
                }
                super::import_pocketbase::run(archive, &args.to, api::ServerOptions::default())?;
                return Ok(());
            }
            engine::admin::restore_archive(archive, &args.to, options, &mut update)
        }
        _ => bail!("give exactly one of --dir or --from"),
    };
    bar.finish_and_clear();
    let report = result.with_context(|| format!("cannot restore into {}", args.to.display()))?;
    mark_restored(&args.to)?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "restored {} at seq {}{} (from snapshot {} + {} replayed commits; log seq {}..{}, {} \
         snapshots, {} stored files) in {seconds:.2}s",
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
        report.files,
    );
    println!(
        "its first start rotates every auth collection's token secrets: tokens issued before \
         the restore will not work"
    );
    println!("start it with: pocketlog serve --dir {}", args.to.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn marker_name_matches_the_server() {
        assert_eq!(
            super::ROTATE_SECRETS_MARKER,
            api::backups::ROTATE_SECRETS_MARKER
        );
    }
}
