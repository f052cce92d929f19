//! `GET /api/collections/{c}/trash` and `POST /api/collections/{c}/records/{id}/restore`:
//! HTTP glue over `crate::trash`, which reads the deleted records of a collection from the
//! log and brings one back as a create commit (access by the collection's `restoreRule`).
//!
//! Invariants: the trash answer is `{items, totalItems, firstSeq}`, newest delete first; a
//! restore answers `{record, missingRelations, missingFiles, restoredFrom, position}`; an
//! unknown collection is a 404 (`records::find_collection`, shared with history and revert).

use super::common::Query;
use crate::access::RequestData;
use crate::error::ApiResult;
use crate::extract::Caller;
use crate::records::find_collection;
use crate::state::AppState;
use axum::extract::{Path, Query as QueryExtract, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;

/// `GET /api/collections/{c}/trash`
pub async fn trash_list(
    State(state): State<Arc<AppState>>,
    Path(collection_ref): Path<String>,
    QueryExtract(query): QueryExtract<Query>,
    caller: Caller,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let collection = find_collection(&state.schema(), &collection_ref)?;
    let data = RequestData::new("GET", &headers, &query);
    let (items, first) =
        crate::trash::deleted(&state, collection, caller.0.as_ref(), &data).await?;
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
    QueryExtract(query): QueryExtract<Query>,
    caller: Caller,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let collection = find_collection(&state.schema(), &collection_ref)?;
    let auth = caller.0.as_ref();
    let data = RequestData::new("POST", &headers, &query);
    let restored = crate::trash::restore(&state, Arc::clone(&collection), id, auth, data).await?;
    let mut items =
        crate::records::present(&state, auth, &collection, vec![restored.record], None).await?;
    Ok(axum::Json(json!({
        "record": items.pop().unwrap_or_default(),
        "missingRelations": restored.missing_relations,
        "missingFiles": restored.missing_files,
        "restoredFrom": restored.deleted_at_position,
        "position": restored.position,
    }))
    .into_response())
}
