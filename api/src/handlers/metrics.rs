//! `GET /api/metrics`: HTTP glue over `crate::metrics` (superusers, or the scraper token).

use crate::error::ApiResult;
use crate::metrics::{render, scraper_allowed, CONTENT_TYPE};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// `GET /api/metrics` (superusers or the configured scraper token).
pub async fn metrics_get(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if !scraper_allowed(&state, &headers) {
        let auth = crate::access::authenticate(&state, &headers).await;
        crate::extract::require_superuser(auth)?;
    }
    let body = render(&state);
    let mut response = body.into_response();
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static(CONTENT_TYPE),
    );
    Ok(response)
}
