//! Redaction through the API (the domain of `POST /api/collections/{c}/records/{id}/redact`,
//! whose handler is HTTP glue): validates the request against the collection, then has the
//! engine erase the values from the whole data dir (`engine/src/redact.rs`).
//!
//! 1. Superusers only (the handler's extractor); a view collection, an unknown field, `id`,
//!    or more than [`engine::REDACT_FIELDS_MAX`] fields are a 400 with field errors; a record
//!    that neither exists nor ever existed in the retained log is a 404. Nothing is written
//!    for any of them.
//! 2. No field named: the engine's default set (every field but `id`, `created`, `updated`,
//!    `tokenKey` and fields under a full unique index).
//! 3. The redaction commit goes through the writer like any write; the rewrite of history runs
//!    off the async runtime and blocks only other maintenance (snapshots, compaction).

use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::model::Collection;
use crate::state::AppState;
use serde_json::{json, Value};
use std::sync::Arc;

/// Erases `fields` (none: the default set) of record `id`; answers the redaction's summary.
pub async fn redact(
    state: &Arc<AppState>,
    collection: Arc<Collection>,
    id: String,
    fields: Vec<String>,
    actor: engine::Actor,
) -> ApiResult<Value> {
    if collection.is_view() {
        return Err(ApiError::bad_request(
            "View collections hold no records to redact.",
        ));
    }
    let mut errors = FieldErrors::default();
    if fields.len() > engine::REDACT_FIELDS_MAX {
        errors.add(
            "fields",
            "validation_too_many_values",
            &format!("At most {} fields.", engine::REDACT_FIELDS_MAX),
            None,
        );
    }
    for name in &fields {
        if name == "id" {
            errors.add(
                "fields",
                "validation_invalid_value",
                "The id field cannot be redacted.",
                None,
            );
        } else if collection.field(name).is_none() {
            errors.add(
                "fields",
                "validation_invalid_value",
                &format!("Unknown field {name:?}."),
                None,
            );
        }
    }
    if !errors.is_empty() {
        return Err(errors.into_error("Failed to redact the record."));
    }
    if !record_known(state, &collection, &id).await? {
        return Err(ApiError::not_found());
    }
    let engine = state.engine.clone();
    let collection_id = collection.id.clone();
    let record_id = id.clone();
    let report = tokio::task::spawn_blocking(move || {
        engine.redact(actor, &collection_id, &record_id, &fields)
    })
    .await
    .map_err(|err| ApiError::internal(err.to_string()))?;
    // Past states materialised for `asOf` may hold the erased values (issue #20).
    state.asof.clear();
    let report = match report {
        Ok(report) => report,
        Err(engine::Error::InvalidChange(reason)) => return Err(ApiError::bad_request(&reason)),
        Err(err) => return Err(err.into()),
    };
    let commit = state
        .engine
        .log()
        .read_from(report.seq, 1)
        .ok()
        .and_then(|commits| commits.into_iter().next());
    let erased = commit
        .iter()
        .flat_map(|commit| commit.changes.iter())
        .find_map(|change| match change {
            engine::Change::Redacted { fields, .. } => Some(fields.clone()),
            _ => None,
        })
        .unwrap_or_default();
    tracing::info!(
        collection = %collection.name,
        record = %id,
        seq = report.seq,
        fields = ?erased,
        "record redacted"
    );
    Ok(json!({
        "collectionId": collection.id,
        "recordId": id,
        "fields": erased,
        "position": report.seq,
        "commitsRewritten": report.commits_rewritten,
        "segmentsRewritten": report.segments_rewritten,
        "snapshotsRewritten": report.snapshots_rewritten,
    }))
}

/// Whether the record exists now or has a version in the retained log (a deleted record's
/// history is redactable too).
async fn record_known(
    state: &Arc<AppState>,
    collection: &Arc<Collection>,
    id: &str,
) -> ApiResult<bool> {
    let sql = format!(
        "SELECT 1 FROM {} WHERE id = ?1",
        engine::quote_ident(&collection.name)
    );
    let wanted = id.to_string();
    let engine = state.engine.clone();
    let exists = tokio::task::spawn_blocking(move || {
        engine.read(|conn| conn.query(&sql, &[engine::Value::Text(wanted)]))
    })
    .await
    .map_err(|err| ApiError::internal(err.to_string()))??;
    if !exists.is_empty() {
        return Ok(true);
    }
    let (versions, _) =
        crate::history::versions(state, Arc::clone(collection), id.to_string()).await?;
    Ok(!versions.is_empty())
}
