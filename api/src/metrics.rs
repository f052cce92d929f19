//! `GET /api/metrics`: the server's metrics in the Prometheus text format (version 0.0.4).
//!
//! Who may scrape: a superuser, or a scraper presenting `Authorization: Bearer <token>` where
//! `<token>` is the value of the [`METRICS_TOKEN_ENV`] environment variable at `serve`
//! (`ServerOptions::metrics_token`; an environment variable rather than a flag so it does not
//! show in process listings; compared in constant time). Everyone else gets the superuser
//! route's 401/403.
//!
//! What is exported (all names prefixed `pocketlog_`):
//! - the log: head and first retained seq, segment count, commits appended;
//! - the writer: queue depth, group sizes and the append + fsync latency (histograms), failed
//!   groups; the projection lag (durable seq minus published seq);
//! - the fsync of the active segment alone (histogram), next to the append + fsync one;
//! - compaction and snapshots: runs since start, the time of the last compaction, whether one
//!   runs now; redactions finished and whether one runs now;
//! - replication: the lag behind the cluster's stream in positions and seconds (0 outside a
//!   cluster);
//! - realtime: sessions (connected and parked), frames queued in sessions, catch-ups started;
//! - a cluster node (`serve --cluster`): role, epoch, positions, lag (`cluster/metrics.rs`);
//! - HTTP: requests by route class, method class and status class, and their latency
//!   (histogram per route class), counted by [`middleware`].
//!
//! Invariants:
//! 1. The hot path is lock-free: the middleware classifies the matched route into a fixed
//!    [`RouteClass`] and bumps atomics of a fixed array ([`RequestMetrics`]); no map, no lock,
//!    no allocation per request.
//! 2. A scrape costs O(classes + buckets + sessions) loads and one string; it reads no SQLite
//!    and no log file.

use crate::state::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::Response;
use engine::{Histogram, HistogramSnapshot};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The environment variable that holds the scraper's bearer token.
pub const METRICS_TOKEN_ENV: &str = "POCKETLOG_METRICS_TOKEN";

/// The content type of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The classes requests are counted by (a fixed set, so the counters are a fixed array).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    /// `GET` of records (list, view, history, changes, trash).
    RecordsRead,
    /// Record writes (create, update, delete, restore, revert) and batch.
    RecordsWrite,
    /// Authentication flows and file tokens.
    Auth,
    /// `/api/realtime` (connect and subscribe).
    Realtime,
    /// File downloads.
    Files,
    /// Collections, settings, backups, logs, crons, SQL, metrics, installer.
    Admin,
    /// Health checks.
    Health,
    /// Everything else (dashboard, static files, unknown paths).
    Other,
}

impl RouteClass {
    /// Every class, in export order.
    pub const ALL: [RouteClass; 8] = [
        RouteClass::RecordsRead,
        RouteClass::RecordsWrite,
        RouteClass::Auth,
        RouteClass::Realtime,
        RouteClass::Files,
        RouteClass::Admin,
        RouteClass::Health,
        RouteClass::Other,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            RouteClass::RecordsRead => "records_read",
            RouteClass::RecordsWrite => "records_write",
            RouteClass::Auth => "auth",
            RouteClass::Realtime => "realtime",
            RouteClass::Files => "files",
            RouteClass::Admin => "admin",
            RouteClass::Health => "health",
            RouteClass::Other => "other",
        }
    }

    /// Classifies a request by its matched route template (`None`: no route matched), from
    /// its segments under [`crate::routes::API_PREFIX`] (no path is spelled here).
    pub fn of(template: Option<&str>, method: &Method) -> RouteClass {
        let Some(rest) = template.and_then(|path| path.strip_prefix(crate::routes::API_PREFIX))
        else {
            return RouteClass::Other;
        };
        let mut segments = rest.split('/');
        let first = segments.next().unwrap_or("");
        let second = segments.next().unwrap_or("");
        let third = segments.next().unwrap_or("");
        let read = *method == Method::GET || *method == Method::HEAD;
        match (first, second, third) {
            ("health", _, _) => RouteClass::Health,
            ("realtime", _, _) => RouteClass::Realtime,
            ("files", "token", _) => RouteClass::Auth,
            ("files", _, _) => RouteClass::Files,
            ("batch", _, _) => RouteClass::RecordsWrite,
            ("collections", _, "records" | "changes" | "trash") if read => RouteClass::RecordsRead,
            ("collections", _, "records") => RouteClass::RecordsWrite,
            ("collections", _, tail)
                if tail.starts_with("auth")
                    || tail.starts_with("request-")
                    || tail.starts_with("confirm-")
                    || tail == "impersonate" =>
            {
                RouteClass::Auth
            }
            _ => RouteClass::Admin,
        }
    }

    fn index(self) -> usize {
        RouteClass::ALL
            .iter()
            .position(|class| *class == self)
            .unwrap_or(RouteClass::ALL.len() - 1)
    }
}

/// Status classes counted per route class.
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
/// Method classes counted per route class.
const METHOD_CLASSES: [&str; 2] = ["read", "write"];

/// Per route class: counters by method class and status class, and a latency histogram.
struct ClassStats {
    counts: [[AtomicU64; STATUS_CLASSES.len()]; METHOD_CLASSES.len()],
    latency: Histogram,
}

impl Default for ClassStats {
    fn default() -> Self {
        ClassStats {
            counts: Default::default(),
            latency: Histogram::latency(),
        }
    }
}

/// The HTTP request metrics (one per server, in `AppState`).
pub struct RequestMetrics {
    classes: Vec<ClassStats>,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        RequestMetrics {
            classes: RouteClass::ALL
                .iter()
                .map(|_| ClassStats::default())
                .collect(),
        }
    }
}

impl std::fmt::Debug for RequestMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestMetrics").finish_non_exhaustive()
    }
}

impl RequestMetrics {
    /// Counts one answered request.
    pub fn record(&self, class: RouteClass, method: &Method, status: u16, seconds: f64) {
        let Some(stats) = self.classes.get(class.index()) else {
            return;
        };
        let method_class = usize::from(!(*method == Method::GET || *method == Method::HEAD));
        let status_class = usize::from(status / 100).clamp(1, 5) - 1;
        stats.counts[method_class][status_class].fetch_add(1, Ordering::Relaxed);
        stats.latency.observe(seconds);
    }
}

/// The layer that counts every routed request (added in `routes::with_layers`).
pub async fn middleware(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let class = RouteClass::of(
        request
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str),
        request.method(),
    );
    let method = request.method().clone();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    state.request_metrics.record(
        class,
        &method,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// Whether `headers` carry the configured scraper token (constant-time comparison).
pub fn scraper_allowed(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(expected) = state
        .options
        .metrics_token
        .as_deref()
        .filter(|t| !t.is_empty())
    else {
        return false;
    };
    let Some(presented) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
    else {
        return false;
    };
    let (a, b) = (expected.as_bytes(), presented.trim().as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn write_help(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn write_value(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    value: impl std::fmt::Display,
) {
    write_help(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

fn format_bound(bound: f64) -> String {
    if bound.is_infinite() {
        "+Inf".into()
    } else {
        format!("{bound}")
    }
}

fn write_histogram(out: &mut String, name: &str, labels: &str, snapshot: &HistogramSnapshot) {
    let separator = if labels.is_empty() { "" } else { "," };
    for (bound, count) in &snapshot.buckets {
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{separator}le=\"{}\"}} {count}",
            format_bound(*bound)
        );
    }
    let braces = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    };
    let _ = writeln!(out, "{name}_sum{braces} {}", snapshot.sum);
    let _ = writeln!(out, "{name}_count{braces} {}", snapshot.count);
}

/// Renders every metric in the text format.
pub fn render(state: &AppState) -> String {
    let engine = &state.engine;
    let metrics = engine.metrics();
    let mut out = String::with_capacity(8 * 1024);
    let head = engine.last_seq();
    let published = engine.published_seq();
    write_value(
        &mut out,
        "pocketlog_log_head_seq",
        "gauge",
        "Last durable log position.",
        head,
    );
    write_value(
        &mut out,
        "pocketlog_log_first_seq",
        "gauge",
        "First log position still retained.",
        engine.log().first_seq(),
    );
    write_value(
        &mut out,
        "pocketlog_log_segments",
        "gauge",
        "Log segment files.",
        engine.segment_count(),
    );
    write_value(
        &mut out,
        "pocketlog_commits_total",
        "counter",
        "Commits appended since start.",
        metrics.commits.load(Ordering::Relaxed),
    );
    write_value(
        &mut out,
        "pocketlog_writer_queue_depth",
        "gauge",
        "Commands queued for the writer.",
        metrics.queue_depth(),
    );
    write_value(
        &mut out,
        "pocketlog_writer_failed_groups_total",
        "counter",
        "Write groups that failed as a whole.",
        metrics.failed_groups.load(Ordering::Relaxed),
    );
    write_value(
        &mut out,
        "pocketlog_projection_lag_commits",
        "gauge",
        "Durable commits not yet published (applied) to readers and subscribers.",
        head.saturating_sub(published),
    );
    write_help(
        &mut out,
        "pocketlog_log_append_seconds",
        "histogram",
        "Duration of a write group's log append including fsync.",
    );
    write_histogram(
        &mut out,
        "pocketlog_log_append_seconds",
        "",
        &metrics.append_seconds.snapshot(),
    );
    write_help(
        &mut out,
        "pocketlog_log_fsync_seconds",
        "histogram",
        "Duration of the fsync of the active log segment, once per write group.",
    );
    write_histogram(
        &mut out,
        "pocketlog_log_fsync_seconds",
        "",
        &engine.log().fsync_seconds(),
    );
    write_help(
        &mut out,
        "pocketlog_writer_group_size",
        "histogram",
        "Commands per write group (one fsync each).",
    );
    write_histogram(
        &mut out,
        "pocketlog_writer_group_size",
        "",
        &metrics.group_size.snapshot(),
    );
    write_value(
        &mut out,
        "pocketlog_compactions_total",
        "counter",
        "Compactions run since start.",
        metrics.compactions.load(Ordering::Relaxed),
    );
    write_value(
        &mut out,
        "pocketlog_last_compaction_timestamp_seconds",
        "gauge",
        "Unix time of the last compaction (0 = none since start).",
        metrics.last_compaction_ms.load(Ordering::Relaxed) / 1000,
    );
    write_value(
        &mut out,
        "pocketlog_snapshots_total",
        "counter",
        "Snapshots cut since start.",
        metrics.snapshots.load(Ordering::Relaxed),
    );
    write_value(
        &mut out,
        "pocketlog_compaction_running",
        "gauge",
        "1 while a compaction runs.",
        metrics.compacting.load(Ordering::Relaxed),
    );
    write_value(
        &mut out,
        "pocketlog_redactions_total",
        "counter",
        "Redactions finished since start.",
        metrics.redactions.load(Ordering::Relaxed),
    );
    write_value(
        &mut out,
        "pocketlog_redaction_running",
        "gauge",
        "1 while a redaction rewrites history.",
        metrics.redacting.load(Ordering::Relaxed),
    );
    // Replication: a node outside a cluster has no lag.
    let (lag_commits, lag_seconds) = state.cluster.get().map_or((0, 0.0), |cluster| {
        let status = cluster.status();
        (status.lag_positions, status.lag_ms as f64 / 1000.0)
    });
    write_value(
        &mut out,
        "pocketlog_replica_lag_commits",
        "gauge",
        "Log positions this node is behind the cluster's stream (0 outside a cluster).",
        lag_commits,
    );
    write_value(
        &mut out,
        "pocketlog_replica_lag_seconds",
        "gauge",
        "Seconds between the last applied replicated commit's time and its apply here.",
        lag_seconds,
    );
    let realtime = state.realtime.stats();
    write_value(
        &mut out,
        "pocketlog_realtime_sessions",
        "gauge",
        "Realtime sessions (connected and parked).",
        realtime.sessions,
    );
    write_value(
        &mut out,
        "pocketlog_realtime_sessions_parked",
        "gauge",
        "Realtime sessions waiting for a resume.",
        realtime.parked,
    );
    write_value(
        &mut out,
        "pocketlog_realtime_queued_frames",
        "gauge",
        "Frames queued in realtime sessions.",
        realtime.queued_frames,
    );
    write_value(
        &mut out,
        "pocketlog_realtime_catch_ups_total",
        "counter",
        "Log catch-ups started by realtime sessions.",
        state.realtime.catch_ups_started(),
    );
    write_value(
        &mut out,
        "pocketlog_request_log_dropped_total",
        "counter",
        "Request log entries dropped because the queue was full.",
        state.logs.dropped(),
    );
    write_help(
        &mut out,
        "pocketlog_http_requests_total",
        "counter",
        "HTTP requests answered, by route class, method class and status class.",
    );
    for (class, stats) in RouteClass::ALL.iter().zip(&state.request_metrics.classes) {
        for (method_index, method) in METHOD_CLASSES.iter().enumerate() {
            for (status_index, status) in STATUS_CLASSES.iter().enumerate() {
                let count = stats.counts[method_index][status_index].load(Ordering::Relaxed);
                if count > 0 {
                    let _ = writeln!(
                        out,
                        "pocketlog_http_requests_total{{class=\"{}\",method=\"{method}\",code=\"{status}\"}} {count}",
                        class.label()
                    );
                }
            }
        }
    }
    write_help(
        &mut out,
        "pocketlog_http_request_seconds",
        "histogram",
        "HTTP request latency by route class.",
    );
    for (class, stats) in RouteClass::ALL.iter().zip(&state.request_metrics.classes) {
        let labels = format!("class=\"{}\"", class.label());
        write_histogram(
            &mut out,
            "pocketlog_http_request_seconds",
            &labels,
            &stats.latency.snapshot(),
        );
    }
    crate::webhooks::render_metrics(state, &mut out);
    if let Some(node) = state.cluster.get() {
        node.write_metrics(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_routes() {
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(
            RouteClass::of(Some("/api/collections/{c}/records"), &get),
            RouteClass::RecordsRead
        );
        assert_eq!(
            RouteClass::of(Some("/api/collections/{c}/records/{id}"), &Method::PATCH),
            RouteClass::RecordsWrite
        );
        assert_eq!(
            RouteClass::of(Some("/api/collections/{c}/auth-with-password"), &post),
            RouteClass::Auth
        );
        assert_eq!(
            RouteClass::of(Some("/api/collections/{c}"), &get),
            RouteClass::Admin
        );
        assert_eq!(
            RouteClass::of(Some("/api/realtime"), &post),
            RouteClass::Realtime
        );
        assert_eq!(
            RouteClass::of(Some("/api/files/{c}/{id}/{filename}"), &get),
            RouteClass::Files
        );
        assert_eq!(
            RouteClass::of(Some("/api/files/token"), &post),
            RouteClass::Auth
        );
        assert_eq!(
            RouteClass::of(Some("/api/health"), &get),
            RouteClass::Health
        );
        assert_eq!(RouteClass::of(None, &get), RouteClass::Other);
    }
}
