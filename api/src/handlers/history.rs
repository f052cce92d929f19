//! `GET /api/collections/{c}/records/{id}/history` (superusers only): HTTP glue over
//! `crate::history`, which reads every version of a record from the log.
//!
//! Invariant: the answer is `{items, totalItems, firstSeq}`; an unknown collection is a 404
//! (after the superuser check).

use crate::error::{ApiError, ApiResult};
use crate::extract::Superuser;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;

/// `GET /api/collections/{c}/records/{id}/history`
pub async fn records_history(
    State(state): State<Arc<AppState>>,
    Path((collection_ref, id)): Path<(String, String)>,
    _superuser: Superuser,
) -> ApiResult<Response> {
    let schema = state.schema();
    let collection = schema
        .find(&collection_ref)
        .cloned()
        .ok_or_else(ApiError::not_found)?;
    let (items, first) = crate::history::versions(&state, collection, id).await?;
    Ok(axum::Json(json!({
        "items": items,
        "totalItems": items.len(),
        "firstSeq": first,
    }))
    .into_response())
}
