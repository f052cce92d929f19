//! Collection fields: their JSON form (exactly as PocketBase serializes it), their SQL column,
//! and typed access to their options.
//!
//! 1. A field is kept as its full JSON object (all option keys present, sorted), so the
//!    collection JSON round-trips byte-for-byte with PocketBase's. The object is private and
//!    never changes after construction: everything code reads often (type, name, flags, the
//!    options of relation, select, file, autodate, text and password fields) is parsed from it
//!    once, in [`Field::from_stored`], and cannot go stale.
//! 2. Field ids default to `type + crc32(name)`.
//! 3. The type comes from the `type` key through [`FieldType::parse`] (the only place a
//!    field's type string becomes a type); a stored field with an unknown type reads as text.

use serde_json::{json, Map, Value};

pub use rules::FieldType;

/// A collection field.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The full JSON object (sorted keys).
    json: Map<String, Value>,
    /// `type`, parsed.
    kind: FieldType,
    /// `name`.
    name: String,
    /// `hidden`, `system`, `required`.
    hidden: bool,
    system: bool,
    required: bool,
    /// Select/relation/file with `maxSelect` > 1.
    multi: bool,
    /// The type-specific options code reads.
    options: Options,
}

/// The options of a field that code reads, parsed once.
#[derive(Debug, Clone, PartialEq)]
enum Options {
    Text {
        min_length: usize,
        max_length: usize,
        autogenerate_pattern: String,
    },
    Password {
        min_length: usize,
        max_length: usize,
    },
    Autodate {
        on_create: bool,
        on_update: bool,
    },
    Select {
        values: Vec<String>,
        max_select: f64,
    },
    Relation {
        collection_id: String,
        cascade_delete: bool,
        min_select: f64,
        max_select: f64,
    },
    File {
        max_select: f64,
        max_size: u64,
        mime_types: Vec<String>,
        protected: bool,
        thumbs: Vec<String>,
    },
    Other,
}

fn default_options(kind: FieldType) -> Value {
    match kind {
        FieldType::Text => {
            json!({"autogeneratePattern":"","max":0,"min":0,"pattern":"","primaryKey":false,"required":false})
        }
        FieldType::Number => json!({"max":null,"min":null,"onlyInt":false,"required":false}),
        FieldType::Bool => json!({"required":false}),
        FieldType::Email | FieldType::Url => {
            json!({"exceptDomains":[],"onlyDomains":[],"required":false})
        }
        FieldType::Editor => json!({"convertURLs":false,"maxSize":0,"required":false}),
        FieldType::Date => json!({"max":"","min":"","required":false}),
        FieldType::Autodate => json!({"onCreate":true,"onUpdate":false}),
        FieldType::Select => json!({"maxSelect":1,"values":[],"required":false}),
        FieldType::Json => json!({"maxSize":0,"required":false}),
        FieldType::File => {
            json!({"maxSelect":1,"maxSize":0,"mimeTypes":[],"protected":false,"thumbs":[],"required":false})
        }
        FieldType::Relation => {
            json!({"cascadeDelete":false,"collectionId":"","maxSelect":1,"minSelect":0,"required":false})
        }
        FieldType::GeoPoint => json!({"required":false}),
        FieldType::Password => {
            json!({"cost":0,"max":0,"min":0,"pattern":"","required":false})
        }
    }
}

fn str_of<'a>(json: &'a Map<String, Value>, key: &str) -> &'a str {
    json.get(key).and_then(Value::as_str).unwrap_or("")
}

fn bool_of(json: &Map<String, Value>, key: &str) -> bool {
    json.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn num_of(json: &Map<String, Value>, key: &str) -> Option<f64> {
    json.get(key).and_then(Value::as_f64)
}

fn list_of(json: &Map<String, Value>, key: &str) -> Vec<String> {
    json.get(key)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A length option as a count (a float truncates, a negative or missing one is 0).
fn length_of(json: &Map<String, Value>, key: &str) -> usize {
    num_of(json, key).unwrap_or(0.0) as usize
}

impl Options {
    fn parse(kind: FieldType, json: &Map<String, Value>) -> Options {
        let max_select = || num_of(json, "maxSelect").unwrap_or(1.0);
        match kind {
            FieldType::Text => Options::Text {
                min_length: length_of(json, "min"),
                max_length: length_of(json, "max"),
                autogenerate_pattern: str_of(json, "autogeneratePattern").to_string(),
            },
            FieldType::Password => Options::Password {
                min_length: length_of(json, "min"),
                max_length: length_of(json, "max"),
            },
            FieldType::Autodate => Options::Autodate {
                on_create: bool_of(json, "onCreate"),
                on_update: bool_of(json, "onUpdate"),
            },
            FieldType::Select => Options::Select {
                values: list_of(json, "values"),
                max_select: max_select(),
            },
            FieldType::Relation => Options::Relation {
                collection_id: str_of(json, "collectionId").to_string(),
                cascade_delete: bool_of(json, "cascadeDelete"),
                min_select: num_of(json, "minSelect").unwrap_or(0.0),
                max_select: max_select(),
            },
            FieldType::File => Options::File {
                max_select: max_select(),
                max_size: num_of(json, "maxSize").unwrap_or(0.0) as u64,
                mime_types: list_of(json, "mimeTypes"),
                protected: bool_of(json, "protected"),
                thumbs: list_of(json, "thumbs"),
            },
            _ => Options::Other,
        }
    }
}

impl Field {
    /// Normalizes a submitted field object: fills defaults, the id, and drops unknown keys.
    /// Returns `Err` with a reason when the type is unknown.
    pub fn from_input(input: &Map<String, Value>) -> Result<Field, String> {
        let text = input
            .get("type")
            .and_then(Value::as_str)
            .ok_or("missing field type")?;
        let kind = FieldType::parse(text).ok_or_else(|| format!("unknown field type {text}"))?;
        let name = input.get("name").and_then(Value::as_str).unwrap_or("");
        let mut json = Map::new();
        let defaults = default_options(kind);
        let common = if kind == FieldType::Autodate {
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
        json.insert("type".into(), Value::String(kind.as_str().to_string()));
        let id = match input.get("id").and_then(Value::as_str) {
            Some(id) if !id.is_empty() => id.to_string(),
            _ => format!("{kind}{}", crc32fast::hash(name.as_bytes())),
        };
        json.insert("id".into(), Value::String(id));
        json.sort_keys();
        Ok(Field::from_stored(json))
    }

    /// From stored JSON (trusted): parses the type and options once.
    pub fn from_stored(json: Map<String, Value>) -> Field {
        let kind = FieldType::parse(str_of(&json, "type")).unwrap_or(FieldType::Text);
        let options = Options::parse(kind, &json);
        let multi = kind.is_list() && num_of(&json, "maxSelect").unwrap_or(1.0) > 1.0;
        Field {
            kind,
            name: str_of(&json, "name").to_string(),
            hidden: bool_of(&json, "hidden"),
            system: bool_of(&json, "system"),
            required: bool_of(&json, "required"),
            multi,
            options,
            json,
        }
    }

    /// The full JSON object (sorted keys), as output.
    pub fn json(&self) -> &Map<String, Value> {
        &self.json
    }

    /// Field id.
    pub fn id(&self) -> &str {
        self.str_opt("id")
    }
    /// Field name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Field type.
    pub fn kind(&self) -> FieldType {
        self.kind
    }
    /// Hidden from non-superusers.
    pub fn hidden(&self) -> bool {
        self.hidden
    }
    /// System field.
    pub fn system(&self) -> bool {
        self.system
    }
    /// Required.
    pub fn required(&self) -> bool {
        self.required
    }

    /// The collection a relation field points at (its `collectionId` as stored: an id, or
    /// a name for hand-written schemas); `None` for every other type.
    pub fn relation_target(&self) -> Option<&str> {
        match &self.options {
            Options::Relation { collection_id, .. } => Some(collection_id),
            _ => None,
        }
    }
    /// A relation whose referenced records' deletion deletes the referencing record.
    pub fn cascade_delete(&self) -> bool {
        matches!(
            self.options,
            Options::Relation {
                cascade_delete: true,
                ..
            }
        )
    }
    /// `minSelect` of a relation field (0 for other types).
    pub fn min_select(&self) -> f64 {
        match self.options {
            Options::Relation { min_select, .. } => min_select,
            _ => 0.0,
        }
    }
    /// `maxSelect` of a select, relation or file field as stored (1 for other types).
    pub fn max_select(&self) -> f64 {
        match self.options {
            Options::Select { max_select, .. }
            | Options::Relation { max_select, .. }
            | Options::File { max_select, .. } => max_select,
            _ => 1.0,
        }
    }
    /// The allowed values of a select field (empty for other types).
    pub fn select_values(&self) -> &[String] {
        match &self.options {
            Options::Select { values, .. } => values,
            _ => &[],
        }
    }
    /// An autodate field set when its record is created.
    pub fn on_create(&self) -> bool {
        matches!(
            self.options,
            Options::Autodate {
                on_create: true,
                ..
            }
        )
    }
    /// An autodate field set whenever its record is updated.
    pub fn on_update(&self) -> bool {
        matches!(
            self.options,
            Options::Autodate {
                on_update: true,
                ..
            }
        )
    }
    /// `min` of a text or password field as a character count (0 = unset, and for other
    /// types).
    pub fn min_length(&self) -> usize {
        match self.options {
            Options::Text { min_length, .. } | Options::Password { min_length, .. } => min_length,
            _ => 0,
        }
    }
    /// `max` of a text or password field as a character count (0 = unset, and for other
    /// types).
    pub fn max_length(&self) -> usize {
        match self.options {
            Options::Text { max_length, .. } | Options::Password { max_length, .. } => max_length,
            _ => 0,
        }
    }
    /// `autogeneratePattern` of a text field ("" = none, and for other types).
    pub fn autogenerate_pattern(&self) -> &str {
        match &self.options {
            Options::Text {
                autogenerate_pattern,
                ..
            } => autogenerate_pattern,
            _ => "",
        }
    }
    /// `maxSize` of a file field in bytes (0 = the default limit, and for other types).
    pub fn file_max_size(&self) -> u64 {
        match self.options {
            Options::File { max_size, .. } => max_size,
            _ => 0,
        }
    }
    /// `mimeTypes` of a file field (empty = any, and for other types).
    pub fn mime_types(&self) -> &[String] {
        match &self.options {
            Options::File { mime_types, .. } => mime_types,
            _ => &[],
        }
    }
    /// A protected file field (its files need a file token).
    pub fn protected(&self) -> bool {
        matches!(
            self.options,
            Options::File {
                protected: true,
                ..
            }
        )
    }
    /// `thumbs` of a file field (empty for other types).
    pub fn thumbs(&self) -> &[String] {
        match &self.options {
            Options::File { thumbs, .. } => thumbs,
            _ => &[],
        }
    }

    /// A string option ("" when missing).
    pub fn str_opt(&self, key: &str) -> &str {
        str_of(&self.json, key)
    }
    /// A bool option.
    pub fn bool_opt(&self, key: &str) -> bool {
        bool_of(&self.json, key)
    }
    /// A number option (None when null/missing).
    pub fn num_opt(&self, key: &str) -> Option<f64> {
        num_of(&self.json, key)
    }
    /// A list of strings option.
    pub fn list_opt(&self, key: &str) -> Vec<String> {
        list_of(&self.json, key)
    }

    /// True for select/relation/file fields holding several values.
    pub fn is_multi(&self) -> bool {
        self.multi
    }

    /// The SQL column declaration.
    pub fn column_decl(&self) -> String {
        if self.name() == "id" {
            return "TEXT PRIMARY KEY NOT NULL".into();
        }
        match self.kind {
            FieldType::Number => "NUMERIC DEFAULT 0 NOT NULL".into(),
            FieldType::Bool => "BOOLEAN DEFAULT FALSE NOT NULL".into(),
            FieldType::Json => "JSON DEFAULT NULL".into(),
            FieldType::GeoPoint => "JSON DEFAULT '{\"lon\":0,\"lat\":0}' NOT NULL".into(),
            FieldType::Select | FieldType::Relation | FieldType::File if self.multi => {
                "JSON DEFAULT '[]' NOT NULL".into()
            }
            _ => "TEXT DEFAULT '' NOT NULL".into(),
        }
    }

    /// The rules crate's view of this field.
    pub fn rule_kind(&self) -> rules::FieldKind {
        match self.kind {
            FieldType::Text => rules::FieldKind::Text,
            FieldType::Number => rules::FieldKind::Number,
            FieldType::Bool => rules::FieldKind::Bool,
            FieldType::Email => rules::FieldKind::Email,
            FieldType::Url => rules::FieldKind::Url,
            FieldType::Editor => rules::FieldKind::Editor,
            FieldType::Date => rules::FieldKind::Date,
            FieldType::Autodate => rules::FieldKind::Autodate,
            FieldType::Select => rules::FieldKind::Select { multi: self.multi },
            FieldType::Json => rules::FieldKind::Json,
            FieldType::File => rules::FieldKind::File { multi: self.multi },
            FieldType::Relation => rules::FieldKind::Relation {
                collection_id: self.relation_target().unwrap_or("").to_string(),
                multi: self.multi,
            },
            FieldType::GeoPoint => rules::FieldKind::GeoPoint,
            FieldType::Password => rules::FieldKind::Password,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_parses_from_and_serializes_to_its_spelling() {
        for kind in FieldType::ALL {
            let f = field(json!({"name": "x", "type": kind.as_str()}));
            assert_eq!(f.kind(), kind);
            assert_eq!(f.json()["type"], kind.as_str());
            assert_eq!(
                f.id(),
                format!("{}{}", kind.as_str(), crc32fast::hash(b"x"))
            );
            assert_eq!(Field::from_stored(f.json().clone()), f);
        }
        let unknown = json!({"name": "x", "type": "geopoint"});
        let Value::Object(map) = unknown else {
            unreachable!("a literal object")
        };
        assert!(Field::from_input(&map).is_err());
        assert_eq!(Field::from_stored(map).kind(), FieldType::Text);
    }

    #[test]
    fn options_are_parsed_once_per_type() {
        let relation = field(
            json!({"name": "r", "type": "relation", "collectionId": "c1",
            "cascadeDelete": true, "minSelect": 1, "maxSelect": 3}),
        );
        assert_eq!(relation.relation_target(), Some("c1"));
        assert!(relation.cascade_delete() && relation.is_multi());
        assert_eq!((relation.min_select(), relation.max_select()), (1.0, 3.0));
        assert_eq!(
            relation.rule_kind(),
            rules::FieldKind::Relation {
                collection_id: "c1".into(),
                multi: true
            }
        );
        let select = field(json!({"name": "s", "type": "select", "values": ["a", "b"]}));
        assert_eq!(select.select_values(), ["a", "b"]);
        assert_eq!(select.relation_target(), None);
        assert!(!select.is_multi() && !select.cascade_delete());
        let autodate = field(json!({"name": "u", "type": "autodate", "onUpdate": true}));
        assert!(autodate.on_create() && autodate.on_update());
        let text = field(
            json!({"name": "t", "type": "text", "onUpdate": true, "min": 3,
            "max": 9.7, "autogeneratePattern": "[a-z]{3}"}),
        );
        assert!(!text.on_update(), "only autodate fields have onUpdate");
        assert_eq!((text.min_length(), text.max_length()), (3, 9));
        assert_eq!(text.autogenerate_pattern(), "[a-z]{3}");
        let password = field(json!({"name": "p", "type": "password", "min": 8}));
        assert_eq!((password.min_length(), password.max_length()), (8, 0));
        let file = field(
            json!({"name": "f", "type": "file", "maxSelect": 2, "maxSize": 1024,
            "mimeTypes": ["image/png"], "protected": true, "thumbs": ["100x100"]}),
        );
        assert!(file.is_multi() && file.protected());
        assert_eq!(file.file_max_size(), 1024);
        assert_eq!(file.mime_types(), ["image/png"]);
        assert_eq!(file.thumbs(), ["100x100"]);
        assert_eq!(file.column_decl(), "JSON DEFAULT '[]' NOT NULL");
    }
}
