//! Values and rows as they cross the engine boundary.
//!
//! The engine speaks SQLite's storage classes and nothing richer: JSON documents are `Text`,
//! booleans are `Int(0|1)`. The API maps its field types onto these.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One SQLite value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// 64-bit integer (also booleans).
    Int(i64),
    /// Double.
    Real(f64),
    /// UTF-8 text (also JSON documents and dates).
    Text(String),
}

impl Value {
    /// The text, when this is text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(text) => Some(text),
            _ => None,
        }
    }

    /// Integer view of the value (reals are truncated, text is parsed).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(int) => Some(*int),
            Value::Real(real) => Some(*real as i64),
            Value::Text(text) => text.parse().ok(),
            Value::Null => None,
        }
    }

    /// Float view of the value.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(int) => Some(*int as f64),
            Value::Real(real) => Some(*real),
            Value::Text(text) => text.parse().ok(),
            Value::Null => None,
        }
    }
}

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Value::Text(text.to_string())
    }
}
impl From<String> for Value {
    fn from(text: String) -> Self {
        Value::Text(text)
    }
}
impl From<i64> for Value {
    fn from(int: i64) -> Self {
        Value::Int(int)
    }
}
impl From<f64> for Value {
    fn from(real: f64) -> Self {
        Value::Real(real)
    }
}
impl From<bool> for Value {
    fn from(flag: bool) -> Self {
        Value::Int(i64::from(flag))
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(int) => ToSqlOutput::Borrowed(ValueRef::Integer(*int)),
            Value::Real(real) => ToSqlOutput::Borrowed(ValueRef::Real(*real)),
            Value::Text(text) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
        })
    }
}

impl Value {
    pub(crate) fn from_ref(value: rusqlite::types::ValueRef<'_>) -> Value {
        use rusqlite::types::ValueRef;
        match value {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(int) => Value::Int(int),
            ValueRef::Real(real) => Value::Real(real),
            ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
                Value::Text(String::from_utf8_lossy(bytes).into_owned())
            }
        }
    }
}

/// Result rows of a query: shared column names plus one value vector per row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    /// Column names, in select order.
    pub columns: Arc<[String]>,
    /// Row values, each as long as `columns`.
    pub rows: Vec<Vec<Value>>,
}

impl Rows {
    /// Index of a column by name.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|column| column == name)
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}
