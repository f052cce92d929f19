//! Collections API (superusers only): list, view, create, update, delete, truncate.
//!
//! 1. A collection change is one commit carrying the full new definition; the projection
//!    alters the table in the same SQLite transaction.
//! 2. After the commit the schema cache is rebuilt.

use super::common::{json_response, list_envelope, no_content, paging, parse_body, Query};
use super::settings::require_superuser;
use crate::error::{ApiError, ApiResult};
use crate::model::field::Field;
use crate::model::record::format_ms;
use crate::model::{Collection, CollectionKind, FieldType, RuleKind, Schema};
use crate::state::{ensure_secrets, AppState};
use axum::body::Bytes;
use axum::extract::{Path, Query as QueryExtract, State};
use axum::http::HeaderMap;
use axum::response::Response;
use engine::{Change, Tx};
use serde_json::{json, Map, Value};
use std::sync::Arc;

const FORMAT_ERROR: &str = "Failed to load the submitted data due to invalid formatting.";

fn find(schema: &Schema, name: &str) -> ApiResult<Arc<Collection>> {
    schema.find(name).cloned().ok_or_else(ApiError::not_found)
}

/// `GET /api/collections`
pub async fn collections_list(
    State(state): State<Arc<AppState>>,
    QueryExtract(query): QueryExtract<Query>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    require_superuser(&state, &headers).await?;
    let paging = paging(&query)?;
    let schema = state.schema();
    let filter = query
        .get("filter")
        .map(|f| f.trim())
        .filter(|f| !f.is_empty());
    let mut items: Vec<Value> = Vec::new();
    for collection in &schema.collections {
        let value = collection.to_json();
        if let Some(filter) = filter {
            if !simple_collection_filter(filter, &value)? {
                continue;
            }
        }
        items.push(value);
    }
    if let Some(sort) = query.get("sort").filter(|s| !s.is_empty()) {
        for key in sort.split(',').rev() {
            let (desc, key) = match key.trim().strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, key.trim().trim_start_matches('+')),
            };
            if !["id", "created", "updated", "name", "system", "type"].contains(&key) {
                return Err(ApiError::bad_request_default());
            }
            items.sort_by(|a, b| {
                let order = a[key].to_string().cmp(&b[key].to_string());
                if desc {
                    order.reverse()
                } else {
                    order
                }
            });
        }
    }
    let total = items.len() as i64;
    let start = ((paging.page - 1) * paging.per_page).min(total) as usize;
    let page: Vec<Value> = items
        .into_iter()
        .skip(start)
        .take(paging.per_page as usize)
        .collect();
    Ok(json_response(
        &query,
        list_envelope(
            page,
            paging,
            if paging.skip_total { None } else { Some(total) },
        ),
    ))
}

/// Evaluates a collections-list filter over the allowed keys, by compiling it with the rules
/// compiler and running it against a one-row in-memory table.
fn simple_collection_filter(filter: &str, value: &Value) -> ApiResult<bool> {
    let expr = rules::parse(filter).map_err(crate::access::rule_error)?;
    let info = rules::CollectionInfo {
        id: "_collections".into(),
        name: "_collections".into(),
        kind: rules::CollectionKind::Base,
        fields: ["id", "created", "updated", "name", "type"]
            .iter()
            .map(|name| rules::FieldInfo {
                name: (*name).into(),
                kind: rules::FieldKind::Text,
                hidden: false,
            })
            .chain(std::iter::once(rules::FieldInfo {
                name: "system".into(),
                kind: rules::FieldKind::Bool,
                hidden: false,
            }))
            .collect(),
        list_rule: None,
    };
    let schema = OneCollection(info);
    let mut params = rules::Params::new();
    let request = rules::RequestInfo::guest(chrono::Utc::now());
    let compiled = rules::compile(
        &expr,
        &schema,
        &schema.0,
        "main",
        &request,
        &mut params,
        &rules::CompileOptions::default(),
    )
    .map_err(crate::access::rule_error)?;
    let conn = rusqlite::Connection::open_in_memory().map_err(ApiError::internal)?;
    conn.execute_batch("CREATE TABLE _collections (id TEXT, created TEXT, updated TEXT, name TEXT, type TEXT, system BOOLEAN)")
        .map_err(ApiError::internal)?;
    conn.execute(
        "INSERT INTO _collections VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        rusqlite::params![
            value["id"].as_str().unwrap_or(""),
            value["created"].as_str().unwrap_or(""),
            value["updated"].as_str().unwrap_or(""),
            value["name"].as_str().unwrap_or(""),
            value["type"].as_str().unwrap_or(""),
            value["system"].as_bool().unwrap_or(false),
        ],
    )
    .map_err(ApiError::internal)?;
    let sql = format!(
        "SELECT COUNT(*) FROM _collections main {} WHERE {}",
        compiled.joins.join(" "),
        compiled.where_sql
    );
    let bound: Vec<engine::Value> = params
        .as_slice()
        .iter()
        .map(|v| match v {
            rules::SqlValue::Null => engine::Value::Null,
            rules::SqlValue::Int(i) => engine::Value::Int(*i),
            rules::SqlValue::Real(r) => engine::Value::Real(*r),
            rules::SqlValue::Text(t) => engine::Value::Text(t.clone()),
        })
        .collect();
    let count: i64 = conn
        .query_row(&sql, rusqlite::params_from_iter(bound.iter()), |row| {
            row.get(0)
        })
        .map_err(|_| ApiError::bad_request_default())?;
    Ok(count > 0)
}

struct OneCollection(rules::CollectionInfo);

impl rules::Schema for OneCollection {
    fn find(&self, name_or_id: &str) -> Option<&rules::CollectionInfo> {
        (name_or_id == self.0.id || name_or_id == self.0.name).then_some(&self.0)
    }
    fn all(&self) -> Vec<&rules::CollectionInfo> {
        vec![&self.0]
    }
}

/// `GET /api/collections/{c}`
pub async fn collections_view(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    QueryExtract(query): QueryExtract<Query>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    require_superuser(&state, &headers).await?;
    let collection = find(&state.schema(), &name)?;
    Ok(json_response(&query, collection.to_json()))
}

fn parse_fields(value: Option<&Value>) -> ApiResult<Option<Vec<Field>>> {
    match value {
        None => Ok(None),
        Some(Value::Array(items)) => {
            let mut fields = Vec::new();
            for item in items {
                let Value::Object(map) = item else {
                    return Err(ApiError::bad_request(FORMAT_ERROR));
                };
                fields
                    .push(Field::from_input(map).map_err(|_| ApiError::bad_request(FORMAT_ERROR))?);
            }
            Ok(Some(fields))
        }
        Some(_) => Err(ApiError::bad_request(FORMAT_ERROR)),
    }
}

/// The keys of a collection body merged into `rest`, besides the rules (`RuleKind::ALL`).
const TOP_LEVEL_KEYS: &[&str] = &[
    "indexes",
    "viewQuery",
    "authAlert",
    "oauth2",
    "passwordAuth",
    "mfa",
    "otp",
    "authToken",
    "passwordResetToken",
    "emailChangeToken",
    "verificationToken",
    "fileToken",
    "verificationTemplate",
    "resetPasswordTemplate",
    "confirmEmailChangeTemplate",
];

/// Shortest and longest token secret a superuser may set (the reference's bounds).
pub const TOKEN_SECRET_CHARS: std::ops::RangeInclusive<usize> = 30..=255;

/// Checks the token secrets a body sets explicitly (`{"authToken": {"secret": ".."}}`):
/// a string of 30–255 characters, else the reference's field errors (blank:
/// `validation_required`; length: `validation_length_out_of_range`) or, for a non-string,
/// its format error. Setting a secret is how a superuser rotates it (the dashboard's
/// "invalidate all tokens" saves a new random one): every token of that type signed with the
/// old secret then fails.
fn check_token_secrets(body: &Map<String, Value>, message: &str) -> ApiResult<()> {
    let mut errors = Map::new();
    for key in crate::model::collection::TOKEN_KEYS {
        let Some(Value::Object(option)) = body.get(*key) else {
            continue;
        };
        let Some(secret) = option.get("secret") else {
            continue;
        };
        let error = match secret {
            Value::Null => {
                crate::error::field_error("validation_required", "Cannot be blank.", None)
            }
            Value::String(text) if text.is_empty() => {
                crate::error::field_error("validation_required", "Cannot be blank.", None)
            }
            Value::String(text) if !TOKEN_SECRET_CHARS.contains(&text.chars().count()) => {
                crate::error::field_error(
                    "validation_length_out_of_range",
                    "The length must be between 30 and 255.",
                    Some(
                        json!({"max": TOKEN_SECRET_CHARS.end(), "min": TOKEN_SECRET_CHARS.start()}),
                    ),
                )
            }
            Value::String(_) => continue,
            _ => return Err(ApiError::bad_request(FORMAT_ERROR)),
        };
        errors.insert((*key).to_string(), json!({ "secret": error }));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(message, errors))
    }
}

fn merge_body(collection: &mut Collection, body: &Map<String, Value>) -> ApiResult<()> {
    let rule_keys = RuleKind::ALL.map(RuleKind::as_str);
    for key in rule_keys.iter().chain(TOP_LEVEL_KEYS) {
        if let Some(value) = body.get(*key) {
            let mut value = value.clone();
            if crate::model::collection::TOKEN_KEYS.contains(key) {
                // A partial option object is merged over the stored one (as the reference
                // does): `{"secret": ..}` keeps the duration and `{"duration": ..}` the
                // server-side secret (a secret the body sets was checked by
                // `check_token_secrets`).
                if let (Value::Object(new), Some(Value::Object(old))) =
                    (&value, collection.rest.get(*key))
                {
                    let mut merged = old.clone();
                    merged.extend(new.clone());
                    value = Value::Object(merged);
                }
            }
            if *key == "indexes" && !value.is_array() {
                return Err(ApiError::bad_request(FORMAT_ERROR));
            }
            collection.rest.insert((*key).to_string(), value);
        }
    }
    if let Some(name) = body.get("name") {
        collection.name = name.as_str().unwrap_or("").to_string();
    }
    if let Some(fields) = parse_fields(body.get("fields"))? {
        collection.fields = fields;
    }
    Ok(())
}

/// Stages a collection create/update; SQLite errors become index/viewQuery field errors.
pub fn stage_collection(
    tx: &mut Tx<'_>,
    collection: &Collection,
    created: bool,
    message: &str,
) -> ApiResult<()> {
    let def = collection.to_def();
    let change = if created {
        Change::CollectionCreated(def)
    } else {
        Change::CollectionUpdated(def)
    };
    tx.stage(change).map_err(|err| match err {
        engine::Error::Sqlite(detail) => {
            let mut errors = crate::error::FieldErrors::default();
            let field = if collection.is_view() {
                "viewQuery"
            } else {
                "indexes"
            };
            errors.add(
                field,
                "validation_invalid_index_expression",
                &format!("Invalid value. Raw error: {detail}"),
                None,
            );
            errors.into_error(message)
        }
        other => ApiError::from(other),
    })
}

/// Builds a new collection from a create body: defaults, the body merged in, system fields,
/// auth indexes and secrets. Validation against the other collections is the caller's.
pub fn new_collection(body: &Map<String, Value>) -> ApiResult<Collection> {
    let kind = match body.get("type") {
        None => CollectionKind::default().as_str().to_string(),
        Some(Value::String(kind)) => kind.clone(),
        Some(_) => return Err(ApiError::bad_request(FORMAT_ERROR)),
    };
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let id = match body
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
    {
        Some(id) => id.to_string(),
        None => format!(
            "pbc_{}",
            crc32fast::hash(format!("{kind}{name}").as_bytes())
        ),
    };
    let mut collection = Collection {
        id,
        name,
        kind: CollectionKind::parse(&kind).unwrap_or_default(),
        fields: Vec::new(),
        rest: Map::new(),
    };
    // An unknown type is kept for `validate` to report with the other errors.
    collection.rest.insert("type".into(), json!(kind));
    for rule in RuleKind::RECORD {
        collection.set_rule(rule, None);
    }
    if collection.is_auth() {
        collection.set_rule(RuleKind::Auth, Some(""));
        collection.set_rule(RuleKind::Manage, None);
    }
    collection.rest.insert("indexes".into(), json!([]));
    collection.rest.insert("system".into(), json!(false));
    check_token_secrets(body, "Failed to create collection.")?;
    merge_body(&mut collection, body)?;
    if collection.is_view() {
        for rule in [RuleKind::Create, RuleKind::Update, RuleKind::Delete] {
            collection.set_rule(rule, None);
        }
    }
    collection.ensure_system_fields();
    if collection.is_auth() {
        add_auth_indexes(&mut collection);
    }
    ensure_secrets(&mut collection);
    Ok(collection)
}

/// `POST /api/collections`
pub async fn collections_create(
    State(state): State<Arc<AppState>>,
    QueryExtract(query): QueryExtract<Query>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult<Response> {
    const FAILED: &str = "Failed to create collection.";
    let auth = require_superuser(&state, &headers).await?;
    let body = parse_body(&headers, &bytes)?;
    let mut collection = new_collection(&body)?;
    let schema = state.schema();
    let others: Vec<&Collection> = schema.collections.iter().map(|c| c.as_ref()).collect();
    collection.validate(FAILED, &others)?;
    let outcome = state
        .write(auth.actor(), move |tx| {
            let now = format_ms(tx.timestamp_ms());
            collection.rest.insert("created".into(), json!(now));
            collection.rest.insert("updated".into(), json!(now));
            if collection.is_view() {
                derive_view_fields(tx, &mut collection, FAILED)?;
            }
            stage_collection(tx, &collection, true, FAILED)?;
            Ok(collection)
        })
        .await?;
    state.reload_schema()?;
    Ok(json_response(&query, outcome.value.to_json()))
}

fn add_auth_indexes(collection: &mut Collection) {
    let mut indexes = collection.indexes();
    let token_index = format!(
        "CREATE UNIQUE INDEX `idx_tokenKey_{}` ON `{}` (`tokenKey`)",
        collection.id, collection.name
    );
    let email_index = format!(
        "CREATE UNIQUE INDEX `idx_email_{}` ON `{}` (`email`) WHERE `email` != ''",
        collection.id, collection.name
    );
    if !crate::model::collection::has_unique_index(&indexes, "tokenKey") {
        indexes.insert(0, token_index);
    }
    if !crate::model::collection::has_unique_index(&indexes, "email") {
        indexes.insert(1.min(indexes.len()), email_index);
    }
    collection.rest.insert("indexes".into(), json!(indexes));
}

/// Derives a view collection's fields from its query's columns.
pub fn derive_view_fields(
    tx: &Tx<'_>,
    collection: &mut Collection,
    message: &str,
) -> ApiResult<()> {
    let query = collection
        .rest
        .get("viewQuery")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let trimmed = query.trim().trim_end_matches(';');
    let upper = trimmed.to_ascii_uppercase();
    let invalid = |detail: String| {
        let mut errors = crate::error::FieldErrors::default();
        errors.add(
            "viewQuery",
            "validation_invalid_view_query",
            &format!("Invalid view query. Raw error: {detail}"),
            None,
        );
        errors.into_error(message)
    };
    if !(upper.starts_with("SELECT") || upper.starts_with("WITH")) || trimmed.contains(';') {
        return Err(invalid("only a single SELECT statement is allowed".into()));
    }
    let rows = tx
        .query(&format!("SELECT * FROM ({trimmed}) LIMIT 0"), &[])
        .map_err(|err| invalid(err.to_string()))?;
    if !rows.columns.iter().any(|c| c == "id") {
        return Err(invalid("the view query must select an id column".into()));
    }
    // Column types: a column named like a field of a collection the query mentions copies that
    // field; anything else is typed from its first value (numbers → number, else json).
    let sample = tx
        .query(&format!("SELECT * FROM ({trimmed}) LIMIT 1"), &[])
        .map_err(|err| invalid(err.to_string()))?;
    let lowered = trimmed.to_ascii_lowercase();
    let sources: Vec<Collection> = tx
        .collections()
        .into_iter()
        .filter(|def| !def.is_view() && lowered.contains(&def.name.to_ascii_lowercase()))
        .filter_map(|def| Collection::from_meta(&def.meta).ok())
        .collect();
    let mut fields = Vec::new();
    for (index, column) in rows.columns.iter().enumerate() {
        let mut input = Map::new();
        let cloned = sources
            .iter()
            .find_map(|source| source.field(column))
            .filter(|f| f.kind() != FieldType::Password);
        match cloned {
            Some(source_field) if column != "id" => {
                input = source_field.json().clone();
                input.insert("system".into(), json!(false));
            }
            _ => {
                let kind = if column == "id" {
                    "text"
                } else {
                    match sample.rows.first().map(|row| &row[index]) {
                        Some(engine::Value::Int(_)) | Some(engine::Value::Real(_)) => "number",
                        _ => "json",
                    }
                };
                input.insert("name".into(), json!(column));
                input.insert("type".into(), json!(kind));
            }
        }
        input.insert(
            "id".into(),
            json!(format!(
                "_clone_{}",
                crc32fast::hash(format!("{}{column}", collection.name).as_bytes()) % 100000
            )),
        );
        if let Ok(field) = Field::from_input(&input) {
            fields.push(field);
        }
    }
    collection.fields = fields;
    collection.rest.insert("viewQuery".into(), json!(trimmed));
    Ok(())
}

/// Applies an update body to a copy of `existing` (partial merge, `fields` replaced, system
/// fields and auth indexes ensured, auth secret rotated when `authRule` changes). Validation
/// against the other collections is the caller's.
pub fn updated_collection(
    existing: &Collection,
    body: &Map<String, Value>,
    message: &str,
) -> ApiResult<Collection> {
    let mut collection = existing.clone();
    check_token_secrets(body, message)?;
    merge_body(&mut collection, body)?;
    if let Some(kind) = body.get("type").and_then(Value::as_str) {
        if CollectionKind::parse(kind) != Some(existing.kind) {
            let mut errors = crate::error::FieldErrors::default();
            errors.add(
                "type",
                "validation_collection_type_change",
                "Collection type cannot be changed.",
                None,
            );
            return Err(errors.into_error(message));
        }
    }
    collection.ensure_system_fields();
    if collection.is_auth() {
        add_auth_indexes(&mut collection);
        if collection.rule(RuleKind::Auth) != existing.rule(RuleKind::Auth) {
            // Changing who may authenticate invalidates every existing auth token.
            if let Some(Value::Object(option)) = collection.rest.get_mut("authToken") {
                option.insert(
                    "secret".into(),
                    json!(crate::auth::token::new_collection_secret()),
                );
            }
        }
    }
    Ok(collection)
}

/// `PATCH /api/collections/{c}`
pub async fn collections_update(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    QueryExtract(query): QueryExtract<Query>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult<Response> {
    const FAILED: &str = "Failed to update collection.";
    let auth = require_superuser(&state, &headers).await?;
    let body = parse_body(&headers, &bytes)?;
    let schema = state.schema();
    let existing = find(&schema, &name)?;
    let mut collection = updated_collection(&existing, &body, FAILED)?;
    let others: Vec<&Collection> = schema.collections.iter().map(|c| c.as_ref()).collect();
    collection.validate(FAILED, &others)?;
    let outcome = state
        .write(auth.actor(), move |tx| {
            collection
                .rest
                .insert("updated".into(), json!(format_ms(tx.timestamp_ms())));
            if collection.is_view() {
                derive_view_fields(tx, &mut collection, FAILED)?;
            }
            stage_collection(tx, &collection, false, FAILED)?;
            Ok(collection)
        })
        .await?;
    state.reload_schema()?;
    Ok(json_response(&query, outcome.value.to_json()))
}

/// `DELETE /api/collections/{c}`
pub async fn collections_delete(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let auth = require_superuser(&state, &headers).await?;
    let schema = state.schema();
    let collection = find(&schema, &name)?;
    if collection.system() {
        return Err(ApiError::bad_request("Failed to delete collection."));
    }
    if let Some(referrer) = schema.collections.iter().find(|other| {
        other.id != collection.id
            && other
                .fields
                .iter()
                .any(|f| f.relation_target() == Some(collection.id.as_str()))
    }) {
        return Err(ApiError::bad_request(&format!(
            "Failed to delete collection probably due to existing reference in {}.",
            referrer.name
        )));
    }
    let (id, name) = (collection.id.clone(), collection.name.clone());
    state
        .write(auth.actor(), move |tx| {
            tx.stage(Change::CollectionDeleted { id, name })
                .map_err(ApiError::from)
        })
        .await?;
    state.reload_schema()?;
    Ok(no_content())
}

/// Staged bytes after which a truncate commits and goes on in a new commit (well below the
/// frame limit, leaving room for the cascade of the record that crosses it).
const TRUNCATE_COMMIT_BYTES: u64 = 8 << 20;
/// Ids read per query while truncating.
const TRUNCATE_SELECT_ROWS: usize = 1000;

/// `DELETE /api/collections/{c}/truncate`
pub async fn collections_truncate(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let auth = require_superuser(&state, &headers).await?;
    let schema = state.schema();
    let collection = find(&schema, &name)?;
    if collection.is_view() {
        return Err(ApiError::bad_request("Unsupported collection type."));
    }
    // Each record goes through the same delete as the records API, so relations pointing at
    // it are cleaned up (or cascade-deleted) and a required reference refuses the truncate.
    // A commit must fit one log frame, so a large collection is truncated in several commits
    // of at most TRUNCATE_COMMIT_BYTES of staged changes each (every one atomic; a small
    // collection is one commit, all or nothing, as before).
    loop {
        let target = Arc::clone(&collection);
        let schema = Arc::clone(&schema);
        let more = state
            .write(auth.actor(), move |tx| {
                // By rowid, so every round moves on even past a row it could not delete.
                let sql = format!(
                    "SELECT rowid, id FROM {} WHERE rowid > ?1 ORDER BY rowid LIMIT {TRUNCATE_SELECT_ROWS}",
                    engine::quote_ident(&target.name)
                );
                let mut after = i64::MIN;
                loop {
                    let rows = tx
                        .query(&sql, &[engine::Value::Int(after)])
                        .map_err(ApiError::from)?;
                    if rows.rows.is_empty() {
                        return Ok(false);
                    }
                    for row in &rows.rows {
                        after = row[0].as_i64().unwrap_or(i64::MAX);
                        let id = row[1].as_str().unwrap_or("").to_string();
                        crate::records::delete_staged_with_references(
                            tx, &schema, &target, &id,
                        )?;
                        if tx.staged_bytes() >= TRUNCATE_COMMIT_BYTES {
                            return Ok(true);
                        }
                    }
                }
            })
            .await?
            .value;
        if !more {
            break;
        }
    }
    Ok(no_content())
}
