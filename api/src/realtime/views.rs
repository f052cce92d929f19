//! Realtime for view collections: a view has no records of its own in the log, so when a
//! commit changes a record of one of a view's sources, the subscribers of the view's topics
//! (`view/*`, `view/ID`, `view`) get one `refresh` event that tells them to refetch.
//!
//! The event's `data` is `{"action": "refresh", "record": {"collectionId", "collectionName"
//! [, "id"]}, "position": <seq>}`: the SDK passes an unknown action through to the callback
//! (`record` keeps the shape its callback type expects); `position` is the commit's log
//! position, so a refetch with `?asOf=<position>` or a list read at or after it reflects it.
//!
//! Invariants:
//! 1. Sources are the collections a view's query names (an identifier equal to a collection
//!    name, case-insensitively, outside string literals), transitively through views: a
//!    superset of the real sources at worst, so a change is never missed (an extra refresh
//!    costs a refetch, never data).
//! 2. At most one refresh per commit and subscription, after the commit's record events;
//!    frame parts stay unique within the commit (`change_index` one past its last change).
//! 3. Access: the topic's rule (`listRule` for `view/*`, `viewRule` for `view/ID`) as it
//!    stands now: locked → superusers only; open → everyone; an expression → only a
//!    subscriber for whom at least one row of the view (the named one for a record topic)
//!    passes it now (one SQL query). A subscriber whose last visible row just left the view
//!    therefore gets no refresh for that commit.

use super::render::RecordEvent;
use super::sse;
use super::topic::Topic;
use super::SUBSCRIPTIONS_MAX;
use crate::access::{self, Auth, RequestData, Where, MAIN};
use crate::model::schema::Rule;
use crate::model::{Collection, Schema};
use crate::state::AppState;
use engine::Value as SqlValue;
use serde_json::{json, Map};
use std::collections::HashSet;
use std::sync::Arc;

/// Deepest chain of views over views followed when collecting sources.
pub const VIEW_SOURCE_DEPTH_MAX: usize = 8;

/// The words of a query that can name a table: identifiers, bare or quoted (`"x"`, `` `x` ``,
/// `[x]`), outside string literals.
fn identifiers(query: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = query.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                for inner in chars.by_ref() {
                    if inner == '\'' {
                        break;
                    }
                }
            }
            '"' | '`' | '[' => {
                let close = if c == '[' { ']' } else { c };
                let word: String = chars.by_ref().take_while(|&inner| inner != close).collect();
                out.push(word);
            }
            c if c.is_alphanumeric() || c == '_' => {
                let mut word = c.to_string();
                while let Some(&next) = chars.peek() {
                    if next.is_alphanumeric() || next == '_' {
                        word.push(next);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(word);
            }
            _ => {}
        }
    }
    out
}

/// The ids of the collections whose records `view` reads (see invariant 1).
pub fn sources(schema: &Schema, view: &Collection) -> HashSet<String> {
    let mut found = HashSet::new();
    let mut pending = vec![(view.id.clone(), 0usize)];
    let mut seen = HashSet::new();
    while let Some((id, depth)) = pending.pop() {
        if !seen.insert(id.clone()) || depth > VIEW_SOURCE_DEPTH_MAX {
            continue;
        }
        let Some(collection) = schema.find(&id) else {
            continue;
        };
        let query = collection
            .rest
            .get("viewQuery")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("");
        for word in identifiers(query) {
            let Some(named) = schema
                .collections
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(&word))
            else {
                continue;
            };
            if named.is_view() {
                pending.push((named.id.clone(), depth + 1));
            } else {
                found.insert(named.id.clone());
            }
        }
    }
    found
}

/// The refresh frames of one commit (`seq`, with record `events`) for a session's
/// subscriptions as seen by `auth` (`skip`: the frame already delivered, when resuming
/// inside this commit).
pub async fn refresh_frames(
    state: &Arc<AppState>,
    schema: &Schema,
    subscriptions: &[Topic],
    auth: Option<&Auth>,
    seq: engine::Seq,
    events: &[RecordEvent],
    skip: Option<(engine::Seq, u64)>,
) -> Vec<sse::Frame> {
    let mut frames = Vec::new();
    let Some(last_change) = events.iter().map(|event| event.change_index).max() else {
        return frames;
    };
    let changed: HashSet<&str> = events
        .iter()
        .map(|event| event.collection.id.as_str())
        .collect();
    for (topic_index, topic) in subscriptions.iter().enumerate() {
        if !topic.valid || seq <= topic.floor {
            continue;
        }
        let Some(view) = schema.find(&topic.collection).filter(|c| c.is_view()) else {
            continue;
        };
        if !sources(schema, view)
            .iter()
            .any(|source| changed.contains(source.as_str()))
        {
            continue;
        }
        let part = ((last_change + 1) * SUBSCRIPTIONS_MAX + topic_index) as u64;
        if skip.is_some_and(|(skip_seq, skip_part)| skip_seq == seq && part <= skip_part) {
            continue;
        }
        if !allowed(state, schema, view, topic, auth).await {
            continue;
        }
        let mut record = Map::new();
        record.insert("collectionId".into(), json!(view.id));
        record.insert("collectionName".into(), json!(view.name));
        if let Some(id) = &topic.record_id {
            record.insert("id".into(), json!(id));
        }
        let payload = json!({"action": "refresh", "record": record, "position": seq}).to_string();
        frames.push(sse::Frame::Event {
            seq,
            part,
            tail: sse::event_tail(&topic.raw, &payload),
        });
    }
    frames
}

/// Invariant 3.
async fn allowed(
    state: &Arc<AppState>,
    schema: &Schema,
    view: &Arc<Collection>,
    topic: &Topic,
    auth: Option<&Auth>,
) -> bool {
    if access::is_superuser(auth) {
        return true;
    }
    let expr = match schema.rule(&view.id, topic.rule_kind()) {
        Rule::Locked => return false,
        Rule::Open => return true,
        Rule::Expr(expr) => expr,
    };
    let data = RequestData {
        method: "GET".into(),
        context: "realtime".into(),
        body: Map::new(),
        query: topic.query.clone(),
        headers: topic.headers.clone(),
    };
    let info = access::request_info(auth, &data);
    let mut clause = Where::default();
    if clause.add(schema, view, &expr, &info, false).is_err() {
        return false;
    }
    if let Some(id) = &topic.record_id {
        clause.add_eq("id", SqlValue::Text(id.clone()));
    }
    let sql = format!(
        "SELECT 1 FROM {} {MAIN} {} {} LIMIT 1",
        engine::quote_ident(&view.name),
        clause.joins_sql(),
        clause.where_sql()
    );
    let params = clause.engine_params();
    match state.read(move |conn| conn.query(&sql, &params)).await {
        Ok(rows) => !rows.rows.is_empty(),
        Err(err) => {
            tracing::warn!(error = %err.message, "realtime view rule check failed; not delivering");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::identifiers;

    #[test]
    fn identifiers_skip_literals_and_unquote() {
        assert_eq!(
            identifiers("SELECT p.id, 'posts' AS x FROM \"Posts\" p JOIN [tags] ON `a`"),
            ["SELECT", "p", "id", "AS", "x", "FROM", "Posts", "p", "JOIN", "tags", "ON", "a"]
        );
    }
}
