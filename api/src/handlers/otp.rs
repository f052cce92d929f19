//! `POST /api/collections/{c}/request-otp` and `POST /api/collections/{c}/auth-with-otp`:
//! HTTP glue over [`crate::auth::otp`], which documents the answers and limits; both this
//! and the password login run the MFA step of [`crate::auth::mfa`] after the factor.

use super::auth::{auth_collection, auth_response, check_auth_rule};
use super::common::{json_response, parse_body, Query};
use crate::access;
use crate::auth::{mfa, otp};
use crate::error::ApiResult;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query as QueryExtract, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
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
    extensions: axum::http::Extensions,
    bytes: Bytes,
) -> ApiResult<Response> {
    let collection = auth_collection(&state, &name)?;
    let body = parse_body(&headers, &bytes)?;
    // The SDK sends `mfaId` as a query parameter; a body field works too.
    let mut mfa_id = text(&body, "mfaId");
    if mfa_id.is_empty() {
        mfa_id = query.get("mfaId").cloned().unwrap_or_default();
    }
    // A code is not spent on an MFA session that cannot complete.
    mfa::precheck(&state, &collection, mfa::Method::Otp, &mfa_id).await?;
    let record = otp::authenticate(
        &state,
        &collection,
        &text(&body, "otpId"),
        &text(&body, "password"),
    )
    .await?;
    check_auth_rule(&state, &collection, &record).await?;
    if let mfa::Next::Pending(id) =
        mfa::after_factor(&state, &collection, &record, mfa::Method::Otp, &mfa_id).await?
    {
        return Ok(mfa_pending(&id));
    }
    super::origins::after_sign_in(&state, &collection, &record, &headers, &extensions).await;
    let token = access::issue_auth_token(&collection, &record, true, None);
    auth_response(
        &state,
        &collection,
        record,
        token,
        &query,
        super::auth::AuthMethod::Otp,
    )
    .await
}

/// The answer to a first factor when MFA is on: 401 `{"mfaId": …}` (no error envelope, as
/// the reference).
pub fn mfa_pending(id: &str) -> Response {
    (StatusCode::UNAUTHORIZED, axum::Json(json!({ "mfaId": id }))).into_response()
}
