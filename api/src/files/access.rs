//! Who may download a stored file (`GET /api/files/{collectionIdOrName}/{recordId}/{filename}`,
//! api.md §9.2; the HTTP glue is `handlers::files`).
//!
//! - The file must be in one of the record's file fields now (a file dropped from a record is
//!   gone from the API at once, though its bytes stay); otherwise 404.
//! - Unprotected files are public (no rule check). A `protected` field's file needs `?token=`
//!   (a file token from `POST /api/files/token`); its record is `@request.auth` for the
//!   collection's view rule; any failure is 404. `Authorization` headers are ignored.
//! - `?download=1` forces `attachment`; `?thumb=` serves the original (no thumbnails yet —
//!   the reference also serves the original for sizes it does not offer).

use crate::access::{self, Auth, RequestData, Where};
use crate::auth::token;
use crate::error::{ApiError, ApiResult};
use crate::files::body::file_specs;
use crate::files::fields::{self, FileFieldSpec};
use crate::files::storage::LocalStorage;
use crate::model::schema::{Rule, RuleKind};
use crate::state::AppState;
use axum::http::StatusCode;
use engine::Value as SqlValue;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;

/// The caller a file token stands for (`None` for a missing, invalid or expired token).
pub async fn file_token_auth(state: &Arc<AppState>, raw: Option<&str>) -> Option<Auth> {
    let raw = raw.filter(|raw| !raw.is_empty())?;
    let claims = token::decode_unverified(raw)?;
    if claims.token_type != token::TokenType::File {
        return None;
    }
    let schema = state.schema();
    let collection = Arc::clone(schema.find(&claims.collection_id)?);
    if !collection.is_auth() {
        return None;
    }
    let record = access::load_record(state, &collection, &claims.id)
        .await
        .ok()??;
    let token_key = record.get("tokenKey").and_then(Value::as_str).unwrap_or("");
    let key = token::signing_key(
        token_key,
        &collection.token_secret(token::TokenType::File.collection_option()),
    );
    let now = chrono::Utc::now().timestamp();
    token::verify_as(raw, &key, now, token::TokenType::File).ok()?;
    Some(Auth { collection, record })
}

/// The stored path of `filename` on record `id` of collection `name` (id or name), and the
/// file field holding it, when the caller may download it: the file is in one of the record's file fields now, and for a
/// protected field `token` is a file token whose record passes the view rule. Every refusal
/// is 404 (the collection's own 404 when it does not exist).
pub async fn authorize(
    state: &Arc<AppState>,
    name: &str,
    id: &str,
    filename: &str,
    token: Option<&str>,
    data: RequestData,
) -> ApiResult<(PathBuf, FileFieldSpec)> {
    let schema = state.schema();
    let collection = schema.find(name).cloned().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "Missing or invalid collection context.",
        )
    })?;
    let storage = LocalStorage::new(state.engine.dir());
    let path = storage
        .path_of(&collection.id, id, filename)
        .ok_or_else(ApiError::not_found)?;
    let record = access::load_record(state, &collection, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let spec = file_specs(&collection)
        .into_iter()
        .find(|spec| {
            fields::names_of(record.get(&spec.name))
                .iter()
                .any(|n| n == filename)
        })
        .ok_or_else(ApiError::not_found)?;
    // A view's file is stored under the source record it shows.
    let path = if collection.is_view() {
        crate::files::retention::view_file_path(state, id, filename).await?
    } else {
        path
    };
    if !spec.protected {
        return Ok((path, spec));
    }
    let auth = file_token_auth(state, token).await;
    let allowed = match schema.rule(&collection.id, RuleKind::View) {
        _ if access::is_superuser(auth.as_ref()) => true,
        Rule::Locked => false,
        Rule::Open => true,
        Rule::Expr(expr) => {
            let mut data = data;
            data.context = "protectedFile".into();
            let info = access::request_info(auth.as_ref(), &data);
            let mut clause = Where::default();
            clause.add(&schema, &collection, &expr, &info, false)?;
            clause.add_eq("id", SqlValue::Text(id.to_string()));
            let sql = format!(
                "SELECT 1 FROM {} {} {} {} LIMIT 1",
                engine::quote_ident(&collection.name),
                crate::access::MAIN,
                clause.joins_sql(),
                clause.where_sql()
            );
            let params = clause.engine_params();
            let rows = state.read(move |conn| conn.query(&sql, &params)).await?;
            !rows.rows.is_empty()
        }
    };
    if allowed {
        Ok((path, spec))
    } else {
        Err(ApiError::not_found())
    }
}
