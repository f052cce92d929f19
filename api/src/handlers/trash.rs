//! `GET /api/collections/{c}/trash` and `POST /api/collections/{c}/records/{id}/restore`
//! (superusers only): HTTP glue over `crate::trash`, which reads the deleted records of a
//! collection from the log and brings one back as a create commit.
//!
//! Invariants: the trash answer is `{items, totalItems, firstSeq}`, newest delete first; a
//! restore answers `{record, missingRelations, missingFiles, restoredFrom, position}`; an
//! unknown collection is a 404 (after the superuser check).

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

/// `POST /api/collections/{c}/records/{id}/restore`
pub async fn records_restore(
    State(state): State<Arc<AppState>>,
    Path((collection_ref, id)): Path<(String, String)>,
    superuser: Superuser,
) -> ApiResult<Response> {
    let schema = state.schema();
    let collection = schema
        .find(&collection_ref)
        .cloned()
        .ok_or_else(ApiError::not_found)?;
    let auth = superuser.0;
    let restored = crate::trash::restore(&state, Arc::clone(&collection), id, auth.actor()).await?;
    let mut items = crate::records::present(
        &state,
        Some(&auth),
        &collection,
        vec![restored.record],
        None,
    )
    .await?;
    Ok(axum::Json(json!({
        "record": items.pop().unwrap_or_default(),
        "missingRelations": restored.missing_relations,
        "missingFiles": restored.missing_files,
        "restoredFrom": restored.deleted_at_position,
        "position": restored.position,
    }))
    .into_response())
}
