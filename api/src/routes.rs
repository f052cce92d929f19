//! The one place that lists every path and method ([`routes`], a table read top to bottom),
//! plus the cross-cutting layers (security headers, CORS, body limit, panic catching).
//! Path strings of the API appear nowhere else in `api/src`: code that classifies paths (the
//! request log, the rate limiter's tags) takes its prefixes from the constants below.
//!
//! Routing as PocketBase answers it (measured on v0.40.6):
//! - A known path with a method it does not serve is answered like an unknown path: 404 with
//!   the JSON envelope (`File not found.` for GET/HEAD, the static catch-all; `The requested
//!   resource wasn't found.` otherwise), never a bare 405, and without an `Allow` header. Go
//!   matches method and path together, so a static path that lacks the method falls through
//!   to the parameterised sibling (`GET /api/collections/import` views the collection named
//!   `import`); [`shadowed_routes`] lists those siblings.
//! - CORS preflights (any `OPTIONS`) are answered before routing, the request log and the
//!   security headers: 204 with `Vary: Origin`, and for an allowed `Origin` the allowed
//!   origin, `GET,HEAD,PUT,PATCH,POST,DELETE` and the requested headers echoed (`*` would not
//!   cover `Authorization` in browsers). No max-age, no credentials, as the reference.

use crate::dashboard;
use crate::error::ApiError;
use crate::handlers::{
    auth, auth_flows, backups, batch, changes, cluster, collections, collections_extra, crons,
    email_change, files, health, history, hook_routes, installer, logs, mail, metrics, oauth2, otp,
    realtime, records, redact, settings, sql, trash, views, webhooks,
};
use crate::state::AppState;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Router;
use std::sync::Arc;

/// Prefix of every API path (the request log logs only these).
pub const API_PREFIX: &str = "/api/";
/// Prefix of the per-collection routes (records, auth, changes; rate-limit tags).
pub const COLLECTIONS_PREFIX: &str = "/api/collections/";
/// Prefix of the file routes (rate-limit tags).
pub const FILES_PREFIX: &str = "/api/files/";

/// [`fallback`] for a whole request (the hook routes' dispatcher falls back to it).
pub(crate) async fn fallback_request(
    state: Arc<AppState>,
    request: axum::extract::Request,
) -> Response {
    let (parts, _) = request.into_parts();
    fallback(
        axum::extract::State(state),
        parts.method,
        parts.uri,
        parts.headers,
    )
    .await
}

/// No route matched: GET and HEAD fall into the static files of the public dir
/// (`public.rs`, 404 `File not found.` when not served), other methods get the 404 envelope.
async fn fallback(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    method: Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return ApiError::not_found().into_response();
    }
    let Some(dir) = &state.options.public_dir else {
        return crate::public::not_found();
    };
    crate::public::serve(
        dir,
        state.options.index_fallback,
        &method,
        uri.path(),
        &headers,
    )
    .await
    .unwrap_or_else(crate::public::not_found)
}

/// A known path asked with a method it does not serve: the parameterised route the path also
/// matches, if it serves the method, else the [`fallback`].
async fn wrong_method(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    request: axum::extract::Request,
) -> Response {
    use tower::ServiceExt as _;
    match shadowed_routes().with_state(state).oneshot(request).await {
        Ok(response) => response,
        Err(infallible) => match infallible {},
    }
}

/// The parameterised routes that a static route hides from axum's path-first matching:
/// `/api/collections/import` (PUT) hides `/api/collections/{c}`, `/api/backups/upload` (POST)
/// hides `/api/backups/{key}`. Same handlers as in [`routes`].
fn shadowed_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/collections/{c}", collection_methods())
        .route("/api/backups/{key}", backup_methods())
        .method_not_allowed_fallback(fallback)
        .fallback(fallback)
}

/// The methods of `/api/collections/{c}`.
fn collection_methods() -> axum::routing::MethodRouter<Arc<AppState>> {
    get(collections::collections_view)
        .patch(collections::collections_update)
        .delete(collections::collections_delete)
}

/// The methods of `/api/backups/{key}`.
fn backup_methods() -> axum::routing::MethodRouter<Arc<AppState>> {
    get(backups::backups_download).delete(backups::backups_delete)
}

/// Whether `origin` is allowed by the `--origins` list: `*` allows any; an entry may contain
/// `*` wildcards (`https://*.example.com`), matched case-sensitively as the reference does.
fn origin_allowed(origins: &[String], origin: &str) -> bool {
    origins
        .iter()
        .any(|pattern| wildcard_match(pattern, origin))
}

/// Glob match where `*` stands for any run of characters (iterative, linear backtracking).
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (pattern, text) = (pattern.as_bytes(), text.as_bytes());
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// The `Access-Control-Allow-Origin` value for a request's `Origin`, if it is allowed.
fn allow_origin(state: &AppState, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
    let origin = origin?;
    let origins = &state.options.origins;
    if origins.iter().any(|o| o == "*") {
        return Some(HeaderValue::from_static("*"));
    }
    let text = origin.to_str().ok()?;
    origin_allowed(origins, text).then(|| origin.clone())
}

/// The outermost layer: answers CORS preflights (before the request log, as the reference,
/// which does not log them) and drops the `Allow` header axum adds to wrong-method answers.
async fn edge(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if request.method() == Method::OPTIONS {
        return preflight(&state, request.headers());
    }
    let mut response = next.run(request).await;
    response.headers_mut().remove(axum::http::header::ALLOW);
    response
}

/// A CORS preflight answer.
fn preflight(state: &AppState, request: &axum::http::HeaderMap) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert("vary", HeaderValue::from_static("Origin"));
    let Some(allowed) = allow_origin(state, request.get("origin")) else {
        return response;
    };
    headers.append(
        "vary",
        HeaderValue::from_static("Access-Control-Request-Method"),
    );
    headers.append(
        "vary",
        HeaderValue::from_static("Access-Control-Request-Headers"),
    );
    headers.insert("access-control-allow-origin", allowed);
    headers.insert(
        "access-control-allow-methods",
        HeaderValue::from_static("GET,HEAD,PUT,PATCH,POST,DELETE"),
    );
    // Echoed as sent (the first such header line, as the reference).
    if let Some(requested) = request.get("access-control-request-headers") {
        headers.insert("access-control-allow-headers", requested.clone());
    }
    response
}

async fn security_headers(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let origin = request.headers().get("origin").cloned();
    let mut response = next.run(request).await;
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        response = ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "Request entity too large.")
            .into_response();
    }
    let is_file = response
        .extensions()
        .get::<crate::files::serve::FileResponse>()
        .is_some();
    let headers = response.headers_mut();
    headers.insert(
        "x-xss-protection",
        HeaderValue::from_static("1; mode=block"),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    // File downloads carry no `X-Frame-Options` (as the reference).
    if !is_file {
        headers.insert("x-frame-options", HeaderValue::from_static("SAMEORIGIN"));
    }
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    headers.insert("vary", HeaderValue::from_static("Origin"));
    if let Some(allowed) = allow_origin(&state, origin.as_ref()) {
        headers.insert("access-control-allow-origin", allowed);
    }
    response
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::internal("a request handler panicked").into_response()
}

/// Builds the router: every route of [`routes`] under the cross-cutting layers, inside the
/// [`edge`] layer (which must see every request before routing: layers added with
/// `Router::layer` run per route, after the route is chosen).
pub fn router(state: Arc<AppState>) -> Router {
    let app = with_layers(routes(), Arc::clone(&state));
    let mut router = Router::new().fallback_service(app);
    if state.cluster.get().is_some() {
        router = router.layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            crate::cluster::forward::layer,
        ));
    }
    router.layer(axum::middleware::from_fn_with_state(state, edge))
}

/// Every path and method of the API (no layers, no state yet), one route per line.
#[rustfmt::skip]
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/health", get(health::health).head(health::health))
        // Collections (superusers).
        .route("/api/collections", get(collections::collections_list).post(collections::collections_create))
        .route("/api/collections/{c}", collection_methods())
        .route("/api/collections/import", put(collections_extra::collections_import))
        .route("/api/collections/meta/scaffolds", get(collections_extra::collections_scaffolds))
        .route("/api/collections/meta/dry-run-view", post(views::dry_run_view))
        .route("/api/collections/{c}/truncate", delete(collections::collections_truncate))
        // Records.
        .route("/api/collections/{c}/records", get(records::records_list).post(records::records_create))
        .route("/api/collections/{c}/records/{id}", get(records::records_view).patch(records::records_update).delete(records::records_delete))
        .route("/api/collections/{c}/records/{id}/history", get(history::records_history))
        .route("/api/collections/{c}/records/{id}/redact", post(redact::records_redact))
        .route("/api/collections/{c}/changes", get(changes::changes_list))
        .route("/api/collections/{c}/trash", get(trash::trash_list))
        .route("/api/collections/{c}/records/{id}/restore", post(trash::records_restore))
        .route("/api/collections/{c}/records/{id}/revert", post(history::records_revert))
        .route("/api/batch", post(batch::batch))
        // Auth.
        .route("/api/collections/{c}/auth-methods", get(auth::auth_methods))
        .route("/api/collections/{c}/auth-with-password", post(auth::auth_with_password))
        .route("/api/collections/{c}/auth-refresh", post(auth::auth_refresh))
        .route("/api/collections/{c}/request-verification", post(auth_flows::request_verification))
        .route("/api/collections/{c}/confirm-verification", post(auth_flows::confirm_verification))
        .route("/api/collections/{c}/request-password-reset", post(auth_flows::request_password_reset))
        .route("/api/collections/{c}/confirm-password-reset", post(auth_flows::confirm_password_reset))
        .route("/api/collections/{c}/request-email-change", post(email_change::request_email_change))
        .route("/api/collections/{c}/confirm-email-change", post(email_change::confirm_email_change))
        .route("/api/collections/{c}/request-otp", post(otp::request_otp))
        .route("/api/collections/{c}/auth-with-otp", post(otp::auth_with_otp))
        .route("/api/collections/{c}/auth-with-oauth2", post(oauth2::auth_with_oauth2))
        .route("/api/oauth2-redirect", get(oauth2::oauth2_redirect).post(oauth2::oauth2_redirect))
        .route("/api/collections/{c}/impersonate/{id}", post(auth_flows::impersonate))
        .route("/api/files/token", post(auth_flows::files_token))
        .route("/api/files/{c}/{id}/{filename}", get(files::download).head(files::download))
        // Realtime.
        .route("/api/realtime", get(realtime::realtime_connect).post(realtime::realtime_subscribe))
        // Settings, backups, logs, installer (superusers; the installer needs its link).
        .route("/api/settings", get(settings::settings_get).patch(settings::settings_update))
        .route("/api/settings/test/email", post(mail::settings_test_email))
        .route("/api/settings/test/s3", post(crate::handlers::settings_s3::settings_test_s3))
        .route("/api/backups", get(backups::backups_list).post(backups::backups_create))
        .route("/api/backups/upload", post(backups::backups_upload))
        .route("/api/backups/{key}", backup_methods())
        .route("/api/backups/{key}/restore", post(backups::backups_restore))
        .route("/api/logs", get(logs::logs_list).delete(logs::logs_delete))
        .route("/api/logs/stats", get(logs::logs_stats))
        .route("/api/logs/{id}", get(logs::logs_view))
        .route("/api/installer", post(installer::install))
        .route("/api/cluster", get(cluster::cluster_status))
        .route("/api/cluster/step-down", post(cluster::cluster_step_down))
        .route("/api/crons", get(crons::crons_list))
        .route("/api/crons/{id}", post(crons::crons_run))
        .route("/api/sql", post(sql::sql_run))
        .route("/api/metrics", get(metrics::metrics_get))
        .route("/api/webhooks", get(webhooks::webhooks_list).post(webhooks::webhooks_create))
        .route("/api/webhooks/{id}", get(webhooks::webhooks_view).patch(webhooks::webhooks_update).delete(webhooks::webhooks_delete))
        .route("/api/webhooks/{id}/replay", post(webhooks::webhooks_replay))
        .route("/api/webhooks/{id}/deliveries", get(webhooks::webhooks_deliveries))
        .route("/api/webhooks/{id}/dead", get(webhooks::webhooks_dead))
        // The dashboard.
        .route("/_", get(dashboard::redirect_to_dashboard))
        .route("/_/", get(dashboard::index))
        .route("/_/{*path}", get(dashboard::asset_or_index))
        .method_not_allowed_fallback(wrong_method)
        // Custom routes of the JS hooks (`routerAdd`), then static files.
        .fallback(hook_routes::dispatch)
}

/// Wraps routes in the cross-cutting layers (body limit, panic → 500, superuser IPs and rate
/// limits, security headers and CORS, request logs) and binds the state. Public so tests can check the layers on routes of
/// their own (e.g. one that panics).
pub fn with_layers(routes: Router<Arc<AppState>>, state: Arc<AppState>) -> Router {
    let body_limit = state.options.body_limit_bytes;
    routes
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            crate::metrics::middleware,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            crate::ratelimit::middleware,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            security_headers,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            crate::request_log::middleware,
        ))
        .with_state(state)
}
