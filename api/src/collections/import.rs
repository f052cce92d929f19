//! Importing collections (`PUT /api/collections/import`, superusers only): replaces or extends
//! the collection set from a list of definitions.
//!
//! It reuses the create/update builders of `build.rs`, so an imported collection goes through
//! the same defaults and validation as one created or updated through the API.
//!
//! Invariants:
//! 1. An import is ONE command, hence one commit: every deletion, creation and update of the
//!    import lands together or not at all.
//! 2. Collections are matched by id, then by name (case-insensitive). With
//!    `deleteMissing: false` the fields of an existing collection that the import omits are
//!    kept; with `true` they are dropped, and so are the non-system collections the import
//!    omits. System collections are never deleted by an import.
//! 3. Every imported collection is validated against the collection set as it will be after
//!    the import (so relations may point at collections created by the same import).

use super::build::{derive_view_fields, new_collection, stage_collection, updated_collection};
use crate::error::{field_error, ApiError, ApiResult};
use crate::model::record::format_ms;
use crate::model::Collection;
use crate::state::AppState;
use engine::{Actor, Change};
use serde_json::{json, Map, Value};
use std::sync::Arc;

const IMPORT_FAILED: &str = "Failed to import collections.";
/// Most collections one import may carry.
pub const IMPORT_COLLECTIONS_MAX: usize = 1000;

/// The import failure envelope (`collections` → `validation_collections_import_failure`).
fn import_failure(detail: &str) -> ApiError {
    let mut data = Map::new();
    data.insert(
        "collections".into(),
        field_error(
            "validation_collections_import_failure",
            &format!("Failed to import the collections configuration. Raw error: {detail}"),
            None,
        ),
    );
    ApiError::validation(IMPORT_FAILED, data)
}

/// One line describing why a collection was refused (its message and field errors).
fn describe(name: &str, err: &ApiError) -> String {
    if err.data.is_empty() {
        format!("{name}: {}", err.message)
    } else {
        format!("{name}: {}", Value::Object(err.data.clone()))
    }
}

/// What the import does to one collection.
enum Planned {
    Create(Collection),
    Update(Collection),
}

/// Imports `{"collections": [...], "deleteMissing"?: bool}` as `actor`, in one commit.
pub async fn import(
    state: &Arc<AppState>,
    actor: Actor,
    body: &Map<String, Value>,
) -> ApiResult<()> {
    let items = match body.get("collections") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(_) => {
            return Err(ApiError::bad_request(
                "Failed to load the submitted data due to invalid formatting.",
            ))
        }
    };
    if items.is_empty() {
        let mut data = Map::new();
        data.insert(
            "collections".into(),
            field_error("validation_required", "Cannot be blank.", None),
        );
        return Err(ApiError::validation(
            "An error occurred while validating the submitted data.",
            data,
        ));
    }
    if items.len() > IMPORT_COLLECTIONS_MAX {
        return Err(import_failure(&format!(
            "at most {IMPORT_COLLECTIONS_MAX} collections can be imported at once"
        )));
    }
    let delete_missing = body
        .get("deleteMissing")
        .and_then(Value::as_bool)
        .unwrap_or(false);

    let schema = state.schema();
    let mut planned: Vec<Planned> = Vec::with_capacity(items.len());
    let mut matched_ids: Vec<String> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let Value::Object(item) = item else {
            return Err(import_failure(&format!("{index}: not an object")));
        };
        let label = item
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| index.to_string());
        let by_id = item
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .and_then(|id| schema.collections.iter().find(|c| c.id == id));
        let by_name = item.get("name").and_then(Value::as_str).and_then(|name| {
            schema
                .collections
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(name))
        });
        match by_id.or(by_name) {
            Some(existing) => {
                if matched_ids.contains(&existing.id) {
                    return Err(import_failure(&format!(
                        "{label}: the collection is listed more than once"
                    )));
                }
                matched_ids.push(existing.id.clone());
                let mut collection = updated_collection(existing, item, IMPORT_FAILED)
                    .map_err(|err| import_failure(&describe(&label, &err)))?;
                if !delete_missing {
                    for field in &existing.fields {
                        let kept = collection
                            .fields
                            .iter()
                            .any(|f| f.id() == field.id() || f.name() == field.name());
                        if !kept {
                            collection.fields.push(field.clone());
                        }
                    }
                }
                planned.push(Planned::Update(collection));
            }
            None => {
                let collection =
                    new_collection(item).map_err(|err| import_failure(&describe(&label, &err)))?;
                planned.push(Planned::Create(collection));
            }
        }
    }
    let deleted: Vec<Arc<Collection>> = if delete_missing {
        schema
            .collections
            .iter()
            .filter(|c| !c.system() && !matched_ids.contains(&c.id))
            .cloned()
            .collect()
    } else {
        Vec::new()
    };

    // Validate each against the collection set as it will be after the import.
    {
        let planned_refs: Vec<&Collection> = planned
            .iter()
            .map(|p| match p {
                Planned::Create(c) | Planned::Update(c) => c,
            })
            .collect();
        let kept: Vec<&Collection> = schema
            .collections
            .iter()
            .filter(|c| !matched_ids.contains(&c.id) && !deleted.iter().any(|d| d.id == c.id))
            .map(|c| c.as_ref())
            .collect();
        for (index, collection) in planned_refs.iter().enumerate() {
            let others: Vec<&Collection> = kept
                .iter()
                .copied()
                .chain(
                    planned_refs
                        .iter()
                        .enumerate()
                        .filter(|(other, _)| *other != index)
                        .map(|(_, other)| *other),
                )
                .collect();
            collection
                .validate(IMPORT_FAILED, &others)
                .map_err(|err| import_failure(&describe(&collection.name, &err)))?;
        }
    }

    let previous = state.schema();
    state
        .write(actor, move |tx| {
            let now = format_ms(tx.timestamp_ms());
            for collection in &deleted {
                crate::files::retention::stage_released_by_schema(tx, collection, None)
                    .map_err(|err| import_failure(&describe(&collection.name, &err)))?;
                tx.stage(Change::CollectionDeleted {
                    id: collection.id.clone(),
                    name: collection.name.clone(),
                })
                .map_err(|err| import_failure(&format!("{}: {err}", collection.name)))?;
            }
            for plan in planned {
                let (mut collection, created) = match plan {
                    Planned::Create(collection) => (collection, true),
                    Planned::Update(collection) => (collection, false),
                };
                if created {
                    collection.rest.insert("created".into(), json!(now));
                }
                collection.rest.insert("updated".into(), json!(now));
                let name = collection.name.clone();
                if collection.is_view() {
                    derive_view_fields(tx, &mut collection, IMPORT_FAILED)
                        .map_err(|err| import_failure(&describe(&name, &err)))?;
                }
                if let Some(old) = previous
                    .collections
                    .iter()
                    .find(|old| old.id == collection.id)
                {
                    crate::files::retention::stage_released_by_schema(tx, old, Some(&collection))
                        .map_err(|err| import_failure(&describe(&name, &err)))?;
                }
                stage_collection(tx, &collection, created, IMPORT_FAILED)
                    .map_err(|err| import_failure(&describe(&name, &err)))?;
            }
            Ok(())
        })
        .await?;
    Ok(())
}
