//! `pocketlog migrate [up | down [n] | create NAME | collections | history-sync]`: the JS
//! migrations CLI, with the reference's messages, prompts and exit codes (measured on
//! PocketBase v0.40.6):
//! - no argument or `up`: applies the pending migrations (`Applied NAME` per file, or
//!   `No new migrations to apply.`);
//! - `down [n]` (default 1; a non-number is 0): lists the last n applied migrations on stderr
//!   and asks `(y/N)`; `Reverted NAME` per file, or `No migrations to revert.`;
//! - `create NAME`: asks, then writes a blank migration `<unix ts>_NAME.js`;
//! - `collections`: asks, then writes `<unix ts>_collections_snapshot.js` with every
//!   collection (but the system base collections, each server's own);
//! - `history-sync`: drops applied entries whose file is gone.
//!
//! A prompt answered with anything but `y`/`yes` (or no input at all) prints
//! `The command has been cancelled` and exits 0. Errors exit 1 with one line on stderr.
//!
//! Invariants:
//! 1. Work on the data dir is a [`Request`] run by [`execute`]: offline on an engine the CLI
//!    opened, or, when a server holds the data dir, by that server through its control socket
//!    (the binary decides), so the migrations always run through the normal write path.
//! 2. Nothing is written before the user confirmed (down, create, collections).

use anyhow::{bail, Context, Result};
use api::AppState;
use serde::{Deserialize, Serialize};
use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The reference's answer to a declined prompt.
pub const CANCELLED: &str = "The command has been cancelled";

/// One operation on the data dir (sent over the control socket when a server runs).
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// Apply the pending migrations of `dir`.
    Up { dir: PathBuf },
    /// Revert the last `count` applied migrations of `dir`.
    Down { dir: PathBuf, count: usize },
    /// The applied migrations (a JSON array).
    Applied,
    /// Drop applied entries without a file in `dir`.
    HistorySync { dir: PathBuf },
    /// The snapshot migration of the current collections.
    Snapshot,
}

/// Runs `request` on an open app state; the text to print (for `Applied`, a JSON array).
pub async fn execute(state: &Arc<AppState>, request: Request) -> Result<String> {
    let failed = |err: api::error::ApiError| anyhow::anyhow!(err.message);
    match request {
        Request::Up { dir } => {
            let applied = api::migrations::up(state, &dir).await.map_err(failed)?;
            if applied.is_empty() {
                return Ok("No new migrations to apply.".into());
            }
            Ok(lines("Applied", &applied))
        }
        Request::Down { dir, count } => {
            let reverted = api::migrations::down(state, &dir, count)
                .await
                .map_err(failed)?;
            if reverted.is_empty() {
                return Ok("No migrations to revert.".into());
            }
            Ok(lines("Reverted", &reverted))
        }
        Request::Applied => {
            let applied = api::migrations::applied(state).map_err(failed)?;
            Ok(serde_json::to_string(&applied)?)
        }
        Request::HistorySync { dir } => {
            api::migrations::history_sync(state, &dir)
                .await
                .map_err(failed)?;
            Ok("The _migrations table was synced with the available migrations.".into())
        }
        Request::Snapshot => {
            let schema = state.schema();
            // The system base collections (`_mfas`, `_otps`, ...) are each server's own
            // fixed definitions, not the app's schema (and the reference refuses pocketlog's,
            // whose indexes differ); everything else is in the snapshot.
            let collections: Vec<&api::model::Collection> = schema
                .collections
                .iter()
                .map(|c| c.as_ref())
                .filter(|c| !(c.system() && c.kind == api::model::CollectionKind::Base))
                .collect();
            Ok(api::migrations::generate::snapshot(&collections))
        }
    }
}

fn lines(verb: &str, names: &[String]) -> String {
    names
        .iter()
        .map(|name| format!("{verb} {name}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Asks `question (y/N)` on stderr; true for `y`/`yes`.
fn confirm(question: &str) -> bool {
    eprint!("{question} (y/N) ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// Go's `cast.ToInt` on the count argument: a non-number (or a negative one) is 0.
fn parse_count(text: &str) -> usize {
    text.trim().parse::<i64>().map_or(0, |n| n.max(0) as usize)
}

/// `path` made absolute and lexically cleaned (`pb_data/../pb_migrations` →
/// `pb_migrations`), as the reference prints it.
fn absolute(path: &Path) -> Result<PathBuf> {
    use std::path::Component;
    let full = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .context("the working directory")?
            .join(path)
    };
    let mut out = PathBuf::new();
    for component in full.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push(component);
                }
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

/// Writes a new migration `<ts>_<suffix>.js` into `dir` after confirmation.
fn create_file(dir: &Path, suffix: &str, text: &str) -> Result<()> {
    let dir = absolute(dir)?;
    let path = dir.join(api::migrations::auto::next_name(&dir, suffix));
    if !confirm(&format!(
        "Do you really want to create migration {:?}?",
        path.display().to_string()
    )) {
        println!("{CANCELLED}");
        return Ok(());
    }
    api::migrations::auto::write_synced(&dir, &path, text)
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("Successfully created file {:?}", path.display().to_string());
    Ok(())
}

/// Runs `migrate ARGS` for the migrations directory `dir`, with `exec` running the requests
/// that need the data dir.
pub fn run(args: &[String], dir: &Path, exec: impl Fn(Request) -> Result<String>) -> Result<()> {
    let command = args.first().map(String::as_str).unwrap_or("up");
    match command {
        "up" => println!(
            "{}",
            exec(Request::Up {
                dir: dir.to_path_buf()
            })?
        ),
        "down" => {
            let count = args.get(1).map_or(1, |n| parse_count(n));
            let applied: Vec<String> =
                serde_json::from_str(&exec(Request::Applied)?).context("the applied migrations")?;
            let last: Vec<&String> = applied.iter().rev().take(count).collect();
            eprintln!();
            for name in &last {
                eprintln!("{name}");
            }
            if !confirm(&format!(
                "Do you really want to revert the last {count} applied migration(s)?"
            )) {
                println!("{CANCELLED}");
                return Ok(());
            }
            println!(
                "{}",
                exec(Request::Down {
                    dir: dir.to_path_buf(),
                    count,
                })?
            );
        }
        "create" => {
            let Some(name) = args.get(1).filter(|n| !n.is_empty()) else {
                bail!("missing migration file name");
            };
            create_file(dir, name, &api::migrations::generate::blank())?;
        }
        "collections" => {
            let text = exec(Request::Snapshot)?;
            create_file(dir, "collections_snapshot", &text)?;
        }
        "history-sync" => println!(
            "{}",
            exec(Request::HistorySync {
                dir: dir.to_path_buf()
            })?
        ),
        other => bail!("unsupported command: {other:?}"),
    }
    Ok(())
}
