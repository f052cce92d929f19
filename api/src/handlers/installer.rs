//! `POST /api/installer`: HTTP glue for the first-run installer (`crate::installer` holds the
//! secret, the token design and its invariants). Creates the first superuser through the
//! ordinary record-create path, only while none exists, serialized by the installer's lock.

use crate::access::{Auth, RequestData};
use crate::error::{ApiError, ApiResult};
use crate::model::SUPERUSERS_ID;
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// True when at least one superuser exists.
pub async fn has_superuser(state: &Arc<AppState>) -> ApiResult<bool> {
    let rows = state
        .read(|conn| conn.query("SELECT 1 FROM _superusers LIMIT 1", &[]))
        .await?;
    Ok(!rows.rows.is_empty())
}

/// `POST /api/installer` `{token, email, password, passwordConfirm}`: creates the first
/// superuser; answers `{id, collectionName, email}` (then log in as usual). 401 for a bad or
/// expired link, 400 once a superuser exists or on validation errors.
pub async fn install(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    bytes: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    // PocketBase's 400 envelope for a malformed body, not axum's plain-text rejection.
    let body = crate::handlers::common::parse_body(&headers, &bytes)?;
    let token = body.get("token").and_then(Value::as_str).unwrap_or("");
    if !state
        .installer
        .verify(token, chrono::Utc::now().timestamp())
    {
        return Err(ApiError::unauthorized(
            "The installer link is invalid or has expired; restart the server to get a new one.",
        ));
    }
    let _serial = state.installer.serialize().await;
    if has_superuser(&state).await? {
        return Err(ApiError::bad_request(
            "A superuser already exists: log in with it instead.",
        ));
    }
    let schema = state.schema();
    let collection = Arc::clone(
        schema
            .find(SUPERUSERS_ID)
            .ok_or_else(|| ApiError::internal("the _superusers collection is missing"))?,
    );
    let mut input = Map::new();
    for key in ["email", "password", "passwordConfirm"] {
        input.insert(key.into(), body.get(key).cloned().unwrap_or(json!("")));
    }
    // The installer acts as the system, like `pocketlog superuser create`.
    let mut system = Map::new();
    system.insert("id".into(), json!("system"));
    let actor = Some(Auth {
        collection: Arc::clone(&collection),
        record: system,
    });
    let record = crate::records::create_record(
        &state,
        &schema,
        &collection,
        actor.as_ref(),
        input,
        RequestData::default(),
    )
    .await?;
    let email = record.get("email").cloned().unwrap_or(Value::Null);
    tracing::info!(%email, "the first superuser was created through the installer link");
    // Only public keys: the stored record also holds the password hash and tokenKey.
    Ok(Json(json!({
        "id": record.get("id").cloned().unwrap_or(Value::Null),
        "collectionName": "_superusers",
        "email": email,
    })))
}
