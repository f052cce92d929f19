//! `GET /api/realtime` (the SSE stream) and `POST /api/realtime` (the subscription set).
//!
//! 1. A GET without a resume position opens a new session and sends `PB_CONNECT` with the
//!    client id as SSE `id`, byte for byte as PocketBase does.
//! 2. A GET with `Last-Event-ID` (or `?lastEventId=`) naming a kept session resumes it: same
//!    client id and subscriptions, then every missed event in order. Naming a session is not
//!    a credential: its bound auth counts again only once it proves itself on the new stream
//!    (a POST with its token, or the GET's own `Authorization`); until then the stream gets
//!    no events: they are held, in order (`realtime::session::Mode::Held`).
//! 3. The POST validates like PocketBase (field errors, limits), then checks the caller
//!    against the session (404 unknown, 400 from another address than the stream's, 403
//!    another auth than the bound one), then replaces the set.

use crate::error::{ApiError, FieldErrors};
use crate::extract::Caller;
use crate::handlers::common::{parse_body, Query};
use crate::realtime::hub::ResumeToken;
use crate::realtime::{sse, CLIENT_ID_LEN_MAX, SUBSCRIPTIONS_MAX, SUBSCRIPTION_LEN_MAX};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query as QueryExtract, State};
use axum::http::{header, Extensions, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The query parameter equivalent of the `Last-Event-ID` header.
pub const RESUME_PARAM: &str = "lastEventId";

/// The peer address of a request, when the server recorded it (`ConnectInfo`).
fn peer_ip(extensions: &Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip())
}

/// `GET /api/realtime`.
pub async fn realtime_connect(
    State(state): State<Arc<AppState>>,
    QueryExtract(query): QueryExtract<Query>,
    headers: HeaderMap,
    extensions: Extensions,
    caller: Caller,
) -> Response {
    let resume_text = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
        .or_else(|| query.get(RESUME_PARAM).cloned())
        .filter(|text| !text.trim().is_empty());
    let resume = resume_text.as_deref().and_then(ResumeToken::parse);
    // A resume may carry the owner's own token (EventSource cannot, other clients can).
    let proof = match resume {
        Some(_) => caller.0,
        None => None,
    };
    let hub = Arc::clone(&state.realtime);
    let ip = peer_ip(&extensions);
    let connected = match hub.connect(&state, resume, ip, proof).await {
        Ok(connected) => connected,
        Err(err) => return err.into_response(),
    };
    let body = sse::stream_body(hub, connected.session, connected.generation);
    let mut response = (StatusCode::OK, body).into_response();
    let response_headers = response.headers_mut();
    response_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response_headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// `POST /api/realtime`.
pub async fn realtime_subscribe(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    extensions: Extensions,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = parse_body(&headers, &body)?;
    let mut errors = FieldErrors::default();
    let client_id = match body.get("clientId") {
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        None | Some(Value::Null) | Some(Value::String(_)) => {
            errors.add("clientId", "validation_required", "Cannot be blank.", None);
            String::new()
        }
        Some(_) => {
            errors.add(
                "clientId",
                "validation_invalid_value",
                "Invalid value.",
                None,
            );
            String::new()
        }
    };
    if client_id.chars().count() > CLIENT_ID_LEN_MAX {
        errors.add(
            "clientId",
            "validation_length_out_of_range",
            &format!("The length must be between 1 and {CLIENT_ID_LEN_MAX}."),
            Some(json!({"max": CLIENT_ID_LEN_MAX, "min": 1})),
        );
    }
    let subscriptions: Vec<String> = match body.get("subscriptions") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            })
            .collect(),
        Some(Value::String(text)) => vec![text.clone()],
        Some(_) => {
            errors.add(
                "subscriptions",
                "validation_invalid_value",
                "Invalid value.",
                None,
            );
            Vec::new()
        }
    };
    if subscriptions.len() > SUBSCRIPTIONS_MAX {
        errors.add(
            "subscriptions",
            "validation_length_too_long",
            &format!("The length must be no more than {SUBSCRIPTIONS_MAX}."),
            Some(json!({"max": SUBSCRIPTIONS_MAX, "min": 0})),
        );
    } else if let Some(index) = subscriptions
        .iter()
        .position(|s| s.chars().count() > SUBSCRIPTION_LEN_MAX)
    {
        let mut item = FieldErrors::default();
        item.add(
            &index.to_string(),
            "validation_length_too_long",
            &format!("The length must be no more than {SUBSCRIPTION_LEN_MAX}."),
            Some(json!({"max": SUBSCRIPTION_LEN_MAX, "min": 0})),
        );
        errors
            .0
            .insert("subscriptions".into(), Value::Object(item.0));
    }
    if !errors.is_empty() {
        return Err(errors.into_error("Something went wrong while processing your request."));
    }
    state.realtime.ensure_started(&state).await;
    let auth = caller.0;
    state
        .realtime
        .set_subscriptions(
            &state,
            &client_id,
            auth,
            peer_ip(&extensions),
            subscriptions,
            state.engine.last_seq() + 1,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
