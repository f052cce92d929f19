//! Collection fields: their JSON form (exactly as PocketBase serializes it), their SQL column,
//! and typed access to their options.
//!
//! 1. A field is kept as its full JSON object (all option keys present, sorted), so the
//!    collection JSON round-trips byte-for-byte with PocketBase's.
//! 2. Field ids default to `type + crc32(name)`.

use serde_json::{json, Map, Value};

/// Every field type PocketBase knows.
pub const FIELD_TYPES: &[&str] = &[
    "text", "number", "bool", "email", "url", "editor", "date", "autodate", "select", "json",
    "file", "relation", "geoPoint", "password",
];

/// A collection field.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The full JSON object (sorted keys).
    pub json: Map<String, Value>,
}

fn default_options(kind: &str) -> Value {
    match kind {
        "text" => {
            json!({"autogeneratePattern":"","max":0,"min":0,"pattern":"","primaryKey":false,"required":false})
        }
        "number" => json!({"max":null,"min":null,"onlyInt":false,"required":false}),
        "bool" => json!({"required":false}),
        "email" | "url" => json!({"exceptDomains":[],"onlyDomains":[],"required":false}),
        "editor" => json!({"convertURLs":false,"maxSize":0,"required":false}),
        "date" => json!({"max":"","min":"","required":false}),
        "autodate" => json!({"onCreate":true,"onUpdate":false}),
        "select" => json!({"maxSelect":1,"values":[],"required":false}),
        "json" => json!({"maxSize":0,"required":false}),
        "file" => {
            json!({"maxSelect":1,"maxSize":0,"mimeTypes":[],"protected":false,"thumbs":[],"required":false})
        }
        "relation" => {
            json!({"cascadeDelete":false,"collectionId":"","maxSelect":1,"minSelect":0,"required":false})
        }
        "geoPoint" => json!({"required":false}),
        "password" => json!({"cost":0,"max":0,"min":0,"pattern":"","required":false}),
        _ => json!({}),
    }
}

impl Field {
    /// Normalizes a submitted field object: fills defaults, the id, and drops unknown keys.
    /// Returns `Err` with a reason when the type is unknown.
    pub fn from_input(input: &Map<String, Value>) -> Result<Field, String> {
        let kind = input
            .get("type")
            .and_then(Value::as_str)
            .ok_or("missing field type")?;
        if !FIELD_TYPES.contains(&kind) {
            return Err(format!("unknown field type {kind}"));
        }
        let name = input.get("name").and_then(Value::as_str).unwrap_or("");
        let mut json = Map::new();
        let defaults = default_options(kind);
        let common = if kind == "autodate" {
            json!({"hidden":false,"presentable":false,"system":false})
        } else {
            json!({"help":"","hidden":false,"presentable":false,"system":false})
        };
        for source in [&common, &defaults] {
            if let Value::Object(map) = source {
                for (key, default) in map {
                    let value = input.get(key).cloned().unwrap_or_else(|| default.clone());
                    json.insert(key.clone(), coerce_like(default, value));
                }
            }
        }
        json.insert("name".into(), Value::String(name.to_string()));
        json.insert("type".into(), Value::String(kind.to_string()));
        let id = match input.get("id").and_then(Value::as_str) {
            Some(id) if !id.is_empty() => id.to_string(),
            _ => format!("{kind}{}", crc32fast::hash(name.as_bytes())),
        };
        json.insert("id".into(), Value::String(id));
        json.sort_keys();
        Ok(Field { json })
    }

    /// From stored JSON (trusted).
    pub fn from_stored(json: Map<String, Value>) -> Field {
        Field { json }
    }

    /// Field id.
    pub fn id(&self) -> &str {
        self.str_opt("id")
    }
    /// Field name.
    pub fn name(&self) -> &str {
        self.str_opt("name")
    }
    /// Field type.
    pub fn kind(&self) -> &str {
        self.str_opt("type")
    }
    /// Hidden from non-superusers.
    pub fn hidden(&self) -> bool {
        self.bool_opt("hidden")
    }
    /// System field.
    pub fn system(&self) -> bool {
        self.bool_opt("system")
    }
    /// Required.
    pub fn required(&self) -> bool {
        self.bool_opt("required")
    }

    /// A string option ("" when missing).
    pub fn str_opt(&self, key: &str) -> &str {
        self.json.get(key).and_then(Value::as_str).unwrap_or("")
    }
    /// A bool option.
    pub fn bool_opt(&self, key: &str) -> bool {
        self.json.get(key).and_then(Value::as_bool).unwrap_or(false)
    }
    /// A number option (None when null/missing).
    pub fn num_opt(&self, key: &str) -> Option<f64> {
        self.json.get(key).and_then(Value::as_f64)
    }
    /// A list of strings option.
    pub fn list_opt(&self, key: &str) -> Vec<String> {
        self.json
            .get(key)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| item.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// True for select/relation/file fields holding several values.
    pub fn is_multi(&self) -> bool {
        matches!(self.kind(), "select" | "relation" | "file")
            && self.num_opt("maxSelect").unwrap_or(1.0) > 1.0
    }

    /// The SQL column declaration.
    pub fn column_decl(&self) -> String {
        if self.name() == "id" {
            return "TEXT PRIMARY KEY NOT NULL".into();
        }
        match self.kind() {
            "number" => "NUMERIC DEFAULT 0 NOT NULL".into(),
            "bool" => "BOOLEAN DEFAULT FALSE NOT NULL".into(),
            "json" => "JSON DEFAULT NULL".into(),
            "geoPoint" => "JSON DEFAULT '{\"lon\":0,\"lat\":0}' NOT NULL".into(),
            "select" | "relation" | "file" if self.is_multi() => {
                "JSON DEFAULT '[]' NOT NULL".into()
            }
            _ => "TEXT DEFAULT '' NOT NULL".into(),
        }
    }

    /// The rules crate's view of this field.
    pub fn rule_kind(&self) -> rules::FieldKind {
        match self.kind() {
            "number" => rules::FieldKind::Number,
            "bool" => rules::FieldKind::Bool,
            "email" => rules::FieldKind::Email,
            "url" => rules::FieldKind::Url,
            "editor" => rules::FieldKind::Editor,
            "date" => rules::FieldKind::Date,
            "autodate" => rules::FieldKind::Autodate,
            "select" => rules::FieldKind::Select {
                multi: self.is_multi(),
            },
            "json" => rules::FieldKind::Json,
            "file" => rules::FieldKind::File {
                multi: self.is_multi(),
            },
            "relation" => rules::FieldKind::Relation {
                collection_id: self.str_opt("collectionId").to_string(),
                multi: self.is_multi(),
            },
            "geoPoint" => rules::FieldKind::GeoPoint,
            "password" => rules::FieldKind::Password,
            _ => rules::FieldKind::Text,
        }
    }
}

/// Keeps a submitted option value when it has the default's JSON type, else the default.
fn coerce_like(default: &Value, value: Value) -> Value {
    match (default, &value) {
        (Value::Bool(_), Value::Bool(_)) => value,
        (Value::String(_), Value::String(_)) => value,
        (Value::Number(_), Value::Number(_)) => value,
        (Value::Null, Value::Number(_) | Value::Null) => value,
        (Value::Array(_), Value::Array(_)) => value,
        (Value::Object(_), Value::Object(_)) => value,
        _ => default.clone(),
    }
}

/// The standard `id` field.
pub fn id_field() -> Field {
    let input = json!({"autogeneratePattern":"[a-z0-9]{15}","hidden":false,"id":"text3208210256",
        "max":15,"min":15,"name":"id","pattern":"^[a-z0-9]+$","presentable":false,"primaryKey":true,
        "required":true,"system":true,"type":"text"});
    let Value::Object(map) = input else {
        unreachable!("a literal object")
    };
    Field::from_input(&map).expect("the id field is valid")
}

/// Builds a field from a JSON literal (trusted input).
pub fn field(input: Value) -> Field {
    match input {
        Value::Object(map) => {
            Field::from_input(&map).expect("built-in field definitions are valid")
        }
        _ => panic!("built-in field definitions are objects"),
    }
}
