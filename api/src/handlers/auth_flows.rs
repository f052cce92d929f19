//! Auth flows beyond login (`docs/wire/auth.md`): email verification, password
//! reset, impersonation and file tokens.
//!
//! The links are mailed with the collection's templates (`mail::auth`); with SMTP disabled
//! the mail is written to the server log instead.
//!
//! Invariants:
//! 1. `request-*` endpoints answer 204 whether or not the email belongs to a record, so they
//!    never reveal which accounts exist (only a malformed email is a 400).
//! 2. `confirm-*` tokens are checked twice: once off the writer (to report validation errors
//!    together with the other fields, as PocketBase does) and again inside the command against
//!    the staged row, so a token consumed by a concurrent request (a reset rotates the
//!    record's `tokenKey`) cannot be used twice.
//! 3. A password reset hashes the new password before the command is queued, rotates the
//!    `tokenKey` (every older token of the record dies) and sets `verified`.
//! 4. Impersonation tokens are auth tokens with `refreshable: false`.
//!
//! 5. A record gets one verification / reset mail per `mail::RESEND_WINDOW` (2 min, as the
//!    reference); repeated requests answer the same 204.

use super::auth::{auth_collection, auth_response};
use super::common::{json_response, no_content, parse_body, Query};
use crate::access;
use crate::auth::{password, token};
use crate::error::{field_error, ApiError, ApiResult};
use crate::extract::{Caller, SuperuserBody};
use crate::mail::{self, auth::Secret, template::TemplateKind};
use crate::model::record::{is_email, to_storage};
use crate::model::{Collection, Field};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query as QueryExtract, State};
use axum::http::HeaderMap;
use axum::response::Response;
use engine::{Change, Tx};
use serde_json::{json, Map, Value};
use std::sync::Arc;

const VALIDATION_FAILED: &str = "An error occurred while validating the submitted data.";
/// Upper bound of a new password's length in `confirm-password-reset` (PocketBase's form rule;
/// the password field's own max, 71 by default, applies as well).
pub const RESET_PASSWORD_LEN_MAX: usize = 255;

fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

fn text_of<'a>(body: &'a Map<String, Value>, key: &str) -> &'a str {
    body.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The commit actor of a confirm flow: the record whose token was presented.
fn record_actor(collection: &Collection, record: &Map<String, Value>) -> engine::Actor {
    engine::Actor::Record {
        collection_id: collection.id.clone(),
        id: text_of(record, "id").to_string(),
    }
}

/// Validates the `email` of a `request-*` body.
fn check_email(body: &Map<String, Value>) -> ApiResult<String> {
    let email = text_of(body, "email").trim().to_string();
    let item = if email.is_empty() {
        field_error("validation_required", "Cannot be blank.", None)
    } else if !is_email(&email) {
        field_error(
            "validation_is_email",
            "Must be a valid email address.",
            None,
        )
    } else {
        return Ok(email);
    };
    let mut data = Map::new();
    data.insert("email".into(), item);
    Err(ApiError::validation(VALIDATION_FAILED, data))
}

/// Issues an emailed token (`verification` / `passwordReset`) for a record.
fn issue_email_token(
    collection: &Collection,
    record: &Map<String, Value>,
    kind: token::TokenType,
) -> String {
    let id = text_of(record, "id");
    let email = text_of(record, "email");
    let exp = now_unix() + collection.token_duration(kind.collection_option());
    let claims = match kind {
        token::TokenType::PasswordReset => {
            token::TokenClaims::password_reset(&collection.id, id, exp, email)
        }
        _ => token::TokenClaims::verification(&collection.id, id, exp, email),
    };
    token::sign(
        &claims,
        &token::signing_key(
            text_of(record, "tokenKey"),
            &collection.token_secret(kind.collection_option()),
        ),
    )
}

/// Why a submitted `confirm-*` token was refused, as a field error item.
fn invalid_token() -> Value {
    field_error(
        "validation_invalid_token",
        "Invalid or expired token.",
        None,
    )
}

/// Checks an emailed token like PocketBase's confirm forms: claims first (an unparsable token
/// or one without `email` is `validation_invalid_token_claims`), then type, record, signature
/// and expiry (`validation_invalid_token`), then the collection and the email.
async fn check_email_token(
    state: &Arc<AppState>,
    collection: &Arc<Collection>,
    raw: &str,
    kind: token::TokenType,
) -> Result<Map<String, Value>, Value> {
    let Some(claims) = token::decode_unverified(raw)
        .filter(|claims| claims.email.as_deref().is_some_and(|e| !e.is_empty()))
    else {
        return Err(field_error(
            "validation_invalid_token_claims",
            "Missing email token claim.",
            None,
        ));
    };
    if claims.token_type != kind {
        return Err(invalid_token());
    }
    let schema = state.schema();
    let Some(token_collection) = schema
        .find(&claims.collection_id)
        .filter(|c| c.is_auth())
        .cloned()
    else {
        return Err(invalid_token());
    };
    let record = access::load_record(state, &token_collection, &claims.id)
        .await
        .ok()
        .flatten()
        .ok_or_else(invalid_token)?;
    let key = token::signing_key(
        text_of(&record, "tokenKey"),
        &token_collection.token_secret(kind.collection_option()),
    );
    token::verify_as(raw, &key, now_unix(), kind).map_err(|_| invalid_token())?;
    if token_collection.id != collection.id {
        return Err(field_error(
            "validation_token_collection_mismatch",
            "The provided token is for different auth collection.",
            None,
        ));
    }
    if claims.email.as_deref() != Some(text_of(&record, "email")) {
        return Err(field_error(
            "validation_token_email_mismatch",
            "The record email doesn't match with the requested token claims.",
            None,
        ));
    }
    Ok(record)
}

/// Inside a command: reloads the record, re-verifies the token against the staged row, applies
/// `change`, bumps `onUpdate` autodates and stages the update.
fn stage_token_update(
    tx: &mut Tx<'_>,
    collection: &Collection,
    raw: &str,
    kind: token::TokenType,
    change: impl FnOnce(&mut Map<String, Value>),
) -> ApiResult<()> {
    let refused = || {
        let mut data = Map::new();
        data.insert("token".into(), invalid_token());
        ApiError::validation(VALIDATION_FAILED, data)
    };
    let (claims, mut row) =
        access::staged_token_record(tx, collection, raw, kind)?.ok_or_else(refused)?;
    change(&mut row);
    crate::records::write::touch_updated(collection, &mut row, tx.timestamp_ms());
    tx.stage(Change::RecordUpdated {
        collection_id: collection.id.clone(),
        id: claims.id,
        values: to_storage(collection, &row),
    })
    .map_err(ApiError::from)
}

/// `POST /api/collections/{c}/request-verification`
pub async fn request_verification(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult<Response> {
    let collection = auth_collection(&state, &name)?;
    let body = parse_body(&headers, &bytes)?;
    let email = check_email(&body)?;
    if let Some(found) = crate::records::query::find_by_email(&state, &collection, &email).await? {
        if !found
            .get("verified")
            .and_then(Value::as_bool)
            .unwrap_or(false)
        {
            let key = format!("verification/{}/{}", collection.id, text_of(&found, "id"));
            if !state.mailer.first_in_window(&key) {
                return Ok(no_content());
            }
            let token = issue_email_token(&collection, &found, token::TokenType::Verification);
            mail::auth::send(
                &state,
                &collection,
                TemplateKind::Verification,
                &found,
                None,
                &Secret::Token(token),
            );
        }
    }
    Ok(no_content())
}

/// `POST /api/collections/{c}/confirm-verification`
pub async fn confirm_verification(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult<Response> {
    let collection = auth_collection(&state, &name)?;
    let body = parse_body(&headers, &bytes)?;
    let raw = text_of(&body, "token").to_string();
    let kind = token::TokenType::Verification;
    let checked = if raw.is_empty() {
        Err(field_error("validation_required", "Cannot be blank.", None))
    } else {
        check_email_token(&state, &collection, &raw, kind).await
    };
    let found = match checked {
        Ok(found) => found,
        Err(item) => {
            let mut data = Map::new();
            data.insert("token".into(), item);
            return Err(ApiError::validation(VALIDATION_FAILED, data));
        }
    };
    if found
        .get("verified")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        return Ok(no_content());
    }
    let target = Arc::clone(&collection);
    state
        .write(record_actor(&collection, &found), move |tx| {
            stage_token_update(tx, &target, &raw, kind, |row| {
                row.insert("verified".into(), json!(true));
            })
        })
        .await?;
    Ok(no_content())
}

/// `POST /api/collections/{c}/request-password-reset`
pub async fn request_password_reset(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult<Response> {
    let collection = auth_collection(&state, &name)?;
    let body = parse_body(&headers, &bytes)?;
    let email = check_email(&body)?;
    if let Some(found) = crate::records::query::find_by_email(&state, &collection, &email).await? {
        let key = format!("passwordReset/{}/{}", collection.id, text_of(&found, "id"));
        if !state.mailer.first_in_window(&key) {
            return Ok(no_content());
        }
        let token = issue_email_token(&collection, &found, token::TokenType::PasswordReset);
        mail::auth::send(
            &state,
            &collection,
            TemplateKind::PasswordReset,
            &found,
            None,
            &Secret::Token(token),
        );
    }
    Ok(no_content())
}

/// `POST /api/collections/{c}/confirm-password-reset`
pub async fn confirm_password_reset(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult<Response> {
    let collection = auth_collection(&state, &name)?;
    let body = parse_body(&headers, &bytes)?;
    let raw = text_of(&body, "token").to_string();
    let plain = text_of(&body, "password").to_string();
    let confirm = text_of(&body, "passwordConfirm");
    let kind = token::TokenType::PasswordReset;
    let password_field = collection.field("password");
    let min = password_field
        .map(Field::min_length)
        .filter(|min| *min > 0)
        .unwrap_or(1);
    let max = password_field
        .map(Field::max_length)
        .filter(|max| *max > 0)
        .unwrap_or(71);
    let mut data = Map::new();
    let mut found = None;
    if raw.is_empty() {
        data.insert(
            "token".into(),
            field_error("validation_required", "Cannot be blank.", None),
        );
    } else {
        match check_email_token(&state, &collection, &raw, kind).await {
            Ok(record) => found = Some(record),
            Err(item) => {
                data.insert("token".into(), item);
            }
        }
    }
    let length = plain.chars().count();
    if plain.is_empty() {
        data.insert(
            "password".into(),
            field_error("validation_required", "Cannot be blank.", None),
        );
    } else if length < min || length > RESET_PASSWORD_LEN_MAX {
        data.insert(
            "password".into(),
            field_error(
                "validation_length_out_of_range",
                &format!("The length must be between {min} and {RESET_PASSWORD_LEN_MAX}."),
                Some(json!({"max": RESET_PASSWORD_LEN_MAX, "min": min})),
            ),
        );
    } else if length > max {
        data.insert(
            "password".into(),
            field_error(
                "validation_max_text_constraint",
                &format!("Must be less than {max} character(s)."),
                None,
            ),
        );
    }
    if confirm.is_empty() {
        data.insert(
            "passwordConfirm".into(),
            field_error("validation_required", "Cannot be blank.", None),
        );
    } else if confirm != plain {
        data.insert(
            "passwordConfirm".into(),
            field_error("validation_values_mismatch", "Values don't match.", None),
        );
    }
    let Some(found) = found.filter(|_| data.is_empty()) else {
        return Err(ApiError::validation(VALIDATION_FAILED, data));
    };
    let hash = tokio::task::spawn_blocking(move || password::hash_password(&plain))
        .await
        .map_err(ApiError::internal)?;
    let target = Arc::clone(&collection);
    state
        .write(record_actor(&collection, &found), move |tx| {
            stage_token_update(tx, &target, &raw, kind, |row| {
                row.insert("password".into(), json!(hash));
                row.insert("tokenKey".into(), json!(token::new_token_key()));
                row.insert("verified".into(), json!(true));
            })
        })
        .await?;
    Ok(no_content())
}

/// `POST /api/collections/{c}/impersonate/{id}` (superusers only)
pub async fn impersonate(
    State(state): State<Arc<AppState>>,
    Path((name, id)): Path<(String, String)>,
    QueryExtract(query): QueryExtract<Query>,
    headers: HeaderMap,
    SuperuserBody(_, bytes): SuperuserBody,
) -> ApiResult<Response> {
    let collection = auth_collection(&state, &name)?;
    let body = parse_body(&headers, &bytes)?;
    let duration = match body.get("duration") {
        None | Some(Value::Null) => 0,
        Some(value) => match value.as_f64() {
            Some(seconds) if seconds >= 0.0 => seconds as i64,
            Some(_) => {
                let mut data = Map::new();
                data.insert(
                    "duration".into(),
                    field_error(
                        "validation_min_greater_equal_than_required",
                        "Must be no less than 0.",
                        Some(json!({"threshold": 0})),
                    ),
                );
                return Err(ApiError::validation(VALIDATION_FAILED, data));
            }
            None => return Err(ApiError::bad_request_default()),
        },
    };
    let record = access::load_record(&state, &collection, &id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let token = access::issue_auth_token(&collection, &record, false, Some(duration));
    auth_response(
        &state,
        &collection,
        record,
        token,
        &query,
        super::auth::AuthMethod::Other,
    )
    .await
}

/// `POST /api/files/token` (any auth record)
pub async fn files_token(
    QueryExtract(query): QueryExtract<Query>,
    caller: Caller,
) -> ApiResult<Response> {
    let Some(auth) = caller.0 else {
        return Err(ApiError::unauthorized(
            "The request requires valid record authorization token.",
        ));
    };
    let kind = token::TokenType::File;
    let exp = now_unix() + auth.collection.token_duration(kind.collection_option());
    let claims = token::TokenClaims::file(&auth.collection.id, auth.id(), exp);
    let signed = token::sign(
        &claims,
        &token::signing_key(
            text_of(&auth.record, "tokenKey"),
            &auth.collection.token_secret(kind.collection_option()),
        ),
    );
    Ok(json_response(&query, json!({ "token": signed })))
}
