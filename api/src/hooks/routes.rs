//! Custom routes (`routerAdd`): matching a request against the registered patterns and
//! turning a handler's answer into a response.
//!
//! Patterns are Go 1.22 `ServeMux` patterns as PocketBase uses them: literal segments,
//! `{name}` (one segment) and a final `{name...}` (the rest). The first registered route
//! that matches method and path wins. The API's own routes come first (custom routes are
//! reached through the router's fallback).

use super::{parse_outcome, HookResponse, Loaded};
use crate::access::Auth;
use crate::error::ApiResult;
use crate::state::AppState;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Matches `path` against `pattern`; the path values on success.
pub fn match_path(pattern: &str, path: &str) -> Option<BTreeMap<String, String>> {
    let pattern = pattern.trim_end_matches('/');
    let trimmed = path.trim_end_matches('/');
    let mut values = BTreeMap::new();
    let mut pattern_parts = pattern.split('/');
    let mut path_parts = trimmed.split('/');
    loop {
        match (pattern_parts.next(), path_parts.next()) {
            (None, None) => return Some(values),
            (Some(p), rest) if p.starts_with('{') && p.ends_with("...}") => {
                let name = &p[1..p.len() - 4];
                let mut tail: Vec<&str> = rest.into_iter().collect();
                tail.extend(path_parts);
                values.insert(name.to_string(), tail.join("/"));
                return Some(values);
            }
            (Some(p), Some(s)) if p.starts_with('{') && p.ends_with('}') => {
                if s.is_empty() {
                    return None;
                }
                values.insert(p[1..p.len() - 1].to_string(), s.to_string());
            }
            (Some(p), Some(s)) if p == s => {}
            _ => return None,
        }
    }
}

/// The first custom route for `method` and `path`: its index and path values.
pub fn find(
    loaded: &Loaded,
    method: &str,
    path: &str,
) -> Option<(usize, BTreeMap<String, String>)> {
    loaded
        .registry
        .routes
        .iter()
        .enumerate()
        .find_map(|(index, route)| {
            let method_ok = route.method == method
                || route.method == "*"
                || route.method.is_empty()
                || (method == "HEAD" && route.method == "GET");
            if !method_ok {
                return None;
            }
            match_path(&route.path, path).map(|values| (index, values))
        })
}

/// Whether `method` `path` is a custom route of the loaded hooks (the request log records
/// those besides the API's own).
pub fn is_custom(state: &AppState, method: &str, path: &str) -> bool {
    state
        .hooks
        .current()
        .is_some_and(|loaded| find(&loaded, method, path).is_some())
}

/// The request as the prelude's event sees it.
pub struct RouteRequest {
    /// Method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Raw query string.
    pub raw_query: String,
    /// Query values.
    pub query: BTreeMap<String, String>,
    /// Headers (lower-case, `-` as `_`).
    pub headers: BTreeMap<String, String>,
    /// The parsed body (`{}` when none or not JSON/form).
    pub body: Map<String, Value>,
    /// The caller.
    pub auth: Option<Auth>,
    /// The client IP.
    pub ip: String,
}

/// The JSON of a request for the prelude.
pub fn request_json(request: &RouteRequest, params: &BTreeMap<String, String>) -> Value {
    json!({
        "method": request.method,
        "path": request.path,
        "rawQuery": request.raw_query,
        "query": request.query,
        "headers": request.headers,
        "body": request.body,
        "params": params,
        "ip": request.ip,
        "auth": request.auth.as_ref().map(|auth| json!({
            "collection": auth.collection.to_json(),
            "record": auth.record,
        })),
    })
}

/// Runs the custom route `index` for `request` and commits its writes (one commit, the
/// caller as actor) before answering.
pub async fn run(
    state: &Arc<AppState>,
    loaded: &Loaded,
    index: usize,
    params: &BTreeMap<String, String>,
    request: &RouteRequest,
) -> ApiResult<Response> {
    let event = request_json(request, params);
    let out = loaded
        .pool
        .call("__pl_route", vec![index.to_string(), event.to_string()])
        .await
        .map_err(|err| super::script_error(&err.to_string()))?;
    let outcome = parse_outcome(&out)?;
    let actor = crate::access::actor_of(request.auth.as_ref());
    super::writes::commit_alone(state, actor, outcome.writes).await?;
    Ok(match outcome.response {
        Some(response) => into_response(&response),
        // A handler that set no response: 200 with an empty body (measured).
        None => StatusCode::OK.into_response(),
    })
}

/// A hook's response as an HTTP response.
pub fn into_response(response: &HookResponse) -> Response {
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::OK);
    let content_type = match response.kind.as_str() {
        "json" => "application/json",
        "html" => "text/html; charset=utf-8",
        "empty" => "",
        "redirect" => "",
        _ => "text/plain; charset=utf-8",
    };
    let content_type = response.content_type.as_deref().unwrap_or(content_type);
    match response.kind.as_str() {
        "empty" => status.into_response(),
        "redirect" => {
            let mut out = status.into_response();
            if let Ok(location) = HeaderValue::from_str(&response.body) {
                out.headers_mut().insert("location", location);
            }
            out
        }
        _ => {
            let mut out = (status, response.body.clone()).into_response();
            if let Ok(value) = HeaderValue::from_str(content_type) {
                out.headers_mut().insert("content-type", value);
            }
            out
        }
    }
}
