//! The app-level hook points that are no record writes: `onMailerSend` (every mail pocketlog
//! sends) and `onRecordAuthRequest` (every auth answer), plus the hook error a request ran
//! into, for its request-log entry.
//!
//! Invariants:
//! 1. Without a handler of the event, nothing here touches a VM: a mail is queued as before,
//!    an auth answer is built as before.
//! 2. `onMailerSend` never blocks the request that sends a mail: the hook runs in a task of
//!    its own, then the (possibly edited) message is queued. A throwing handler, or one that
//!    does not call `e.next()`, stops that mail; the failure is logged with the hook's error.
//!    The superuser's test mail ([`mailer_send`]) waits for the hook, so its answer tells.
//! 3. `onRecordAuthRequest` runs after the auth checks and before the answer; its handlers may
//!    edit `e.record`, `e.token` and `e.meta`, answer themselves, or throw (the request
//!    answers the error and no token is given).
//! 4. The hook error of a request is kept in a task-local slot ([`HOOK_ERROR`]) that the
//!    request-log middleware opens per request; outside it, recording is a no-op.

use super::{parse_outcome, script_error, Loaded};
use crate::access::{Auth, RequestData};
use crate::error::{ApiError, ApiResult};
use crate::mail::{Mail, SmtpConfig};
use crate::model::Collection;
use crate::state::AppState;
use serde_json::{json, Map, Value};
use std::cell::RefCell;
use std::sync::Arc;

/// The longest hook error text kept for a request-log entry.
pub const MAX_LOGGED_ERROR_CHARS: usize = 2000;

tokio::task_local! {
    /// The hook error of the current request (see the module's invariant 4).
    pub static HOOK_ERROR: RefCell<Option<String>>;
}

/// Runs `future` with an empty hook-error slot; answers its output and the hook error it
/// recorded, if any.
pub async fn with_error_slot<F: std::future::Future>(future: F) -> (F::Output, Option<String>) {
    HOOK_ERROR
        .scope(RefCell::new(None), async move {
            let out = future.await;
            let error = HOOK_ERROR.with(|slot| slot.borrow_mut().take());
            (out, error)
        })
        .await
}

/// Records `text` as the current request's hook error (first line of the error and the
/// `at file:line:column` of its first stack frame, as the reference logs it).
pub fn record_error(text: &str) {
    let summary = summarize(text);
    let _ = HOOK_ERROR.try_with(|slot| {
        slot.borrow_mut().get_or_insert(summary);
    });
}

/// `Error: boom\n    at <anonymous> (main.pb.js:3:9)\n ...` → `Error: boom at main.pb.js:3:9`.
pub fn summarize(text: &str) -> String {
    let mut lines = text.lines();
    let head = lines.next().unwrap_or("").trim().to_string();
    let location = lines.find_map(|line| {
        let line = line.trim();
        let inner = line.strip_prefix("at ")?;
        let inner = match (inner.rfind('('), inner.rfind(')')) {
            (Some(open), Some(close)) if open < close => &inner[open + 1..close],
            _ => inner,
        };
        (inner.contains(super::HOOK_SUFFIX) || inner.contains(".js:")).then(|| inner.to_string())
    });
    let mut out = match location {
        Some(location) => format!("{head} at {location}"),
        None => head,
    };
    if out.chars().count() > MAX_LOGGED_ERROR_CHARS {
        out = out.chars().take(MAX_LOGGED_ERROR_CHARS).collect();
    }
    out
}

// ---- onMailerSend -------------------------------------------------------------------------

fn mailbox(text: &str) -> Value {
    match (text.rfind('<'), text.rfind('>')) {
        (Some(open), Some(close)) if open < close => json!({
            "name": text[..open].trim().trim_matches('"'),
            "address": text[open + 1..close].trim(),
        }),
        _ => json!({"name": "", "address": text.trim()}),
    }
}

fn mailbox_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) if !text.trim().is_empty() => Some(text.trim().to_string()),
        Value::Object(map) => {
            let address = map
                .get("address")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|a| !a.is_empty())?;
            match map
                .get("name")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|n| !n.is_empty())
            {
                Some(name) => Some(format!("{name} <{address}>")),
                None => Some(address.to_string()),
            }
        }
        _ => None,
    }
}

/// The reference's `e.message` of a mail: `{from, to, bcc, cc, subject, html, text, headers,
/// attachments, inlineAttachments}`.
pub fn message_json(
    config: &SmtpConfig,
    to: &[String],
    subject: &str,
    html: &str,
    text: &str,
) -> Value {
    json!({
        "from": {"name": config.sender_name, "address": config.sender_address},
        "to": to.iter().map(|t| mailbox(t)).collect::<Vec<_>>(),
        "bcc": [],
        "cc": [],
        "subject": subject,
        "html": html,
        "text": text,
        "headers": null,
        "attachments": null,
        "inlineAttachments": null,
    })
}

/// The mails of a (hook-edited) message: one per `to`, `cc` and `bcc` recipient, the sender
/// taken from `from` when it has an address.
pub fn mails_of(
    mut config: SmtpConfig,
    message: &Value,
    kind: &'static str,
) -> (SmtpConfig, Vec<Mail>) {
    if let Some(Value::Object(from)) = message.get("from") {
        if let Some(address) = from
            .get("address")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
        {
            config.sender_address = address.to_string();
            config.sender_name = from
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
        }
    }
    let text = |key: &str| {
        message
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let mut recipients = Vec::new();
    for key in ["to", "cc", "bcc"] {
        match message.get(key) {
            Some(Value::Array(list)) => recipients.extend(list.iter().filter_map(mailbox_text)),
            Some(one) => recipients.extend(mailbox_text(one)),
            None => {}
        }
    }
    let mails = recipients
        .into_iter()
        .map(|to| Mail {
            to,
            subject: text("subject"),
            html: text("html"),
            text: text("text"),
            kind,
        })
        .collect();
    (config, mails)
}

fn mailer_hooked(state: &AppState) -> Option<Arc<Loaded>> {
    state
        .hooks
        .current()
        .filter(|loaded| loaded.registry.has_any("onMailerSend"))
}

/// Runs `onMailerSend` for `message`: the message to send, or `None` when a handler did not
/// call `e.next()`. A throwing handler is an error (logged here).
pub async fn fire_mailer(
    state: &Arc<AppState>,
    loaded: &Loaded,
    message: Value,
) -> ApiResult<Option<Value>> {
    let original = message.clone();
    let event = json!({ "message": message });
    let out = loaded
        .pool
        .call(
            "__pl_event",
            vec!["onMailerSend".to_string(), event.to_string()],
        )
        .await
        .map_err(|err| script_error(&err.to_string()))?;
    let outcome = parse_outcome(&out).inspect_err(|err| {
        tracing::error!(target: "hooks", error = %err.message, "onMailerSend stopped a mail");
    })?;
    let raw: Value = serde_json::from_str(&out).map_err(ApiError::internal)?;
    super::writes::commit_alone(state, engine::Actor::System, outcome.writes).await?;
    if !outcome.proceed {
        return Ok(None);
    }
    Ok(Some(
        raw.get("message")
            .filter(|m| m.is_object())
            .cloned()
            .unwrap_or(original),
    ))
}

/// Queues a mail through `onMailerSend` (see invariant 2); without a handler it is queued
/// as is. `runtime`: where the hook task runs (the current runtime when `None`).
pub fn send(
    state: &Arc<AppState>,
    config: SmtpConfig,
    to: Vec<String>,
    mail: Mail,
    runtime: Option<&tokio::runtime::Handle>,
    on_sent: Option<crate::mail::OnSent>,
) {
    // `on_sent` follows the first mail (auth mails have one recipient); a mail a hook stops
    // drops it, as a failed mail does.
    let mut on_sent = on_sent;
    let Some(loaded) = mailer_hooked(state) else {
        for recipient in to {
            state.mailer.enqueue_then(
                config.clone(),
                Mail {
                    to: recipient,
                    ..mail.clone()
                },
                on_sent.take(),
            );
        }
        return;
    };
    let handle = match runtime {
        Some(handle) => handle.clone(),
        None => match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle,
            Err(_) => {
                tracing::error!(
                    kind = mail.kind,
                    "no async runtime for onMailerSend; mail dropped"
                );
                return;
            }
        },
    };
    let state = Arc::clone(state);
    handle.spawn(async move {
        let message = message_json(&config, &to, &mail.subject, &mail.html, &mail.text);
        match fire_mailer(&state, &loaded, message).await {
            Ok(Some(message)) => {
                let (config, mails) = mails_of(config, &message, mail.kind);
                for mail in mails {
                    state.mailer.enqueue_then(config.clone(), mail, on_sent.take());
                }
            }
            Ok(None) => {
                tracing::info!(target: "hooks", kind = mail.kind, "onMailerSend did not call e.next(); mail not sent");
            }
            Err(err) => {
                tracing::error!(target: "hooks", kind = mail.kind, error = %err.message, "mail not sent: onMailerSend failed");
            }
        }
    });
}

/// `onMailerSend` for a mail sent right away (the test e-mail): the mail to send (`None`:
/// a handler stopped it) or the hook's error.
pub async fn mailer_send(
    state: &Arc<AppState>,
    config: SmtpConfig,
    mail: Mail,
) -> ApiResult<Option<(SmtpConfig, Mail)>> {
    let Some(loaded) = mailer_hooked(state) else {
        return Ok(Some((config, mail)));
    };
    let message = message_json(
        &config,
        std::slice::from_ref(&mail.to),
        &mail.subject,
        &mail.html,
        &mail.text,
    );
    let Some(message) = fire_mailer(state, &loaded, message).await? else {
        return Ok(None);
    };
    // The first recipient's mail is sent now (its answer reports the SMTP error); the
    // recipients a handler added are queued.
    let (config, mails) = mails_of(config, &message, mail.kind);
    let mut mails = mails.into_iter();
    let first = mails.next();
    for extra in mails {
        state.mailer.enqueue(config.clone(), extra);
    }
    Ok(first.map(|mail| (config, mail)))
}

// ---- onRecordAuthRequest ------------------------------------------------------------------

/// How a caller authenticated, as the reference's `e.authMethod` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// `auth-with-password`.
    Password,
    /// `auth-with-otp`.
    Otp,
    /// `auth-with-oauth2`.
    OAuth2,
    /// `auth-refresh`, impersonation: `""` on the reference.
    Other,
}

impl AuthMethod {
    /// The reference's name.
    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::Password => "password",
            AuthMethod::Otp => "otp",
            AuthMethod::OAuth2 => "oauth2",
            AuthMethod::Other => "",
        }
    }
}

/// An auth answer before `onRecordAuthRequest`.
pub struct AuthAnswer {
    /// The authenticated record (stored form).
    pub record: Map<String, Value>,
    /// The token.
    pub token: String,
    /// `meta` (OAuth2's user; `None`: not in the answer).
    pub meta: Option<Value>,
}

/// Runs `onRecordAuthRequest` on `answer`: the answer to give (as the handlers left it), or
/// the response a handler set instead.
pub async fn auth_request(
    state: &Arc<AppState>,
    collection: &Arc<Collection>,
    method: AuthMethod,
    data: &RequestData,
    answer: AuthAnswer,
) -> ApiResult<super::records::Flow<AuthAnswer>> {
    use super::records::Flow;
    const NAME: &str = "onRecordAuthRequest";
    let Some(loaded) = state
        .hooks
        .current()
        .filter(|loaded| loaded.registry.has(NAME, collection))
    else {
        return Ok(Flow::Go(answer, super::writes::Joined::default()));
    };
    let auth = Auth {
        collection: Arc::clone(collection),
        record: answer.record.clone(),
    };
    let event = json!({
        "collection": collection.to_json(),
        "record": answer.record,
        "token": answer.token,
        "meta": answer.meta,
        "authMethod": method.name(),
        "request": super::records::request_json(Some(&auth), data),
    });
    let out = loaded
        .pool
        .call("__pl_auth", vec![event.to_string()])
        .await
        .map_err(|err| script_error(&err.to_string()))?;
    let mut outcome = parse_outcome(&out)?;
    let raw: Value = serde_json::from_str(&out).map_err(ApiError::internal)?;
    let writes = std::mem::take(&mut outcome.writes);
    super::writes::commit_alone(state, crate::access::actor_of(Some(&auth)), writes).await?;
    if !outcome.proceed {
        return Ok(Flow::Respond(super::records::stopped(&outcome)));
    }
    let record = outcome.record.unwrap_or(answer.record);
    let token = raw
        .get("token")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or(answer.token);
    let meta = raw.get("meta").cloned().filter(|meta| !meta.is_null());
    Ok(Flow::Go(
        AuthAnswer {
            record,
            token,
            meta,
        },
        super::writes::Joined::default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_summarized_with_file_and_line() {
        let text =
            "Error: boom\n    at <anonymous> (main.pb.js:3:9)\n    at __runChain (prelude:1:2)";
        assert_eq!(summarize(text), "Error: boom at main.pb.js:3:9");
        assert_eq!(summarize("Error: plain"), "Error: plain");
    }

    #[test]
    fn messages_round_trip_to_mails() {
        let config = SmtpConfig::from_settings(
            &json!({"meta": {"senderAddress": "s@x.io", "senderName": "S"}}),
        );
        let message = message_json(&config, &["A <a@x.io>".to_string()], "sub", "<p>h</p>", "h");
        assert_eq!(message["to"][0], json!({"name": "A", "address": "a@x.io"}));
        assert_eq!(message["from"]["address"], "s@x.io");
        let mut edited = message.clone();
        edited["cc"] = json!([{"address": "c@x.io"}]);
        edited["from"] = json!({"address": "f@x.io", "name": ""});
        let (config, mails) = mails_of(config, &edited, "hook");
        assert_eq!(config.sender_address, "f@x.io");
        let to: Vec<_> = mails.iter().map(|m| m.to.as_str()).collect();
        assert_eq!(to, ["A <a@x.io>", "c@x.io"]);
        assert_eq!(mails[0].subject, "sub");
    }
}
