//! The cluster's HTTP layer: writes on a follower go to the leader; `sync` writes on the
//! leader wait for the stream's acknowledgement.
//!
//! A write is any `/api/` request that is not `GET`/`HEAD`/`OPTIONS`, except the node-local
//! ones (`/api/realtime` subscriptions, which belong to the SSE session on this node, and
//! `/api/cluster…`). Invariants:
//! 1. On a follower a write is sent to the leader (the lease's advertised URL) with its method,
//!    path, query, headers and body, and answered with the leader's answer only once this node
//!    has applied the leader's position after the write (`x-pocketlog-seq`): a client reads its
//!    own writes on any node. A forwarded request is never forwarded again.
//! 2. On the leader in `sync` mode a write is refused (503, nothing runs) while NATS is not
//!    connected, and a successful write is answered only once the stream acknowledged every
//!    position up to the log's end after it; when that does not come in time the answer is
//!    503 (the write is durable on this node but its replication is unknown: said so).
//! 3. Without `--cluster` the layer is not installed at all.

use super::{Replicate, FORWARDED_HEADER, FORWARD_APPLY_TIMEOUT, SEQ_HEADER, SYNC_ACK_TIMEOUT};
use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// Headers not copied between the client, this node and the leader (hop-by-hop, or set by
/// the HTTP stack).
const HOP_HEADERS: &[&str] = &[
    "host",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
];

fn is_write(request: &Request) -> bool {
    let path = request.uri().path();
    !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) && path.starts_with("/api/")
        && path != "/api/realtime"
        && !path.starts_with("/api/cluster")
}

fn unavailable(message: &str) -> Response {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message).into_response()
}

/// The middleware (installed by `routes::router` only when the node is in a cluster).
pub async fn layer(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let Some(cluster) = state.cluster.get().cloned() else {
        return next.run(request).await;
    };
    if !is_write(&request) {
        return next.run(request).await;
    }
    if cluster.is_leader() {
        let sync = cluster.config().replicate == Replicate::Sync;
        if sync && !cluster.connected() {
            return unavailable(
                "The cluster cannot replicate writes now (NATS is unreachable); nothing was \
                 changed. Try again later.",
            );
        }
        let mut response = next.run(request).await;
        let seq = state.engine.last_seq();
        if sync
            && response.status().is_success()
            && !cluster.wait_acked(seq, SYNC_ACK_TIMEOUT).await
        {
            tracing::error!(
                seq,
                "sync replication: the stream did not acknowledge in time"
            );
            return unavailable(
                "The write is durable on this node but the cluster did not acknowledge it in \
                 time; it may be lost if this node fails. Check the cluster before retrying.",
            );
        }
        if let Ok(value) = HeaderValue::from_str(&seq.to_string()) {
            response.headers_mut().insert(SEQ_HEADER, value);
        }
        return response;
    }
    if request.headers().contains_key(FORWARDED_HEADER) {
        return unavailable("This node is not the cluster's leader now; try again.");
    }
    let Some(leader) = cluster.leader_url() else {
        return unavailable("The cluster has no leader right now (failover); try again.");
    };
    forward(&state, &cluster, &leader, request).await
}

async fn forward(
    state: &AppState,
    cluster: &super::Cluster,
    leader: &str,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, state.options.body_limit_bytes).await else {
        return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "Request entity too large.")
            .into_response();
    };
    let target = format!(
        "{}{}",
        leader.trim_end_matches('/'),
        parts
            .uri
            .path_and_query()
            .map(|path| path.as_str())
            .unwrap_or("/")
    );
    let mut builder = cluster.http().request(parts.method.clone(), &target);
    for (name, value) in &parts.headers {
        if !HOP_HEADERS.contains(&name.as_str()) {
            builder = builder.header(name, value);
        }
    }
    let answer = builder
        .header(FORWARDED_HEADER, cluster.config().node_id.as_str())
        .body(bytes)
        .send()
        .await;
    let answer = match answer {
        Ok(answer) => answer,
        Err(err) => {
            tracing::warn!(leader, error = %err, "forwarding a write to the leader failed");
            return unavailable("The cluster's leader could not be reached; try again.");
        }
    };
    let status = answer.status();
    let headers = answer.headers().clone();
    let Ok(body) = answer.bytes().await else {
        return unavailable(
            "The cluster's leader did not finish its answer; check before retrying.",
        );
    };
    let seq = headers
        .get(SEQ_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<u64>().ok());
    if let Some(seq) = seq {
        if !cluster.wait_applied(seq, FORWARD_APPLY_TIMEOUT).await {
            tracing::warn!(
                seq,
                "a forwarded write is answered before this node applied it (replication lag)"
            );
        }
    }
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    for (name, value) in &headers {
        if !HOP_HEADERS.contains(&name.as_str()) {
            response.headers_mut().append(name, value.clone());
        }
    }
    response
}
