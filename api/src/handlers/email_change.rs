//! `POST /api/collections/{c}/request-email-change` (the record itself) and
//! `POST /api/collections/{c}/confirm-email-change`: HTTP glue over
//! [`crate::auth::email_change`], which documents the checks and answers.
//!
//! Invariant: a guest gets 401 and a record of another collection 403 (message naming the
//! caller's collection, as the reference) before the body is looked at.

use super::auth::auth_collection;
use super::common::{no_content, parse_body};
use crate::auth::email_change;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, GUEST_MESSAGE};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::Value;
use std::sync::Arc;

fn text(body: &serde_json::Map<String, Value>, key: &str) -> String {
    body.get(key)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// `POST /api/collections/{c}/request-email-change`
pub async fn request_email_change(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    caller: Caller,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult<Response> {
    let collection = auth_collection(&state, &name)?;
    let Some(auth) = caller.0 else {
        return Err(ApiError::unauthorized(GUEST_MESSAGE));
    };
    if auth.collection.id != collection.id {
        return Err(ApiError::forbidden(&format!(
            "The request requires auth record from {} collection.",
            auth.collection.name
        )));
    }
    let body = parse_body(&headers, &bytes)?;
    email_change::request(&state, &collection, &auth.record, &text(&body, "newEmail")).await?;
    Ok(no_content())
}

/// `POST /api/collections/{c}/confirm-email-change`
pub async fn confirm_email_change(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult<Response> {
    let collection = auth_collection(&state, &name)?;
    let body = parse_body(&headers, &bytes)?;
    email_change::confirm(
        &state,
        &collection,
        text(&body, "token"),
        text(&body, "password"),
    )
    .await?;
    Ok(no_content())
}
