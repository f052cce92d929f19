//! Reads: list (filter, sort, paging, total) and view, with the rule compiled into SQL.
//!
//! 1. Reads run on the read pool with the rule compiled into the query; a locked rule is a
//!    403 for non-superusers before anything else is parsed.
//! 2. `filter` and `sort` go through the one rules resolver, with the same statuses.
//! 3. A list page is read in one read transaction together with the projection's log
//!    position (`ListPage::position`, the `X-Pocketlog-Position` header): the page reflects
//!    exactly the commits up to it, so a realtime subscription from that position continues
//!    it with nothing missed and nothing twice.
//! 4. A list whose plan sorts every matching row anyway counts the total in the same scan
//!    (`engine::ReadConn::query_counted`); otherwise a separate COUNT query.

use super::present::present;
use super::superusers_only;
use crate::access::{self, is_superuser, Auth, RequestData, Where, MAIN};
use crate::error::{ApiError, ApiResult};
use crate::model::record::from_row;
use crate::model::schema::Rule;
use crate::model::schema::RuleKind;
use crate::model::{Collection, Schema};
use crate::read::read_short;
use crate::request::{paging, Paging, Query};
use crate::state::AppState;
use engine::{Seq, Value as SqlValue};
use serde_json::{Map, Value};
use std::sync::Arc;

/// Compiles a client `filter` and a rule into a WHERE for `collection`.
pub(crate) fn build_where(
    schema: &Schema,
    collection: &Collection,
    auth: Option<&Auth>,
    rule: Option<&Rule>,
    filter: Option<&str>,
    data: &RequestData,
) -> ApiResult<Where> {
    let info = access::request_info(auth, data);
    let mut clause = Where::default();
    if let Some(Rule::Expr(expr)) = rule {
        if !is_superuser(auth) {
            clause.add(schema, collection, expr, &info, false)?;
        }
    }
    if let Some(filter) = filter.filter(|f| !f.trim().is_empty()) {
        let expr = rules::parse(filter).map_err(access::rule_error)?;
        clause.add(schema, collection, &expr, &info, !is_superuser(auth))?;
    }
    Ok(clause)
}

/// The SQL and parameters that load records matching a WHERE (with optional order/limit).
fn records_sql(
    collection: &Collection,
    clause: &Where,
    order: &str,
    limit: Option<(i64, i64)>,
) -> (String, Vec<SqlValue>) {
    let mut params = clause.engine_params();
    let group = if clause.distinct {
        format!("GROUP BY {MAIN}.id")
    } else {
        String::new()
    };
    let limit_sql = match limit {
        Some((limit, offset)) => {
            params.push(SqlValue::Int(limit));
            params.push(SqlValue::Int(offset));
            format!("LIMIT ?{} OFFSET ?{}", params.len() - 1, params.len())
        }
        None => String::new(),
    };
    let sql = format!(
        "SELECT {MAIN}.* FROM {} {MAIN} {} {} {group} {order} {limit_sql}",
        engine::quote_ident(&collection.name),
        clause.joins_sql(),
        clause.where_sql(),
    );
    (sql, params)
}

/// Loads records matching a WHERE (with optional order/limit).
pub(crate) async fn query_records(
    state: &Arc<AppState>,
    collection: &Arc<Collection>,
    clause: &Where,
    order: &str,
    limit: Option<(i64, i64)>,
) -> ApiResult<Vec<Map<String, Value>>> {
    let (sql, params) = records_sql(collection, clause, order, limit);
    // Bounded lookups (by id, no joins) run inline when a connection is idle.
    let short = clause.joins.is_empty() && order.is_empty() && limit.is_none_or(|(n, _)| n <= 1);
    let rows = if short {
        read_short(state, move |conn| conn.query(&sql, &params)).await?
    } else {
        state.read(move |conn| conn.query(&sql, &params)).await?
    };
    Ok(rows
        .rows
        .iter()
        .map(|row| from_row(collection, &rows.columns, row))
        .collect())
}

/// [`query_records`] in one read transaction, with the log position it was read at.
async fn query_records_at(
    state: &Arc<AppState>,
    collection: &Arc<Collection>,
    clause: &Where,
    order: &str,
    limit: Option<(i64, i64)>,
) -> ApiResult<(Seq, Vec<Map<String, Value>>)> {
    let (sql, params) = records_sql(collection, clause, order, limit);
    let (position, rows) = state
        .read(move |conn| conn.at_position(|conn| conn.query(&sql, &params)))
        .await?;
    let records = rows
        .rows
        .iter()
        .map(|row| from_row(collection, &rows.columns, row))
        .collect();
    Ok((position, records))
}

/// One page of a list: the presented items, the paging it was read with, and the total
/// (`None` with `skipTotal`).
pub struct ListPage {
    /// The presented records (visibility and `expand` applied; `fields` is the caller's).
    pub items: Vec<Value>,
    /// The paging parameters, as normalized.
    pub paging: Paging,
    /// Matching records in all pages (`None` when skipped).
    pub total: Option<i64>,
    /// The log position the page was read at: it reflects every commit up to this seq and
    /// none after it (the total is counted in a read of its own).
    pub position: Seq,
}

/// Lists `collection` for the caller (`GET /api/collections/{c}/records`): the listRule
/// lock first (403), then `page`/`perPage`/`skipTotal`, `filter`, `sort` and `expand` of
/// `query`, in that order (each a 400 when malformed).
pub async fn list(
    state: &Arc<AppState>,
    schema: &Schema,
    collection: &Arc<Collection>,
    auth: Option<&Auth>,
    query: &Query,
    data: &RequestData,
) -> ApiResult<ListPage> {
    let rule = schema.rule(&collection.id, RuleKind::List);
    if matches!(rule, Rule::Locked) && !is_superuser(auth) {
        return Err(superusers_only());
    }
    let paging = paging(query)?;
    let filter = query.get("filter").map(String::as_str);
    if filter.is_some_and(|f| f.len() > rules::FILTER_CHARS_MAX) {
        return Err(ApiError::bad_request_default());
    }
    let clause = build_where(schema, collection, auth, Some(&rule), filter, data)?;
    // The count runs without the sort's parameters (their placeholders are not in it).
    let count_clause = clause.clone();
    let mut clause = clause;
    // A present but blank `sort` is a 400 (the reference's); only an empty one means none.
    let order = match query.get("sort").filter(|s| !s.is_empty()) {
        Some(sort) => {
            // One resolver for filter and sort: relation paths and every access check (with
            // the same statuses) go through the rules compiler, for views too.
            let items = rules::parse_sort(sort).map_err(access::rule_error)?;
            if collection.is_view()
                && items
                    .iter()
                    .any(|item| matches!(item, rules::SortItem::RowId { .. }))
            {
                // A view has no rowid: 400, as on the reference (measured).
                return Err(ApiError::bad_request_default());
            }
            let info = access::request_info(auth, data);
            let coll_info = schema
                .info(&collection.id)
                .ok_or_else(|| ApiError::internal("collection missing from the schema"))?;
            let options = rules::CompileOptions {
                client_filter: !is_superuser(auth),
            };
            let body = rules::compile_sort(
                &items,
                schema,
                coll_info,
                MAIN,
                &info,
                &mut clause.params,
                &options,
            )
            .map_err(access::rule_error)?;
            if body.is_empty() {
                String::new()
            } else {
                format!("ORDER BY {body}")
            }
        }
        None if collection.is_view() => String::new(),
        None => format!("ORDER BY {MAIN}.rowid"),
    };
    let offset = (paging.page - 1).saturating_mul(paging.per_page);
    // One scan for the page and the total when the plan sorts every matching row anyway
    // (a filter on one table, a sort no index serves): the count is taken by a function
    // in the page query's WHERE (see `engine::ReadConn::query_counted`); otherwise, or when
    // SQLite's plan could stop early, a separate COUNT query as before.
    let (counted_page, counted_total) = if !paging.skip_total
        && !collection.is_view()
        && !clause.distinct
        && clause.joins.is_empty()
        && !clause.conditions.is_empty()
        && !order.is_empty()
    {
        let mut params = clause.engine_params();
        params.push(SqlValue::Int(paging.per_page));
        params.push(SqlValue::Int(offset));
        let conditions = clause.conditions.join(" AND ");
        let table = engine::quote_ident(&collection.name);
        let tail = format!(
            "{order} LIMIT ?{} OFFSET ?{}",
            params.len() - 1,
            params.len()
        );
        let plain = format!("SELECT {MAIN}.* FROM {table} {MAIN} WHERE {conditions} {tail}");
        let sql = format!(
            "SELECT {MAIN}.* FROM {table} {MAIN} WHERE {conditions} AND {}(CASE WHEN {conditions} THEN 1 ELSE 0 END) {tail}",
            engine::ROW_COUNTER_FN,
        );
        let (position, (rows, total)) = state
            .read(move |conn| conn.at_position(|conn| conn.query_counted(&sql, &plain, &params)))
            .await?;
        (Some((position, rows)), total)
    } else {
        (None, None)
    };
    let total = if paging.skip_total {
        None
    } else if counted_total.is_some() {
        counted_total
    } else {
        let params = count_clause.engine_params();
        // Without joins every row is one record: a plain count avoids DISTINCT's temp b-tree.
        let counted = if count_clause.distinct || !count_clause.joins.is_empty() {
            format!("COUNT(DISTINCT {MAIN}.id)")
        } else {
            "COUNT(*)".to_string()
        };
        let sql = format!(
            "SELECT {counted} FROM {} {MAIN} {} {}",
            engine::quote_ident(&collection.name),
            count_clause.joins_sql(),
            count_clause.where_sql()
        );
        let rows = state.read(move |conn| conn.query(&sql, &params)).await?;
        Some(rows.rows.first().and_then(|r| r[0].as_i64()).unwrap_or(0))
    };
    let (position, records): (Seq, Vec<Map<String, Value>>) = match counted_page {
        Some((position, rows)) => (
            position,
            rows.rows
                .iter()
                .map(|row| from_row(collection, &rows.columns, row))
                .collect(),
        ),
        None => {
            query_records_at(
                state,
                collection,
                &clause,
                &order,
                Some((paging.per_page, offset)),
            )
            .await?
        }
    };
    let items = present(
        state,
        auth,
        collection,
        records,
        query.get("expand").map(String::as_str),
    )
    .await?;
    Ok(ListPage {
        items,
        paging,
        total,
        position,
    })
}

/// Reads record `id` of `collection` for the caller (`GET /api/collections/{c}/records/{id}`):
/// 403 when the viewRule is locked for a non-superuser, 404 when the record does not exist
/// or the rule hides it. The record is returned in full (not yet presented).
pub async fn view(
    state: &Arc<AppState>,
    schema: &Schema,
    collection: &Arc<Collection>,
    auth: Option<&Auth>,
    id: String,
    data: &RequestData,
) -> ApiResult<Map<String, Value>> {
    let rule = schema.rule(&collection.id, RuleKind::View);
    if matches!(rule, Rule::Locked) && !is_superuser(auth) {
        return Err(superusers_only());
    }
    let mut clause = build_where(schema, collection, auth, Some(&rule), None, data)?;
    clause.add_eq("id", SqlValue::Text(id));
    let mut records = query_records(state, collection, &clause, "", Some((1, 0))).await?;
    records.pop().ok_or_else(ApiError::not_found)
}

/// The record of the auth collection `collection` whose `email` is `email` (compared
/// case-insensitively, as the reference), if any; the stored row, no access rules.
pub async fn find_by_email(
    state: &Arc<AppState>,
    collection: &Collection,
    email: &str,
) -> ApiResult<Option<Map<String, Value>>> {
    let sql = format!(
        "SELECT * FROM {} WHERE email = ?1 COLLATE NOCASE LIMIT 1",
        engine::quote_ident(&collection.name)
    );
    let params = vec![engine::Value::Text(email.to_string())];
    let rows = state.read(move |conn| conn.query(&sql, &params)).await?;
    Ok(rows
        .rows
        .first()
        .map(|row| crate::model::record::from_row(collection, &rows.columns, row)))
}
