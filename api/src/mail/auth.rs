//! The auth mails of a record (verification, password reset, e-mail change, OTP, login
//! alert): the collection's template rendered with the app's name/URL, the record and the
//! flow's secret, queued on the [`Mailer`](super::Mailer).
//!
//! Invariant: queuing never fails and never blocks, so a `request-*` answer does not depend
//! on whether, or how fast, the mail goes out (enumeration-safe, same latency).

use super::template::{html_document, plain_text, render, TemplateKind};
use super::{Mail, SmtpConfig};
use crate::model::Collection;
use crate::state::AppState;
use serde_json::{Map, Value};
use std::sync::Arc;

/// The secret a template carries.
#[derive(Clone, Debug)]
pub enum Secret {
    /// `{TOKEN}` (verification, password reset, e-mail change).
    Token(String),
    /// `{OTP}` and `{OTP_ID}`.
    Otp {
        /// The code.
        code: String,
        /// The `_otps` id.
        id: String,
    },
    /// `{ALERT_INFO}`.
    AlertInfo(String),
}

/// `meta.appName` and `meta.appURL` (without a trailing `/`).
pub fn app_name_and_url(settings: &Value) -> (String, String) {
    let text = |pointer: &str| {
        settings
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    (
        text("/meta/appName"),
        text("/meta/appURL").trim_end_matches('/').to_string(),
    )
}

/// Renders `kind` of `collection` for `record`, addressed to `to`.
pub fn render_mail(
    settings: &Value,
    collection: &Collection,
    kind: TemplateKind,
    record: &Map<String, Value>,
    to: &str,
    secret: &Secret,
) -> Mail {
    let (app_name, app_url) = app_name_and_url(settings);
    let mut values: Vec<(&str, &str)> = vec![
        ("APP_NAME", app_name.as_str()),
        ("APP_URL", app_url.as_str()),
    ];
    match secret {
        Secret::Token(token) => values.push(("TOKEN", token)),
        Secret::Otp { code, id } => {
            values.push(("OTP", code));
            values.push(("OTP_ID", id));
        }
        Secret::AlertInfo(info) => values.push(("ALERT_INFO", info)),
    }
    let (subject, body) = kind.template(collection);
    let subject = render(&subject, &values, Some(record));
    let body = render(&body, &values, Some(record));
    Mail {
        to: to.to_string(),
        subject,
        text: plain_text(&body),
        html: html_document(&body),
        kind: kind.name(),
    }
}

/// Renders and queues an auth mail to the record's `email` (or `to` when given: the new
/// address of an e-mail change).
pub fn send(
    state: &Arc<AppState>,
    collection: &Collection,
    kind: TemplateKind,
    record: &Map<String, Value>,
    to: Option<&str>,
    secret: &Secret,
) {
    send_then(state, collection, kind, record, to, secret, None);
}

/// [`send`], then `on_sent` once the mail went out (see [`super::Mailer::enqueue_then`]).
pub fn send_then(
    state: &Arc<AppState>,
    collection: &Collection,
    kind: TemplateKind,
    record: &Map<String, Value>,
    to: Option<&str>,
    secret: &Secret,
    on_sent: Option<super::OnSent>,
) {
    let settings = state.settings();
    let to = to
        .map(str::to_string)
        .or_else(|| {
            record
                .get("email")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_default();
    let mail = render_mail(&settings, collection, kind, record, &to, secret);
    let record_id = record.get("id").and_then(Value::as_str).unwrap_or("");
    tracing::info!(
        collection = %collection.name,
        record = %record_id,
        kind = kind.name(),
        "auth mail queued"
    );
    // Through `onMailerSend` when a hook handles it.
    crate::hooks::events::send(
        state,
        SmtpConfig::from_settings(&settings),
        vec![mail.to.clone()],
        mail,
        None,
        on_sent,
    );
}
