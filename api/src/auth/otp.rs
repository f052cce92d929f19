//! One-time passwords (`request-otp`, `auth-with-otp`), as measured on PocketBase v0.40.6:
//! - with `otp.enabled` false both answer 403 `The collection is not configured to allow OTP
//!   authentication.`;
//! - `request-otp {email}` answers 200 `{"otpId": …}` whether or not the address belongs to a
//!   record (an unknown address gets a fresh random id and nothing is stored or sent); for a
//!   record, an `_otps` row (`collectionRef`, `recordRef`, hashed `password`, `sentTo`) is
//!   committed and a code of `otp.length` digits is mailed with `otp.emailTemplate`;
//! - `auth-with-otp {otpId, password}`: a wrong, unknown, used or expired code is 400
//!   `Invalid or expired OTP.`; after [`OTP_MAX_FAILURES`] wrong codes for a record, every
//!   attempt for it is 429 `Too many attempts, please try again later with a new OTP.` for
//!   [`OTP_LOCK_WINDOW`]; success answers like a password login, deletes the `_otps` row and,
//!   when the record was unverified and the code went to its current address, marks it
//!   verified and gives it a random password and a new token key (measured: a password
//!   sign-in fails afterwards; whoever pre-registered someone else's address loses it).
//!
//! Invariants: `_otps` rows are written through the log like every record (commits with the
//! record as actor); a code is consumed inside the write command that re-reads the row, so
//! it opens at most one session; expired rows of a record are deleted when it asks for a new
//! code or presents an expired one; codes are stored hashed; the failure table is bounded
//! ([`OTP_FAILURE_ENTRIES_MAX`]).

use crate::auth::{password, token};
use crate::error::{field_error, ApiError, ApiResult};
use crate::mail::auth::Secret;
use crate::mail::template::TemplateKind;
use crate::model::record::{self, from_row, is_email, to_storage};
use crate::model::Collection;
use crate::state::AppState;
use axum::http::StatusCode;
use engine::{Change, Tx, Value as SqlValue};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const VALIDATION_FAILED: &str = "An error occurred while validating the submitted data.";
/// Name of the system collection holding pending codes.
pub const OTPS: &str = "_otps";
/// Wrong codes per record before attempts are refused with 429 (measured: the sixth).
pub const OTP_MAX_FAILURES: u32 = 5;
/// How long a record stays locked after its first counted failure.
pub const OTP_LOCK_WINDOW: Duration = Duration::from_secs(600);
/// Unexpired codes one record may hold; a `request-otp` beyond it stores and mails nothing
/// and answers the newest code's `otpId` (measured on the reference: 10 of 100 requests for
/// one address were mailed, the 11th and later answered 200 with the 10th's id).
pub const OTP_CODES_PER_RECORD_MAX: usize = 10;
/// Records tracked in the failure table at most (expired entries are pruned first).
pub const OTP_FAILURE_ENTRIES_MAX: usize = 100_000;
/// Bounds of a collection's `otp.length`.
pub const OTP_LENGTH_RANGE: (usize, usize) = (4, 32);
/// `otp.length` when unset.
pub const OTP_LENGTH_DEFAULT: usize = 8;
/// Length of the random password an unverified record gets on its first OTP sign-in.
pub const RESET_PASSWORD_LEN: usize = 30;
/// `otp.duration` (seconds) when unset.
pub const OTP_DURATION_DEFAULT: i64 = 180;

const INVALID_OTP: &str = "Invalid or expired OTP.";
const TOO_MANY: &str = "Too many attempts, please try again later with a new OTP.";

/// Failed code attempts per record (in memory).
#[derive(Default)]
pub struct Failures {
    table: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Failures {
    fn locked(&self, key: &str) -> bool {
        let Ok(table) = self.table.lock() else {
            return true;
        };
        table.get(key).is_some_and(|(count, since)| {
            *count >= OTP_MAX_FAILURES && since.elapsed() < OTP_LOCK_WINDOW
        })
    }

    fn fail(&self, key: &str) {
        let Ok(mut table) = self.table.lock() else {
            return;
        };
        if table.len() >= OTP_FAILURE_ENTRIES_MAX {
            table.retain(|_, (_, since)| since.elapsed() < OTP_LOCK_WINDOW);
        }
        if table.len() >= OTP_FAILURE_ENTRIES_MAX && !table.contains_key(key) {
            tracing::warn!("otp failure table full; failure not counted");
            return;
        }
        let entry = table.entry(key.to_string()).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= OTP_LOCK_WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }

    fn clear(&self, key: &str) {
        if let Ok(mut table) = self.table.lock() {
            table.remove(key);
        }
    }
}

fn text_of<'a>(record: &'a Map<String, Value>, key: &str) -> &'a str {
    record.get(key).and_then(Value::as_str).unwrap_or("")
}

fn require_enabled(collection: &Collection) -> ApiResult<Value> {
    let otp = collection.auth_option("otp");
    if otp.get("enabled").and_then(Value::as_bool).unwrap_or(false) {
        Ok(otp)
    } else {
        Err(ApiError::forbidden(
            "The collection is not configured to allow OTP authentication.",
        ))
    }
}

fn otps_collection(state: &AppState) -> ApiResult<Arc<Collection>> {
    state
        .schema()
        .find(OTPS)
        .cloned()
        .ok_or_else(|| ApiError::internal("the _otps system collection is missing"))
}

fn expired(created: &str, duration_secs: i64, now_ms: i64) -> bool {
    chrono::NaiveDateTime::parse_from_str(created, "%Y-%m-%d %H:%M:%S%.3fZ")
        .map(|at| at.and_utc().timestamp_millis() + duration_secs * 1000 <= now_ms)
        .unwrap_or(true)
}

fn duration_of(otp: &Value) -> i64 {
    otp.get("duration")
        .and_then(Value::as_i64)
        .filter(|d| *d > 0)
        .unwrap_or(OTP_DURATION_DEFAULT)
}

/// `request-otp`: the `otpId` to answer.
pub async fn request(
    state: &Arc<AppState>,
    collection: &Arc<Collection>,
    email: &str,
) -> ApiResult<String> {
    let otp = require_enabled(collection)?;
    let email = email.trim();
    let item = if email.is_empty() {
        Some(field_error("validation_required", "Cannot be blank.", None))
    } else if !is_email(email) {
        Some(field_error(
            "validation_is_email",
            "Must be a valid email address.",
            None,
        ))
    } else {
        None
    };
    if let Some(item) = item {
        let mut data = Map::new();
        data.insert("email".into(), item);
        return Err(ApiError::validation(VALIDATION_FAILED, data));
    }
    let otp_id = token::new_record_id();
    let Some(found) = crate::records::query::find_by_email(state, collection, email).await? else {
        return Ok(otp_id);
    };
    let sent_to = text_of(&found, "email").to_string();
    let (otp_id, code) = match issue(state, collection, &otp, &found, &sent_to, otp_id, true)
        .await?
    {
        Issued::New { id, code } => (id, code),
        Issued::Capped { newest } => {
            tracing::info!(
                collection = %collection.name,
                "request-otp: the record holds {OTP_CODES_PER_RECORD_MAX} unexpired codes; no new code is mailed"
            );
            return Ok(newest);
        }
    };
    crate::mail::auth::send(
        state,
        collection,
        TemplateKind::Otp,
        &found,
        Some(&sent_to),
        &Secret::Otp {
            code,
            id: otp_id.clone(),
        },
    );
    Ok(otp_id)
}

/// What [`issue`] did.
enum Issued {
    /// A new code was stored.
    New { id: String, code: String },
    /// The record holds [`OTP_CODES_PER_RECORD_MAX`] unexpired codes: nothing was stored;
    /// the newest one's id.
    Capped { newest: String },
}

/// Stores a new code for `found` (its expired codes are deleted in the same commit);
/// `sent_to` is where the code goes ("" when it is mailed nowhere). With `capped`, a record
/// that already holds [`OTP_CODES_PER_RECORD_MAX`] unexpired codes gets none (decided in the
/// write command, so concurrent requests cannot pass the cap).
async fn issue(
    state: &Arc<AppState>,
    collection: &Arc<Collection>,
    otp: &Value,
    found: &Map<String, Value>,
    sent_to: &str,
    otp_id: String,
    capped: bool,
) -> ApiResult<Issued> {
    let length = otp
        .get("length")
        .and_then(Value::as_u64)
        .and_then(|l| usize::try_from(l).ok())
        .unwrap_or(OTP_LENGTH_DEFAULT)
        .clamp(OTP_LENGTH_RANGE.0, OTP_LENGTH_RANGE.1);
    let code = token::random_string(length, b"0123456789");
    let plain = code.clone();
    let hash = tokio::task::spawn_blocking(move || password::hash_password(&plain))
        .await
        .map_err(ApiError::internal)?;
    let otps = otps_collection(state)?;
    let record_id = text_of(found, "id").to_string();
    let actor = engine::Actor::Record {
        collection_id: collection.id.clone(),
        id: record_id.clone(),
    };
    let (collection_id, id) = (collection.id.clone(), otp_id.clone());
    let duration = duration_of(otp);
    let to = sent_to.to_string();
    let outcome = state
        .write(actor, move |tx| {
            let live = delete_expired(tx, &otps, &collection_id, &record_id, duration)?;
            if capped && live.len() >= OTP_CODES_PER_RECORD_MAX {
                let newest = live.last().cloned().unwrap_or_default();
                return Ok(Some(newest));
            }
            let now = record::format_ms(tx.timestamp_ms());
            let row = json!({"id": id, "collectionRef": collection_id, "recordRef": record_id,
                "password": hash, "sentTo": to, "created": now, "updated": now});
            let row = row.as_object().cloned().unwrap_or_default();
            tx.stage(Change::RecordCreated {
                collection_id: otps.id.clone(),
                id,
                values: to_storage(&otps, &row),
            })
            .map_err(ApiError::from)?;
            Ok(None)
        })
        .await?;
    Ok(match outcome.value {
        Some(newest) => Issued::Capped { newest },
        None => Issued::New { id: otp_id, code },
    })
}

/// `pocketlog superuser otp`: a code for the superuser `email` (no mail is sent), as the
/// reference's CLI: `(otpId, code, validity in seconds)`; errors are its messages.
pub async fn issue_for_cli(
    state: &Arc<AppState>,
    collection: &Arc<Collection>,
    email: &str,
) -> Result<(String, String, i64), String> {
    let otp = collection.auth_option("otp");
    if !otp.get("enabled").and_then(Value::as_bool).unwrap_or(false) {
        return Err(format!(
            "OTP auth is not enabled for the {} collection",
            collection.name
        ));
    }
    let Some(found) = crate::records::query::find_by_email(state, collection, email)
        .await
        .map_err(|e| e.message)?
    else {
        return Err(format!("superuser with email \"{email}\" doesn't exist"));
    };
    match issue(
        state,
        collection,
        &otp,
        &found,
        "",
        token::new_record_id(),
        false,
    )
    .await
    .map_err(|e| e.message)?
    {
        Issued::New { id, code } => Ok((id, code, duration_of(&otp))),
        Issued::Capped { .. } => Err("no OTP was created".into()),
    }
}

/// Stages the deletion of the record's expired codes; returns the ids of the unexpired ones,
/// oldest first.
fn delete_expired(
    tx: &mut Tx<'_>,
    otps: &Collection,
    collection_id: &str,
    record_id: &str,
    duration_secs: i64,
) -> ApiResult<Vec<String>> {
    let sql = format!(
        "SELECT * FROM {} WHERE collectionRef = ?1 AND recordRef = ?2 ORDER BY rowid",
        engine::quote_ident(&otps.name)
    );
    let mut live = Vec::new();
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
        let row = from_row(otps, &rows.columns, row);
        if expired(text_of(&row, "created"), duration_secs, now) {
            tx.stage(Change::RecordDeleted {
                collection_id: otps.id.clone(),
                id: text_of(&row, "id").to_string(),
                old: to_storage(otps, &row),
            })
            .map_err(ApiError::from)?;
        } else {
            live.push(text_of(&row, "id").to_string());
        }
    }
    Ok(live)
}

/// `auth-with-otp`: the authenticated record (the code consumed).
pub async fn authenticate(
    state: &Arc<AppState>,
    collection: &Arc<Collection>,
    otp_id: &str,
    code: &str,
) -> ApiResult<Map<String, Value>> {
    let otp = require_enabled(collection)?;
    let mut data = Map::new();
    for (key, value) in [("otpId", otp_id), ("password", code)] {
        if value.is_empty() {
            data.insert(
                key.into(),
                field_error("validation_required", "Cannot be blank.", None),
            );
        }
    }
    if !data.is_empty() {
        return Err(ApiError::validation(VALIDATION_FAILED, data));
    }
    let invalid = || ApiError::bad_request(INVALID_OTP);
    let otps = otps_collection(state)?;
    let row = crate::access::load_record(state, &otps, otp_id)
        .await?
        .filter(|row| text_of(row, "collectionRef") == collection.id);
    let Some(row) = row else {
        let plain = code.to_string();
        tokio::task::spawn_blocking(move || password::dummy_verify(&plain))
            .await
            .map_err(ApiError::internal)?;
        return Err(invalid());
    };
    let record_id = text_of(&row, "recordRef").to_string();
    let key = format!("{}/{record_id}", collection.id);
    if state.otp_failures.locked(&key) {
        return Err(ApiError::new(StatusCode::TOO_MANY_REQUESTS, TOO_MANY));
    }
    let actor = engine::Actor::Record {
        collection_id: collection.id.clone(),
        id: record_id.clone(),
    };
    let duration = duration_of(&otp);
    if expired(
        text_of(&row, "created"),
        duration,
        chrono::Utc::now().timestamp_millis(),
    ) {
        let (target, collection_id, record) =
            (Arc::clone(&otps), collection.id.clone(), record_id.clone());
        state
            .write(actor, move |tx| {
                delete_expired(tx, &target, &collection_id, &record, duration)
            })
            .await?;
        return Err(invalid());
    }
    let (plain, hash) = (code.to_string(), text_of(&row, "password").to_string());
    let matches = tokio::task::spawn_blocking(move || password::verify_password(&plain, &hash))
        .await
        .map_err(ApiError::internal)?;
    if !matches {
        state.otp_failures.fail(&key);
        return Err(invalid());
    }
    // An unverified record signing in with a code sent to its address gets verified and a
    // random password (as the reference: whoever pre-registered the address loses it).
    let unverified = crate::access::load_record(state, collection, &record_id)
        .await?
        .is_some_and(|record| {
            !record
                .get("verified")
                .and_then(Value::as_bool)
                .unwrap_or(false)
        });
    let reset_hash = if unverified {
        let random = token::random_string(RESET_PASSWORD_LEN, token::ALPHANUMERIC);
        Some(
            tokio::task::spawn_blocking(move || password::hash_password(&random))
                .await
                .map_err(ApiError::internal)?,
        )
    } else {
        None
    };
    let (target, auth_collection, id) = (
        Arc::clone(&otps),
        Arc::clone(collection),
        otp_id.to_string(),
    );
    let outcome = state
        .write(actor, move |tx| {
            consume(tx, &target, &auth_collection, &id, reset_hash)
        })
        .await?;
    state.otp_failures.clear(&key);
    Ok(outcome.value)
}

/// Inside the command: deletes the code (refusing a code already consumed) and marks the
/// record verified when the code went to its current address.
fn consume(
    tx: &mut Tx<'_>,
    otps: &Collection,
    collection: &Collection,
    otp_id: &str,
    reset_hash: Option<String>,
) -> ApiResult<Map<String, Value>> {
    let invalid = || ApiError::bad_request(INVALID_OTP);
    let load =
        |tx: &mut Tx<'_>, c: &Collection, id: &str| -> ApiResult<Option<Map<String, Value>>> {
            let sql = format!(
                "SELECT * FROM {} WHERE id = ?1",
                engine::quote_ident(&c.name)
            );
            let rows = tx
                .query(&sql, &[SqlValue::Text(id.to_string())])
                .map_err(ApiError::from)?;
            Ok(rows.rows.first().map(|row| from_row(c, &rows.columns, row)))
        };
    let row = load(tx, otps, otp_id)?.ok_or_else(invalid)?;
    let mut record = load(tx, collection, text_of(&row, "recordRef"))?.ok_or_else(invalid)?;
    tx.stage(Change::RecordDeleted {
        collection_id: otps.id.clone(),
        id: otp_id.to_string(),
        old: to_storage(otps, &row),
    })
    .map_err(ApiError::from)?;
    let verified = record
        .get("verified")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if !verified && text_of(&row, "sentTo").eq_ignore_ascii_case(text_of(&record, "email")) {
        record.insert("verified".into(), json!(true));
        if let Some(hash) = reset_hash {
            record.insert("password".into(), json!(hash));
            record.insert("tokenKey".into(), json!(token::new_token_key()));
        }
        crate::records::write::touch_updated(collection, &mut record, tx.timestamp_ms());
        tx.stage(Change::RecordUpdated {
            collection_id: collection.id.clone(),
            id: text_of(&record, "id").to_string(),
            values: to_storage(collection, &record),
        })
        .map_err(ApiError::from)?;
    }
    Ok(record)
}
