//! The collections domain (superusers only at the API): list, scaffolds, create, update,
//! delete as service functions; `build` makes definitions from bodies, `import` replaces the
//! collection set. The handlers in `handlers/collections*.rs` are HTTP glue.
//!
//! Invariants:
//! 1. A collection change is one commit carrying the full new definition; the projection
//!    alters the table in the same SQLite transaction.
//! 2. The schema follows the commit before the service returns (`AppState::write`); nothing
//!    here reloads it.
//! 3. Every create/update is validated against the other collections before it is staged.
//! 4. After a committed create/update/delete, `--automigrate` writes its migration file
//!    (`migrations::auto`); that step never fails the request.

pub mod build;
pub mod import;
pub mod view_fields;

pub use build::{
    derive_view_fields, new_collection, stage_collection, updated_collection, FORMAT_ERROR,
    TOKEN_SECRET_CHARS,
};

use crate::error::{ApiError, ApiResult};
use crate::migrations::auto::CollectionChange;
use crate::model::record::format_ms;
use crate::model::{Collection, CollectionKind, Schema};
use crate::state::AppState;
use engine::{Actor, Change};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// The collection named (or with the id) `name`, else 404.
pub fn find(schema: &Schema, name: &str) -> ApiResult<Arc<Collection>> {
    schema.find(name).cloned().ok_or_else(ApiError::not_found)
}

/// Every collection as JSON, filtered by `filter` (over `id`, `created`, `updated`, `name`,
/// `type`) and sorted by `sort` (`-` for descending), in creation order otherwise.
pub fn list(schema: &Schema, filter: Option<&str>, sort: Option<&str>) -> ApiResult<Vec<Value>> {
    let filter = filter.map(|f| f.trim()).filter(|f| !f.is_empty());
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
    if let Some(sort) = sort.filter(|s| !s.is_empty()) {
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
    Ok(items)
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

/// What a create with an empty name would produce, for each type (`base`, `auth`, `view`).
pub fn scaffolds() -> ApiResult<Value> {
    let mut out = Map::new();
    for kind in CollectionKind::ALL {
        let mut body = Map::new();
        body.insert("type".into(), json!(kind.as_str()));
        body.insert("name".into(), json!(""));
        if kind == CollectionKind::View {
            body.insert("viewQuery".into(), json!(""));
        }
        let mut collection = new_collection(&body)?;
        collection.id = String::new();
        let mut value = collection.to_json();
        if let Value::Object(map) = &mut value {
            map.insert("created".into(), json!(""));
            map.insert("updated".into(), json!(""));
        }
        out.insert(kind.as_str().into(), value);
    }
    Ok(Value::Object(out))
}

/// Creates a collection from a create body as `actor`; returns it as committed.
pub async fn create(
    state: &Arc<AppState>,
    actor: Actor,
    body: &Map<String, Value>,
) -> ApiResult<Collection> {
    const FAILED: &str = "Failed to create collection.";
    let mut collection = new_collection(body)?;
    let schema = state.schema();
    // Generated ids derive from the name (as on the reference), so a taken name usually
    // means a taken id too: answer which one, as the reference does, never the engine's 500.
    if let Some(existing) = schema.find(&collection.id) {
        let mut errors = crate::error::FieldErrors::default();
        if existing.name.eq_ignore_ascii_case(&collection.name) {
            errors.add(
                "name",
                "validation_collection_name_exists",
                "Collection name must be unique (case insensitive).",
                None,
            );
        } else {
            errors.add(
                "id",
                "validation_invalid_or_existing_id",
                "The model id is invalid or already exists.",
                None,
            );
        }
        return Err(errors.into_error(FAILED));
    }
    let others: Vec<&Collection> = schema.collections.iter().map(|c| c.as_ref()).collect();
    collection.validate(FAILED, &others)?;
    let outcome = state
        .write(actor, move |tx| {
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
    crate::migrations::auto::after_change(state, CollectionChange::Created(&outcome.value)).await;
    Ok(outcome.value)
}

/// Updates the collection `name` with an update body as `actor`; returns it as committed.
pub async fn update(
    state: &Arc<AppState>,
    actor: Actor,
    name: &str,
    body: &Map<String, Value>,
) -> ApiResult<Collection> {
    const FAILED: &str = "Failed to update collection.";
    let schema = state.schema();
    let existing = find(&schema, name)?;
    let before = Arc::clone(&existing);
    let mut collection = updated_collection(&existing, body, FAILED)?;
    let others: Vec<&Collection> = schema.collections.iter().map(|c| c.as_ref()).collect();
    collection.validate(FAILED, &others)?;
    let outcome = state
        .write(actor, move |tx| {
            collection
                .rest
                .insert("updated".into(), json!(format_ms(tx.timestamp_ms())));
            if collection.is_view() {
                derive_view_fields(tx, &mut collection, FAILED)?;
            }
            crate::files::retention::stage_released_by_schema(tx, &existing, Some(&collection))?;
            stage_collection(tx, &collection, false, FAILED)?;
            Ok(collection)
        })
        .await?;
    crate::migrations::auto::after_change(
        state,
        CollectionChange::Updated(&before, &outcome.value),
    )
    .await;
    Ok(outcome.value)
}

/// Deletes the collection `name` as `actor` (400 for a system collection or one that another
/// collection's relation points at).
pub async fn delete(state: &Arc<AppState>, actor: Actor, name: &str) -> ApiResult<()> {
    let schema = state.schema();
    let collection = find(&schema, name)?;
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
    let deleted = Arc::clone(&collection);
    state
        .write(actor, move |tx| {
            crate::files::retention::stage_released_by_schema(tx, &collection, None)?;
            tx.stage(Change::CollectionDeleted { id, name })
                .map_err(ApiError::from)
        })
        .await?;
    crate::migrations::auto::after_change(state, CollectionChange::Deleted(&deleted)).await;
    Ok(())
}
