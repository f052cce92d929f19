//! `GET|HEAD /api/health`.
//!
//! Everyone gets `{"message":"API is healthy.","code":200,"data":{}}`; superusers also get
//! `canBackup`, `realIP` (the caller's IP behind the trusted proxy, `client_ip.rs`) and
//! `possibleProxyHeader` (the proxy header seen in the request, a hint for the settings).

use super::common::{json_response, Query};
use crate::extract::Caller;
use crate::state::AppState;
use axum::extract::{Query as QueryExtract, State};
use axum::http::{Extensions, HeaderMap};
use axum::response::Response;
use serde_json::json;
use std::sync::Arc;

/// Health check; superusers get a few extra facts.
pub async fn health(
    State(state): State<Arc<AppState>>,
    QueryExtract(query): QueryExtract<Query>,
    headers: HeaderMap,
    extensions: Extensions,
    caller: Caller,
) -> Response {
    let data = if caller.is_superuser() {
        let ip = crate::ratelimit::client_ip_of(&state, &headers, &extensions);
        let mut data =
            json!({"canBackup": true, "realIP": ip.real, "possibleProxyHeader": ip.proxy_header});
        if let Some(cluster) = state.cluster.get() {
            data["cluster"] = json!(cluster.status());
        }
        data
    } else {
        json!({})
    };
    json_response(
        &query,
        json!({"message": "API is healthy.", "code": 200, "data": data}),
    )
}
