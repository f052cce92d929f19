//! `POST /api/collections/{c}/auth-with-oauth2` and `GET|POST /api/oauth2-redirect`: HTTP
//! glue over [`crate::auth::oauth2`], with the reference's answers (measured on v0.40.6):
//!
//! - OAuth2 off for the collection: 403 `The collection is not configured to allow OAuth2
//!   authentication.`; a body that does not decode (e.g. `createData` not an object): 400
//!   `An error occurred while loading the submitted data.` with no field data; `provider`,
//!   `code` blank or an unknown/unconfigured provider: 400 with that message and field
//!   errors (`validation_required`, `validation_invalid_provider`); the code exchange failing
//!   (wrong code, provider unreachable): 400 `Failed to fetch OAuth2 token.`; the user fetch
//!   or the `id_token` check failing: 400 `Failed to fetch OAuth2 user.`.
//! - Success: `{"record", "token", "meta"}` with `meta` = the OAuth2 user (`id`, `name`,
//!   `username`, `email`, `avatarURL`/`avatarUrl`, `rawUser`, `accessToken`,
//!   `refreshToken`, `expiry`, `isNew`); with MFA on, 401 `{"mfaId"}` like the other first
//!   factors.
//! - The redirect: the `state` is the realtime client id of the SDK that opened the popup;
//!   a client subscribed to `@oauth2` gets the event `@oauth2` with
//!   `{"state","code"}` (plus `"error"` when the provider sent one), and the browser is sent
//!   to `../_/#/auth/oauth2-redirect-success` (307 for GET, 303 for POST), or
//!   `…-failure` when there is no such client or an error/no code.

use super::auth::{auth_collection, check_auth_rule};
use super::common::{parse_body, Query};
use crate::access::{self, RequestData};
use crate::auth::mfa;
use crate::auth::oauth2::{self, client, link};
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::extract::Caller;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query as QueryExtract, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use std::sync::Arc;

const LOAD_FAILED: &str = "An error occurred while loading the submitted data.";
/// Where the popup goes after the redirect (the dashboard's page that closes it).
pub const REDIRECT_SUCCESS: &str = "../_/#/auth/oauth2-redirect-success";
/// Where the popup goes when the redirect could not be delivered.
pub const REDIRECT_FAILURE: &str = "../_/#/auth/oauth2-redirect-failure";
/// The realtime pseudo-topic of the redirect.
pub const OAUTH2_TOPIC: &str = "@oauth2";

fn text(body: &Map<String, Value>, key: &str) -> String {
    body.get(key)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// `POST /api/collections/{c}/auth-with-oauth2`
pub async fn auth_with_oauth2(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    QueryExtract(query): QueryExtract<Query>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    caller: Caller,
    bytes: Bytes,
) -> ApiResult<Response> {
    let collection = auth_collection(&state, &name)?;
    let option = collection.auth_option("oauth2");
    if !oauth2::enabled(&option) {
        return Err(ApiError::forbidden(
            "The collection is not configured to allow OAuth2 authentication.",
        ));
    }
    let body = parse_body(&headers, &bytes).map_err(|_| ApiError::bad_request(LOAD_FAILED))?;
    let create_data = match body.get("createData") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(_) => return Err(ApiError::bad_request(LOAD_FAILED)),
    };
    for key in ["provider", "code", "codeVerifier", "redirectURL"] {
        if body
            .get(key)
            .is_some_and(|v| !v.is_string() && !v.is_null())
        {
            return Err(ApiError::bad_request(LOAD_FAILED));
        }
    }
    let provider = text(&body, "provider");
    let code = text(&body, "code");
    let mut errors = FieldErrors::default();
    if code.is_empty() {
        errors.add("code", "validation_required", "Cannot be blank.", None);
    }
    let config = oauth2::configs(&option)
        .into_iter()
        .find(|c| c.provider.name == provider);
    if provider.is_empty() {
        errors.add("provider", "validation_required", "Cannot be blank.", None);
    } else if config.is_none() {
        errors.add(
            "provider",
            "validation_invalid_provider",
            &format!("Provider with name {provider} is missing or is not enabled."),
            Some(json!({ "name": provider })),
        );
    }
    if !errors.is_empty() {
        return Err(errors.into_error(LOAD_FAILED));
    }
    let Some(config) = config else {
        return Err(ApiError::bad_request(LOAD_FAILED));
    };
    let tokens = client::exchange(
        &config,
        &code,
        &text(&body, "codeVerifier"),
        &text(&body, "redirectURL"),
    )
    .await
    .map_err(|err| {
        tracing::info!(provider = %provider, error = %err, "OAuth2 code exchange failed");
        ApiError::bad_request("Failed to fetch OAuth2 token.")
    })?;
    let fetched = client::fetch_user(&config, &tokens).await.map_err(|err| {
        tracing::info!(provider = %provider, error = %err, "OAuth2 user fetch failed");
        ApiError::bad_request("Failed to fetch OAuth2 user.")
    })?;
    let request = RequestData::new("POST", &headers, &query);
    let signed = link::sign_in(
        &state,
        &collection,
        caller.0.as_ref(),
        &provider,
        &fetched,
        create_data,
        request,
    )
    .await?;
    let record = signed.record;
    check_auth_rule(&state, &collection, &record).await?;
    let mut mfa_id = text(&body, "mfaId");
    if mfa_id.is_empty() {
        mfa_id = query.get("mfaId").cloned().unwrap_or_default();
    }
    if let mfa::Next::Pending(id) =
        mfa::after_factor(&state, &collection, &record, mfa::Method::OAuth2, &mfa_id).await?
    {
        return Ok(super::otp::mfa_pending(&id));
    }
    super::origins::after_sign_in(&state, &collection, &record, &headers, &extensions).await;
    let token = access::issue_auth_token(&collection, &record, true, None);
    let expiry = tokens
        .expires_in
        .map(|secs| {
            crate::model::record::format_ms(chrono::Utc::now().timestamp_millis() + secs * 1000)
        })
        .unwrap_or_default();
    let user = &fetched.user;
    let meta = json!({
        "id": user.id,
        "name": user.name,
        "username": user.username,
        "email": user.email,
        "avatarURL": user.avatar_url,
        "avatarUrl": user.avatar_url,
        "rawUser": fetched.raw,
        "accessToken": tokens.access_token,
        "refreshToken": tokens.refresh_token,
        "expiry": expiry,
        "isNew": signed.is_new,
    });
    let answer = super::auth::AuthAnswer {
        record,
        token,
        meta: Some(meta),
    };
    super::auth::auth_answer(
        &state,
        &collection,
        super::auth::AuthMethod::OAuth2,
        answer,
        &query,
    )
    .await
}

/// `GET|POST /api/oauth2-redirect`
pub async fn oauth2_redirect(
    State(state): State<Arc<AppState>>,
    method: Method,
    QueryExtract(query): QueryExtract<Query>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    // Apple answers with a form POST (`response_mode=form_post`); the rest use the query.
    let mut params = query;
    if method == Method::POST {
        if let Ok(body) = parse_body(&headers, &bytes) {
            for (key, value) in body {
                if let Value::String(value) = value {
                    params.insert(key, value);
                }
            }
        }
    }
    let get = |key: &str| params.get(key).cloned().unwrap_or_default();
    let (client_id, code, error) = (get("state"), get("code"), get("error"));
    let delivered = deliver(&state, &client_id, &code, &error).await;
    let location = if delivered && error.is_empty() && !code.is_empty() {
        REDIRECT_SUCCESS
    } else {
        REDIRECT_FAILURE
    };
    let status = if method == Method::POST {
        StatusCode::SEE_OTHER
    } else {
        StatusCode::TEMPORARY_REDIRECT
    };
    (status, [(header::LOCATION, location)]).into_response()
}

/// Sends the `@oauth2` event to the client whose id is `client_id`, if it subscribed to it.
async fn deliver(state: &AppState, client_id: &str, code: &str, error: &str) -> bool {
    if client_id.is_empty() {
        return false;
    }
    let Some(session) = state.realtime.session(client_id) else {
        return false;
    };
    let subscribed = session
        .inner
        .lock()
        .await
        .subscriptions
        .iter()
        .any(|topic| &*topic.raw == OAUTH2_TOPIC);
    if !subscribed {
        return false;
    }
    let mut data = json!({"state": client_id, "code": code});
    if !error.is_empty() {
        data["error"] = json!(error);
    }
    let frame = crate::realtime::sse::event_frame(client_id, OAUTH2_TOPIC, &data.to_string());
    session.try_push(vec![crate::realtime::sse::Frame::Raw(frame)])
}
