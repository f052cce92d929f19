//! `POST /api/collections/meta/dry-run-view` `{"query": "…"}`: a view query's fields and
//! sample rows without creating the view (superusers; `collections::view_fields::dry_run`).

use super::common::{json_response, parse_body, Query};
use crate::error::ApiResult;
use crate::extract::SuperuserBody;
use crate::state::AppState;
use axum::extract::{Query as QueryExtract, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::Value;
use std::sync::Arc;

/// Dry-runs a view query.
pub async fn dry_run_view(
    State(state): State<Arc<AppState>>,
    QueryExtract(query): QueryExtract<Query>,
    headers: HeaderMap,
    SuperuserBody(_auth, bytes): SuperuserBody,
) -> ApiResult<Response> {
    let body = parse_body(&headers, &bytes)?;
    let text = body.get("query").and_then(Value::as_str).unwrap_or("");
    let answer = crate::collections::view_fields::dry_run(&state, text).await?;
    Ok(json_response(&query, answer))
}
