//! Cron jobs: the registry behind `GET /api/crons` and `POST /api/crons/{id}`, and the
//! scheduler `serve` starts ([`start`]).
//!
//! Jobs (ids and expressions as the reference v0.40.6 lists them, UTC):
//! - `__pbDBOptimize__` (`0 0 * * *`): `PRAGMA optimize` and a WAL checkpoint of the request
//!   logs database (`auxiliary.db`). `data.db` is the engine writer's and is left alone.
//! - `__pbMFACleanup__`, `__pbOTPCleanup__` (`0 * * * *`): deletes `_mfas` / `_otps` records
//!   older than their auth collection's `mfa.duration` / `otp.duration`, through the normal
//!   record delete path (so each deletion is a logged commit, seen by realtime).
//! - `__pbLogsCleanup__` (`0 */6 * * *`): deletes request logs older than
//!   `settings.logs.maxDays`.
//! - pocketlog's own: `__plSnapshot__` (a projection snapshot for faster restarts and
//!   restores; only when `serve` compacts, since compaction is what removes old snapshots) and
//!   `__plScrub__` (the projection scrub, when `serve` schedules it here); see
//!   [`ServerOptions::scrub_cron`](crate::ServerOptions) and `snapshot_cron`.
//! - the JS hooks' `cronAdd` jobs: listed first (as the reference lists them) and run by
//!   `POST /api/crons/{id}` through [`crate::hooks::run_cron`]; their schedule is the hooks'.
//!
//! Invariants: a job runs at most once at a time (a second start waits for the first); a
//! failing job is logged and never stops the scheduler; nothing here writes `data.db` except
//! through the log. Deletions per run are capped ([`MAX_DELETES_PER_RUN`]); the rest goes at
//! the next run.

use crate::access::{Auth, RequestData};
use crate::model::record::format_ms;
use crate::model::SUPERUSERS_ID;
use crate::state::AppState;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Records deleted by one run of a cleanup job at most.
pub const MAX_DELETES_PER_RUN: usize = 5_000;
/// The reference's default `mfa.duration` (seconds) when a collection has none.
const DEFAULT_MFA_SECS: i64 = 1800;
/// The reference's default `otp.duration` (seconds) when a collection has none.
const DEFAULT_OTP_SECS: i64 = 180;

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// `__pbDBOptimize__`.
    DbOptimize,
    /// `__pbMFACleanup__`.
    MfaCleanup,
    /// `__pbOTPCleanup__`.
    OtpCleanup,
    /// `__pbLogsCleanup__`.
    LogsCleanup,
    /// `__plSnapshot__`.
    Snapshot,
    /// `__plScrub__`.
    Scrub,
}

/// One registered job.
#[derive(Debug, Clone)]
pub struct Job {
    /// The id the API names it by.
    pub id: &'static str,
    /// Its cron expression (5 fields, UTC).
    pub expression: String,
    /// What it does.
    pub task: Task,
    schedule: croner::Cron,
}

/// The job registry of a server, with a lock per job (one run at a time).
pub struct Crons {
    jobs: Vec<(Job, tokio::sync::Mutex<()>)>,
}

impl Crons {
    /// The built-in jobs; `snapshot` and `scrub` are those jobs' expressions when the
    /// scheduler runs them (`None`: not listed).
    pub fn builtin(snapshot: Option<&str>, scrub: Option<&str>) -> Crons {
        let mut jobs = vec![
            ("__pbDBOptimize__", "0 0 * * *", Task::DbOptimize),
            ("__pbMFACleanup__", "0 * * * *", Task::MfaCleanup),
            ("__pbOTPCleanup__", "0 * * * *", Task::OtpCleanup),
            ("__pbLogsCleanup__", "0 */6 * * *", Task::LogsCleanup),
        ];
        if let Some(expression) = snapshot {
            jobs.push(("__plSnapshot__", expression, Task::Snapshot));
        }
        if let Some(expression) = scrub {
            jobs.push(("__plScrub__", expression, Task::Scrub));
        }
        let jobs = jobs
            .into_iter()
            .filter_map(|(id, expression, task)| match parse(expression) {
                Ok(schedule) => Some((
                    Job {
                        id,
                        expression: expression.to_string(),
                        task,
                        schedule,
                    },
                    tokio::sync::Mutex::new(()),
                )),
                Err(err) => {
                    tracing::error!(id, expression, error = %err, "bad cron expression; job left out");
                    None
                }
            })
            .collect();
        Crons { jobs }
    }

    /// The jobs in registration order.
    pub fn list(&self) -> impl Iterator<Item = &Job> {
        self.jobs.iter().map(|(job, _)| job)
    }

    /// The API's list: `[{"id","expression"}]`.
    pub fn to_json(&self) -> Value {
        Value::Array(
            self.list()
                .map(|job| json!({"id": job.id, "expression": job.expression}))
                .collect(),
        )
    }

    /// Whether a job with this id exists.
    pub fn contains(&self, id: &str) -> bool {
        self.jobs.iter().any(|(job, _)| job.id == id)
    }
}

/// The API's list (`GET /api/crons`): the hooks' `cronAdd` jobs first, then the built-in
/// ones (the reference's order).
pub fn list_json(state: &AppState) -> Value {
    let mut list: Vec<Value> = state
        .hooks
        .current()
        .map(|loaded| {
            loaded
                .registry
                .crons
                .iter()
                .map(|job| json!({"id": job.id, "expression": job.expression}))
                .collect()
        })
        .unwrap_or_default();
    if let Value::Array(builtin) = state.crons.to_json() {
        list.extend(builtin);
    }
    Value::Array(list)
}

/// Parses a 5-field cron expression.
pub fn parse(expression: &str) -> Result<croner::Cron, croner::errors::CronError> {
    croner::Cron::new(expression).parse()
}

/// Runs the job `id` now (waiting for a run in progress first); `None` when there is no such
/// job. The answer is a short summary for the log.
pub async fn run(state: &Arc<AppState>, id: &str) -> Option<anyhow::Result<String>> {
    let hooked = state
        .hooks
        .current()
        .is_some_and(|loaded| loaded.registry.crons.iter().any(|job| job.id == id));
    if hooked {
        let result = crate::hooks::run_cron(state, id).await;
        return Some(match result {
            Ok(()) => Ok("hook job done".to_string()),
            Err(err) => Err(anyhow::anyhow!("hook cron job {id}: {}", err.message)),
        });
    }
    let (job, lock) = state.crons.jobs.iter().find(|(job, _)| job.id == id)?;
    let _running = lock.lock().await;
    let started = std::time::Instant::now();
    let result = run_task(state, job.task).await;
    match &result {
        Ok(summary) => tracing::info!(
            job = job.id,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "cron job done: {summary}"
        ),
        Err(err) => tracing::warn!(job = job.id, error = format!("{err:#}"), "cron job failed"),
    }
    Some(result)
}

async fn run_task(state: &Arc<AppState>, task: Task) -> anyhow::Result<String> {
    match task {
        Task::DbOptimize => {
            let path = state.logs.path().to_path_buf();
            blocking(move || {
                let conn = crate::request_log::open(&path)?;
                conn.execute_batch("PRAGMA optimize; PRAGMA wal_checkpoint(TRUNCATE);")?;
                Ok("auxiliary.db optimized".to_string())
            })
            .await
        }
        Task::LogsCleanup => {
            let max_days = state
                .settings()
                .pointer("/logs/maxDays")
                .and_then(Value::as_i64)
                .unwrap_or(5);
            let path = state.logs.path().to_path_buf();
            blocking(move || {
                let conn = crate::request_log::open(&path)?;
                let removed = if max_days > 0 {
                    crate::request_log::prune(
                        &conn,
                        max_days,
                        chrono::Utc::now().timestamp_millis(),
                    )?
                } else {
                    // Logging off (maxDays 0): nothing is kept.
                    conn.execute("DELETE FROM _logs", [])?
                };
                Ok(format!("{removed} request logs removed"))
            })
            .await
        }
        Task::MfaCleanup => cleanup(state, "_mfas", "mfa", DEFAULT_MFA_SECS).await,
        Task::OtpCleanup => cleanup(state, "_otps", "otp", DEFAULT_OTP_SECS).await,
        Task::Snapshot => {
            let state = Arc::clone(state);
            blocking(move || {
                let (seq, path) = state.engine.snapshot()?;
                Ok(format!("snapshot at seq {seq}: {}", path.display()))
            })
            .await
        }
        Task::Scrub => {
            let state = Arc::clone(state);
            blocking(move || {
                let report = state.engine.scrub()?;
                Ok(format!("{report:?}"))
            })
            .await
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f).await?
}

/// Deletes the records of `table` (`_mfas` or `_otps`) that are older than the `option`
/// duration of the auth collection they belong to.
async fn cleanup(
    state: &Arc<AppState>,
    table: &'static str,
    option: &'static str,
    default_secs: i64,
) -> anyhow::Result<String> {
    let schema = state.schema();
    let Some(collection) = schema.find(table).cloned() else {
        return Ok(format!("no {table} collection"));
    };
    let now = chrono::Utc::now().timestamp_millis();
    let mut expired = Vec::new();
    for auth in schema.collections.iter().filter(|c| c.is_auth()) {
        let secs = auth
            .auth_option(option)
            .get("duration")
            .and_then(Value::as_i64)
            .filter(|secs| *secs > 0)
            .unwrap_or(default_secs);
        let cutoff = format_ms(now.saturating_sub(secs.saturating_mul(1000)));
        let collection_id = auth.id.clone();
        let left = MAX_DELETES_PER_RUN.saturating_sub(expired.len());
        if left == 0 {
            break;
        }
        let rows = state
            .read(move |conn| {
                conn.query(
                    &format!(
                        "SELECT id FROM {} WHERE collectionRef = ?1 AND created < ?2 LIMIT ?3",
                        engine::quote_ident(table)
                    ),
                    &[
                        engine::Value::Text(collection_id),
                        engine::Value::Text(cutoff),
                        engine::Value::Int(left as i64),
                    ],
                )
            })
            .await
            .map_err(|err| anyhow::anyhow!(err.message))?;
        expired.extend(
            rows.rows
                .iter()
                .filter_map(|row| row[0].as_str().map(str::to_string)),
        );
    }
    let system = system_auth(state)?;
    let mut removed = 0;
    for id in &expired {
        match crate::records::delete_record(
            state,
            &schema,
            &collection,
            Some(&system),
            id,
            RequestData::default(),
        )
        .await
        {
            Ok(()) => removed += 1,
            // Deleted meanwhile (by its owner or a cascade): nothing left to do.
            Err(err) if err.status == axum::http::StatusCode::NOT_FOUND => {}
            Err(err) => anyhow::bail!("deleting {table}/{id}: {}", err.message),
        }
    }
    Ok(format!("{removed} expired {table} records removed"))
}

/// The system acting as a superuser (as the CLI does).
fn system_auth(state: &Arc<AppState>) -> anyhow::Result<Auth> {
    let schema = state.schema();
    let superusers = schema
        .find(SUPERUSERS_ID)
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("the _superusers collection is missing"))?;
    let mut record = Map::new();
    record.insert("id".into(), json!("system"));
    Ok(Auth {
        collection: superusers,
        record,
    })
}

/// Starts the scheduler on the current tokio runtime: each job runs at its next occurrence
/// (UTC); runs of different jobs may overlap, runs of one job never do.
pub fn start(state: Arc<AppState>) {
    for index in 0..state.crons.jobs.len() {
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                let (job, _) = &state.crons.jobs[index];
                let now = chrono::Utc::now();
                let Ok(next) = job.schedule.find_next_occurrence(&now, false) else {
                    tracing::warn!(job = job.id, "cron job has no next occurrence; stopped");
                    return;
                };
                let wait = (next - now).to_std().unwrap_or_default();
                tokio::time::sleep(wait).await;
                let id = job.id;
                if crate::cluster::follows(&state) {
                    tracing::debug!(job = id, "cron job skipped: this cluster node follows");
                    continue;
                }
                let _ = run(&state, id).await;
            }
        });
    }
    tracing::debug!(jobs = state.crons.jobs.len(), "cron scheduler started");
}

/// A cron expression that runs every `secs` seconds, when one exists (whole minutes dividing
/// an hour, or whole hours dividing a day); `None` otherwise.
pub fn every(secs: u64) -> Option<String> {
    if secs == 0 || !secs.is_multiple_of(60) {
        return None;
    }
    let minutes = secs / 60;
    if minutes < 60 && 60_u64.is_multiple_of(minutes) {
        return Some(if minutes == 1 {
            "* * * * *".to_string()
        } else {
            format!("*/{minutes} * * * *")
        });
    }
    if minutes.is_multiple_of(60) {
        let hours = minutes / 60;
        if hours <= 24 && 24_u64.is_multiple_of(hours) {
            return Some(match hours {
                1 => "0 * * * *".to_string(),
                24 => "0 0 * * *".to_string(),
                _ => format!("0 */{hours} * * *"),
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_map_to_cron_expressions_only_when_exact() {
        assert_eq!(every(21_600).as_deref(), Some("0 */6 * * *"));
        assert_eq!(every(3_600).as_deref(), Some("0 * * * *"));
        assert_eq!(every(86_400).as_deref(), Some("0 0 * * *"));
        assert_eq!(every(600).as_deref(), Some("*/10 * * * *"));
        assert_eq!(every(60).as_deref(), Some("* * * * *"));
        for secs in [0, 30, 90, 420, 5 * 3600, 48 * 3600] {
            assert_eq!(every(secs), None, "{secs}");
        }
        for secs in [60, 600, 3600, 21_600, 86_400] {
            assert!(parse(&every(secs).unwrap()).is_ok());
        }
    }

    #[test]
    fn the_builtin_list_matches_the_reference_ids() {
        let crons = Crons::builtin(Some("0 3 * * *"), Some("0 */6 * * *"));
        let ids: Vec<_> = crons.list().map(|job| job.id).collect();
        assert_eq!(
            ids,
            [
                "__pbDBOptimize__",
                "__pbMFACleanup__",
                "__pbOTPCleanup__",
                "__pbLogsCleanup__",
                "__plSnapshot__",
                "__plScrub__"
            ]
        );
        let bare = Crons::builtin(None, None);
        assert!(!bare.contains("__plScrub__") && !bare.contains("__plSnapshot__"));
    }
}
