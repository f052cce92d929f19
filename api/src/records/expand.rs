//! `expand`: relations and back-relations (`<collection>_via_<field>`) of a batch of records,
//! with one query per path segment (not per record).
//!
//! 1. Invalid paths are dropped entirely, as PocketBase does ([`valid_expand_path`]).
//! 2. Expanded records pass the target collection's viewRule for the caller (context
//!    `expand`); a locked rule expands nothing for non-superusers.
//! 3. Bounded: [`EXPAND_DEPTH_MAX`] levels, [`EXPAND_PATHS_MAX`] paths per request,
//!    [`BACK_RELATION_MAX`] back-related records per record.

use super::present::viewer;
use super::query::{build_where, query_records};
use crate::access::{is_superuser, Auth, RequestData, MAIN};
use crate::error::ApiResult;
use crate::model::record::visible_json;
use crate::model::schema::Rule;
use crate::model::schema::RuleKind;
use crate::model::FieldType;
use crate::model::{Collection, Schema};
use crate::state::AppState;
use serde_json::{Map, Value};
use std::sync::Arc;

/// Deepest `expand` nesting.
pub const EXPAND_DEPTH_MAX: usize = 6;
/// Most distinct `expand` paths per request.
pub const EXPAND_PATHS_MAX: usize = 16;
/// Most back-relation records expanded per record.
pub const BACK_RELATION_MAX: usize = 1000;

/// True when every segment of an expand path names a relation (or back-relation) of the
/// collection reached so far; PocketBase drops invalid paths entirely.
pub(crate) fn valid_expand_path(schema: &Schema, collection: &Collection, path: &str) -> bool {
    let segments: Vec<&str> = path.split('.').collect();
    if segments.len() > EXPAND_DEPTH_MAX {
        return false;
    }
    let mut current: Arc<Collection> = match schema.find(&collection.id) {
        Some(found) => Arc::clone(found),
        None => return false,
    };
    for segment in segments {
        let next = if let Some(target) = current.field(segment).and_then(|f| f.relation_target()) {
            schema.find(target).cloned()
        } else if let Some((other, via)) = segment.split_once("_via_") {
            schema.find(other).cloned().filter(|source| {
                source.field(via).is_some_and(|f| {
                    f.relation_target()
                        .is_some_and(|target| target == current.id || target == current.name)
                })
            })
        } else {
            None
        };
        match next {
            Some(next) => current = next,
            None => return false,
        }
    }
    true
}

/// One record's `expand` object (`None`: no valid path).
type Expansion = Option<Map<String, Value>>;

/// The ids a relation value holds.
fn relation_ids(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(id)) if !id.is_empty() => vec![id.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// Expands `paths` for a batch of records with one query per path segment (not per record);
/// returns each record's `expand` object (`None` when no path was valid).
pub(crate) fn expand_records<'a>(
    state: &'a Arc<AppState>,
    auth: Option<&'a Auth>,
    collection: &'a Arc<Collection>,
    records: &'a [Map<String, Value>],
    paths: &'a [String],
    depth: usize,
) -> futures::future::BoxFuture<'a, ApiResult<Vec<Expansion>>> {
    Box::pin(async move {
        if depth >= EXPAND_DEPTH_MAX || records.is_empty() {
            return Ok(vec![None; records.len()]);
        }
        let schema = state.schema();
        // Group paths by their first segment.
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for path in paths {
            let (head, rest) = match path.split_once('.') {
                Some((head, rest)) => (head.to_string(), Some(rest.to_string())),
                None => (path.clone(), None),
            };
            match groups.iter_mut().find(|(h, _)| *h == head) {
                Some((_, rests)) => rests.extend(rest),
                None => groups.push((head, rest.into_iter().collect())),
            }
        }
        let mut out: Vec<Map<String, Value>> = vec![Map::new(); records.len()];
        let mut any_valid = false;
        for (head, rests) in groups {
            if let Some(field) = collection
                .field(&head)
                .filter(|f| f.kind() == FieldType::Relation)
            {
                let Some(target) = schema
                    .find(field.relation_target().unwrap_or_default())
                    .cloned()
                else {
                    continue;
                };
                any_valid = true;
                let mut all_ids: Vec<String> = Vec::new();
                for record in records {
                    for id in relation_ids(record.get(&head)) {
                        if !all_ids.contains(&id) {
                            all_ids.push(id);
                        }
                    }
                }
                if all_ids.is_empty() {
                    continue;
                }
                let related =
                    load_visible_related(state, auth, &schema, &target, "id", &all_ids).await?;
                let nested = if rests.is_empty() {
                    vec![None; related.len()]
                } else {
                    expand_records(state, auth, &target, &related, &rests, depth + 1).await?
                };
                let presented: Vec<(String, Value)> = related
                    .iter()
                    .zip(nested)
                    .map(|(item, nested)| {
                        let mut visible = visible_json(&target, item, viewer(auth));
                        if let Some(nested) = nested {
                            visible.insert("expand".into(), Value::Object(nested));
                        }
                        let id = item
                            .get("id")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string();
                        (id, Value::Object(visible))
                    })
                    .collect();
                for (record, expansion) in records.iter().zip(out.iter_mut()) {
                    let items: Vec<Value> = relation_ids(record.get(&head))
                        .iter()
                        .filter_map(|id| {
                            presented
                                .iter()
                                .find(|(pid, _)| pid == id)
                                .map(|(_, v)| v.clone())
                        })
                        .collect();
                    if field.is_multi() {
                        if !items.is_empty() {
                            expansion.insert(head.clone(), Value::Array(items));
                        }
                    } else if let Some(first) = items.into_iter().next() {
                        expansion.insert(head.clone(), first);
                    }
                }
                continue;
            }
            // Back relation `<collection>_via_<field>`.
            let Some((other, via)) = head.split_once("_via_") else {
                continue;
            };
            let Some(source) = schema.find(other).cloned() else {
                continue;
            };
            let Some(via_field) = source
                .field(via)
                .filter(|f| f.kind() == FieldType::Relation)
            else {
                continue;
            };
            let target_id = via_field.relation_target().unwrap_or_default();
            if target_id != collection.id && target_id != collection.name {
                continue;
            }
            any_valid = true;
            let ids: Vec<String> = records
                .iter()
                .filter_map(|r| r.get("id").and_then(Value::as_str).map(str::to_string))
                .collect();
            let related = load_back_related(
                state,
                auth,
                &schema,
                &source,
                via,
                via_field.is_multi(),
                &ids,
            )
            .await?;
            let nested = if rests.is_empty() {
                vec![None; related.len()]
            } else {
                expand_records(state, auth, &source, &related, &rests, depth + 1).await?
            };
            let presented: Vec<(Vec<String>, Value)> = related
                .iter()
                .zip(nested)
                .map(|(item, nested)| {
                    let mut visible = visible_json(&source, item, viewer(auth));
                    if let Some(nested) = nested {
                        visible.insert("expand".into(), Value::Object(nested));
                    }
                    (relation_ids(item.get(via)), Value::Object(visible))
                })
                .collect();
            let unique = crate::model::collection::has_unique_index(&source.indexes(), via);
            for (record, expansion) in records.iter().zip(out.iter_mut()) {
                let id = record.get("id").and_then(Value::as_str).unwrap_or("");
                let items: Vec<Value> = presented
                    .iter()
                    .filter(|(targets, _)| targets.iter().any(|t| t == id))
                    .take(BACK_RELATION_MAX)
                    .map(|(_, v)| v.clone())
                    .collect();
                if unique {
                    if let Some(first) = items.into_iter().next() {
                        expansion.insert(head.clone(), first);
                    }
                } else if !items.is_empty() {
                    expansion.insert(head.clone(), Value::Array(items));
                }
            }
        }
        Ok(if any_valid {
            out.into_iter().map(Some).collect()
        } else {
            vec![None; records.len()]
        })
    })
}

async fn load_visible_related(
    state: &Arc<AppState>,
    auth: Option<&Auth>,
    schema: &Schema,
    target: &Arc<Collection>,
    column: &str,
    ids: &[String],
) -> ApiResult<Vec<Map<String, Value>>> {
    let rule = schema.rule(&target.id, RuleKind::View);
    if matches!(rule, Rule::Locked) && !is_superuser(auth) {
        return Ok(Vec::new());
    }
    let data = RequestData {
        method: "GET".into(),
        context: "expand".into(),
        ..RequestData::default()
    };
    let mut clause = build_where(schema, target, auth, Some(&rule), None, &data)?;
    let placeholders: Vec<String> = ids
        .iter()
        .map(|id| clause.params.push(rules::SqlValue::Text(id.clone())))
        .collect();
    clause.conditions.push(format!(
        "{MAIN}.{} IN ({})",
        engine::quote_ident(column),
        placeholders.join(",")
    ));
    query_records(state, target, &clause, "", None).await
}

async fn load_back_related(
    state: &Arc<AppState>,
    auth: Option<&Auth>,
    schema: &Schema,
    source: &Arc<Collection>,
    via: &str,
    multi: bool,
    ids: &[String],
) -> ApiResult<Vec<Map<String, Value>>> {
    let rule = schema.rule(&source.id, RuleKind::View);
    if (matches!(rule, Rule::Locked) && !is_superuser(auth)) || ids.is_empty() {
        return Ok(Vec::new());
    }
    let data = RequestData {
        method: "GET".into(),
        context: "expand".into(),
        ..RequestData::default()
    };
    let mut clause = build_where(schema, source, auth, Some(&rule), None, &data)?;
    let placeholders: Vec<String> = ids
        .iter()
        .map(|id| clause.params.push(rules::SqlValue::Text(id.clone())))
        .collect();
    let list = placeholders.join(",");
    let column = format!("{MAIN}.{}", engine::quote_ident(via));
    clause.conditions.push(if multi {
        format!("EXISTS (SELECT 1 FROM json_each(CASE WHEN json_valid({column}) THEN {column} ELSE '[]' END) WHERE value IN ({list}))")
    } else {
        format!("{column} IN ({list})")
    });
    let limit = (BACK_RELATION_MAX * ids.len()) as i64;
    query_records(state, source, &clause, "", Some((limit, 0))).await
}
