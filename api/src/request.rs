//! Request input below HTTP glue: body objects (JSON, urlencoded form, `@jsonPayload`),
//! query strings, PocketBase's bool values and list paging parameters.
//!
//! Used by handlers and by the services (records, batch) alike, so nothing outside
//! `handlers/` needs to import from it.
//!
//! 1. Malformed bodies get PocketBase's 400 envelope, never axum's plain-text rejection.
//! 2. A form body gives the same object a JSON body gives (see [`form_body`]).

use crate::error::{ApiError, ApiResult};
use axum::http::HeaderMap;
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
        // Endpoints that take no files (sign-in, auth flows, …): text parts only. The raw
        // header carries the (case-sensitive) boundary.
        let raw = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        return form_body(crate::files::multipart::read_in_memory(raw, bytes)?);
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ApiError::bad_request_default()),
    }
}

/// The key whose values are JSON objects merged into a form body (PocketBase's
/// `@jsonPayload`).
pub const JSON_PAYLOAD_KEY: &str = "@jsonPayload";

/// A form body (urlencoded, or multipart's text parts) as the same object a
/// JSON body gives: a key sent once is a string, a repeated key an array of strings, and
/// every `@jsonPayload` value (a JSON object) is merged over the plain keys, as the
/// reference does (measured: a payload key wins; a payload that is not an object is 400).
/// Record writes then coerce and check the values in one place whatever the encoding
/// (`records::validate::auth_form_checks`, `model::record::apply_body`).
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
