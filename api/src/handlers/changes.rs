//! The change feed: `GET /api/collections/{c}/changes?since=<position>[&filter=…&perPage=…]`.
//!
//! Returns the committed record changes of one collection after a log position, oldest first,
//! as `{"items":[{"action","record","position","timestamp"}…],"perPage","since","next",
//! "hasMore","head"}`. Continue with `since=<next>`.
//!
//! 1. Items are filtered by the collection's listRule for the caller *as it stands now* and by
//!    the optional `filter`, both evaluated against the record as the change left it (the old
//!    values for a delete); output visibility is the caller's (hidden fields, emails). The
//!    filter gets the list API's restrictions for the caller, errors included.
//! 2. A page never splits a commit: `next` is always a commit boundary, so a page may hold a
//!    few more than `perPage` items when one commit (a batch) has many changes.
//! 3. Work per request is bounded: at most [`CHANGES_SCAN_COMMITS_MAX`] commits are scanned;
//!    `next` then tells where to continue even if the page is not full.
//! 4. A position older than the log holds (compacted history) is an explicit 400
//!    (`validation_position_compacted`), never a silently shortened feed.

use super::common::{json_response, parse_bool, Query};
use crate::access::{self, RequestData};
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::extract::Caller;
use crate::model::record::{format_ms, visible_json};
use crate::model::schema::{Rule, RuleKind};
use crate::realtime::render::{allowed, check_client_filter, record_events};
use crate::records::{find_collection, viewer};
use crate::state::AppState;
use axum::extract::{Path, Query as QueryExtract, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Default page size of the change feed.
pub const CHANGES_PER_PAGE_DEFAULT: usize = 100;
/// Largest page size of the change feed.
pub const CHANGES_PER_PAGE_MAX: usize = 1000;
/// Most commits scanned by one request.
pub const CHANGES_SCAN_COMMITS_MAX: u64 = 10_000;
/// Commits read from the log per step.
const CHANGES_READ_BATCH: usize = 256;

fn since_error(code: &str, message: &str, params: Option<Value>) -> ApiError {
    let mut errors = FieldErrors::default();
    errors.add("since", code, message, params);
    errors.into_error("Something went wrong while processing your request.")
}

/// `GET /api/collections/{c}/changes`.
pub async fn changes_list(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    QueryExtract(query): QueryExtract<Query>,
    headers: HeaderMap,
    caller: Caller,
) -> ApiResult<Response> {
    let schema = state.schema();
    let collection = find_collection(&schema, &name)?;
    let rule = schema.rule(&collection.id, RuleKind::List);
    if matches!(rule, Rule::Locked) && !caller.is_superuser() {
        return Err(ApiError::forbidden(
            "Only superusers can perform this action.",
        ));
    }
    let auth = caller.0;
    let since: u64 = match query.get("since").map(|s| s.trim()) {
        None | Some("") => 0,
        Some(text) => text.parse().map_err(|_| {
            since_error(
                "validation_invalid_position",
                "Must be a non-negative integer log position.",
                None,
            )
        })?,
    };
    let per_page = match query.get("perPage").map(|s| s.trim()) {
        None | Some("") => CHANGES_PER_PAGE_DEFAULT,
        Some(text) => text
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request_default())?
            .clamp(1, CHANGES_PER_PAGE_MAX),
    };
    let filter = match query.get("filter").filter(|f| !f.trim().is_empty()) {
        Some(text) => Some(rules::parse(text).map_err(access::rule_error)?),
        None => None,
    };
    let _skip_total = query.get("skipTotal").and_then(|t| parse_bool(t));
    let head = state.engine.published_seq();
    let first = state.engine.log().first_seq();
    if since + 1 < first {
        return Err(since_error(
            "validation_position_compacted",
            "The history before this position was compacted away; reload the collection and continue from the returned head.",
            Some(json!({"firstPosition": first.saturating_sub(1), "head": head})),
        ));
    }
    let data = RequestData {
        method: "GET".into(),
        context: "default".into(),
        body: Map::new(),
        query: query.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        headers: headers
            .iter()
            .filter_map(|(k, v)| {
                v.to_str().ok().map(|v| {
                    (
                        rules::RequestInfo::normalize_header_name(k.as_str()),
                        v.to_string(),
                    )
                })
            })
            .collect(),
    };
    // The list API's filter restrictions and errors (hidden fields, `@request.*`, ...).
    if let Some(expr) = &filter {
        check_client_filter(&schema, &collection, expr, auth.as_ref(), &data)?;
    }
    let mut items = Vec::new();
    let mut next = since.min(head);
    let scan_end = head.min(since.saturating_add(CHANGES_SCAN_COMMITS_MAX));
    'scan: while next < scan_end && items.len() < per_page {
        let from = next + 1;
        let limit = CHANGES_READ_BATCH.min((scan_end - next) as usize);
        let reader = Arc::clone(&state);
        let commits =
            tokio::task::spawn_blocking(move || reader.engine.log().read_from(from, limit))
                .await
                .map_err(ApiError::internal)?
                .map_err(|err| {
                    match err {
                engine::Error::SeqUnavailable { .. } => since_error(
                    "validation_position_compacted",
                    "The history before this position was compacted away; reload the collection.",
                    None,
                ),
                other => ApiError::from(other),
            }
                })?;
        if commits.is_empty() {
            break;
        }
        for commit in commits {
            if commit.seq > scan_end {
                break 'scan;
            }
            let schema = state.schema();
            for event in record_events(&schema, &commit) {
                if event.collection.id != collection.id {
                    continue;
                }
                if !allowed(
                    &state,
                    &schema,
                    &event.collection,
                    &rule,
                    filter.as_ref(),
                    &event.record,
                    auth.as_ref(),
                    &data,
                )
                .await
                {
                    continue;
                }
                let record = visible_json(&event.collection, &event.record, viewer(auth.as_ref()));
                items.push(json!({
                    "action": event.action,
                    "record": record,
                    "position": commit.seq,
                    "timestamp": format_ms(commit.timestamp_ms),
                }));
            }
            next = commit.seq;
            if items.len() >= per_page {
                break 'scan;
            }
        }
    }
    Ok(json_response(
        &query,
        json!({
            "items": items,
            "perPage": per_page,
            "since": since,
            "next": next,
            "hasMore": next < head,
            "head": head,
        }),
    ))
}
