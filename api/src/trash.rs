//! The trash: records deleted from a collection, read back from the log (the domain of
//! `GET /api/collections/{c}/trash`, whose handler is HTTP glue).
//!
//! 1. An item is the last delete of a record id whose record was not created again after it:
//!    `id`, `position` (the delete's seq), `deletedAt`, `actor` and the `record` as it was
//!    before the delete (hidden fields left out, as in history).
//! 2. Access follows the collection's `restoreRule` (PocketBase's conventions: `null`, the
//!    default, is superusers only; `""` everyone). A non-superuser sees in the trash only the
//!    deleted records whose old values pass both the `restoreRule` and the `listRule`
//!    ([`passes_detached`]: in memory when the rule needs no other row, else one SQL query
//!    over the old values as a one-row table), and restores only when the `createRule` and
//!    the `restoreRule` pass against the restored row, checked inside the restore's command
//!    (a failing rule rolls it back: the restore rule first, 404 as for a record the caller
//!    cannot see; then the create rule, 400).
//! 3. A restore (`POST …/records/{id}/restore`) is one ordinary create commit of the values
//!    before the last delete (realtime, history and the change feed see a create), with the
//!    files whose bytes storage still holds; relations that point at missing records and
//!    files that are gone are reported in the answer, never silently dropped or broken.
//!    An auth record comes back with a new `tokenKey`: tokens issued before the delete stay
//!    revoked.
//! 4. The scan is linear over the retained log (batches of [`TRASH_BATCH_COMMITS`] off the
//!    async runtime); memory is one entry per deleted id, and the answer holds the
//!    [`TRASH_ITEMS_MAX`] most recent deletes, newest first. Deletes older than the first
//!    retained seq (compacted away) are not in the trash.

use crate::access::{self, is_superuser, Auth, RequestData, Where, MAIN};
use crate::error::{ApiError, ApiResult};
use crate::history::{actor_json, record_json};
use crate::model::record::format_ms;
use crate::model::record::{from_row, to_storage};
use crate::model::schema::{Rule, RuleKind};
use crate::model::{Collection, FieldType, Schema};
use crate::state::AppState;
use engine::{Change, Tx};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Commits read per batch while scanning the log for the trash.
pub const TRASH_BATCH_COMMITS: usize = 4096;
/// Most items in one trash answer (the most recent deletes).
pub const TRASH_ITEMS_MAX: usize = 1000;

/// The last delete of each record id of `collection_id` that was not created again after
/// it (only `only` when given): id → (seq, timestamp, actor, values before the delete).
type Trash = HashMap<
    String,
    (
        engine::Seq,
        i64,
        engine::Actor,
        Vec<(String, engine::Value)>,
    ),
>;

fn scan(
    reader: &engine::LogReader,
    collection_id: &str,
    only: Option<&str>,
) -> engine::Result<Trash> {
    let last = reader.last_seq();
    let mut next = reader.first_seq();
    let mut trash = Trash::new();
    while next <= last {
        let commits = reader.read_from(next, TRASH_BATCH_COMMITS)?;
        let Some(end) = commits.last().map(|commit| commit.seq) else {
            break;
        };
        for commit in commits {
            for change in commit.changes {
                match change {
                    Change::RecordDeleted {
                        collection_id: changed,
                        id,
                        old,
                    } if changed == collection_id && only.is_none_or(|o| o == id) => {
                        trash.insert(
                            id,
                            (commit.seq, commit.timestamp_ms, commit.actor.clone(), old),
                        );
                    }
                    Change::RecordCreated {
                        collection_id: changed,
                        id,
                        ..
                    } if changed == collection_id => {
                        trash.remove(&id);
                    }
                    _ => {}
                }
            }
        }
        next = end + 1;
    }
    Ok(trash)
}

/// The trash of `collection` as `auth` may see it, newest delete first, and the first
/// retained seq. A non-superuser needs an unlocked `restoreRule` (else 401/403, as a
/// superuser-only route) and `listRule` (else 403), and sees only the items whose old values
/// pass both.
pub async fn deleted(
    state: &Arc<AppState>,
    collection: Arc<Collection>,
    auth: Option<&Auth>,
    data: &RequestData,
) -> ApiResult<(Vec<Value>, u64)> {
    let schema = state.schema();
    let checks = if is_superuser(auth) {
        Vec::new()
    } else {
        locked_check(&schema, &collection, auth, RuleKind::Restore)?;
        locked_check(&schema, &collection, auth, RuleKind::List)?;
        [RuleKind::Restore, RuleKind::List]
            .map(|kind| schema.rule(&collection.id, kind))
            .into_iter()
            .filter_map(|rule| match rule {
                Rule::Expr(expr) => Some(expr),
                _ => None,
            })
            .collect()
    };
    let reader = state.engine.log().clone();
    let scanned_collection = Arc::clone(&collection);
    let (trash, first) = tokio::task::spawn_blocking(move || -> engine::Result<_> {
        let first = reader.first_seq();
        let trash = scan(&reader, &scanned_collection.id, None)?;
        let mut items: Vec<_> = trash.into_iter().collect();
        items.sort_by_key(|item| std::cmp::Reverse(item.1 .0));
        Ok((items, first))
    })
    .await
    .map_err(|err| ApiError::internal(err.to_string()))?
    .map_err(ApiError::from)?;
    let info = access::request_info(auth, data);
    let mut items = Vec::new();
    for (id, (seq, timestamp_ms, actor, old)) in trash {
        if items.len() == TRASH_ITEMS_MAX {
            break;
        }
        let mut visible = true;
        for expr in &checks {
            if !passes_detached(state, &schema, &collection, expr, &info, &old).await? {
                visible = false;
                break;
            }
        }
        if visible {
            items.push(json!({
                "id": id,
                "position": seq,
                "deletedAt": format_ms(timestamp_ms),
                "actor": actor_json(&actor),
                "record": record_json(&collection, &old),
            }));
        }
    }
    Ok((items, first))
}

/// A locked (`null`) rule stops a non-superuser: the restore rule as a superuser-only route
/// (401 for guests, 403 for records), any other with PocketBase's 403.
pub(crate) fn locked_check(
    schema: &Schema,
    collection: &Collection,
    auth: Option<&Auth>,
    kind: RuleKind,
) -> ApiResult<()> {
    if is_superuser(auth) || !matches!(schema.rule(&collection.id, kind), Rule::Locked) {
        return Ok(());
    }
    if kind == RuleKind::Restore {
        return crate::extract::require_superuser(auth.cloned()).map(|_| ());
    }
    Err(ApiError::forbidden(
        "Only superusers can perform this action.",
    ))
}

/// True when a record of `collection` that is not stored (a deleted record's old `values`)
/// passes `expr` for the caller of `info`: evaluated in memory when the rule needs no other
/// row, else by one read of the values as a one-row table under the collection's alias
/// (relations and back-relations join today's tables).
pub(crate) async fn passes_detached(
    state: &Arc<AppState>,
    schema: &Arc<Schema>,
    collection: &Arc<Collection>,
    expr: &rules::Expr,
    info: &rules::RequestInfo,
    values: &[(String, engine::Value)],
) -> ApiResult<bool> {
    let columns: Vec<String> = values.iter().map(|(column, _)| column.clone()).collect();
    let row: Vec<engine::Value> = values.iter().map(|(_, value)| value.clone()).collect();
    let record = from_row(collection, &columns, &row);
    if let Some(coll_info) = schema.info(&collection.id) {
        if !rules::needs_database(expr, &**schema, coll_info) {
            if let Ok(passes) = rules::eval(expr, &**schema, coll_info, &record, info) {
                return Ok(passes);
            }
        }
    }
    let mut clause = Where::default();
    clause.add(schema, collection, expr, info, false)?;
    let mut select = Vec::new();
    for (column, value) in to_storage(collection, &record) {
        let placeholder = clause.bind(&value);
        select.push(format!("{placeholder} AS {}", engine::quote_ident(&column)));
    }
    let sql = format!(
        "SELECT 1 FROM (SELECT {}) {MAIN} {} {} LIMIT 1",
        select.join(", "),
        clause.joins_sql(),
        clause.where_sql()
    );
    let params = clause.engine_params();
    let rows = state.read(move |conn| conn.query(&sql, &params)).await?;
    Ok(!rows.is_empty())
}

/// What a restore did: the record as restored, and what it could not bring back.
#[derive(Debug)]
pub struct Restored {
    /// The restored record (all columns the collection still has).
    pub record: Map<String, Value>,
    /// Relation field → ids it names that do not exist (the record keeps them; reported).
    pub missing_relations: Map<String, Value>,
    /// File field → names whose bytes are no longer in storage (left out of the record).
    pub missing_files: Map<String, Value>,
    /// The delete the record came back from.
    pub deleted_at_position: engine::Seq,
    /// The restore's own commit.
    pub position: engine::Seq,
}

/// The names (files) or ids (relations) of a stored multi-value field: a JSON array text, or
/// one plain value.
pub(crate) fn names_of(value: &engine::Value) -> (bool, Vec<String>) {
    match value {
        engine::Value::Text(text) if text.starts_with('[') => (
            true,
            serde_json::from_str::<Vec<String>>(text).unwrap_or_default(),
        ),
        engine::Value::Text(text) if !text.is_empty() => (false, vec![text.clone()]),
        _ => (false, Vec::new()),
    }
}

/// The relation fields of `collection` with their target table and the ids `values` name.
pub(crate) type RelationIds = Vec<(String, String, Vec<String>)>;

/// See [`RelationIds`].
pub(crate) fn relation_ids(
    schema: &Schema,
    collection: &Collection,
    values: &[(String, engine::Value)],
) -> RelationIds {
    collection
        .fields
        .iter()
        .filter(|f| f.kind() == FieldType::Relation)
        .filter_map(|field| {
            let target = schema.find(field.relation_target().unwrap_or_default())?;
            let ids = values
                .iter()
                .find(|(column, _)| column == field.name())
                .map(|(_, value)| names_of(value).1)
                .unwrap_or_default();
            Some((field.name().to_string(), target.name.clone(), ids))
        })
        .collect()
}

/// Relation field → the ids it names that do not exist in the staged state.
pub(crate) fn missing_relations(
    tx: &Tx<'_>,
    relations: &RelationIds,
) -> ApiResult<Map<String, Value>> {
    let mut missing = Map::new();
    for (field, target, ids) in relations {
        let mut absent = Vec::new();
        for wanted in ids {
            let rows = tx
                .query(
                    &format!(
                        "SELECT 1 FROM {} WHERE id = ?1",
                        engine::quote_ident(target)
                    ),
                    &[engine::Value::Text(wanted.clone())],
                )
                .map_err(ApiError::from)?;
            if rows.rows.is_empty() {
                absent.push(wanted.clone());
            }
        }
        if !absent.is_empty() {
            missing.insert(field.clone(), json!(absent));
        }
    }
    Ok(missing)
}

/// A rule a write must pass, and the error its failure answers.
pub(crate) type RuleCheck = (RuleKind, fn() -> ApiError);

/// Checks, inside a write command, the staged row `id` against the rules a non-superuser
/// must pass (`kinds`, each with the error its failure answers); superusers pass.
pub(crate) fn staged_rules_pass(
    tx: &Tx<'_>,
    input: &crate::records::WriteInput,
    id: &str,
    stored: &Map<String, Value>,
    kinds: &[RuleCheck],
) -> ApiResult<()> {
    if is_superuser(&input.auth) {
        return Ok(());
    }
    for (kind, failure) in kinds {
        if let Rule::Expr(expr) = input.schema.rule(&input.collection.id, *kind) {
            let passes = crate::records::write::staged_row_passes(
                tx,
                input,
                &input.data,
                &expr,
                id,
                Some(stored),
            )?;
            if !passes {
                return Err(failure());
            }
        }
    }
    Ok(())
}

/// Brings record `id` of `collection` back from its last delete as one ordinary create
/// commit (`auth` is the caller, checked as the module doc says): the values it had, for
/// the fields the collection still has (fields added since get their defaults), its files
/// whose bytes storage still holds. A record with that id existing now is a 400; no delete
/// of it in the retained log is a 404. Relations that point at missing records are kept and
/// reported ([`Restored::missing_relations`]), as are files that are gone.
pub async fn restore(
    state: &Arc<AppState>,
    collection: Arc<Collection>,
    id: String,
    auth: Option<&Auth>,
    data: RequestData,
) -> ApiResult<Restored> {
    let schema = state.schema();
    locked_check(&schema, &collection, auth, RuleKind::Restore)?;
    locked_check(&schema, &collection, auth, RuleKind::Create)?;
    let reader = state.engine.log().clone();
    let (collection_id, wanted) = (collection.id.clone(), id.clone());
    let found = tokio::task::spawn_blocking(move || scan(&reader, &collection_id, Some(&wanted)))
        .await
        .map_err(|err| ApiError::internal(err.to_string()))?
        .map_err(ApiError::from)?;
    let Some((deleted_seq, _, _, old)) = found.get(&id).cloned() else {
        return Err(ApiError::not_found());
    };
    let storage = crate::files::storage::LocalStorage::new(state.engine.dir());
    let mut values = Vec::new();
    let mut added = Vec::new();
    let mut missing_files = Map::new();
    for (column, value) in old {
        let Some(field) = collection.fields.iter().find(|f| f.name() == column) else {
            continue;
        };
        if column == "tokenKey" && collection.is_auth() {
            // Tokens issued before the delete stay revoked: a restored account signs in anew.
            values.push((
                column,
                engine::Value::Text(crate::auth::token::new_token_key()),
            ));
            continue;
        }
        if field.kind() != FieldType::File {
            values.push((column, value));
            continue;
        }
        let (multiple, names) = names_of(&value);
        let (kept, gone): (Vec<String>, Vec<String>) = names.into_iter().partition(|name| {
            storage
                .path_of(&collection.id, &id, name)
                .is_some_and(|path| path.is_file())
        });
        if !gone.is_empty() {
            missing_files.insert(column.clone(), json!(gone));
        }
        added.extend(kept.iter().cloned());
        let value = if multiple {
            engine::Value::Text(serde_json::to_string(&kept).unwrap_or_else(|_| "[]".into()))
        } else {
            engine::Value::Text(kept.into_iter().next().unwrap_or_default())
        };
        values.push((column, value));
    }
    let relations = relation_ids(&schema, &collection, &values);
    let columns: Vec<String> = values.iter().map(|(column, _)| column.clone()).collect();
    let row: Vec<engine::Value> = values.iter().map(|(_, value)| value.clone()).collect();
    let record = from_row(&collection, &columns, &row);
    let mut rule_data = data;
    if let Value::Object(body) = record_json(&collection, &values) {
        rule_data.body = body;
    }
    let input = crate::records::WriteInput {
        collection: Arc::clone(&collection),
        schema: Arc::clone(&schema),
        auth: auth.cloned(),
        body: rule_data.body.clone(),
        data: rule_data,
        password_hash: None,
        manager: is_superuser(auth),
        uploads: crate::files::write::PendingUploads::default(),
    };
    let (table, collection_id, record_id) =
        (collection.name.clone(), collection.id.clone(), id.clone());
    let staged = values;
    let stored = record.clone();
    let outcome = state
        .write(access::actor_of(auth), move |tx| {
            let exists = tx
                .query(
                    &format!(
                        "SELECT 1 FROM {} WHERE id = ?1",
                        engine::quote_ident(&table)
                    ),
                    &[engine::Value::Text(record_id.clone())],
                )
                .map_err(ApiError::from)?;
            if !exists.rows.is_empty() {
                return Err(ApiError::bad_request("A record with this id exists."));
            }
            let missing = missing_relations(tx, &relations)?;
            tx.stage(Change::RecordCreated {
                collection_id: collection_id.clone(),
                id: record_id.clone(),
                values: staged,
            })
            .map_err(ApiError::from)?;
            staged_rules_pass(
                tx,
                &input,
                &record_id,
                &stored,
                &[
                    (RuleKind::Restore, ApiError::not_found),
                    (RuleKind::Create, || {
                        ApiError::bad_request("Failed to restore record.")
                    }),
                ],
            )?;
            if !added.is_empty() {
                tx.stage(Change::FilesChanged {
                    collection_id,
                    record_id,
                    added,
                    removed: Vec::new(),
                })
                .map_err(ApiError::from)?;
            }
            Ok(missing)
        })
        .await?;
    Ok(Restored {
        record,
        missing_relations: outcome.value,
        missing_files,
        deleted_at_position: deleted_seq,
        position: outcome.commit.map_or(0, |commit| commit.seq),
    })
}
