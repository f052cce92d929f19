//! Automatic compaction inside `pocketlog serve` (`--compact-retain` / `--compact-retain-commits`).
//!
//! 1. One background thread wakes every `interval` and runs [`engine::Engine::compact`] with the
//!    retention computed at that moment (a time window is measured from "now" at each run).
//! 2. The engine does the crash-safe steps itself (snapshot at the cut, the active segment
//!    rolled and the segment holding the cut split when needed, then whole segments removed
//!    oldest first); readers of removed positions get an explicit "unavailable" error
//!    (realtime clients a reset event), never silent loss.
//! 3. A failed run is logged and retried at the next tick; it never stops the server.
//! 4. [`Compactor::stop`] wakes the thread and waits for it (a run in progress finishes first),
//!    so the engine is never shut down under a compaction.

use anyhow::{Context, Result};
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender};
use std::thread::JoinHandle;
use std::time::Duration;

/// How much history the server keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retain {
    /// Commits younger than this many milliseconds.
    Window(i64),
    /// At least the last N commits.
    Commits(u64),
}

impl Retain {
    fn retention(self) -> engine::Retention {
        match self {
            Retain::Window(window_ms) => engine::Retention::Duration {
                window_ms,
                now_ms: chrono::Utc::now().timestamp_millis(),
            },
            Retain::Commits(count) => engine::Retention::Commits(count),
        }
    }
}

/// The running compaction thread.
pub struct Compactor {
    stop: SyncSender<()>,
    handle: JoinHandle<()>,
}

impl Compactor {
    /// Starts compacting `engine` to `retain` every `interval`; the first run is one interval
    /// after the start.
    pub fn start(engine: engine::Engine, retain: Retain, interval: Duration) -> Result<Compactor> {
        let (stop, stopped) = sync_channel::<()>(1);
        let handle = std::thread::Builder::new()
            .name("pocketlog-compact".into())
            .spawn(move || loop {
                match stopped.recv_timeout(interval) {
                    Err(RecvTimeoutError::Timeout) => run_once(&engine, retain),
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                }
            })
            .context("cannot start the compaction thread")?;
        tracing::info!(
            ?retain,
            interval_s = interval.as_secs_f64(),
            "automatic compaction on"
        );
        Ok(Compactor { stop, handle })
    }

    /// Stops the thread, after the run in progress if any.
    pub fn stop(self) {
        let _ = self.stop.try_send(());
        if self.handle.join().is_err() {
            tracing::warn!("the compaction thread panicked");
        }
    }
}

/// One compaction run, logged.
fn run_once(engine: &engine::Engine, retain: Retain) {
    let started = std::time::Instant::now();
    match engine.compact(retain.retention()) {
        Ok(report) if report.segments_removed > 0 => tracing::info!(
            segments_removed = report.segments_removed,
            bytes_removed = report.bytes_removed,
            bytes_copied = report.bytes_copied,
            first_seq_before = report.first_before,
            first_seq_after = report.first_after,
            last_seq = report.last_seq,
            snapshot_seq = report.snapshot_seq,
            snapshots_removed = report.snapshots_removed,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "compaction removed old log segments"
        ),
        Ok(report) => tracing::debug!(
            first_seq = report.first_before,
            last_seq = report.last_seq,
            "compaction: nothing to remove"
        ),
        Err(err) => {
            tracing::warn!(error = %err, "compaction failed; retrying at the next interval")
        }
    }
}
