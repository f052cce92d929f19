//! One endpoint's delivery task: reads committed commits from the endpoint's cursor, POSTs
//! each matching record event in log order, retries with backoff, dead-letters, advances the
//! cursor.
//!
//! 1. Order: one event at a time; the next event is sent only after the previous one was
//!    delivered or dead-lettered, so a receiver sees positions in increasing order (a retry
//!    repeats the same position).
//! 2. The cursor moves past a commit only when all its events are done, and is stored after
//!    that (per commit that had events, and at the end of each read batch), never before:
//!    a crash redelivers, it never skips.
//! 3. Memory: the task holds one read batch ([`READ_BATCH`] commits) at a time; commits it
//!    has not reached stay in the log.
//! 4. The filter is evaluated as for a superuser list request (no `@request.auth` identity),
//!    against the record as the change left it (the old values for a delete).

use super::config::Webhook;
use super::store::{Attempt, Store};
use super::{Stats, ATTEMPT_HEADER, POSITION_HEADER, SIGNATURE_HEADER, WEBHOOK_HEADER};
use crate::access::RequestData;
use crate::model::record::{format_ms, visible_json, Viewer};
use crate::model::schema::Rule;
use crate::realtime::render::{allowed, record_events, RecordEvent};
use crate::state::AppState;
use engine::Seq;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// Commits read from the stream per step.
pub const READ_BATCH: usize = 256;

/// `sha256=<hex>` of the HMAC-SHA256 of `body` keyed by `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; this arm is unreachable in practice.
        Err(_) => return String::new(),
    };
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + digest.len() * 2);
    out.push_str("sha256=");
    for byte in digest {
        use std::fmt::Write as _;
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// The task body: waits for the endpoint's previous task to end, then runs until the engine
/// closes, `stop` is set (checked between events, while waiting for commits and during a
/// backoff) or the task is aborted.
pub async fn run(
    state: Arc<AppState>,
    hook: Webhook,
    stats: Arc<Stats>,
    previous: Option<tokio::task::JoinHandle<()>>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    if let Some(previous) = previous {
        let _ = previous.await;
    }
    if let Err(err) = run_inner(&state, &hook, &stats, stop).await {
        tracing::warn!(webhook = %hook.id, error = format!("{err:#}"), "webhook delivery stopped");
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f).await?
}

async fn save_cursor(store: &Arc<Store>, stats: &Arc<Stats>, epoch: u64, id: &str, cursor: Seq) {
    let (store, stats, id) = (Arc::clone(store), Arc::clone(stats), id.to_string());
    let current = move || stats.epoch.load(Ordering::SeqCst) == epoch;
    if let Err(err) = blocking(move || Ok(store.set_cursor_if(&id, cursor, current)?)).await {
        tracing::warn!(
            error = format!("{err:#}"),
            "storing a webhook cursor failed"
        );
    }
}

/// Whether the task was asked to stop.
fn stopping(stop: &tokio::sync::watch::Receiver<bool>) -> bool {
    *stop.borrow()
}

async fn run_inner(
    state: &Arc<AppState>,
    hook: &Webhook,
    stats: &Arc<Stats>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let store = state
        .webhooks
        .store()
        .ok_or_else(|| anyhow::anyhow!("the webhook store is not open"))?;
    let epoch = stats.epoch.load(Ordering::SeqCst);
    let stored = {
        let (store, id) = (Arc::clone(&store), hook.id.clone());
        blocking(move || Ok(store.cursor(&id)?)).await?
    };
    let mut cursor = stored.unwrap_or(hook.since);
    let first = state.engine.log().first_seq();
    if cursor.saturating_add(1) < first {
        tracing::warn!(webhook = %hook.id, cursor, first,
            "the webhook's cursor is older than the retained log; continuing at its start");
        cursor = first.saturating_sub(1);
    }
    if stats.epoch.load(Ordering::SeqCst) == epoch {
        stats.cursor.store(cursor, Ordering::Relaxed);
    }
    let filter = match hook.filter.is_empty() {
        true => None,
        false => Some(rules::parse(&hook.filter).map_err(|err| anyhow::anyhow!("{err}"))?),
    };
    let mut subscription = state.engine.subscribe(cursor + 1)?;
    loop {
        let (back, batch) = tokio::task::spawn_blocking(move || {
            let batch = subscription.try_next_batch(READ_BATCH);
            (subscription, batch)
        })
        .await?;
        subscription = back;
        let batch = batch?;
        if batch.is_empty() {
            if subscription.is_closed() || stopping(&stop) {
                return Ok(());
            }
            tokio::select! {
                () = std::future::poll_fn(|cx| subscription.poll_ready(cx)) => {}
                _ = stop.changed() => return Ok(()),
            }
            continue;
        }
        for commit in batch {
            let schema = state.schema();
            let auth = super::superuser_view(&schema);
            let data = RequestData::default();
            let mut sent = false;
            for event in record_events(&schema, &commit) {
                if !hook.wants(&event.collection.id, event.action) {
                    continue;
                }
                if let Some(expr) = &filter {
                    let passes = allowed(
                        state,
                        &schema,
                        &event.collection,
                        &Rule::Open,
                        Some(expr),
                        &event.record,
                        auth.as_ref(),
                        &data,
                    )
                    .await;
                    if !passes {
                        continue;
                    }
                }
                if stopping(&stop) {
                    // Between events: what is done is stored, the rest comes after a restart.
                    return Ok(());
                }
                if !deliver(state, hook, stats, &store, commit.seq, &event, &mut stop).await {
                    return Ok(());
                }
                sent = true;
            }
            cursor = commit.seq;
            if stats.epoch.load(Ordering::SeqCst) == epoch {
                stats.cursor.store(cursor, Ordering::Relaxed);
            }
            if sent {
                save_cursor(&store, stats, epoch, &hook.id, cursor).await;
            }
        }
        save_cursor(&store, stats, epoch, &hook.id, cursor).await;
    }
}

/// The JSON body of one event.
pub fn body(position: Seq, event: &RecordEvent) -> Value {
    let viewer = Viewer {
        superuser: true,
        auth: None,
        manager: false,
    };
    json!({
        "position": position,
        "action": event.action,
        "collection": event.collection.name,
        "record": visible_json(&event.collection, &event.record, viewer),
    })
}

/// Delivers one event: attempts until a 2xx answer or the attempt limit (then a dead letter).
/// Returns false when asked to stop before the event was done (it is sent again later).
async fn deliver(
    state: &Arc<AppState>,
    hook: &Webhook,
    stats: &Stats,
    store: &Arc<Store>,
    position: Seq,
    event: &RecordEvent,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> bool {
    let body = body(position, event).to_string();
    let signature = signature(&hook.secret, body.as_bytes());
    let client = state.webhooks.client();
    let record_id = event
        .record
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let tuning = state.webhooks.tuning();
        let started = Instant::now();
        let result = client
            .post(&hook.url)
            .timeout(tuning.timeout)
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, &signature)
            .header(POSITION_HEADER, position.to_string())
            .header(WEBHOOK_HEADER, &hook.id)
            .header(ATTEMPT_HEADER, attempt.to_string())
            .body(body.clone())
            .send()
            .await;
        let (status, error) = match result {
            Ok(response) => {
                let status = response.status();
                // Read the answer (bounded by the same timeout) so the connection is reused.
                let read = response.bytes().await;
                match (status.is_success(), read) {
                    (true, Ok(_)) => (status.as_u16(), String::new()),
                    (true, Err(err)) => (status.as_u16(), describe(&err)),
                    (false, _) => (status.as_u16(), format!("HTTP {}", status.as_u16())),
                }
            }
            Err(err) => (0, describe(&err)),
        };
        let record = Attempt {
            hook: hook.id.clone(),
            position,
            action: event.action.to_string(),
            collection: event.collection.name.clone(),
            record: record_id.clone(),
            attempt,
            status,
            error: error.clone(),
            duration_ms: started.elapsed().as_millis() as u64,
            created: format_ms(chrono::Utc::now().timestamp_millis()),
        };
        let logged = {
            let (store, record) = (Arc::clone(store), record.clone());
            blocking(move || Ok(store.log_attempt(&record)?)).await
        };
        if let Err(err) = logged {
            tracing::warn!(
                error = format!("{err:#}"),
                "logging a webhook delivery failed"
            );
        }
        if error.is_empty() {
            stats.delivered.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        stats.failed.fetch_add(1, Ordering::Relaxed);
        if attempt >= tuning.max_attempts {
            tracing::warn!(webhook = %hook.id, position, attempts = attempt, error = %error,
                "webhook event dead-lettered");
            let (store, body) = (Arc::clone(store), body.clone());
            if let Err(err) = blocking(move || Ok(store.add_dead(&record, &body)?)).await {
                tracing::warn!(error = format!("{err:#}"), "storing a dead letter failed");
            }
            stats.dead.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        if stopping(stop) {
            return false;
        }
        tokio::select! {
            () = tokio::time::sleep(tuning.backoff(attempt)) => {}
            _ = stop.changed() => return false,
        }
    }
}

/// A short, secret-free description of a failed request.
fn describe(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "timeout".into()
    } else if err.is_connect() {
        "connection failed".into()
    } else if err.is_body() || err.is_decode() {
        "reading the answer failed".into()
    } else {
        "request failed".into()
    }
}
