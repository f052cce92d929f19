//! Webhook configuration: the model, its validation and its storage through the log.
//!
//! 1. All webhooks live in one `_params` entry ([`PARAM_KEY`]) written by ordinary commits, so
//!    the configuration replicates, is in backups and follows a point-in-time restore. With
//!    `--encryptionEnv` the entry is sealed like the settings (the secrets never sit in clear).
//! 2. A change is a read-modify-write inside one writer command, so two concurrent edits never
//!    lose each other.
//! 3. The `secret` is write-only: [`Webhook::to_json`] never includes it (only `hasSecret`).
//! 4. Collections are stored by id (a rename keeps the webhook) and shown by name; an empty
//!    list means every collection.

use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::model::record::format_ms;
use crate::model::Schema;
use crate::state::AppState;
use engine::{Actor, Change, Seq};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// The `_params` key holding every webhook.
pub const PARAM_KEY: &str = "webhooks";
/// Most webhooks a server keeps.
pub const WEBHOOKS_MAX: usize = 100;
/// Longest accepted URL.
pub const URL_MAX_LEN: usize = 2048;
/// Shortest accepted secret.
pub const SECRET_MIN_LEN: usize = 8;
/// Longest accepted secret.
pub const SECRET_MAX_LEN: usize = 256;
/// Longest accepted filter.
pub const FILTER_MAX_LEN: usize = 4096;

/// A record event a webhook can ask for.
pub const EVENTS: [&str; 3] = ["create", "update", "delete"];

/// One webhook as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Webhook {
    /// 15-character id.
    pub id: String,
    /// The `http(s)://` endpoint.
    pub url: String,
    /// Collection ids; empty = every collection.
    #[serde(default)]
    pub collections: Vec<String>,
    /// `create`, `update`, `delete` (never empty).
    pub events: Vec<String>,
    /// Optional filter in the rule language, evaluated against the record.
    #[serde(default)]
    pub filter: String,
    /// The HMAC key of the signature header.
    pub secret: String,
    /// Paused when false (the cursor stays where it is).
    pub active: bool,
    /// The log position at creation: delivery starts after it when no cursor is stored.
    pub since: Seq,
    /// Creation time.
    pub created: String,
    /// Last change time.
    pub updated: String,
}

impl Webhook {
    /// The public JSON (no secret; collection names as the schema has them now).
    pub fn to_json(&self, schema: &Schema) -> Value {
        let collections: Vec<String> = self
            .collections
            .iter()
            .map(|id| schema.find(id).map_or(id.clone(), |c| c.name.clone()))
            .collect();
        json!({
            "id": self.id,
            "url": self.url,
            "collections": collections,
            "events": self.events,
            "filter": self.filter,
            "active": self.active,
            "hasSecret": !self.secret.is_empty(),
            "created": self.created,
            "updated": self.updated,
        })
    }

    /// Whether the webhook wants an event of `action` on `collection_id` (the filter aside).
    pub fn wants(&self, collection_id: &str, action: &str) -> bool {
        self.events.iter().any(|event| event == action)
            && (self.collections.is_empty() || self.collections.iter().any(|c| c == collection_id))
    }
}

#[derive(Serialize, Deserialize, Default)]
struct Stored {
    items: Vec<Webhook>,
}

/// Every configured webhook, from the projection.
pub fn load(state: &AppState) -> ApiResult<Vec<Webhook>> {
    let rows = state.engine.read(|conn| {
        conn.query(
            "SELECT value FROM _params WHERE key = ?1",
            &[engine::Value::from(PARAM_KEY)],
        )
    })?;
    let Some(text) = rows.rows.first().and_then(|row| row[0].as_str()) else {
        return Ok(Vec::new());
    };
    decode(state, text)
}

fn decode(state: &AppState, text: &str) -> ApiResult<Vec<Webhook>> {
    let (value, _) = crate::settings::encrypt::load(
        text,
        state.options.settings_key.as_ref(),
        state.options.encryption_env.as_deref(),
    )
    .map_err(|err| ApiError::internal(format!("{err:#}")))?;
    let stored: Stored = serde_json::from_value(value).map_err(ApiError::internal)?;
    Ok(stored.items)
}

/// Applies `change` to the stored list inside one writer command and commits it as `actor`;
/// returns what `change` returned. `change` sees the list as of the commit.
pub async fn modify<T, F>(state: &Arc<AppState>, actor: Actor, change: F) -> ApiResult<T>
where
    T: Send + 'static,
    F: FnOnce(&mut Vec<Webhook>) -> ApiResult<T> + Send + 'static,
{
    let reader = Arc::clone(state);
    let outcome = state
        .write(actor, move |tx| {
            let rows = tx.query(
                "SELECT value FROM _params WHERE key = ?1",
                &[engine::Value::from(PARAM_KEY)],
            )?;
            let mut items = match rows.rows.first().and_then(|row| row[0].as_str()) {
                Some(text) => decode(&reader, text)?,
                None => Vec::new(),
            };
            let out = change(&mut items)?;
            let value = serde_json::to_value(Stored { items }).map_err(ApiError::internal)?;
            let text =
                crate::settings::encrypt::store(&value, reader.options.settings_key.as_ref())
                    .map_err(|err| ApiError::internal(format!("{err:#}")))?;
            tx.stage(Change::ParamSet {
                key: PARAM_KEY.into(),
                value: Some(text),
            })?;
            Ok(out)
        })
        .await?;
    Ok(outcome.value)
}

/// Validates a create (`existing` = None) or update body into a webhook; errors are the
/// PocketBase validation envelope with one entry per bad field.
pub fn from_body(
    schema: &Schema,
    body: &Map<String, Value>,
    existing: Option<&Webhook>,
    now_ms: i64,
    since: Seq,
) -> ApiResult<Webhook> {
    let mut errors = FieldErrors::default();
    let now = format_ms(now_ms);
    let mut hook = existing.cloned().unwrap_or_else(|| Webhook {
        id: crate::auth::token::new_record_id(),
        url: String::new(),
        collections: Vec::new(),
        events: EVENTS.iter().map(|e| (*e).to_string()).collect(),
        filter: String::new(),
        secret: String::new(),
        active: true,
        since,
        created: now.clone(),
        updated: now.clone(),
    });
    hook.updated = now;
    let blank = "Cannot be blank.";
    match body.get("url") {
        Some(Value::String(url)) => hook.url = url.trim().to_string(),
        Some(_) => errors.add(
            "url",
            "validation_invalid_url",
            "Must be a valid url.",
            None,
        ),
        None => {}
    }
    if hook.url.is_empty() {
        errors.add("url", "validation_required", blank, None);
    } else if hook.url.len() > URL_MAX_LEN
        || !(hook.url.starts_with("http://") || hook.url.starts_with("https://"))
        || reqwest::Url::parse(&hook.url).is_err()
    {
        errors.add(
            "url",
            "validation_invalid_url",
            "Must be a valid url.",
            None,
        );
    }
    if let Some(value) = body.get("collections") {
        match value {
            Value::Null => hook.collections.clear(),
            Value::Array(items) => {
                let mut ids = Vec::new();
                for item in items {
                    match item.as_str().and_then(|name| schema.find(name)) {
                        Some(collection) if !ids.contains(&collection.id) => {
                            ids.push(collection.id.clone())
                        }
                        Some(_) => {}
                        None => {
                            errors.add(
                                "collections",
                                "validation_missing_collection",
                                "Unknown collection.",
                                Some(json!({"collection": item})),
                            );
                            break;
                        }
                    }
                }
                hook.collections = ids;
            }
            _ => errors.add(
                "collections",
                "validation_invalid_value",
                "Must be a list of collection names.",
                None,
            ),
        }
    }
    if let Some(value) = body.get("events") {
        let parsed: Option<Vec<String>> = value.as_array().and_then(|items| {
            items
                .iter()
                .map(|item| {
                    item.as_str()
                        .filter(|event| EVENTS.contains(event))
                        .map(str::to_string)
                })
                .collect()
        });
        match parsed {
            Some(mut events) if !events.is_empty() => {
                events.dedup();
                hook.events = events;
            }
            _ => errors.add(
                "events",
                "validation_invalid_value",
                "Must be a non-empty list of create, update, delete.",
                None,
            ),
        }
    }
    match body.get("filter") {
        Some(Value::String(filter)) => hook.filter = filter.trim().to_string(),
        Some(Value::Null) => hook.filter.clear(),
        Some(_) => errors.add(
            "filter",
            "validation_invalid_value",
            "Must be a string.",
            None,
        ),
        None => {}
    }
    if hook.filter.len() > FILTER_MAX_LEN {
        errors.add(
            "filter",
            "validation_length_too_long",
            "The filter is too long.",
            None,
        );
    } else if !hook.filter.is_empty() {
        if let Err(message) = check_filter(schema, &hook) {
            errors.add("filter", "validation_invalid_filter", &message, None);
        }
    }
    match body.get("secret") {
        Some(Value::String(secret)) if !secret.is_empty() || existing.is_none() => {
            hook.secret = secret.clone()
        }
        Some(Value::String(_)) | None => {}
        Some(_) => errors.add(
            "secret",
            "validation_invalid_value",
            "Must be a string.",
            None,
        ),
    }
    if hook.secret.is_empty() {
        errors.add("secret", "validation_required", blank, None);
    } else if hook.secret.len() < SECRET_MIN_LEN || hook.secret.len() > SECRET_MAX_LEN {
        errors.add(
            "secret",
            "validation_length_out_of_range",
            &format!("The length must be between {SECRET_MIN_LEN} and {SECRET_MAX_LEN}."),
            None,
        );
    }
    match body.get("active") {
        Some(Value::Bool(active)) => hook.active = *active,
        Some(_) => errors.add(
            "active",
            "validation_invalid_value",
            "Must be a boolean.",
            None,
        ),
        None => {}
    }
    if errors.is_empty() {
        Ok(hook)
    } else {
        let message = if existing.is_some() {
            "Failed to update webhook."
        } else {
            "Failed to create webhook."
        };
        Err(errors.into_error(message))
    }
}

/// Parses the filter and resolves it against every collection the webhook covers (all of
/// them when it names none, where it must resolve against at least one).
fn check_filter(schema: &Schema, hook: &Webhook) -> Result<(), String> {
    let expr = rules::parse(&hook.filter).map_err(|err| err.to_string())?;
    let auth = crate::webhooks::superuser_view(schema);
    let data = crate::access::RequestData::default();
    let targets: Vec<_> = if hook.collections.is_empty() {
        schema.collections.clone()
    } else {
        hook.collections
            .iter()
            .filter_map(|id| schema.find(id).cloned())
            .collect()
    };
    let mut last = None;
    let mut resolved = false;
    for collection in &targets {
        match crate::realtime::render::check_client_filter(
            schema,
            collection,
            &expr,
            auth.as_ref(),
            &data,
        ) {
            Ok(()) => resolved = true,
            Err(err) => last = Some(err),
        }
    }
    let ok = if hook.collections.is_empty() {
        resolved
    } else {
        last.is_none()
    };
    if ok {
        Ok(())
    } else {
        Err("Invalid filter for the webhook's collections.".into())
    }
}
