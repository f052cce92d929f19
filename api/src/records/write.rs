//! Record writes: create, update, delete.
//!
//! Each write is two steps: `prepare_*` runs off the writer thread (rule locks, the old
//! password check, password hashing) and builds a [`WriteInput`]; `run_*` runs inside a
//! writer command against the staged state. `*_record` does both for one write (one commit);
//! a batch runs several `run_*` in one command (`super::batch`).
//!
//! 1. `run_*` re-read what they depend on from the staged state, stage the change, then check
//!    the rule against the staged row: a failing rule rolls the change back.
//! 2. Rules see `@request.body` with every modifier key (`field+`, `+field`, `field-`)
//!    replaced by the field's resulting value ([`rule_data`]).
//! 3. Argon2 never runs on the writer thread.

use super::cascade::delete_cascade;
use super::validate::{
    auth_form_checks, auth_id_unique, check_relations, password_field_checks, staging_error,
};
use super::{superusers_only, WriteInput};
use crate::access::{self, actor_of, is_superuser, Auth, RequestData, Where, MAIN};
use crate::auth::{password, token};
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::model::record::{self, apply_body, from_row, to_storage, validate};
use crate::model::schema::Rule;
use crate::model::schema::RuleKind;
use crate::model::FieldType;
use crate::model::{Collection, Schema, SUPERUSERS_ID};
use crate::state::AppState;
use engine::{Change, Tx, Value as SqlValue};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// True when the staged row `id` passes the rule. `stored`: the row's record JSON as stored
/// (when the caller has it); a rule that needs no other row (`rules::needs_database`) is then
/// decided in memory by `rules::eval` (which mirrors the compiled SQL, as realtime relies on)
/// instead of a query on the writer thread. Anything else, or an evaluation error, takes the
/// SQL path.
pub(crate) fn staged_row_passes(
    tx: &Tx<'_>,
    input: &WriteInput,
    data: &RequestData,
    expr: &rules::Expr,
    id: &str,
    stored: Option<&Map<String, Value>>,
) -> ApiResult<bool> {
    let info = access::request_info(&input.auth, data);
    if let Some(record) = stored {
        if let Some(coll_info) = input.schema.info(&input.collection.id) {
            if !rules::needs_database(expr, &*input.schema, coll_info) {
                if let Ok(passes) = rules::eval(expr, &*input.schema, coll_info, record, &info) {
                    return Ok(passes);
                }
            }
        }
    }
    let mut clause = Where::default();
    clause.add(&input.schema, &input.collection, expr, &info, false)?;
    clause.add_eq("id", SqlValue::Text(id.to_string()));
    let sql = format!(
        "SELECT 1 FROM {} {MAIN} {} {} LIMIT 1",
        engine::quote_ident(&input.collection.name),
        clause.joins_sql(),
        clause.where_sql()
    );
    let rows = tx
        .query(&sql, &clause.engine_params())
        .map_err(ApiError::from)?;
    Ok(!rows.is_empty())
}

/// The request data a write's rule sees: `@request.body` with every modifier key
/// (`field+`, `+field`, `field-`) replaced by the field's resulting value under its plain
/// name, computed from `base` (the stored record, or the zero record on create) exactly as
/// the write applies it. So `@request.body.owner:changed = false` also catches
/// `{"owner+": ..}`, and `:isset`/`:length` see the value the record gets (PocketBase's
/// `ReplaceModifiers`, measured on v0.40.6). Keys that are not a modifier of a field the
/// caller may set stay as sent.
pub(crate) fn rule_data(input: &WriteInput, base: &Map<String, Value>) -> RequestData {
    let mut data = input.data.clone();
    data.body = body_for_rules(
        &input.collection,
        &input.body,
        base,
        is_superuser(&input.auth),
    );
    data
}

/// See [`rule_data`].
pub(crate) fn body_for_rules(
    collection: &Collection,
    body: &Map<String, Value>,
    base: &Map<String, Value>,
    superuser: bool,
) -> Map<String, Value> {
    let modifier_of = |key: &str| -> Option<String> {
        key.strip_suffix('+')
            .or_else(|| key.strip_prefix('+'))
            .or_else(|| key.strip_suffix('-'))
            .filter(|name| collection.field(name).is_some())
            .map(str::to_string)
    };
    if !body.keys().any(|key| modifier_of(key).is_some()) {
        return body.clone();
    }
    let mut resolved = base.clone();
    let touched = apply_body(collection, body, &mut resolved, superuser);
    let mut out = Map::new();
    let mut replaced = Vec::new();
    for (key, value) in body {
        match modifier_of(key) {
            Some(name) if touched.contains(&name) => replaced.push(name),
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    for name in replaced {
        let value = resolved.get(&name).cloned().unwrap_or(Value::Null);
        out.insert(name, value);
    }
    out
}

/// Loads record `id` of `collection` from the staged state.
pub(crate) fn load_staged(
    tx: &Tx<'_>,
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

/// Creates a record inside a command.
pub fn run_create(tx: &mut Tx<'_>, input: &WriteInput) -> ApiResult<Map<String, Value>> {
    let manager = input.manager;
    const FAILED: &str = "Failed to create record.";
    let collection = &input.collection;
    auth_form_checks(input, None, manager, FAILED)?;
    let superuser = is_superuser(&input.auth);
    let mut record = Map::new();
    for field in &collection.fields {
        record.insert(field.name().to_string(), record::zero_value(field));
    }
    let data = rule_data(input, &record);
    apply_body(collection, &input.body, &mut record, superuser);
    let mut errors = FieldErrors::default();
    // The id: given or generated.
    let id = match input
        .body
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
    {
        Some(id) => {
            let id_field = collection.field("id");
            let len = id.chars().count();
            let min = id_field.map(|f| f.min_length()).unwrap_or(15);
            let max = id_field.map(|f| f.max_length()).unwrap_or(15);
            if len < min {
                errors.add(
                    "id",
                    "validation_min_text_constraint",
                    &format!("Must be at least {min} character(s)."),
                    Some(json!({"min": min})),
                );
            } else if len > max {
                errors.add(
                    "id",
                    "validation_max_text_constraint",
                    &format!("Must be no more than {max} character(s)."),
                    Some(json!({"max": max})),
                );
            } else if !id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            {
                errors.add(
                    "id",
                    "validation_invalid_format",
                    "Invalid value format.",
                    None,
                );
            }
            id.to_string()
        }
        None => input
            .uploads
            .preassigned_id()
            .unwrap_or_else(token::new_record_id),
    };
    if collection.is_auth() && !errors.0.contains_key("id") {
        auth_id_unique(tx, &input.schema, collection, &id, &mut errors)?;
    }
    record.insert("id".into(), json!(id));
    let now = record::format_ms(tx.timestamp_ms());
    for field in &collection.fields {
        match field.kind() {
            FieldType::Autodate if field.on_create() || field.on_update() => {
                record.insert(field.name().to_string(), json!(now));
            }
            FieldType::Text if field.name() != "id" => {
                let pattern = field.autogenerate_pattern();
                if !pattern.is_empty()
                    && record
                        .get(field.name())
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .is_empty()
                {
                    record.insert(
                        field.name().to_string(),
                        json!(record::autogenerate(pattern)),
                    );
                }
            }
            _ => {}
        }
    }
    if collection.is_auth() {
        record.insert(
            "password".into(),
            json!(input.password_hash.clone().unwrap_or_default()),
        );
        record.insert("tokenKey".into(), json!(token::new_token_key()));
        if collection.id == SUPERUSERS_ID {
            record.insert("verified".into(), json!(true));
        }
        password_field_checks(collection, &input.body, &mut errors);
    }
    validate(collection, &record, &mut errors);
    let files =
        crate::files::write::resolve(collection, None, &record, &input.uploads, &mut errors);
    check_relations(tx, &input.schema, collection, &record, &mut errors)?;
    if !errors.is_empty() {
        return Err(errors.into_error(FAILED));
    }
    let values = to_storage(collection, &record);
    let rule = match input.schema.rule(&collection.id, RuleKind::Create) {
        Rule::Expr(expr) if !superuser => Some(expr),
        _ => None,
    };
    // The would-be row as stored (what realtime and a later read see), for the rule.
    let stored = rule.as_ref().map(|_| {
        let (columns, row): (Vec<String>, Vec<SqlValue>) = values.iter().cloned().unzip();
        from_row(collection, &columns, &row)
    });
    tx.stage(Change::RecordCreated {
        collection_id: collection.id.clone(),
        id: id.clone(),
        values,
    })
    .map_err(|err| staging_error(err, FAILED))?;
    if let Some(expr) = rule {
        if !staged_row_passes(tx, input, &data, &expr, &id, stored.as_ref())? {
            return Err(ApiError::bad_request(FAILED));
        }
    }
    crate::files::write::commit(tx, &input.uploads, &collection.id, &id, files)?;
    Ok(record)
}

async fn hash_if_sent(body: &Map<String, Value>) -> ApiResult<Option<String>> {
    match body.get("password").and_then(Value::as_str) {
        Some(plain) if !plain.is_empty() && plain.len() <= 1024 => {
            let plain = plain.to_string();
            let hash = tokio::task::spawn_blocking(move || password::hash_password(&plain))
                .await
                .map_err(ApiError::internal)?;
            Ok(Some(hash))
        }
        _ => Ok(None),
    }
}

/// A create or update needs a writable collection (not a view: 400) and, when its rule is
/// locked (`null`), a superuser.
fn check_writable(
    schema: &Schema,
    collection: &Collection,
    auth: Option<&Auth>,
    kind: RuleKind,
) -> ApiResult<()> {
    if collection.is_view() {
        return Err(ApiError::bad_request("Unsupported collection type."));
    }
    if matches!(schema.rule(&collection.id, kind), Rule::Locked) && !is_superuser(auth) {
        return Err(superusers_only());
    }
    Ok(())
}

/// Checks and prepares a create off the writer thread (rule lock, password hashing).
pub async fn prepare_create(
    schema: &Arc<Schema>,
    collection: &Arc<Collection>,
    auth: Option<&Auth>,
    body: Map<String, Value>,
    data: RequestData,
) -> ApiResult<WriteInput> {
    check_writable(schema, collection, auth, RuleKind::Create)?;
    let manager = is_superuser(auth);
    write_input(collection, schema, auth, body, data, manager).await
}

/// The input of a create or update whose rule checks passed: the body is the rules' body,
/// and a sent password is hashed here, before the command is queued (auth collections).
async fn write_input(
    collection: &Arc<Collection>,
    schema: &Arc<Schema>,
    auth: Option<&Auth>,
    body: Map<String, Value>,
    mut data: RequestData,
    manager: bool,
) -> ApiResult<WriteInput> {
    let password_hash = if collection.is_auth() {
        hash_if_sent(&body).await?
    } else {
        None
    };
    data.body = body.clone();
    Ok(WriteInput {
        collection: Arc::clone(collection),
        schema: Arc::clone(schema),
        auth: auth.cloned(),
        body,
        data,
        password_hash,
        manager,
        uploads: crate::files::write::PendingUploads::default(),
    })
}

/// Binds a write body's uploads to the collection's file fields: names them and puts the
/// names into the body (files for no file field are dropped).
pub fn bind_uploads(
    state: &AppState,
    collection: &Collection,
    body: crate::files::body::RecordBody,
) -> (Map<String, Value>, crate::files::write::PendingUploads) {
    let mut fields = body.body;
    if body.uploads.is_empty() {
        return (fields, crate::files::write::PendingUploads::default());
    }
    let specs = crate::files::body::file_specs(collection);
    let named = crate::files::fields::name_uploads(body.uploads, &specs, "");
    crate::files::fields::inject(&mut fields, &named);
    // An S3 configuration that cannot make a client falls back to nothing: the command's
    // persist step then fails (no storage), so no record refers to a file that is not stored.
    match crate::files::storage::Storage::current(state) {
        Ok(storage) => (
            fields,
            crate::files::write::PendingUploads::new(storage, named),
        ),
        Err(err) => {
            tracing::error!(%err, "the S3 storage is misconfigured");
            (
                fields,
                crate::files::write::PendingUploads::unavailable(named),
            )
        }
    }
}

/// Creates a record through the writer (one commit).
pub async fn create_record(
    state: &Arc<AppState>,
    schema: &Arc<Schema>,
    collection: &Arc<Collection>,
    auth: Option<&Auth>,
    body: Map<String, Value>,
    data: RequestData,
) -> ApiResult<Map<String, Value>> {
    create_record_with_files(
        state,
        schema,
        collection,
        auth,
        body,
        data,
        Default::default(),
        Default::default(),
    )
    .await
}

/// [`create_record`] with uploaded files (bound by [`bind_uploads`]) and the writes of its
/// request hooks (`joined`, applied in the same command: one commit).
#[allow(clippy::too_many_arguments)]
pub async fn create_record_with_files(
    state: &Arc<AppState>,
    schema: &Arc<Schema>,
    collection: &Arc<Collection>,
    auth: Option<&Auth>,
    body: Map<String, Value>,
    data: RequestData,
    uploads: crate::files::write::PendingUploads,
    joined: crate::hooks::writes::Joined,
) -> ApiResult<Map<String, Value>> {
    const FAILED: &str = "Failed to create record.";
    let mut input = prepare_create(schema, collection, auth, body, data).await?;
    input.uploads = uploads.clone();
    // S3 uploads go to their final keys now, not on the writer thread (`files::write`).
    uploads
        .preupload_create(&collection.id, &input.body, FAILED)
        .await?;
    let outcome = state
        .write(actor_of(auth), move |tx| {
            let record = run_create(tx, &input)?;
            joined.apply(tx)?;
            input.uploads.persist_ready(FAILED)?;
            Ok(record)
        })
        .await;
    uploads.discard_unused().await;
    Ok(outcome?.value)
}

/// Updates a record inside a command.
pub fn run_update(tx: &mut Tx<'_>, input: &WriteInput, id: &str) -> ApiResult<Map<String, Value>> {
    let manager = input.manager;
    const FAILED: &str = "Failed to update record.";
    let collection = &input.collection;
    let superuser = is_superuser(&input.auth);
    let Some(existing) = load_staged(tx, collection, id)? else {
        return Err(ApiError::not_found());
    };
    if !superuser {
        if let Rule::Expr(expr) = input.schema.rule(&collection.id, RuleKind::Update) {
            let data = rule_data(input, &existing);
            if !staged_row_passes(tx, input, &data, &expr, id, Some(&existing))? {
                return Err(ApiError::not_found());
            }
        }
    }
    if let Some(new_id) = input.body.get("id").and_then(Value::as_str) {
        if new_id != id {
            let mut errors = FieldErrors::default();
            errors.add(
                "id",
                "validation_pk_change",
                "The record primary key cannot be changed.",
                None,
            );
            return Err(errors.into_error(FAILED));
        }
    }
    auth_form_checks(input, Some(&existing), manager, FAILED)?;
    let mut record = existing.clone();
    apply_body(collection, &input.body, &mut record, superuser);
    record.insert("id".into(), json!(id));
    touch_updated(collection, &mut record, tx.timestamp_ms());
    let mut errors = FieldErrors::default();
    if collection.is_auth() {
        if let Some(hash) = &input.password_hash {
            record.insert("password".into(), json!(hash));
            password_field_checks(collection, &input.body, &mut errors);
        }
        let email_changed = record.get("email") != existing.get("email");
        if input.password_hash.is_some() || email_changed {
            record.insert("tokenKey".into(), json!(token::new_token_key()));
        }
    }
    validate(collection, &record, &mut errors);
    let files = crate::files::write::resolve(
        collection,
        Some(&existing),
        &record,
        &input.uploads,
        &mut errors,
    );
    check_relations(tx, &input.schema, collection, &record, &mut errors)?;
    if !errors.is_empty() {
        return Err(errors.into_error(FAILED));
    }
    tx.stage(Change::RecordUpdated {
        collection_id: collection.id.clone(),
        id: id.to_string(),
        values: to_storage(collection, &record),
    })
    .map_err(|err| staging_error(err, FAILED))?;
    crate::files::write::commit(tx, &input.uploads, &collection.id, id, files)?;
    Ok(record)
}

/// True when a (non-superuser) caller satisfies an auth collection's manageRule for the
/// record `id`: such a caller may change email, verified and password without the old one.
async fn passes_manage_rule(
    state: &Arc<AppState>,
    schema: &Arc<Schema>,
    collection: &Arc<Collection>,
    auth: Option<&Auth>,
    id: &str,
) -> ApiResult<bool> {
    if !collection.is_auth() || auth.is_none() {
        return Ok(false);
    }
    let Rule::Expr(expr) = schema.rule(&collection.id, RuleKind::Manage) else {
        return Ok(false);
    };
    let info = access::request_info(auth, &RequestData::default());
    let mut clause = Where::default();
    clause.add(schema, collection, &expr, &info, false)?;
    clause.add_eq("id", SqlValue::Text(id.to_string()));
    let sql = format!(
        "SELECT 1 FROM {} {MAIN} {} {} LIMIT 1",
        engine::quote_ident(&collection.name),
        clause.joins_sql(),
        clause.where_sql()
    );
    let params = clause.engine_params();
    let rows = state.read(move |conn| conn.query(&sql, &params)).await?;
    Ok(!rows.is_empty())
}

/// Checks and prepares an update off the writer thread (rule lock, old password, hashing).
pub async fn prepare_update(
    state: &Arc<AppState>,
    schema: &Arc<Schema>,
    collection: &Arc<Collection>,
    auth: Option<&Auth>,
    id: &str,
    body: Map<String, Value>,
    data: RequestData,
) -> ApiResult<WriteInput> {
    check_writable(schema, collection, auth, RuleKind::Update)?;
    let manager =
        is_superuser(auth) || passes_manage_rule(state, schema, collection, auth, id).await?;
    // A non-manager changing a password must prove the old one (checked before queueing:
    // argon2 is too expensive for the writer thread).
    if collection.is_auth() && !manager && body.get("password").is_some() {
        let mut errors = FieldErrors::default();
        match body
            .get("oldPassword")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
        {
            None => errors.add(
                "oldPassword",
                "validation_required",
                "Cannot be blank.",
                None,
            ),
            Some(old) => {
                let existing = access::load_record(state, collection, id).await?;
                let hash = existing
                    .as_ref()
                    .and_then(|r| r.get("password"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let old = old.to_string();
                let ok =
                    tokio::task::spawn_blocking(move || password::verify_password(&old, &hash))
                        .await
                        .map_err(ApiError::internal)?;
                if existing.is_some() && !ok {
                    errors.add(
                        "oldPassword",
                        "validation_invalid_old_password",
                        "Missing or invalid old password.",
                        None,
                    );
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors.into_error("Failed to update record."));
        }
    }
    write_input(collection, schema, auth, body, data, manager).await
}

/// Updates a record through the writer (one commit).
pub async fn update_record(
    state: &Arc<AppState>,
    schema: &Arc<Schema>,
    collection: &Arc<Collection>,
    auth: Option<&Auth>,
    id: &str,
    body: Map<String, Value>,
    data: RequestData,
) -> ApiResult<Map<String, Value>> {
    let uploads = crate::files::write::PendingUploads::default();
    let joined = Default::default();
    update_record_with_files(
        state, schema, collection, auth, id, body, data, uploads, joined,
    )
    .await
}

/// [`update_record`] with uploaded files (bound by [`bind_uploads`]) and the writes of its
/// request hooks (`joined`, applied in the same command: one commit).
#[allow(clippy::too_many_arguments)]
pub async fn update_record_with_files(
    state: &Arc<AppState>,
    schema: &Arc<Schema>,
    collection: &Arc<Collection>,
    auth: Option<&Auth>,
    id: &str,
    body: Map<String, Value>,
    data: RequestData,
    uploads: crate::files::write::PendingUploads,
    joined: crate::hooks::writes::Joined,
) -> ApiResult<Map<String, Value>> {
    const FAILED: &str = "Failed to update record.";
    let mut input = prepare_update(state, schema, collection, auth, id, body, data).await?;
    input.uploads = uploads.clone();
    // S3 uploads go to their final keys now, not on the writer thread (`files::write`).
    uploads.preupload(&collection.id, id, FAILED).await?;
    let id = id.to_string();
    let outcome = state
        .write(actor_of(auth), move |tx| {
            let record = run_update(tx, &input, &id)?;
            joined.apply(tx)?;
            input.uploads.persist_ready(FAILED)?;
            Ok(record)
        })
        .await;
    uploads.discard_unused().await;
    Ok(outcome?.value)
}

/// Deletes a record (and fixes references) inside a command.
pub fn run_delete(tx: &mut Tx<'_>, input: &WriteInput, id: &str) -> ApiResult<()> {
    let collection = &input.collection;
    let Some(existing) = load_staged(tx, collection, id)? else {
        return Err(ApiError::not_found());
    };
    if !is_superuser(&input.auth) {
        if let Rule::Expr(expr) = input.schema.rule(&collection.id, RuleKind::Delete) {
            if !staged_row_passes(tx, input, &input.data, &expr, id, Some(&existing))? {
                return Err(ApiError::not_found());
            }
        }
    }
    if collection.id == SUPERUSERS_ID {
        let rows = tx
            .query("SELECT COUNT(*) FROM _superusers", &[])
            .map_err(ApiError::from)?;
        if rows.rows.first().and_then(|r| r[0].as_i64()).unwrap_or(0) <= 1 {
            return Err(ApiError::bad_request(
                "You can't delete the only existing superuser.",
            ));
        }
    }
    delete_cascade(tx, &input.schema, collection, id, &existing, 0)
}

/// Checks and prepares a delete (rule lock).
pub fn prepare_delete(
    schema: &Arc<Schema>,
    collection: &Arc<Collection>,
    auth: Option<&Auth>,
    data: RequestData,
) -> ApiResult<WriteInput> {
    if collection.is_view() {
        return Err(ApiError::bad_request("Unsupported collection type."));
    }
    let rule = schema.rule(&collection.id, RuleKind::Delete);
    if matches!(rule, Rule::Locked) && !is_superuser(auth) {
        return Err(superusers_only());
    }
    Ok(WriteInput {
        collection: Arc::clone(collection),
        schema: Arc::clone(schema),
        auth: auth.cloned(),
        body: Map::new(),
        data,
        password_hash: None,
        manager: is_superuser(auth),
        uploads: crate::files::write::PendingUploads::default(),
    })
}

/// Deletes a record through the writer (one commit).
pub async fn delete_record(
    state: &Arc<AppState>,
    schema: &Arc<Schema>,
    collection: &Arc<Collection>,
    auth: Option<&Auth>,
    id: &str,
    data: RequestData,
) -> ApiResult<()> {
    delete_record_joined(
        state,
        schema,
        collection,
        auth,
        id,
        data,
        Default::default(),
    )
    .await
}

/// [`delete_record`] with the writes of its request hooks (one commit).
pub async fn delete_record_joined(
    state: &Arc<AppState>,
    schema: &Arc<Schema>,
    collection: &Arc<Collection>,
    auth: Option<&Auth>,
    id: &str,
    data: RequestData,
    joined: crate::hooks::writes::Joined,
) -> ApiResult<()> {
    let input = prepare_delete(schema, collection, auth, data)?;
    let id = id.to_string();
    state
        .write(actor_of(auth), move |tx| {
            run_delete(tx, &input, &id)?;
            joined.apply(tx)
        })
        .await?;
    Ok(())
}

/// Sets every `onUpdate` autodate field of `record` to `now_ms` (every update of a stored
/// record does this, the auth flows' included).
pub fn touch_updated(collection: &Collection, record: &mut Map<String, Value>, now_ms: i64) {
    let now = record::format_ms(now_ms);
    for field in &collection.fields {
        if field.on_update() {
            record.insert(field.name().to_string(), json!(now));
        }
    }
}
