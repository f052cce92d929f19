//! Who is calling, and what the rules let them do: the bridge between HTTP requests and the
//! `rules` crate.
//!
//! 1. An invalid, expired or unknown token makes the request a guest request (never an error).
//!    The `Authorization` header is parsed exactly as the reference does
//!    (`auth::token::token_from_authorization`): a malformed header is a guest.
//! 2. Rules become SQL with bound parameters only; the main table is always aliased `main`.

use crate::auth::token;
use crate::error::{ApiError, ApiResult};
use crate::model::record::from_row;
use crate::model::{Collection, Schema, SUPERUSERS_ID};
use crate::state::AppState;
use axum::http::HeaderMap;
use engine::Value as SqlValue;
use serde_json::{Map, Value};
use std::sync::Arc;

/// The alias of the main table in every generated query.
pub const MAIN: &str = "main";

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Auth {
    /// The caller's collection.
    pub collection: Arc<Collection>,
    /// The caller's record (full JSON, hidden fields included).
    pub record: Map<String, Value>,
}

impl Auth {
    /// True for `_superusers` records.
    pub fn is_superuser(&self) -> bool {
        self.collection.id == SUPERUSERS_ID
    }
    /// Record id.
    pub fn id(&self) -> &str {
        self.record.get("id").and_then(Value::as_str).unwrap_or("")
    }
    /// The engine actor for commits made by this caller.
    pub fn actor(&self) -> engine::Actor {
        if self.is_superuser() {
            engine::Actor::Superuser(self.id().to_string())
        } else {
            engine::Actor::Record {
                collection_id: self.collection.id.clone(),
                id: self.id().to_string(),
            }
        }
    }
}

/// The actor of an optional caller (`Option<&Auth>`, or `&Option<Auth>` as a session holds it).
pub fn actor_of<'a>(auth: impl Into<Option<&'a Auth>>) -> engine::Actor {
    auth.into().map(Auth::actor).unwrap_or(engine::Actor::Guest)
}

/// True when the caller is a superuser (`Option<&Auth>`, or `&Option<Auth>`).
pub fn is_superuser<'a>(auth: impl Into<Option<&'a Auth>>) -> bool {
    auth.into().is_some_and(Auth::is_superuser)
}

/// Loads one record by id (full JSON).
pub async fn load_record(
    state: &Arc<AppState>,
    collection: &Arc<Collection>,
    id: &str,
) -> ApiResult<Option<Map<String, Value>>> {
    let sql = format!(
        "SELECT * FROM {} WHERE id = ?1",
        engine::quote_ident(&collection.name)
    );
    let id = id.to_string();
    // A primary-key lookup: run it on this thread when a pooled connection is idle.
    let rows =
        crate::read::read_short(state, move |conn| conn.query(&sql, &[SqlValue::Text(id)])).await?;
    Ok(rows
        .rows
        .first()
        .map(|row| from_row(collection, &rows.columns, row)))
}

/// Resolves the `Authorization` header to a caller; anything invalid is a guest.
pub async fn authenticate(state: &Arc<AppState>, headers: &HeaderMap) -> Option<Auth> {
    let header = headers.get("authorization")?.to_str().ok()?;
    let raw = token::token_from_authorization(header)?;
    let now = chrono::Utc::now().timestamp();
    if let Some(auth) = state.auth_cache.get(raw, now) {
        return Some(auth);
    }
    // Read before the record is loaded (see `auth_cache` invariant 2).
    let generation = state.auth_cache.generation();
    let claims = token::decode_unverified(raw)?;
    if claims.token_type != token::TokenType::Auth {
        return None;
    }
    let schema = state.schema();
    let collection = Arc::clone(schema.find(&claims.collection_id)?);
    if !collection.is_auth() {
        return None;
    }
    let record = load_record(state, &collection, &claims.id).await.ok()??;
    let token_key = record.get("tokenKey").and_then(Value::as_str).unwrap_or("");
    let key = token::signing_key(token_key, &collection.token_secret("authToken"));
    let claims = token::verify_as(raw, &key, now, token::TokenType::Auth).ok()?;
    let auth = Auth { collection, record };
    state
        .auth_cache
        .insert(raw, auth.clone(), claims.exp, generation);
    Some(auth)
}

/// Issues an auth token for a record.
pub fn issue_auth_token(
    collection: &Collection,
    record: &Map<String, Value>,
    refreshable: bool,
    duration_secs: Option<i64>,
) -> String {
    let id = record.get("id").and_then(Value::as_str).unwrap_or("");
    let token_key = record.get("tokenKey").and_then(Value::as_str).unwrap_or("");
    let duration = duration_secs
        .filter(|d| *d > 0)
        .unwrap_or_else(|| collection.token_duration("authToken"));
    let exp = chrono::Utc::now().timestamp() + duration;
    let claims = token::TokenClaims::auth(&collection.id, id, exp, refreshable);
    token::sign(
        &claims,
        &token::signing_key(token_key, &collection.token_secret("authToken")),
    )
}

/// Request data the rules may refer to.
#[derive(Debug, Clone, Default)]
pub struct RequestData {
    /// HTTP method.
    pub method: String,
    /// `default`, `batch`, `realtime`, `expand`, ...
    pub context: String,
    /// Body (after coercion where relevant).
    pub body: Map<String, Value>,
    /// Query parameters.
    pub query: std::collections::BTreeMap<String, String>,
    /// Headers (lower-case, `-` replaced by `_`).
    pub headers: std::collections::BTreeMap<String, String>,
}

impl RequestData {
    /// From the parts of an HTTP request.
    pub fn new(
        method: &str,
        headers: &HeaderMap,
        query: &std::collections::HashMap<String, String>,
    ) -> RequestData {
        let mut header_map = std::collections::BTreeMap::new();
        for (name, value) in headers {
            if let Ok(text) = value.to_str() {
                header_map
                    .entry(name.as_str().to_ascii_lowercase().replace('-', "_"))
                    .or_insert_with(|| text.to_string());
            }
        }
        RequestData {
            method: method.to_ascii_uppercase(),
            context: "default".into(),
            body: Map::new(),
            query: query.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            headers: header_map,
        }
    }
}

/// The rules crate's request info for a caller.
pub fn request_info<'a>(
    auth: impl Into<Option<&'a Auth>>,
    data: &RequestData,
) -> rules::RequestInfo {
    let mut info = rules::RequestInfo::guest(chrono::Utc::now());
    if let Some(auth) = auth.into() {
        info.auth = Some(rules::AuthInfo {
            collection_id: auth.collection.id.clone(),
            collection_name: auth.collection.name.clone(),
            record: auth.record.clone(),
        });
        info.is_superuser = auth.is_superuser();
    }
    info.method = data.method.clone();
    info.context = data.context.clone();
    info.body = data.body.clone();
    info.query = data.query.clone();
    info.headers = data.headers.clone();
    info
}

/// A compiled WHERE clause with its joins and parameters.
#[derive(Debug, Default, Clone)]
pub struct Where {
    /// JOIN clauses.
    pub joins: Vec<String>,
    /// Boolean conditions, ANDed.
    pub conditions: Vec<String>,
    /// Rows may repeat because of joins.
    pub distinct: bool,
    /// Bound parameters.
    pub params: rules::Params,
}

impl Where {
    /// Adds a compiled expression.
    pub fn add(
        &mut self,
        schema: &Schema,
        collection: &Collection,
        expr: &rules::Expr,
        info: &rules::RequestInfo,
        client_filter: bool,
    ) -> ApiResult<()> {
        let coll_info = schema
            .info(&collection.id)
            .ok_or_else(|| ApiError::internal("collection missing from the schema"))?;
        let options = rules::CompileOptions { client_filter };
        let filter = rules::compile(
            expr,
            schema,
            coll_info,
            MAIN,
            info,
            &mut self.params,
            &options,
        )
        .map_err(rule_error)?;
        self.joins.extend(filter.joins);
        self.conditions.push(format!("({})", filter.where_sql));
        self.distinct |= filter.needs_distinct;
        Ok(())
    }

    /// Adds a raw condition with one bound value.
    pub fn add_eq(&mut self, column: &str, value: SqlValue) {
        let placeholder = self.params.push(to_rule_value(&value));
        self.conditions.push(format!(
            "{MAIN}.{} = {placeholder}",
            engine::quote_ident(column)
        ));
    }

    /// Binds one more value and returns its placeholder (`?N`).
    pub fn bind(&mut self, value: &SqlValue) -> String {
        self.params.push(to_rule_value(value))
    }

    /// `WHERE ...` text (or empty).
    pub fn where_sql(&self) -> String {
        if self.conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.conditions.join(" AND "))
        }
    }

    /// Joins text.
    pub fn joins_sql(&self) -> String {
        self.joins.join(" ")
    }

    /// The parameters as engine values.
    pub fn engine_params(&self) -> Vec<SqlValue> {
        self.params.as_slice().iter().map(from_rule_value).collect()
    }
}

/// Maps a rule error to PocketBase's status and message.
pub fn rule_error(err: rules::RuleError) -> ApiError {
    let status = axum::http::StatusCode::from_u16(err.status())
        .unwrap_or(axum::http::StatusCode::BAD_REQUEST);
    ApiError::new(status, &err.public_message())
}

fn to_rule_value(value: &SqlValue) -> rules::SqlValue {
    match value {
        SqlValue::Null => rules::SqlValue::Null,
        SqlValue::Int(int) => rules::SqlValue::Int(*int),
        SqlValue::Real(real) => rules::SqlValue::Real(*real),
        SqlValue::Text(text) => rules::SqlValue::Text(text.clone()),
    }
}

fn from_rule_value(value: &rules::SqlValue) -> SqlValue {
    match value {
        rules::SqlValue::Null => SqlValue::Null,
        rules::SqlValue::Int(int) => SqlValue::Int(*int),
        rules::SqlValue::Real(real) => SqlValue::Real(*real),
        rules::SqlValue::Text(text) => SqlValue::Text(text.clone()),
    }
}

/// Inside a command: the record a confirm-flow token names, read from the staged state, with
/// the token's claims, if the token verifies against that record's current key and still names
/// the record's e-mail (so a rotated key or a changed address refuses it). `None` refuses.
pub fn staged_token_record(
    tx: &engine::Tx<'_>,
    collection: &Collection,
    raw: &str,
    kind: token::TokenType,
) -> ApiResult<Option<(token::TokenClaims, Map<String, Value>)>> {
    let Some(claims) = token::decode_unverified(raw) else {
        return Ok(None);
    };
    let sql = format!(
        "SELECT * FROM {} WHERE id = ?1",
        engine::quote_ident(&collection.name)
    );
    let rows = tx
        .query(&sql, &[SqlValue::Text(claims.id.clone())])
        .map_err(ApiError::from)?;
    let Some(row) = rows
        .rows
        .first()
        .map(|row| from_row(collection, &rows.columns, row))
    else {
        return Ok(None);
    };
    let text = |key: &str| row.get(key).and_then(Value::as_str).unwrap_or("");
    let key = token::signing_key(
        text("tokenKey"),
        &collection.token_secret(kind.collection_option()),
    );
    let now = chrono::Utc::now().timestamp();
    if token::verify_as(raw, &key, now, kind).is_err()
        || claims.email.as_deref() != Some(text("email"))
    {
        return Ok(None);
    }
    Ok(Some((claims, row)))
}
