//! `GET /api/crons` (the jobs, `[{"id","expression"}]`) and `POST /api/crons/{id}` (runs the
//! job now and answers 204 when it is done; 404 `Missing or invalid cron job.` for an unknown
//! id; 400 when the job fails). Superusers only.

use super::common::{json_response, no_content, Query};
use crate::error::{ApiError, ApiResult};
use crate::extract::Superuser;
use crate::state::AppState;
use axum::extract::{Path, Query as QueryExtract, State};
use axum::http::StatusCode;
use axum::response::Response;
use std::sync::Arc;

/// Lists the cron jobs.
pub async fn crons_list(
    State(state): State<Arc<AppState>>,
    QueryExtract(query): QueryExtract<Query>,
    _superuser: Superuser,
) -> Response {
    json_response(&query, crate::crons::list_json(&state))
}

/// Runs one job now.
pub async fn crons_run(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    _superuser: Superuser,
) -> ApiResult<Response> {
    match crate::crons::run(&state, &id).await {
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "Missing or invalid cron job.",
        )),
        Some(Ok(_)) => Ok(no_content()),
        Some(Err(err)) => {
            tracing::warn!(job = %id, error = format!("{err:#}"), "cron job run failed");
            Err(ApiError::bad_request("Failed to run the cron job."))
        }
    }
}
