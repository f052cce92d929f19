//! Building collection definitions from API bodies: the defaults of a new collection, an
//! update merged over an existing one, token-secret checks, view fields derived from the view
//! query, and staging the change. Shared by create, update, import and the scaffolds, so all
//! of them produce the same definitions.
//!
//! Invariants: builders never validate against the other collections (the caller does, with
//! the collection set as it will be); every built auth collection has its system fields, its
//! `tokenKey`/`email` unique indexes and a secret for each token type.

use crate::error::{ApiError, ApiResult};
use crate::model::field::Field;
use crate::model::{Collection, CollectionKind, RuleKind};
use crate::state::ensure_secrets;
use engine::{Change, Tx};
use serde_json::{json, Map, Value};

/// Message of a body that is not shaped like a collection.
pub const FORMAT_ERROR: &str = "Failed to load the submitted data due to invalid formatting.";

fn parse_fields(value: Option<&Value>) -> ApiResult<Option<Vec<Field>>> {
    match value {
        None => Ok(None),
        Some(Value::Array(items)) => {
            let mut fields = Vec::new();
            for item in items {
                let Value::Object(map) = item else {
                    return Err(ApiError::bad_request(FORMAT_ERROR));
                };
                fields
                    .push(Field::from_input(map).map_err(|_| ApiError::bad_request(FORMAT_ERROR))?);
            }
            Ok(Some(fields))
        }
        Some(_) => Err(ApiError::bad_request(FORMAT_ERROR)),
    }
}

/// The keys of a collection body merged into `rest`, besides the rules (`RuleKind::ALL`).
const TOP_LEVEL_KEYS: &[&str] = &[
    "indexes",
    "viewQuery",
    "authAlert",
    "oauth2",
    "passwordAuth",
    "mfa",
    "otp",
    "authToken",
    "passwordResetToken",
    "emailChangeToken",
    "verificationToken",
    "fileToken",
    "verificationTemplate",
    "resetPasswordTemplate",
    "confirmEmailChangeTemplate",
];

/// Shortest and longest token secret a superuser may set (the reference's bounds).
pub const TOKEN_SECRET_CHARS: std::ops::RangeInclusive<usize> = 30..=255;

/// Checks the token secrets a body sets explicitly (`{"authToken": {"secret": ".."}}`):
/// a string of 30–255 characters, else the reference's field errors (blank:
/// `validation_required`; length: `validation_length_out_of_range`) or, for a non-string,
/// its format error. Setting a secret is how a superuser rotates it (the dashboard's
/// "invalidate all tokens" saves a new random one): every token of that type signed with the
/// old secret then fails.
fn check_token_secrets(body: &Map<String, Value>, message: &str) -> ApiResult<()> {
    let mut errors = Map::new();
    for key in crate::model::collection::TOKEN_KEYS {
        let Some(Value::Object(option)) = body.get(*key) else {
            continue;
        };
        let Some(secret) = option.get("secret") else {
            continue;
        };
        let error = match secret {
            Value::Null => {
                crate::error::field_error("validation_required", "Cannot be blank.", None)
            }
            Value::String(text) if text.is_empty() => {
                crate::error::field_error("validation_required", "Cannot be blank.", None)
            }
            Value::String(text) if !TOKEN_SECRET_CHARS.contains(&text.chars().count()) => {
                crate::error::field_error(
                    "validation_length_out_of_range",
                    "The length must be between 30 and 255.",
                    Some(
                        json!({"max": TOKEN_SECRET_CHARS.end(), "min": TOKEN_SECRET_CHARS.start()}),
                    ),
                )
            }
            Value::String(_) => continue,
            _ => return Err(ApiError::bad_request(FORMAT_ERROR)),
        };
        errors.insert((*key).to_string(), json!({ "secret": error }));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(message, errors))
    }
}

fn merge_body(
    collection: &mut Collection,
    body: &Map<String, Value>,
    message: &str,
) -> ApiResult<()> {
    let rule_keys = RuleKind::ALL.map(RuleKind::as_str);
    for key in rule_keys.iter().chain(TOP_LEVEL_KEYS) {
        if let Some(value) = body.get(*key) {
            let mut value = value.clone();
            if crate::model::collection::TOKEN_KEYS.contains(key) {
                // A partial option object is merged over the stored one (as the reference
                // does): `{"secret": ..}` keeps the duration and `{"duration": ..}` the
                // server-side secret (a secret the body sets was checked by
                // `check_token_secrets`).
                if let (Value::Object(new), Some(Value::Object(old))) =
                    (&value, collection.rest.get(*key))
                {
                    let mut merged = old.clone();
                    merged.extend(new.clone());
                    value = Value::Object(merged);
                }
            }
            if *key == "oauth2" {
                // Provider names are checked; a provider sent without its secret keeps the
                // stored one (the API never shows secrets).
                let old = collection.rest.get("oauth2");
                if let Some(errors) = crate::auth::oauth2::merge_option(old, &mut value) {
                    let mut data = Map::new();
                    data.insert("oauth2".into(), errors);
                    return Err(ApiError::validation(message, data));
                }
            }
            if *key == "indexes" && !value.is_array() {
                return Err(ApiError::bad_request(FORMAT_ERROR));
            }
            collection.rest.insert((*key).to_string(), value);
        }
    }
    if let Some(name) = body.get("name") {
        collection.name = name.as_str().unwrap_or("").to_string();
    }
    if let Some(fields) = parse_fields(body.get("fields"))? {
        collection.fields = fields;
    }
    Ok(())
}

/// Stages a collection create/update; SQLite errors become index/viewQuery field errors.
pub fn stage_collection(
    tx: &mut Tx<'_>,
    collection: &Collection,
    created: bool,
    message: &str,
) -> ApiResult<()> {
    let def = collection.to_def();
    let change = if created {
        Change::CollectionCreated(def)
    } else {
        Change::CollectionUpdated(def)
    };
    tx.stage(change).map_err(|err| match err {
        engine::Error::Sqlite(detail) => {
            let mut errors = crate::error::FieldErrors::default();
            let field = if collection.is_view() {
                "viewQuery"
            } else {
                "indexes"
            };
            errors.add(
                field,
                "validation_invalid_index_expression",
                &format!("Invalid value. Raw error: {detail}"),
                None,
            );
            errors.into_error(message)
        }
        other => ApiError::from(other),
    })
}

/// Builds a new collection from a create body: defaults, the body merged in, system fields,
/// auth indexes and secrets. Validation against the other collections is the caller's.
pub fn new_collection(body: &Map<String, Value>) -> ApiResult<Collection> {
    let kind = match body.get("type") {
        None => CollectionKind::default().as_str().to_string(),
        Some(Value::String(kind)) => kind.clone(),
        Some(_) => return Err(ApiError::bad_request(FORMAT_ERROR)),
    };
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let id = match body
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
    {
        Some(id) => id.to_string(),
        None => format!(
            "pbc_{}",
            crc32fast::hash(format!("{kind}{name}").as_bytes())
        ),
    };
    let mut collection = Collection {
        id,
        name,
        kind: CollectionKind::parse(&kind).unwrap_or_default(),
        fields: Vec::new(),
        rest: Map::new(),
    };
    // An unknown type is kept for `validate` to report with the other errors.
    collection.rest.insert("type".into(), json!(kind));
    for rule in RuleKind::RECORD {
        collection.set_rule(rule, None);
    }
    if collection.is_auth() {
        collection.set_rule(RuleKind::Auth, Some(""));
        collection.set_rule(RuleKind::Manage, None);
    }
    collection.rest.insert("indexes".into(), json!([]));
    collection.rest.insert("system".into(), json!(false));
    check_token_secrets(body, "Failed to create collection.")?;
    merge_body(&mut collection, body, "Failed to create collection.")?;
    if collection.is_view() {
        for rule in [
            RuleKind::Create,
            RuleKind::Update,
            RuleKind::Delete,
            RuleKind::Restore,
        ] {
            collection.set_rule(rule, None);
        }
    }
    collection.ensure_system_fields();
    if collection.is_auth() {
        add_auth_indexes(&mut collection);
    }
    ensure_secrets(&mut collection);
    Ok(collection)
}

fn add_auth_indexes(collection: &mut Collection) {
    let mut indexes = collection.indexes();
    let token_index = format!(
        "CREATE UNIQUE INDEX `idx_tokenKey_{}` ON `{}` (`tokenKey`)",
        collection.id, collection.name
    );
    let email_index = format!(
        "CREATE UNIQUE INDEX `idx_email_{}` ON `{}` (`email`) WHERE `email` != ''",
        collection.id, collection.name
    );
    if !crate::model::collection::has_unique_index(&indexes, "tokenKey") {
        indexes.insert(0, token_index);
    }
    if !crate::model::collection::has_unique_index(&indexes, "email") {
        indexes.insert(1.min(indexes.len()), email_index);
    }
    collection.rest.insert("indexes".into(), json!(indexes));
}

/// Derives a view collection's fields from its query's columns.
pub fn derive_view_fields(
    tx: &Tx<'_>,
    collection: &mut Collection,
    message: &str,
) -> ApiResult<()> {
    let query = collection
        .rest
        .get("viewQuery")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let trimmed = query.trim().trim_end_matches(';');
    let upper = trimmed.to_ascii_uppercase();
    let invalid = |detail: String| {
        let mut errors = crate::error::FieldErrors::default();
        errors.add(
            "viewQuery",
            "validation_invalid_view_query",
            &format!("Invalid view query. Raw error: {detail}"),
            None,
        );
        errors.into_error(message)
    };
    if !(upper.starts_with("SELECT") || upper.starts_with("WITH")) || trimmed.contains(';') {
        return Err(invalid("only a single SELECT statement is allowed".into()));
    }
    let rows = tx
        .query(&format!("SELECT * FROM ({trimmed}) LIMIT 0"), &[])
        .map_err(|err| invalid(err.to_string()))?;
    if !rows.columns.iter().any(|c| c == "id") {
        return Err(invalid(super::view_fields::MISSING_ID.into()));
    }
    // Column types as the reference infers them (`view_fields.rs`).
    let sources: Vec<Collection> = tx
        .collections()
        .into_iter()
        .filter(|def| !def.is_view())
        .filter_map(|def| Collection::from_meta(&def.meta).ok())
        .collect();
    let fields = super::view_fields::derive(trimmed, &rows.columns, &sources, &collection.name);
    collection.fields = fields;
    collection.rest.insert("viewQuery".into(), json!(trimmed));
    Ok(())
}

/// Applies an update body to a copy of `existing` (partial merge, `fields` replaced, system
/// fields and auth indexes ensured, auth secret rotated when `authRule` changes). Validation
/// against the other collections is the caller's.
pub fn updated_collection(
    existing: &Collection,
    body: &Map<String, Value>,
    message: &str,
) -> ApiResult<Collection> {
    let mut collection = existing.clone();
    check_token_secrets(body, message)?;
    merge_body(&mut collection, body, message)?;
    if let Some(kind) = body.get("type").and_then(Value::as_str) {
        if CollectionKind::parse(kind) != Some(existing.kind) {
            let mut errors = crate::error::FieldErrors::default();
            errors.add(
                "type",
                "validation_collection_type_change",
                "Collection type cannot be changed.",
                None,
            );
            return Err(errors.into_error(message));
        }
    }
    collection.ensure_system_fields();
    if collection.is_auth() {
        add_auth_indexes(&mut collection);
        if collection.rule(RuleKind::Auth) != existing.rule(RuleKind::Auth) {
            // Changing who may authenticate invalidates every existing auth token.
            if let Some(Value::Object(option)) = collection.rest.get_mut("authToken") {
                option.insert(
                    "secret".into(),
                    json!(crate::auth::token::new_collection_secret()),
                );
            }
        }
    }
    Ok(collection)
}
