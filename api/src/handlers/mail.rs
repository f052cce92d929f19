//! `POST /api/settings/test/email` (superusers): sends one of an auth collection's templates
//! to an address, with a stand-in record, as PocketBase v0.40.6 does (measured):
//! body `{email, template, collection?}`; `template` one of `verification`, `password-reset`,
//! `email-change`, `otp`, `login-alert`; `collection` an auth collection id or name
//! (default `_superusers`). 204 when the SMTP server accepted the mail; 400
//! `Failed to send the test email.` with field errors for bad input, or with
//! `Raw error: …` when delivery failed.
//!
//! Invariants: the mail is sent synchronously (on a blocking thread, bounded by
//! `mail::SMTP_TIMEOUT`) so the answer reports the real outcome; the stand-in record
//! (`__pb_test_id__`) does not exist, and its tokens are signed with a throwaway key, so they
//! open nothing.

use super::common::{no_content, parse_body};
use crate::auth::token;
use crate::error::{field_error, ApiError, ApiResult};
use crate::extract::SuperuserBody;
use crate::mail::auth::{render_mail, Secret};
use crate::mail::template::TemplateKind;
use crate::mail::{send_now, SmtpConfig};
use crate::model::record::is_email;
use crate::model::SUPERUSERS;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Map, Value};
use std::sync::Arc;

const TEST_FAILED: &str = "Failed to send the test email.";
/// The id of the stand-in record of a test mail.
pub const TEST_RECORD_ID: &str = "__pb_test_id__";
/// The code shown in a test OTP mail.
pub const TEST_OTP: &str = "123456";

/// `POST /api/settings/test/email`
pub async fn settings_test_email(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    SuperuserBody(_auth, bytes): SuperuserBody,
) -> ApiResult<Response> {
    let body = parse_body(&headers, &bytes)?;
    let text = |key: &str| {
        body.get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim()
            .to_string()
    };
    let (email, template, collection_name) = (text("email"), text("template"), text("collection"));
    let mut errors = Map::new();
    if email.is_empty() {
        errors.insert(
            "email".into(),
            field_error("validation_required", "Cannot be blank.", None),
        );
    } else if !is_email(&email) {
        errors.insert(
            "email".into(),
            field_error(
                "validation_is_email",
                "Must be a valid email address.",
                None,
            ),
        );
    }
    let kind = TemplateKind::from_name(&template);
    if template.is_empty() {
        errors.insert(
            "template".into(),
            field_error("validation_required", "Cannot be blank.", None),
        );
    } else if kind.is_none() {
        errors.insert(
            "template".into(),
            field_error("validation_in_invalid", "Must be a valid value.", None),
        );
    }
    let schema = state.schema();
    let wanted = if collection_name.is_empty() {
        SUPERUSERS
    } else {
        collection_name.as_str()
    };
    let collection = schema.find(wanted).filter(|c| c.is_auth()).cloned();
    if collection.is_none() {
        errors.insert(
            "collection".into(),
            field_error(
                "validation_invalid_auth_collection",
                "Must be a valid auth collection id or name.",
                None,
            ),
        );
    }
    let (Some(kind), Some(collection), true) = (kind, collection, errors.is_empty()) else {
        return Err(ApiError::validation(TEST_FAILED, errors));
    };
    let record = json!({"id": TEST_RECORD_ID, "email": email, "collectionId": collection.id,
        "collectionName": collection.name, "verified": false, "emailVisibility": false});
    let record = record.as_object().cloned().unwrap_or_default();
    let exp = chrono::Utc::now().timestamp() + 1800;
    let sign = |claims: token::TokenClaims| token::sign(&claims, &token::new_token_key());
    let secret = match kind {
        TemplateKind::Verification => Secret::Token(sign(token::TokenClaims::verification(
            &collection.id,
            TEST_RECORD_ID,
            exp,
            &email,
        ))),
        TemplateKind::PasswordReset => Secret::Token(sign(token::TokenClaims::password_reset(
            &collection.id,
            TEST_RECORD_ID,
            exp,
            &email,
        ))),
        TemplateKind::EmailChange => Secret::Token(sign(token::TokenClaims::email_change(
            &collection.id,
            TEST_RECORD_ID,
            exp,
            &email,
            &email,
        ))),
        TemplateKind::Otp => Secret::Otp {
            code: TEST_OTP.into(),
            id: TEST_RECORD_ID.into(),
        },
        TemplateKind::LoginAlert => Secret::AlertInfo(format!(
            "{} - TEST_IP TEST_USER_AGENT",
            chrono::Utc::now().format("%Y-%m-%d %H:%M:%S%.3fZ")
        )),
    };
    let settings = state.settings();
    let config = SmtpConfig::from_settings(&settings);
    if !config.enabled {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            &format!("{TEST_FAILED} Raw error: \nSMTP is disabled in the settings."),
        ));
    }
    let mail = render_mail(&settings, &collection, kind, &record, &email, &secret);
    let Some((config, mail)) = crate::hooks::events::mailer_send(&state, config, mail).await?
    else {
        return Ok(no_content());
    };
    match send_now(config, mail).await {
        Ok(()) => Ok(no_content()),
        Err(error) => {
            tracing::warn!(%error, "test email failed");
            Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                &format!("{TEST_FAILED} Raw error: \n{error}"),
            ))
        }
    }
}
