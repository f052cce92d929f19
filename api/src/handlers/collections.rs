//! Collections API (superusers only): list, view, create, update, delete, truncate. HTTP glue
//! over the collections domain (`crate::collections`).
//!
//! Invariants: the superuser check comes first (after the request body is read, for the
//! routes that take one: an oversized body is a 413 before it), then the 404 of an unknown
//! collection; the schema follows every commit by itself (`AppState::write`).

use super::common::{json_response, list_envelope, no_content, paging, parse_body, Query};
use crate::collections;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Superuser, SuperuserBody};
use crate::state::AppState;
use axum::extract::{Path, Query as QueryExtract, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::Value;
use std::sync::Arc;

/// `GET /api/collections`
pub async fn collections_list(
    State(state): State<Arc<AppState>>,
    QueryExtract(query): QueryExtract<Query>,
    _superuser: Superuser,
) -> ApiResult<Response> {
    let paging = paging(&query)?;
    let schema = state.schema();
    let items = collections::list(
        &schema,
        query.get("filter").map(String::as_str),
        query.get("sort").map(String::as_str),
    )?;
    let total = items.len() as i64;
    let start = ((paging.page - 1) * paging.per_page).min(total) as usize;
    let page: Vec<Value> = items
        .into_iter()
        .skip(start)
        .take(paging.per_page as usize)
        .collect();
    Ok(json_response(
        &query,
        list_envelope(
            page,
            paging,
            if paging.skip_total { None } else { Some(total) },
        ),
    ))
}

/// `GET /api/collections/{c}`
pub async fn collections_view(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    QueryExtract(query): QueryExtract<Query>,
    _superuser: Superuser,
) -> ApiResult<Response> {
    let collection = collections::find(&state.schema(), &name)?;
    Ok(json_response(&query, collection.to_json()))
}

/// `POST /api/collections`
pub async fn collections_create(
    State(state): State<Arc<AppState>>,
    QueryExtract(query): QueryExtract<Query>,
    headers: HeaderMap,
    SuperuserBody(auth, bytes): SuperuserBody,
) -> ApiResult<Response> {
    let body = parse_body(&headers, &bytes)?;
    let collection = collections::create(&state, auth.actor(), &body).await?;
    Ok(json_response(&query, collection.to_json()))
}

/// `PATCH /api/collections/{c}`
pub async fn collections_update(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    QueryExtract(query): QueryExtract<Query>,
    headers: HeaderMap,
    SuperuserBody(auth, bytes): SuperuserBody,
) -> ApiResult<Response> {
    let body = parse_body(&headers, &bytes)?;
    let collection = collections::update(&state, auth.actor(), &name, &body).await?;
    Ok(json_response(&query, collection.to_json()))
}

/// `DELETE /api/collections/{c}`
pub async fn collections_delete(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Superuser(auth): Superuser,
) -> ApiResult<Response> {
    collections::delete(&state, auth.actor(), &name).await?;
    Ok(no_content())
}

/// Staged bytes after which a truncate commits and goes on in a new commit (well below the
/// frame limit, leaving room for the cascade of the record that crosses it).
const TRUNCATE_COMMIT_BYTES: u64 = 8 << 20;
/// Ids read per query while truncating.
const TRUNCATE_SELECT_ROWS: usize = 1000;

/// `DELETE /api/collections/{c}/truncate`
pub async fn collections_truncate(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Superuser(auth): Superuser,
) -> ApiResult<Response> {
    let schema = state.schema();
    let collection = collections::find(&schema, &name)?;
    if collection.is_view() {
        return Err(ApiError::bad_request("Unsupported collection type."));
    }
    // Each record goes through the same delete as the records API, so relations pointing at
    // it are cleaned up (or cascade-deleted) and a required reference refuses the truncate.
    // A commit must fit one log frame, so a large collection is truncated in several commits
    // of at most TRUNCATE_COMMIT_BYTES of staged changes each (every one atomic; a small
    // collection is one commit, all or nothing, as before).
    loop {
        let target = Arc::clone(&collection);
        let schema = Arc::clone(&schema);
        let more = state
            .write(auth.actor(), move |tx| {
                // By rowid, so every round moves on even past a row it could not delete.
                let sql = format!(
                    "SELECT rowid, id FROM {} WHERE rowid > ?1 ORDER BY rowid LIMIT {TRUNCATE_SELECT_ROWS}",
                    engine::quote_ident(&target.name)
                );
                let mut after = i64::MIN;
                loop {
                    let rows = tx
                        .query(&sql, &[engine::Value::Int(after)])
                        .map_err(ApiError::from)?;
                    if rows.rows.is_empty() {
                        return Ok(false);
                    }
                    for row in &rows.rows {
                        after = row[0].as_i64().unwrap_or(i64::MAX);
                        let id = row[1].as_str().unwrap_or("").to_string();
                        crate::records::delete_staged_with_references(
                            tx, &schema, &target, &id,
                        )?;
                        if tx.staged_bytes() >= TRUNCATE_COMMIT_BYTES {
                            return Ok(true);
                        }
                    }
                }
            })
            .await?
            .value;
        if !more {
            break;
        }
    }
    Ok(no_content())
}
