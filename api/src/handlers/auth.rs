//! Auth endpoints: `auth-methods`, `auth-with-password`, `auth-refresh`.
//!
//! 1. Unknown identity and wrong password give the same 400 and take the same time.
//! 2. Tokens are signed with the record's tokenKey + the collection secret, so a password
//!    change (new tokenKey) invalidates them.

use super::common::{json_response, parse_body, Query};
use crate::access::{self, Auth, RequestData, MAIN};
use crate::auth::mfa;
use crate::auth::password;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::extract::Caller;
pub use crate::hooks::events::{AuthAnswer, AuthMethod};
use crate::model::record::from_row;
use crate::model::schema::{Rule, RuleKind};
use crate::model::Collection;
use crate::records::present;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query as QueryExtract, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// The auth collection of an auth route. As on the reference: an unknown collection is 404
/// `Missing or invalid collection context.`, a non-auth one 404 `Missing or invalid auth
/// collection context.`.
pub fn auth_collection(state: &AppState, name: &str) -> ApiResult<Arc<Collection>> {
    let schema = state.schema();
    let collection = schema.find(name).ok_or_else(|| {
        ApiError::not_found().with_message("Missing or invalid collection context.")
    })?;
    if !collection.is_auth() {
        return Err(
            ApiError::not_found().with_message("Missing or invalid auth collection context.")
        );
    }
    Ok(Arc::clone(collection))
}

/// Builds `{"record":…,"token":…}` for a freshly authenticated record.
pub async fn auth_response(
    state: &Arc<AppState>,
    collection: &Arc<Collection>,
    record: Map<String, Value>,
    token: String,
    query: &Query,
    method: AuthMethod,
) -> ApiResult<Response> {
    let answer = AuthAnswer {
        record,
        token,
        meta: None,
    };
    auth_answer(state, collection, method, answer, query).await
}

/// Builds `{"record","token"[,"meta"]}` after `onRecordAuthRequest` (which may edit them or
/// answer itself).
pub async fn auth_answer(
    state: &Arc<AppState>,
    collection: &Arc<Collection>,
    method: AuthMethod,
    answer: AuthAnswer,
    query: &Query,
) -> ApiResult<Response> {
    let data = RequestData {
        method: "POST".into(),
        context: "default".into(),
        query: query.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        ..RequestData::default()
    };
    let answer =
        match crate::hooks::events::auth_request(state, collection, method, &data, answer).await? {
            crate::hooks::records::Flow::Go(answer, _) => answer,
            crate::hooks::records::Flow::Respond(response) => return Ok(response),
        };
    let auth = Some(Auth {
        collection: Arc::clone(collection),
        record: answer.record.clone(),
    });
    let mut items = present(
        state,
        auth.as_ref(),
        collection,
        vec![answer.record],
        query.get("expand").map(String::as_str),
    )
    .await?;
    let mut body = json!({"record": items.remove(0), "token": answer.token});
    if let Some(meta) = answer.meta {
        body["meta"] = meta;
    }
    Ok(json_response(query, body))
}

/// Checks the collection's authRule for a record (403 when it fails).
pub(crate) async fn check_auth_rule(
    state: &Arc<AppState>,
    collection: &Arc<Collection>,
    record: &Map<String, Value>,
) -> ApiResult<()> {
    let schema = state.schema();
    let rule = schema.rule(&collection.id, RuleKind::Auth);
    let denied = || {
        ApiError::forbidden(
            "The request doesn't satisfy the collection requirements to authenticate.",
        )
    };
    match rule {
        Rule::Open => Ok(()),
        Rule::Locked => Err(denied()),
        Rule::Expr(expr) => {
            let auth = Some(Auth {
                collection: Arc::clone(collection),
                record: record.clone(),
            });
            let info = access::request_info(
                &auth,
                &RequestData {
                    method: "POST".into(),
                    context: "default".into(),
                    ..RequestData::default()
                },
            );
            let mut clause = access::Where::default();
            clause.add(&schema, collection, &expr, &info, false)?;
            clause.add_eq(
                "id",
                engine::Value::Text(
                    record
                        .get("id")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                ),
            );
            let sql = format!(
                "SELECT 1 FROM {} {MAIN} {} {} LIMIT 1",
                engine::quote_ident(&collection.name),
                clause.joins_sql(),
                clause.where_sql()
            );
            let params = clause.engine_params();
            let rows = state.read(move |conn| conn.query(&sql, &params)).await?;
            if rows.is_empty() {
                Err(denied())
            } else {
                Ok(())
            }
        }
    }
}

/// `POST /api/collections/{c}/auth-with-password`
pub async fn auth_with_password(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    QueryExtract(query): QueryExtract<Query>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    bytes: Bytes,
) -> ApiResult<Response> {
    let collection = auth_collection(&state, &name)?;
    let body = parse_body(&headers, &bytes)?;
    let password_auth = collection.auth_option("passwordAuth");
    if !password_auth
        .get("enabled")
        .and_then(Value::as_bool)
        .unwrap_or(true)
    {
        return Err(ApiError::forbidden(
            "The collection is not configured to allow password authentication.",
        ));
    }
    let identity = body
        .get("identity")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let plain = body
        .get("password")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let identity_field = body
        .get("identityField")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let fields = collection.identity_fields();
    let mut errors = FieldErrors::default();
    if identity.is_empty() {
        errors.add("identity", "validation_required", "Cannot be blank.", None);
    }
    if plain.is_empty() {
        errors.add("password", "validation_required", "Cannot be blank.", None);
    }
    if !identity_field.is_empty() && !fields.contains(&identity_field) {
        errors.add(
            "identityField",
            "validation_in_invalid",
            "Must be a valid value.",
            None,
        );
    }
    if !errors.is_empty() {
        return Err(errors.into_error("An error occurred while validating the submitted data."));
    }
    let candidates: Vec<String> = if !identity_field.is_empty() {
        vec![identity_field]
    } else {
        let mut ordered: Vec<String> = Vec::new();
        if identity.contains('@') && fields.iter().any(|f| f == "email") {
            ordered.push("email".into());
        }
        ordered.extend(fields.iter().filter(|f| *f != "email").cloned());
        ordered
    };
    let mut found = None;
    for field in candidates {
        if collection.field(&field).is_none() {
            continue;
        }
        let sql = format!(
            "SELECT * FROM {} WHERE {} = ?1 COLLATE NOCASE LIMIT 1",
            engine::quote_ident(&collection.name),
            engine::quote_ident(&field)
        );
        let params = vec![engine::Value::Text(identity.clone())];
        let rows = state.read(move |conn| conn.query(&sql, &params)).await?;
        if let Some(row) = rows.rows.first() {
            found = Some(from_row(&collection, &rows.columns, row));
            break;
        }
    }
    let failed = || ApiError::bad_request("Failed to authenticate.");
    let Some(record) = found else {
        tokio::task::spawn_blocking(move || password::dummy_verify(&plain))
            .await
            .map_err(ApiError::internal)?;
        return Err(failed());
    };
    let hash = record
        .get("password")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let checked = plain.clone();
    let ok = tokio::task::spawn_blocking(move || password::verify_password(&checked, &hash))
        .await
        .map_err(ApiError::internal)?;
    if !ok {
        return Err(failed());
    }
    check_auth_rule(&state, &collection, &record).await?;
    crate::records::rehash::upgrade_legacy_hash(&state, &collection, &record, plain).await;
    // The SDK sends `mfaId` as a query parameter; a body field works too.
    let mfa_id = body
        .get("mfaId")
        .and_then(Value::as_str)
        .or_else(|| query.get("mfaId").map(String::as_str))
        .unwrap_or("");
    if let mfa::Next::Pending(id) =
        mfa::after_factor(&state, &collection, &record, mfa::Method::Password, mfa_id).await?
    {
        return Ok(super::otp::mfa_pending(&id));
    }
    super::origins::after_sign_in(&state, &collection, &record, &headers, &extensions).await;
    let token = access::issue_auth_token(&collection, &record, true, None);
    auth_response(
        &state,
        &collection,
        record,
        token,
        &query,
        AuthMethod::Password,
    )
    .await
}

/// `POST /api/collections/{c}/auth-refresh`
pub async fn auth_refresh(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    QueryExtract(query): QueryExtract<Query>,
    headers: HeaderMap,
    caller: Caller,
) -> ApiResult<Response> {
    let collection = auth_collection(&state, &name)?;
    let Some(auth) = caller.0 else {
        return Err(ApiError::unauthorized(
            "The request requires valid record authorization token.",
        ));
    };
    if auth.collection.id != collection.id {
        return Err(ApiError::forbidden(&format!(
            "The request requires auth record from {} collection.",
            auth.collection.name
        )));
    }
    check_auth_rule(&state, &collection, &auth.record).await?;
    let raw = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(crate::auth::token::token_from_authorization)
        .unwrap_or("")
        .to_string();
    let refreshable = crate::auth::token::decode_unverified(&raw)
        .map(|claims| claims.is_refreshable())
        .unwrap_or(false);
    let token = if refreshable {
        access::issue_auth_token(&collection, &auth.record, true, None)
    } else {
        raw
    };
    auth_response(
        &state,
        &collection,
        auth.record,
        token,
        &query,
        AuthMethod::Other,
    )
    .await
}

/// `GET /api/collections/{c}/auth-methods`
pub async fn auth_methods(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    QueryExtract(query): QueryExtract<Query>,
) -> ApiResult<Response> {
    let collection = auth_collection(&state, &name)?;
    let password_auth = collection.auth_option("passwordAuth");
    let enabled = password_auth
        .get("enabled")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let identity_fields = collection.identity_fields();
    let mfa = collection.auth_option("mfa");
    let otp = collection.auth_option("otp");
    let duration_if = |option: &Value| {
        if option
            .get("enabled")
            .and_then(Value::as_bool)
            .unwrap_or(false)
        {
            option.get("duration").cloned().unwrap_or(json!(0))
        } else {
            json!(0)
        }
    };
    let (oauth2, auth_providers) =
        crate::auth::oauth2::auth_methods(&collection.auth_option("oauth2"));
    let body = json!({
        "password": {"identityFields": identity_fields, "enabled": enabled},
        "oauth2": oauth2,
        "mfa": {"enabled": mfa.get("enabled").cloned().unwrap_or(json!(false)), "duration": duration_if(&mfa)},
        "otp": {"enabled": otp.get("enabled").cloned().unwrap_or(json!(false)), "duration": duration_if(&otp)},
        "authProviders": auth_providers,
        "usernamePassword": enabled && identity_fields.iter().any(|f| f == "username"),
        "emailPassword": enabled && identity_fields.iter().any(|f| f == "email"),
    });
    Ok(json_response(&query, body))
}
