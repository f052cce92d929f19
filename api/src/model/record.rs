//! Records: storage values ↔ record JSON, input coercion, update modifiers and field
//! validation, as PocketBase does them (`docs/wire/records.md`, `docs/wire/errors.md`).
//!
//! 1. Record JSON inside the server always holds every field (hidden ones too); what a caller
//!    may see is decided by [`visible_json`].
//! 2. Coercion is lenient (wrong types become the field's zero value); validation reports
//!    PocketBase's codes.

use super::collection::Collection;
use super::field::{Field, FieldType};
use crate::error::FieldErrors;
use serde_json::{json, Map, Number, Value};

/// PocketBase's date layout.
pub const DATE_LAYOUT: &str = "%Y-%m-%d %H:%M:%S%.3fZ";

/// Formats ms since the epoch as a PocketBase date.
pub fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format(DATE_LAYOUT)
        .to_string()
}

/// Parses what PocketBase accepts as a date; `None` when unparsable.
pub fn parse_date(text: &str) -> Option<String> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
        return Some(dt.with_timezone(&Utc).format(DATE_LAYOUT).to_string());
    }
    let candidates = [
        "%Y-%m-%d %H:%M:%S%.fZ",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%SZ",
        "%Y-%m-%d %H:%M:%S",
    ];
    for layout in candidates {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, layout) {
            return Some(naive.and_utc().format(DATE_LAYOUT).to_string());
        }
    }
    if let Ok(dt) = DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%:z") {
        return Some(dt.with_timezone(&Utc).format(DATE_LAYOUT).to_string());
    }
    if let Ok(dt) = DateTime::parse_from_rfc2822(text) {
        return Some(dt.with_timezone(&Utc).format(DATE_LAYOUT).to_string());
    }
    if let Ok(dt) = NaiveDateTime::parse_from_str(text, "%a, %d %b %Y %H:%M:%S %Z") {
        return Some(dt.and_utc().format(DATE_LAYOUT).to_string());
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Some(
            date.and_hms_opt(0, 0, 0)
                .unwrap_or_default()
                .and_utc()
                .format(DATE_LAYOUT)
                .to_string(),
        );
    }
    None
}

/// The zero value of a field.
pub fn zero_value(field: &Field) -> Value {
    match field.kind() {
        FieldType::Number => json!(0),
        FieldType::Bool => json!(false),
        FieldType::Json => Value::Null,
        FieldType::GeoPoint => json!({"lon": 0, "lat": 0}),
        FieldType::Select | FieldType::Relation | FieldType::File if field.is_multi() => json!([]),
        _ => json!(""),
    }
}

fn number_json(value: f64) -> Value {
    if value.fract() == 0.0 && value.abs() < 9.0e15 {
        json!(value as i64)
    } else {
        Number::from_f64(value)
            .map(Value::Number)
            .unwrap_or(json!(0))
    }
}

/// A storage value as record JSON.
pub fn json_from_storage(field: &Field, value: &engine::Value) -> Value {
    use engine::Value as V;
    match field.kind() {
        FieldType::Number => match value {
            V::Int(int) => json!(int),
            V::Real(real) => number_json(*real),
            V::Text(text) => number_json(text.trim().parse().unwrap_or(0.0)),
            V::Null => json!(0),
        },
        FieldType::Bool => json!(
            matches!(value, V::Int(1)) || matches!(value, V::Text(t) if t == "1" || t == "true")
        ),
        FieldType::Json => match value {
            V::Text(text) => serde_json::from_str(text).unwrap_or(Value::String(text.clone())),
            V::Int(int) => json!(int),
            V::Real(real) => number_json(*real),
            V::Null => Value::Null,
        },
        FieldType::GeoPoint => match value {
            V::Text(text) => {
                serde_json::from_str(text).unwrap_or_else(|_| json!({"lon":0,"lat":0}))
            }
            _ => json!({"lon":0,"lat":0}),
        },
        FieldType::Select | FieldType::Relation | FieldType::File if field.is_multi() => {
            match value {
                V::Text(text) => match serde_json::from_str::<Value>(text) {
                    Ok(Value::Array(items)) => Value::Array(items),
                    _ if text.is_empty() => json!([]),
                    _ => json!([text]),
                },
                _ => json!([]),
            }
        }
        _ => match value {
            V::Text(text) => Value::String(text.clone()),
            V::Int(int) => Value::String(int.to_string()),
            V::Real(real) => Value::String(real.to_string()),
            V::Null => Value::String(String::new()),
        },
    }
}

/// Record JSON value as a storage value.
pub fn storage_from_json(field: &Field, value: &Value) -> engine::Value {
    use engine::Value as V;
    match field.kind() {
        FieldType::Number => match value.as_f64() {
            Some(number) if number.fract() == 0.0 && number.abs() < 9.0e15 => V::Int(number as i64),
            Some(number) => V::Real(number),
            None => V::Int(0),
        },
        FieldType::Bool => V::Int(i64::from(value.as_bool().unwrap_or(false))),
        FieldType::Json => match value {
            Value::Null => V::Null,
            other => V::Text(other.to_string()),
        },
        FieldType::GeoPoint => V::Text(value.to_string()),
        FieldType::Select | FieldType::Relation | FieldType::File if field.is_multi() => {
            V::Text(value.to_string())
        }
        _ => V::Text(match value {
            Value::String(text) => text.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        }),
    }
}

/// Builds the full record JSON from a row (`columns` as selected).
pub fn from_row(
    collection: &Collection,
    columns: &[String],
    row: &[engine::Value],
) -> Map<String, Value> {
    let mut out = Map::with_capacity(collection.fields.len() + 2);
    for f in &collection.fields {
        let value = columns
            .iter()
            .position(|c| c == f.name())
            .map(|index| json_from_storage(f, &row[index]))
            .unwrap_or_else(|| zero_value(f));
        out.insert(f.name().to_string(), value);
    }
    out.insert("collectionId".into(), json!(collection.id));
    out.insert("collectionName".into(), json!(collection.name));
    out
}

/// The storage values of a full record JSON, in field order.
pub fn to_storage(
    collection: &Collection,
    record: &Map<String, Value>,
) -> Vec<(String, engine::Value)> {
    collection
        .fields
        .iter()
        .map(|f| {
            let value = record
                .get(f.name())
                .cloned()
                .unwrap_or_else(|| zero_value(f));
            (f.name().to_string(), storage_from_json(f, &value))
        })
        .collect()
}

/// Who is looking at a record, for output.
#[derive(Debug, Clone, Copy, Default)]
pub struct Viewer<'a> {
    /// Superusers see hidden fields and every email.
    pub superuser: bool,
    /// The auth record id of the caller (and its collection id).
    pub auth: Option<(&'a str, &'a str)>,
    /// The caller satisfies the collection's manageRule.
    pub manager: bool,
}

/// The record JSON a viewer may see: no password/tokenKey ever, hidden fields only for
/// superusers, email only when visible; keys sorted.
pub fn visible_json(
    collection: &Collection,
    record: &Map<String, Value>,
    viewer: Viewer<'_>,
) -> Map<String, Value> {
    visible_json_owned(collection, record.clone(), viewer)
}

/// [`visible_json`] of a record the caller no longer needs (no copy of its keys and values).
pub fn visible_json_owned(
    collection: &Collection,
    record: Map<String, Value>,
    viewer: Viewer<'_>,
) -> Map<String, Value> {
    let hide_email = collection.is_auth() && {
        let is_owner = viewer.auth.is_some_and(|(collection_id, id)| {
            collection_id == collection.id && record.get("id").and_then(Value::as_str) == Some(id)
        });
        let visible = record
            .get("emailVisibility")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        !(visible || is_owner || viewer.superuser || viewer.manager)
    };
    let mut out = record;
    out.retain(|key, _| match collection.field(key) {
        Some(f) => {
            !(f.kind() == FieldType::Password
                || (collection.is_auth() && key == "tokenKey")
                || (f.hidden() && !viewer.superuser))
        }
        None => true,
    });
    if hide_email {
        out.remove("email");
    }
    out.sort_keys();
    out
}

fn to_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        other => other.to_string(),
    }
}

fn string_list(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items
            .iter()
            .map(to_text)
            .filter(|s| !s.is_empty())
            .collect(),
        Value::Null => Vec::new(),
        other => {
            let text = to_text(other);
            if text.is_empty() {
                Vec::new()
            } else {
                vec![text]
            }
        }
    }
}

/// Coerces a submitted value to the field's JSON form (`docs/wire/records.md` "Writing").
pub fn coerce(field: &Field, value: &Value) -> Value {
    match field.kind() {
        FieldType::Number => match value {
            Value::Number(_) => value.clone(),
            Value::Bool(flag) => json!(i64::from(*flag)),
            Value::String(text) => match text.parse::<f64>() {
                Ok(number)
                    if number.is_finite() && !text.trim().is_empty() && text.trim() == text =>
                {
                    number_json(number)
                }
                _ => json!(0),
            },
            _ => json!(0),
        },
        // As the reference (measured): any non-zero number, and Go's `ParseBool` spellings.
        FieldType::Bool => json!(match value {
            Value::Bool(flag) => *flag,
            Value::Number(number) => number.as_f64().is_some_and(|n| n != 0.0),
            Value::String(text) =>
                matches!(text.as_str(), "1" | "t" | "T" | "TRUE" | "true" | "True"),
            _ => false,
        }),
        FieldType::Date => match value {
            Value::String(text) => json!(parse_date(text).unwrap_or_default()),
            _ => json!(""),
        },
        FieldType::Autodate => json!(""),
        FieldType::Select | FieldType::Relation | FieldType::File => {
            let mut items = string_list(value);
            if field.is_multi() {
                let mut seen = std::collections::HashSet::new();
                items.retain(|item| seen.insert(item.clone()));
                json!(items)
            } else {
                json!(items.pop().unwrap_or_default())
            }
        }
        FieldType::Json => match value {
            Value::String(text) => {
                let trimmed = text.trim();
                match serde_json::from_str::<Value>(trimmed) {
                    Ok(parsed) if !trimmed.is_empty() => parsed,
                    _ => value.clone(),
                }
            }
            other => other.clone(),
        },
        FieldType::GeoPoint => match value {
            Value::Object(map) => json!({
                "lon": map.get("lon").and_then(Value::as_f64).map(number_json).unwrap_or(json!(0)),
                "lat": map.get("lat").and_then(Value::as_f64).map(number_json).unwrap_or(json!(0)),
            }),
            _ => json!({"lon":0,"lat":0}),
        },
        _ => json!(to_text(value)),
    }
}

/// Applies a body (with `field+`, `+field`, `field-` modifiers) onto `record`. Unknown keys,
/// system-managed keys and (for non-superusers) hidden fields are ignored. Returns the keys
/// that were set.
pub fn apply_body(
    collection: &Collection,
    body: &Map<String, Value>,
    record: &mut Map<String, Value>,
    superuser: bool,
) -> Vec<String> {
    let mut touched = Vec::new();
    // Plain assignments first, then modifiers (PocketBase resolves `x` before `x+`).
    for (key, value) in body {
        let Some(f) = collection.field(key) else {
            continue;
        };
        if f.kind() == FieldType::Autodate
            || f.kind() == FieldType::Password
            || (f.hidden() && !superuser)
        {
            continue;
        }
        if collection.is_auth() && key == "tokenKey" {
            continue;
        }
        record.insert(key.clone(), coerce(f, value));
        touched.push(key.clone());
    }
    for (key, value) in body {
        let (name, op) = if let Some(name) = key.strip_suffix('+') {
            (name, '+')
        } else if let Some(name) = key.strip_prefix('+') {
            (name, '^')
        } else if let Some(name) = key.strip_suffix('-') {
            (name, '-')
        } else {
            continue;
        };
        let Some(f) = collection.field(name) else {
            continue;
        };
        if f.hidden() && !superuser {
            continue;
        }
        let current = record.get(name).cloned().unwrap_or_else(|| zero_value(f));
        let updated = match f.kind() {
            FieldType::Number if op != '^' => {
                let delta = coerce(f, value).as_f64().unwrap_or(0.0);
                let base = current.as_f64().unwrap_or(0.0);
                number_json(if op == '+' {
                    base + delta
                } else {
                    base - delta
                })
            }
            FieldType::Select | FieldType::Relation | FieldType::File => {
                let mut items = string_list(&current);
                let given = string_list(value);
                match op {
                    '+' => items.extend(given),
                    '^' => {
                        let mut front = given;
                        front.extend(items);
                        items = front;
                    }
                    _ => items.retain(|item| !given.contains(item)),
                }
                coerce(f, &json!(items))
            }
            _ => continue,
        };
        record.insert(name.to_string(), updated);
        touched.push(name.to_string());
    }
    touched
}

fn is_blank(field: &Field, value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(text) => text.is_empty(),
        Value::Number(number) => number.as_f64() == Some(0.0),
        Value::Bool(flag) => !flag,
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => {
            if field.kind() == FieldType::GeoPoint {
                map.get("lon").and_then(Value::as_f64) == Some(0.0)
                    && map.get("lat").and_then(Value::as_f64) == Some(0.0)
            } else {
                map.is_empty()
            }
        }
    }
}

fn domain_of(text: &str) -> &str {
    text.rsplit('@').next().unwrap_or("")
}

/// PocketBase's (loose) email shape check: `local@domain.tld`.
pub fn is_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !text.contains(char::is_whitespace)
        && !domain.contains('@')
}

fn is_url(text: &str) -> bool {
    let Some((scheme, rest)) = text.split_once("://") else {
        return false;
    };
    !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.')
        && !rest.is_empty()
        && !text.contains(char::is_whitespace)
        && rest
            .split('/')
            .next()
            .is_some_and(|host| host.contains('.') || host.starts_with("localhost"))
}

/// Validates every field of a (coerced) record. `check_pattern` receives (pattern, value)
/// and returns whether it matches.
pub fn validate(collection: &Collection, record: &Map<String, Value>, errors: &mut FieldErrors) {
    for f in &collection.fields {
        let name = f.name();
        if f.kind() == FieldType::Password || f.kind() == FieldType::Autodate {
            continue;
        }
        if collection.is_auth() && name == "tokenKey" {
            continue;
        }
        let value = record.get(name).cloned().unwrap_or_else(|| zero_value(f));
        if is_blank(f, &value) {
            if f.required() {
                errors.add(name, "validation_required", "Cannot be blank.", None);
            }
            continue;
        }
        match f.kind() {
            FieldType::Text => {
                let text = value.as_str().unwrap_or("");
                let chars = text.chars().count() as f64;
                let min = f.num_opt("min").unwrap_or(0.0);
                let max = match f.num_opt("max").unwrap_or(0.0) {
                    m if m <= 0.0 => 5000.0,
                    m => m,
                };
                if chars < min {
                    errors.add(
                        name,
                        "validation_min_text_constraint",
                        &format!("Must be at least {min} character(s)."),
                        Some(json!({"min": min as i64})),
                    );
                } else if chars > max {
                    errors.add(
                        name,
                        "validation_max_text_constraint",
                        &format!("Must be no more than {max} character(s)."),
                        Some(json!({"max": max as i64})),
                    );
                } else if !f.str_opt("pattern").is_empty()
                    && !simple_pattern_match(f.str_opt("pattern"), text)
                {
                    errors.add(
                        name,
                        "validation_invalid_format",
                        "Invalid value format.",
                        None,
                    );
                }
            }
            FieldType::Number => {
                let number = value.as_f64().unwrap_or(0.0);
                if !number.is_finite() {
                    errors.add(
                        name,
                        "validation_not_a_number",
                        "The submitted number is not properly formatted.",
                        None,
                    );
                } else if f.bool_opt("onlyInt") && number.fract() != 0.0 {
                    errors.add(
                        name,
                        "validation_only_int_constraint",
                        "Decimal numbers are not allowed.",
                        None,
                    );
                } else if let Some(min) = f.num_opt("min").filter(|min| number < *min) {
                    errors.add(
                        name,
                        "validation_min_number_constraint",
                        &format!("Must be greater or equal than {}.", number_json(min)),
                        Some(json!({"min": number_json(min)})),
                    );
                } else if let Some(max) = f.num_opt("max").filter(|max| number > *max) {
                    errors.add(
                        name,
                        "validation_max_number_constraint",
                        &format!("Must be less or equal than {}.", number_json(max)),
                        Some(json!({"max": number_json(max)})),
                    );
                }
            }
            FieldType::Email => {
                let text = value.as_str().unwrap_or("");
                if !is_email(text) {
                    errors.add(
                        name,
                        "validation_is_email",
                        "Must be a valid email address.",
                        None,
                    );
                } else if domain_restricted(f, domain_of(text)) {
                    errors.add(
                        name,
                        "validation_email_domain_not_allowed",
                        "Email domain is not allowed.",
                        None,
                    );
                }
            }
            FieldType::Url => {
                let text = value.as_str().unwrap_or("");
                if !is_url(text) {
                    errors.add(name, "validation_invalid_url", "Must be a valid url.", None);
                } else {
                    let host = text
                        .split("://")
                        .nth(1)
                        .unwrap_or("")
                        .split(['/', ':', '?'])
                        .next()
                        .unwrap_or("");
                    if domain_restricted(f, host) {
                        errors.add(
                            name,
                            "validation_url_domain_not_allowed",
                            "Url domain is not allowed.",
                            None,
                        );
                    }
                }
            }
            FieldType::Editor => {
                let max = match f.num_opt("maxSize").unwrap_or(0.0) {
                    m if m <= 0.0 => 5242880.0,
                    m => m,
                };
                if value.as_str().unwrap_or("").len() as f64 > max {
                    errors.add(
                        name,
                        "validation_content_size_limit",
                        &format!("The maximum allowed content size is {max} bytes."),
                        Some(json!({"maxSize": max as i64})),
                    );
                }
            }
            FieldType::Select => {
                let allowed = f.select_values();
                let items = string_list(&value);
                if let Some(bad) = items.iter().find(|item| !allowed.contains(item)) {
                    errors.add(
                        name,
                        "validation_invalid_value",
                        &format!("Invalid value {bad}."),
                        Some(json!({"value": bad})),
                    );
                } else {
                    let max = f.max_select().max(1.0);
                    if items.len() as f64 > max {
                        errors.add(
                            name,
                            "validation_too_many_values",
                            &format!("Select no more than {max}."),
                            Some(json!({"maxSelect": max as i64})),
                        );
                    }
                }
            }
            FieldType::Relation => {
                let items = string_list(&value);
                let max = f.max_select().max(1.0);
                let min = f.min_select();
                if items.len() as f64 > max {
                    errors.add(
                        name,
                        "validation_too_many_values",
                        &format!("Select no more than {max}."),
                        Some(json!({"maxSelect": max as i64})),
                    );
                } else if (items.len() as f64) < min {
                    errors.add(
                        name,
                        "validation_not_enough_values",
                        &format!("Select at least {min}."),
                        Some(json!({"minSelect": min as i64})),
                    );
                }
            }
            FieldType::Json => {
                let max = match f.num_opt("maxSize").unwrap_or(0.0) {
                    m if m <= 0.0 => 1048576.0,
                    m => m,
                };
                if value.to_string().len() as f64 > max {
                    errors.add(
                        name,
                        "validation_json_size_limit",
                        &format!("The maximum allowed JSON size is {max} bytes."),
                        Some(json!({"maxSize": max as i64})),
                    );
                }
            }
            FieldType::GeoPoint => {
                let lon = value.get("lon").and_then(Value::as_f64).unwrap_or(0.0);
                let lat = value.get("lat").and_then(Value::as_f64).unwrap_or(0.0);
                if !(-90.0..=90.0).contains(&lat) {
                    errors.add(
                        name,
                        "validation_invalid_latitude",
                        "Latitude must be between -90 and 90 degrees.",
                        None,
                    );
                } else if !(-180.0..=180.0).contains(&lon) {
                    errors.add(
                        name,
                        "validation_invalid_longitude",
                        "Longitude must be between -180 and 180 degrees.",
                        None,
                    );
                }
            }
            FieldType::Date => {
                let text = value.as_str().unwrap_or("");
                let min = f.str_opt("min");
                let max = f.str_opt("max");
                if !min.is_empty() && text < min {
                    errors.add(
                        name,
                        "validation_min_date_constraint",
                        &format!("Must be no earlier than {min}."),
                        Some(json!({"min": min})),
                    );
                } else if !max.is_empty() && text > max {
                    errors.add(
                        name,
                        "validation_max_date_constraint",
                        &format!("Must be no later than {max}."),
                        Some(json!({"max": max})),
                    );
                }
            }
            _ => {}
        }
    }
}

fn domain_restricted(field: &Field, domain: &str) -> bool {
    let only = field.list_opt("onlyDomains");
    let except = field.list_opt("exceptDomains");
    (!only.is_empty() && !only.iter().any(|d| d.eq_ignore_ascii_case(domain)))
        || except.iter().any(|d| d.eq_ignore_ascii_case(domain))
}

/// A small regex subset used by field `pattern`s: `^...$` anchors, character classes with
/// ranges, `+`, `*`, `?` and `{n}`/`{n,m}` quantifiers. Unsupported patterns match anything.
pub fn simple_pattern_match(pattern: &str, text: &str) -> bool {
    super::pattern::Pattern::compile(pattern)
        .map(|compiled| compiled.is_match(text))
        .unwrap_or(true)
}

/// Generates a value for an `autogeneratePattern` like `[a-z0-9]{15}`.
pub fn autogenerate(pattern: &str) -> String {
    super::pattern::Pattern::compile(pattern)
        .map(|compiled| compiled.generate())
        .unwrap_or_default()
}
