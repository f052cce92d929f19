//! Resolution shared by the SQL compiler and the in-memory evaluator.
//!
//! Turns `@request.*` identifiers and macros into values for the current request, checks
//! field access, and finds back-relations. It produces values and schema references only,
//! never SQL text.
//!
//! Invariants:
//! 1. A field is only ever returned from a schema lookup (the allow-list).
//! 2. With `restricted` (non-superuser client filter/sort), hidden fields, passwords and
//!    `tokenKey` are rejected with 400 and `@request.*`/`@collection.*` with 403.

use chrono::{Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Timelike, Utc};
use serde_json::Value;

use crate::ast::{Ident, Macro, Modifier, Root};
use crate::errors::RuleError;
use crate::request::{RequestInfo, SqlValue};
use crate::schema::{CollectionInfo, FieldInfo, FieldKind, Schema};

/// Formats a datetime in PocketBase's canonical form.
pub(crate) fn format_datetime(dt: chrono::DateTime<Utc>) -> String {
    dt.format("%Y-%m-%d %H:%M:%S%.3fZ").to_string()
}

/// The value of a datetime macro at `now`.
pub(crate) fn macro_value(m: Macro, now: chrono::DateTime<Utc>) -> SqlValue {
    let date = now.date_naive();
    let at = |d: NaiveDate, t: NaiveTime| Utc.from_utc_datetime(&d.and_time(t));
    let start = NaiveTime::MIN;
    let end = NaiveTime::from_hms_milli_opt(23, 59, 59, 999).unwrap_or(NaiveTime::MIN);
    let month_start = date.with_day(1).unwrap_or(date);
    let next_month = if date.month() == 12 {
        NaiveDate::from_ymd_opt(date.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(date.year(), date.month() + 1, 1)
    }
    .unwrap_or(date);
    let month_end = next_month.pred_opt().unwrap_or(date);
    let year_start = NaiveDate::from_ymd_opt(date.year(), 1, 1).unwrap_or(date);
    let year_end = NaiveDate::from_ymd_opt(date.year(), 12, 31).unwrap_or(date);
    let text = |dt| SqlValue::Text(format_datetime(dt));
    match m {
        Macro::Now => text(now),
        Macro::Yesterday => text(now - Duration::hours(24)),
        Macro::Tomorrow => text(now + Duration::hours(24)),
        Macro::TodayStart => text(at(date, start)),
        Macro::TodayEnd => text(at(date, end)),
        Macro::MonthStart => text(at(month_start, start)),
        Macro::MonthEnd => text(at(month_end, end)),
        Macro::YearStart => text(at(year_start, start)),
        Macro::YearEnd => text(at(year_end, end)),
        Macro::Second => SqlValue::Int(i64::from(now.second())),
        Macro::Minute => SqlValue::Int(i64::from(now.minute())),
        Macro::Hour => SqlValue::Int(i64::from(now.hour())),
        Macro::Day => SqlValue::Int(i64::from(now.day())),
        Macro::Month => SqlValue::Int(i64::from(now.month())),
        Macro::Year => SqlValue::Int(i64::from(now.year())),
        Macro::Weekday => SqlValue::Int(i64::from(now.weekday().num_days_from_sunday())),
    }
}

/// SQLite's `LOWER()` (ASCII only) applied to a value.
pub(crate) fn sql_lower(value: SqlValue) -> SqlValue {
    match value {
        SqlValue::Null => SqlValue::Null,
        SqlValue::Text(t) => SqlValue::Text(t.to_ascii_lowercase()),
        SqlValue::Int(i) => SqlValue::Text(i.to_string()),
        SqlValue::Real(r) => SqlValue::Text(real_to_text(r)),
    }
}

/// SQLite's text form of a REAL (`%!.15g`), close enough for the values filters use.
pub(crate) fn real_to_text(r: f64) -> String {
    if r.fract() == 0.0 && r.abs() < 1e15 {
        format!("{r:.1}")
    } else {
        let formatted = format!("{:.15e}", r);
        match formatted.parse::<f64>() {
            Ok(v) if v.abs() >= 1e-4 && v.abs() < 1e15 => {
                let s = format!("{v}");
                if s.contains('.') {
                    s
                } else {
                    format!("{s}.0")
                }
            }
            _ => format!("{r:e}"),
        }
    }
}

/// Looks a field up and applies the client restrictions.
pub(crate) fn lookup_field<'c>(
    collection: &'c CollectionInfo,
    name: &str,
    restricted: bool,
    client: bool,
) -> Result<Option<&'c FieldInfo>, RuleError> {
    let Some(field) = collection.field(name) else {
        return Ok(None);
    };
    let secret = matches!(field.kind, FieldKind::Password) || field.name == "tokenKey";
    if (restricted && field.hidden) || (client && secret) {
        return Err(RuleError::Resolve(format!(
            "field {name:?} is not filterable"
        )));
    }
    Ok(Some(field))
}

/// `<collection>_via_<field>`: the collection and its relation field pointing at `current`.
pub(crate) fn back_relation<'s>(
    schema: &'s dyn Schema,
    current: &CollectionInfo,
    segment: &str,
) -> Result<Option<(&'s CollectionInfo, &'s FieldInfo)>, RuleError> {
    let Some((name, field_name)) = segment.split_once("_via_") else {
        return Ok(None);
    };
    let Some(target) = schema.find(name) else {
        return Ok(None);
    };
    let Some(field) = target.field(field_name) else {
        return Ok(None);
    };
    match &field.kind {
        FieldKind::Relation { collection_id, .. }
            if *collection_id == current.id || *collection_id == current.name =>
        {
            Ok(Some((target, field)))
        }
        _ => Err(RuleError::Resolve(format!(
            "invalid back-relation {segment:?}"
        ))),
    }
}

/// Walks a JSON value by path segments (numeric segments index arrays).
pub(crate) fn json_walk<'v>(value: &'v Value, path: &[String]) -> Option<&'v Value> {
    let mut current = value;
    for segment in path {
        current = match current {
            Value::Object(map) => map.get(segment)?,
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// A `json_extract` path for the segments, as a bound parameter value.
pub(crate) fn json_path(path: &[String]) -> String {
    let mut out = String::from("$");
    for segment in path {
        if !segment.is_empty() && segment.chars().all(|c| c.is_ascii_digit()) {
            out.push('[');
            out.push_str(segment);
            out.push(']');
        } else {
            out.push_str(".\"");
            out.push_str(segment);
            out.push('"');
        }
    }
    out
}

/// The result of resolving a `@request.*` or macro identifier.
#[derive(Debug, Clone)]
pub(crate) enum RequestValue<'s> {
    /// One value (modifiers `:isset`, `:length`, `:lower` already applied).
    Value(SqlValue),
    /// `:each` over a submitted list.
    List(Vec<SqlValue>),
    /// `:changed`: the submitted value (if any) to compare with the stored field.
    Changed {
        /// `None` when the key was not submitted.
        submitted: Option<SqlValue>,
        /// The field of the current collection.
        field: &'s FieldInfo,
    },
    /// A relation path starting at submitted/auth ids: needs the database.
    Hop {
        /// Target collection of the relation.
        target: &'s CollectionInfo,
        /// The relation ids.
        ids: Vec<String>,
        /// Remaining path inside `target`.
        rest: Vec<String>,
    },
}

fn json_ids(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) if !s.is_empty() => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// A submitted value as the field will hold it, so `@request.body.*` compares the same for
/// JSON and form bodies (the reference casts submitted values per field, measured: `"true"`,
/// `"t"`, `1` are `true` for a bool field; `7` is `"7"` for a text field).
fn coerce_body_value(value: &Value, field: Option<&FieldInfo>) -> Value {
    match (field.map(|f| &f.kind), value) {
        (Some(FieldKind::Bool), Value::Bool(_)) => value.clone(),
        (Some(FieldKind::Bool), Value::Number(n)) => {
            Value::Bool(n.as_f64().is_some_and(|n| n != 0.0))
        }
        (Some(FieldKind::Bool), Value::String(s)) => Value::Bool(matches!(
            s.as_str(),
            "1" | "t" | "T" | "TRUE" | "true" | "True"
        )),
        (Some(FieldKind::Bool), _) => Value::Bool(false),
        (
            Some(
                FieldKind::Text
                | FieldKind::Email
                | FieldKind::Url
                | FieldKind::Editor
                | FieldKind::Date
                | FieldKind::Autodate,
            ),
            Value::Number(n),
        ) => Value::String(n.to_string()),
        (Some(FieldKind::Number), Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or(Value::from(0)),
        _ => value.clone(),
    }
}

/// Resolves identifiers whose root is a macro or `@request.*`.
pub(crate) fn request_value<'s>(
    ident: &Ident,
    schema: &'s dyn Schema,
    collection: &'s CollectionInfo,
    req: &RequestInfo,
) -> Result<RequestValue<'s>, RuleError> {
    let modifier = ident.modifier;
    let path = &ident.path;
    let bad_modifier = |m: Modifier| {
        RuleError::Resolve(format!(
            "modifier :{} is not supported on {ident}",
            m.name()
        ))
    };
    // (value present?, json value, field of the path's first segment)
    let (present, json, field): (bool, Option<Value>, Option<&'s FieldInfo>) = match &ident.root {
        Root::Macro(m) => {
            if let Some(modifier) = modifier {
                return Err(bad_modifier(modifier));
            }
            return Ok(RequestValue::Value(macro_value(*m, req.now)));
        }
        Root::RequestMethod => (true, Some(Value::from(req.method.clone())), None),
        Root::RequestContext => (true, Some(Value::from(req.context.clone())), None),
        Root::RequestQuery | Root::RequestHeaders => {
            let map = if ident.root == Root::RequestQuery {
                &req.query
            } else {
                &req.headers
            };
            let found = if path.len() == 1 {
                map.get(&path[0])
            } else {
                None
            };
            (found.is_some(), found.map(|v| Value::from(v.clone())), None)
        }
        Root::RequestBody => {
            let field = collection.field(&path[0]);
            let found = req.body.get(&path[0]);
            let json = found.map(|v| coerce_body_value(v, field));
            (found.is_some(), json, field)
        }
        Root::RequestAuth => match &req.auth {
            None => (false, None, None),
            Some(auth) => {
                let home = schema.find(&auth.collection_id);
                let field = home.and_then(|c| c.field(&path[0]));
                let json = match path[0].as_str() {
                    "collectionId" => Some(Value::from(auth.collection_id.clone())),
                    "collectionName" => Some(Value::from(auth.collection_name.clone())),
                    key => auth.record.get(key).cloned(),
                };
                (json.is_some(), json, field)
            }
        },
        Root::Field | Root::Collection { .. } => {
            return Err(RuleError::Resolve(format!(
                "{ident} is not a request value"
            )))
        }
    };
    if modifier == Some(Modifier::Isset) {
        let is_request_key = matches!(
            ident.root,
            Root::RequestBody | Root::RequestQuery | Root::RequestHeaders
        ) || path.len() <= 1;
        if !is_request_key || path.len() > 1 {
            return Err(bad_modifier(Modifier::Isset));
        }
        return Ok(RequestValue::Value(SqlValue::Int(i64::from(present))));
    }
    if modifier == Some(Modifier::Changed) {
        if ident.root != Root::RequestBody || path.len() != 1 {
            return Err(bad_modifier(Modifier::Changed));
        }
        let field = collection.field(&path[0]).ok_or_else(|| {
            RuleError::Resolve(format!("unknown field {:?} for :changed", path[0]))
        })?;
        let submitted = json.as_ref().map(SqlValue::from_json);
        return Ok(RequestValue::Changed { submitted, field });
    }
    // Deeper paths: relations (need the database) or JSON values.
    if path.len() > 1 {
        if let (Some(field), Some(json)) = (field, json.as_ref()) {
            if let FieldKind::Relation { collection_id, .. } = &field.kind {
                let target = schema.find(collection_id.as_str()).ok_or_else(|| {
                    RuleError::Resolve(format!("missing relation collection {collection_id:?}"))
                })?;
                return Ok(RequestValue::Hop {
                    target,
                    ids: json_ids(json),
                    rest: path[1..].to_vec(),
                });
            }
        }
        let walked = json.as_ref().and_then(|j| json_walk(j, &path[1..]));
        return finish(walked.cloned(), modifier, &bad_modifier);
    }
    finish(json, modifier, &bad_modifier)
}

fn finish<'s>(
    json: Option<Value>,
    modifier: Option<Modifier>,
    bad_modifier: &dyn Fn(Modifier) -> RuleError,
) -> Result<RequestValue<'s>, RuleError> {
    let json = json.unwrap_or(Value::Null);
    match modifier {
        None => Ok(RequestValue::Value(SqlValue::from_json(&json))),
        Some(Modifier::Lower) => Ok(RequestValue::Value(sql_lower(SqlValue::from_json(&json)))),
        Some(Modifier::Length) => Ok(RequestValue::Value(SqlValue::Int(match &json {
            Value::Array(items) => items.len() as i64,
            Value::Null => 0,
            _ => 1,
        }))),
        Some(Modifier::Each) => Ok(RequestValue::List(match &json {
            Value::Array(items) => items.iter().map(SqlValue::from_json).collect(),
            Value::Null => Vec::new(),
            other => vec![SqlValue::from_json(other)],
        })),
        Some(other) => Err(bad_modifier(other)),
    }
}

/// Quotes a schema name as an SQL identifier.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Great-circle (haversine) distance in km between two lon/lat points, R = 6371.
pub(crate) fn geo_distance_km(lon_a: f64, lat_a: f64, lon_b: f64, lat_b: f64) -> f64 {
    let (phi_a, phi_b) = (lat_a.to_radians(), lat_b.to_radians());
    let d_phi = (lat_b - lat_a).to_radians();
    let d_lambda = (lon_b - lon_a).to_radians();
    let h =
        (d_phi / 2.0).sin().powi(2) + phi_a.cos() * phi_b.cos() * (d_lambda / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().min(1.0).asin()
}
