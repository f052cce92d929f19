//! The writes of a hook invocation (`$app.save`, `$app.delete`, collection saves from
//! migrations), prepared off the writer thread and applied inside one writer command.
//!
//! Invariants:
//! 1. [`prepare`] does everything a write does before its command (rule-lock checks as a
//!    superuser, password hashing); [`Joined::apply`] runs the same `run_*` functions as the
//!    API inside the caller's command, so the request's write and its hooks' writes are one
//!    commit, and a failing hook write fails the whole request (nothing half-done commits).
//! 2. Hook writes bypass API rules (PocketBase's `$app.save`), never validation.
//! 3. Reads inside a hook do not see the invocation's own pending writes (they commit at the
//!    end of the invocation).

use super::native::system_auth;
use crate::access::RequestData;
use crate::collections::build::{
    derive_view_fields, new_collection, stage_collection, updated_collection,
};
use crate::error::{ApiError, ApiResult};
use crate::model::record::format_ms;
use crate::model::Collection;
use crate::records::{self, WriteInput};
use crate::state::AppState;
use engine::{Actor, Change, Tx};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// One write a hook asked for.
#[derive(Debug, Deserialize)]
#[serde(tag = "op")]
pub enum Write {
    /// `$app.save(record)`.
    #[serde(rename = "save")]
    Save {
        /// Collection id or name.
        collection: String,
        /// Record id (assigned by the prelude for new records).
        id: String,
        /// A new record (create) or a loaded one (update).
        #[serde(rename = "isNew")]
        is_new: bool,
        /// All fields (create) or the changed ones (update).
        data: Map<String, Value>,
    },
    /// `$app.delete(record)`.
    #[serde(rename = "delete")]
    Delete {
        /// Collection id or name.
        collection: String,
        /// Record id.
        id: String,
    },
    /// `$app.save(collection)`.
    #[serde(rename = "saveCollection")]
    SaveCollection {
        /// It was loaded (update) rather than made with `new Collection`.
        #[serde(default)]
        existing: bool,
        /// The collection's JSON.
        collection: Map<String, Value>,
    },
    /// `$app.delete(collection)`.
    #[serde(rename = "deleteCollection")]
    DeleteCollection {
        /// Collection id or name.
        collection: String,
    },
}

enum Prepared {
    Create(Box<WriteInput>),
    Update(Box<WriteInput>, String),
    Delete(Box<WriteInput>, String),
    Collection(Box<Collection>, bool),
    DropCollection(String, String),
}

/// Prepared writes, applied in order inside a command.
#[derive(Default)]
pub struct Joined(Vec<Prepared>);

impl Joined {
    /// No writes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Applies the writes to the command's transaction, in order.
    pub fn apply(&self, tx: &mut Tx<'_>) -> ApiResult<()> {
        for write in &self.0 {
            match write {
                Prepared::Create(input) => {
                    records::run_create(tx, input)?;
                    input.uploads.persist_ready("Failed to create record.")?;
                }
                Prepared::Update(input, id) => {
                    records::run_update(tx, input, id)?;
                }
                Prepared::Delete(input, id) => records::run_delete(tx, input, id)?,
                Prepared::Collection(collection, created) => {
                    const FAILED: &str = "Failed to save collection.";
                    let mut collection = (**collection).clone();
                    let now = format_ms(tx.timestamp_ms());
                    if *created {
                        collection.rest.insert("created".into(), json!(now));
                    }
                    collection.rest.insert("updated".into(), json!(now));
                    if collection.is_view() {
                        derive_view_fields(tx, &mut collection, FAILED)?;
                    }
                    stage_collection(tx, &collection, *created, FAILED)?;
                }
                Prepared::DropCollection(id, name) => tx
                    .stage(Change::CollectionDeleted {
                        id: id.clone(),
                        name: name.clone(),
                    })
                    .map_err(ApiError::from)?,
            }
        }
        Ok(())
    }
}

/// Prepares `writes` against the current schema (as a superuser).
pub async fn prepare(state: &Arc<AppState>, writes: Vec<Write>) -> ApiResult<Joined> {
    let mut out = Vec::with_capacity(writes.len());
    if writes.is_empty() {
        return Ok(Joined(out));
    }
    let schema = state.schema();
    let auth = system_auth(state)?;
    let data = || RequestData {
        context: "hook".into(),
        ..RequestData::default()
    };
    // Collections created earlier in the same invocation, for validating later ones.
    let mut pending: Vec<Collection> = Vec::new();
    for write in writes {
        match write {
            Write::Save {
                collection,
                id,
                is_new,
                data: mut data_map,
            } => {
                let collection = records::find_collection(&schema, &collection)?;
                if is_new {
                    data_map.insert("id".into(), json!(id));
                    let input = records::prepare_create(
                        &schema,
                        &collection,
                        Some(&auth),
                        data_map,
                        data(),
                    )
                    .await?;
                    out.push(Prepared::Create(Box::new(input)));
                } else {
                    data_map.remove("id");
                    let input = records::prepare_update(
                        state,
                        &schema,
                        &collection,
                        Some(&auth),
                        &id,
                        data_map,
                        data(),
                    )
                    .await?;
                    out.push(Prepared::Update(Box::new(input), id));
                }
            }
            Write::Delete { collection, id } => {
                let collection = records::find_collection(&schema, &collection)?;
                let input = records::prepare_delete(&schema, &collection, Some(&auth), data())?;
                out.push(Prepared::Delete(Box::new(input), id));
            }
            Write::SaveCollection {
                existing,
                collection: body,
            } => {
                let key = body
                    .get("id")
                    .and_then(Value::as_str)
                    .filter(|id| !id.is_empty())
                    .or_else(|| body.get("name").and_then(Value::as_str))
                    .unwrap_or("")
                    .to_string();
                let found = schema.find(&key).cloned();
                let (collection, created) = match found {
                    Some(current) if existing || schema.find(&key).is_some() => (
                        updated_collection(&current, &body, "Failed to update collection.")?,
                        false,
                    ),
                    _ => (new_collection(&body)?, true),
                };
                let message = if created {
                    "Failed to create collection."
                } else {
                    "Failed to update collection."
                };
                let others: Vec<&Collection> = schema
                    .collections
                    .iter()
                    .map(|c| c.as_ref())
                    .filter(|c| c.id != collection.id)
                    .chain(pending.iter())
                    .collect();
                collection.validate(message, &others)?;
                pending.push(collection.clone());
                out.push(Prepared::Collection(Box::new(collection), created));
            }
            Write::DeleteCollection { collection } => {
                let found = crate::collections::find(&schema, &collection)?;
                if found.system() {
                    return Err(ApiError::bad_request("Failed to delete collection."));
                }
                out.push(Prepared::DropCollection(
                    found.id.clone(),
                    found.name.clone(),
                ));
            }
        }
    }
    Ok(Joined(out))
}

/// Prepares and commits `writes` as one commit of their own (cron jobs, after-success hooks,
/// custom routes); nothing when there are none.
pub async fn commit_alone(
    state: &Arc<AppState>,
    actor: Actor,
    writes: Vec<Write>,
) -> ApiResult<()> {
    if writes.is_empty() {
        return Ok(());
    }
    let joined = prepare(state, writes).await?;
    state.write(actor, move |tx| joined.apply(tx)).await?;
    Ok(())
}

/// Commits the writes of a read hook (view, list) as one commit of their own.
pub async fn commit_joined(state: &Arc<AppState>, actor: Actor, joined: Joined) -> ApiResult<()> {
    if joined.is_empty() {
        return Ok(());
    }
    state.write(actor, move |tx| joined.apply(tx)).await?;
    Ok(())
}
