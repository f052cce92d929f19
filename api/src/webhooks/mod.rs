//! Durable webhooks: every committed record change a webhook asks for is POSTed to its URL,
//! in log order, at least once, signed with the webhook's secret.
//!
//! 1. Configuration (`config.rs`) is stored through the log (one `_params` entry), so it
//!    replicates, is backed up and restored; the superuser CRUD is `handlers/webhooks.rs`.
//! 2. Delivery (`delivery.rs`) runs one task per active endpoint. Each task reads the
//!    committed change stream from its own cursor (an engine subscription: the recent ring,
//!    else the log), so a slow or dead endpoint never slows writes and costs no memory that
//!    grows with its backlog. Events are delivered one at a time, in log order; an event is
//!    retried with exponential backoff (capped) and after [`Tuning::max_attempts`] goes to the
//!    dead-letter list, and delivery continues with the next one.
//! 3. The cursor, the delivery log and the dead letters live in an auxiliary store
//!    (`store.rs`, `pb_data/webhooks.db`). The cursor is written only after the events up to
//!    it were delivered or dead-lettered, so it is never ahead of delivery and a restart
//!    resumes from it (at least once; nothing is skipped).
//! 4. Payload `{"position","action","collection","record"}`, the record as a superuser sees it
//!    (hidden fields included, never `password`/`tokenKey`); headers
//!    [`SIGNATURE_HEADER`] (`sha256=<hex HMAC-SHA256 of the body>`), [`POSITION_HEADER`],
//!    [`WEBHOOK_HEADER`] and [`ATTEMPT_HEADER`]. Any 2xx answer is a delivery.
//! 5. Tasks start with [`start`] (the `serve` command) and follow configuration changes made
//!    through the API ([`reconcile`]); a configuration that arrives another way (a restore,
//!    a replica promoted) is picked up at the next start.

pub mod config;
pub mod delivery;
pub mod store;

use crate::access::Auth;
use crate::model::{Schema, SUPERUSERS_ID};
use crate::state::AppState;
use config::Webhook;
use serde_json::{json, Map};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;
use store::Store;

/// The signature header: `sha256=<hex HMAC-SHA256 of the raw body, keyed by the secret>`.
pub const SIGNATURE_HEADER: &str = "X-Pocketlog-Signature";
/// The log position of the delivered event.
pub const POSITION_HEADER: &str = "X-Pocketlog-Position";
/// The webhook id.
pub const WEBHOOK_HEADER: &str = "X-Pocketlog-Webhook";
/// The 1-based attempt number of this delivery.
pub const ATTEMPT_HEADER: &str = "X-Pocketlog-Attempt";

/// Default timeout of one delivery request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Default first retry delay (doubled per failed attempt).
pub const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// Default largest retry delay.
pub const BACKOFF_CAP: Duration = Duration::from_secs(60);
/// Default attempts per event before it goes to the dead-letter list.
pub const MAX_ATTEMPTS: u32 = 8;

/// Delivery timing (the defaults are the constants above; tests shorten them).
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    /// Timeout of one request (connect to last body byte).
    pub timeout: Duration,
    /// Delay after the first failure.
    pub backoff_base: Duration,
    /// Largest delay.
    pub backoff_cap: Duration,
    /// Attempts before the event is dead-lettered.
    pub max_attempts: u32,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            timeout: REQUEST_TIMEOUT,
            backoff_base: BACKOFF_BASE,
            backoff_cap: BACKOFF_CAP,
            max_attempts: MAX_ATTEMPTS,
        }
    }
}

impl Tuning {
    /// The delay after failed attempt `attempt` (1-based): base·2^(attempt-1), capped.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(20);
        self.backoff_base
            .saturating_mul(factor)
            .min(self.backoff_cap)
    }
}

/// Counters of one endpoint (kept across task restarts).
#[derive(Debug, Default)]
pub struct Stats {
    /// Last position delivered or dead-lettered.
    pub cursor: AtomicU64,
    /// Events delivered.
    pub delivered: AtomicU64,
    /// Failed attempts.
    pub failed: AtomicU64,
    /// Events dead-lettered.
    pub dead: AtomicU64,
    /// Bumped when the cursor is moved from outside (a replay): a task only stores cursors
    /// while the epoch it started with is current.
    pub epoch: AtomicU64,
}

struct Running {
    config: Webhook,
    /// Set to ask the task to stop at the next event boundary.
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Asks the task to stop gracefully (an attempt in flight finishes, bounded by the request
    /// timeout); returns its handle so the next task of the endpoint can wait for it.
    fn retire(self) -> tokio::task::JoinHandle<()> {
        let _ = self.stop.send(true);
        self.task
    }
}

/// The webhook runtime held by `AppState`.
#[derive(Default)]
pub struct Webhooks {
    tuning: RwLock<Tuning>,
    store: OnceLock<Arc<Store>>,
    client: OnceLock<reqwest::Client>,
    running: Mutex<HashMap<String, Running>>,
    /// Tasks asked to stop, by endpoint: the endpoint's next task waits for its end first, so
    /// two tasks of one endpoint never deliver at the same time.
    retiring: Mutex<HashMap<String, tokio::task::JoinHandle<()>>>,
    stats: Mutex<HashMap<String, Arc<Stats>>>,
}

impl Webhooks {
    /// The delivery timing.
    pub fn tuning(&self) -> Tuning {
        *self.tuning.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the delivery timing (tasks read it per attempt).
    pub fn set_tuning(&self, tuning: Tuning) {
        *self.tuning.write().unwrap_or_else(|e| e.into_inner()) = tuning;
    }

    /// The auxiliary store, once [`start`] opened it.
    pub fn store(&self) -> Option<Arc<Store>> {
        self.store.get().cloned()
    }

    fn client(&self) -> reqwest::Client {
        self.client
            .get_or_init(|| {
                reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .user_agent(concat!("pocketlog-webhooks/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .unwrap_or_default()
            })
            .clone()
    }

    /// The counters of `id` (created on first use).
    pub fn stats(&self, id: &str) -> Arc<Stats> {
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(stats.entry(id.to_string()).or_default())
    }

    /// Stops every delivery task (a task stopped mid-delivery sends that event again later).
    pub fn stop(&self) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        for (_, run) in running.drain() {
            run.task.abort();
        }
        let mut retiring = self.retiring.lock().unwrap_or_else(|e| e.into_inner());
        for (_, task) in retiring.drain() {
            task.abort();
        }
    }

    /// Stops the task of `id` and retires its epoch (see [`Stats::epoch`]).
    pub fn halt(&self, id: &str) {
        if let Some(run) = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id)
        {
            self.retire(id, run);
        }
        self.stats(id).epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Drops the counters of a deleted webhook.
    pub fn forget(&self, id: &str) {
        self.halt(id);
        self.stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    fn retire(&self, id: &str, run: Running) {
        let task = run.retire();
        let mut retiring = self.retiring.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(older) = retiring.insert(id.to_string(), task) {
            // An even older task was still winding down: the newer one waits for neither.
            older.abort();
        }
    }

    /// Ids of the endpoints with a running delivery task.
    pub fn running_ids(&self) -> Vec<String> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let mut ids: Vec<String> = running.keys().cloned().collect();
        ids.sort();
        ids
    }
}

/// The caller whose view deliveries use (a superuser), for rule evaluation.
pub fn superuser_view(schema: &Schema) -> Option<Auth> {
    let collection = Arc::clone(schema.find(SUPERUSERS_ID)?);
    let mut record = Map::new();
    record.insert("id".into(), json!("webhooks"));
    Some(Auth { collection, record })
}

/// Opens the auxiliary store and starts a delivery task per active webhook. Idempotent.
pub async fn start(state: &Arc<AppState>) -> anyhow::Result<()> {
    if state.webhooks.store.get().is_none() {
        let dir = state.engine.dir().to_path_buf();
        let store = tokio::task::spawn_blocking(move || Store::open(&dir)).await??;
        let _ = state.webhooks.store.set(Arc::new(store));
    }
    reconcile(state)
        .await
        .map_err(|err| anyhow::anyhow!("loading the webhooks failed: {}", err.body()))?;
    Ok(())
}

/// Makes the running tasks match the configuration: starts new or changed active webhooks,
/// stops removed or paused ones. Does nothing before [`start`].
pub async fn reconcile(state: &Arc<AppState>) -> crate::error::ApiResult<()> {
    if state.webhooks.store.get().is_none() {
        return Ok(());
    }
    let reader = Arc::clone(state);
    let configs = tokio::task::spawn_blocking(move || config::load(&reader))
        .await
        .map_err(crate::error::ApiError::internal)??;
    let webhooks = &state.webhooks;
    let mut running = webhooks.running.lock().unwrap_or_else(|e| e.into_inner());
    let stale: Vec<String> = running
        .iter()
        .filter(|(id, run)| {
            !configs
                .iter()
                .any(|hook| &hook.id == *id && hook.active && *hook == run.config)
                || run.task.is_finished()
        })
        .map(|(id, _)| id.clone())
        .collect();
    for id in stale {
        if let Some(run) = running.remove(&id) {
            webhooks.retire(&id, run);
        }
    }
    for hook in configs.into_iter().filter(|hook| hook.active) {
        if running.contains_key(&hook.id) {
            continue;
        }
        let stats = webhooks.stats(&hook.id);
        let previous = webhooks
            .retiring
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&hook.id);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(delivery::run(
            Arc::clone(state),
            hook.clone(),
            stats,
            previous,
            stopped,
        ));
        tracing::debug!(webhook = %hook.id, "webhook delivery task started");
        running.insert(
            hook.id.clone(),
            Running {
                config: hook,
                stop,
                task,
            },
        );
    }
    Ok(())
}

/// One metric family: name, type, help, value of an endpoint's stats at a head.
type MetricFamily = (
    &'static str,
    &'static str,
    &'static str,
    fn(&Stats, u64) -> u64,
);

/// The webhook lines of `/api/metrics`: backlog (commits behind the head) and counters per
/// configured endpoint.
pub fn render_metrics(state: &AppState, out: &mut String) {
    use std::fmt::Write as _;
    let head = state.engine.published_seq();
    let stats: Vec<(String, Arc<Stats>)> = {
        let stats = state
            .webhooks
            .stats
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<_> = stats
            .iter()
            .map(|(id, s)| (id.clone(), Arc::clone(s)))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    };
    let families: [MetricFamily; 4] = [
        (
            "pocketlog_webhook_backlog_commits",
            "gauge",
            "Commits after the endpoint's cursor (not yet delivered or skipped).",
            |s, head| head.saturating_sub(s.cursor.load(Ordering::Relaxed)),
        ),
        (
            "pocketlog_webhook_delivered_total",
            "counter",
            "Events delivered since start.",
            |s, _| s.delivered.load(Ordering::Relaxed),
        ),
        (
            "pocketlog_webhook_failed_attempts_total",
            "counter",
            "Failed delivery attempts since start.",
            |s, _| s.failed.load(Ordering::Relaxed),
        ),
        (
            "pocketlog_webhook_dead_letters_total",
            "counter",
            "Events moved to the dead-letter list since start.",
            |s, _| s.dead.load(Ordering::Relaxed),
        ),
    ];
    for (name, kind, help, value) in families {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (id, stats) in &stats {
            let _ = writeln!(out, "{name}{{webhook=\"{id}\"}} {}", value(stats, head));
        }
    }
}
