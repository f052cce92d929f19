//! A delete's cascade: every relation that points at a deleted record is fixed in the same
//! command (the id removed from multi relations, single ones cleared), a reference left empty
//! with `cascadeDelete` deletes its record too, and one left empty on a required field fails
//! the delete.
//!
//! Invariant: runs on the writer thread against the staged state, at most
//! [`CASCADE_DEPTH_MAX`] levels deep; a failure fails the whole command.

use super::write::load_staged;
use crate::error::{ApiError, ApiResult};
use crate::model::record::{from_row, to_storage};
use crate::model::FieldType;
use crate::model::{Collection, Schema};
use engine::{Change, Tx, Value as SqlValue};
use serde_json::{json, Map, Value};

/// Deepest cascade of deletes.
pub const CASCADE_DEPTH_MAX: usize = 16;

/// Deletes a record if it still exists (staged state), fixing every relation that points at
/// it; returns whether it existed. Shared by truncate so it cascades exactly like a delete.
pub fn delete_staged_with_references(
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
pub(crate) fn delete_cascade(
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
    crate::files::write::record_deleted(tx, collection, id, existing)?;
    for other in &schema.collections {
        if other.is_view() {
            continue;
        }
        for field in other
            .fields
            .iter()
            .filter(|f| f.kind() == FieldType::Relation)
        {
            let target = field.relation_target().unwrap_or_default();
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
                if !remaining && field.cascade_delete() {
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
