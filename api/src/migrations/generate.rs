//! Migration files generated from pocketlog's collection model: the blank template
//! (`migrate create`), the schema snapshot (`migrate collections`) and the automigrate files
//! of a collection create, update or delete.
//!
//! The files use only the JSVM API that both pocketlog's prelude and PocketBase's JSVM
//! provide (`new Collection`, `app.findCollectionByNameOrId`, `app.save`, `app.delete`,
//! `unmarshal`, `collection.fields.add(new TextField({...}))`, `fields.removeById`), so a
//! generated file runs unchanged on either.
//!
//! Invariants:
//! 1. `down` reverts exactly what `up` did: applying `up` then `down` gives back the
//!    collection JSON of before (timestamps aside), and `up` again the one of after.
//! 2. Field order is kept: a field change that `add`/`removeById` cannot express in the
//!    same order (a rename, a move) is written as the whole field list instead.
//! 3. No secret is written: the collection JSON is the public one (token secrets and OAuth2
//!    client secrets are left out; a collection created from the file gets fresh ones).

use crate::model::{Collection, FieldType};
use serde_json::{Map, Value};

/// The first line of every generated file (editor typings, as the reference writes it).
pub const REFERENCE_LINE: &str = "/// <reference path=\"../pb_data/types.d.ts\" />";

/// Keys that never go into a migration (they change with every save).
const VOLATILE_KEYS: [&str; 2] = ["created", "updated"];

/// The blank migration of `migrate create NAME`.
pub fn blank() -> String {
    format!(
        "{REFERENCE_LINE}\nmigrate((app) => {{\n  // add up queries...\n}}, (app) => {{\n  // add down queries...\n}})\n"
    )
}

/// The collection's JSON as a migration holds it: public, with sorted keys, no timestamps.
pub fn collection_json(collection: &Collection) -> Map<String, Value> {
    let mut map = match collection.to_json() {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    for key in VOLATILE_KEYS {
        map.remove(key);
    }
    sorted(map)
}

fn sorted(map: Map<String, Value>) -> Map<String, Value> {
    let mut entries: Vec<(String, Value)> = map.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.into_iter().collect()
}

/// Pretty JSON indented to sit `depth` levels (two spaces each) deep in the file.
fn pretty(value: &Value, depth: usize) -> String {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into());
    let pad = "  ".repeat(depth);
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            if i == 0 {
                line.to_string()
            } else {
                format!("{pad}{line}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn js_string(text: &str) -> String {
    Value::from(text).to_string()
}

/// The JSVM class of a field type (`TextField`, ...).
pub fn field_class(kind: FieldType) -> &'static str {
    match kind {
        FieldType::Text => "TextField",
        FieldType::Number => "NumberField",
        FieldType::Bool => "BoolField",
        FieldType::Email => "EmailField",
        FieldType::Url => "URLField",
        FieldType::Editor => "EditorField",
        FieldType::Date => "DateField",
        FieldType::Autodate => "AutodateField",
        FieldType::Select => "SelectField",
        FieldType::Json => "JSONField",
        FieldType::File => "FileField",
        FieldType::Relation => "RelationField",
        FieldType::GeoPoint => "GeoPointField",
        FieldType::Password => "PasswordField",
    }
}

fn create_body(json: &Map<String, Value>) -> String {
    format!(
        "  const collection = new Collection({});\n\n  return app.save(collection);\n",
        pretty(&Value::Object(json.clone()), 1)
    )
}

fn delete_body(id: &str) -> String {
    format!(
        "  const collection = app.findCollectionByNameOrId({});\n\n  return app.delete(collection);\n",
        js_string(id)
    )
}

fn wrap(up: &str, down: &str) -> String {
    format!("{REFERENCE_LINE}\nmigrate((app) => {{\n{up}}}, (app) => {{\n{down}}})\n")
}

/// The automigrate file of a created collection.
pub fn created(collection: &Collection) -> String {
    wrap(
        &create_body(&collection_json(collection)),
        &delete_body(&collection.id),
    )
}

/// The automigrate file of a deleted collection.
pub fn deleted(collection: &Collection) -> String {
    wrap(
        &delete_body(&collection.id),
        &create_body(&collection_json(collection)),
    )
}

/// The automigrate file of an updated collection; `None` when nothing a migration holds
/// changed.
pub fn updated(before: &Collection, after: &Collection) -> Option<String> {
    let old = collection_json(before);
    let new = collection_json(after);
    if old == new {
        return None;
    }
    Some(wrap(
        &update_body(&after.id, &old, &new),
        &update_body(&after.id, &new, &old),
    ))
}

fn fields_of(json: &Map<String, Value>) -> Vec<Map<String, Value>> {
    match json.get("fields") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|item| item.as_object().cloned())
            .collect(),
        _ => Vec::new(),
    }
}

fn text_of<'a>(field: &'a Map<String, Value>, key: &str) -> &'a str {
    field.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The statements turning the collection JSON `from` into `to` (on a collection loaded as
/// `collection`).
fn update_body(id: &str, from: &Map<String, Value>, to: &Map<String, Value>) -> String {
    let mut out = format!(
        "  const collection = app.findCollectionByNameOrId({})\n",
        js_string(id)
    );
    // Top-level keys (a key gone from `to` is set to null).
    let mut data = Map::new();
    for (key, value) in to {
        if key != "fields" && from.get(key) != Some(value) {
            data.insert(key.clone(), value.clone());
        }
    }
    for key in from.keys() {
        if key != "fields" && !to.contains_key(key) {
            data.insert(key.clone(), Value::Null);
        }
    }
    if !data.is_empty() {
        out.push_str(&format!(
            "\n  // update collection data\n  unmarshal({}, collection)\n",
            pretty(&Value::Object(data), 1)
        ));
    }
    out.push_str(&fields_update(&fields_of(from), &fields_of(to)));
    out.push_str("\n  return app.save(collection)\n");
    out
}

/// The field statements from the list `from` to `to`: `removeById` and `add` when they give
/// `to` in its order, else the whole list through `unmarshal`.
fn fields_update(from: &[Map<String, Value>], to: &[Map<String, Value>]) -> String {
    if from == to {
        return String::new();
    }
    let id = |f: &Map<String, Value>| text_of(f, "id").to_string();
    let removed: Vec<&Map<String, Value>> = from
        .iter()
        .filter(|old| !to.iter().any(|new| id(new) == id(old)))
        .collect();
    let mut simulated: Vec<Map<String, Value>> = from
        .iter()
        .filter(|old| to.iter().any(|new| id(new) == id(old)))
        .cloned()
        .collect();
    let mut added = Vec::new();
    let mut expressible = true;
    for new in to {
        let at_id = simulated.iter().position(|f| id(f) == id(new));
        let at_name = simulated
            .iter()
            .position(|f| text_of(f, "name") == text_of(new, "name"));
        match (at_id, at_name) {
            (Some(a), Some(b)) if a == b => {
                if simulated[a] != *new {
                    simulated[a] = new.clone();
                    added.push(new);
                }
            }
            (None, None) => {
                simulated.push(new.clone());
                added.push(new);
            }
            // A rename, or a name taken by another field: `add` would match differently on
            // PocketBase (by id) and in the prelude (by name).
            _ => expressible = false,
        }
    }
    if !expressible || simulated.iter().map(id).ne(to.iter().map(id)) {
        let list = Value::Array(to.iter().cloned().map(Value::Object).collect());
        return format!(
            "\n  // update the fields\n  unmarshal({{\n    \"fields\": {}\n  }}, collection)\n",
            pretty(&list, 2)
        );
    }
    let mut out = String::new();
    for field in removed {
        out.push_str(&format!(
            "\n  // remove field\n  collection.fields.removeById({})\n",
            js_string(text_of(field, "id"))
        ));
    }
    for field in added {
        let class = FieldType::parse(text_of(field, "type"))
            .map(field_class)
            .unwrap_or("TextField");
        out.push_str(&format!(
            "\n  // add or update field\n  collection.fields.add(new {class}({}))\n",
            pretty(&Value::Object(field.clone()), 1)
        ));
    }
    out
}

/// The migration of `migrate collections`: every collection of `collections`, created or
/// updated to the snapshot's definition (collections not in the snapshot are left alone);
/// `down` does nothing, as the reference's.
pub fn snapshot(collections: &[&Collection]) -> String {
    let list = Value::Array(
        collections
            .iter()
            .map(|c| Value::Object(collection_json(c)))
            .collect(),
    );
    format!(
        "{REFERENCE_LINE}\nmigrate((app) => {{\n  const snapshot = {};\n\n  for (const data of snapshot) {{\n    let collection;\n    try {{\n      collection = app.findCollectionByNameOrId(data.id);\n    }} catch (_) {{\n      collection = new Collection();\n    }}\n    unmarshal(data, collection);\n    app.save(collection);\n  }}\n}}, (app) => {{\n  return null;\n}})\n",
        pretty(&list, 1)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn collection(value: Value) -> Collection {
        Collection::from_meta(&value.to_string()).unwrap()
    }

    #[test]
    fn a_rename_falls_back_to_the_whole_field_list() {
        let before = collection(json!({"id": "c1", "name": "a", "type": "base", "fields": [
            {"id": "f1", "name": "one", "type": "text"}, {"id": "f2", "name": "two", "type": "text"}]}));
        let after = collection(json!({"id": "c1", "name": "a", "type": "base", "fields": [
            {"id": "f1", "name": "uno", "type": "text"}, {"id": "f2", "name": "two", "type": "text"}]}));
        let text = updated(&before, &after).unwrap();
        assert!(text.contains("\"fields\": ["), "{text}");
        assert!(!text.contains("fields.add("), "{text}");
    }

    #[test]
    fn an_added_field_is_added_and_removed_by_id() {
        let before = collection(
            json!({"id": "c1", "name": "a", "type": "base", "listRule": null,
            "fields": [{"id": "f1", "name": "one", "type": "text"}]}),
        );
        let after = collection(
            json!({"id": "c1", "name": "a", "type": "base", "listRule": "",
            "fields": [{"id": "f1", "name": "one", "type": "text"}, {"id": "n2", "name": "n", "type": "number"}]}),
        );
        let text = updated(&before, &after).unwrap();
        assert!(
            text.contains("collection.fields.add(new NumberField({"),
            "{text}"
        );
        assert!(
            text.contains("collection.fields.removeById(\"n2\")"),
            "{text}"
        );
        assert!(text.contains("\"listRule\": \"\""), "{text}");
        assert!(text.contains("\"listRule\": null"), "{text}");
        assert!(updated(&before, &before).is_none());
    }
}
