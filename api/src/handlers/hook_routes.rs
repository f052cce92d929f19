//! The router's fallback: custom routes of the JS hooks (`routerAdd`) first, then the
//! static files / 404 of [`crate::routes::fallback`].
//!
//! HTTP glue only: collects the request (caller, query, headers, body within the body limit)
//! and hands it to `hooks::routes`.

use crate::extract::Caller;
use crate::hooks::routes::{self as custom, RouteRequest};
use crate::state::AppState;
use axum::extract::{FromRequestParts, Request, State};
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use std::sync::Arc;

/// No API route matched: a custom route if one matches, else the default fallback.
pub async fn dispatch(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let Some(loaded) = state.hooks.current() else {
        return crate::routes::fallback_request(state, request).await;
    };
    let method = request.method().as_str().to_string();
    let path = request.uri().path().to_string();
    let Some((index, params)) = custom::find(&loaded, &method, &path) else {
        return crate::routes::fallback_request(state, request).await;
    };
    let (mut parts, body) = request.into_parts();
    let Ok(Caller(auth)) = Caller::from_request_parts(&mut parts, &state).await;
    let limit = state.options.body_limit_bytes;
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return crate::error::ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "Request entity too large.",
            )
            .into_response()
        }
    };
    let body = crate::request::parse_body(&parts.headers, &bytes).unwrap_or_default();
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let query = url_pairs(&parts.uri);
    let data = crate::access::RequestData::new(&method, &parts.headers, &Default::default());
    let ip = crate::client_ip::peer(&parts.extensions)
        .map(|ip| ip.to_string())
        .unwrap_or_default();
    let request = RouteRequest {
        method,
        path,
        raw_query,
        query,
        headers: data.headers,
        body,
        auth,
        ip,
    };
    match custom::run(&state, &loaded, index, &params, &request).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

/// Query pairs (the first value of a repeated key wins, as Go's `Query().Get`).
fn url_pairs(uri: &axum::http::Uri) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let pairs = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|q| q.0)
        .unwrap_or_default();
    for (key, value) in pairs {
        out.entry(key).or_insert(value);
    }
    out
}
