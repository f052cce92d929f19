//! Helpers shared by handlers: body parsing, query parameters, `fields` picking, list paging.
//!
//! 1. Malformed bodies get PocketBase's 400 envelope, never axum's plain-text rejection.
//! 2. `fields` picking applies to every 2xx JSON response.

use crate::error::{ApiError, ApiResult};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Query parameters as a map.
pub type Query = HashMap<String, String>;

/// Parses a JSON (or form-encoded) request body into an object; empty ⇒ `{}`.
pub fn parse_body(headers: &HeaderMap, bytes: &[u8]) -> ApiResult<Map<String, Value>> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("application/x-www-form-urlencoded") {
        return form_body(form_urlencoded_pairs(bytes));
    }
    if content_type.starts_with("multipart/form-data") {
        return Err(ApiError::bad_request(
            "Multipart bodies (file uploads) are not supported yet.",
        ));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ApiError::bad_request_default()),
    }
}

/// The key whose values are JSON objects merged into a form body (PocketBase's
/// `@jsonPayload`).
pub const JSON_PAYLOAD_KEY: &str = "@jsonPayload";

/// A form body (urlencoded; multipart's text parts once supported) as the same object a
/// JSON body gives: a key sent once is a string, a repeated key an array of strings, and
/// every `@jsonPayload` value (a JSON object) is merged over the plain keys, as the
/// reference does (measured: a payload key wins; a payload that is not an object is 400).
/// Record writes then coerce and check the values in one place whatever the encoding
/// (`records::auth_form_checks`, `model::record::apply_body`).
pub fn form_body(pairs: Vec<(String, String)>) -> ApiResult<Map<String, Value>> {
    let mut map = Map::new();
    let mut payloads = Vec::new();
    for (key, value) in pairs {
        if key == JSON_PAYLOAD_KEY {
            payloads.push(value);
            continue;
        }
        match map.get_mut(&key) {
            None => {
                map.insert(key, Value::String(value));
            }
            Some(Value::Array(items)) => items.push(Value::String(value)),
            Some(first) => {
                let first = first.take();
                map.insert(key, Value::Array(vec![first, Value::String(value)]));
            }
        }
    }
    for payload in payloads {
        match serde_json::from_str::<Value>(&payload) {
            Ok(Value::Object(object)) => map.extend(object),
            _ => return Err(ApiError::bad_request_default()),
        }
    }
    Ok(map)
}

/// Splits `a=1&b=2` (query strings, form bodies) into percent-decoded pairs.
pub fn form_urlencoded_pairs(bytes: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(bytes);
    text.split('&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

/// Decodes `%XX` escapes and `+` (as a space), lossily for invalid UTF-8.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => out.push(b' '),
            b'%' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        index += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A JSON 200 response with `fields` picking applied.
pub fn json_response(query: &Query, value: Value) -> Response {
    let value = match query.get("fields") {
        Some(fields) if !fields.trim().is_empty() => pick_fields(value, fields),
        _ => value,
    };
    (StatusCode::OK, axum::Json(value)).into_response()
}

/// 204 with an empty body.
pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// Parses PocketBase's bool query values (`1,t,T,TRUE,true,True,0,f,F,FALSE,false,False`).
pub fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Paging parameters.
#[derive(Debug, Clone, Copy)]
pub struct Paging {
    /// 1-based page.
    pub page: i64,
    /// Items per page.
    pub per_page: i64,
    /// Skip the count query.
    pub skip_total: bool,
}

/// Largest page size.
pub const PER_PAGE_MAX: i64 = 1000;

/// Reads `page`, `perPage`, `skipTotal`.
pub fn paging(query: &Query) -> ApiResult<Paging> {
    let page = match query.get("page") {
        Some(text) => text
            .trim()
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request_default())?,
        None => 1,
    };
    let per_page = match query.get("perPage") {
        Some(text) => text
            .trim()
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request_default())?,
        None => 30,
    };
    let skip_total = match query.get("skipTotal") {
        Some(text) if !text.is_empty() => {
            parse_bool(text).ok_or_else(ApiError::bad_request_default)?
        }
        _ => false,
    };
    Ok(Paging {
        page: if page <= 0 { 1 } else { page },
        per_page: if per_page <= 0 {
            30
        } else {
            per_page.min(PER_PAGE_MAX)
        },
        skip_total,
    })
}

/// The list envelope.
pub fn list_envelope(items: Vec<Value>, paging: Paging, total: Option<i64>) -> Value {
    let (total_items, total_pages) = match total {
        Some(total) => (total, (total + paging.per_page - 1) / paging.per_page),
        None => (-1, -1),
    };
    serde_json::json!({"items": items, "page": paging.page, "perPage": paging.per_page,
        "totalItems": total_items, "totalPages": total_pages})
}

/// A parsed `fields` tree.
#[derive(Debug, Default)]
struct FieldTree {
    children: HashMap<String, FieldTree>,
    excerpt: Option<(usize, bool)>,
}

fn build_tree(spec: &str) -> FieldTree {
    let mut root = FieldTree::default();
    for raw in split_top_level(spec) {
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        let (path, modifier) = match raw.split_once(':') {
            Some((path, modifier)) => (path, Some(modifier)),
            None => (raw, None),
        };
        let mut node = &mut root;
        for part in path.split('.') {
            node = node.children.entry(part.trim().to_string()).or_default();
        }
        if let Some(modifier) = modifier {
            if let Some(args) = modifier
                .strip_prefix("excerpt(")
                .and_then(|m| m.strip_suffix(')'))
            {
                let mut parts = args.split(',');
                let max = parts
                    .next()
                    .and_then(|m| m.trim().parse().ok())
                    .unwrap_or(100);
                let ellipsis = parts
                    .next()
                    .and_then(|m| parse_bool(m.trim()))
                    .unwrap_or(false);
                node.excerpt = Some((max, ellipsis));
            }
        }
    }
    root
}

fn split_top_level(spec: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (index, ch) in spec.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&spec[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    parts.push(&spec[start..]);
    parts
}

fn apply_tree(value: Value, tree: &FieldTree) -> Value {
    match value {
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|item| apply_tree(item, tree))
                .collect(),
        ),
        Value::Object(map) => {
            if tree.children.is_empty() {
                return Value::Object(map);
            }
            let star = tree.children.get("*");
            let mut out = Map::new();
            for (key, child_value) in map {
                match tree.children.get(&key) {
                    Some(child) => {
                        let picked = match child.excerpt {
                            Some((max, ellipsis)) => Value::String(excerpt(
                                child_value.as_str().unwrap_or(""),
                                max,
                                ellipsis,
                            )),
                            None => apply_tree(child_value, child),
                        };
                        out.insert(key, picked);
                    }
                    None if star.is_some() => {
                        out.insert(key, child_value);
                    }
                    None => {}
                }
            }
            Value::Object(out)
        }
        other => other,
    }
}

/// Applies a `fields` spec to a response (list envelopes: to each item).
pub fn pick_fields(value: Value, spec: &str) -> Value {
    let tree = build_tree(spec);
    match value {
        Value::Object(mut map) if map.contains_key("items") && map.contains_key("perPage") => {
            if let Some(items) = map.remove("items") {
                map.insert("items".into(), apply_tree(items, &tree));
            }
            Value::Object(map)
        }
        other => apply_tree(other, &tree),
    }
}

/// Strips HTML, collapses whitespace and cuts to `max` characters.
pub fn excerpt(html: &str, max: usize, ellipsis: bool) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    let mut skip_until: Option<String> = None;
    let lower = html.to_ascii_lowercase();
    let mut index = 0;
    let bytes = html.as_bytes();
    while index < bytes.len() {
        if let Some(end) = &skip_until {
            if lower[index..].starts_with(end.as_str()) {
                index += end.len();
                skip_until = None;
            } else {
                index += 1;
            }
            continue;
        }
        let ch = html[index..].chars().next().unwrap_or(' ');
        if ch == '<' {
            for tag in ["script", "style", "svg"] {
                if lower[index + 1..].starts_with(tag) {
                    skip_until = Some(format!("</{tag}>"));
                }
            }
            in_tag = true;
            text.push(' ');
        } else if ch == '>' && in_tag {
            in_tag = false;
        } else if !in_tag {
            text.push(ch);
        }
        index += ch.len_utf8();
    }
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let count = collapsed.chars().count();
    if count <= max {
        return collapsed;
    }
    let cut: String = collapsed.chars().take(max).collect();
    let cut = cut.trim_end().to_string();
    if ellipsis {
        format!("{cut}...")
    } else {
        cut
    }
}

/// Runs a short read (a lookup by primary key, a few ids) on this thread when a pooled
/// connection is idle, sparing the hand-off to a blocking thread and back (two context
/// switches, most of a view's cost on one core); otherwise like `AppState::read`.
pub async fn read_short<T, F>(state: &std::sync::Arc<crate::state::AppState>, f: F) -> ApiResult<T>
where
    T: Send + 'static,
    F: FnOnce(&engine::ReadConn<'_>) -> engine::Result<T> + Send + 'static,
{
    match state.engine.try_read(f) {
        Ok(result) => result.map_err(ApiError::from),
        Err(f) => state.read(f).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn excerpt_matches_the_reference() {
        let html = "<p>Hello <b>world</b> and more text here</p>";
        assert_eq!(excerpt(html, 10, true), "Hello worl...");
        assert_eq!(excerpt(html, 12, false), "Hello world");
    }

    #[test]
    fn fields_pick_nested_and_star() {
        let value = json!({"id":"1","title":"t","expand":{"author":{"name":"a","email":"e"}}});
        assert_eq!(
            pick_fields(value.clone(), "id,expand.author.name"),
            json!({"id":"1","expand":{"author":{"name":"a"}}})
        );
        assert_eq!(
            pick_fields(value, "*,expand.author.name")["title"],
            json!("t")
        );
    }
}
