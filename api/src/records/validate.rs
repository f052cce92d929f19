//! Checks a write runs on the staged state: relations exist, auth form rules (password
//! confirmation, manage-only fields), password length, auth ids unique across auth
//! collections; and the mapping of staging errors to field errors.
//!
//! Invariant: every check adds to (or returns) PocketBase's field-error envelope with the
//! reference's codes and messages; none stages anything.

use super::WriteInput;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::model::record;
use crate::model::FieldType;
use crate::model::{Collection, Schema, SUPERUSERS_ID};
use engine::{Tx, Value as SqlValue};
use serde_json::{Map, Value};

/// Maps a staging error: unique violations become `validation_not_unique` on the field.
pub(crate) fn staging_error(err: engine::Error, message: &str) -> ApiError {
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
pub(crate) fn check_relations(
    tx: &Tx<'_>,
    schema: &Schema,
    collection: &Collection,
    record: &Map<String, Value>,
    errors: &mut FieldErrors,
) -> ApiResult<()> {
    for field in collection
        .fields
        .iter()
        .filter(|f| f.kind() == FieldType::Relation)
    {
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
        let Some(target) = schema.find(field.relation_target().unwrap_or_default()) else {
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

/// A token names a record by collection *and* id, but the reference keeps auth record ids
/// unique across every auth collection (issue #12 hole 5): an id already used in another auth
/// collection (staged state, so a batch sees its own earlier creates) is
/// `validation_invalid_auth_id`, as measured on PocketBase v0.40.6. A duplicate inside the
/// same collection stays the unique index's `validation_not_unique`.
pub(crate) fn auth_id_unique(
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
pub(crate) fn auth_form_checks(
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

pub(crate) fn password_field_checks(
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
    let min = field.min_length();
    let max = match field.max_length() {
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
