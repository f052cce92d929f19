//! `GET /api/collections/{c}/trash` (superusers only): HTTP glue over `crate::trash`, which
//! reads the deleted records of a collection from the log.
//!
//! Invariant: the answer is `{items, totalItems, firstSeq}`, newest delete first; an unknown
//! collection is a 404 (after the superuser check).

use crate::error::{ApiError, ApiResult};
use crate::extract::Superuser;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;

/// `GET /api/collections/{c}/trash`
pub async fn trash_list(
    State(state): State<Arc<AppState>>,
    Path(collection_ref): Path<String>,
    _superuser: Superuser,
) -> ApiResult<Response> {
    let schema = state.schema();
    let collection = schema
        .find(&collection_ref)
        .cloned()
        .ok_or_else(ApiError::not_found)?;
    let (items, first) = crate::trash::deleted(&state, collection).await?;
    Ok(axum::Json(json!({
        "items": items,
        "totalItems": items.len(),
        "firstSeq": first,
    }))
    .into_response())
}
