//! `POST /api/batch`: HTTP glue for a batch of record writes run as one atomic commit
//! (`crate::records::batch` holds the flow and its invariants).
//!
//! Here: the `settings.batch` switches and limits (enabled, `maxBodySize`, `maxRequests`,
//! `timeout`), reading the body (JSON, or multipart with `@jsonPayload`) and validating the
//! sub-request list with PocketBase's envelopes (`docs/wire/errors.md`).
//!
//! Invariant: multipart bodies are read through their `@jsonPayload` part; file parts are
//! refused (record file uploads are not supported yet).

use super::common::{json_response, Query};
use crate::error::{field_error, ApiError, ApiResult};
use crate::extract::Caller;
use crate::records::batch::{self as service, SubRequest};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Query as QueryExtract, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Body limit when `settings.batch.maxBodySize` is 0 (PocketBase's default, 128 MiB).
pub const BATCH_BODY_BYTES_DEFAULT: usize = 128 * 1024 * 1024;
/// Longest sub-request URL (PocketBase validates `url` with `Length(0, 2000)`).
pub const BATCH_URL_LEN_MAX: usize = 2000;
/// `settings.batch.maxRequests` when the settings hold no usable value.
pub const BATCH_REQUESTS_MAX_DEFAULT: usize = 50;
/// `settings.batch.timeout` (seconds) when the settings hold no usable value.
pub const BATCH_TIMEOUT_SECS_DEFAULT: u64 = 3;

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];
const READ_FAILED: &str = "Failed to read the submitted batch data.";
const INVALID_DATA: &str = "Invalid batch request data.";

fn invalid_data(requests: Value) -> ApiError {
    let mut data = Map::new();
    data.insert("requests".into(), requests);
    ApiError::validation(INVALID_DATA, data)
}

fn settings_usize(settings: &Value, pointer: &str) -> Option<usize> {
    settings
        .pointer(pointer)
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
}

/// Finds `needle` in `haystack` from `from`.
fn find_bytes(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || from > haystack.len() {
        return None;
    }
    haystack[from..]
        .windows(needle.len())
        .position(|window| window == needle)
        .map(|position| position + from)
}

/// Reads the `@jsonPayload` part of a multipart body. Other non-empty parts are files or form
/// values meant for sub-request bodies, which are not supported.
fn multipart_json_payload(content_type: &str, bytes: &[u8]) -> ApiResult<Value> {
    let boundary = content_type
        .split(';')
        .filter_map(|param| param.trim().split_once('='))
        .find(|(key, _)| key.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, value)| value.trim().trim_matches('"').to_string())
        .filter(|boundary| !boundary.is_empty())
        .ok_or_else(|| ApiError::bad_request(READ_FAILED))?;
    let delimiter = format!("--{boundary}");
    let mut payload = None;
    let mut cursor = find_bytes(bytes, delimiter.as_bytes(), 0)
        .ok_or_else(|| ApiError::bad_request(READ_FAILED))?;
    loop {
        let part_start = cursor + delimiter.len();
        if bytes[part_start..].starts_with(b"--") {
            break;
        }
        let next = find_bytes(bytes, delimiter.as_bytes(), part_start)
            .ok_or_else(|| ApiError::bad_request(READ_FAILED))?;
        let part = &bytes[part_start..next];
        let header_end =
            find_bytes(part, b"\r\n\r\n", 0).ok_or_else(|| ApiError::bad_request(READ_FAILED))?;
        let head = String::from_utf8_lossy(&part[..header_end]).to_ascii_lowercase();
        let content = part[header_end + 4..]
            .strip_suffix(b"\r\n")
            .unwrap_or(&part[header_end + 4..]);
        if head.contains("name=\"@jsonpayload\"") {
            payload = Some(
                serde_json::from_slice::<Value>(content)
                    .map_err(|_| ApiError::bad_request(READ_FAILED))?,
            );
        } else if !content.is_empty() {
            return Err(ApiError::bad_request(
                "File uploads in batch requests are not supported yet.",
            ));
        }
        cursor = next;
    }
    payload.ok_or_else(|| ApiError::bad_request(READ_FAILED))
}

/// Parses the batch body (JSON, or multipart with `@jsonPayload`) into its sub-requests.
fn parse_requests(headers: &HeaderMap, bytes: &[u8]) -> ApiResult<Vec<Value>> {
    let content_type = headers
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let body = if bytes.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else if content_type
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
    {
        multipart_json_payload(content_type, bytes)?
    } else {
        serde_json::from_slice::<Value>(bytes).map_err(|_| ApiError::bad_request(READ_FAILED))?
    };
    let Value::Object(mut body) = body else {
        return Err(ApiError::bad_request(READ_FAILED));
    };
    match body.remove("requests") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(ApiError::bad_request(READ_FAILED)),
    }
}

/// Validates the sub-request list (required, max length, method, url; `docs/wire/errors.md`).
fn validate_requests(items: Vec<Value>, requests_max: usize) -> ApiResult<Vec<SubRequest>> {
    if items.is_empty() {
        return Err(invalid_data(field_error(
            "validation_required",
            "Cannot be blank.",
            None,
        )));
    }
    if items.len() > requests_max {
        return Err(invalid_data(field_error(
            "validation_length_too_long",
            &format!("The length must be no more than {requests_max}."),
            Some(json!({"max": requests_max, "min": 0})),
        )));
    }
    let mut errors = Map::new();
    let mut out = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let Value::Object(mut item) = item else {
            return Err(ApiError::bad_request(READ_FAILED));
        };
        let text = |value: Option<Value>| -> ApiResult<String> {
            match value {
                None | Some(Value::Null) => Ok(String::new()),
                Some(Value::String(text)) => Ok(text),
                Some(_) => Err(ApiError::bad_request(READ_FAILED)),
            }
        };
        let object = |value: Option<Value>| -> ApiResult<Map<String, Value>> {
            match value {
                None | Some(Value::Null) => Ok(Map::new()),
                Some(Value::Object(map)) => Ok(map),
                Some(_) => Err(ApiError::bad_request(READ_FAILED)),
            }
        };
        let request = SubRequest {
            method: text(item.remove("method"))?,
            url: text(item.remove("url"))?,
            body: object(item.remove("body"))?,
            headers: object(item.remove("headers"))?,
        };
        let mut item_errors = Map::new();
        if request.method.is_empty() {
            item_errors.insert(
                "method".into(),
                field_error("validation_required", "Cannot be blank.", None),
            );
        } else if !METHODS.contains(&request.method.as_str()) {
            item_errors.insert(
                "method".into(),
                field_error("validation_in_invalid", "Must be a valid value.", None),
            );
        }
        if request.url.is_empty() {
            item_errors.insert(
                "url".into(),
                field_error("validation_required", "Cannot be blank.", None),
            );
        } else if request.url.len() > BATCH_URL_LEN_MAX {
            item_errors.insert(
                "url".into(),
                field_error(
                    "validation_length_too_long",
                    &format!("The length must be no more than {BATCH_URL_LEN_MAX}."),
                    Some(json!({"max": BATCH_URL_LEN_MAX, "min": 0})),
                ),
            );
        }
        if !item_errors.is_empty() {
            errors.insert(index.to_string(), Value::Object(item_errors));
        }
        out.push(request);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(invalid_data(Value::Object(errors)))
    }
}

/// `POST /api/batch`
pub async fn batch(
    State(state): State<Arc<AppState>>,
    QueryExtract(query): QueryExtract<Query>,
    caller: Caller,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult<Response> {
    let settings = state.settings();
    let enabled = settings
        .pointer("/batch/enabled")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if !enabled {
        return Err(ApiError::forbidden("Batch requests are not allowed."));
    }
    let body_max = match settings_usize(&settings, "/batch/maxBodySize") {
        Some(0) | None => BATCH_BODY_BYTES_DEFAULT,
        Some(max) => max,
    };
    if bytes.len() > body_max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Request entity too large.",
        ));
    }
    let requests_max =
        settings_usize(&settings, "/batch/maxRequests").unwrap_or(BATCH_REQUESTS_MAX_DEFAULT);
    let timeout_secs = settings
        .pointer("/batch/timeout")
        .and_then(Value::as_u64)
        .unwrap_or(BATCH_TIMEOUT_SECS_DEFAULT);
    let requests = validate_requests(parse_requests(&headers, &bytes)?, requests_max)?;
    let schema = state.schema();
    let out = service::run(
        &state,
        &schema,
        caller.0.as_ref(),
        &headers,
        requests,
        timeout_secs,
    )
    .await?;
    Ok(json_response(&query, Value::Array(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_payload_is_read() {
        let body = b"--XX\r\nContent-Disposition: form-data; name=\"@jsonPayload\"\r\n\r\n{\"requests\":[]}\r\n--XX--\r\n";
        let value =
            multipart_json_payload("multipart/form-data; boundary=XX", body).expect("payload");
        assert_eq!(value, json!({"requests": []}));
        let with_file = b"--XX\r\nContent-Disposition: form-data; name=\"requests.0.file\"; filename=\"a.txt\"\r\n\r\nhello\r\n--XX--\r\n";
        assert!(multipart_json_payload("multipart/form-data; boundary=XX", with_file).is_err());
    }
}
