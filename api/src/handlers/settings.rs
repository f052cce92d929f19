//! `GET|PATCH /api/settings` (superusers only): HTTP glue over the settings domain
//! (`crate::settings`), which documents the load/merge/validate steps.
//!
//! Invariant: secrets are never returned (every answer goes through [`settings::redact`]).

use super::common::{json_response, parse_body, Query};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Superuser, SuperuserBody};
use crate::settings::{self, LOAD_FAILED};
use crate::state::AppState;
use axum::extract::{Query as QueryExtract, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::Value;
use std::sync::Arc;

/// `GET /api/settings`
pub async fn settings_get(
    State(state): State<Arc<AppState>>,
    QueryExtract(query): QueryExtract<Query>,
    _superuser: Superuser,
) -> ApiResult<Response> {
    Ok(json_response(
        &query,
        settings::redact((*state.settings()).clone()),
    ))
}

/// Reads the PATCH body: JSON (whatever the content type says) or form-encoded.
fn read_patch(headers: &HeaderMap, bytes: &[u8]) -> ApiResult<Value> {
    let form = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    let body = if form || bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Object(parse_body(headers, bytes)?)
    } else {
        serde_json::from_slice::<Value>(bytes).map_err(|_| ApiError::bad_request(LOAD_FAILED))?
    };
    match settings::conform(&body, &settings::template(), false) {
        Ok(Some(patch @ Value::Object(_))) => Ok(patch),
        _ => Err(ApiError::bad_request(LOAD_FAILED)),
    }
}

/// `PATCH /api/settings`
pub async fn settings_update(
    State(state): State<Arc<AppState>>,
    QueryExtract(query): QueryExtract<Query>,
    headers: HeaderMap,
    SuperuserBody(auth, bytes): SuperuserBody,
) -> ApiResult<Response> {
    let patch = read_patch(&headers, &bytes)?;
    let mut merged = (*state.settings()).clone();
    settings::merge(&mut merged, &patch);
    settings::save(&state, auth.actor(), merged.clone()).await?;
    Ok(json_response(&query, settings::redact(merged)))
}
