//! The auth record of an OAuth2 sign-in, as the reference finds, links or creates it:
//!
//! 1. An `_externalAuths` row (collection, provider, provider user id) names the record.
//! 2. Else a record with the provider's (verified) e-mail is linked: an unverified one gets a
//!    random password first (whoever pre-registered the address loses it) unless the caller
//!    is that record, and it becomes verified when its address is the provider's.
//! 3. Else a record is created through the records service (createRule, validation, the
//!    request context `oauth2`) from `createData`, the provider's e-mail and the collection's
//!    `mappedFields` (`id`, `name`, `username`, `avatarURL` — a URL for a text field, the
//!    downloaded image for a file field), with a random password; it is verified when its
//!    e-mail is the provider's. Superusers are never created this way.
//!
//! Invariant: the record change and the `_externalAuths` row are one commit (one writer
//! command that re-reads the link, so two concurrent sign-ins do not link twice); an error
//! commits nothing.

use super::client::FetchedUser;
use crate::access::{Auth, RequestData};
use crate::auth::{password, token};
use crate::error::{ApiError, ApiResult};
use crate::model::record::{self, from_row, to_storage};
use crate::model::Collection;
use crate::records::{prepare_create, run_create};
use crate::state::AppState;
use engine::{Change, Tx, Value as SqlValue};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// The system collection of the links.
pub const EXTERNAL_AUTHS: &str = "_externalAuths";
/// Length of the random password of created and taken-over records.
pub const RANDOM_PASSWORD_LEN: usize = 30;
/// The largest avatar downloaded for a file `avatarURL` mapping.
pub const AVATAR_MAX: usize = 5 << 20;

/// The outcome of [`sign_in`].
#[derive(Debug)]
pub struct SignedIn {
    /// The auth record as stored after the commit.
    pub record: Map<String, Value>,
    /// The record was created by this sign-in.
    pub is_new: bool,
}

fn text<'a>(record: &'a Map<String, Value>, key: &str) -> &'a str {
    record.get(key).and_then(Value::as_str).unwrap_or("")
}

fn verified(record: &Map<String, Value>) -> bool {
    record
        .get("verified")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn load(
    tx: &mut Tx<'_>,
    collection: &Collection,
    id: &str,
) -> ApiResult<Option<Map<String, Value>>> {
    let sql = format!(
        "SELECT * FROM {} WHERE id = ?1",
        engine::quote_ident(&collection.name)
    );
    let rows = tx
        .query(&sql, &[SqlValue::Text(id.to_string())])
        .map_err(ApiError::from)?;
    Ok(rows
        .rows
        .first()
        .map(|row| from_row(collection, &rows.columns, row)))
}

fn link_sql(links: &Collection) -> String {
    format!(
        "SELECT recordRef FROM {} WHERE collectionRef = ?1 AND provider = ?2 AND providerId = ?3 LIMIT 1",
        engine::quote_ident(&links.name)
    )
}

fn link_params(collection_id: &str, provider: &str, provider_id: &str) -> Vec<SqlValue> {
    vec![
        SqlValue::Text(collection_id.to_string()),
        SqlValue::Text(provider.to_string()),
        SqlValue::Text(provider_id.to_string()),
    ]
}

/// Inside the command: the linked record id, if any.
fn linked_in_tx(
    tx: &mut Tx<'_>,
    links: &Collection,
    collection_id: &str,
    provider: &str,
    provider_id: &str,
) -> ApiResult<Option<String>> {
    let rows = tx
        .query(
            &link_sql(links),
            &link_params(collection_id, provider, provider_id),
        )
        .map_err(ApiError::from)?;
    Ok(rows
        .rows
        .first()
        .and_then(|row| row.first())
        .and_then(|v| v.as_str().map(str::to_string)))
}

fn stage_link(
    tx: &mut Tx<'_>,
    links: &Collection,
    collection_id: &str,
    record_id: &str,
    provider: &str,
    provider_id: &str,
) -> ApiResult<()> {
    let id = token::new_record_id();
    let now = record::format_ms(tx.timestamp_ms());
    let row = json!({"id": id, "collectionRef": collection_id, "recordRef": record_id,
        "provider": provider, "providerId": provider_id, "created": now, "updated": now});
    let row = row.as_object().cloned().unwrap_or_default();
    tx.stage(Change::RecordCreated {
        collection_id: links.id.clone(),
        id,
        values: to_storage(links, &row),
    })
    .map_err(ApiError::from)
}

/// The OAuth2 sign-in of `fetched` into `collection` (see the module doc).
pub async fn sign_in(
    state: &Arc<AppState>,
    collection: &Arc<Collection>,
    caller: Option<&Auth>,
    provider: &str,
    fetched: &FetchedUser,
    create_data: Map<String, Value>,
    request: RequestData,
) -> ApiResult<SignedIn> {
    let links: Collection = state
        .schema()
        .find(EXTERNAL_AUTHS)
        .map(|c| Collection::clone(c))
        .ok_or_else(|| ApiError::internal("the _externalAuths system collection is missing"))?;
    let user = &fetched.user;
    let sql = link_sql(&links);
    let params = link_params(&collection.id, provider, &user.id);
    let linked = state.read(move |conn| conn.query(&sql, &params)).await?;
    let linked_id = linked
        .rows
        .first()
        .and_then(|row| row.first())
        .and_then(|v| v.as_str().map(str::to_string));
    let existing = match linked_id {
        Some(id) => Some(
            crate::access::load_record(state, collection, &id)
                .await?
                .ok_or_else(|| ApiError::bad_request("Failed to authenticate."))?,
        ),
        None if !user.email.is_empty() => {
            crate::records::query::find_by_email(state, collection, &user.email).await?
        }
        None => None,
    };
    match existing {
        Some(record) => link_existing(state, collection, caller, provider, fetched, record, links)
            .await
            .map(|record| SignedIn {
                record,
                is_new: false,
            }),
        None => create(
            state,
            collection,
            caller,
            provider,
            fetched,
            create_data,
            request,
            links,
        )
        .await
        .map(|record| SignedIn {
            record,
            is_new: true,
        }),
    }
}

async fn random_hash() -> ApiResult<String> {
    let random = token::random_string(RANDOM_PASSWORD_LEN, token::ALPHANUMERIC);
    tokio::task::spawn_blocking(move || password::hash_password(&random))
        .await
        .map_err(ApiError::internal)
}

async fn link_existing(
    state: &Arc<AppState>,
    collection: &Arc<Collection>,
    caller: Option<&Auth>,
    provider: &str,
    fetched: &FetchedUser,
    record: Map<String, Value>,
    links: Collection,
) -> ApiResult<Map<String, Value>> {
    let record_id = text(&record, "id").to_string();
    let is_caller = caller.is_some_and(|auth| {
        auth.collection.id == collection.id && text(&auth.record, "id") == record_id
    });
    let reset_hash = if !is_caller && !text(&record, "email").is_empty() && !verified(&record) {
        Some(random_hash().await?)
    } else {
        None
    };
    let (target, provider, user) = (
        Arc::clone(collection),
        provider.to_string(),
        fetched.user.clone(),
    );
    let actor = engine::Actor::Record {
        collection_id: collection.id.clone(),
        id: record_id.clone(),
    };
    let outcome = state
        .write(actor, move |tx| {
            let mut record = load(tx, &target, &record_id)?
                .ok_or_else(|| ApiError::bad_request("Failed to authenticate."))?;
            let mut changed = false;
            if !text(&record, "email").is_empty() && !verified(&record) {
                if let Some(hash) = reset_hash {
                    record.insert("password".into(), json!(hash));
                    record.insert("tokenKey".into(), json!(token::new_token_key()));
                    changed = true;
                }
            }
            if text(&record, "email").is_empty() && !user.email.is_empty() {
                record.insert("email".into(), json!(user.email));
                changed = true;
            }
            let email = text(&record, "email").to_string();
            if !verified(&record) && (email.is_empty() || email.eq_ignore_ascii_case(&user.email)) {
                record.insert("verified".into(), json!(true));
                changed = true;
            }
            if changed {
                crate::records::write::touch_updated(&target, &mut record, tx.timestamp_ms());
                tx.stage(Change::RecordUpdated {
                    collection_id: target.id.clone(),
                    id: record_id.clone(),
                    values: to_storage(&target, &record),
                })
                .map_err(ApiError::from)?;
            }
            if linked_in_tx(tx, &links, &target.id, &provider, &user.id)?.is_none() {
                stage_link(tx, &links, &target.id, &record_id, &provider, &user.id)?;
            }
            Ok(record)
        })
        .await?;
    Ok(outcome.value)
}

#[allow(clippy::too_many_arguments)]
async fn create(
    state: &Arc<AppState>,
    collection: &Arc<Collection>,
    caller: Option<&Auth>,
    provider: &str,
    fetched: &FetchedUser,
    create_data: Map<String, Value>,
    mut request: RequestData,
    links: Collection,
) -> ApiResult<Map<String, Value>> {
    if collection.name == crate::model::SUPERUSERS {
        return Err(ApiError::bad_request("Failed to authenticate."));
    }
    let user = fetched.user.clone();
    let mut payload = create_data;
    if payload
        .get("email")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
    {
        payload.insert("email".into(), json!(user.email));
    }
    let mapped = collection.auth_option("oauth2");
    let mapped = mapped.get("mappedFields").cloned().unwrap_or(json!({}));
    let target_of = |key: &str| {
        mapped
            .get(key)
            .and_then(Value::as_str)
            .filter(|name| !name.is_empty())
            .map(str::to_string)
    };
    for (key, value) in [
        ("id", &user.id),
        ("name", &user.name),
        ("username", &user.username),
    ] {
        if let Some(field) = target_of(key) {
            payload.entry(field).or_insert_with(|| json!(value));
        }
    }
    let mut uploads = None;
    if let Some(field) = target_of("avatarURL") {
        if !payload.contains_key(&field) && !user.avatar_url.is_empty() {
            let is_file = collection
                .field(&field)
                .is_some_and(|f| f.kind() == crate::model::FieldType::File);
            if is_file {
                match super::avatar::download(&user.avatar_url, AVATAR_MAX).await {
                    Ok(upload) => uploads = Some((field, upload)),
                    Err(err) => {
                        tracing::warn!(error = %err, "failed to retrieve the OAuth2 avatar")
                    }
                }
            } else {
                payload.insert(field, json!(user.avatar_url));
            }
        }
    }
    if !payload.contains_key("password") {
        let random = token::random_string(RANDOM_PASSWORD_LEN, token::ALPHANUMERIC);
        payload.insert("password".into(), json!(random));
        payload.insert("passwordConfirm".into(), json!(random));
    }
    let (payload, pending) = match uploads {
        Some((field, upload)) => super::avatar::bind(state, collection, payload, &field, upload),
        None => (payload, Default::default()),
    };
    request.context = "oauth2".into();
    request.method = "POST".into();
    let schema = state.schema();
    let mut input = prepare_create(&schema, collection, caller, payload, request).await?;
    input.uploads = pending;
    let (provider, provider_id, oauth_email) =
        (provider.to_string(), user.id.clone(), user.email.clone());
    let outcome = state
        .write(crate::access::actor_of(caller), move |tx| {
            let mut record = run_create(tx, &input)?;
            let target = Arc::clone(&input.collection);
            let record_id = text(&record, "id").to_string();
            if text(&record, "email") == oauth_email && !verified(&record) {
                record.insert("verified".into(), json!(true));
                tx.stage(Change::RecordUpdated {
                    collection_id: target.id.clone(),
                    id: record_id.clone(),
                    values: to_storage(&target, &record),
                })
                .map_err(ApiError::from)?;
            }
            stage_link(tx, &links, &target.id, &record_id, &provider, &provider_id)?;
            input.uploads.persist_ready("Failed to authenticate.")?;
            Ok(record)
        })
        .await?;
    // The stored row (run_create's answer may carry write-only values).
    Ok(
        crate::access::load_record(state, collection, text(&outcome.value, "id"))
            .await?
            .unwrap_or(outcome.value),
    )
}
