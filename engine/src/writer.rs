//! The single writer thread: group commit.
//!
//! Loop (see DESIGN.md "Write path"):
//! 1. Block for one job, then take whatever else is queued (up to `group_max`). When the
//!    previous group had more jobs than are queued now, wait up to [`GATHER_WAIT`] for that
//!    many (the callers just answered are about to submit again): fewer, fuller groups.
//! 2. `BEGIN`; run each job's command against a [`Tx`]; an error or panic fails only that job
//!    (the group's transaction is rolled back and the other jobs' changes re-applied).
//! 3. Append the group's commits to the log, fsync once (policy `always`).
//! 4. Write `_meta.last_seq` and `COMMIT` SQLite.
//! 5. Publish the commits to subscribers, then answer every job.
//!
//! Invariants: a job is answered with success only after step 4; if step 3 fails the SQLite
//! transaction is rolled back, every job of the group gets the error and the engine is
//! poisoned; nothing is published that is not durable.

use crate::commit::{Actor, Change, CollectionDef, Commit, Seq};
use crate::error::{Error, Result};
use crate::log::Log;
use crate::projection::{self, Catalog};
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
}

impl<'a> Tx<'a> {
    /// Queries the staged state (earlier commands of the group included).
    pub fn query(&self, sql: &str, params: &[Value]) -> Result<Rows> {
        projection::query(self.conn, sql, params)
    }

    /// Stages a change: it is applied to the projection at once, so later checks see it.
    pub fn stage(&mut self, change: Change) -> Result<()> {
        self.stage_attempted = true;
        projection::apply_change(self.conn, self.catalog, &change)?;
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
    Shutdown,
}

/// Longest wait for more commands when gathering a group (see [`Writer::run`]).
const GATHER_WAIT: std::time::Duration = std::time::Duration::from_micros(300);

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
}

impl Writer {
    pub(crate) fn run(mut self, receiver: Receiver<Message>) {
        let mut stop = false;
        let mut previous_group = 1;
        while !stop {
            let first = match receiver.recv() {
                Ok(Message::Job(job)) => job,
                Ok(Message::Shutdown) | Err(_) => break,
            };
            let mut group = vec![first];
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
                    Some(Message::Shutdown) => {
                        stop = true;
                        break;
                    }
                    None => break,
                }
            }
            previous_group = group.len();
            self.run_group(group);
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
        if let Some(reason) = self.poison_message() {
            for job in group {
                (job.reply)(JobOutcome::EngineFailed(Error::Poisoned(reason.clone())));
            }
            return;
        }
        if let Err(err) = self.conn.execute_batch("BEGIN IMMEDIATE") {
            let err = Error::from(err);
            for job in group {
                (job.reply)(JobOutcome::EngineFailed(Error::Sqlite(err.to_string())));
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
                        let reason = err.to_string();
                        for (reply, outcome, _) in pending {
                            match outcome {
                                JobOutcome::Done { .. } => {
                                    reply(JobOutcome::EngineFailed(Error::Sqlite(reason.clone())))
                                }
                                other => reply(other),
                            }
                        }
                        for job in jobs {
                            (job.reply)(JobOutcome::EngineFailed(Error::Sqlite(reason.clone())));
                        }
                        return;
                    }
                }
            }
        }
        let durable = self
            .log
            .append(&commits, self.sync)
            .and_then(|()| match commits.last() {
                Some(last) => projection::set_last_applied(&self.conn, last.seq),
                None => Ok(()),
            })
            .and_then(|()| self.conn.execute_batch("COMMIT").map_err(Error::from));
        if let Err(err) = durable {
            let reason = err.to_string();
            tracing::error!(error = %reason, "write failed; the engine is now poisoned");
            *self.poisoned.lock().expect("poison lock") = Some(reason.clone());
            let _ = self.conn.execute_batch("ROLLBACK");
            if let Ok(catalog) = projection::load_catalog(&self.conn) {
                self.catalog = catalog;
            }
            for (reply, outcome, index) in pending {
                match (outcome, index) {
                    (JobOutcome::CommandFailed(err), _) => reply(JobOutcome::CommandFailed(err)),
                    (JobOutcome::Done { value, .. }, None) => reply(JobOutcome::Done {
                        value,
                        commit: None,
                    }),
                    _ => reply(JobOutcome::EngineFailed(Error::Poisoned(reason.clone()))),
                }
            }
            return;
        }
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
        };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| command(&mut tx)));
        let touched = tx.catalog_touched;
        let attempted = tx.stage_attempted;
        let changes = std::mem::take(&mut tx.changes);
        let outcome = match result {
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
