//! The single writer thread: group commit.
//!
//! Loop (see `docs/design.md` "The write path"):
//! 1. Block for one job, then take whatever else is queued (up to `group_max`). When the
//!    previous group had more jobs than are queued now, wait up to [`GATHER_WAIT`] for that
//!    many (the callers just answered are about to submit again): fewer, fuller groups.
//! 2. `BEGIN`; run each job's command against a [`Tx`]; an error or panic fails only that job
//!    (the group's transaction is rolled back and the other jobs' changes re-applied). So does
//!    a commit larger than the frame limit ([`Error::CommitTooLarge`]).
//! 3. Append the group's commits to the log, fsync once (policy `always`).
//! 4. Write `_meta.last_seq` and `COMMIT` SQLite.
//! 5. Publish the commits to subscribers, then answer every job.
//!
//! Invariants ("error ⇒ not committed; committed ⇒ success", FORMAT.md "Disk full"):
//! - A job is answered with an error only if its commit is not in the log. If step 3 fails
//!   the SQLite transaction is rolled back and the group's jobs get the error. The engine is
//!   poisoned only when the log's state is unknown (an I/O error other than "disk full", or
//!   partial bytes that could not be cut back); a full disk poisons nothing.
//! - Once step 3 succeeded the commits are committed: their jobs are answered with success
//!   even if step 4 fails. The projection is then *behind* the log: the writer re-applies the
//!   missing commits from the log (retrying every [`CATCH_UP_RETRY`]) before it runs any new
//!   job, and refuses new jobs (not committed) while it cannot. Reads see the last projected
//!   state meanwhile.
//! - Nothing is published that is not durable and applied to the projection, and commits are
//!   published in seq order without gaps.

use crate::commit::{Actor, Change, CollectionDef, Commit, Seq};
use crate::error::{Error, Result};
use crate::log::{Log, LogReader};
use crate::projection::{self, Catalog};
use crate::storage::Storage;
use crate::subscribe::Hub;
use crate::value::{Rows, Value};
use rusqlite::Connection;
use std::any::Any;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};

/// The staged state a command runs against, on the writer thread.
pub struct Tx<'a> {
    conn: &'a Connection,
    catalog: &'a mut Catalog,
    changes: Vec<Change>,
    timestamp_ms: i64,
    actor: &'a Actor,
    catalog_touched: bool,
    stage_attempted: bool,
    /// Changes whose payload bytes are summed in `sized_bytes` (see [`Tx::staged_bytes`]).
    sized: usize,
    sized_bytes: u64,
    /// Set when SQLite reported the projection damaged to this command (the writer rebuilds
    /// it after the group).
    damaged: std::cell::RefCell<Option<String>>,
}

impl<'a> Tx<'a> {
    /// Queries the staged state (earlier commands of the group included). Only read-only
    /// statements run: anything that could write answers an [`Error::Sqlite`] without running
    /// (writes go through [`Tx::stage`], so that the log records them).
    pub fn query(&self, sql: &str, params: &[Value]) -> Result<Rows> {
        projection::query_read_only(self.conn, sql, params).map_err(|err| self.note_damage(err))
    }

    fn note_damage(&self, err: Error) -> Error {
        if let Error::ProjectionDamaged(reason) = &err {
            *self.damaged.borrow_mut() = Some(reason.clone());
        }
        err
    }

    /// Stages a change: it is applied to the projection at once, so later checks see it.
    pub fn stage(&mut self, change: Change) -> Result<()> {
        self.stage_attempted = true;
        projection::apply_change(self.conn, self.catalog, &change)
            .map_err(|err| self.note_damage(err))?;
        if matches!(
            change,
            Change::CollectionCreated(_)
                | Change::CollectionUpdated(_)
                | Change::CollectionDeleted { .. }
        ) {
            self.catalog_touched = true;
        }
        self.changes.push(change);
        Ok(())
    }

    /// The commit's timestamp (ms since the epoch); use it for every time value you stage.
    pub fn timestamp_ms(&self) -> i64 {
        self.timestamp_ms
    }

    /// Who submitted the command.
    pub fn actor(&self) -> &Actor {
        self.actor
    }

    /// A collection by id or name, as staged.
    pub fn collection(&self, id_or_name: &str) -> Option<&CollectionDef> {
        self.catalog.get(id_or_name)
    }

    /// All collections, as staged.
    pub fn collections(&self) -> Vec<&CollectionDef> {
        self.catalog.iter().collect()
    }

    /// Changes staged so far by this command.
    pub fn staged(&self) -> &[Change] {
        &self.changes
    }

    /// The payload bytes this command's commit would take with the changes staged so far
    /// (compare with [`crate::FRAME_PAYLOAD_MAX`]: a larger commit fails with
    /// [`Error::CommitTooLarge`]). Incremental: each change is measured once.
    pub fn staged_bytes(&mut self) -> u64 {
        if self.sized == 0 {
            self.sized_bytes = crate::codec::payload_len(self.actor, &[]);
        }
        for change in &self.changes[self.sized..] {
            self.sized_bytes += crate::codec::change_len(change);
        }
        self.sized = self.changes.len();
        self.sized_bytes
    }
}

pub(crate) type CommandFn = Box<dyn FnOnce(&mut Tx<'_>) -> CommandResult + Send>;
pub(crate) type CommandResult = std::result::Result<Box<dyn Any + Send>, Box<dyn Any + Send>>;
pub(crate) type ReplyFn = Box<dyn FnOnce(JobOutcome) + Send>;

/// What a job's reply receives.
pub(crate) enum JobOutcome {
    Done {
        value: Box<dyn Any + Send>,
        commit: Option<Arc<Commit>>,
    },
    CommandFailed(Box<dyn Any + Send>),
    EngineFailed(Error),
}

pub(crate) struct Job {
    pub(crate) actor: Actor,
    pub(crate) command: CommandFn,
    pub(crate) reply: ReplyFn,
}

pub(crate) enum Message {
    Job(Job),
    /// Swap the projection for a rebuilt one (the scrub found damage): the file at `path` is
    /// a projection at `seq`; the writer catches it up and moves it into place.
    Replace {
        path: std::path::PathBuf,
        seq: Seq,
        reason: String,
        done: std::sync::mpsc::SyncSender<Result<()>>,
    },
    /// A reader saw SQLite report the projection damaged: check it, rebuild it if so.
    Damaged(String),
    /// Rewrite the projection file so that no byte of erased values survives (a redaction,
    /// `redact.rs`): between two groups, `VACUUM`, then truncate the WAL.
    Purge {
        done: std::sync::mpsc::SyncSender<Result<()>>,
    },
    /// Append replicated commits (follower; `replica.rs`).
    Replicate {
        commits: Vec<Commit>,
        done: std::sync::mpsc::SyncSender<Result<Seq>>,
    },
    Shutdown,
}

/// Longest wait for more commands when gathering a group (see [`Writer::run`]).
const GATHER_WAIT: std::time::Duration = std::time::Duration::from_micros(300);

/// Time budget of the integrity check that confirms damage SQLite reported.
const DAMAGE_CHECK_BUDGET: std::time::Duration = std::time::Duration::from_secs(10);

/// How often an idle writer retries bringing a projection that is behind the log level.
pub(crate) const CATCH_UP_RETRY: std::time::Duration = std::time::Duration::from_millis(500);

pub(crate) struct Writer {
    pub(crate) conn: Connection,
    pub(crate) catalog: Catalog,
    pub(crate) log: Log,
    pub(crate) sync: bool,
    pub(crate) group_max: usize,
    pub(crate) hub: Arc<Hub>,
    pub(crate) poisoned: Arc<Mutex<Option<String>>>,
    pub(crate) clock: Box<dyn Fn() -> i64 + Send>,
    pub(crate) last_timestamp_ms: i64,
    /// Reads commits back from the log to catch the projection up.
    pub(crate) reader: LogReader,
    pub(crate) storage: Arc<dyn Storage>,
    /// The projection is behind the log (a SQLite `COMMIT` failed after the log fsync, or the
    /// catch-up at open could not finish): see [`Writer::catch_up`].
    pub(crate) behind: bool,
    /// The live projection's path (`data.db`).
    pub(crate) db_path: std::path::PathBuf,
    /// Bumped when the projection file is replaced: read connections reopen.
    pub(crate) projection_generation: Arc<std::sync::atomic::AtomicU64>,
    /// SQLite reported the projection damaged to a command, or a reader did: checked (and the
    /// projection rebuilt) after the current group.
    pub(crate) damage_seen: Option<String>,
    /// The connection is a placeholder (a projection swap could not reopen `data.db`).
    pub(crate) detached: bool,
    /// Leader or follower (`replica.rs`): a follower refuses local commands.
    pub(crate) role: Arc<crate::replica::Role>,
    /// Run-time metrics (queue depth, group sizes, append latency).
    pub(crate) metrics: Arc<crate::metrics::EngineMetrics>,
}

impl Writer {
    pub(crate) fn run(mut self, receiver: Receiver<Message>) {
        let mut stop = false;
        let mut previous_group = 1;
        while !stop {
            // Behind (the projection lags the log): wake up now and then to catch up.
            let message = if self.behind {
                match receiver.recv_timeout(CATCH_UP_RETRY) {
                    Ok(message) => message,
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        let _ = self.catch_up();
                        continue;
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match receiver.recv() {
                    Ok(message) => message,
                    Err(_) => break,
                }
            };
            let first = match message {
                Message::Job(job) => job,
                Message::Replace {
                    path,
                    seq,
                    reason,
                    done,
                } => {
                    let _ = done.try_send(self.replace_projection(&path, seq, &reason));
                    continue;
                }
                Message::Damaged(reason) => {
                    self.damage_seen = Some(reason);
                    self.repair_if_damaged();
                    continue;
                }
                Message::Replicate { commits, done } => {
                    let _ = done.try_send(self.apply_replicated(commits));
                    continue;
                }
                Message::Purge { done } => {
                    let _ = done.try_send(crate::redact::purge_projection(&self.conn));
                    continue;
                }
                Message::Shutdown => break,
            };
            let mut group = vec![first];
            let mut replace = None;
            // Gathering: when the previous group showed concurrency, wait a moment for the
            // callers it just answered to submit again, so the next group (one fsync, one
            // SQLite commit) carries as many commits as the last one instead of the few that
            // were already queued. A lone caller never waits.
            let target = previous_group.min(self.group_max);
            let deadline = std::time::Instant::now() + GATHER_WAIT;
            while group.len() < self.group_max {
                let next = match receiver.try_recv() {
                    Ok(message) => Some(message),
                    Err(_) if group.len() < target => {
                        let now = std::time::Instant::now();
                        if now >= deadline {
                            None
                        } else {
                            receiver.recv_timeout(deadline - now).ok()
                        }
                    }
                    Err(_) => None,
                };
                match next {
                    Some(Message::Job(job)) => group.push(job),
                    Some(
                        message @ (Message::Replace { .. }
                        | Message::Replicate { .. }
                        | Message::Purge { .. }),
                    ) => {
                        replace = Some(message);
                        break;
                    }
                    Some(Message::Damaged(reason)) => self.damage_seen = Some(reason),
                    Some(Message::Shutdown) => {
                        stop = true;
                        break;
                    }
                    None => break,
                }
            }
            previous_group = group.len();
            self.run_group(group);
            self.repair_if_damaged();
            if let Some(Message::Replace {
                path,
                seq,
                reason,
                done,
            }) = replace
            {
                let _ = done.try_send(self.replace_projection(&path, seq, &reason));
            } else if let Some(Message::Replicate { commits, done }) = replace {
                let _ = done.try_send(self.apply_replicated(commits));
            } else if let Some(Message::Purge { done }) = replace {
                let _ = done.try_send(crate::redact::purge_projection(&self.conn));
            }
        }
        // Answer whatever is still queued so no caller hangs.
        while let Ok(message) = receiver.try_recv() {
            if let Message::Job(job) = message {
                (job.reply)(JobOutcome::EngineFailed(Error::Closed));
            }
        }
    }

    fn poison_message(&self) -> Option<String> {
        self.poisoned.lock().expect("poison lock").clone()
    }

    fn run_group(&mut self, group: Vec<Job>) {
        let taken = i64::try_from(group.len()).unwrap_or(i64::MAX);
        self.metrics
            .queued
            .fetch_sub(taken, std::sync::atomic::Ordering::Relaxed);
        self.metrics.group_size.observe(group.len() as f64);
        if self.role.is_follower() {
            for job in group {
                (job.reply)(JobOutcome::EngineFailed(Error::NotLeader));
            }
            return;
        }
        if let Some(reason) = self.poison_message() {
            for job in group {
                (job.reply)(JobOutcome::EngineFailed(Error::Poisoned(reason.clone())));
            }
            return;
        }
        if self.behind {
            // New jobs must see every committed change: bring the projection level first,
            // or refuse them (nothing of theirs is written, so the error is the truth).
            if let Err(err) = self.catch_up() {
                for job in group {
                    (job.reply)(JobOutcome::EngineFailed(refusal(&err)));
                }
                return;
            }
        }
        if let Err(err) = self.conn.execute_batch("BEGIN IMMEDIATE") {
            let err = Error::from(err);
            for job in group {
                (job.reply)(JobOutcome::EngineFailed(refusal(&err)));
            }
            return;
        }
        // Timestamps never go backwards, even if the wall clock does.
        let now = (self.clock)().max(self.last_timestamp_ms);
        self.last_timestamp_ms = now;
        let mut next_seq = self.log.next_seq();
        let mut commits: Vec<Commit> = Vec::with_capacity(group.len());
        // (reply, outcome-without-commit, index into commits)
        let mut pending: Vec<(ReplyFn, JobOutcome, Option<usize>)> =
            Vec::with_capacity(group.len());
        let mut catalog_dirty = false;
        // Jobs run without a savepoint of their own until one fails after staging: that one is
        // undone by rolling the whole transaction back and re-applying the changes of the jobs
        // before it (the projection is deterministic, as for replay). From then on, the rest
        // of the group runs with a savepoint per job, so a group rolls back at most once.
        let mut guarded = false;
        let mut jobs = group.into_iter();
        while let Some(job) = jobs.next() {
            match self.run_job(job.command, &job.actor, now, guarded) {
                JobRun::Done {
                    value,
                    changes,
                    touched,
                } => {
                    catalog_dirty |= touched;
                    let index = if changes.is_empty() {
                        None
                    } else {
                        commits.push(Commit {
                            seq: next_seq,
                            timestamp_ms: now,
                            actor: job.actor,
                            changes,
                        });
                        next_seq += 1;
                        Some(commits.len() - 1)
                    };
                    pending.push((
                        job.reply,
                        JobOutcome::Done {
                            value,
                            commit: None,
                        },
                        index,
                    ));
                }
                JobRun::Failed(outcome) => pending.push((job.reply, outcome, None)),
                JobRun::FailedDirty { outcome, touched } => {
                    pending.push((job.reply, outcome, None));
                    guarded = true;
                    if let Err(err) = self.restart_transaction(&commits, catalog_dirty || touched) {
                        // Nothing of this group is durable: every job that had succeeded, and
                        // every job not run yet, gets the error.
                        tracing::error!(error = %err, "could not undo a failed command's changes");
                        let _ = self.conn.execute_batch("ROLLBACK");
                        if let Ok(catalog) = projection::load_catalog(&self.conn) {
                            self.catalog = catalog;
                        }
                        for (reply, outcome, _) in pending {
                            match outcome {
                                JobOutcome::Done { .. } => {
                                    reply(JobOutcome::EngineFailed(refusal(&err)))
                                }
                                other => reply(other),
                            }
                        }
                        for job in jobs {
                            (job.reply)(JobOutcome::EngineFailed(refusal(&err)));
                        }
                        return;
                    }
                }
            }
        }
        if self.conn.is_autocommit() {
            // SQLite rolled the whole transaction back on its own (it may, on SQLITE_FULL or
            // an I/O error while spilling its cache): the staged state is gone, so nothing of
            // this group may be appended. No job of it is committed.
            let err = Error::StorageFull(
                "the projection's transaction was rolled back by SQLite (disk full?)".into(),
            );
            tracing::error!(error = %err, "a write group failed before the log append");
            self.reload_catalog();
            self.answer_uncommitted(pending, &err, false);
            return;
        }
        let append_started = std::time::Instant::now();
        let appended = self.log.append(&commits, self.sync);
        if !commits.is_empty() {
            self.metrics
                .append_seconds
                .observe_duration(append_started.elapsed());
        }
        if let Err(err) = appended {
            self.metrics
                .failed_groups
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let _ = self.conn.execute_batch("ROLLBACK");
            self.reload_catalog();
            // A full disk whose partial bytes were cut back leaves the log exactly as it was:
            // the group fails alone and the next one may try again. Anything else leaves the
            // log's state unknown: poison.
            let poison = !(err.is_storage_full() && self.log.tail_is_clean());
            if poison {
                tracing::error!(error = %err, "write failed; the engine is now poisoned");
                *self.poisoned.lock().expect("poison lock") = Some(err.to_string());
            } else {
                tracing::error!(error = %err, "write failed: disk full; nothing was committed");
            }
            self.answer_uncommitted(pending, &err, poison);
            return;
        }
        // The group is durable in the log from here: it IS committed, and every job with a
        // commit is answered with success whatever happens to the projection.
        let projected = match commits.last() {
            Some(last) => projection::set_last_applied(&self.conn, last.seq),
            None => Ok(()),
        }
        .and_then(|()| {
            if commits.is_empty() {
                Ok(())
            } else {
                self.storage
                    .before_projection_commit()
                    .map_err(|err| Error::io("commit projection", "data.db", err))
            }
        })
        .and_then(|()| self.conn.execute_batch("COMMIT").map_err(Error::from));
        if let Err(err) = projected {
            tracing::error!(
                error = %err,
                seq = self.log.next_seq() - 1,
                "the projection could not be committed; the commits are durable in the log \
                 and will be re-applied from it before any new write"
            );
            let _ = self.conn.execute_batch("ROLLBACK");
            self.reload_catalog();
            self.behind = true;
            // Transient failures clear at once (then the callers can read their writes back);
            // otherwise the next group (or the idle retry) tries again. Publishing happens in
            // the catch-up, after the apply.
            let _ = self.catch_up();
            let commits: Vec<Arc<Commit>> = commits.into_iter().map(Arc::new).collect();
            for (reply, outcome, index) in pending {
                match outcome {
                    JobOutcome::Done { value, .. } => reply(JobOutcome::Done {
                        value,
                        commit: index.map(|index| Arc::clone(&commits[index])),
                    }),
                    other => reply(other),
                }
            }
            return;
        }
        self.metrics
            .commits
            .fetch_add(commits.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let commits: Vec<Arc<Commit>> = commits.into_iter().map(Arc::new).collect();
        // Publish before answering: once a caller sees its write acknowledged, subscribers
        // (and `published_seq`) already include it. Both happen only after the commit is durable.
        self.hub.publish(commits.clone());
        for (reply, outcome, index) in pending {
            match outcome {
                JobOutcome::Done { value, .. } => reply(JobOutcome::Done {
                    value,
                    commit: index.map(|index| Arc::clone(&commits[index])),
                }),
                other => reply(other),
            }
        }
    }

    /// After a command or a reader saw SQLite report damage: confirms it with a bounded
    /// `quick_check` and rebuilds the projection from the log when it is damaged.
    fn repair_if_damaged(&mut self) {
        let Some(reported) = self.damage_seen.take() else {
            return;
        };
        // A fresh connection: the writer's own page cache may still hold good copies of
        // pages that are damaged on disk.
        let confirmed = match crate::snapshot::open_read_only(&self.db_path)
            .and_then(|conn| crate::engine::quick_check(&conn, DAMAGE_CHECK_BUDGET))
        {
            Ok(Some(problems)) => Some(problems),
            Ok(None) => None,
            Err(Error::ProjectionDamaged(reason)) => Some(reason),
            Err(err) => {
                tracing::warn!(error = %err, "could not check the projection for damage");
                None
            }
        };
        match confirmed {
            Some(problems) => {
                let reason = format!("SQLite reported {reported}; integrity check: {problems}");
                if let Err(err) = self.rebuild_projection(&reason) {
                    tracing::error!(error = %err, "rebuilding the damaged projection failed");
                }
            }
            None => tracing::warn!(
                reported = %reported,
                "SQLite reported damage the integrity check does not confirm; the scrub \
                 compares the projection with the log"
            ),
        }
    }

    /// Rebuilds the projection from the log (from seq 1 while the log starts there) into a
    /// scratch file and swaps it in ([`Writer::replace_projection`]); publishes the commits
    /// the old projection had not published. Blocks the writer for the duration.
    pub(crate) fn rebuild_projection(&mut self, reason: &str) -> Result<()> {
        tracing::error!(
            reason,
            "DAMAGED PROJECTION: rebuilding data.db from the log"
        );
        let durable = self.log.next_seq() - 1;
        let dir = self
            .db_path
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default();
        let scratch = dir.join(format!(
            ".scrub-rebuild-{}-{}.db",
            std::process::id(),
            chrono::Utc::now().timestamp_millis()
        ));
        let built = if self.reader.first_seq() > 1 {
            crate::snapshot::build_projection_at(
                &self.reader,
                &crate::snapshot::snapshots_dir(&dir),
                durable,
                &scratch,
                |_| {},
            )
            .map(|_| ())
        } else {
            (|| {
                let conn = crate::engine::open_projection(&scratch)?;
                let mut catalog = Catalog::default();
                crate::engine::replay_into(&conn, &mut catalog, &self.reader, 1, durable, |_| {})?;
                Ok(())
            })()
        };
        let was_behind = self.behind;
        self.behind = false;
        let result = built.and_then(|()| self.replace_projection(&scratch, durable, reason));
        let _ = crate::engine::remove_projection(&scratch);
        if let Err(err) = result {
            self.behind = was_behind || self.detached;
            return Err(err);
        }
        // Publish what the old projection never did (it was behind).
        let mut next = self.hub.last_seq() + 1;
        while next <= durable {
            let commits = self.reader.read_from(next, 1024)?;
            let Some(last) = commits.last().map(|commit| commit.seq) else {
                break;
            };
            self.hub
                .publish(commits.into_iter().map(Arc::new).collect());
            next = last + 1;
        }
        Ok(())
    }

    /// Replaces the live projection with the rebuilt one at `path` (a projection at `seq`):
    /// catches it up with the log, moves the live `data.db` aside (kept, never deleted) and
    /// the rebuilt file into its place, and reopens. Read connections are reopened lazily (the
    /// pool generation changes); reads in flight finish on the old file.
    fn replace_projection(&mut self, path: &std::path::Path, seq: Seq, reason: &str) -> Result<()> {
        if self.behind {
            return Err(Error::InvalidChange(
                "the projection is behind the log (disk full?); not replacing it now".into(),
            ));
        }
        let durable = self.log.next_seq() - 1;
        {
            let conn = crate::engine::open_projection(path)?;
            let mut catalog = projection::load_catalog(&conn)?;
            let at = projection::last_applied(&conn)?;
            if at != seq {
                return Err(Error::InvalidChange(format!(
                    "the rebuilt projection is at seq {at}, not {seq}"
                )));
            }
            if durable > seq {
                crate::engine::replay_into(
                    &conn,
                    &mut catalog,
                    &self.reader,
                    seq + 1,
                    durable,
                    |_| {},
                )?;
            }
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            conn.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))?;
        }
        crate::snapshot::sync_file(path)?;
        let db = self.db_path.clone();
        // Close the live connection; the rebuilt file takes its place. Until a connection to
        // `data.db` is open again the writer is detached: it refuses jobs and retries.
        let old = std::mem::replace(&mut self.conn, Connection::open_in_memory()?);
        drop(old);
        self.detached = true;
        let aside = match crate::engine::move_projection_aside(&db, reason) {
            Ok(aside) => aside,
            Err(err) => {
                let _ = self.reattach();
                return Err(err);
            }
        };
        #[expect(
            clippy::disallowed_methods,
            reason = "the projection is SQLite's, not the log's"
        )]
        let moved = std::fs::rename(path, &db);
        if let Err(err) = moved {
            // Put the old projection back rather than run without one.
            crate::engine::move_projection_back(&aside, &db);
            let _ = self.reattach();
            return Err(Error::io("rename", path, err));
        }
        if let Some(dir) = db.parent() {
            if let Err(err) = crate::snapshot::sync_dir(dir) {
                tracing::warn!(error = %err, "fsync of the data dir after the swap failed");
            }
        }
        self.projection_generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.reattach()?;
        tracing::error!(
            damaged = %aside.display(),
            seq = durable,
            "REPAIRED PROJECTION: data.db was replaced by a rebuild from the log"
        );
        Ok(())
    }

    /// Opens the writer's connection to `data.db` again after [`Writer::replace_projection`]
    /// closed it; on failure the writer stays detached and behind (jobs are refused, the
    /// catch-up retries this).
    fn reattach(&mut self) -> Result<()> {
        let opened = crate::engine::open_projection(&self.db_path).and_then(|conn| {
            let catalog = projection::load_catalog(&conn)?;
            Ok((conn, catalog))
        });
        match opened {
            Ok((conn, catalog)) => {
                self.conn = conn;
                self.catalog = catalog;
                self.detached = false;
                Ok(())
            }
            Err(err) => {
                tracing::error!(error = %err, "could not reopen the projection; writes are refused until it opens");
                self.detached = true;
                self.behind = true;
                Err(err)
            }
        }
    }

    /// Re-reads the catalog after a rollback (keeps the old one if that fails too).
    fn reload_catalog(&mut self) {
        if let Ok(catalog) = projection::load_catalog(&self.conn) {
            self.catalog = catalog;
        }
    }

    /// Answers a group none of whose commits reached the log: commands that failed keep their
    /// error, jobs that staged nothing succeed, jobs with a commit get `err`.
    fn answer_uncommitted(
        &self,
        pending: Vec<(ReplyFn, JobOutcome, Option<usize>)>,
        err: &Error,
        poisoned: bool,
    ) {
        let reason = err.to_string();
        for (reply, outcome, index) in pending {
            match (outcome, index) {
                (JobOutcome::CommandFailed(err), _) => reply(JobOutcome::CommandFailed(err)),
                (JobOutcome::Done { value, .. }, None) => reply(JobOutcome::Done {
                    value,
                    commit: None,
                }),
                (JobOutcome::EngineFailed(err), _) => reply(JobOutcome::EngineFailed(err)),
                _ if poisoned => reply(JobOutcome::EngineFailed(Error::Poisoned(reason.clone()))),
                _ => reply(JobOutcome::EngineFailed(refusal(err))),
            }
        }
    }

    /// Brings a projection that is behind the log level: applies the missing commits from the
    /// log (in batches, each in one SQLite transaction with its `_meta.last_seq`) and publishes
    /// them. Clears [`Writer::behind`] on success.
    pub(crate) fn catch_up(&mut self) -> Result<()> {
        if self.detached {
            self.reattach()?;
        }
        let result = (|| -> Result<u64> {
            let mut applied = projection::last_applied(&self.conn)?;
            let durable = self.log.next_seq() - 1;
            let mut caught = 0u64;
            while applied < durable {
                let limit = ((durable - applied) as usize).min(crate::engine::REPLAY_BATCH_COMMITS);
                let commits = self.reader.read_from(applied + 1, limit)?;
                if commits.is_empty() {
                    return Err(Error::SeqUnavailable {
                        seq: applied + 1,
                        reason: "the log returned no commit to catch the projection up".into(),
                    });
                }
                self.storage
                    .before_projection_commit()
                    .map_err(|err| Error::io("commit projection", "data.db", err))?;
                if let Err(err) = apply_batch(&self.conn, &mut self.catalog, &commits) {
                    self.reload_catalog();
                    return Err(err);
                }
                applied = commits.last().map_or(applied, |commit| commit.seq);
                caught += commits.len() as u64;
                self.hub
                    .publish(commits.into_iter().map(Arc::new).collect());
            }
            Ok(caught)
        })();
        match result {
            Ok(caught) => {
                self.behind = false;
                tracing::info!(
                    commits = caught,
                    seq = self.log.next_seq() - 1,
                    "the projection is level with the log again; writes resume"
                );
                Ok(())
            }
            Err(Error::ProjectionDamaged(reason)) => {
                // It cannot catch up because it is damaged: rebuild it from the log instead.
                self.rebuild_projection(&format!("catching it up failed: {reason}"))
            }
            Err(err) => {
                tracing::warn!(
                    error = %err,
                    "the projection is still behind the log; new writes are refused until it \
                     catches up"
                );
                Err(err)
            }
        }
    }

    /// Rolls the group's transaction back and re-applies the changes of its jobs so far.
    fn restart_transaction(&mut self, commits: &[Commit], reload_catalog: bool) -> Result<()> {
        self.conn.execute_batch("ROLLBACK")?;
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        if reload_catalog {
            // The rollback took `_collections` back; bring the catalog back in line.
            self.catalog = projection::load_catalog(&self.conn)?;
        }
        for commit in commits {
            for change in &commit.changes {
                projection::apply_change(&self.conn, &mut self.catalog, change)?;
            }
        }
        Ok(())
    }

    /// Runs one command. `guarded`: inside a savepoint of its own; otherwise a command that
    /// fails after staging is reported as [`JobRun::FailedDirty`] and the caller undoes it.
    fn run_job(&mut self, command: CommandFn, actor: &Actor, now: i64, guarded: bool) -> JobRun {
        // Cached statements: parsing the savepoint SQL per job is a measurable share of a
        // small commit's cost on the writer thread.
        if guarded {
            if let Err(err) = run_cached(&self.conn, "SAVEPOINT job") {
                return JobRun::Failed(JobOutcome::EngineFailed(Error::from(err)));
            }
        }
        let changes_before = self.conn.total_changes();
        let mut tx = Tx {
            conn: &self.conn,
            catalog: &mut self.catalog,
            changes: Vec::new(),
            timestamp_ms: now,
            actor,
            catalog_touched: false,
            stage_attempted: false,
            sized: 0,
            sized_bytes: 0,
            damaged: std::cell::RefCell::new(None),
        };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| command(&mut tx)));
        let touched = tx.catalog_touched;
        let attempted = tx.stage_attempted;
        if let Some(reason) = tx.damaged.take() {
            self.damage_seen = Some(reason);
        }
        let changes = std::mem::take(&mut tx.changes);
        let too_large = match &result {
            Ok(Ok(_)) if !changes.is_empty() => {
                let bytes = crate::codec::payload_len(actor, &changes);
                (bytes > crate::frame::FRAME_PAYLOAD_MAX as u64).then_some(bytes)
            }
            _ => None,
        };
        let outcome = match result {
            Ok(Ok(_)) if too_large.is_some() => {
                let bytes = too_large.unwrap_or_default();
                tracing::warn!(
                    bytes,
                    max = crate::frame::FRAME_PAYLOAD_MAX,
                    "a commit exceeds the frame limit; only its command fails"
                );
                JobOutcome::EngineFailed(Error::CommitTooLarge {
                    bytes,
                    max: crate::frame::FRAME_PAYLOAD_MAX as u64,
                })
            }
            Ok(Ok(value)) => {
                if guarded {
                    if let Err(err) = run_cached(&self.conn, "RELEASE job") {
                        return JobRun::Failed(JobOutcome::EngineFailed(Error::from(err)));
                    }
                }
                return JobRun::Done {
                    value,
                    changes,
                    touched,
                };
            }
            Ok(Err(err)) => JobOutcome::CommandFailed(err),
            Err(_) => JobOutcome::EngineFailed(Error::InvalidChange(
                "the command panicked; its changes were rolled back".into(),
            )),
        };
        if !guarded {
            // Nothing to undo when the command wrote nothing.
            if attempted || touched || self.conn.total_changes() != changes_before {
                return JobRun::FailedDirty { outcome, touched };
            }
            return JobRun::Failed(outcome);
        }
        let _ = run_cached(&self.conn, "ROLLBACK TO job");
        let _ = run_cached(&self.conn, "RELEASE job");
        if touched {
            // The savepoint rolled `_collections` back; bring the catalog back in line.
            match projection::load_catalog(&self.conn) {
                Ok(catalog) => self.catalog = catalog,
                Err(err) => return JobRun::Failed(JobOutcome::EngineFailed(err)),
            }
        }
        JobRun::Failed(outcome)
    }
}

/// How one job ran.
enum JobRun {
    /// The command succeeded; its changes are staged.
    Done {
        value: Box<dyn Any + Send>,
        changes: Vec<Change>,
        touched: bool,
    },
    /// The command failed and left nothing behind (or its savepoint was rolled back).
    Failed(JobOutcome),
    /// The command failed after staging, outside a savepoint: the transaction must be undone.
    FailedDirty { outcome: JobOutcome, touched: bool },
}

/// The error a job gets when it is refused because of `cause` (nothing of it was written).
fn refusal(cause: &Error) -> Error {
    if cause.is_storage_full() {
        Error::StorageFull(cause.to_string())
    } else {
        Error::Sqlite(format!("the write was not committed: {cause}"))
    }
}

fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Applies commits to a projection in one transaction (replay and start-up catch-up).
pub(crate) fn apply_batch(
    conn: &Connection,
    catalog: &mut Catalog,
    commits: &[Commit],
) -> Result<Seq> {
    let mut last = 0;
    conn.execute_batch("BEGIN IMMEDIATE")?;
    for commit in commits {
        if let Err(err) = projection::apply_commit(conn, catalog, commit) {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(err);
        }
        last = commit.seq;
    }
    conn.execute_batch("COMMIT")?;
    Ok(last)
}
