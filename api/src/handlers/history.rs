//! `GET /api/collections/{c}/records/{id}/history` (superusers only) and
//! `POST /api/collections/{c}/records/{id}/revert {"position": N}`: HTTP glue over
//! `crate::history`, which reads every version of a record from the log and writes one back.
//!
//! Invariants: the history answer is `{items, totalItems, firstSeq}`; a revert answers
//! `{record, missingRelations, revertedTo, position}`; a body without a non-negative integer
//! `position` is a 400 with a field error; an unknown collection is a 404
//! (`records::find_collection`, shared with the trash).

use super::common::Query;
use crate::access::RequestData;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::extract::{Caller, Superuser};
use crate::records::find_collection;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query as QueryExtract, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::sync::Arc;

/// `GET /api/collections/{c}/records/{id}/history`
pub async fn records_history(
    State(state): State<Arc<AppState>>,
    Path((collection_ref, id)): Path<(String, String)>,
    _superuser: Superuser,
) -> ApiResult<Response> {
    let collection = find_collection(&state.schema(), &collection_ref)?;
    let (items, first) = crate::history::versions(&state, collection, id).await?;
    Ok(axum::Json(json!({
        "items": items,
        "totalItems": items.len(),
        "firstSeq": first,
    }))
    .into_response())
}

/// `POST /api/collections/{c}/records/{id}/revert`
pub async fn records_revert(
    State(state): State<Arc<AppState>>,
    Path((collection_ref, id)): Path<(String, String)>,
    QueryExtract(query): QueryExtract<Query>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let collection = find_collection(&state.schema(), &collection_ref)?;
    let position = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(map)) => map.get("position").cloned(),
        _ if body.is_empty() => None,
        _ => {
            return Err(ApiError::bad_request(
                "Failed to load the submitted data due to invalid formatting.",
            ))
        }
    };
    let position = match position {
        Some(value) => value.as_u64().ok_or(Some(value)),
        None => Err(None),
    };
    let position = match position {
        Ok(position) => position,
        Err(value) => {
            let mut errors = FieldErrors::default();
            match value {
                None | Some(Value::Null) => {
                    errors.add("position", "validation_required", "Cannot be blank.", None)
                }
                Some(_) => errors.add(
                    "position",
                    "validation_invalid_position",
                    "Must be a log position (a non-negative integer).",
                    None,
                ),
            }
            return Err(errors.into_error("Failed to revert record."));
        }
    };
    let auth = caller.0.as_ref();
    let data = RequestData::new("POST", &headers, &query);
    let reverted =
        crate::history::revert(&state, Arc::clone(&collection), id, position, auth, data).await?;
    let mut items =
        crate::records::present(&state, auth, &collection, vec![reverted.record], None).await?;
    Ok(axum::Json(json!({
        "record": items.pop().unwrap_or_default(),
        "missingRelations": reverted.missing_relations,
        "revertedTo": reverted.version,
        "position": reverted.position,
    }))
    .into_response())
}
