//! `POST /api/settings/test/s3` (superusers only): HTTP glue over `crate::settings::s3`.

use super::common::parse_body;
use crate::error::ApiResult;
use crate::extract::SuperuserBody;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// `POST /api/settings/test/s3` — `{"filesystem": "storage" | "backups"}`
pub async fn settings_test_s3(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    SuperuserBody(_auth, bytes): SuperuserBody,
) -> ApiResult<Response> {
    let body = parse_body(&headers, &bytes)?;
    crate::settings::s3::test(&state, &body).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
