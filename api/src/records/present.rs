//! What a caller may see of records: visibility per viewer, `expand`, `fields` picking and
//! `:excerpt`.
//!
//! 1. [`present`] is the one path from stored record JSON to a response item: hidden fields
//!    and unshown emails are dropped for the caller ([`viewer`]), `expand` is applied with
//!    the caller's view rules.
//! 2. `fields` picking applies to every 2xx JSON response (list envelopes: to each item).

use super::expand::{expand_records, valid_expand_path, EXPAND_PATHS_MAX};
use crate::access::{is_superuser, Auth};
use crate::error::ApiResult;
use crate::model::record::{visible_json_owned, Viewer};
use crate::model::Collection;
use crate::request::parse_bool;
use crate::state::AppState;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Turns full records into what the caller may see, with `expand` applied.
pub async fn present(
    state: &Arc<AppState>,
    auth: Option<&Auth>,
    collection: &Arc<Collection>,
    records: Vec<Map<String, Value>>,
    expand: Option<&str>,
) -> ApiResult<Vec<Value>> {
    let schema = state.schema();
    let mut expand_paths: Vec<String> = Vec::new();
    for path in expand.unwrap_or("").split(',').map(|p| p.replace(' ', "")) {
        if !path.is_empty()
            && !expand_paths.contains(&path)
            && expand_paths.len() < EXPAND_PATHS_MAX
            && valid_expand_path(&schema, collection, &path)
        {
            expand_paths.push(path);
        }
    }
    let expanded = if expand_paths.is_empty() {
        vec![None; records.len()]
    } else {
        expand_records(state, auth, collection, &records, &expand_paths, 0).await?
    };
    let mut out = Vec::with_capacity(records.len());
    for (mut record, expansion) in records.into_iter().zip(expanded) {
        // (`from_row` already set them; only a different value is replaced.)
        if record.get("collectionId").and_then(Value::as_str) != Some(collection.id.as_str()) {
            record.insert("collectionId".into(), json!(collection.id));
        }
        if record.get("collectionName").and_then(Value::as_str) != Some(collection.name.as_str()) {
            record.insert("collectionName".into(), json!(collection.name));
        }
        let mut visible = visible_json_owned(collection, record, viewer(auth));
        if let Some(expansion) = expansion {
            visible.insert("expand".into(), Value::Object(expansion));
        }
        out.push(Value::Object(visible));
    }
    Ok(out)
}

/// The output viewer of a caller.
pub fn viewer(auth: Option<&Auth>) -> Viewer<'_> {
    Viewer {
        superuser: is_superuser(auth),
        auth: auth.map(|a| (a.collection.id.as_str(), a.id())),
        manager: false,
    }
}

/// A parsed `fields` tree.
#[derive(Debug, Default)]
struct FieldTree {
    children: HashMap<String, FieldTree>,
    excerpt: Option<(usize, bool)>,
}

fn build_tree(spec: &str) -> FieldTree {
    let mut root = FieldTree::default();
    for raw in split_top_level(spec) {
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        let (path, modifier) = match raw.split_once(':') {
            Some((path, modifier)) => (path, Some(modifier)),
            None => (raw, None),
        };
        let mut node = &mut root;
        for part in path.split('.') {
            node = node.children.entry(part.trim().to_string()).or_default();
        }
        if let Some(modifier) = modifier {
            if let Some(args) = modifier
                .strip_prefix("excerpt(")
                .and_then(|m| m.strip_suffix(')'))
            {
                let mut parts = args.split(',');
                let max = parts
                    .next()
                    .and_then(|m| m.trim().parse().ok())
                    .unwrap_or(100);
                let ellipsis = parts
                    .next()
                    .and_then(|m| parse_bool(m.trim()))
                    .unwrap_or(false);
                node.excerpt = Some((max, ellipsis));
            }
        }
    }
    root
}

fn split_top_level(spec: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (index, ch) in spec.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&spec[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    parts.push(&spec[start..]);
    parts
}

fn apply_tree(value: Value, tree: &FieldTree) -> Value {
    match value {
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|item| apply_tree(item, tree))
                .collect(),
        ),
        Value::Object(map) => {
            if tree.children.is_empty() {
                return Value::Object(map);
            }
            let star = tree.children.get("*");
            let mut out = Map::new();
            for (key, child_value) in map {
                match tree.children.get(&key) {
                    Some(child) => {
                        let picked = match child.excerpt {
                            Some((max, ellipsis)) => Value::String(excerpt(
                                child_value.as_str().unwrap_or(""),
                                max,
                                ellipsis,
                            )),
                            None => apply_tree(child_value, child),
                        };
                        out.insert(key, picked);
                    }
                    None if star.is_some() => {
                        out.insert(key, child_value);
                    }
                    None => {}
                }
            }
            Value::Object(out)
        }
        other => other,
    }
}

/// Applies a `fields` spec to a response (list envelopes: to each item).
pub fn pick_fields(value: Value, spec: &str) -> Value {
    let tree = build_tree(spec);
    match value {
        Value::Object(mut map) if map.contains_key("items") && map.contains_key("perPage") => {
            if let Some(items) = map.remove("items") {
                map.insert("items".into(), apply_tree(items, &tree));
            }
            Value::Object(map)
        }
        other => apply_tree(other, &tree),
    }
}

/// Strips HTML, collapses whitespace and cuts to `max` characters.
pub fn excerpt(html: &str, max: usize, ellipsis: bool) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    let mut skip_until: Option<String> = None;
    let lower = html.to_ascii_lowercase();
    let mut index = 0;
    let bytes = html.as_bytes();
    while index < bytes.len() {
        if let Some(end) = &skip_until {
            if lower[index..].starts_with(end.as_str()) {
                index += end.len();
                skip_until = None;
            } else {
                index += 1;
            }
            continue;
        }
        let ch = html[index..].chars().next().unwrap_or(' ');
        if ch == '<' {
            for tag in ["script", "style", "svg"] {
                if lower[index + 1..].starts_with(tag) {
                    skip_until = Some(format!("</{tag}>"));
                }
            }
            in_tag = true;
            text.push(' ');
        } else if ch == '>' && in_tag {
            in_tag = false;
        } else if !in_tag {
            text.push(ch);
        }
        index += ch.len_utf8();
    }
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let count = collapsed.chars().count();
    if count <= max {
        return collapsed;
    }
    let cut: String = collapsed.chars().take(max).collect();
    let cut = cut.trim_end().to_string();
    if ellipsis {
        format!("{cut}...")
    } else {
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn excerpt_matches_the_reference() {
        let html = "<p>Hello <b>world</b> and more text here</p>";
        assert_eq!(excerpt(html, 10, true), "Hello worl...");
        assert_eq!(excerpt(html, 12, false), "Hello world");
    }

    #[test]
    fn fields_pick_nested_and_star() {
        let value = json!({"id":"1","title":"t","expand":{"author":{"name":"a","email":"e"}}});
        assert_eq!(
            pick_fields(value.clone(), "id,expand.author.name"),
            json!({"id":"1","expand":{"author":{"name":"a"}}})
        );
        assert_eq!(
            pick_fields(value, "*,expand.author.name")["title"],
            json!("t")
        );
    }
}
