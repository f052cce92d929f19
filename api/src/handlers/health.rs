//! `GET|HEAD /api/health`.

use super::common::{json_response, Query};
use crate::access;
use crate::state::AppState;
use axum::extract::{Query as QueryExtract, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::json;
use std::sync::Arc;

/// Health check; superusers get a few extra facts.
pub async fn health(
    State(state): State<Arc<AppState>>,
    QueryExtract(query): QueryExtract<Query>,
    headers: HeaderMap,
) -> Response {
    let auth = access::authenticate(&state, &headers).await;
    let data = if access::is_superuser(&auth) {
        json!({"canBackup": true, "realIP": "127.0.0.1", "possibleProxyHeader": ""})
    } else {
        json!({})
    };
    json_response(
        &query,
        json!({"message": "API is healthy.", "code": 200, "data": data}),
    )
}
