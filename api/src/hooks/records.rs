//! The record hook points of the API: `onRecord{Create,Update,Delete}Request` (with the model
//! hooks `onRecordCreate`/`Update`/`Delete` after them in the same chain),
//! `onRecordViewRequest`, `onRecordsListRequest` and `onRecordAfter*Success/Error`.
//!
//! Invariants:
//! 1. A request hook runs before the write's command, off the writer thread; what it sets on
//!    `e.record` becomes part of the body, and its `$app` writes are returned as a
//!    [`Joined`] for the write's own command (one request, one commit).
//! 2. A chain that never reaches its end (`e.next()` not called) writes nothing; the request
//!    answers with the hook's response, or 200 with an empty body (measured on the reference).
//! 3. No hook registered for the collection: no VM is touched.

use super::routes::into_response;
use super::writes::{self, Joined};
use super::{parse_outcome, script_error, Loaded};
use crate::access::{Auth, RequestData};
use crate::error::ApiResult;
use crate::model::record::zero_value;
use crate::model::Collection;
use crate::state::AppState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Go on with the (possibly changed) value and the hooks' writes, or answer now.
pub enum Flow<T> {
    /// Proceed.
    Go(T, Joined),
    /// The hooks stopped the chain: this is the answer.
    Respond(Response),
}

/// The write kinds with request hooks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Create.
    Create,
    /// Update.
    Update,
    /// Delete.
    Delete,
}

impl Action {
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Action::Create => ("onRecordCreateRequest", "onRecordCreate"),
            Action::Update => ("onRecordUpdateRequest", "onRecordUpdate"),
            Action::Delete => ("onRecordDeleteRequest", "onRecordDelete"),
        }
    }
    fn after(self, ok: bool) -> &'static str {
        match (self, ok) {
            (Action::Create, true) => "onRecordAfterCreateSuccess",
            (Action::Create, false) => "onRecordAfterCreateError",
            (Action::Update, true) => "onRecordAfterUpdateSuccess",
            (Action::Update, false) => "onRecordAfterUpdateError",
            (Action::Delete, true) => "onRecordAfterDeleteSuccess",
            (Action::Delete, false) => "onRecordAfterDeleteError",
        }
    }
}

pub(crate) fn request_json(auth: Option<&Auth>, data: &RequestData) -> Value {
    json!({
        "method": data.method,
        "path": "",
        "query": data.query,
        "headers": data.headers,
        "body": data.body,
        "auth": auth.map(|auth| json!({"collection": auth.collection.to_json(), "record": auth.record})),
    })
}

async fn run_chain(
    loaded: &Loaded,
    names: (&str, &str),
    event: Value,
) -> ApiResult<super::Outcome> {
    let out = loaded
        .pool
        .call(
            "__pl_record",
            vec![names.0.to_string(), names.1.to_string(), event.to_string()],
        )
        .await
        .map_err(|err| script_error(&err.to_string()))?;
    parse_outcome(&out)
}

fn hooked(state: &AppState, names: (&str, &str), collection: &Collection) -> Option<Arc<Loaded>> {
    let loaded = state.hooks.current()?;
    (loaded.registry.has(names.0, collection) || loaded.registry.has(names.1, collection))
        .then_some(loaded)
}

pub(crate) fn stopped(outcome: &super::Outcome) -> Response {
    match &outcome.response {
        Some(response) => into_response(response),
        None => StatusCode::OK.into_response(),
    }
}

/// The write request hooks of `action` on record `id` (update, delete; `None`: create).
/// Answers the body to write (with what the hooks set) and the hooks' writes.
pub async fn write_request(
    state: &Arc<AppState>,
    action: Action,
    collection: &Arc<Collection>,
    auth: Option<&Auth>,
    data: &RequestData,
    id: Option<&str>,
    mut body: Map<String, Value>,
) -> ApiResult<Flow<Map<String, Value>>> {
    let names = action.names();
    let Some(loaded) = hooked(state, names, collection) else {
        return Ok(Flow::Go(body, Joined::default()));
    };
    let existing = match id {
        Some(id) => Some(
            crate::access::load_record(state, collection, id)
                .await?
                .ok_or_else(crate::error::ApiError::not_found)?,
        ),
        None => None,
    };
    // The event's record: the stored one (or the zero record) with the body's fields loaded.
    let mut record = match existing {
        Some(record) => record,
        None => collection
            .fields
            .iter()
            .map(|f| (f.name().to_string(), zero_value(f)))
            .collect(),
    };
    if action != Action::Delete {
        for (key, value) in &body {
            if collection.field(key).is_some() {
                record.insert(key.clone(), value.clone());
            }
        }
    }
    let mut request = request_json(auth, data);
    request["body"] = Value::Object(body.clone());
    let event = json!({
        "collection": collection.to_json(),
        "record": record,
        "isNew": action == Action::Create,
        "request": request,
    });
    let outcome = run_chain(&loaded, names, event).await?;
    if !outcome.proceed {
        return Ok(Flow::Respond(stopped(&outcome)));
    }
    if let Some(record) = &outcome.record {
        for key in &outcome.changed {
            body.insert(key.clone(), record.get(key).cloned().unwrap_or(Value::Null));
        }
    }
    let joined = writes::prepare(state, outcome.writes).await?;
    Ok(Flow::Go(body, joined))
}

/// `onRecordAfter*Success` (`error: None`) or `…Error` after a write; their writes are a
/// commit of their own by the same actor. Failures are logged (the write is already done).
pub async fn after_write(
    state: &Arc<AppState>,
    action: Action,
    collection: &Arc<Collection>,
    auth: Option<&Auth>,
    record: Option<&Map<String, Value>>,
    error: Option<&crate::error::ApiError>,
) {
    let name = action.after(error.is_none());
    let Some(loaded) = state.hooks.current() else {
        return;
    };
    if !loaded.registry.has(name, collection) {
        return;
    }
    let event = json!({
        "collection": collection.to_json(),
        "record": record,
        "error": error.map(|e| e.message.clone()),
    });
    let result = async {
        let outcome = run_chain(&loaded, (name, ""), event).await?;
        writes::commit_alone(state, crate::access::actor_of(auth), outcome.writes).await
    }
    .await;
    if let Err(err) = result {
        tracing::error!(target: "hooks", hook = name, error = %err.message, "an after-write hook failed");
    }
}

/// `onRecordViewRequest`: the record to present (as the hooks left it).
pub async fn view_request(
    state: &Arc<AppState>,
    collection: &Arc<Collection>,
    auth: Option<&Auth>,
    data: &RequestData,
    record: Map<String, Value>,
) -> ApiResult<Flow<Map<String, Value>>> {
    let names = ("onRecordViewRequest", "");
    let Some(loaded) = hooked(state, names, collection) else {
        return Ok(Flow::Go(record, Joined::default()));
    };
    let event = json!({
        "collection": collection.to_json(),
        "record": record,
        "request": request_json(auth, data),
    });
    let outcome = run_chain(&loaded, names, event).await?;
    if !outcome.proceed {
        return Ok(Flow::Respond(stopped(&outcome)));
    }
    let joined = writes::prepare(state, outcome.writes).await?;
    Ok(Flow::Go(outcome.record.unwrap_or(record), joined))
}

/// `onRecordsListRequest`: the (presented) items to answer, as the hooks left them.
pub async fn list_request(
    state: &Arc<AppState>,
    collection: &Arc<Collection>,
    auth: Option<&Auth>,
    data: &RequestData,
    items: Vec<Value>,
) -> ApiResult<Flow<Vec<Value>>> {
    let names = ("onRecordsListRequest", "");
    let Some(loaded) = hooked(state, names, collection) else {
        return Ok(Flow::Go(items, Joined::default()));
    };
    let event = json!({
        "collection": collection.to_json(),
        "records": items,
        "request": request_json(auth, data),
    });
    let outcome = run_chain(&loaded, names, event).await?;
    if !outcome.proceed {
        return Ok(Flow::Respond(stopped(&outcome)));
    }
    let joined = writes::prepare(state, outcome.writes).await?;
    let items = outcome
        .records
        .map(|records| records.into_iter().map(Value::Object).collect())
        .unwrap_or(items);
    Ok(Flow::Go(items, joined))
}
