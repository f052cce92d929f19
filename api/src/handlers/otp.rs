//! `POST /api/collections/{c}/request-otp` and `POST /api/collections/{c}/auth-with-otp`:
//! HTTP glue over [`crate::auth::otp`], which documents the answers and limits.

use super::auth::{auth_collection, auth_response};
use super::common::{json_response, parse_body, Query};
use crate::access;
use crate::auth::otp;
use crate::error::ApiResult;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query as QueryExtract, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{json, Map, Value};
use std::sync::Arc;

fn text(body: &Map<String, Value>, key: &str) -> String {
    body.get(key)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// `POST /api/collections/{c}/request-otp`
pub async fn request_otp(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    QueryExtract(query): QueryExtract<Query>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult<Response> {
    let collection = auth_collection(&state, &name)?;
    let body = parse_body(&headers, &bytes)?;
    let otp_id = otp::request(&state, &collection, &text(&body, "email")).await?;
    Ok(json_response(&query, json!({ "otpId": otp_id })))
}

/// `POST /api/collections/{c}/auth-with-otp`
pub async fn auth_with_otp(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    QueryExtract(query): QueryExtract<Query>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult<Response> {
    let collection = auth_collection(&state, &name)?;
    let body = parse_body(&headers, &bytes)?;
    let record = otp::authenticate(
        &state,
        &collection,
        &text(&body, "otpId"),
        &text(&body, "password"),
    )
    .await?;
    let token = access::issue_auth_token(&collection, &record, true, None);
    auth_response(&state, &collection, record, token, &query).await
}
