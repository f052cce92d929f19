//! E-mail change (`request-email-change`, `confirm-email-change`), as measured on PocketBase
//! v0.40.6:
//! - request (the record itself, authenticated): `newEmail` required, an e-mail, not the
//!   current address (exact: `validation_not_in_invalid`), not another record's
//!   (case-insensitive: `validation_invalid_new_email`); then an `emailChange` token
//!   (claims `email` and `newEmail`, `emailChangeToken` duration and secret) is mailed to the
//!   new address with `confirmEmailChangeTemplate`, 204.
//! - confirm (no auth): `token` and `password` of the record; an unparsable token or one
//!   without `newEmail` is `validation_invalid_token_payload`, a bad/expired one
//!   `validation_invalid_token`; a wrong password (or none to check, the token being bad) is
//!   `validation_invalid_password`. Success sets `email` to the new address, `verified` true
//!   and a new `tokenKey` (every older token of the record dies, this one included), 204.
//!
//! Invariants: the token is re-verified inside the write command against the staged row, so
//! two concurrent confirms cannot both apply; the new address is checked free inside the same
//! command (a clean validation error, never a constraint 500); the password is verified off
//! the async runtime.

use crate::auth::{password, token};
use crate::error::{field_error, ApiError, ApiResult};
use crate::mail::auth::Secret;
use crate::mail::template::TemplateKind;
use crate::model::record::{is_email, to_storage};
use crate::model::Collection;
use crate::state::AppState;
use engine::{Change, Tx, Value as SqlValue};
use serde_json::{json, Map, Value};
use std::sync::Arc;

const VALIDATION_FAILED: &str = "An error occurred while validating the submitted data.";
const KIND: token::TokenType = token::TokenType::EmailChange;

fn text_of<'a>(record: &'a Map<String, Value>, key: &str) -> &'a str {
    record.get(key).and_then(Value::as_str).unwrap_or("")
}

fn one_error(field: &str, code: &str, message: &str) -> ApiError {
    let mut data = Map::new();
    data.insert(field.into(), field_error(code, message, None));
    ApiError::validation(VALIDATION_FAILED, data)
}

fn invalid_new_email() -> ApiError {
    one_error(
        "newEmail",
        "validation_invalid_new_email",
        "Invalid new email address.",
    )
}

/// Whether a record of `collection` other than `id` has `email` (case-insensitive).
fn taken_sql(collection: &Collection) -> String {
    format!(
        "SELECT 1 FROM {} WHERE email = ?1 COLLATE NOCASE AND id <> ?2 LIMIT 1",
        engine::quote_ident(&collection.name)
    )
}

/// Validates `newEmail` for `record` and mails the confirmation link to it.
pub async fn request(
    state: &Arc<AppState>,
    collection: &Arc<Collection>,
    record: &Map<String, Value>,
    new_email: &str,
) -> ApiResult<()> {
    let new_email = new_email.trim();
    if new_email.is_empty() {
        return Err(one_error(
            "newEmail",
            "validation_required",
            "Cannot be blank.",
        ));
    }
    if !is_email(new_email) {
        return Err(one_error(
            "newEmail",
            "validation_is_email",
            "Must be a valid email address.",
        ));
    }
    let current = text_of(record, "email");
    if new_email == current {
        return Err(one_error(
            "newEmail",
            "validation_not_in_invalid",
            "Must not be in list.",
        ));
    }
    let id = text_of(record, "id").to_string();
    let sql = taken_sql(collection);
    let params = vec![
        SqlValue::Text(new_email.to_string()),
        SqlValue::Text(id.clone()),
    ];
    let rows = state.read(move |conn| conn.query(&sql, &params)).await?;
    if !rows.rows.is_empty() {
        return Err(invalid_new_email());
    }
    let exp = chrono::Utc::now().timestamp() + collection.token_duration(KIND.collection_option());
    let claims = token::TokenClaims::email_change(&collection.id, &id, exp, current, new_email);
    let signed = token::sign(
        &claims,
        &token::signing_key(
            text_of(record, "tokenKey"),
            &collection.token_secret(KIND.collection_option()),
        ),
    );
    crate::mail::auth::send(
        state,
        collection,
        TemplateKind::EmailChange,
        record,
        Some(new_email),
        &Secret::Token(signed),
    );
    Ok(())
}

fn invalid_token() -> Value {
    field_error(
        "validation_invalid_token",
        "Invalid or expired token.",
        None,
    )
}

/// Checks an `emailChange` token off the writer: the record it opens, or the field error.
async fn check_token(
    state: &Arc<AppState>,
    collection: &Arc<Collection>,
    raw: &str,
) -> Result<Map<String, Value>, Value> {
    let Some(claims) = token::decode_unverified(raw)
        .filter(|claims| claims.new_email.as_deref().is_some_and(|e| !e.is_empty()))
    else {
        return Err(field_error(
            "validation_invalid_token_payload",
            "Invalid token payload - newEmail must be set.",
            None,
        ));
    };
    if claims.token_type != KIND || claims.collection_id != collection.id {
        return Err(invalid_token());
    }
    let record = crate::access::load_record(state, collection, &claims.id)
        .await
        .ok()
        .flatten()
        .ok_or_else(invalid_token)?;
    let key = token::signing_key(
        text_of(&record, "tokenKey"),
        &collection.token_secret(KIND.collection_option()),
    );
    token::verify_as(raw, &key, chrono::Utc::now().timestamp(), KIND)
        .map_err(|_| invalid_token())?;
    if claims.email.as_deref() != Some(text_of(&record, "email")) {
        return Err(invalid_token());
    }
    Ok(record)
}

/// Confirms an e-mail change with the mailed `raw` token and the record's `plain` password.
pub async fn confirm(
    state: &Arc<AppState>,
    collection: &Arc<Collection>,
    raw: String,
    plain: String,
) -> ApiResult<()> {
    let mut data = Map::new();
    let mut found = None;
    if raw.is_empty() {
        data.insert(
            "token".into(),
            field_error("validation_required", "Cannot be blank.", None),
        );
    } else {
        match check_token(state, collection, &raw).await {
            Ok(record) => found = Some(record),
            Err(item) => {
                data.insert("token".into(), item);
            }
        }
    }
    if plain.is_empty() {
        data.insert(
            "password".into(),
            field_error("validation_required", "Cannot be blank.", None),
        );
    } else {
        let hash = found
            .as_ref()
            .map(|record| text_of(record, "password").to_string());
        let ok = tokio::task::spawn_blocking(move || match hash {
            Some(hash) => password::verify_password(&plain, &hash),
            None => {
                password::dummy_verify(&plain);
                false
            }
        })
        .await
        .map_err(ApiError::internal)?;
        if !ok {
            data.insert(
                "password".into(),
                field_error(
                    "validation_invalid_password",
                    "Missing or invalid auth record password.",
                    None,
                ),
            );
        }
    }
    let Some(found) = found.filter(|_| data.is_empty()) else {
        return Err(ApiError::validation(VALIDATION_FAILED, data));
    };
    let actor = engine::Actor::Record {
        collection_id: collection.id.clone(),
        id: text_of(&found, "id").to_string(),
    };
    let target = Arc::clone(collection);
    state
        .write(actor, move |tx| stage_change(tx, &target, &raw))
        .await?;
    Ok(())
}

/// Inside the command: re-verifies the token against the staged row, checks the new address
/// is still free, and stages the change.
fn stage_change(tx: &mut Tx<'_>, collection: &Collection, raw: &str) -> ApiResult<()> {
    let refused = || {
        one_error(
            "token",
            "validation_invalid_token",
            "Invalid or expired token.",
        )
    };
    let (claims, mut row) =
        crate::access::staged_token_record(tx, collection, raw, KIND)?.ok_or_else(refused)?;
    let new_email = claims.new_email.clone().ok_or_else(refused)?;
    let taken = tx
        .query(
            &taken_sql(collection),
            &[
                SqlValue::Text(new_email.clone()),
                SqlValue::Text(claims.id.clone()),
            ],
        )
        .map_err(ApiError::from)?;
    if !taken.rows.is_empty() {
        return Err(one_error(
            "token",
            "validation_invalid_new_email",
            "Invalid new email address.",
        ));
    }
    row.insert("email".into(), json!(new_email));
    row.insert("verified".into(), json!(true));
    row.insert("tokenKey".into(), json!(token::new_token_key()));
    crate::records::write::touch_updated(collection, &mut row, tx.timestamp_ms());
    tx.stage(Change::RecordUpdated {
        collection_id: collection.id.clone(),
        id: claims.id,
        values: to_storage(collection, &row),
    })
    .map_err(ApiError::from)
}
