//! The read-only SQL console behind `POST /api/sql` (superusers), in the reference's answer
//! shape (v0.40.6): `{"execTime":ms,"affectedRows":0,"columns":[{"name","type","nullable":true}],
//! "rows":[[…]]}` with every non-NULL value as a string and `type` the declared column type
//! (empty for expressions).
//!
//! Invariants:
//! - Only one statement runs, and only when SQLite reports it read-only
//!   (`sqlite3_stmt_readonly`) on a read-only pooled connection; writes must go through the
//!   log, so anything else is refused before it runs (the reference runs writes too).
//! - Statements that would change the pooled connection itself are refused too: `ATTACH`,
//!   `DETACH` and every `PRAGMA` outside [`READ_PRAGMAS`].
//! - A statement runs at most [`SQL_TIMEOUT`] (or the shorter `--queryTimeout`) and answers
//!   at most [`SQL_MAX_ROWS`] rows; a capped answer carries `"truncated":true`.

use crate::error::{field_error, ApiError, ApiResult};
use crate::state::AppState;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest a console statement may run.
pub const SQL_TIMEOUT: Duration = Duration::from_secs(10);
/// The most rows one answer carries.
pub const SQL_MAX_ROWS: usize = 10_000;
/// The longest accepted query text, in bytes.
pub const SQL_MAX_BYTES: usize = 100_000;
/// Introspection pragmas the console runs (they only read).
pub const READ_PRAGMAS: &[&str] = &[
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "database_list",
    "collation_list",
    "function_list",
    "pragma_list",
    "compile_options",
    "integrity_check",
    "quick_check",
    "page_count",
    "page_size",
    "freelist_count",
    "user_version",
    "schema_version",
    "journal_mode",
];

/// The reference's prefix of a failed statement's message.
const FAILED: &str = "Failed to execute query. Raw error:\n";

/// Runs `body.query` on a read connection; the API answer.
pub async fn run(state: &Arc<AppState>, body: &Map<String, Value>) -> ApiResult<Value> {
    let query = body
        .get("query")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim()
        .to_string();
    if query.is_empty() {
        let mut data = Map::new();
        data.insert(
            "query".into(),
            field_error("validation_required", "Cannot be blank.", None),
        );
        return Err(ApiError::validation(
            "An error occurred while validating the submitted data.",
            data,
        ));
    }
    if query.len() > SQL_MAX_BYTES {
        return Err(failed(&format!(
            "the query is longer than {SQL_MAX_BYTES} bytes"
        )));
    }
    if let Some(why) = refused(&query) {
        return Err(failed(why));
    }
    let timeout = state
        .options
        .query_timeout
        .map_or(SQL_TIMEOUT, |configured| configured.min(SQL_TIMEOUT));
    let started = Instant::now();
    let state = Arc::clone(state);
    let text = query.clone();
    let result = tokio::task::spawn_blocking(move || {
        state
            .engine
            .read(|conn| conn.within(timeout, |conn| conn.console(&text, SQL_MAX_ROWS)))
    })
    .await
    .map_err(ApiError::internal)?;
    let console = match result {
        Ok(Some(console)) => console,
        Ok(None) => {
            return Err(failed(
                "only read-only statements run here; writes go through the API (the log)",
            ))
        }
        Err(engine::Error::QueryTimeout(limit)) => {
            return Err(failed(&format!(
                "the query ran longer than {limit:?} and was stopped"
            )))
        }
        Err(engine::Error::Sqlite(message)) => return Err(failed(&message)),
        Err(other) => return Err(ApiError::from(other)),
    };
    tracing::info!(query = %query, rows = console.rows.len(), "SQL console query");
    let columns: Vec<Value> = console
        .columns
        .iter()
        .map(|(name, declared)| json!({"name": name, "type": declared, "nullable": true}))
        .collect();
    let rows: Vec<Value> = console
        .rows
        .into_iter()
        .map(|row| Value::Array(row.into_iter().map(text_of).collect()))
        .collect();
    let mut answer = json!({
        "execTime": started.elapsed().as_millis() as u64,
        "affectedRows": 0,
        "columns": columns,
        "rows": rows,
    });
    if console.truncated {
        answer["truncated"] = json!(true);
    }
    Ok(answer)
}

fn failed(reason: &str) -> ApiError {
    ApiError::bad_request(&format!("{FAILED}{reason}."))
}

/// A value as the reference prints it: text for everything but NULL.
fn text_of(value: engine::Value) -> Value {
    match value {
        engine::Value::Null => Value::Null,
        engine::Value::Int(int) => Value::String(int.to_string()),
        engine::Value::Real(real) => Value::String(real.to_string()),
        engine::Value::Text(text) => Value::String(text),
    }
}

/// Why a statement is refused before SQLite sees it (more than one statement, or one that
/// would change the pooled connection).
fn refused(query: &str) -> Option<&'static str> {
    if has_second_statement(query) {
        return Some("only one statement at a time");
    }
    let text = skip_comments(query);
    let keyword: String = text
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_lowercase();
    match keyword.as_str() {
        "attach" | "detach" => Some("ATTACH and DETACH are not allowed"),
        "pragma" => {
            let rest = skip_comments(&text["pragma".len()..]);
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
                .collect::<String>()
                .to_ascii_lowercase();
            let name = name.rsplit('.').next().unwrap_or("");
            let assigns = rest[..].contains('=');
            (!READ_PRAGMAS.contains(&name) || assigns)
                .then_some("only introspection pragmas run here (e.g. table_info)")
        }
        _ => None,
    }
}

/// Whether something other than comments and `;` follows the first top-level `;` (outside
/// quotes, identifiers and comments).
fn has_second_statement(query: &str) -> bool {
    let bytes = query.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        let close = match bytes[index] {
            b'\'' => Some(b'\''),
            b'"' => Some(b'"'),
            b'`' => Some(b'`'),
            b'[' => Some(b']'),
            _ => None,
        };
        if let Some(close) = close {
            index += 1;
            while index < bytes.len() && bytes[index] != close {
                index += 1;
            }
        } else if bytes[index..].starts_with(b"--") {
            while index < bytes.len() && bytes[index] != b'\n' {
                index += 1;
            }
        } else if bytes[index..].starts_with(b"/*") {
            index = query[index + 2..]
                .find("*/")
                .map_or(bytes.len(), |end| index + 2 + end + 1);
        } else if bytes[index] == b';' {
            let mut rest = &query[index + 1..];
            loop {
                rest = skip_comments(rest);
                match rest.strip_prefix(';') {
                    Some(after) => rest = after,
                    None => return !rest.is_empty(),
                }
            }
        }
        index += 1;
    }
    false
}

/// `text` without leading whitespace and SQL comments.
fn skip_comments(mut text: &str) -> &str {
    loop {
        text = text.trim_start();
        if let Some(rest) = text.strip_prefix("--") {
            text = rest.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(rest) = text.strip_prefix("/*") {
            text = rest.split_once("*/").map_or("", |(_, after)| after);
        } else {
            return text;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_changing_statements_are_refused() {
        for bad in [
            "ATTACH '/etc/x.db' AS x",
            " -- c\n detach x",
            "/* c */ PRAGMA query_only = 0",
            "pragma query_only(0)",
            "PRAGMA mmap_size=0",
            "PRAGMA main.user_version = 3",
            "select 1; delete from users",
            "select ';' ; select 2",
        ] {
            assert!(refused(bad).is_some(), "{bad}");
        }
        for good in [
            "SELECT 1",
            "with x as (select 1) select * from x",
            "PRAGMA table_info(users)",
            "pragma main.index_list('users')",
            "PRAGMA user_version",
            "select ';', \"a;b\", [c;d], `e;f` -- x; y",
            "select 1; -- trailing\n ; /* done; */",
            "select '--' /* ; */ from x",
            "select 'é;ü' as ö -- ñ",
        ] {
            assert_eq!(refused(good), None, "{good}");
        }
    }
}
