//! Login alerts, as measured on PocketBase v0.40.6: after a completed sign-in (password, OTP,
//! OAuth2 — not `auth-refresh`, not a first factor that answered an `mfaId`) of a record of a
//! collection with `authAlert.enabled`, the sign-in's origin is the fingerprint
//! `md5(realIP + userAgent[..300])` (hex). Each record keeps its origins in `_authOrigins`:
//! a known origin gets its `updated` bumped; a new one is added and, unless it is the
//! record's first origin ever or the record has no e-mail, the "Login from a new location"
//! mail (`authAlert.emailTemplate`) is queued with `{ALERT_INFO}` =
//! `<now> - <ip> <userAgent>`. Only the [`ORIGINS_KEPT`] most recent origins of a record
//! are kept.
//!
//! Invariants: the origin rows are log commits (one commit per sign-in, origin update and
//! pruning together); the mail goes through the mail queue (no request waits for SMTP). As
//! on the reference, which skips saving a new origin when its alert mail fails, a new origin
//! that needs an alert is committed only after the mail went out (the queue's `on_sent`; a
//! mail logged because SMTP is off counts as sent); when delivery gives up, the origin stays
//! unknown and the next sign-in from it alerts again. A failure here never fails the sign-in
//! (the reference logs a warning), it is logged.

use crate::auth::token;
use crate::error::{ApiError, ApiResult};
use crate::mail::auth::Secret;
use crate::mail::template::TemplateKind;
use crate::model::record::{self, from_row, to_storage};
use crate::model::Collection;
use crate::state::AppState;
use engine::{Change, Value as SqlValue};
use md5::{Digest, Md5};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// The system collection of the origins.
pub const AUTH_ORIGINS: &str = "_authOrigins";
/// Origins kept per record (the reference keeps the 5 most recent).
pub const ORIGINS_KEPT: usize = 5;
/// The user agent is cut to this many bytes for the fingerprint.
pub const USER_AGENT_MAX: usize = 300;

fn text<'a>(record: &'a Map<String, Value>, key: &str) -> &'a str {
    record.get(key).and_then(Value::as_str).unwrap_or("")
}

fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The reference's fingerprint of a sign-in origin.
pub fn fingerprint(ip: &str, user_agent: &str) -> String {
    let digest = Md5::digest(format!("{ip}{}", cut(user_agent, USER_AGENT_MAX)).as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether the collection sends login alerts.
pub fn enabled(collection: &Collection) -> bool {
    collection
        .auth_option("authAlert")
        .get("enabled")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Records the origin of a completed sign-in and mails the alert when it is new (see the
/// module doc). Never fails the sign-in.
pub async fn after_sign_in(
    state: &Arc<AppState>,
    collection: &Arc<Collection>,
    record: &Map<String, Value>,
    ip: &str,
    user_agent: &str,
) {
    if !enabled(collection) {
        return;
    }
    let alerting = !text(record, "email").is_empty()
        && match needs_alert(state, collection, record, ip, user_agent).await {
            Ok(needs) => needs,
            Err(err) => {
                tracing::warn!(error = %err.message, "failed to read the sign-in origins");
                return;
            }
        };
    if !alerting {
        if let Err(err) = record_origin(state, collection, record, ip, user_agent).await {
            tracing::warn!(error = %err.message, "failed to record the sign-in origin");
        }
        return;
    }
    // A new origin: it is recorded only once its alert went out (as the reference, which
    // skips saving it when the mail fails, so the next sign-in from it alerts again).
    let now = record::format_ms(chrono::Utc::now().timestamp_millis());
    let info = format!("{now} - {ip} {}", cut(user_agent, USER_AGENT_MAX));
    let runtime = tokio::runtime::Handle::current();
    let (app, origin_collection, origin_record) =
        (Arc::clone(state), Arc::clone(collection), record.clone());
    let (ip_owned, agent_owned) = (ip.to_string(), user_agent.to_string());
    let on_sent: crate::mail::OnSent = Box::new(move || {
        runtime.spawn(async move {
            if let Err(err) = record_origin(
                &app,
                &origin_collection,
                &origin_record,
                &ip_owned,
                &agent_owned,
            )
            .await
            {
                tracing::warn!(error = %err.message, "failed to record the sign-in origin");
            }
        });
    });
    crate::mail::auth::send_then(
        state,
        collection,
        TemplateKind::LoginAlert,
        record,
        None,
        &Secret::AlertInfo(info),
        Some(on_sent),
    );
}

/// Whether this origin is new and not the record's first (read only; [`record_origin`]
/// decides again inside its write).
async fn needs_alert(
    state: &Arc<AppState>,
    collection: &Arc<Collection>,
    record: &Map<String, Value>,
    ip: &str,
    user_agent: &str,
) -> ApiResult<bool> {
    let print = fingerprint(ip, user_agent);
    let sql = format!(
        "SELECT fingerprint FROM {} WHERE collectionRef = ?1 AND recordRef = ?2",
        engine::quote_ident(AUTH_ORIGINS)
    );
    let params = vec![
        SqlValue::Text(collection.id.clone()),
        SqlValue::Text(text(record, "id").to_string()),
    ];
    let rows = state.read(move |conn| conn.query(&sql, &params)).await?;
    let known = rows
        .rows
        .iter()
        .any(|row| row.first().and_then(|value| value.as_str()) == Some(print.as_str()));
    Ok(!rows.rows.is_empty() && !known)
}

/// Commits the origin; true when it is new and not the record's first.
async fn record_origin(
    state: &Arc<AppState>,
    collection: &Arc<Collection>,
    record: &Map<String, Value>,
    ip: &str,
    user_agent: &str,
) -> ApiResult<bool> {
    let origins = state
        .schema()
        .find(AUTH_ORIGINS)
        .cloned()
        .ok_or_else(|| ApiError::internal("the _authOrigins system collection is missing"))?;
    let print = fingerprint(ip, user_agent);
    let (collection_id, record_id) = (collection.id.clone(), text(record, "id").to_string());
    let actor = engine::Actor::Record {
        collection_id: collection_id.clone(),
        id: record_id.clone(),
    };
    let outcome = state
        .write(actor, move |tx| {
            let sql = format!(
                "SELECT * FROM {} WHERE collectionRef = ?1 AND recordRef = ?2 ORDER BY created DESC, rowid DESC",
                engine::quote_ident(&origins.name)
            );
            let rows = tx
                .query(
                    &sql,
                    &[
                        SqlValue::Text(collection_id.clone()),
                        SqlValue::Text(record_id.clone()),
                    ],
                )
                .map_err(ApiError::from)?;
            let existing: Vec<Map<String, Value>> = rows
                .rows
                .iter()
                .map(|row| from_row(&origins, &rows.columns, row))
                .collect();
            let first = existing.is_empty();
            let now = record::format_ms(tx.timestamp_ms());
            let current = existing
                .iter()
                .find(|row| text(row, "fingerprint") == print)
                .cloned();
            let is_new = current.is_none();
            let current_id = match current {
                Some(mut row) => {
                    row.insert("updated".into(), json!(now));
                    let id = text(&row, "id").to_string();
                    tx.stage(Change::RecordUpdated {
                        collection_id: origins.id.clone(),
                        id: id.clone(),
                        values: to_storage(&origins, &row),
                    })
                    .map_err(ApiError::from)?;
                    id
                }
                None => {
                    let id = token::new_record_id();
                    let row = json!({"id": id, "collectionRef": collection_id,
                        "recordRef": record_id, "fingerprint": print,
                        "created": now, "updated": now});
                    let row = row.as_object().cloned().unwrap_or_default();
                    tx.stage(Change::RecordCreated {
                        collection_id: origins.id.clone(),
                        id: id.clone(),
                        values: to_storage(&origins, &row),
                    })
                    .map_err(ApiError::from)?;
                    id
                }
            };
            // Keep the most recent ones (the current one always stays).
            let keep_before = ORIGINS_KEPT.saturating_sub(1);
            for row in existing.iter().skip(keep_before) {
                if text(row, "id") == current_id {
                    continue;
                }
                tx.stage(Change::RecordDeleted {
                    collection_id: origins.id.clone(),
                    id: text(row, "id").to_string(),
                    old: to_storage(&origins, row),
                })
                .map_err(ApiError::from)?;
            }
            Ok(is_new && !first)
        })
        .await?;
    Ok(outcome.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_the_references_md5() {
        // Measured: a sign-in from 127.0.0.1 with user agent `ua-A`.
        assert_eq!(
            fingerprint("127.0.0.1", "ua-A"),
            "95a29056546061617c69e3bdbb0ec619"
        );
        assert_eq!(cut("ééé", 3), "é");
    }
}
