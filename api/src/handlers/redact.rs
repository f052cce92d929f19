//! `POST /api/collections/{c}/records/{id}/redact` (superusers only): HTTP glue over
//! `crate::redact`, which erases a record's values from the log, the snapshots and the
//! projection.
//!
//! Invariant: the body is `{"fields": [names]}` (optional; empty or absent: the default
//! set); a body that is not that JSON is a 400; an unknown collection or record is a 404
//! (after the superuser check); the answer is the redaction's summary
//! `{collectionId, recordId, fields, position, commitsRewritten, segmentsRewritten,
//! snapshotsRewritten}`.

use crate::error::{ApiError, ApiResult};
use crate::extract::SuperuserBody;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RedactBody {
    #[serde(default)]
    fields: Vec<String>,
}

/// `POST /api/collections/{c}/records/{id}/redact`
pub async fn records_redact(
    State(state): State<Arc<AppState>>,
    Path((collection_ref, id)): Path<(String, String)>,
    SuperuserBody(auth, body): SuperuserBody,
) -> ApiResult<Response> {
    let schema = state.schema();
    let collection = schema
        .find(&collection_ref)
        .cloned()
        .ok_or_else(ApiError::not_found)?;
    let body: RedactBody = if body.iter().all(u8::is_ascii_whitespace) {
        RedactBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|_| ApiError::bad_request("The body must be {\"fields\": [field names]}."))?
    };
    let summary = crate::redact::redact(&state, collection, id, body.fields, auth.actor()).await?;
    Ok(axum::Json(summary).into_response())
}
