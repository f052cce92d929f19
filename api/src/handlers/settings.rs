//! `GET|PATCH /api/settings` (superusers only). Settings are a `_params` entry in the log.

use super::common::{json_response, parse_body, Query};
use crate::access;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, SETTINGS_KEY};
use axum::body::Bytes;
use axum::extract::{Query as QueryExtract, State};
use axum::http::HeaderMap;
use axum::response::Response;
use engine::Change;
use serde_json::{Map, Value};
use std::sync::Arc;

/// Requires a superuser caller: 401 for guests, 403 for other records.
pub async fn require_superuser(
    state: &Arc<AppState>,
    headers: &HeaderMap,
) -> ApiResult<access::Auth> {
    match access::authenticate(state, headers).await {
        Some(auth) if auth.is_superuser() => Ok(auth),
        Some(_) => Err(ApiError::forbidden(
            "The authorized record is not allowed to perform this action.",
        )),
        None => Err(ApiError::unauthorized(
            "The request requires valid record authorization token.",
        )),
    }
}

fn redact(mut settings: Value) -> Value {
    for pointer in ["/smtp", "/s3", "/backups/s3"] {
        if let Some(Value::Object(map)) = settings.pointer_mut(pointer) {
            map.remove("password");
            map.remove("secret");
        }
    }
    settings
}

fn merge(target: &mut Value, patch: &Value) {
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

/// `GET /api/settings`
pub async fn settings_get(
    State(state): State<Arc<AppState>>,
    QueryExtract(query): QueryExtract<Query>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    require_superuser(&state, &headers).await?;
    Ok(json_response(&query, redact((*state.settings()).clone())))
}

/// `PATCH /api/settings`
pub async fn settings_update(
    State(state): State<Arc<AppState>>,
    QueryExtract(query): QueryExtract<Query>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult<Response> {
    let auth = require_superuser(&state, &headers).await?;
    let body = parse_body(&headers, &bytes)?;
    let mut settings = (*state.settings()).clone();
    merge(&mut settings, &Value::Object(body));
    let mut errors = crate::error::FieldErrors::default();
    let mut meta = Map::new();
    if settings
        .pointer("/meta/appName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim()
        .is_empty()
    {
        meta.insert(
            "appName".into(),
            crate::error::field_error("validation_required", "Cannot be blank.", None),
        );
    }
    let app_url = settings
        .pointer("/meta/appURL")
        .and_then(Value::as_str)
        .unwrap_or("");
    if app_url.trim().is_empty() {
        meta.insert(
            "appURL".into(),
            crate::error::field_error("validation_required", "Cannot be blank.", None),
        );
    } else if !(app_url.starts_with("http://") || app_url.starts_with("https://"))
        || app_url.contains(char::is_whitespace)
    {
        meta.insert(
            "appURL".into(),
            crate::error::field_error("validation_is_url", "Must be a valid URL.", None),
        );
    }
    if !meta.is_empty() {
        errors.0.insert("meta".into(), Value::Object(meta));
    }
    if !errors.is_empty() {
        return Err(errors.into_error("An error occurred while saving the new settings."));
    }
    let text = settings.to_string();
    state
        .write(auth.actor(), move |tx| {
            tx.stage(Change::ParamSet {
                key: SETTINGS_KEY.into(),
                value: Some(text),
            })
            .map_err(ApiError::from)
        })
        .await?;
    state.set_settings(settings.clone());
    Ok(json_response(&query, redact(settings)))
}
