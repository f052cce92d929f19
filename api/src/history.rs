//! Record history: every version of a record, read from the log (the domain of
//! `GET /api/collections/{c}/records/{id}/history`, whose handler is HTTP glue).
//!
//! 1. Each item is one commit that touched the record: `seq`, `time`, `action` (`create`,
//!    `update`, `delete`), `actor` and the full `record` after the change (before it, for a
//!    delete), with hidden fields left out; a redaction is an item with `action` `redact`
//!    and the erased `fields`, and those fields show `"redacted"` in every earlier version.
//! 2. The scan is linear over the retained log (O(log size) per request, batches of
//!    [`HISTORY_BATCH_COMMITS`] commits off the async runtime, at most
//!    [`HISTORY_VERSIONS_MAX`] versions); an index by record is future work. The first
//!    retained seq says where the history starts (older versions were compacted away).
//! 3. A revert ([`revert`], `POST …/records/{id}/revert {"position": N}`) writes the version
//!    at position N back as one ordinary update commit (realtime, history and the change feed
//!    see an update), through the `updateRule` and the `restoreRule`; the version's files must
//!    still be stored (else a 400 naming them), credentials are kept, and relations that point
//!    at records deleted since are kept and reported, never silently dropped.

use crate::access::{self, is_superuser, Auth, RequestData};
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::model::record::{format_ms, from_row, to_storage};
use crate::model::schema::RuleKind;
use crate::model::{Collection, FieldType};
use crate::records::write::load_staged;
use crate::records::WriteInput;
use crate::state::AppState;
use engine::{Actor, Change};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Commits read per batch while scanning the log for history.
pub const HISTORY_BATCH_COMMITS: usize = 4096;
/// Most versions returned by one history request.
pub const HISTORY_VERSIONS_MAX: usize = 10_000;

/// The JSON of a commit's actor (`{type, id?, collectionId?}`).
pub fn actor_json(actor: &Actor) -> Value {
    match actor {
        Actor::System => json!({"type": "system"}),
        Actor::Superuser(id) => json!({"type": "superuser", "id": id}),
        Actor::Record { collection_id, id } => {
            json!({"type": "record", "collectionId": collection_id, "id": id})
        }
        Actor::Guest => json!({"type": "guest"}),
    }
}

/// The versions of record `id` of `collection`, oldest first, and the first retained seq.
pub async fn versions(
    state: &Arc<AppState>,
    collection: Arc<Collection>,
    id: String,
) -> ApiResult<(Vec<Value>, u64)> {
    let reader = state.engine.log().clone();
    let items = tokio::task::spawn_blocking(move || -> engine::Result<(Vec<Value>, u64)> {
        let first = reader.first_seq();
        let last = reader.last_seq();
        let mut next = first;
        let mut items = Vec::new();
        let mut redactions: Vec<(u64, Vec<String>)> = Vec::new();
        while next <= last && items.len() < HISTORY_VERSIONS_MAX {
            let commits = reader.read_from(next, HISTORY_BATCH_COMMITS)?;
            let Some(end) = commits.last().map(|commit| commit.seq) else {
                break;
            };
            for commit in &commits {
                for change in &commit.changes {
                    if let Change::Redacted {
                        collection_id,
                        id: changed,
                        fields,
                        ..
                    } = change
                    {
                        if *collection_id == collection.id && *changed == id {
                            redactions.push((commit.seq, fields.clone()));
                            items.push(json!({
                                "seq": commit.seq,
                                "time": format_ms(commit.timestamp_ms),
                                "action": "redact",
                                "actor": actor_json(&commit.actor),
                                "fields": fields,
                            }));
                        }
                        continue;
                    }
                    let (action, values) = match change {
                        Change::RecordCreated {
                            collection_id,
                            id: changed,
                            values,
                        } if *collection_id == collection.id && *changed == id => {
                            ("create", values)
                        }
                        Change::RecordUpdated {
                            collection_id,
                            id: changed,
                            values,
                        } if *collection_id == collection.id && *changed == id => {
                            ("update", values)
                        }
                        Change::RecordDeleted {
                            collection_id,
                            id: changed,
                            old,
                        } if *collection_id == collection.id && *changed == id => ("delete", old),
                        _ => continue,
                    };
                    items.push(json!({
                        "seq": commit.seq,
                        "time": format_ms(commit.timestamp_ms),
                        "action": action,
                        "actor": actor_json(&commit.actor),
                        "record": record_json(&collection, values),
                    }));
                }
            }
            next = end + 1;
        }
        mark_redacted(&mut items, &redactions);
        Ok((items, first))
    })
    .await
    .map_err(|err| ApiError::internal(err.to_string()))?;
    items.map_err(ApiError::from)
}

/// The value history shows for an erased field.
pub const REDACTED: &str = "redacted";

/// Shows [`REDACTED`] for every field a later redaction erased (the log holds the erased
/// value, the field's default, for those versions).
fn mark_redacted(items: &mut [Value], redactions: &[(u64, Vec<String>)]) {
    for item in items.iter_mut() {
        let seq = item.get("seq").and_then(Value::as_u64).unwrap_or(0);
        let Some(record) = item.get_mut("record").and_then(Value::as_object_mut) else {
            continue;
        };
        for (redacted_at, fields) in redactions {
            if seq < *redacted_at {
                for field in fields {
                    if record.contains_key(field) {
                        record.insert(field.clone(), Value::String(REDACTED.into()));
                    }
                }
            }
        }
    }
}

/// The record JSON of a change's values, shaped like the API's records (hidden fields out).
pub fn record_json(collection: &Collection, values: &[(String, engine::Value)]) -> Value {
    let columns: Vec<String> = values.iter().map(|(name, _)| name.clone()).collect();
    let row: Vec<engine::Value> = values.iter().map(|(_, value)| value.clone()).collect();
    let mut record = from_row(collection, &columns, &row);
    for field in &collection.fields {
        if field.hidden() || field.kind() == FieldType::Password || field.name() == "tokenKey" {
            record.remove(field.name());
        }
    }
    Value::Object(record)
}

/// Auth fields a revert never brings back: credentials stay as they are now (a revert is
/// not a way to restore an old password or to resurrect revoked tokens).
const REVERT_KEEPS: &[&str] = &["password", "tokenKey"];
/// Auth fields only a manager (superuser) may revert (as on an update, they are manage-only).
const REVERT_MANAGE_ONLY: &[&str] = &["email", "verified"];

/// What a revert did.
#[derive(Debug)]
pub struct Reverted {
    /// The record as it is after the revert.
    pub record: Map<String, Value>,
    /// Relation field → ids of the old version that do not exist now (kept; reported).
    pub missing_relations: Map<String, Value>,
    /// The seq of the version written back (the last create or update at or before the
    /// requested position).
    pub version: engine::Seq,
    /// The revert's own commit.
    pub position: engine::Seq,
}

/// A version of a record: the seq of the change that gave it, and its stored values.
type Version = (engine::Seq, Vec<(String, engine::Value)>);

/// The values of record `id` of `collection` right after `position` (`None`: it did not
/// exist then) and the seq of the change that gave them.
fn version_at(
    reader: &engine::LogReader,
    collection_id: &str,
    id: &str,
    position: engine::Seq,
) -> engine::Result<Option<Version>> {
    let mut next = reader.first_seq();
    let mut version = None;
    while next <= position {
        let commits = reader.read_from(next, HISTORY_BATCH_COMMITS)?;
        let Some(end) = commits.last().map(|commit| commit.seq) else {
            break;
        };
        for commit in commits.into_iter().take_while(|c| c.seq <= position) {
            for change in commit.changes {
                match change {
                    Change::RecordCreated {
                        collection_id: changed,
                        id: record,
                        values,
                    }
                    | Change::RecordUpdated {
                        collection_id: changed,
                        id: record,
                        values,
                    } if changed == collection_id && record == id => {
                        version = Some((commit.seq, values));
                    }
                    Change::RecordDeleted {
                        collection_id: changed,
                        id: record,
                        ..
                    } if changed == collection_id && record == id => version = None,
                    _ => {}
                }
            }
        }
        next = end + 1;
    }
    Ok(version)
}

/// Writes record `id` of `collection` back to its version at log position `position` as
/// one ordinary update commit (`auth` is the caller).
///
/// A non-superuser needs the `updateRule` (against the record as it is, 404 when it fails)
/// and the `restoreRule` (against the reverted row, 404 when it fails); a locked one is a
/// 403 (a locked `restoreRule`: 401 for guests). A position beyond the head of the log or
/// before its retained start is a 400, as is a position at which the record did not exist
/// or a version whose files storage no longer holds. The record must exist now (a deleted
/// one comes back by a restore). Credentials ([`REVERT_KEEPS`]) are kept; relations that
/// point at records deleted since are kept and reported.
pub async fn revert(
    state: &Arc<AppState>,
    collection: Arc<Collection>,
    id: String,
    position: engine::Seq,
    auth: Option<&Auth>,
    data: RequestData,
) -> ApiResult<Reverted> {
    if collection.is_view() {
        return Err(ApiError::bad_request("Unsupported collection type."));
    }
    let schema = state.schema();
    crate::trash::locked_check(&schema, &collection, auth, RuleKind::Update)?;
    crate::trash::locked_check(&schema, &collection, auth, RuleKind::Restore)?;
    let reader = state.engine.log().clone();
    let (first, last) = (reader.first_seq(), reader.last_seq());
    if position > last {
        return Err(ApiError::bad_request(&format!(
            "Position {position} is beyond the head of the log (the last position is {last})."
        )));
    }
    if position < first {
        return Err(ApiError::bad_request(&format!(
            "Position {position} is no longer retained (the log starts at position {first})."
        )));
    }
    let (collection_id, wanted) = (collection.id.clone(), id.clone());
    let found =
        tokio::task::spawn_blocking(move || version_at(&reader, &collection_id, &wanted, position))
            .await
            .map_err(|err| ApiError::internal(err.to_string()))?
            .map_err(ApiError::from)?;
    let Some((version, old)) = found else {
        return Err(ApiError::bad_request(&format!(
            "The record did not exist at position {position}."
        )));
    };
    let storage = crate::files::storage::LocalStorage::new(state.engine.dir());
    let mut gone = Vec::new();
    let mut old_files = Vec::new();
    for (column, value) in &old {
        if collection.field(column).map(|f| f.kind()) != Some(FieldType::File) {
            continue;
        }
        for name in crate::trash::names_of(value).1 {
            let stored = storage
                .path_of(&collection.id, &id, &name)
                .is_some_and(|path| path.is_file());
            if stored {
                old_files.push(name);
            } else {
                gone.push(name);
            }
        }
    }
    if !gone.is_empty() {
        return Err(ApiError::bad_request(&format!(
            "The files of that version are no longer stored: {}.",
            gone.join(", ")
        )));
    }
    let superuser = is_superuser(auth);
    let old_columns: Vec<String> = old.iter().map(|(column, _)| column.clone()).collect();
    let old_row: Vec<engine::Value> = old.iter().map(|(_, value)| value.clone()).collect();
    let old_record = from_row(&collection, &old_columns, &old_row);
    let mut rule_data = data;
    if let Value::Object(body) = record_json(&collection, &old) {
        rule_data.body = body;
    }
    let input = WriteInput {
        collection: Arc::clone(&collection),
        schema: Arc::clone(&schema),
        auth: auth.cloned(),
        body: rule_data.body.clone(),
        data: rule_data,
        password_hash: None,
        manager: superuser,
        uploads: crate::files::write::PendingUploads::default(),
    };
    let record_id = id.clone();
    let outcome = state
        .write(access::actor_of(auth), move |tx| {
            const FAILED: &str = "Failed to revert record.";
            let collection = Arc::clone(&input.collection);
            let Some(existing) = load_staged(tx, &collection, &record_id)? else {
                return Err(ApiError::not_found());
            };
            crate::trash::staged_rules_pass(
                tx,
                &input,
                &record_id,
                &existing,
                &[(RuleKind::Update, ApiError::not_found)],
            )?;
            let mut record = existing.clone();
            for field in &collection.fields {
                let name = field.name();
                let kept = name == "id"
                    || field.kind() == FieldType::Autodate
                    || (collection.is_auth()
                        && (REVERT_KEEPS.contains(&name)
                            || (!superuser && REVERT_MANAGE_ONLY.contains(&name))));
                if !kept {
                    if let Some(value) = old_record.get(name) {
                        record.insert(name.to_string(), value.clone());
                    }
                }
            }
            let now = crate::model::record::format_ms(tx.timestamp_ms());
            for field in &collection.fields {
                if field.on_update() {
                    record.insert(field.name().to_string(), json!(now));
                }
            }
            let mut errors = FieldErrors::default();
            crate::model::record::validate(&collection, &record, &mut errors);
            if !errors.is_empty() {
                return Err(errors.into_error(FAILED));
            }
            let values = to_storage(&collection, &record);
            let relations = crate::trash::relation_ids(&input.schema, &collection, &values);
            let missing = crate::trash::missing_relations(tx, &relations)?;
            let current_files: Vec<String> = to_storage(&collection, &existing)
                .iter()
                .filter(|(column, _)| {
                    collection.field(column).map(|f| f.kind()) == Some(FieldType::File)
                })
                .flat_map(|(_, value)| crate::trash::names_of(value).1)
                .collect();
            tx.stage(Change::RecordUpdated {
                collection_id: collection.id.clone(),
                id: record_id.clone(),
                values,
            })
            .map_err(|err| crate::records::validate::staging_error(err, FAILED))?;
            crate::trash::staged_rules_pass(
                tx,
                &input,
                &record_id,
                &record,
                &[(RuleKind::Restore, ApiError::not_found)],
            )?;
            let added: Vec<String> = old_files
                .iter()
                .filter(|name| !current_files.contains(name))
                .cloned()
                .collect();
            let removed: Vec<String> = current_files
                .iter()
                .filter(|name| !old_files.contains(name))
                .cloned()
                .collect();
            if !added.is_empty() || !removed.is_empty() {
                tx.stage(Change::FilesChanged {
                    collection_id: collection.id.clone(),
                    record_id: record_id.clone(),
                    added,
                    removed,
                })
                .map_err(ApiError::from)?;
            }
            Ok((record, missing))
        })
        .await?;
    let (record, missing_relations) = outcome.value;
    Ok(Reverted {
        record,
        missing_relations,
        version,
        position: outcome.commit.map_or(0, |commit| commit.seq),
    })
}
