//! The logs API (superusers only): `GET /api/logs`, `GET /api/logs/stats`,
//! `GET /api/logs/{id}`, `DELETE /api/logs`, over `auxiliary.db` (see `request_log.rs`).
//!
//! 1. `filter` and `sort` use the ordinary filter language, compiled by the rules compiler
//!    against a synthetic `_logs` collection (`id`, `created`, `level`, `message`, `data` as
//!    JSON, so `data.status >= 400` works) — user text reaches SQL only as bound parameters.
//! 2. Each request opens its own connection to `auxiliary.db` off the async runtime; a missing
//!    file is an empty log.
//! 3. A bad filter or sort is 400 `Invalid filter format.` / the rules' message.

use super::common::{json_response, list_envelope, no_content, paging, Query};
use crate::error::{ApiError, ApiResult};
use crate::extract::Superuser;
use crate::request_log;
use crate::state::AppState;
use axum::extract::{Path, Query as QueryExtract, State};
use axum::response::Response;
use rusqlite::Connection;
use serde_json::{json, Value};
use std::sync::Arc;

struct LogsSchema(rules::CollectionInfo);

impl rules::Schema for LogsSchema {
    fn find(&self, name_or_id: &str) -> Option<&rules::CollectionInfo> {
        (name_or_id == self.0.id || name_or_id == self.0.name).then_some(&self.0)
    }
    fn all(&self) -> Vec<&rules::CollectionInfo> {
        vec![&self.0]
    }
}

fn logs_schema() -> LogsSchema {
    let field = |name: &str, kind: rules::FieldKind| rules::FieldInfo {
        name: name.into(),
        kind,
        hidden: false,
    };
    LogsSchema(rules::CollectionInfo {
        id: "_logs".into(),
        name: "_logs".into(),
        kind: rules::CollectionKind::Base,
        fields: vec![
            field("id", rules::FieldKind::Text),
            field("created", rules::FieldKind::Date),
            field("level", rules::FieldKind::Number),
            field("message", rules::FieldKind::Text),
            field("data", rules::FieldKind::Json),
        ],
        list_rule: None,
    })
}

/// A compiled `WHERE` (with joins) and `ORDER BY` plus their parameters.
struct Compiled {
    joins: String,
    where_sql: String,
    order_sql: String,
    params: Vec<rusqlite::types::Value>,
}

fn invalid_filter() -> ApiError {
    ApiError::bad_request("Invalid filter format.")
}

fn compile(filter: Option<&str>, sort: Option<&str>) -> ApiResult<Compiled> {
    let schema = logs_schema();
    let request = rules::RequestInfo::guest(chrono::Utc::now());
    let options = rules::CompileOptions::default();
    let mut params = rules::Params::new();
    let (mut joins, mut where_sql) = (String::new(), "1=1".to_string());
    if let Some(text) = filter.map(str::trim).filter(|text| !text.is_empty()) {
        let expr = rules::parse(text).map_err(|_| invalid_filter())?;
        let compiled = rules::compile(
            &expr,
            &schema,
            &schema.0,
            "main",
            &request,
            &mut params,
            &options,
        )
        .map_err(|_| invalid_filter())?;
        joins = compiled.joins.join(" ");
        where_sql = compiled.where_sql;
    }
    let mut order_sql = "main.created DESC, main.rowid DESC".to_string();
    if let Some(text) = sort.map(str::trim).filter(|text| !text.is_empty()) {
        let items = rules::parse_sort(text).map_err(crate::access::rule_error)?;
        let compiled = rules::compile_sort(
            &items,
            &schema,
            &schema.0,
            "main",
            &request,
            &mut params,
            &options,
        )
        .map_err(crate::access::rule_error)?;
        if !compiled.trim().is_empty() {
            order_sql = format!("{compiled}, main.rowid DESC");
        }
    }
    let params = params
        .as_slice()
        .iter()
        .map(|value| match value {
            rules::SqlValue::Null => rusqlite::types::Value::Null,
            rules::SqlValue::Int(int) => rusqlite::types::Value::Integer(*int),
            rules::SqlValue::Real(real) => rusqlite::types::Value::Real(*real),
            rules::SqlValue::Text(text) => rusqlite::types::Value::Text(text.clone()),
        })
        .collect();
    Ok(Compiled {
        joins,
        where_sql,
        order_sql,
        params,
    })
}

/// Runs `f` on a fresh connection to `auxiliary.db`, off the async runtime.
async fn with_db<T: Send + 'static>(
    state: &Arc<AppState>,
    f: impl FnOnce(&Connection) -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    let path = state.logs.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let conn = request_log::open(&path).map_err(ApiError::internal)?;
        register_sql_functions(&conn).map_err(ApiError::internal)?;
        f(&conn)
    })
    .await
    .map_err(ApiError::internal)?
}

/// Registers the engine's SQL functions (which rules may compile to) on the logs database.
fn register_sql_functions(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    for function in engine::SQL_FUNCTIONS {
        conn.create_scalar_function(function.name, function.arity as i32, flags, move |ctx| {
            let args = (0..ctx.len())
                .map(|index| ctx.get::<Option<f64>>(index))
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(function.eval(&args))
        })?;
    }
    Ok(())
}

fn row_json(row: &rusqlite::Row<'_>) -> rusqlite::Result<Value> {
    let data: String = row.get(3)?;
    Ok(json!({
        "id": row.get::<_, String>(0)?,
        "created": row.get::<_, String>(4)?,
        "data": serde_json::from_str::<Value>(&data).unwrap_or_else(|_| json!({})),
        "message": row.get::<_, String>(2)?,
        "level": row.get::<_, i64>(1)?,
    }))
}

const COLUMNS: &str = "main.id, main.level, main.message, main.data, main.created";

/// `GET /api/logs`
pub async fn logs_list(
    State(state): State<Arc<AppState>>,
    QueryExtract(query): QueryExtract<Query>,
    _superuser: Superuser,
) -> ApiResult<Response> {
    let paging = paging(&query)?;
    let compiled = compile(
        query.get("filter").map(String::as_str),
        query.get("sort").map(String::as_str),
    )?;
    let (items, total) = with_db(&state, move |conn| {
        let from = format!(
            "FROM _logs main {} WHERE {}",
            compiled.joins, compiled.where_sql
        );
        let sql = format!(
            "SELECT {COLUMNS} {from} ORDER BY {} LIMIT {} OFFSET {}",
            compiled.order_sql,
            paging.per_page,
            (paging.page - 1).saturating_mul(paging.per_page)
        );
        let mut statement = conn.prepare(&sql).map_err(|_| invalid_filter())?;
        let items = statement
            .query_map(rusqlite::params_from_iter(compiled.params.iter()), row_json)
            .and_then(Iterator::collect::<rusqlite::Result<Vec<Value>>>)
            .map_err(|_| invalid_filter())?;
        let total = if paging.skip_total {
            None
        } else {
            // The sort's parameters come after the filter's; COUNT binds only what it uses.
            let count_sql = format!("SELECT COUNT(*) {from}");
            let mut statement = conn.prepare(&count_sql).map_err(|_| invalid_filter())?;
            let used = statement.parameter_count();
            let total: i64 = statement
                .query_row(
                    rusqlite::params_from_iter(compiled.params.iter().take(used)),
                    |row| row.get(0),
                )
                .map_err(|_| invalid_filter())?;
            Some(total)
        };
        Ok((items, total))
    })
    .await?;
    Ok(json_response(&query, list_envelope(items, paging, total)))
}

/// `GET /api/logs/{id}`
pub async fn logs_view(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    QueryExtract(query): QueryExtract<Query>,
    _superuser: Superuser,
) -> ApiResult<Response> {
    let item = with_db(&state, move |conn| {
        let sql = format!("SELECT {COLUMNS} FROM _logs main WHERE main.id = ?1");
        match conn.query_row(&sql, [id], row_json) {
            Ok(item) => Ok(item),
            Err(rusqlite::Error::QueryReturnedNoRows) => Err(ApiError::not_found()),
            Err(err) => Err(ApiError::internal(err)),
        }
    })
    .await?;
    Ok(json_response(&query, item))
}

/// `GET /api/logs/stats?filter=`: hourly counts.
pub async fn logs_stats(
    State(state): State<Arc<AppState>>,
    QueryExtract(query): QueryExtract<Query>,
    _superuser: Superuser,
) -> ApiResult<Response> {
    let compiled = compile(query.get("filter").map(String::as_str), None)?;
    let stats = with_db(&state, move |conn| {
        let sql = format!(
            "SELECT strftime('%Y-%m-%d %H:00:00', main.created) AS bucket, COUNT(*) \
             FROM _logs main {} WHERE {} GROUP BY bucket ORDER BY bucket",
            compiled.joins, compiled.where_sql
        );
        let mut statement = conn.prepare(&sql).map_err(|_| invalid_filter())?;
        let used = statement.parameter_count();
        let rows = statement
            .query_map(
                rusqlite::params_from_iter(compiled.params.iter().take(used)),
                |row| {
                    let bucket: Option<String> = row.get(0)?;
                    let total: i64 = row.get(1)?;
                    Ok(json!({"date": format!("{}.000Z", bucket.unwrap_or_default()), "total": total}))
                },
            )
            .and_then(Iterator::collect::<rusqlite::Result<Vec<Value>>>)
            .map_err(|_| invalid_filter())?;
        Ok(Value::Array(rows))
    })
    .await?;
    Ok(json_response(&query, stats))
}

/// `DELETE /api/logs`: removes every log row.
pub async fn logs_delete(
    State(state): State<Arc<AppState>>,
    _superuser: Superuser,
) -> ApiResult<Response> {
    with_db(&state, |conn| {
        conn.execute("DELETE FROM _logs", [])
            .map_err(ApiError::internal)?;
        Ok(())
    })
    .await?;
    Ok(no_content())
}
