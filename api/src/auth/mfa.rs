//! Multi-factor authentication, as measured on PocketBase v0.40.6: with `mfa.enabled`, a
//! successful first factor (password or OTP) without `mfaId` answers 401 `{"mfaId": …}` and
//! commits an `_mfas` row (`collectionRef`, `recordRef`, `method`); a second factor with that
//! `mfaId` completes the login when its method differs (same method: 400 `A different
//! authentication method is required.`; unknown, expired (`mfa.duration`), another record's
//! or already used: 400 `Invalid or expired MFA session.`). A completed session's row is
//! deleted.
//!
//! Invariants: `_mfas` rows are log commits; a session is consumed inside the write command
//! that re-reads it, so it completes at most one login; expired rows of the record are
//! deleted when a new session starts. `mfa.rule` (as the reference): empty = every record,
//! else MFA applies only to the records that match the rule (evaluated like the authRule,
//! with the record as `@request.auth`); a rule that does not parse applies MFA (fails safe).

use crate::auth::token;
use crate::error::{ApiError, ApiResult};
use crate::model::record::{self, from_row, to_storage};
use crate::model::Collection;
use crate::state::AppState;
use engine::{Change, Tx, Value as SqlValue};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Name of the system collection holding pending sessions.
pub const MFAS: &str = "_mfas";
/// `mfa.duration` (seconds) when unset.
pub const MFA_DURATION_DEFAULT: i64 = 600;

const INVALID_SESSION: &str = "Invalid or expired MFA session.";

/// A first or second factor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `auth-with-password`.
    Password,
    /// `auth-with-otp`.
    Otp,
    /// `auth-with-oauth2`.
    OAuth2,
}

impl Method {
    /// The `_mfas.method` value.
    pub fn name(self) -> &'static str {
        match self {
            Method::Password => "password",
            Method::Otp => "otp",
            Method::OAuth2 => "oauth2",
        }
    }
}

/// What the login does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Issue the auth token.
    Complete,
    /// Answer 401 with this `mfaId`.
    Pending(String),
}

fn text_of<'a>(record: &'a Map<String, Value>, key: &str) -> &'a str {
    record.get(key).and_then(Value::as_str).unwrap_or("")
}

fn mfa_settings(collection: &Collection) -> Option<i64> {
    let mfa = collection.auth_option("mfa");
    mfa.get("enabled")
        .and_then(Value::as_bool)
        .unwrap_or(false)
        .then(|| {
            mfa.get("duration")
                .and_then(Value::as_i64)
                .filter(|d| *d > 0)
                .unwrap_or(MFA_DURATION_DEFAULT)
        })
}

/// Whether MFA is on for the collection.
pub fn enabled(collection: &Collection) -> bool {
    mfa_settings(collection).is_some()
}

fn expired(created: &str, duration_secs: i64, now_ms: i64) -> bool {
    chrono::NaiveDateTime::parse_from_str(created, "%Y-%m-%d %H:%M:%S%.3fZ")
        .map(|at| at.and_utc().timestamp_millis() + duration_secs * 1000 <= now_ms)
        .unwrap_or(true)
}

/// Called after a factor succeeded for `record`: starts a session (no `mfa_id`), completes
/// one (a valid `mfa_id` of another method), or refuses.
pub async fn after_factor(
    state: &Arc<AppState>,
    collection: &Arc<Collection>,
    record: &Map<String, Value>,
    method: Method,
    mfa_id: &str,
) -> ApiResult<Next> {
    let Some(duration) = mfa_settings(collection) else {
        return Ok(Next::Complete);
    };
    if !rule_applies(state, collection, record).await? {
        return Ok(Next::Complete);
    }
    let mfas = state
        .schema()
        .find(MFAS)
        .cloned()
        .ok_or_else(|| ApiError::internal("the _mfas system collection is missing"))?;
    let actor = engine::Actor::Record {
        collection_id: collection.id.clone(),
        id: text_of(record, "id").to_string(),
    };
    let (collection_id, record_id) = (collection.id.clone(), text_of(record, "id").to_string());
    let mfa_id = mfa_id.to_string();
    let outcome = state
        .write(actor, move |tx| {
            if mfa_id.is_empty() {
                start(tx, &mfas, &collection_id, &record_id, method, duration).map(Next::Pending)
            } else {
                complete(
                    tx,
                    &mfas,
                    &collection_id,
                    &record_id,
                    method,
                    duration,
                    &mfa_id,
                )
                .map(|()| Next::Complete)
            }
        })
        .await?;
    Ok(outcome.value)
}

/// Checks a presented `mfaId` before the factor consumes anything (an OTP used as the second
/// factor is only spent when the session can complete): unknown, another collection's or
/// expired → `Invalid or expired MFA session.`, same method → `A different authentication
/// method is required.`. The full check runs again in [`after_factor`]'s command.
pub async fn precheck(
    state: &Arc<AppState>,
    collection: &Arc<Collection>,
    method: Method,
    mfa_id: &str,
) -> ApiResult<()> {
    let Some(duration) = mfa_settings(collection) else {
        return Ok(());
    };
    if mfa_id.is_empty() {
        return Ok(());
    }
    let mfas = state
        .schema()
        .find(MFAS)
        .cloned()
        .ok_or_else(|| ApiError::internal("the _mfas system collection is missing"))?;
    let sql = format!(
        "SELECT * FROM {} WHERE id = ?1",
        engine::quote_ident(&mfas.name)
    );
    let params = vec![SqlValue::Text(mfa_id.to_string())];
    let rows = state.read(move |conn| conn.query(&sql, &params)).await?;
    let row = rows
        .rows
        .first()
        .map(|row| from_row(&mfas, &rows.columns, row))
        .filter(|row| text_of(row, "collectionRef") == collection.id)
        .filter(|row| {
            !expired(
                text_of(row, "created"),
                duration,
                chrono::Utc::now().timestamp_millis(),
            )
        })
        .ok_or_else(|| ApiError::bad_request(INVALID_SESSION))?;
    if text_of(&row, "method") == method.name() {
        return Err(ApiError::bad_request(
            "A different authentication method is required.",
        ));
    }
    Ok(())
}

/// Whether `mfa.rule` selects the record (empty rule: every record).
async fn rule_applies(
    state: &Arc<AppState>,
    collection: &Arc<Collection>,
    record: &Map<String, Value>,
) -> ApiResult<bool> {
    let option = collection.auth_option("mfa");
    let text = option.get("rule").and_then(Value::as_str).unwrap_or("");
    if text.trim().is_empty() {
        return Ok(true);
    }
    let Ok(expr) = rules::parse_rule(text) else {
        tracing::warn!(collection = %collection.name, "mfa.rule does not parse; MFA applies");
        return Ok(true);
    };
    let schema = state.schema();
    let auth = Some(crate::access::Auth {
        collection: Arc::clone(collection),
        record: record.clone(),
    });
    let info = crate::access::request_info(
        &auth,
        &crate::access::RequestData {
            method: "POST".into(),
            context: "default".into(),
            ..Default::default()
        },
    );
    let mut clause = crate::access::Where::default();
    if clause
        .add(&schema, collection, &expr, &info, false)
        .is_err()
    {
        return Ok(true);
    }
    clause.add_eq("id", SqlValue::Text(text_of(record, "id").to_string()));
    let sql = format!(
        "SELECT 1 FROM {} {} {} {} LIMIT 1",
        engine::quote_ident(&collection.name),
        crate::access::MAIN,
        clause.joins_sql(),
        clause.where_sql()
    );
    let params = clause.engine_params();
    let rows = state.read(move |conn| conn.query(&sql, &params)).await?;
    Ok(!rows.is_empty())
}

fn start(
    tx: &mut Tx<'_>,
    mfas: &Collection,
    collection_id: &str,
    record_id: &str,
    method: Method,
    duration: i64,
) -> ApiResult<String> {
    let sql = format!(
        "SELECT * FROM {} WHERE collectionRef = ?1 AND recordRef = ?2",
        engine::quote_ident(&mfas.name)
    );
    let rows = tx
        .query(
            &sql,
            &[
                SqlValue::Text(collection_id.to_string()),
                SqlValue::Text(record_id.to_string()),
            ],
        )
        .map_err(ApiError::from)?;
    let now = tx.timestamp_ms();
    for row in &rows.rows {
        let row = from_row(mfas, &rows.columns, row);
        if expired(text_of(&row, "created"), duration, now) {
            tx.stage(Change::RecordDeleted {
                collection_id: mfas.id.clone(),
                id: text_of(&row, "id").to_string(),
                old: to_storage(mfas, &row),
            })
            .map_err(ApiError::from)?;
        }
    }
    let id = token::new_record_id();
    let created = record::format_ms(now);
    let row = json!({"id": id, "collectionRef": collection_id, "recordRef": record_id,
        "method": method.name(), "created": created, "updated": created});
    let row = row.as_object().cloned().unwrap_or_default();
    tx.stage(Change::RecordCreated {
        collection_id: mfas.id.clone(),
        id: id.clone(),
        values: to_storage(mfas, &row),
    })
    .map_err(ApiError::from)?;
    Ok(id)
}

fn complete(
    tx: &mut Tx<'_>,
    mfas: &Collection,
    collection_id: &str,
    record_id: &str,
    method: Method,
    duration: i64,
    mfa_id: &str,
) -> ApiResult<()> {
    let invalid = || ApiError::bad_request(INVALID_SESSION);
    let sql = format!(
        "SELECT * FROM {} WHERE id = ?1",
        engine::quote_ident(&mfas.name)
    );
    let rows = tx
        .query(&sql, &[SqlValue::Text(mfa_id.to_string())])
        .map_err(ApiError::from)?;
    let row = rows
        .rows
        .first()
        .map(|row| from_row(mfas, &rows.columns, row))
        .filter(|row| {
            text_of(row, "collectionRef") == collection_id && text_of(row, "recordRef") == record_id
        })
        .ok_or_else(invalid)?;
    if expired(text_of(&row, "created"), duration, tx.timestamp_ms()) {
        return Err(invalid());
    }
    if text_of(&row, "method") == method.name() {
        return Err(ApiError::bad_request(
            "A different authentication method is required.",
        ));
    }
    tx.stage(Change::RecordDeleted {
        collection_id: mfas.id.clone(),
        id: mfa_id.to_string(),
        old: to_storage(mfas, &row),
    })
    .map_err(ApiError::from)
}
