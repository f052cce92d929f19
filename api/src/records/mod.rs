//! The records service: everything PocketBase's record API does, below HTTP.
//!
//! Handlers (`handlers/records.rs`, `handlers/batch.rs`), the realtime renderer, the installer
//! and the CLI call these functions; nothing here knows about axum extractors or responses.
//!
//! - [`query`]: list (filter, sort, paging, count) and view, with the rule compiled into SQL.
//! - [`expand`]: `expand` paths, relations and back-relations, one query per path segment.
//! - [`present`]: what a caller may see of a record (visibility, `expand`), `fields` picking
//!   and excerpts.
//! - [`write`]: create, update, delete: `prepare_*` off the writer thread, `run_*` on it.
//! - [`validate`]: relation, auth-form, password and auth-id checks; staging errors.
//! - [`cascade`]: a delete's cascade over every relation that points at the record.
//! - [`batch`]: several writes run in order as one command (one commit).
//! - [`rehash`]: a bcrypt hash imported from PocketBase becomes argon2id at the next login.
//!
//! Invariants:
//! 1. Reads run on the read pool with the rule compiled into the query.
//! 2. Writes are commands on the writer thread: they re-read what they depend on from the
//!    staged state, stage the change, then check the rule against the staged row, so a failing
//!    rule rolls the change back and nothing half-done is ever committed.
//! 3. Expensive work (password hashing) happens before the command is queued.
//! 4. Whatever the body's encoding (JSON, form, `@jsonPayload`), a write meets the same checks:
//!    manage-only fields (`verified`, `email`) are compared by their coerced value in
//!    `auth_form_checks`, and rules see `@request.body` with every modifier key replaced by
//!    the field's resulting value (`rule_data`), so a modifier is a change like any other.
//! 5. Auth record ids are unique across all auth collections (`auth_id_unique`).
//! 6. `filter` and `sort` go through the one rules resolver, with the same statuses.
//! 7. The caller is an `Option<&Auth>` (`None`: a guest); superuser status is decided here,
//!    never by a handler.

pub mod batch;
pub mod cascade;
pub mod expand;
pub mod present;
pub mod query;
pub mod rehash;
pub mod validate;
pub mod write;

pub use cascade::delete_staged_with_references;
pub use present::{excerpt, pick_fields, present, viewer};
pub use query::{list, view};
pub use write::{
    bind_uploads, create_record, create_record_with_files, delete_record, delete_record_joined,
    prepare_create, prepare_delete, prepare_update, run_create, run_delete, run_update,
    update_record, update_record_with_files,
};

/// The response header that carries the log position a list was read at.
pub const POSITION_HEADER: &str = "x-pocketlog-position";
/// The list query parameter that also puts the position in the list envelope (`position`).
pub const WITH_POSITION_PARAM: &str = "withPosition";

use crate::access::{Auth, RequestData};
use crate::error::{ApiError, ApiResult};
use crate::model::{Collection, Schema};
use serde_json::{Map, Value};
use std::sync::Arc;

/// Finds the collection of a records route.
pub fn find_collection(schema: &Schema, name_or_id: &str) -> ApiResult<Arc<Collection>> {
    schema
        .find(name_or_id)
        .cloned()
        .ok_or_else(|| ApiError::not_found().with_message("Missing collection context."))
}

impl ApiError {
    /// Replaces the message.
    pub fn with_message(mut self, message: &str) -> Self {
        self.message = crate::error::sentenize(message);
        self
    }
}

/// The 403 of a locked rule for a non-superuser.
pub(crate) fn superusers_only() -> ApiError {
    ApiError::forbidden("Only superusers can perform this action.")
}

/// What a write command needs to know about the request (built by the `prepare_*`
/// functions off the writer thread, consumed by the `run_*` functions on it).
pub struct WriteInput {
    /// The collection.
    pub collection: Arc<Collection>,
    /// The schema snapshot the request was checked against.
    pub schema: Arc<Schema>,
    /// The caller.
    pub auth: Option<Auth>,
    /// The submitted body.
    pub body: Map<String, Value>,
    /// Request data for the rules.
    pub data: RequestData,
    /// The new password's hash, computed before queueing.
    pub password_hash: Option<String>,
    /// The caller may manage auth records (superuser).
    pub manager: bool,
    /// Uploaded files bound to file fields (persisted by the command that uses them).
    pub uploads: crate::files::write::PendingUploads,
}
