//! `/api/webhooks`: superuser CRUD of webhooks, `POST …/{id}/replay`, and the delivery log
//! (`…/{id}/deliveries`) and dead letters (`…/{id}/dead`). HTTP glue over `crate::webhooks`.
//!
//! Shapes follow PocketBase's conventions: a list envelope, 404 `The requested resource
//! wasn't found.` for an unknown id, 400 with per-field `data` for bad input, 204 on delete.
//! The secret is never returned (`hasSecret` only).

use super::common::{json_response, list_envelope, no_content, parse_body, Paging, Query};
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::extract::{Superuser, SuperuserBody};
use crate::state::AppState;
use crate::webhooks::{self, config};
use axum::extract::{Path, Query as QueryExtract, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Default number of delivery-log rows or dead letters returned.
pub const LOG_PER_PAGE_DEFAULT: usize = 100;
/// Most delivery-log rows or dead letters returned at once.
pub const LOG_PER_PAGE_MAX: usize = 1000;

fn view(state: &AppState, hook: &config::Webhook) -> Value {
    let mut value = hook.to_json(&state.schema());
    let stats = state.webhooks.stats(&hook.id);
    let cursor = stats.cursor.load(Ordering::Relaxed).max(hook.since);
    value["cursor"] = json!(cursor);
    value["backlog"] = json!(state.engine.published_seq().saturating_sub(cursor));
    value
}

fn find(items: &[config::Webhook], id: &str) -> ApiResult<usize> {
    items
        .iter()
        .position(|hook| hook.id == id)
        .ok_or_else(ApiError::not_found)
}

/// `GET /api/webhooks`.
pub async fn webhooks_list(
    State(state): State<Arc<AppState>>,
    QueryExtract(query): QueryExtract<Query>,
    _superuser: Superuser,
) -> ApiResult<Response> {
    let reader = Arc::clone(&state);
    let items = tokio::task::spawn_blocking(move || config::load(&reader))
        .await
        .map_err(ApiError::internal)??;
    let total = items.len() as i64;
    let items: Vec<Value> = items.iter().map(|hook| view(&state, hook)).collect();
    let paging = Paging {
        page: 1,
        per_page: total.max(1),
        skip_total: false,
    };
    Ok(json_response(
        &query,
        list_envelope(items, paging, Some(total)),
    ))
}

/// `POST /api/webhooks`.
pub async fn webhooks_create(
    State(state): State<Arc<AppState>>,
    QueryExtract(query): QueryExtract<Query>,
    headers: HeaderMap,
    SuperuserBody(auth, bytes): SuperuserBody,
) -> ApiResult<Response> {
    let body = parse_body(&headers, &bytes)?;
    let schema = state.schema();
    let since = state.engine.published_seq();
    let now = chrono::Utc::now().timestamp_millis();
    let hook = config::from_body(&schema, &body, None, now, since)?;
    let stored = hook.clone();
    config::modify(&state, auth.actor(), move |items| {
        if items.len() >= config::WEBHOOKS_MAX {
            return Err(ApiError::bad_request(&format!(
                "A server keeps at most {} webhooks.",
                config::WEBHOOKS_MAX
            )));
        }
        items.push(stored);
        Ok(())
    })
    .await?;
    webhooks::reconcile(&state).await?;
    Ok(json_response(&query, view(&state, &hook)))
}

/// `GET /api/webhooks/{id}`.
pub async fn webhooks_view(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    QueryExtract(query): QueryExtract<Query>,
    _superuser: Superuser,
) -> ApiResult<Response> {
    let items = config::load(&state)?;
    let index = find(&items, &id)?;
    Ok(json_response(&query, view(&state, &items[index])))
}

/// `PATCH /api/webhooks/{id}` (a missing or empty `secret` keeps the stored one).
pub async fn webhooks_update(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    QueryExtract(query): QueryExtract<Query>,
    headers: HeaderMap,
    SuperuserBody(auth, bytes): SuperuserBody,
) -> ApiResult<Response> {
    let body = parse_body(&headers, &bytes)?;
    let schema = state.schema();
    let now = chrono::Utc::now().timestamp_millis();
    let hook = config::modify(&state, auth.actor(), move |items| {
        let index = find(items, &id)?;
        let updated = config::from_body(&schema, &body, Some(&items[index]), now, 0)?;
        items[index] = updated.clone();
        Ok(updated)
    })
    .await?;
    webhooks::reconcile(&state).await?;
    Ok(json_response(&query, view(&state, &hook)))
}

/// `DELETE /api/webhooks/{id}` (its cursor, delivery log and dead letters go too).
pub async fn webhooks_delete(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Superuser(auth): Superuser,
) -> ApiResult<Response> {
    let target = id.clone();
    config::modify(&state, auth.actor(), move |items| {
        let index = find(items, &target)?;
        items.remove(index);
        Ok(())
    })
    .await?;
    webhooks::reconcile(&state).await?;
    state.webhooks.forget(&id);
    if let Some(store) = state.webhooks.store() {
        tokio::task::spawn_blocking(move || store.forget(&id))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
    }
    Ok(no_content())
}

/// `POST /api/webhooks/{id}/replay {"from": position}`: delivers again every matching event
/// at `from` and after (the cursor moves to `from - 1`).
pub async fn webhooks_replay(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    QueryExtract(query): QueryExtract<Query>,
    headers: HeaderMap,
    SuperuserBody(_auth, bytes): SuperuserBody,
) -> ApiResult<Response> {
    let body = parse_body(&headers, &bytes)?;
    let items = config::load(&state)?;
    let index = find(&items, &id)?;
    let head = state.engine.published_seq();
    let first = state.engine.log().first_seq();
    let from = body.get("from").and_then(Value::as_u64);
    let mut errors = FieldErrors::default();
    match from {
        None => errors.add(
            "from",
            "validation_invalid_position",
            "Must be a non-negative integer log position.",
            None,
        ),
        Some(from) if from > head.saturating_add(1) => errors.add(
            "from",
            "validation_invalid_position",
            "Must not be after the log head.",
            Some(json!({"head": head})),
        ),
        Some(from) if from < first && from > 0 => errors.add(
            "from",
            "validation_position_compacted",
            "The history before this position was compacted away.",
            Some(json!({"firstPosition": first})),
        ),
        Some(_) => {}
    }
    let Some(from) = from.filter(|_| errors.is_empty()) else {
        return Err(errors.into_error("Something went wrong while processing your request."));
    };
    let Some(store) = state.webhooks.store() else {
        return Err(ApiError::bad_request("Webhook delivery is not running."));
    };
    let cursor = from.saturating_sub(1).max(first.saturating_sub(1));
    let target = id.clone();
    // Stop the task and retire its epoch first, so it cannot store a newer cursor over the
    // replayed one (a write already in flight is checked against the epoch under the lock).
    state.webhooks.halt(&id);
    tokio::task::spawn_blocking(move || store.set_cursor(&target, cursor))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    state
        .webhooks
        .stats(&id)
        .cursor
        .store(cursor, Ordering::Relaxed);
    webhooks::reconcile(&state).await?;
    tracing::info!(webhook = %id, from, "webhook replay requested");
    Ok(json_response(&query, view(&state, &items[index])))
}

fn per_page(query: &Query) -> ApiResult<usize> {
    match query.get("perPage").map(|s| s.trim()) {
        None | Some("") => Ok(LOG_PER_PAGE_DEFAULT),
        Some(text) => Ok(text
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request_default())?
            .clamp(1, LOG_PER_PAGE_MAX)),
    }
}

async fn log_rows(
    state: &Arc<AppState>,
    id: String,
    query: &Query,
    dead: bool,
) -> ApiResult<Value> {
    let items = config::load(state)?;
    find(&items, &id)?;
    let limit = per_page(query)?;
    let rows = match state.webhooks.store() {
        None => Vec::new(),
        Some(store) => tokio::task::spawn_blocking(move || match dead {
            true => store.dead(&id, limit),
            false => store.deliveries(&id, limit),
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?,
    };
    Ok(json!({"items": rows, "perPage": limit}))
}

/// `GET /api/webhooks/{id}/deliveries` (newest first).
pub async fn webhooks_deliveries(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    QueryExtract(query): QueryExtract<Query>,
    _superuser: Superuser,
) -> ApiResult<Response> {
    let value = log_rows(&state, id, &query, false).await?;
    Ok(json_response(&query, value))
}

/// `GET /api/webhooks/{id}/dead` (newest first, with the undelivered body).
pub async fn webhooks_dead(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    QueryExtract(query): QueryExtract<Query>,
    _superuser: Superuser,
) -> ApiResult<Response> {
    let value = log_rows(&state, id, &query, true).await?;
    Ok(json_response(&query, value))
}
