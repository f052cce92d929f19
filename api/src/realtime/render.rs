//! Turns one commit into the SSE frames of one session: topic matching, the access check
//! (listRule/viewRule plus the `filter` option), visibility, `expand` and `fields`.
//!
//! 1. Rules are checked in memory with `rules::eval` when they only touch the record and
//!    `@request`; otherwise (relations, `@collection`, ...) with one SQL query that evaluates
//!    the rule against the event's values placed in a one-row subquery aliased `main`, joined
//!    with the current database. This works for deletes too, whose row is gone.
//!    The `filter` option is compiled first as the list API compiles a client filter for the
//!    subscriber (`access::Where::add` with `client_filter`); a filter it rejects never
//!    matches, and the in-memory shortcut is only taken where it cannot differ from that SQL.
//! 4. A session whose bound auth is unproven on its stream (after a resume) gets no frames
//!    for a commit that has any for that auth ([`render`] returns `None`: hold).
//! 2. The JSON of an event is encoded once per distinct visibility (superuser or not, owner of
//!    an auth record or not, `expand`/`fields` options, and the viewer for `expand`), shared by
//!    every session through an [`EncodeCache`] that lives for one commit.
//! 3. Frames of one commit are ordered by change, then by subscription; each carries the id
//!    `<clientId>.<seq>.<part>` with `part = change_index * SUBSCRIPTIONS_MAX + topic_index`.

use super::session::SessionInner;
use super::sse;
use super::topic::Topic;
use super::SUBSCRIPTIONS_MAX;
use crate::access::{self, Auth, RequestData, Where, MAIN};
use crate::model::record::{from_row, to_storage, visible_json};
use crate::model::schema::Rule;
use crate::model::{Collection, Schema};
use crate::records::{pick_fields, present, viewer};
use crate::state::AppState;
use axum::body::Bytes;
use engine::{Change, Commit};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// One record change of a commit, decoded once per commit.
#[derive(Debug)]
pub struct RecordEvent {
    /// Index of the change inside the commit.
    pub change_index: usize,
    /// `create`, `update` or `delete`.
    pub action: &'static str,
    /// The collection (as the schema has it now).
    pub collection: Arc<Collection>,
    /// The full record JSON (hidden fields included): new values, or old ones for a delete.
    pub record: Map<String, Value>,
}

/// Decodes the record changes of a commit against the current schema; changes of collections
/// that no longer exist are dropped.
pub fn record_events(schema: &Schema, commit: &Commit) -> Vec<RecordEvent> {
    let mut out = Vec::new();
    for (change_index, change) in commit.changes.iter().enumerate() {
        let (action, collection_id, values) = match change {
            Change::RecordCreated {
                collection_id,
                values,
                ..
            } => ("create", collection_id, values),
            Change::RecordUpdated {
                collection_id,
                values,
                ..
            } => ("update", collection_id, values),
            Change::RecordDeleted {
                collection_id, old, ..
            } => ("delete", collection_id, old),
            _ => continue,
        };
        let Some(collection) = schema.find(collection_id) else {
            continue;
        };
        let columns: Vec<String> = values.iter().map(|(name, _)| name.clone()).collect();
        let row: Vec<engine::Value> = values.iter().map(|(_, value)| value.clone()).collect();
        out.push(RecordEvent {
            change_index,
            action,
            collection: Arc::clone(collection),
            record: from_row(collection, &columns, &row),
        });
    }
    out
}

/// Encoded event data shared between sessions, for one commit.
#[derive(Debug, Default)]
pub struct EncodeCache {
    data: HashMap<EncodeKey, Arc<str>>,
    /// Guests' outcome per (change index, subscription string): `None` = not delivered.
    guest: HashMap<(usize, Arc<str>), Option<Bytes>>,
}

#[derive(Debug, Hash, PartialEq, Eq)]
struct EncodeKey {
    change_index: usize,
    superuser: bool,
    owner: bool,
    expand: Option<String>,
    fields: Option<String>,
    /// Only set when `expand` is: expanded relations depend on the viewer's rules.
    viewer: Option<(String, String)>,
}

/// Whether `auth` passes `rule` (plus an optional client `filter`) for `record`.
///
/// The filter is a *client* filter: it gets exactly the restrictions the list API applies
/// to the same caller (`access::Where::add` with `client_filter`: hidden and secret fields,
/// `@request.*` and `@collection.*` for non-superusers, the listRule of every traversed
/// collection, emails only where visible). A filter those restrictions reject never
/// matches, so comparing deliveries cannot reveal what the list API would not.
#[expect(
    clippy::too_many_arguments,
    reason = "the inputs of one access decision"
)]
pub async fn allowed(
    state: &Arc<AppState>,
    schema: &Schema,
    collection: &Arc<Collection>,
    rule: &Rule,
    filter: Option<&rules::Expr>,
    record: &Map<String, Value>,
    auth: Option<&Auth>,
    data: &RequestData,
) -> bool {
    let superuser = access::is_superuser(auth);
    let rule_expr = match rule {
        _ if superuser => None,
        Rule::Locked => return false,
        Rule::Open => None,
        Rule::Expr(expr) => Some(expr),
    };
    if rule_expr.is_none() && filter.is_none() {
        return true;
    }
    let Some(info) = schema.info(&collection.id) else {
        return false;
    };
    let request = access::request_info(auth, data);
    if let Some(expr) = rule_expr {
        let passes = match rules::eval(expr, schema, info, record, &request) {
            Ok(passes) => passes,
            Err(rules::EvalError::NeedsDatabase) => {
                let mut clause = Where::default();
                if clause
                    .add(schema, collection, expr, &request, false)
                    .is_err()
                {
                    return false;
                }
                sql_check(state, collection, clause, record).await
            }
            Err(_) => false,
        };
        if !passes {
            return false;
        }
    }
    let Some(filter) = filter else {
        return true;
    };
    // The list API's compilation decides what the filter may touch.
    let mut clause = Where::default();
    if clause
        .add(schema, collection, filter, &request, true)
        .is_err()
    {
        return false;
    }
    // In memory only where the restricted SQL cannot differ from the plain evaluation:
    // traversals (which AND in listRules) already need the database, and only an auth
    // collection's own `email` is masked (by `emailVisibility`).
    if superuser || !collection.is_auth() {
        match rules::eval(filter, schema, info, record, &request) {
            Ok(passes) => return passes,
            Err(rules::EvalError::NeedsDatabase) => {}
            Err(_) => return false,
        }
    }
    sql_check(state, collection, clause, record).await
}

/// Checks a client filter the way the list API compiles it for `auth` (the same restrictions
/// and errors), without running it: for endpoints that answer a rejected filter with an
/// error instead of an empty result.
pub fn check_client_filter(
    schema: &Schema,
    collection: &Collection,
    filter: &rules::Expr,
    auth: Option<&Auth>,
    data: &RequestData,
) -> crate::error::ApiResult<()> {
    let request = access::request_info(auth, data);
    Where::default().add(schema, collection, filter, &request, true)
}

/// Runs a compiled clause against the record's values in a one-row subquery aliased `main`.
async fn sql_check(
    state: &Arc<AppState>,
    collection: &Collection,
    mut clause: Where,
    record: &Map<String, Value>,
) -> bool {
    let mut columns = Vec::new();
    for (name, value) in to_storage(collection, record) {
        let placeholder = clause.params.push(match value {
            engine::Value::Null => rules::SqlValue::Null,
            engine::Value::Int(int) => rules::SqlValue::Int(int),
            engine::Value::Real(real) => rules::SqlValue::Real(real),
            engine::Value::Text(text) => rules::SqlValue::Text(text),
        });
        columns.push(format!("{placeholder} AS {}", engine::quote_ident(&name)));
    }
    let sql = format!(
        "SELECT 1 FROM (SELECT {}) {MAIN} {} {} LIMIT 1",
        columns.join(", "),
        clause.joins_sql(),
        clause.where_sql()
    );
    let params = clause.engine_params();
    match state.read(move |conn| conn.query(&sql, &params)).await {
        Ok(rows) => !rows.rows.is_empty(),
        Err(err) => {
            tracing::warn!(error = %err.message, "realtime rule check failed; not delivering");
            false
        }
    }
}

/// True when `topic` names `collection` (by id, or by name case-insensitively).
fn topic_names(topic: &Topic, collection: &Collection) -> bool {
    topic.collection == collection.id || topic.collection.eq_ignore_ascii_case(&collection.name)
}

/// Renders the frames of `events` (one commit at `seq`) for a session, or `None` when the
/// commit must wait: the session's bound auth has not proven itself on the current stream
/// (it was resumed by a request that only named it) and the commit has frames for it.
///
/// Such a stream gets no events at all until the owner proves itself
/// ([`super::hub::Hub::set_subscriptions`]), not even those a guest could see: the official
/// SDK re-attaches its listeners only after `PB_CONNECT`, so events that reach it before
/// its re-POST are dropped on the floor (measured), while its re-POST with its token
/// follows `PB_CONNECT` at once and releases the whole backlog in order. A stranger who
/// named the session gets nothing; commits with no frames for the owner pass.
pub async fn render(
    state: &Arc<AppState>,
    schema: &Schema,
    inner: &SessionInner,
    seq: engine::Seq,
    events: &[RecordEvent],
    cache: &mut EncodeCache,
) -> Option<Vec<sse::Frame>> {
    let frames = render_as(
        state,
        schema,
        inner,
        inner.auth.as_ref(),
        seq,
        events,
        cache,
    )
    .await;
    (inner.auth.is_none() || inner.auth_proven || frames.is_empty()).then_some(frames)
}

/// Renders the frames of `events` for a session's subscriptions as seen by `auth`.
async fn render_as(
    state: &Arc<AppState>,
    schema: &Schema,
    inner: &SessionInner,
    auth: Option<&Auth>,
    seq: engine::Seq,
    events: &[RecordEvent],
    cache: &mut EncodeCache,
) -> Vec<sse::Frame> {
    let mut frames = Vec::new();
    let subscriptions = inner.subscriptions_at(seq);
    if subscriptions.is_empty() {
        return frames;
    }
    let guest = auth.is_none();
    for event in events {
        let record_id = event.record.get("id").and_then(Value::as_str).unwrap_or("");
        for (topic_index, topic) in subscriptions.iter().enumerate() {
            if !topic.valid || seq <= topic.floor || !topic_names(topic, &event.collection) {
                continue;
            }
            if topic
                .record_id
                .as_deref()
                .is_some_and(|wanted| wanted != record_id)
            {
                continue;
            }
            let part = (event.change_index * SUBSCRIPTIONS_MAX + topic_index) as u64;
            if inner
                .skip
                .is_some_and(|(skip_seq, skip_part)| skip_seq == seq && part <= skip_part)
            {
                continue;
            }
            // A guest's decision and payload depend only on the event and the subscription
            // string (rule, filter, query, headers, expand and fields all come from it), so
            // every guest session with the same string shares one evaluation per commit.
            let tail = if guest {
                let key = (event.change_index, Arc::clone(&topic.raw));
                match cache.guest.get(&key) {
                    Some(decided) => decided.clone(),
                    None => {
                        let decided = decide(state, schema, auth, event, topic, cache)
                            .await
                            .map(|payload| sse::event_tail(&topic.raw, &payload));
                        cache.guest.insert(key, decided.clone());
                        decided
                    }
                }
            } else {
                decide(state, schema, auth, event, topic, cache)
                    .await
                    .map(|payload| sse::event_tail(&topic.raw, &payload))
            };
            let Some(tail) = tail else {
                continue;
            };
            frames.push(sse::Frame::Event { seq, part, tail });
        }
    }
    let refreshes =
        super::views::refresh_frames(state, schema, subscriptions, auth, seq, events, inner.skip);
    frames.extend(refreshes.await);
    frames
}

/// The access decision for one event and subscription of a session, and when allowed the
/// event's `data` JSON for it.
async fn decide(
    state: &Arc<AppState>,
    schema: &Schema,
    auth: Option<&Auth>,
    event: &RecordEvent,
    topic: &Topic,
    cache: &mut EncodeCache,
) -> Option<Arc<str>> {
    let filter = match &topic.filter {
        None => None,
        Some(Some(expr)) => Some(&**expr),
        Some(None) => return None,
    };
    let rule = schema.rule(&event.collection.id, topic.rule_kind());
    let data = RequestData {
        method: "GET".into(),
        context: "realtime".into(),
        body: Map::new(),
        query: topic.query.clone(),
        headers: topic.headers.clone(),
    };
    if !allowed(
        state,
        schema,
        &event.collection,
        &rule,
        filter,
        &event.record,
        auth,
        &data,
    )
    .await
    {
        return None;
    }
    Some(encode(state, auth, event, topic, cache).await)
}

/// The `data` JSON of one event for one viewer, from the cache when possible.
async fn encode(
    state: &Arc<AppState>,
    auth: Option<&Auth>,
    event: &RecordEvent,
    topic: &Topic,
    cache: &mut EncodeCache,
) -> Arc<str> {
    let view = viewer(auth);
    let owner = event.collection.is_auth()
        && view.auth.is_some_and(|(collection_id, id)| {
            collection_id == event.collection.id
                && event.record.get("id").and_then(Value::as_str) == Some(id)
        });
    let key = EncodeKey {
        change_index: event.change_index,
        superuser: view.superuser,
        owner,
        expand: topic.expand.clone(),
        fields: topic.fields.clone(),
        viewer: topic
            .expand
            .as_ref()
            .and_then(|_| auth.map(|auth| (auth.collection.id.clone(), auth.id().to_string()))),
    };
    if let Some(data) = cache.data.get(&key) {
        return Arc::clone(data);
    }
    let record = match &topic.expand {
        Some(expand) => present(
            state,
            auth,
            &event.collection,
            vec![event.record.clone()],
            Some(expand),
        )
        .await
        .ok()
        .and_then(|mut items| items.pop())
        .unwrap_or_else(|| Value::Object(visible_json(&event.collection, &event.record, view))),
        None => Value::Object(visible_json(&event.collection, &event.record, view)),
    };
    let record = match &topic.fields {
        Some(fields) => pick_fields(record, fields),
        None => record,
    };
    let data: Arc<str> = Arc::from(json!({"record": record, "action": event.action}).to_string());
    cache.data.insert(key, Arc::clone(&data));
    data
}
