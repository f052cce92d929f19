//! Collections: PocketBase's collection JSON, its validation, and its mapping onto the
//! engine's `CollectionDef` (a table plus opaque metadata).
//!
//! 1. The engine's `meta` holds the full collection JSON *including* token secrets; the API
//!    never outputs the secrets.
//! 2. Collection ids default to `pbc_` + crc32(type + name).
//! 3. The type is a [`CollectionKind`], parsed from the `type` key on load; a submitted type
//!    that names no kind is kept as text in `rest["type"]` only so that [`Collection::validate`]
//!    reports it together with the other errors (such a collection is never stored).
//! 4. Rules are read and written through [`RuleKind`]; their JSON keys appear nowhere else.

use super::field::{field, id_field, Field, FieldType};
use super::schema::RuleKind;
use crate::error::{ApiError, FieldErrors};
use engine::{CollectionDef, ColumnDef};
use serde_json::{json, Map, Value};

pub use rules::CollectionKind;

/// The `_superusers` collection id (the JS SDK hard-codes it).
pub const SUPERUSERS_ID: &str = "pbc_3142635823";
/// The `_superusers` collection name.
pub const SUPERUSERS: &str = "_superusers";
/// The default `users` collection id.
pub const USERS_ID: &str = "_pb_users_auth_";

/// Token settings of auth collections (each has a duration and a server-side secret).
pub const TOKEN_KEYS: &[&str] = &[
    "authToken",
    "passwordResetToken",
    "emailChangeToken",
    "verificationToken",
    "fileToken",
];

/// A collection.
#[derive(Debug, Clone, PartialEq)]
pub struct Collection {
    /// Id.
    pub id: String,
    /// Name (= table).
    pub name: String,
    /// `base`, `auth` or `view`.
    pub kind: CollectionKind,
    /// Fields in order.
    pub fields: Vec<Field>,
    /// Everything else of the collection JSON (rules, indexes, options, secrets, times).
    pub rest: Map<String, Value>,
}

fn auth_defaults() -> Value {
    json!({
        "authRule": "",
        "manageRule": null,
        "authAlert": {"enabled": true, "emailTemplate": {"subject": "Login from a new location",
            "body": "<p>Hello,</p>\n<p>We noticed a login to your {APP_NAME} account from a new location:</p>\n<p><em>{ALERT_INFO}</em></p>\n<p><strong>If this wasn't you, you should immediately change your {APP_NAME} account password to revoke access from all other locations.</strong></p>\n<p>If this was you, you may disregard this email.</p>\n<p>\n  Thanks,<br/>\n  {APP_NAME} team\n</p>"}},
        "oauth2": {"providers": [], "mappedFields": {"id": "", "name": "", "username": "", "avatarURL": ""}, "enabled": false},
        "passwordAuth": {"enabled": true, "identityFields": ["email"]},
        "mfa": {"enabled": false, "duration": 600, "rule": ""},
        "otp": {"enabled": false, "duration": 180, "length": 8, "emailTemplate": {"subject": "OTP for {APP_NAME}",
            "body": "<p>Hello,</p>\n<p>Your one-time password is: <strong>{OTP}</strong></p>"}},
        "authToken": {"duration": 432000},
        "passwordResetToken": {"duration": 1800},
        "emailChangeToken": {"duration": 1800},
        "verificationToken": {"duration": 86400},
        "fileToken": {"duration": 180},
        "verificationTemplate": {"subject": "Verify your {APP_NAME} email",
            "body": "<p>Hello,</p>\n<p>Click on the button below to verify your email address.</p>\n<p><a class=\"btn\" href=\"{APP_URL}/_/#/auth/confirm-verification/{TOKEN}\" target=\"_blank\" rel=\"noopener\">Verify</a></p>"},
        "resetPasswordTemplate": {"subject": "Reset your {APP_NAME} password",
            "body": "<p>Hello,</p>\n<p>Click on the button below to reset your password.</p>\n<p><a class=\"btn\" href=\"{APP_URL}/_/#/auth/confirm-password-reset/{TOKEN}\" target=\"_blank\" rel=\"noopener\">Reset password</a></p>"},
        "confirmEmailChangeTemplate": {"subject": "Confirm your {APP_NAME} new email address",
            "body": "<p>Hello,</p>\n<p>Click on the button below to confirm your new email address.</p>\n<p><a class=\"btn\" href=\"{APP_URL}/_/#/auth/confirm-email-change/{TOKEN}\" target=\"_blank\" rel=\"noopener\">Confirm new email</a></p>"}
    })
}

/// The system fields every auth collection has (after `id`).
pub fn auth_system_fields() -> Vec<Field> {
    vec![
        field(
            json!({"name":"password","type":"password","system":true,"hidden":true,"required":true,"min":8,"id":"password901924565"}),
        ),
        field(
            json!({"name":"tokenKey","type":"text","system":true,"hidden":true,"required":true,"min":30,"max":60,"autogeneratePattern":"[a-zA-Z0-9]{50}","id":"text2504183744"}),
        ),
        field(
            json!({"name":"email","type":"email","system":true,"required":true,"id":"email3885137012"}),
        ),
        field(json!({"name":"emailVisibility","type":"bool","system":true,"id":"bool1547992806"})),
        field(json!({"name":"verified","type":"bool","system":true,"id":"bool256245529"})),
    ]
}

impl Collection {
    /// Loads a collection from the engine's stored metadata.
    pub fn from_meta(meta: &str) -> Result<Collection, String> {
        let Value::Object(mut map) =
            serde_json::from_str::<Value>(meta).map_err(|err| err.to_string())?
        else {
            return Err("collection meta is not an object".into());
        };
        let fields = match map.remove("fields") {
            Some(Value::Array(items)) => items
                .into_iter()
                .filter_map(|item| match item {
                    Value::Object(json) => Some(Field::from_stored(json)),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        let id = map
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let name = map
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let kind = map
            .get("type")
            .and_then(Value::as_str)
            .and_then(CollectionKind::parse)
            .unwrap_or_default();
        Ok(Collection {
            id,
            name,
            kind,
            fields,
            rest: map,
        })
    }

    /// Full JSON including secrets (what the engine stores).
    pub fn to_meta(&self) -> String {
        serde_json::to_string(&self.to_json_inner(true)).expect("collection JSON serializes")
    }

    /// Public JSON (no secrets), in PocketBase's key order.
    pub fn to_json(&self) -> Value {
        self.to_json_inner(false)
    }

    fn to_json_inner(&self, with_secrets: bool) -> Value {
        let mut out = Map::new();
        out.insert("id".into(), json!(self.id));
        for kind in RuleKind::RECORD {
            out.insert(
                kind.as_str().into(),
                self.rest.get(kind.as_str()).cloned().unwrap_or(Value::Null),
            );
        }
        // pocketlog's own rule: shown only when set, so a collection that does not use it
        // reads exactly as on PocketBase (absent means `null`: superusers only).
        if let Some(restore) = self
            .rest
            .get(RuleKind::Restore.as_str())
            .filter(|value| value.is_string() && !self.is_view())
        {
            out.insert(RuleKind::Restore.as_str().into(), restore.clone());
        }
        out.insert("name".into(), json!(self.name));
        out.insert("type".into(), json!(self.kind.as_str()));
        out.insert(
            "fields".into(),
            Value::Array(
                self.fields
                    .iter()
                    .map(|f| Value::Object(f.json().clone()))
                    .collect(),
            ),
        );
        out.insert(
            "indexes".into(),
            self.rest
                .get("indexes")
                .cloned()
                .unwrap_or_else(|| json!([])),
        );
        out.insert(
            "created".into(),
            self.rest.get("created").cloned().unwrap_or(json!("")),
        );
        out.insert(
            "updated".into(),
            self.rest.get("updated").cloned().unwrap_or(json!("")),
        );
        out.insert("system".into(), json!(self.system()));
        if self.is_view() {
            out.insert(
                "viewQuery".into(),
                self.rest.get("viewQuery").cloned().unwrap_or(json!("")),
            );
        }
        if self.is_auth() {
            let defaults = auth_defaults();
            if let Value::Object(defaults) = defaults {
                for (key, default) in defaults {
                    let mut value = self.rest.get(&key).cloned().unwrap_or(default);
                    if !with_secrets && TOKEN_KEYS.contains(&key.as_str()) {
                        if let Value::Object(map) = &mut value {
                            map.remove("secret");
                        }
                    }
                    if !with_secrets && key == "oauth2" {
                        value = crate::auth::oauth2::public_option(&value);
                    }
                    out.insert(key, value);
                }
            }
        }
        Value::Object(out)
    }

    /// System collection flag.
    pub fn system(&self) -> bool {
        self.rest
            .get("system")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// True for auth collections.
    pub fn is_auth(&self) -> bool {
        self.kind == CollectionKind::Auth
    }

    /// True for view collections.
    pub fn is_view(&self) -> bool {
        self.kind == CollectionKind::View
    }

    /// A rule's text: `None` = superusers only.
    pub fn rule(&self, kind: RuleKind) -> Option<&str> {
        self.rest.get(kind.as_str()).and_then(Value::as_str)
    }

    /// Sets a rule: `None` = superusers only (JSON `null`), `Some("")` = everyone.
    pub fn set_rule(&mut self, kind: RuleKind, rule: Option<&str>) {
        self.rest.insert(
            kind.as_str().to_string(),
            rule.map_or(Value::Null, |text| Value::String(text.to_string())),
        );
    }

    /// The rules this collection's type has: the five record rules, plus `authRule` and
    /// `manageRule` for auth collections and `restoreRule` for base and auth collections.
    pub fn rule_kinds(&self) -> Vec<RuleKind> {
        let mut kinds = RuleKind::RECORD.to_vec();
        if self.is_auth() {
            kinds.extend(RuleKind::AUTH);
        }
        if !self.is_view() {
            kinds.push(RuleKind::Restore);
        }
        kinds
    }

    /// A field by name.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name() == name)
    }

    /// Index statements.
    pub fn indexes(&self) -> Vec<String> {
        self.rest
            .get("indexes")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// An auth option object (`passwordAuth`, `authToken`, ...), defaults applied.
    pub fn auth_option(&self, key: &str) -> Value {
        self.rest
            .get(key)
            .cloned()
            .or_else(|| auth_defaults().get(key).cloned())
            .unwrap_or(Value::Null)
    }

    /// The secret of a token kind (`authToken`, ...).
    pub fn token_secret(&self, key: &str) -> String {
        self.rest
            .get(key)
            .and_then(|v| v.get("secret"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    }

    /// Duration (seconds) of a token kind.
    pub fn token_duration(&self, key: &str) -> i64 {
        self.auth_option(key)
            .get("duration")
            .and_then(Value::as_i64)
            .unwrap_or(604800)
    }

    /// Identity fields for password auth.
    pub fn identity_fields(&self) -> Vec<String> {
        self.auth_option("passwordAuth")
            .get("identityFields")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_else(|| vec!["email".to_string()])
    }

    /// The engine's definition of this collection.
    pub fn to_def(&self) -> CollectionDef {
        CollectionDef {
            id: self.id.clone(),
            name: self.name.clone(),
            kind: self.kind.as_str().to_string(),
            columns: if self.is_view() {
                Vec::new()
            } else {
                self.fields
                    .iter()
                    .map(|f| ColumnDef {
                        id: f.id().to_string(),
                        name: f.name().to_string(),
                        decl: f.column_decl(),
                    })
                    .collect()
            },
            indexes: if self.is_view() {
                Vec::new()
            } else {
                self.indexes()
            },
            view_query: self
                .rest
                .get("viewQuery")
                .and_then(Value::as_str)
                .map(str::to_string),
            meta: self.to_meta(),
        }
    }

    /// Ensures the system fields of the collection's type exist (id first; auth fields after).
    pub fn ensure_system_fields(&mut self) {
        if self.is_view() {
            return;
        }
        // A complete definition (an import of the reference's stored order, a full PATCH) keeps
        // its order.
        let complete = self.fields.first().is_some_and(|f| f.name() == "id")
            && (!self.is_auth()
                || auth_system_fields()
                    .iter()
                    .all(|system| self.fields.iter().any(|f| f.name() == system.name())));
        if complete {
            return;
        }
        let mut fields: Vec<Field> = Vec::new();
        let existing_id = self.fields.iter().find(|f| f.name() == "id").cloned();
        fields.push(existing_id.unwrap_or_else(id_field));
        if self.is_auth() {
            for system in auth_system_fields() {
                let existing = self
                    .fields
                    .iter()
                    .find(|f| f.name() == system.name())
                    .cloned();
                fields.push(existing.unwrap_or(system));
            }
        }
        for f in &self.fields {
            if !fields.iter().any(|g| g.name() == f.name()) {
                fields.push(f.clone());
            }
        }
        self.fields = fields;
    }

    /// Validates the collection (names, field names, rules syntax, identity fields).
    pub fn validate(&self, message: &str, others: &[&Collection]) -> Result<(), ApiError> {
        let mut errors = FieldErrors::default();
        if self.name.is_empty() {
            errors.add("name", "validation_required", "Cannot be blank.", None);
        } else if self.name.len() > 255
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            errors.add(
                "name",
                "validation_match_invalid",
                "Must be in a valid format.",
                None,
            );
        } else if others
            .iter()
            .any(|c| c.id != self.id && c.name.eq_ignore_ascii_case(&self.name))
        {
            errors.add(
                "name",
                "validation_collection_name_exists",
                "Collection name must be unique (case insensitive).",
                None,
            );
        }
        let submitted_kind = self.rest.get("type").and_then(Value::as_str);
        if submitted_kind.is_some_and(|text| CollectionKind::parse(text).is_none()) {
            errors.add(
                "type",
                "validation_in_invalid",
                "Must be a valid value.",
                None,
            );
        }
        let mut field_errors = Map::new();
        let mut seen = std::collections::HashSet::new();
        for (index, f) in self.fields.iter().enumerate() {
            let name = f.name();
            let valid_name = !name.is_empty()
                && name.len() <= 100
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid_name {
                field_errors.insert(
                    index.to_string(),
                    json!({"name": crate::error::field_error("validation_match_invalid", "Must be in a valid format.", None)}),
                );
            } else if !seen.insert(name.to_ascii_lowercase()) {
                field_errors.insert(
                    index.to_string(),
                    json!({"name": crate::error::field_error("validation_duplicated_field_name", "Duplicated or invalid field name.", None)}),
                );
            } else if let Some(error) = password_field_error(f) {
                field_errors.insert(index.to_string(), error);
            } else if let Some(target) = f.relation_target() {
                let exists =
                    target == self.id || others.iter().any(|c| c.id == target || c.name == target);
                if !exists {
                    field_errors.insert(
                        index.to_string(),
                        json!({"collectionId": crate::error::field_error("validation_missing_rel_collection", "Relation connection is missing or cannot be accessed.", None)}),
                    );
                }
            }
        }
        if !field_errors.is_empty() {
            errors
                .0
                .insert("fields".into(), Value::Object(field_errors));
        }
        for kind in self.rule_kinds() {
            if let Some(text) = self.rule(kind).filter(|text| !text.trim().is_empty()) {
                if let Err(err) = rules::parse_rule(text) {
                    errors.add(
                        kind.as_str(),
                        "validation_invalid_rule",
                        &err.invalid_rule_message(),
                        None,
                    );
                }
            }
        }
        self.validate_rules_against(others, &mut errors);
        self.validate_indexes(&mut errors);
        if self.is_view() {
            let query = self
                .rest
                .get("viewQuery")
                .and_then(Value::as_str)
                .unwrap_or("");
            if query.trim().is_empty() {
                errors.add("viewQuery", "validation_required", "Cannot be blank.", None);
            }
        }
        if self.is_auth() {
            for identity in self.identity_fields() {
                if !has_unique_index(&self.indexes(), &identity) && identity != "email" {
                    errors.0.insert(
                        "passwordAuth".into(),
                        json!({"identityFields": crate::error::field_error(
                            "validation_missing_unique_constraint",
                            &format!("The field {identity} doesn't have a UNIQUE constraint."),
                            Some(json!({"fieldName": identity})))}),
                    );
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.into_error(message))
        }
    }
}

impl Collection {
    /// Checks that every rule resolves against the schema (unknown fields are errors).
    fn validate_rules_against(&self, others: &[&Collection], errors: &mut FieldErrors) {
        let mut all: Vec<Collection> = others
            .iter()
            .filter(|c| c.id != self.id)
            .map(|c| (*c).clone())
            .collect();
        all.push(self.clone());
        let schema = super::Schema::new(all);
        let Some(info) = schema.info(&self.id) else {
            return;
        };
        let request = rules::RequestInfo::guest(chrono::Utc::now());
        for kind in self.rule_kinds() {
            if errors.0.contains_key(kind.as_str()) {
                continue;
            }
            let Some(text) = self.rule(kind).filter(|text| !text.trim().is_empty()) else {
                continue;
            };
            let Ok(expr) = rules::parse_rule(text) else {
                continue;
            };
            let mut params = rules::Params::new();
            if let Err(err) = rules::compile(
                &expr,
                &schema,
                info,
                "main",
                &request,
                &mut params,
                &rules::CompileOptions::default(),
            ) {
                errors.add(
                    kind.as_str(),
                    "validation_invalid_rule",
                    &err.invalid_rule_message(),
                    None,
                );
            }
        }
    }

    /// Checks that index statements parse and name existing columns.
    fn validate_indexes(&self, errors: &mut FieldErrors) {
        if self.is_view() {
            return;
        }
        let mut index_errors = Map::new();
        for (position, sql) in self.indexes().iter().enumerate() {
            let name = index_name(sql).unwrap_or_default();
            match parse_index(sql) {
                None => {
                    index_errors.insert(
                        position.to_string(),
                        crate::error::field_error(
                            "validation_invalid_index_expression",
                            "Invalid index expression.",
                            None,
                        ),
                    );
                }
                Some((_, columns)) => {
                    if let Some(missing) = columns
                        .iter()
                        .find(|c| !self.fields.iter().any(|f| f.name().eq_ignore_ascii_case(c)))
                    {
                        index_errors.insert(
                            position.to_string(),
                            crate::error::field_error(
                                "validation_invalid_index_expression",
                                &format!("Failed to create index {name} - SQL logic error: no such column: {missing} (1)."),
                                None,
                            ),
                        );
                    }
                }
            }
        }
        if !index_errors.is_empty() {
            errors
                .0
                .insert("indexes".into(), Value::Object(index_errors));
        }
    }
}

/// The name of an index statement.
pub fn index_name(sql: &str) -> Option<String> {
    let words: Vec<&str> = sql.split_whitespace().collect();
    let position = words.iter().position(|w| w.eq_ignore_ascii_case("INDEX"))?;
    let mut rest = &words[position + 1..];
    if rest.len() >= 3
        && rest[0].eq_ignore_ascii_case("IF")
        && rest[1].eq_ignore_ascii_case("NOT")
        && rest[2].eq_ignore_ascii_case("EXISTS")
    {
        rest = &rest[3..];
    }
    rest.first().map(|name| {
        name.trim_matches(|c| c == '`' || c == '"' || c == '[' || c == ']')
            .to_string()
    })
}

/// Parses `CREATE [UNIQUE] INDEX name ON table (cols) [WHERE ...]` loosely: returns
/// (unique, columns) when it is an index statement.
pub fn parse_index(sql: &str) -> Option<(bool, Vec<String>)> {
    let upper = sql.to_ascii_uppercase();
    let trimmed = upper.trim_start();
    if !trimmed.starts_with("CREATE") {
        return None;
    }
    let unique = trimmed["CREATE".len()..].trim_start().starts_with("UNIQUE");
    let open = sql.find('(')?;
    let close = sql[open..].find(')')? + open;
    let columns = sql[open + 1..close]
        .split(',')
        .map(|c| {
            c.split_whitespace()
                .next()
                .unwrap_or("")
                .trim_matches(|ch| ch == '`' || ch == '"' || ch == '[' || ch == ']')
                .to_string()
        })
        .filter(|c| !c.is_empty())
        .collect();
    Some((unique, columns))
}

/// True when a single-column UNIQUE index on `column` exists.
pub fn has_unique_index(indexes: &[String], column: &str) -> bool {
    indexes.iter().any(|sql| {
        matches!(parse_index(sql), Some((true, cols)) if cols.len() == 1 && cols[0].eq_ignore_ascii_case(column))
    })
}

/// PocketBase's bounds of a `password` field (measured on v0.40.6): `min` 1..=71, `max`
/// `min`..=71 (bcrypt's 72-byte input limit), `cost` 4..=31; 0 means "not set" and skips the
/// check. The first failing option's error, keyed by option name.
fn password_field_error(f: &Field) -> Option<Value> {
    if f.kind() != FieldType::Password {
        return None;
    }
    let num = |key: &str| f.num_opt(key).unwrap_or(0.0).floor() as i64;
    let (min, max, cost) = (num("min"), num("max"), num("cost"));
    let below = |threshold: i64| {
        crate::error::field_error(
            "validation_min_greater_equal_than_required",
            &format!("Must be no less than {threshold}."),
            Some(json!({ "threshold": threshold })),
        )
    };
    let above = |threshold: i64| {
        crate::error::field_error(
            "validation_max_less_equal_than_required",
            &format!("Must be no greater than {threshold}."),
            Some(json!({ "threshold": threshold })),
        )
    };
    let mut errors = Map::new();
    if min != 0 && min < 1 {
        errors.insert("min".into(), below(1));
    } else if min > 71 {
        errors.insert("min".into(), above(71));
    }
    if max != 0 && max < min.max(0) {
        errors.insert("max".into(), below(min.max(0)));
    } else if max < 0 {
        errors.insert("max".into(), below(0));
    } else if max > 71 {
        errors.insert("max".into(), above(71));
    }
    if cost != 0 && cost < 4 {
        errors.insert("cost".into(), below(4));
    } else if cost > 31 {
        errors.insert("cost".into(), above(31));
    }
    (!errors.is_empty()).then_some(Value::Object(errors))
}
