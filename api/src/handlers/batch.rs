//! `POST /api/batch`: several record writes as one atomic commit (api.md §3, errors.md §5).
//!
//! The flow is prepare, then run:
//! 1. Off the writer thread, each sub-request is routed and prepared in order with the records
//!    handlers' `prepare_*` functions (rule locks, old-password checks, password hashing). The
//!    first sub-request that cannot be prepared fails the batch before anything is queued.
//! 2. On the writer thread, ONE command runs every prepared sub-request in order with the
//!    records handlers' `run_*` functions, so later sub-requests see the staged effects of
//!    earlier ones. The first failure fails the command: its savepoint is rolled back and
//!    nothing of the batch is committed. A successful batch is one commit (one log frame).
//! 3. After the commit the records are presented (visibility, `expand`, `fields`) per
//!    sub-request, in request order.
//!
//! Invariants and deliberate limits:
//! 1. The caller's `Authorization` applies to every sub-request; sub-request `Authorization`
//!    headers are ignored, other sub-request headers are merged over the caller's for the rules.
//! 2. Rules see `@request.context = "batch"` and the sub-request's method.
//! 3. Only `POST …/records`, `PUT …/records` (upsert), `PATCH …/records/{id}` and
//!    `DELETE …/records/{id}` are accepted; anything else fails the batch with a generic 400 at
//!    its index, as PocketBase does.
//! 4. `settings.batch.timeout` bounds the preparation phase only: once the command is queued
//!    it runs to its commit or rollback, so a reply never misreports what was committed.
//! 5. Multipart bodies are read through their `@jsonPayload` part; file parts are refused
//!    (record file uploads are not supported yet).

use super::common::{self, json_response, pick_fields, Query};
use super::records::{self, find_collection, WriteInput};
use crate::access::{self, actor_of, Auth, RequestData};
use crate::error::{field_error, ApiError, ApiResult};
use crate::model::{Collection, Schema};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Query as QueryExtract, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use engine::{Tx, Value as SqlValue};
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
const TRANSACTION_FAILED: &str = "Batch transaction failed.";

/// One sub-request as submitted.
struct SubRequest {
    method: String,
    url: String,
    body: Map<String, Value>,
    headers: Map<String, Value>,
}

/// What a routed sub-request will do inside the command.
enum Prepared {
    Create(WriteInput),
    Update(WriteInput, String),
    Delete(WriteInput, String),
    /// `PUT`: update when a record with `id` exists in the staged state, else create. Both
    /// variants are prepared up front because only the writer knows which one applies.
    Upsert {
        id: String,
        update: Box<ApiResult<WriteInput>>,
        create: Box<ApiResult<WriteInput>>,
    },
}

/// A prepared sub-request plus what its response needs.
struct Step {
    prepared: Prepared,
    collection: Arc<Collection>,
    query: Query,
}

/// What a sub-request did, as returned by the command.
enum Done {
    Record(Map<String, Value>),
    Deleted,
}

/// The errors.md §5 envelope for a failing sub-request at `index`.
fn batch_failure(index: usize, err: &ApiError) -> ApiError {
    let mut item = Map::new();
    item.insert("code".into(), json!("batch_request_failed"));
    item.insert("message".into(), json!("Batch request failed."));
    item.insert("response".into(), err.body());
    let mut requests = Map::new();
    requests.insert(index.to_string(), Value::Object(item));
    let mut data = Map::new();
    data.insert("requests".into(), Value::Object(requests));
    ApiError::validation(TRANSACTION_FAILED, data)
}

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

/// Validates the sub-request list (errors.md §5: required, max length, method, url).
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

/// A routed sub-request URL: collection, optional record id, query.
struct Route {
    collection: String,
    id: Option<String>,
    query: Query,
}

/// Routes `/api/collections/{c}/records[/{id}][?query]`; `None` for anything else.
fn route(url: &str) -> Option<Route> {
    let (path, query_text) = url.split_once('?').unwrap_or((url, ""));
    let rest = path.strip_prefix("/api/collections/")?;
    let segments: Vec<&str> = rest.split('/').collect();
    // `+` is literal in a path (only query strings use it for a space).
    let decode = |segment: &str| -> Option<String> {
        Some(common::percent_decode(&segment.replace('+', "%2B"))).filter(|d| !d.is_empty())
    };
    let (collection, id) = match segments.as_slice() {
        [collection, "records"] => (decode(collection)?, None),
        [collection, "records", id] => (decode(collection)?, Some(decode(id)?)),
        _ => return None,
    };
    let query = common::form_urlencoded_pairs(query_text.as_bytes())
        .into_iter()
        .collect();
    Some(Route {
        collection,
        id,
        query,
    })
}

/// The caller's headers with the sub-request's merged over them (except `Authorization`).
fn merged_headers(caller: &HeaderMap, extra: &Map<String, Value>) -> HeaderMap {
    let mut headers = caller.clone();
    for (name, value) in extra {
        if name.eq_ignore_ascii_case("authorization") {
            continue;
        }
        let text = match value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()),
            HeaderValue::from_str(&text),
        ) {
            headers.insert(name, value);
        }
    }
    headers
}

/// Routes and prepares one sub-request (off the writer thread).
async fn prepare_one(
    state: &Arc<AppState>,
    schema: &Arc<Schema>,
    auth: &Option<Auth>,
    caller_headers: &HeaderMap,
    request: SubRequest,
) -> ApiResult<Step> {
    let Some(route) = route(&request.url) else {
        return Err(ApiError::bad_request_default());
    };
    let collection = find_collection(schema, &route.collection)?;
    crate::ratelimit::check_batch_request(
        state,
        auth,
        &request.method,
        &request.url,
        &collection,
        &request.body,
    )?;
    let headers = merged_headers(caller_headers, &request.headers);
    let mut data = RequestData::new(&request.method, &headers, &route.query);
    data.context = "batch".into();
    let body = request.body;
    let prepared = match (request.method.as_str(), route.id) {
        ("POST", None) => {
            Prepared::Create(records::prepare_create(schema, &collection, auth, body, data).await?)
        }
        ("PUT", None) => {
            let id = body
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let update = if id.is_empty() {
                Err(ApiError::not_found())
            } else {
                records::prepare_update(
                    state,
                    schema,
                    &collection,
                    auth,
                    &id,
                    body.clone(),
                    data.clone(),
                )
                .await
            };
            let create = records::prepare_create(schema, &collection, auth, body, data).await;
            Prepared::Upsert {
                id,
                update: Box::new(update),
                create: Box::new(create),
            }
        }
        ("PATCH", Some(id)) => Prepared::Update(
            records::prepare_update(state, schema, &collection, auth, &id, body, data).await?,
            id,
        ),
        ("DELETE", Some(id)) => Prepared::Delete(
            records::prepare_delete(schema, &collection, auth, data)?,
            id,
        ),
        _ => return Err(ApiError::bad_request_default()),
    };
    Ok(Step {
        prepared,
        collection,
        query: route.query,
    })
}

/// True when the staged state holds record `id` of `collection`.
fn staged_exists(tx: &Tx<'_>, collection: &Collection, id: &str) -> ApiResult<bool> {
    let sql = format!(
        "SELECT 1 FROM {} WHERE id = ?1 LIMIT 1",
        engine::quote_ident(&collection.name)
    );
    let rows = tx
        .query(&sql, &[SqlValue::Text(id.to_string())])
        .map_err(ApiError::from)?;
    Ok(!rows.is_empty())
}

/// Runs one prepared sub-request inside the batch command.
fn run_one(tx: &mut Tx<'_>, step: &Step) -> ApiResult<Done> {
    match &step.prepared {
        Prepared::Create(input) => records::run_create(tx, input).map(Done::Record),
        Prepared::Update(input, id) => records::run_update(tx, input, id).map(Done::Record),
        Prepared::Delete(input, id) => records::run_delete(tx, input, id).map(|()| Done::Deleted),
        Prepared::Upsert { id, update, create } => {
            if !id.is_empty() && staged_exists(tx, &step.collection, id)? {
                match update.as_ref() {
                    Ok(input) => records::run_update(tx, input, id).map(Done::Record),
                    Err(err) => Err(err.clone()),
                }
            } else {
                match create.as_ref() {
                    Ok(input) => records::run_create(tx, input).map(Done::Record),
                    Err(err) => Err(err.clone()),
                }
            }
        }
    }
}

/// `POST /api/batch`
pub async fn batch(
    State(state): State<Arc<AppState>>,
    QueryExtract(query): QueryExtract<Query>,
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
    let auth = access::authenticate(&state, &headers).await;
    let schema = state.schema();

    let prepare_all = async {
        let mut steps = Vec::with_capacity(requests.len());
        for (index, request) in requests.into_iter().enumerate() {
            let step = prepare_one(&state, &schema, &auth, &headers, request)
                .await
                .map_err(|err| batch_failure(index, &err))?;
            steps.push(step);
        }
        Ok::<Vec<Step>, ApiError>(steps)
    };
    let steps = if timeout_secs == 0 {
        prepare_all.await?
    } else {
        tokio::time::timeout(std::time::Duration::from_secs(timeout_secs), prepare_all)
            .await
            .map_err(|_| ApiError::bad_request(TRANSACTION_FAILED))??
    };

    let steps = Arc::new(steps);
    let command_steps = Arc::clone(&steps);
    let outcome = state
        .write(actor_of(&auth), move |tx| {
            let mut results = Vec::with_capacity(command_steps.len());
            for (index, step) in command_steps.iter().enumerate() {
                let done = run_one(tx, step).map_err(|err| batch_failure(index, &err))?;
                results.push(done);
            }
            Ok(results)
        })
        .await?;

    let mut out = Vec::with_capacity(steps.len());
    for (step, done) in steps.iter().zip(outcome.value) {
        match done {
            Done::Deleted => out.push(json!({"body": null, "status": 204})),
            Done::Record(record) => {
                let mut items = records::present(
                    &state,
                    &auth,
                    &step.collection,
                    vec![record],
                    step.query.get("expand").map(String::as_str),
                )
                .await?;
                let mut body = items.pop().unwrap_or(Value::Null);
                if let Some(fields) = step.query.get("fields").filter(|f| !f.trim().is_empty()) {
                    body = pick_fields(body, fields);
                }
                out.push(json!({"body": body, "status": 200}));
            }
        }
    }
    Ok(json_response(&query, Value::Array(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_only_record_paths() {
        let ok = route("/api/collections/posts/records?fields=id%2Ctitle&expand=a").expect("route");
        assert_eq!(ok.collection, "posts");
        assert_eq!(ok.id, None);
        assert_eq!(ok.query.get("fields").map(String::as_str), Some("id,title"));
        let with_id = route("/api/collections/po%20sts/records/abc").expect("route");
        assert_eq!(with_id.collection, "po sts");
        assert_eq!(with_id.id.as_deref(), Some("abc"));
        assert!(route("/api/collections/posts/records/").is_none());
        assert!(route("/api/collections/posts").is_none());
        assert!(route("/api/settings").is_none());
        assert!(route("/api/collections/posts/records/a/b").is_none());
    }

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
