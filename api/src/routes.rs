//! The one place that lists every path and method, plus the cross-cutting layers
//! (security headers, CORS, body limit, panic catching).

use crate::error::ApiError;
use crate::handlers::{
    auth, auth_flows, batch, collections, collections_extra, health, records, settings,
};
use crate::state::AppState;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

async fn fallback(method: Method) -> Response {
    if method == Method::GET {
        ApiError::new(StatusCode::NOT_FOUND, "File not found.").into_response()
    } else {
        ApiError::not_found().into_response()
    }
}

async fn security_headers(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let origin = request.headers().get("origin").cloned();
    let is_preflight = request.method() == Method::OPTIONS;
    let mut response = if is_preflight {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(request).await
    };
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        response = ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "Request entity too large.")
            .into_response();
    }
    let headers = response.headers_mut();
    headers.insert(
        "x-xss-protection",
        HeaderValue::from_static("1; mode=block"),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("x-frame-options", HeaderValue::from_static("SAMEORIGIN"));
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    headers.insert("vary", HeaderValue::from_static("Origin"));
    let allowed = origin.as_ref().and_then(|origin| {
        let origins = &state.options.origins;
        if origins.iter().any(|o| o == "*") {
            Some(HeaderValue::from_static("*"))
        } else {
            let text = origin.to_str().ok()?;
            origins.iter().any(|o| o == text).then(|| origin.clone())
        }
    });
    if let Some(allowed) = allowed {
        headers.insert("access-control-allow-origin", allowed);
        if is_preflight {
            headers.insert(
                "access-control-allow-methods",
                HeaderValue::from_static("GET,HEAD,PUT,PATCH,POST,DELETE"),
            );
            headers.insert(
                "access-control-allow-headers",
                HeaderValue::from_static("*"),
            );
        }
    }
    response
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::internal("a request handler panicked").into_response()
}

/// Builds the router: every route of [`routes`] under the cross-cutting layers.
pub fn router(state: Arc<AppState>) -> Router {
    with_layers(routes(), state)
}

/// Every path and method of the API (no layers, no state yet).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/health", get(health::health).head(health::health))
        .route(
            "/api/collections",
            get(collections::collections_list).post(collections::collections_create),
        )
        .route(
            "/api/collections/{c}",
            get(collections::collections_view)
                .patch(collections::collections_update)
                .delete(collections::collections_delete),
        )
        .route(
            "/api/collections/import",
            axum::routing::put(collections_extra::collections_import),
        )
        .route(
            "/api/collections/meta/scaffolds",
            get(collections_extra::collections_scaffolds),
        )
        .route(
            "/api/collections/{c}/truncate",
            axum::routing::delete(collections::collections_truncate),
        )
        .route(
            "/api/collections/{c}/records",
            get(records::records_list).post(records::records_create),
        )
        .route(
            "/api/collections/{c}/records/{id}",
            get(records::records_view)
                .patch(records::records_update)
                .delete(records::records_delete),
        )
        .route("/api/collections/{c}/auth-methods", get(auth::auth_methods))
        .route(
            "/api/collections/{c}/auth-with-password",
            post(auth::auth_with_password),
        )
        .route(
            "/api/collections/{c}/auth-refresh",
            post(auth::auth_refresh),
        )
        .route(
            "/api/collections/{c}/request-verification",
            post(auth_flows::request_verification),
        )
        .route(
            "/api/collections/{c}/confirm-verification",
            post(auth_flows::confirm_verification),
        )
        .route(
            "/api/collections/{c}/request-password-reset",
            post(auth_flows::request_password_reset),
        )
        .route(
            "/api/collections/{c}/confirm-password-reset",
            post(auth_flows::confirm_password_reset),
        )
        .route(
            "/api/collections/{c}/impersonate/{id}",
            post(auth_flows::impersonate),
        )
        .route("/api/files/token", post(auth_flows::files_token))
        .route("/api/batch", post(batch::batch))
        .route(
            "/api/settings",
            get(settings::settings_get).patch(settings::settings_update),
        )
        .merge(crate::dashboard::routes())
        .merge(crate::handlers::realtime::routes())
        .merge(crate::handlers::backups::routes())
        .merge(crate::handlers::installer::routes())
        .merge(crate::handlers::logs::routes())
        .fallback(fallback)
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
