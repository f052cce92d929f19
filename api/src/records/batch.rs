//! A batch of record writes run as ONE writer command (one commit), for `POST /api/batch`.
//!
//! 1. Off the writer thread, each sub-request is routed and prepared in order with
//!    `super::write`'s `prepare_*` functions (rule locks, old-password checks, password
//!    hashing). The first sub-request that cannot be prepared fails the batch before anything
//!    is queued. `settings.batch.timeout` bounds this phase only: once the command is queued
//!    it runs to its commit or rollback, so a reply never misreports what was committed.
//! 2. On the writer thread, one command runs every prepared sub-request in order with the
//!    `run_*` functions, so later sub-requests see the staged effects of earlier ones. The
//!    first failure fails the command: its savepoint is rolled back and nothing of the batch
//!    is committed. A successful batch is one commit (one log frame).
//! 3. After the commit the records are presented (visibility, `expand`, `fields`) per
//!    sub-request, in request order.
//!
//! Invariants:
//! 1. The caller's `Authorization` applies to every sub-request; sub-request `Authorization`
//!    headers are ignored, other sub-request headers are merged over the caller's for the rules.
//! 2. Rules see `@request.context = "batch"` and the sub-request's method.
//! 3. Only `POST …/records`, `PUT …/records` (upsert), `PATCH …/records/{id}` and
//!    `DELETE …/records/{id}` are accepted; anything else fails the batch with a generic 400 at
//!    its index, as PocketBase does.

use super::present::{pick_fields, present};
use super::{find_collection, write, WriteInput};
use crate::access::{actor_of, Auth, RequestData};
use crate::error::{ApiError, ApiResult};
use crate::model::{Collection, Schema};
use crate::request::{form_urlencoded_pairs, percent_decode, Query};
use crate::state::AppState;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use engine::{Tx, Value as SqlValue};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// The message of a failed batch (a failing sub-request, or the preparation timeout).
pub const TRANSACTION_FAILED: &str = "Batch transaction failed.";

/// One sub-request as submitted (validated by the handler: method and url set).
pub struct SubRequest {
    /// `POST`, `PUT`, `PATCH` or `DELETE` (anything else fails at routing).
    pub method: String,
    /// The record route with its query string.
    pub url: String,
    /// The body object.
    pub body: Map<String, Value>,
    /// Headers merged over the caller's for the rules.
    pub headers: Map<String, Value>,
    /// Files sent as `requests.<index>.<field>` parts (keys without the prefix).
    pub uploads: Vec<crate::files::multipart::Upload>,
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
    /// The sub-request's uploads (shared with its prepared inputs), persisted once the
    /// whole batch has passed.
    uploads: crate::files::write::PendingUploads,
    collection: Arc<Collection>,
    query: Query,
}

/// What a sub-request did, as returned by the command.
enum Done {
    Record(Map<String, Value>),
    Deleted,
}

/// The envelope for a failing sub-request at `index` (`docs/wire/errors.md` "Batch failures").
pub fn batch_failure(index: usize, err: &ApiError) -> ApiError {
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

/// A routed sub-request URL: collection, optional record id, query.
struct Route {
    collection: String,
    id: Option<String>,
    query: Query,
}

/// Routes `/api/collections/{c}/records[/{id}][?query]`; `None` for anything else.
fn route(url: &str) -> Option<Route> {
    let (path, query_text) = url.split_once('?').unwrap_or((url, ""));
    let rest = path.strip_prefix(crate::routes::COLLECTIONS_PREFIX)?;
    let segments: Vec<&str> = rest.split('/').collect();
    // `+` is literal in a path (only query strings use it for a space).
    let decode = |segment: &str| -> Option<String> {
        Some(percent_decode(&segment.replace('+', "%2B"))).filter(|d| !d.is_empty())
    };
    let (collection, id) = match segments.as_slice() {
        [collection, "records"] => (decode(collection)?, None),
        [collection, "records", id] => (decode(collection)?, Some(decode(id)?)),
        _ => return None,
    };
    let query = form_urlencoded_pairs(query_text.as_bytes())
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
    auth: Option<&Auth>,
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
    let (body, uploads) = write::bind_uploads(
        state,
        &collection,
        crate::files::body::RecordBody {
            body: request.body,
            uploads: request.uploads,
        },
    );
    let with_uploads = |mut input: WriteInput| {
        input.uploads = uploads.clone();
        input
    };
    let prepared = match (request.method.as_str(), route.id) {
        ("POST", None) => Prepared::Create(with_uploads(
            write::prepare_create(schema, &collection, auth, body, data).await?,
        )),
        ("PUT", None) => {
            let id = body
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let update = if id.is_empty() {
                Err(ApiError::not_found())
            } else {
                write::prepare_update(
                    state,
                    schema,
                    &collection,
                    auth,
                    &id,
                    body.clone(),
                    data.clone(),
                )
                .await
                .map(with_uploads)
            };
            let create = write::prepare_create(schema, &collection, auth, body, data)
                .await
                .map(with_uploads);
            Prepared::Upsert {
                id,
                update: Box::new(update),
                create: Box::new(create),
            }
        }
        ("PATCH", Some(id)) => Prepared::Update(
            with_uploads(
                write::prepare_update(state, schema, &collection, auth, &id, body, data).await?,
            ),
            id,
        ),
        ("DELETE", Some(id)) => {
            Prepared::Delete(write::prepare_delete(schema, &collection, auth, data)?, id)
        }
        _ => return Err(ApiError::bad_request_default()),
    };
    Ok(Step {
        prepared,
        uploads,
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
        Prepared::Create(input) => write::run_create(tx, input).map(Done::Record),
        Prepared::Update(input, id) => write::run_update(tx, input, id).map(Done::Record),
        Prepared::Delete(input, id) => write::run_delete(tx, input, id).map(|()| Done::Deleted),
        Prepared::Upsert { id, update, create } => {
            if !id.is_empty() && staged_exists(tx, &step.collection, id)? {
                match update.as_ref() {
                    Ok(input) => write::run_update(tx, input, id).map(Done::Record),
                    Err(err) => Err(err.clone()),
                }
            } else {
                match create.as_ref() {
                    Ok(input) => write::run_create(tx, input).map(Done::Record),
                    Err(err) => Err(err.clone()),
                }
            }
        }
    }
}

/// Runs a batch: prepares every sub-request (within `timeout_secs`, 0 = unbounded), runs
/// them in one writer command, and presents the results in request order (`{"body",
/// "status"}` per sub-request). A failing sub-request fails the batch with the envelope of
/// [`batch_failure`] at its index.
pub async fn run(
    state: &Arc<AppState>,
    schema: &Arc<Schema>,
    auth: Option<&Auth>,
    caller_headers: &HeaderMap,
    requests: Vec<SubRequest>,
    timeout_secs: u64,
) -> ApiResult<Vec<Value>> {
    let prepare_all = async {
        let mut steps = Vec::with_capacity(requests.len());
        for (index, request) in requests.into_iter().enumerate() {
            let step = prepare_one(state, schema, auth, caller_headers, request)
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
        .write(actor_of(auth), move |tx| {
            let mut results = Vec::with_capacity(command_steps.len());
            for (index, step) in command_steps.iter().enumerate() {
                let done = run_one(tx, step).map_err(|err| batch_failure(index, &err))?;
                results.push(done);
            }
            // Files only once every sub-request has passed (a failed batch stores none).
            for step in command_steps.iter() {
                step.uploads.persist_ready(TRANSACTION_FAILED)?;
            }
            Ok(results)
        })
        .await?;

    let mut out = Vec::with_capacity(steps.len());
    for (step, done) in steps.iter().zip(outcome.value) {
        match done {
            Done::Deleted => out.push(json!({"body": null, "status": 204})),
            Done::Record(record) => {
                let mut items = present(
                    state,
                    auth,
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
    Ok(out)
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
}
