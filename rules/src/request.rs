//! Per-request context (`@request.*` values and the clock) and SQL parameter values.
//!
//! Values are JSON as the API has them (record JSON form). Nothing here touches SQL text.
//!
//! Invariants:
//! 1. `Params` numbers placeholders `?1, ?2, ...` in push order, so fragments compiled with
//!    one `Params` compose into one statement.
//! 2. Header names in `headers` are normalised with [`RequestInfo::normalize_header_name`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthInfo {
    /// Auth collection id.
    pub collection_id: String,
    /// Auth collection name (`_superusers` for superusers).
    pub collection_name: String,
    /// The auth record in JSON form (hidden fields included).
    pub record: Map<String, Value>,
}

/// Everything a rule may read from the request.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestInfo {
    /// `None` for guests.
    pub auth: Option<AuthInfo>,
    /// Superusers bypass rules and client-filter restrictions.
    pub is_superuser: bool,
    /// `GET`, `POST`, `PATCH`, `DELETE`.
    pub method: String,
    /// `default`, `expand`, `realtime`, `protectedFile`, `batch`, `oauth2`, `otp`, `password`.
    pub context: String,
    /// Submitted body after modifiers (create/update).
    pub body: Map<String, Value>,
    /// First value of each URL query parameter.
    pub query: BTreeMap<String, String>,
    /// First value of each header, names normalised (`X-Custom` → `x_custom`).
    pub headers: BTreeMap<String, String>,
    /// The request's clock for the datetime macros.
    pub now: DateTime<Utc>,
}

impl RequestInfo {
    /// A guest `GET` in the `default` context at `now`.
    pub fn guest(now: DateTime<Utc>) -> RequestInfo {
        RequestInfo {
            auth: None,
            is_superuser: false,
            method: "GET".into(),
            context: "default".into(),
            body: Map::new(),
            query: BTreeMap::new(),
            headers: BTreeMap::new(),
            now,
        }
    }

    /// PocketBase's header key form: lower case, `-` replaced by `_`.
    pub fn normalize_header_name(name: &str) -> String {
        name.to_ascii_lowercase().replace('-', "_")
    }
}

/// A bound SQL parameter value.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    /// NULL
    Null,
    /// INTEGER
    Int(i64),
    /// REAL
    Real(f64),
    /// TEXT
    Text(String),
}

impl SqlValue {
    /// Converts a JSON value the way it is stored/compared: bool → 0/1, integral numbers →
    /// INTEGER, arrays/objects → compact JSON text.
    pub fn from_json(value: &Value) -> SqlValue {
        match value {
            Value::Null => SqlValue::Null,
            Value::Bool(b) => SqlValue::Int(i64::from(*b)),
            Value::Number(n) => match n.as_i64() {
                Some(i) => SqlValue::Int(i),
                None => SqlValue::from_f64(n.as_f64().unwrap_or(0.0)),
            },
            Value::String(s) => SqlValue::Text(s.clone()),
            other => SqlValue::Text(other.to_string()),
        }
    }

    /// INTEGER when `n` is integral and exactly representable, else REAL.
    pub fn from_f64(n: f64) -> SqlValue {
        if n.fract() == 0.0 && n.abs() < 9.0e15 {
            SqlValue::Int(n as i64)
        } else {
            SqlValue::Real(n)
        }
    }

    /// NULL or the empty text.
    pub(crate) fn is_empty(&self) -> bool {
        matches!(self, SqlValue::Null) || matches!(self, SqlValue::Text(t) if t.is_empty())
    }
}

/// Collects bound parameters for one statement.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params {
    values: Vec<SqlValue>,
}

impl Params {
    /// An empty list.
    pub fn new() -> Params {
        Params::default()
    }

    /// Adds a value and returns its placeholder (`?N`, 1-based).
    pub fn push(&mut self, value: SqlValue) -> String {
        self.values.push(value);
        format!("?{}", self.values.len())
    }

    /// Number of values pushed so far.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// `true` when nothing was pushed.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The values in placeholder order.
    pub fn as_slice(&self) -> &[SqlValue] {
        &self.values
    }

    /// The values in placeholder order.
    pub fn into_vec(self) -> Vec<SqlValue> {
        self.values
    }
}
