//! Collections extras (superusers only): `GET /api/collections/meta/scaffolds` and
//! `PUT /api/collections/import`. HTTP glue over `crate::collections` (scaffolds are what a
//! create with an empty name would produce; `collections::import` documents the import's
//! invariants).

use super::common::{json_response, no_content, parse_body, Query};
use crate::collections;
use crate::error::ApiResult;
use crate::extract::{Superuser, SuperuserBody};
use crate::state::AppState;
use axum::extract::{Query as QueryExtract, State};
use axum::http::HeaderMap;
use axum::response::Response;
use std::sync::Arc;

/// `GET /api/collections/meta/scaffolds`
pub async fn collections_scaffolds(
    QueryExtract(query): QueryExtract<Query>,
    _superuser: Superuser,
) -> ApiResult<Response> {
    Ok(json_response(&query, collections::scaffolds()?))
}

/// `PUT /api/collections/import`
pub async fn collections_import(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    SuperuserBody(auth, bytes): SuperuserBody,
) -> ApiResult<Response> {
    let body = parse_body(&headers, &bytes)?;
    collections::import::import(&state, auth.actor(), &body).await?;
    Ok(no_content())
}
