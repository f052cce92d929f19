//! `POST /api/sql` `{"query": "…"}`: the read-only SQL console (superusers; `crate::sql`).

use super::common::{json_response, parse_body, Query};
use crate::error::ApiResult;
use crate::extract::SuperuserBody;
use crate::state::AppState;
use axum::extract::{Query as QueryExtract, State};
use axum::http::HeaderMap;
use axum::response::Response;
use std::sync::Arc;

/// Runs one read-only statement.
pub async fn sql_run(
    State(state): State<Arc<AppState>>,
    QueryExtract(query): QueryExtract<Query>,
    headers: HeaderMap,
    SuperuserBody(_auth, bytes): SuperuserBody,
) -> ApiResult<Response> {
    let body = parse_body(&headers, &bytes)?;
    Ok(json_response(&query, crate::sql::run(&state, &body).await?))
}
