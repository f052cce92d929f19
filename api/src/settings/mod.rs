//! The settings domain: the settings' shape, how a patch is conformed and merged, redaction of
//! secrets, and saving (validate, then commit a `_params` entry). The HTTP handlers in
//! `handlers/settings.rs` and the `superuser ips` CLI both save through [`save`].
//!
//! A change is handled in three steps, as PocketBase v0.40.6 does (measured black box):
//! 1. **Load**: the body is conformed to the settings' shape ([`template`]): a value of the
//!    wrong JSON type anywhere (a string for an object, `1.5` for an integer, ...) fails the
//!    whole request with 400 `An error occurred while loading the submitted data.`; unknown keys
//!    are dropped; `null` is the field's zero value; array items get their missing fields as
//!    zero values.
//! 2. **Merge** over the stored settings (objects merge key by key, arrays are replaced).
//! 3. **Validate** the merged settings ([`validate`]), field by field with PocketBase's codes
//!    and messages. Any error answers 400 `An error occurred while saving the new settings.`
//!    and nothing is written.
//!
//! Invariants: secrets (`smtp.password`, `s3.secret`, `backups.s3.secret`) never leave through
//! [`redact`]; the cached settings are replaced only after the durable commit.

pub mod encrypt;
pub mod s3;
pub mod validate;

pub use validate::{check_cron, is_host, is_rate_limit_label, is_url, validate};

use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, SETTINGS_KEY};
use engine::{Actor, Change};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Message of a body that does not fit the settings' shape.
pub const LOAD_FAILED: &str = "An error occurred while loading the submitted data.";
/// Message of settings that fail validation.
pub const SAVE_FAILED: &str = "An error occurred while saving the new settings.";
/// Most entries of one list setting (`superuserIPs`, rules, ...) accepted in a PATCH.
pub const MAX_LIST_ITEMS: usize = 1000;
/// Longest string accepted in any settings field.
pub const MAX_STRING_CHARS: usize = 4096;

/// The settings without their secrets (what the API returns).
pub fn redact(mut settings: Value) -> Value {
    for pointer in ["/smtp", "/s3", "/backups/s3"] {
        if let Some(Value::Object(map)) = settings.pointer_mut(pointer) {
            map.remove("password");
            map.remove("secret");
        }
    }
    settings
}

pub fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                match target.get_mut(key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        merge(existing, value)
                    }
                    _ => {
                        target.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

/// The settings' shape: every known key with a zero value of its type; an array holds one
/// item that is the shape of its items.
pub fn template() -> Value {
    let s3 = json!({"enabled":false,"bucket":"","region":"","endpoint":"","accessKey":"","secret":"","forcePathStyle":false});
    json!({
        "superuserIPs": [""],
        "smtp": {"enabled":false,"port":0,"host":"","username":"","password":"","authMethod":"","tls":false,"localName":""},
        "backups": {"cron":"","cronMaxKeep":0,"s3":s3},
        "s3": s3,
        "meta": {"accentColor":"","appName":"","appURL":"","senderName":"","senderAddress":"","hideControls":false},
        "rateLimits": {"rules":[{"label":"","audience":"","duration":0,"maxRequests":0}],"excludedIPs":[""],"enabled":false},
        "trustedProxy": {"headers":[""],"useLeftmostIP":false},
        "batch": {"enabled":false,"maxRequests":0,"timeout":0,"maxBodySize":0},
        "logs": {"maxDataSize":0,"maxDays":0,"minLevel":0,"logIP":false,"logAuthId":false}
    })
}

/// The zero value of a shape (`[]` for arrays).
fn zero(shape: &Value) -> Value {
    match shape {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, field)| (key.clone(), zero(field)))
                .collect(),
        ),
        Value::Array(_) => json!([]),
        other => other.clone(),
    }
}

/// Conforms `value` to `shape` (see the module docs). `full` fills missing object fields with
/// zero values (array items); otherwise only the given fields are kept (a patch).
pub(crate) fn conform(value: &Value, shape: &Value, full: bool) -> Result<Option<Value>, ()> {
    if value.is_null() {
        // A null object leaves the stored one alone; any other null is the zero value.
        return Ok((!shape.is_object()).then(|| zero(shape)));
    }
    match shape {
        Value::Object(fields) => {
            let Value::Object(map) = value else {
                return Err(());
            };
            let mut out = Map::new();
            for (key, field_shape) in fields {
                match map.get(key) {
                    Some(field) => {
                        if let Some(field) = conform(field, field_shape, full)? {
                            out.insert(key.clone(), field);
                        }
                    }
                    None if full => {
                        out.insert(key.clone(), zero(field_shape));
                    }
                    None => {}
                }
            }
            Ok(Some(Value::Object(out)))
        }
        Value::Array(items) => {
            let Value::Array(list) = value else {
                return Err(());
            };
            let item_shape = items.first().ok_or(())?;
            if list.len() > MAX_LIST_ITEMS {
                return Err(());
            }
            let mut out = Vec::with_capacity(list.len());
            for item in list {
                out.push(conform(item, item_shape, true)?.unwrap_or_else(|| zero(item_shape)));
            }
            Ok(Some(Value::Array(out)))
        }
        Value::Bool(_) => value.is_boolean().then(|| Some(value.clone())).ok_or(()),
        Value::Number(_) => value.as_i64().map(|int| Some(json!(int))).ok_or(()),
        Value::String(_) => match value {
            Value::String(text) if text.chars().count() <= MAX_STRING_CHARS => {
                Ok(Some(value.clone()))
            }
            _ => Err(()),
        },
        Value::Null => Ok(None),
    }
}

/// Validates merged settings and commits them as `actor`; replaces the cached settings after
/// the durable commit. Invalid settings are a 400 [`SAVE_FAILED`] and nothing is written.
pub async fn save(state: &Arc<AppState>, actor: Actor, settings: Value) -> ApiResult<()> {
    let errors = validate(&settings);
    if !errors.is_empty() {
        return Err(ApiError::validation(SAVE_FAILED, errors));
    }
    // Sealed when `--encryptionEnv` holds a key: the log and the projection get ciphertext.
    let text = encrypt::store(&settings, state.options.settings_key.as_ref())
        .map_err(|err| ApiError::internal(format!("{err:#}")))?;
    state
        .write(actor, move |tx| {
            tx.stage(Change::ParamSet {
                key: SETTINGS_KEY.into(),
                value: Some(text),
            })
            .map_err(ApiError::from)
        })
        .await?;
    state.set_settings(settings);
    Ok(())
}

/// Replaces `superuserIPs` (the `superuser ips` CLI): validates like a PATCH and commits as
/// the system. Returns the saved list; an invalid entry is an error naming its index.
pub async fn set_superuser_ips(state: &Arc<AppState>, ips: Vec<String>) -> ApiResult<Vec<String>> {
    let mut settings = (*state.settings()).clone();
    merge(&mut settings, &json!({"superuserIPs": ips}));
    save(state, Actor::System, settings).await?;
    Ok(ips)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conform_rejects_wrong_types_and_drops_unknown_keys() {
        let shape = template();
        assert!(conform(&json!({"smtp": "x"}), &shape, false).is_err());
        assert!(conform(&json!({"logs": {"maxDays": 1.5}}), &shape, false).is_err());
        assert!(conform(&json!({"superuserIPs": [1]}), &shape, false).is_err());
        let out = conform(
            &json!({"unknown": 1, "rateLimits": {"rules": [{"label": "/a", "x": 1}]}}),
            &shape,
            false,
        )
        .expect("conforms")
        .expect("object");
        assert_eq!(
            out,
            json!({"rateLimits": {"rules": [{"label": "/a", "audience": "", "duration": 0, "maxRequests": 0}]}})
        );
    }
}
