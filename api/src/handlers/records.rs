//! Record CRUD routes: `/api/collections/{c}/records[/{id}]`.
//!
//! HTTP glue only: each handler finds the collection (404 first, as before), reads the
//! query, body and caller, calls the records service (`crate::records`) and wraps the answer
//! (`fields` picking, list envelope, 204). Rules, validation, expansion and visibility are the
//! service's; the caller comes from the [`Caller`] extractor, which never rejects.

use super::common::{json_response, list_envelope, no_content, Query};
use crate::access::{actor_of, Auth, RequestData};
use crate::error::ApiResult;
use crate::extract::Caller;
use crate::hooks::records::{self as hooks, Action, Flow};
use crate::model::Collection;
use crate::records::{self, find_collection, present};
use crate::state::AppState;
use axum::extract::{Path, Query as QueryExtract, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Map, Value};
use std::sync::Arc;

/// Presents a single record as a JSON response (`expand` and `fields` from the query).
pub async fn present_one(
    state: &Arc<AppState>,
    auth: Option<&Auth>,
    collection: &Arc<Collection>,
    record: Map<String, Value>,
    query: &Query,
) -> ApiResult<Response> {
    let expand = query.get("expand").map(String::as_str);
    let mut items = present(state, auth, collection, vec![record], expand).await?;
    let item = items.pop().unwrap_or(Value::Null);
    Ok(json_response(query, item))
}

/// `GET /api/collections/{c}/records`
pub async fn records_list(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    QueryExtract(query): QueryExtract<Query>,
    caller: Caller,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let schema = state.schema();
    let collection = find_collection(&schema, &name)?;
    let data = RequestData::new("GET", &headers, &query);
    let auth = caller.0.as_ref();
    let at = crate::asof::requested(&state, &query).await?;
    let list = records::list(&state, &schema, &collection, auth, &query, &data);
    let page = crate::asof::scope(at, list).await?;
    let items = match hooks::list_request(&state, &collection, auth, &data, page.items).await? {
        Flow::Go(items, joined) => {
            crate::hooks::writes::commit_joined(&state, actor_of(auth), joined).await?;
            items
        }
        Flow::Respond(response) => return Ok(response),
    };
    let mut envelope = list_envelope(items, page.paging, page.total);
    if query
        .get(crate::records::WITH_POSITION_PARAM)
        .is_some_and(|v| crate::request::parse_bool(v) == Some(true))
    {
        envelope["position"] = Value::from(page.position);
    }
    let mut response = json_response(&query, envelope);
    response.headers_mut().insert(
        crate::records::POSITION_HEADER,
        axum::http::HeaderValue::from(page.position),
    );
    Ok(response)
}

/// `GET /api/collections/{c}/records/{id}`
pub async fn records_view(
    State(state): State<Arc<AppState>>,
    Path((name, id)): Path<(String, String)>,
    QueryExtract(query): QueryExtract<Query>,
    caller: Caller,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let schema = state.schema();
    let collection = find_collection(&schema, &name)?;
    let auth = caller.0.as_ref();
    let data = RequestData::new("GET", &headers, &query);
    let at = crate::asof::requested(&state, &query).await?;
    let position = at.as_ref().map(|at| at.seq);
    let view = records::view(&state, &schema, &collection, auth, id, &data);
    let record = crate::asof::scope(at.clone(), view).await?;
    let record = match hooks::view_request(&state, &collection, auth, &data, record).await? {
        Flow::Go(record, joined) => {
            crate::hooks::writes::commit_joined(&state, actor_of(auth), joined).await?;
            record
        }
        Flow::Respond(response) => return Ok(response),
    };
    let present = present_one(&state, auth, &collection, record, &query);
    let mut response = crate::asof::scope(at, present).await?;
    if let Some(position) = position {
        response.headers_mut().insert(
            crate::records::POSITION_HEADER,
            axum::http::HeaderValue::from(position),
        );
    }
    Ok(response)
}

/// `POST /api/collections/{c}/records`
pub async fn records_create(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    QueryExtract(query): QueryExtract<Query>,
    caller: Caller,
    headers: HeaderMap,
    body: crate::files::body::RecordBody,
) -> ApiResult<Response> {
    let schema = state.schema();
    let collection = find_collection(&schema, &name)?;
    let auth = caller.0.as_ref();
    let (body, uploads) = records::bind_uploads(&state, &collection, body);
    let data = RequestData::new("POST", &headers, &query);
    let create = Action::Create;
    let (body, joined) =
        match hooks::write_request(&state, create, &collection, auth, &data, None, body).await? {
            Flow::Go(body, joined) => (body, joined),
            Flow::Respond(response) => return Ok(response),
        };
    let result = records::create_record_with_files(
        &state,
        &schema,
        &collection,
        auth,
        body,
        data,
        uploads,
        joined,
    )
    .await;
    let (ok, err) = (result.as_ref().ok(), result.as_ref().err());
    hooks::after_write(&state, create, &collection, auth, ok, err).await;
    present_one(&state, auth, &collection, result?, &query).await
}

/// `PATCH /api/collections/{c}/records/{id}`
pub async fn records_update(
    State(state): State<Arc<AppState>>,
    Path((name, id)): Path<(String, String)>,
    QueryExtract(query): QueryExtract<Query>,
    caller: Caller,
    headers: HeaderMap,
    body: crate::files::body::RecordBody,
) -> ApiResult<Response> {
    let schema = state.schema();
    let collection = find_collection(&schema, &name)?;
    let auth = caller.0.as_ref();
    let (body, uploads) = records::bind_uploads(&state, &collection, body);
    let data = RequestData::new("PATCH", &headers, &query);
    let update = Action::Update;
    let target = Some(id.as_str());
    let (body, joined) =
        match hooks::write_request(&state, update, &collection, auth, &data, target, body).await? {
            Flow::Go(body, joined) => (body, joined),
            Flow::Respond(response) => return Ok(response),
        };
    let result = records::update_record_with_files(
        &state,
        &schema,
        &collection,
        auth,
        &id,
        body,
        data,
        uploads,
        joined,
    )
    .await;
    let (ok, err) = (result.as_ref().ok(), result.as_ref().err());
    hooks::after_write(&state, update, &collection, auth, ok, err).await;
    present_one(&state, auth, &collection, result?, &query).await
}

/// `DELETE /api/collections/{c}/records/{id}`
pub async fn records_delete(
    State(state): State<Arc<AppState>>,
    Path((name, id)): Path<(String, String)>,
    QueryExtract(query): QueryExtract<Query>,
    caller: Caller,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let schema = state.schema();
    let collection = find_collection(&schema, &name)?;
    let auth = caller.0.as_ref();
    let data = RequestData::new("DELETE", &headers, &query);
    let delete = Action::Delete;
    let target = Some(id.as_str());
    let joined =
        match hooks::write_request(&state, delete, &collection, auth, &data, target, Map::new())
            .await?
        {
            Flow::Go(_, joined) => joined,
            Flow::Respond(response) => return Ok(response),
        };
    let result =
        records::delete_record_joined(&state, &schema, &collection, auth, &id, data, joined).await;
    hooks::after_write(
        &state,
        delete,
        &collection,
        auth,
        None,
        result.as_ref().err(),
    )
    .await;
    result?;
    Ok(no_content())
}
