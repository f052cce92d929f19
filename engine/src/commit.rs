//! Commits and the changes they carry: the events of the log.
//!
//! 1. A commit carries everything replay needs: ids, timestamps, hashes are all final values.
//! 2. Records are addressed by collection *id* (names can change); the projection maps ids to
//!    tables.
//! 3. New variants are only ever appended to the enums, so old payloads keep decoding.

use crate::value::Value;
use serde::{Deserialize, Serialize};

/// A log position: the seq of a commit. Gap-free, starting at 1; 0 means "before everything".
pub type Seq = u64;

/// Who made a commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Actor {
    /// The server itself (bootstrap, migrations, CLI).
    System,
    /// A superuser, by record id.
    Superuser(String),
    /// An auth record of a collection.
    Record {
        /// Collection id.
        collection_id: String,
        /// Record id.
        id: String,
    },
    /// An unauthenticated request.
    Guest,
}

/// One column of a collection table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnDef {
    /// Stable field id: a rename keeps the id, so data follows the column.
    pub id: String,
    /// Column name (the field name).
    pub name: String,
    /// SQL type and constraints, e.g. `TEXT DEFAULT '' NOT NULL`.
    pub decl: String,
}

/// A collection as the projection sees it: its table (or view) plus the opaque API metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionDef {
    /// Collection id (stable).
    pub id: String,
    /// Collection name = table name.
    pub name: String,
    /// `base`, `auth` or `view`.
    pub kind: String,
    /// Columns in order (empty for views).
    pub columns: Vec<ColumnDef>,
    /// Full `CREATE [UNIQUE] INDEX` statements.
    pub indexes: Vec<String>,
    /// The `SELECT` of a view collection.
    pub view_query: Option<String>,
    /// The API's own JSON description of the collection (fields, rules, options).
    pub meta: String,
}

impl CollectionDef {
    /// True for view collections.
    pub fn is_view(&self) -> bool {
        self.kind == "view"
    }
}

/// One change inside a commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Change {
    /// A new collection.
    CollectionCreated(CollectionDef),
    /// A collection's new full definition.
    CollectionUpdated(CollectionDef),
    /// A collection and its table are gone.
    CollectionDeleted {
        /// Collection id.
        id: String,
        /// Its name at the time.
        name: String,
    },
    /// A new record with all its column values.
    RecordCreated {
        /// Collection id.
        collection_id: String,
        /// Record id.
        id: String,
        /// Every column's final value.
        values: Vec<(String, Value)>,
    },
    /// A record's full new values.
    RecordUpdated {
        /// Collection id.
        collection_id: String,
        /// Record id.
        id: String,
        /// Every column's final value.
        values: Vec<(String, Value)>,
    },
    /// A record removed; `old` is the record as it was.
    RecordDeleted {
        /// Collection id.
        collection_id: String,
        /// Record id.
        id: String,
        /// The values before deletion.
        old: Vec<(String, Value)>,
    },
    /// A settings/params entry set (`value` is JSON text) or removed (`None`).
    ParamSet {
        /// Key.
        key: String,
        /// New value.
        value: Option<String>,
    },
    /// Stored files this commit made part of a record (`added`: already written and fsynced
    /// under `storage/<collection_id>/<record_id>/` before the commit) or took out of it
    /// (`removed`: gone from the API at once, the bytes kept for retention). The record's own
    /// change (created/updated/deleted) carries the field values; this says which objects in
    /// storage the commit references or releases. Nothing in the projection changes.
    /// Payload version 2 (engine/FORMAT.md).
    FilesChanged {
        /// Collection id.
        collection_id: String,
        /// Record id.
        record_id: String,
        /// File names written for this commit.
        added: Vec<String>,
        /// File names no longer referenced by the record.
        removed: Vec<String>,
    },
    /// Values of a record erased (the right to erasure; `engine/src/redact.rs`). Applied, it
    /// sets the named columns of the record's row (when it exists) to their erased value (the
    /// column's declared default, see `redact::erased_value`); every earlier frame of the log
    /// and every snapshot has the same values erased by the rewrite that follows the commit.
    /// Payload version 3 (engine/FORMAT.md "Redaction").
    Redacted {
        /// Collection id.
        collection_id: String,
        /// Record id.
        id: String,
        /// The erased columns' names when the redaction was committed.
        fields: Vec<String>,
        /// The same columns' stable ids (renames before the redaction are followed by id).
        field_ids: Vec<String>,
    },
}

/// One atomic unit of the log: a request's (or a batch's) changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Commit {
    /// Position in the log.
    pub seq: Seq,
    /// Wall-clock time of the commit in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// Who made it.
    pub actor: Actor,
    /// What changed, applied in order.
    pub changes: Vec<Change>,
}
