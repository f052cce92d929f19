//! Record CRUD: `/api/collections/{c}/records[/{id}]`.
//!
//! 1. Reads run on the read pool with the rule compiled into the query.
//! 2. Writes are commands on the writer thread: they re-read what they depend on from the
//!    staged state, stage the change, then check the rule against the staged row, so a failing
//!    rule rolls the change back and nothing half-done is ever committed.
//! 3. Expensive work (password hashing) happens before the command is queued.
//! 4. Whatever the body's encoding (JSON, form, `@jsonPayload`), a write meets the same checks:
//!    manage-only fields (`verified`, `email`) are compared by their coerced value in
//!    `auth_form_checks`, and rules see `@request.body` with every modifier key replaced by
//!    the field's resulting value (`rule_data`), so a modifier is a change like any other.
//! 5. Auth record ids are unique across all auth collections (`auth_id_unique`).
//! 6. `filter` and `sort` go through the one rules resolver, with the same statuses.

use super::common::{
    json_response, list_envelope, no_content, paging, parse_body, read_short, Query,
};
use crate::access::{self, actor_of, is_superuser, Auth, RequestData, Where, MAIN};
use crate::auth::{password, token};
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::model::record::{
    self, apply_body, from_row, to_storage, validate, visible_json, visible_json_owned, Viewer,
};
use crate::model::schema::Rule;
use crate::model::{Collection, Schema, SUPERUSERS_ID};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query as QueryExtract, State};
use axum::http::HeaderMap;
use axum::response::Response;
use engine::{Change, Tx, Value as SqlValue};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Deepest `expand` nesting.
pub const EXPAND_DEPTH_MAX: usize = 6;
/// Most distinct `expand` paths per request.
pub const EXPAND_PATHS_MAX: usize = 16;
/// Most back-relation records expanded per record.
pub const BACK_RELATION_MAX: usize = 1000;

/// Finds the collection of a records route.
pub fn find_collection(schema: &Schema, name_or_id: &str) -> ApiResult<Arc<Collection>> {
    schema
        .find(name_or_id)
        .cloned()
        .ok_or_else(|| ApiError::not_found().with_message("Missing collection context."))
}

impl ApiError {
    /// Replaces the message.
    pub fn with_message(mut self, message: &str) -> Self {
        self.message = crate::error::sentenize(message);
        self
    }
}

fn superusers_only() -> ApiError {
    ApiError::forbidden("Only superusers can perform this action.")
}

/// Compiles a client `filter` and a rule into a WHERE for `collection`.
fn build_where(
    schema: &Schema,
    collection: &Collection,
    auth: &Option<Auth>,
    rule: Option<&Rule>,
    filter: Option<&str>,
    data: &RequestData,
) -> ApiResult<Where> {
    let info = access::request_info(auth, data);
    let mut clause = Where::default();
    if let Some(Rule::Expr(expr)) = rule {
        if !is_superuser(auth) {
            clause.add(schema, collection, expr, &info, false)?;
        }
    }
    if let Some(filter) = filter.filter(|f| !f.trim().is_empty()) {
        let expr = rules::parse(filter).map_err(access::rule_error)?;
        clause.add(schema, collection, &expr, &info, !is_superuser(auth))?;
    }
    Ok(clause)
}

/// Loads records matching a WHERE (with optional order/limit).
async fn query_records(
    state: &Arc<AppState>,
    collection: &Arc<Collection>,
    clause: &Where,
    order: &str,
    limit: Option<(i64, i64)>,
) -> ApiResult<Vec<Map<String, Value>>> {
    let mut params = clause.engine_params();
    let group = if clause.distinct {
        format!("GROUP BY {MAIN}.id")
    } else {
        String::new()
    };
    let limit_sql = match limit {
        Some((limit, offset)) => {
            params.push(SqlValue::Int(limit));
            params.push(SqlValue::Int(offset));
            format!("LIMIT ?{} OFFSET ?{}", params.len() - 1, params.len())
        }
        None => String::new(),
    };
    let sql = format!(
        "SELECT {MAIN}.* FROM {} {MAIN} {} {} {group} {order} {limit_sql}",
        engine::quote_ident(&collection.name),
        clause.joins_sql(),
        clause.where_sql(),
    );
    // Bounded lookups (by id, no joins) run inline when a connection is idle.
    let short = clause.joins.is_empty() && order.is_empty() && limit.is_none_or(|(n, _)| n <= 1);
    let rows = if short {
        read_short(state, move |conn| conn.query(&sql, &params)).await?
    } else {
        state.read(move |conn| conn.query(&sql, &params)).await?
    };
    Ok(rows
        .rows
        .iter()
        .map(|row| from_row(collection, &rows.columns, row))
        .collect())
}

/// Turns full records into what the caller may see, with `expand` applied.
pub async fn present(
    state: &Arc<AppState>,
    auth: &Option<Auth>,
    collection: &Arc<Collection>,
    records: Vec<Map<String, Value>>,
    expand: Option<&str>,
) -> ApiResult<Vec<Value>> {
    let schema = state.schema();
    let mut expand_paths: Vec<String> = Vec::new();
    for path in expand.unwrap_or("").split(',').map(|p| p.replace(' ', "")) {
        if !path.is_empty()
            && !expand_paths.contains(&path)
            && expand_paths.len() < EXPAND_PATHS_MAX
            && valid_expand_path(&schema, collection, &path)
        {
            expand_paths.push(path);
        }
    }
    let expanded = if expand_paths.is_empty() {
        vec![None; records.len()]
    } else {
        expand_records(state, auth, collection, &records, &expand_paths, 0).await?
    };
    let mut out = Vec::with_capacity(records.len());
    for (mut record, expansion) in records.into_iter().zip(expanded) {
        // (`from_row` already set them; only a different value is replaced.)
        if record.get("collectionId").and_then(Value::as_str) != Some(collection.id.as_str()) {
            record.insert("collectionId".into(), json!(collection.id));
        }
        if record.get("collectionName").and_then(Value::as_str) != Some(collection.name.as_str()) {
            record.insert("collectionName".into(), json!(collection.name));
        }
        let mut visible = visible_json_owned(collection, record, viewer(auth));
        if let Some(expansion) = expansion {
            visible.insert("expand".into(), Value::Object(expansion));
        }
        out.push(Value::Object(visible));
    }
    Ok(out)
}

/// Presents a single record as a JSON response (`expand` and `fields` from the query).
pub async fn present_one(
    state: &Arc<AppState>,
    auth: &Option<Auth>,
    collection: &Arc<Collection>,
    record: Map<String, Value>,
    query: &Query,
) -> ApiResult<Response> {
    let expand = query.get("expand").map(String::as_str);
    let mut items = present(state, auth, collection, vec![record], expand).await?;
    let item = items.pop().unwrap_or(Value::Null);
    Ok(json_response(query, item))
}

/// True when every segment of an expand path names a relation (or back-relation) of the
/// collection reached so far; PocketBase drops invalid paths entirely.
fn valid_expand_path(schema: &Schema, collection: &Collection, path: &str) -> bool {
    let segments: Vec<&str> = path.split('.').collect();
    if segments.len() > EXPAND_DEPTH_MAX {
        return false;
    }
    let mut current: Arc<Collection> = match schema.find(&collection.id) {
        Some(found) => Arc::clone(found),
        None => return false,
    };
    for segment in segments {
        let next = if let Some(field) = current.field(segment).filter(|f| f.kind() == "relation") {
            schema.find(field.str_opt("collectionId")).cloned()
        } else if let Some((other, via)) = segment.split_once("_via_") {
            schema.find(other).cloned().filter(|source| {
                source.field(via).is_some_and(|f| {
                    f.kind() == "relation"
                        && (f.str_opt("collectionId") == current.id
                            || f.str_opt("collectionId") == current.name)
                })
            })
        } else {
            None
        };
        match next {
            Some(next) => current = next,
            None => return false,
        }
    }
    true
}

/// The output viewer of a caller.
pub fn viewer(auth: &Option<Auth>) -> Viewer<'_> {
    Viewer {
        superuser: is_superuser(auth),
        auth: auth.as_ref().map(|a| (a.collection.id.as_str(), a.id())),
        manager: false,
    }
}

/// One record's `expand` object (`None`: no valid path).
type Expansion = Option<Map<String, Value>>;

/// The ids a relation value holds.
fn relation_ids(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(id)) if !id.is_empty() => vec![id.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// Expands `paths` for a batch of records with one query per path segment (not per record);
/// returns each record's `expand` object (`None` when no path was valid).
fn expand_records<'a>(
    state: &'a Arc<AppState>,
    auth: &'a Option<Auth>,
    collection: &'a Arc<Collection>,
    records: &'a [Map<String, Value>],
    paths: &'a [String],
    depth: usize,
) -> futures::future::BoxFuture<'a, ApiResult<Vec<Expansion>>> {
    Box::pin(async move {
        if depth >= EXPAND_DEPTH_MAX || records.is_empty() {
            return Ok(vec![None; records.len()]);
        }
        let schema = state.schema();
        // Group paths by their first segment.
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for path in paths {
            let (head, rest) = match path.split_once('.') {
                Some((head, rest)) => (head.to_string(), Some(rest.to_string())),
                None => (path.clone(), None),
            };
            match groups.iter_mut().find(|(h, _)| *h == head) {
                Some((_, rests)) => rests.extend(rest),
                None => groups.push((head, rest.into_iter().collect())),
            }
        }
        let mut out: Vec<Map<String, Value>> = vec![Map::new(); records.len()];
        let mut any_valid = false;
        for (head, rests) in groups {
            if let Some(field) = collection.field(&head).filter(|f| f.kind() == "relation") {
                let Some(target) = schema.find(field.str_opt("collectionId")).cloned() else {
                    continue;
                };
                any_valid = true;
                let mut all_ids: Vec<String> = Vec::new();
                for record in records {
                    for id in relation_ids(record.get(&head)) {
                        if !all_ids.contains(&id) {
                            all_ids.push(id);
                        }
                    }
                }
                if all_ids.is_empty() {
                    continue;
                }
                let related =
                    load_visible_related(state, auth, &schema, &target, "id", &all_ids).await?;
                let nested = if rests.is_empty() {
                    vec![None; related.len()]
                } else {
                    expand_records(state, auth, &target, &related, &rests, depth + 1).await?
                };
                let presented: Vec<(String, Value)> = related
                    .iter()
                    .zip(nested)
                    .map(|(item, nested)| {
                        let mut visible = visible_json(&target, item, viewer(auth));
                        if let Some(nested) = nested {
                            visible.insert("expand".into(), Value::Object(nested));
                        }
                        let id = item
                            .get("id")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string();
                        (id, Value::Object(visible))
                    })
                    .collect();
                for (record, expansion) in records.iter().zip(out.iter_mut()) {
                    let items: Vec<Value> = relation_ids(record.get(&head))
                        .iter()
                        .filter_map(|id| {
                            presented
                                .iter()
                                .find(|(pid, _)| pid == id)
                                .map(|(_, v)| v.clone())
                        })
                        .collect();
                    if field.is_multi() {
                        if !items.is_empty() {
                            expansion.insert(head.clone(), Value::Array(items));
                        }
                    } else if let Some(first) = items.into_iter().next() {
                        expansion.insert(head.clone(), first);
                    }
                }
                continue;
            }
            // Back relation `<collection>_via_<field>`.
            let Some((other, via)) = head.split_once("_via_") else {
                continue;
            };
            let Some(source) = schema.find(other).cloned() else {
                continue;
            };
            let Some(via_field) = source.field(via).filter(|f| f.kind() == "relation") else {
                continue;
            };
            let target_id = via_field.str_opt("collectionId");
            if target_id != collection.id && target_id != collection.name {
                continue;
            }
            any_valid = true;
            let ids: Vec<String> = records
                .iter()
                .filter_map(|r| r.get("id").and_then(Value::as_str).map(str::to_string))
                .collect();
            let related = load_back_related(
                state,
                auth,
                &schema,
                &source,
                via,
                via_field.is_multi(),
                &ids,
            )
            .await?;
            let nested = if rests.is_empty() {
                vec![None; related.len()]
            } else {
                expand_records(state, auth, &source, &related, &rests, depth + 1).await?
            };
            let presented: Vec<(Vec<String>, Value)> = related
                .iter()
                .zip(nested)
                .map(|(item, nested)| {
                    let mut visible = visible_json(&source, item, viewer(auth));
                    if let Some(nested) = nested {
                        visible.insert("expand".into(), Value::Object(nested));
                    }
                    (relation_ids(item.get(via)), Value::Object(visible))
                })
                .collect();
            let unique = crate::model::collection::has_unique_index(&source.indexes(), via);
            for (record, expansion) in records.iter().zip(out.iter_mut()) {
                let id = record.get("id").and_then(Value::as_str).unwrap_or("");
                let items: Vec<Value> = presented
                    .iter()
                    .filter(|(targets, _)| targets.iter().any(|t| t == id))
                    .take(BACK_RELATION_MAX)
                    .map(|(_, v)| v.clone())
                    .collect();
                if unique {
                    if let Some(first) = items.into_iter().next() {
                        expansion.insert(head.clone(), first);
                    }
                } else if !items.is_empty() {
                    expansion.insert(head.clone(), Value::Array(items));
                }
            }
        }
        Ok(if any_valid {
            out.into_iter().map(Some).collect()
        } else {
            vec![None; records.len()]
        })
    })
}

async fn load_visible_related(
    state: &Arc<AppState>,
    auth: &Option<Auth>,
    schema: &Schema,
    target: &Arc<Collection>,
    column: &str,
    ids: &[String],
) -> ApiResult<Vec<Map<String, Value>>> {
    let rule = schema.rule(&target.id, "viewRule");
    if matches!(rule, Rule::Locked) && !is_superuser(auth) {
        return Ok(Vec::new());
    }
    let data = RequestData {
        method: "GET".into(),
        context: "expand".into(),
        ..RequestData::default()
    };
    let mut clause = build_where(schema, target, auth, Some(&rule), None, &data)?;
    let placeholders: Vec<String> = ids
        .iter()
        .map(|id| clause.params.push(rules::SqlValue::Text(id.clone())))
        .collect();
    clause.conditions.push(format!(
        "{MAIN}.{} IN ({})",
        engine::quote_ident(column),
        placeholders.join(",")
    ));
    query_records(state, target, &clause, "", None).await
}

async fn load_back_related(
    state: &Arc<AppState>,
    auth: &Option<Auth>,
    schema: &Schema,
    source: &Arc<Collection>,
    via: &str,
    multi: bool,
    ids: &[String],
) -> ApiResult<Vec<Map<String, Value>>> {
    let rule = schema.rule(&source.id, "viewRule");
    if (matches!(rule, Rule::Locked) && !is_superuser(auth)) || ids.is_empty() {
        return Ok(Vec::new());
    }
    let data = RequestData {
        method: "GET".into(),
        context: "expand".into(),
        ..RequestData::default()
    };
    let mut clause = build_where(schema, source, auth, Some(&rule), None, &data)?;
    let placeholders: Vec<String> = ids
        .iter()
        .map(|id| clause.params.push(rules::SqlValue::Text(id.clone())))
        .collect();
    let list = placeholders.join(",");
    let column = format!("{MAIN}.{}", engine::quote_ident(via));
    clause.conditions.push(if multi {
        format!("EXISTS (SELECT 1 FROM json_each(CASE WHEN json_valid({column}) THEN {column} ELSE '[]' END) WHERE value IN ({list}))")
    } else {
        format!("{column} IN ({list})")
    });
    let limit = (BACK_RELATION_MAX * ids.len()) as i64;
    query_records(state, source, &clause, "", Some((limit, 0))).await
}

/// `GET /api/collections/{c}/records`
pub async fn records_list(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    QueryExtract(query): QueryExtract<Query>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let schema = state.schema();
    let collection = find_collection(&schema, &name)?;
    let auth = access::authenticate(&state, &headers).await;
    let rule = schema.rule(&collection.id, "listRule");
    if matches!(rule, Rule::Locked) && !is_superuser(&auth) {
        return Err(superusers_only());
    }
    let paging = paging(&query)?;
    let filter = query.get("filter").map(String::as_str);
    if filter.is_some_and(|f| f.len() > rules::FILTER_CHARS_MAX) {
        return Err(ApiError::bad_request_default());
    }
    let data = RequestData::new("GET", &headers, &query);
    let clause = build_where(&schema, &collection, &auth, Some(&rule), filter, &data)?;
    // The count runs without the sort's parameters (their placeholders are not in it).
    let count_clause = clause.clone();
    let mut clause = clause;
    // A present but blank `sort` is a 400 (the reference's); only an empty one means none.
    let order = match query.get("sort").filter(|s| !s.is_empty()) {
        Some(sort) => {
            // One resolver for filter and sort: relation paths and every access check (with
            // the same statuses) go through the rules compiler, for views too.
            let items = rules::parse_sort(sort).map_err(access::rule_error)?;
            if collection.is_view()
                && items
                    .iter()
                    .any(|item| matches!(item, rules::SortItem::RowId { .. }))
            {
                // A view has no rowid: 400, as on the reference (measured).
                return Err(ApiError::bad_request_default());
            }
            let info = access::request_info(&auth, &data);
            let coll_info = schema
                .info(&collection.id)
                .ok_or_else(|| ApiError::internal("collection missing from the schema"))?;
            let options = rules::CompileOptions {
                client_filter: !is_superuser(&auth),
            };
            let body = rules::compile_sort(
                &items,
                &*schema,
                coll_info,
                MAIN,
                &info,
                &mut clause.params,
                &options,
            )
            .map_err(access::rule_error)?;
            if body.is_empty() {
                String::new()
            } else {
                format!("ORDER BY {body}")
            }
        }
        None if collection.is_view() => String::new(),
        None => format!("ORDER BY {MAIN}.rowid"),
    };
    let offset = (paging.page - 1).saturating_mul(paging.per_page);
    // One scan for the page and the total when the plan sorts every matching row anyway
    // (a filter on one table, a sort no index serves): the count is taken by a function
    // in the page query's WHERE (see `engine::ReadConn::query_counted`); otherwise, or when
    // SQLite's plan could stop early, a separate COUNT query as before.
    let (counted_page, counted_total) = if !paging.skip_total
        && !collection.is_view()
        && !clause.distinct
        && clause.joins.is_empty()
        && !clause.conditions.is_empty()
        && !order.is_empty()
    {
        let mut params = clause.engine_params();
        params.push(SqlValue::Int(paging.per_page));
        params.push(SqlValue::Int(offset));
        let conditions = clause.conditions.join(" AND ");
        let table = engine::quote_ident(&collection.name);
        let tail = format!(
            "{order} LIMIT ?{} OFFSET ?{}",
            params.len() - 1,
            params.len()
        );
        let plain = format!("SELECT {MAIN}.* FROM {table} {MAIN} WHERE {conditions} {tail}");
        let sql = format!(
            "SELECT {MAIN}.* FROM {table} {MAIN} WHERE {conditions} AND {}(CASE WHEN {conditions} THEN 1 ELSE 0 END) {tail}",
            engine::ROW_COUNTER_FN,
        );
        let (rows, total) = state
            .read(move |conn| conn.query_counted(&sql, &plain, &params))
            .await?;
        (Some(rows), total)
    } else {
        (None, None)
    };
    let total = if paging.skip_total {
        None
    } else if counted_total.is_some() {
        counted_total
    } else {
        let params = count_clause.engine_params();
        // Without joins every row is one record: a plain count avoids DISTINCT's temp b-tree.
        let counted = if count_clause.distinct || !count_clause.joins.is_empty() {
            format!("COUNT(DISTINCT {MAIN}.id)")
        } else {
            "COUNT(*)".to_string()
        };
        let sql = format!(
            "SELECT {counted} FROM {} {MAIN} {} {}",
            engine::quote_ident(&collection.name),
            count_clause.joins_sql(),
            count_clause.where_sql()
        );
        let rows = state.read(move |conn| conn.query(&sql, &params)).await?;
        Some(rows.rows.first().and_then(|r| r[0].as_i64()).unwrap_or(0))
    };
    let records = match counted_page {
        Some(rows) => rows
            .rows
            .iter()
            .map(|row| from_row(&collection, &rows.columns, row))
            .collect(),
        None => {
            query_records(
                &state,
                &collection,
                &clause,
                &order,
                Some((paging.per_page, offset)),
            )
            .await?
        }
    };
    let items = present(
        &state,
        &auth,
        &collection,
        records,
        query.get("expand").map(String::as_str),
    )
    .await?;
    Ok(json_response(&query, list_envelope(items, paging, total)))
}

/// `GET /api/collections/{c}/records/{id}`
pub async fn records_view(
    State(state): State<Arc<AppState>>,
    Path((name, id)): Path<(String, String)>,
    QueryExtract(query): QueryExtract<Query>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let schema = state.schema();
    let collection = find_collection(&schema, &name)?;
    let auth = access::authenticate(&state, &headers).await;
    let rule = schema.rule(&collection.id, "viewRule");
    if matches!(rule, Rule::Locked) && !is_superuser(&auth) {
        return Err(superusers_only());
    }
    let data = RequestData::new("GET", &headers, &query);
    let mut clause = build_where(&schema, &collection, &auth, Some(&rule), None, &data)?;
    clause.add_eq("id", SqlValue::Text(id));
    let mut records = query_records(&state, &collection, &clause, "", Some((1, 0))).await?;
    let Some(record) = records.pop() else {
        return Err(ApiError::not_found());
    };
    present_one(&state, &auth, &collection, record, &query).await
}

/// What a write command needs to know about the request (built by the `prepare_*`
/// functions off the writer thread, consumed by the `run_*` functions on it).
pub struct WriteInput {
    /// The collection.
    pub collection: Arc<Collection>,
    /// The schema snapshot the request was checked against.
    pub schema: Arc<Schema>,
    /// The caller.
    pub auth: Option<Auth>,
    /// The submitted body.
    pub body: Map<String, Value>,
    /// Request data for the rules.
    pub data: RequestData,
    /// The new password's hash, computed before queueing.
    pub password_hash: Option<String>,
    /// The caller may manage auth records (superuser).
    pub manager: bool,
}

/// Maps a staging error: unique violations become `validation_not_unique` on the field.
fn staging_error(err: engine::Error, message: &str) -> ApiError {
    match err {
        engine::Error::Constraint(violation)
            if violation.kind == engine::ConstraintKind::Unique =>
        {
            let column = violation
                .columns
                .into_iter()
                .next()
                .unwrap_or_else(|| "id".to_string());
            let mut errors = FieldErrors::default();
            errors.add(
                &column,
                "validation_not_unique",
                "Value must be unique.",
                None,
            );
            errors.into_error(message)
        }
        other => ApiError::from(other),
    }
}

/// Checks that relation ids exist (in the staged state).
fn check_relations(
    tx: &Tx<'_>,
    schema: &Schema,
    collection: &Collection,
    record: &Map<String, Value>,
    errors: &mut FieldErrors,
) -> ApiResult<()> {
    for field in collection.fields.iter().filter(|f| f.kind() == "relation") {
        let ids: Vec<String> = match record.get(field.name()) {
            Some(Value::String(id)) if !id.is_empty() => vec![id.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect(),
            _ => continue,
        };
        if ids.is_empty() {
            continue;
        }
        let Some(target) = schema.find(field.str_opt("collectionId")) else {
            errors.add(
                field.name(),
                "validation_missing_rel_collection",
                "Relation connection is missing or cannot be accessed.",
                None,
            );
            continue;
        };
        let placeholders: Vec<String> = (1..=ids.len()).map(|n| format!("?{n}")).collect();
        let sql = format!(
            "SELECT COUNT(*) FROM {} WHERE id IN ({})",
            engine::quote_ident(&target.name),
            placeholders.join(",")
        );
        let params: Vec<SqlValue> = ids.iter().map(|id| SqlValue::Text(id.clone())).collect();
        let rows = tx.query(&sql, &params).map_err(ApiError::from)?;
        let found = rows.rows.first().and_then(|r| r[0].as_i64()).unwrap_or(0);
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        if found != distinct.len() as i64 {
            errors.add(
                field.name(),
                "validation_missing_rel_records",
                "Failed to find all relation records with the provided ids.",
                None,
            );
        }
    }
    Ok(())
}

/// True when the staged row `id` passes the rule. `stored`: the row's record JSON as stored
/// (when the caller has it); a rule that needs no other row (`rules::needs_database`) is then
/// decided in memory by `rules::eval` (which mirrors the compiled SQL, as realtime relies on)
/// instead of a query on the writer thread. Anything else, or an evaluation error, takes the
/// SQL path.
fn staged_row_passes(
    tx: &Tx<'_>,
    input: &WriteInput,
    data: &RequestData,
    expr: &rules::Expr,
    id: &str,
    stored: Option<&Map<String, Value>>,
) -> ApiResult<bool> {
    let info = access::request_info(&input.auth, data);
    if let Some(record) = stored {
        if let Some(coll_info) = input.schema.info(&input.collection.id) {
            if !rules::needs_database(expr, &*input.schema, coll_info) {
                if let Ok(passes) = rules::eval(expr, &*input.schema, coll_info, record, &info) {
                    return Ok(passes);
                }
            }
        }
    }
    let mut clause = Where::default();
    clause.add(&input.schema, &input.collection, expr, &info, false)?;
    clause.add_eq("id", SqlValue::Text(id.to_string()));
    let sql = format!(
        "SELECT 1 FROM {} {MAIN} {} {} LIMIT 1",
        engine::quote_ident(&input.collection.name),
        clause.joins_sql(),
        clause.where_sql()
    );
    let rows = tx
        .query(&sql, &clause.engine_params())
        .map_err(ApiError::from)?;
    Ok(!rows.is_empty())
}

/// The request data a write's rule sees: `@request.body` with every modifier key
/// (`field+`, `+field`, `field-`) replaced by the field's resulting value under its plain
/// name, computed from `base` (the stored record, or the zero record on create) exactly as
/// the write applies it. So `@request.body.owner:changed = false` also catches
/// `{"owner+": ..}`, and `:isset`/`:length` see the value the record gets (PocketBase's
/// `ReplaceModifiers`, measured on v0.40.6). Keys that are not a modifier of a field the
/// caller may set stay as sent.
pub(crate) fn rule_data(input: &WriteInput, base: &Map<String, Value>) -> RequestData {
    let mut data = input.data.clone();
    data.body = body_for_rules(
        &input.collection,
        &input.body,
        base,
        is_superuser(&input.auth),
    );
    data
}

/// See [`rule_data`].
pub(crate) fn body_for_rules(
    collection: &Collection,
    body: &Map<String, Value>,
    base: &Map<String, Value>,
    superuser: bool,
) -> Map<String, Value> {
    let modifier_of = |key: &str| -> Option<String> {
        key.strip_suffix('+')
            .or_else(|| key.strip_prefix('+'))
            .or_else(|| key.strip_suffix('-'))
            .filter(|name| collection.field(name).is_some())
            .map(str::to_string)
    };
    if !body.keys().any(|key| modifier_of(key).is_some()) {
        return body.clone();
    }
    let mut resolved = base.clone();
    let touched = apply_body(collection, body, &mut resolved, superuser);
    let mut out = Map::new();
    let mut replaced = Vec::new();
    for (key, value) in body {
        match modifier_of(key) {
            Some(name) if touched.contains(&name) => replaced.push(name),
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    for name in replaced {
        let value = resolved.get(&name).cloned().unwrap_or(Value::Null);
        out.insert(name, value);
    }
    out
}

fn load_staged(
    tx: &Tx<'_>,
    collection: &Collection,
    id: &str,
) -> ApiResult<Option<Map<String, Value>>> {
    let sql = format!(
        "SELECT * FROM {} WHERE id = ?1",
        engine::quote_ident(&collection.name)
    );
    let rows = tx
        .query(&sql, &[SqlValue::Text(id.to_string())])
        .map_err(ApiError::from)?;
    Ok(rows
        .rows
        .first()
        .map(|row| from_row(collection, &rows.columns, row)))
}

/// A token names a record by collection *and* id, but the reference keeps auth record ids
/// unique across every auth collection (issue #12 hole 5): an id already used in another auth
/// collection (staged state, so a batch sees its own earlier creates) is
/// `validation_invalid_auth_id`, as measured on PocketBase v0.40.6. A duplicate inside the
/// same collection stays the unique index's `validation_not_unique`.
fn auth_id_unique(
    tx: &Tx<'_>,
    schema: &Schema,
    collection: &Collection,
    id: &str,
    errors: &mut FieldErrors,
) -> ApiResult<()> {
    for other in &schema.collections {
        if !other.is_auth() || other.id == collection.id {
            continue;
        }
        let sql = format!(
            "SELECT 1 FROM {} WHERE id = ?1 LIMIT 1",
            engine::quote_ident(&other.name)
        );
        let rows = tx
            .query(&sql, &[SqlValue::Text(id.to_string())])
            .map_err(ApiError::from)?;
        if !rows.is_empty() {
            errors.add(
                "id",
                "validation_invalid_auth_id",
                "Invalid or duplicated auth record id.",
                None,
            );
            return Ok(());
        }
    }
    Ok(())
}

/// Auth-collection form checks that run before field validation (stage 1).
fn auth_form_checks(
    input: &WriteInput,
    existing: Option<&Map<String, Value>>,
    manager: bool,
    message: &str,
) -> ApiResult<()> {
    if !input.collection.is_auth() {
        return Ok(());
    }
    let mut errors = FieldErrors::default();
    let password = input
        .body
        .get("password")
        .and_then(Value::as_str)
        .unwrap_or("");
    let confirm = input
        .body
        .get("passwordConfirm")
        .and_then(Value::as_str)
        .unwrap_or("");
    let password_sent =
        input.body.contains_key("password") || input.body.contains_key("passwordConfirm");
    if existing.is_none() || password_sent {
        if password.is_empty() {
            errors.add("password", "validation_required", "Cannot be blank.", None);
        }
        if confirm.is_empty() {
            errors.add(
                "passwordConfirm",
                "validation_required",
                "Cannot be blank.",
                None,
            );
        } else if confirm != password {
            errors.add(
                "passwordConfirm",
                "validation_values_mismatch",
                "Values don't match.",
                None,
            );
        }
    }
    // Manage-only fields are compared by the value they would get (coerced like any field
    // value), so `"true"`, `1` or a form body's `verified=true` are caught like JSON `true`.
    let submitted = |name: &str| -> Option<Value> {
        let value = input.body.get(name)?;
        Some(match input.collection.field(name) {
            Some(field) => record::coerce(field, value),
            None => value.clone(),
        })
    };
    if !manager {
        match existing {
            Some(old) => {
                if let Some(email) = submitted("email") {
                    if email.as_str() != old.get("email").and_then(Value::as_str) {
                        errors.add(
                            "email",
                            "validation_values_mismatch",
                            "Values don't match.",
                            None,
                        );
                    }
                }
                if let Some(verified) = submitted("verified") {
                    if verified.as_bool() != old.get("verified").and_then(Value::as_bool) {
                        errors.add(
                            "verified",
                            "validation_values_mismatch",
                            "Values don't match.",
                            None,
                        );
                    }
                }
            }
            None => {
                if submitted("verified").and_then(|v| v.as_bool()) == Some(true)
                    && input.collection.id != SUPERUSERS_ID
                {
                    errors.add(
                        "verified",
                        "validation_values_mismatch",
                        "Values don't match.",
                        None,
                    );
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.into_error(message))
    }
}

fn password_field_checks(
    collection: &Collection,
    body: &Map<String, Value>,
    errors: &mut FieldErrors,
) {
    let Some(password) = body.get("password").and_then(Value::as_str) else {
        return;
    };
    let Some(field) = collection.field("password") else {
        return;
    };
    let min = field.num_opt("min").unwrap_or(0.0) as usize;
    let max = match field.num_opt("max").unwrap_or(0.0) as usize {
        0 => 71,
        m => m,
    };
    let count = password.chars().count();
    if count < min {
        errors.add(
            "password",
            "validation_min_text_constraint",
            &format!("Must be at least {min} character(s)."),
            None,
        );
    } else if count > max {
        errors.add(
            "password",
            "validation_max_text_constraint",
            &format!("Must be less than {max} character(s)."),
            None,
        );
    }
}

/// Creates a record inside a command.
pub fn run_create(tx: &mut Tx<'_>, input: &WriteInput) -> ApiResult<Map<String, Value>> {
    let manager = input.manager;
    const FAILED: &str = "Failed to create record.";
    let collection = &input.collection;
    auth_form_checks(input, None, manager, FAILED)?;
    let superuser = is_superuser(&input.auth);
    let mut record = Map::new();
    for field in &collection.fields {
        record.insert(field.name().to_string(), record::zero_value(field));
    }
    let data = rule_data(input, &record);
    apply_body(collection, &input.body, &mut record, superuser);
    let mut errors = FieldErrors::default();
    // The id: given or generated.
    let id = match input
        .body
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
    {
        Some(id) => {
            let id_field = collection.field("id");
            let len = id.chars().count();
            let min = id_field.and_then(|f| f.num_opt("min")).unwrap_or(15.0) as usize;
            let max = id_field.and_then(|f| f.num_opt("max")).unwrap_or(15.0) as usize;
            if len < min {
                errors.add(
                    "id",
                    "validation_min_text_constraint",
                    &format!("Must be at least {min} character(s)."),
                    Some(json!({"min": min})),
                );
            } else if len > max {
                errors.add(
                    "id",
                    "validation_max_text_constraint",
                    &format!("Must be no more than {max} character(s)."),
                    Some(json!({"max": max})),
                );
            } else if !id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            {
                errors.add(
                    "id",
                    "validation_invalid_format",
                    "Invalid value format.",
                    None,
                );
            }
            id.to_string()
        }
        None => token::new_record_id(),
    };
    if collection.is_auth() && !errors.0.contains_key("id") {
        auth_id_unique(tx, &input.schema, collection, &id, &mut errors)?;
    }
    record.insert("id".into(), json!(id));
    let now = record::format_ms(tx.timestamp_ms());
    for field in &collection.fields {
        match field.kind() {
            "autodate" if field.bool_opt("onCreate") || field.bool_opt("onUpdate") => {
                record.insert(field.name().to_string(), json!(now));
            }
            "text" if field.name() != "id" => {
                let pattern = field.str_opt("autogeneratePattern");
                if !pattern.is_empty()
                    && record
                        .get(field.name())
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .is_empty()
                {
                    record.insert(
                        field.name().to_string(),
                        json!(record::autogenerate(pattern)),
                    );
                }
            }
            _ => {}
        }
    }
    if collection.is_auth() {
        record.insert(
            "password".into(),
            json!(input.password_hash.clone().unwrap_or_default()),
        );
        record.insert("tokenKey".into(), json!(token::new_token_key()));
        if collection.id == SUPERUSERS_ID {
            record.insert("verified".into(), json!(true));
        }
        password_field_checks(collection, &input.body, &mut errors);
    }
    validate(collection, &record, &mut errors);
    check_relations(tx, &input.schema, collection, &record, &mut errors)?;
    if !errors.is_empty() {
        return Err(errors.into_error(FAILED));
    }
    let values = to_storage(collection, &record);
    let rule = match input.schema.rule(&collection.id, "createRule") {
        Rule::Expr(expr) if !superuser => Some(expr),
        _ => None,
    };
    // The would-be row as stored (what realtime and a later read see), for the rule.
    let stored = rule.as_ref().map(|_| {
        let (columns, row): (Vec<String>, Vec<SqlValue>) = values.iter().cloned().unzip();
        from_row(collection, &columns, &row)
    });
    tx.stage(Change::RecordCreated {
        collection_id: collection.id.clone(),
        id: id.clone(),
        values,
    })
    .map_err(|err| staging_error(err, FAILED))?;
    if let Some(expr) = rule {
        if !staged_row_passes(tx, input, &data, &expr, &id, stored.as_ref())? {
            return Err(ApiError::bad_request(FAILED));
        }
    }
    Ok(record)
}

async fn hash_if_sent(body: &Map<String, Value>) -> ApiResult<Option<String>> {
    match body.get("password").and_then(Value::as_str) {
        Some(plain) if !plain.is_empty() && plain.len() <= 1024 => {
            let plain = plain.to_string();
            let hash = tokio::task::spawn_blocking(move || password::hash_password(&plain))
                .await
                .map_err(ApiError::internal)?;
            Ok(Some(hash))
        }
        _ => Ok(None),
    }
}

/// `POST /api/collections/{c}/records`
pub async fn records_create(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    QueryExtract(query): QueryExtract<Query>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult<Response> {
    let schema = state.schema();
    let collection = find_collection(&schema, &name)?;
    let auth = access::authenticate(&state, &headers).await;
    let body = parse_body(&headers, &bytes)?;
    let record = create_record(
        &state,
        &schema,
        &collection,
        &auth,
        body,
        RequestData::new("POST", &headers, &query),
    )
    .await?;
    present_one(&state, &auth, &collection, record, &query).await
}

/// Checks and prepares a create off the writer thread (rule lock, password hashing).
pub async fn prepare_create(
    schema: &Arc<Schema>,
    collection: &Arc<Collection>,
    auth: &Option<Auth>,
    body: Map<String, Value>,
    mut data: RequestData,
) -> ApiResult<WriteInput> {
    if collection.is_view() {
        return Err(ApiError::bad_request("Unsupported collection type."));
    }
    let rule = schema.rule(&collection.id, "createRule");
    if matches!(rule, Rule::Locked) && !is_superuser(auth) {
        return Err(superusers_only());
    }
    let password_hash = if collection.is_auth() {
        hash_if_sent(&body).await?
    } else {
        None
    };
    data.body = body.clone();
    Ok(WriteInput {
        collection: Arc::clone(collection),
        schema: Arc::clone(schema),
        auth: auth.clone(),
        body,
        data,
        password_hash,
        manager: is_superuser(auth),
    })
}

/// Creates a record through the writer (one commit).
pub async fn create_record(
    state: &Arc<AppState>,
    schema: &Arc<Schema>,
    collection: &Arc<Collection>,
    auth: &Option<Auth>,
    body: Map<String, Value>,
    data: RequestData,
) -> ApiResult<Map<String, Value>> {
    let input = prepare_create(schema, collection, auth, body, data).await?;
    let outcome = state
        .write(actor_of(auth), move |tx| run_create(tx, &input))
        .await?;
    Ok(outcome.value)
}

/// Updates a record inside a command.
pub fn run_update(tx: &mut Tx<'_>, input: &WriteInput, id: &str) -> ApiResult<Map<String, Value>> {
    let manager = input.manager;
    const FAILED: &str = "Failed to update record.";
    let collection = &input.collection;
    let superuser = is_superuser(&input.auth);
    let Some(existing) = load_staged(tx, collection, id)? else {
        return Err(ApiError::not_found());
    };
    if !superuser {
        if let Rule::Expr(expr) = input.schema.rule(&collection.id, "updateRule") {
            let data = rule_data(input, &existing);
            if !staged_row_passes(tx, input, &data, &expr, id, Some(&existing))? {
                return Err(ApiError::not_found());
            }
        }
    }
    if let Some(new_id) = input.body.get("id").and_then(Value::as_str) {
        if new_id != id {
            let mut errors = FieldErrors::default();
            errors.add(
                "id",
                "validation_pk_change",
                "The record primary key cannot be changed.",
                None,
            );
            return Err(errors.into_error(FAILED));
        }
    }
    auth_form_checks(input, Some(&existing), manager, FAILED)?;
    let mut record = existing.clone();
    apply_body(collection, &input.body, &mut record, superuser);
    record.insert("id".into(), json!(id));
    let now = record::format_ms(tx.timestamp_ms());
    for field in &collection.fields {
        if field.kind() == "autodate" && field.bool_opt("onUpdate") {
            record.insert(field.name().to_string(), json!(now));
        }
    }
    let mut errors = FieldErrors::default();
    if collection.is_auth() {
        if let Some(hash) = &input.password_hash {
            record.insert("password".into(), json!(hash));
            password_field_checks(collection, &input.body, &mut errors);
        }
        let email_changed = record.get("email") != existing.get("email");
        if input.password_hash.is_some() || email_changed {
            record.insert("tokenKey".into(), json!(token::new_token_key()));
        }
    }
    validate(collection, &record, &mut errors);
    check_relations(tx, &input.schema, collection, &record, &mut errors)?;
    if !errors.is_empty() {
        return Err(errors.into_error(FAILED));
    }
    tx.stage(Change::RecordUpdated {
        collection_id: collection.id.clone(),
        id: id.to_string(),
        values: to_storage(collection, &record),
    })
    .map_err(|err| staging_error(err, FAILED))?;
    Ok(record)
}

/// `PATCH /api/collections/{c}/records/{id}`
pub async fn records_update(
    State(state): State<Arc<AppState>>,
    Path((name, id)): Path<(String, String)>,
    QueryExtract(query): QueryExtract<Query>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult<Response> {
    let schema = state.schema();
    let collection = find_collection(&schema, &name)?;
    let auth = access::authenticate(&state, &headers).await;
    let body = parse_body(&headers, &bytes)?;
    let record = update_record(
        &state,
        &schema,
        &collection,
        &auth,
        &id,
        body,
        RequestData::new("PATCH", &headers, &query),
    )
    .await?;
    present_one(&state, &auth, &collection, record, &query).await
}

/// True when a (non-superuser) caller satisfies an auth collection's manageRule for the
/// record `id`: such a caller may change email, verified and password without the old one.
async fn passes_manage_rule(
    state: &Arc<AppState>,
    schema: &Arc<Schema>,
    collection: &Arc<Collection>,
    auth: &Option<Auth>,
    id: &str,
) -> ApiResult<bool> {
    if !collection.is_auth() || auth.is_none() {
        return Ok(false);
    }
    let Rule::Expr(expr) = schema.rule(&collection.id, "manageRule") else {
        return Ok(false);
    };
    let info = access::request_info(auth, &RequestData::default());
    let mut clause = Where::default();
    clause.add(schema, collection, &expr, &info, false)?;
    clause.add_eq("id", SqlValue::Text(id.to_string()));
    let sql = format!(
        "SELECT 1 FROM {} {MAIN} {} {} LIMIT 1",
        engine::quote_ident(&collection.name),
        clause.joins_sql(),
        clause.where_sql()
    );
    let params = clause.engine_params();
    let rows = state.read(move |conn| conn.query(&sql, &params)).await?;
    Ok(!rows.is_empty())
}

/// Checks and prepares an update off the writer thread (rule lock, old password, hashing).
pub async fn prepare_update(
    state: &Arc<AppState>,
    schema: &Arc<Schema>,
    collection: &Arc<Collection>,
    auth: &Option<Auth>,
    id: &str,
    body: Map<String, Value>,
    mut data: RequestData,
) -> ApiResult<WriteInput> {
    if collection.is_view() {
        return Err(ApiError::bad_request("Unsupported collection type."));
    }
    let rule = schema.rule(&collection.id, "updateRule");
    if matches!(rule, Rule::Locked) && !is_superuser(auth) {
        return Err(superusers_only());
    }
    let manager =
        is_superuser(auth) || passes_manage_rule(state, schema, collection, auth, id).await?;
    // A non-manager changing a password must prove the old one (checked before queueing:
    // argon2 is too expensive for the writer thread).
    if collection.is_auth() && !manager && body.get("password").is_some() {
        let mut errors = FieldErrors::default();
        match body
            .get("oldPassword")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
        {
            None => errors.add(
                "oldPassword",
                "validation_required",
                "Cannot be blank.",
                None,
            ),
            Some(old) => {
                let existing = access::load_record(state, collection, id).await?;
                let hash = existing
                    .as_ref()
                    .and_then(|r| r.get("password"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let old = old.to_string();
                let ok =
                    tokio::task::spawn_blocking(move || password::verify_password(&old, &hash))
                        .await
                        .map_err(ApiError::internal)?;
                if existing.is_some() && !ok {
                    errors.add(
                        "oldPassword",
                        "validation_invalid_old_password",
                        "Missing or invalid old password.",
                        None,
                    );
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors.into_error("Failed to update record."));
        }
    }
    let password_hash = if collection.is_auth() {
        hash_if_sent(&body).await?
    } else {
        None
    };
    data.body = body.clone();
    Ok(WriteInput {
        collection: Arc::clone(collection),
        schema: Arc::clone(schema),
        auth: auth.clone(),
        body,
        data,
        password_hash,
        manager,
    })
}

/// Updates a record through the writer (one commit).
pub async fn update_record(
    state: &Arc<AppState>,
    schema: &Arc<Schema>,
    collection: &Arc<Collection>,
    auth: &Option<Auth>,
    id: &str,
    body: Map<String, Value>,
    data: RequestData,
) -> ApiResult<Map<String, Value>> {
    let input = prepare_update(state, schema, collection, auth, id, body, data).await?;
    let id = id.to_string();
    let outcome = state
        .write(actor_of(auth), move |tx| run_update(tx, &input, &id))
        .await?;
    Ok(outcome.value)
}

/// Deletes a record (and fixes references) inside a command.
pub fn run_delete(tx: &mut Tx<'_>, input: &WriteInput, id: &str) -> ApiResult<()> {
    let collection = &input.collection;
    let Some(existing) = load_staged(tx, collection, id)? else {
        return Err(ApiError::not_found());
    };
    if !is_superuser(&input.auth) {
        if let Rule::Expr(expr) = input.schema.rule(&collection.id, "deleteRule") {
            if !staged_row_passes(tx, input, &input.data, &expr, id, Some(&existing))? {
                return Err(ApiError::not_found());
            }
        }
    }
    if collection.id == SUPERUSERS_ID {
        let rows = tx
            .query("SELECT COUNT(*) FROM _superusers", &[])
            .map_err(ApiError::from)?;
        if rows.rows.first().and_then(|r| r[0].as_i64()).unwrap_or(0) <= 1 {
            return Err(ApiError::bad_request(
                "You can't delete the only existing superuser.",
            ));
        }
    }
    delete_cascade(tx, &input.schema, collection, id, &existing, 0)
}

const CASCADE_DEPTH_MAX: usize = 16;

/// Deletes a record if it still exists (staged state), fixing every relation that points at
/// it; returns whether it existed. Shared by truncate so it cascades exactly like a delete.
pub(crate) fn delete_staged_with_references(
    tx: &mut Tx<'_>,
    schema: &Schema,
    collection: &Collection,
    id: &str,
) -> ApiResult<bool> {
    match load_staged(tx, collection, id)? {
        Some(existing) => {
            delete_cascade(tx, schema, collection, id, &existing, 0)?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Deletes a record and fixes every relation that points at it.
fn delete_cascade(
    tx: &mut Tx<'_>,
    schema: &Schema,
    collection: &Collection,
    id: &str,
    existing: &Map<String, Value>,
    depth: usize,
) -> ApiResult<()> {
    const FAILED: &str = "Failed to delete record. Make sure that the record is not part of a required relation reference.";
    if depth > CASCADE_DEPTH_MAX {
        return Err(ApiError::bad_request(FAILED));
    }
    tx.stage(Change::RecordDeleted {
        collection_id: collection.id.clone(),
        id: id.to_string(),
        old: to_storage(collection, existing),
    })
    .map_err(ApiError::from)?;
    for other in &schema.collections {
        if other.is_view() {
            continue;
        }
        for field in other.fields.iter().filter(|f| f.kind() == "relation") {
            let target = field.str_opt("collectionId");
            if target != collection.id && target != collection.name {
                continue;
            }
            let column = engine::quote_ident(field.name());
            let sql = if field.is_multi() {
                format!("SELECT * FROM {} WHERE EXISTS (SELECT 1 FROM json_each(CASE WHEN json_valid({column}) THEN {column} ELSE '[]' END) WHERE value = ?1)", engine::quote_ident(&other.name))
            } else {
                format!(
                    "SELECT * FROM {} WHERE {column} = ?1",
                    engine::quote_ident(&other.name)
                )
            };
            let rows = tx
                .query(&sql, &[SqlValue::Text(id.to_string())])
                .map_err(ApiError::from)?;
            for row in &rows.rows {
                let referencing = from_row(other, &rows.columns, row);
                let ref_id = referencing
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let mut updated = referencing.clone();
                let remaining = match referencing.get(field.name()) {
                    Some(Value::Array(items)) => {
                        let kept: Vec<Value> = items
                            .iter()
                            .filter(|v| v.as_str() != Some(id))
                            .cloned()
                            .collect();
                        let empty = kept.is_empty();
                        updated.insert(field.name().to_string(), Value::Array(kept));
                        !empty
                    }
                    _ => {
                        updated.insert(field.name().to_string(), json!(""));
                        false
                    }
                };
                if !remaining && field.bool_opt("cascadeDelete") {
                    delete_cascade(tx, schema, other, &ref_id, &referencing, depth + 1)?;
                } else if !remaining && field.required() {
                    return Err(ApiError::bad_request(FAILED));
                } else {
                    tx.stage(Change::RecordUpdated {
                        collection_id: other.id.clone(),
                        id: ref_id,
                        values: to_storage(other, &updated),
                    })
                    .map_err(ApiError::from)?;
                }
            }
        }
    }
    Ok(())
}

/// `DELETE /api/collections/{c}/records/{id}`
pub async fn records_delete(
    State(state): State<Arc<AppState>>,
    Path((name, id)): Path<(String, String)>,
    QueryExtract(query): QueryExtract<Query>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let schema = state.schema();
    let collection = find_collection(&schema, &name)?;
    let auth = access::authenticate(&state, &headers).await;
    delete_record(
        &state,
        &schema,
        &collection,
        &auth,
        &id,
        RequestData::new("DELETE", &headers, &query),
    )
    .await?;
    Ok(no_content())
}

/// Checks and prepares a delete (rule lock).
pub fn prepare_delete(
    schema: &Arc<Schema>,
    collection: &Arc<Collection>,
    auth: &Option<Auth>,
    data: RequestData,
) -> ApiResult<WriteInput> {
    if collection.is_view() {
        return Err(ApiError::bad_request("Unsupported collection type."));
    }
    let rule = schema.rule(&collection.id, "deleteRule");
    if matches!(rule, Rule::Locked) && !is_superuser(auth) {
        return Err(superusers_only());
    }
    Ok(WriteInput {
        collection: Arc::clone(collection),
        schema: Arc::clone(schema),
        auth: auth.clone(),
        body: Map::new(),
        data,
        password_hash: None,
        manager: is_superuser(auth),
    })
}

/// Deletes a record through the writer (one commit).
pub async fn delete_record(
    state: &Arc<AppState>,
    schema: &Arc<Schema>,
    collection: &Arc<Collection>,
    auth: &Option<Auth>,
    id: &str,
    data: RequestData,
) -> ApiResult<()> {
    let input = prepare_delete(schema, collection, auth, data)?;
    let id = id.to_string();
    state
        .write(actor_of(auth), move |tx| run_delete(tx, &input, &id))
        .await?;
    Ok(())
}
