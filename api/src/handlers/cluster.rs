//! `GET /api/cluster` (this node's cluster status: role, leader, epoch, positions, lag) and
//! `POST /api/cluster/step-down` (the leader gives its lease up; another node takes over; 204,
//! or 400 when this node does not lead). Superusers only; 404 when the server runs without
//! `--cluster`.

use super::common::{json_response, no_content, Query};
use crate::error::{ApiError, ApiResult};
use crate::extract::Superuser;
use crate::state::AppState;
use axum::extract::{Query as QueryExtract, State};
use axum::http::StatusCode;
use axum::response::Response;
use std::sync::Arc;

fn node(state: &AppState) -> ApiResult<&Arc<crate::cluster::Cluster>> {
    state.cluster.get().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "This server does not run in a cluster (no --cluster).",
        )
    })
}

/// This node's cluster status.
pub async fn cluster_status(
    State(state): State<Arc<AppState>>,
    QueryExtract(query): QueryExtract<Query>,
    _superuser: Superuser,
) -> ApiResult<Response> {
    let status = node(&state)?.status();
    Ok(json_response(&query, serde_json::json!(status)))
}

/// Asks the leader to step down.
pub async fn cluster_step_down(
    State(state): State<Arc<AppState>>,
    _superuser: Superuser,
) -> ApiResult<Response> {
    if node(&state)?.request_step_down() {
        Ok(no_content())
    } else {
        Err(ApiError::bad_request(
            "This node is not the cluster's leader; step down on the leader.",
        ))
    }
}
