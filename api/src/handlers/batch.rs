//! `POST /api/batch`: HTTP glue for a batch of record writes run as one atomic commit
//! (`crate::records::batch` holds the flow and its invariants).
//!
//! Here: the `settings.batch` switches and limits (enabled, `maxBodySize`, `maxRequests`,
//! `timeout`), reading the body (JSON, or multipart with `@jsonPayload`) and validating the
//! sub-request list with PocketBase's envelopes (`docs/wire/errors.md`).
//!
//! Invariant: multipart bodies are streamed (`crate::files::multipart`): the `@jsonPayload`
//! part holds the JSON, files come as `requests.<index>.<field>` parts and are bound to that
//! sub-request's file fields; the body limit is `maxBodySize` (JSON bodies also stay under
//! the server's body limit, as before).

use super::common::{json_response, Query};
use crate::error::{field_error, ApiError, ApiResult};
use crate::extract::Caller;
use crate::files::multipart::{self, Upload};
use crate::files::storage::LocalStorage;
use crate::records::batch::{self as service, SubRequest};
use crate::request::JSON_PAYLOAD_KEY;
use crate::state::AppState;
use axum::body::Body;
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

/// The sub-request list of a batch body object.
fn requests_of(body: Value) -> ApiResult<Vec<Value>> {
    let Value::Object(mut body) = body else {
        return Err(ApiError::bad_request(READ_FAILED));
    };
    match body.remove("requests") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(ApiError::bad_request(READ_FAILED)),
    }
}

/// Parses a JSON batch body into its sub-requests.
fn parse_requests(bytes: &[u8]) -> ApiResult<Vec<Value>> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return requests_of(json!({}));
    }
    requests_of(
        serde_json::from_slice::<Value>(bytes).map_err(|_| ApiError::bad_request(READ_FAILED))?,
    )
}

/// A multipart batch body: the `@jsonPayload` part holds the JSON, files come as
/// `requests.<index>.<field>` parts (streamed to temp files), other parts are ignored.
/// Returns the sub-request list and the uploads by index (keys without the prefix).
async fn read_multipart(
    state: &AppState,
    content_type: &str,
    body: Body,
    body_max: usize,
) -> ApiResult<(Vec<Value>, Vec<(usize, Upload)>)> {
    let limits = multipart::Limits {
        max_total_bytes: body_max as u64,
        max_text_bytes: body_max.min(state.options.body_limit_bytes) as u64,
        ..multipart::Limits::default()
    };
    let storage = LocalStorage::new(state.engine.dir());
    let form = multipart::read(
        body.into_data_stream(),
        content_type,
        Some(storage.tmp_dir()),
        &limits,
    )
    .await
    .map_err(|err| {
        if err.status == StatusCode::BAD_REQUEST {
            ApiError::bad_request(READ_FAILED)
        } else {
            err
        }
    })?;
    let payload = form
        .pairs
        .into_iter()
        .rev()
        .find(|(key, _)| key == JSON_PAYLOAD_KEY)
        .map(|(_, value)| value)
        .ok_or_else(|| ApiError::bad_request(READ_FAILED))?;
    let items = requests_of(
        serde_json::from_str::<Value>(&payload).map_err(|_| ApiError::bad_request(READ_FAILED))?,
    )?;
    let mut uploads = Vec::new();
    for mut upload in form.files {
        let Some(rest) = upload.key.strip_prefix("requests.") else {
            continue;
        };
        let Some((index, field)) = rest.split_once('.') else {
            continue;
        };
        let Ok(index) = index.parse::<usize>() else {
            continue;
        };
        upload.key = field.to_string();
        uploads.push((index, upload));
    }
    Ok((items, uploads))
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
            uploads: Vec::new(),
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
    body: Body,
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
    let requests_max =
        settings_usize(&settings, "/batch/maxRequests").unwrap_or(BATCH_REQUESTS_MAX_DEFAULT);
    let timeout_secs = settings
        .pointer("/batch/timeout")
        .and_then(Value::as_u64)
        .unwrap_or(BATCH_TIMEOUT_SECS_DEFAULT);
    let content_type = headers
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_string();
    let too_large = || ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "Request entity too large.");
    let (items, uploads) = if multipart::is_multipart(&content_type) {
        read_multipart(&state, &content_type, body, body_max).await?
    } else {
        // JSON bodies stay under the server's body limit too, as before.
        let limit = body_max.min(state.options.body_limit_bytes);
        let bytes = axum::body::to_bytes(body, limit)
            .await
            .map_err(|_| too_large())?;
        (parse_requests(&bytes)?, Vec::new())
    };
    let mut requests = validate_requests(items, requests_max)?;
    for (index, upload) in uploads {
        if let Some(request) = requests.get_mut(index) {
            request.uploads.push(upload);
        }
    }
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
