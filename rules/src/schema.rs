//! The schema the resolver checks identifiers against.
//!
//! The API converts its collection model into these plain structs. Field and collection
//! names found here are the only names that ever reach SQL text (quoted), which makes the
//! schema the allow-list of identifiers.
//!
//! Invariants:
//! 1. Storage layout (decided for the workspace): one table/view per collection named like
//!    the collection, one column per field named like the field; multi-valued fields hold
//!    JSON array text; json/geoPoint hold JSON text; bool is 0/1; number is NUMERIC.
//! 2. A collection without an explicit `id` field still has an implicit text `id` column.

/// The type of a field, as far as filters care.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldKind {
    /// Plain text.
    Text,
    /// NUMERIC column.
    Number,
    /// 0/1 column.
    Bool,
    /// Email text.
    Email,
    /// Url text.
    Url,
    /// Editor (HTML) text.
    Editor,
    /// Date text `YYYY-MM-DD HH:MM:SS.sssZ`.
    Date,
    /// Autodate text.
    Autodate,
    /// Select; `multi` when maxSelect > 1 (JSON array).
    Select {
        /// maxSelect > 1.
        multi: bool,
    },
    /// Arbitrary JSON.
    Json,
    /// File name(s).
    File {
        /// maxSelect > 1.
        multi: bool,
    },
    /// Relation id(s) into `collection_id`.
    Relation {
        /// Target collection id.
        collection_id: String,
        /// maxSelect > 1.
        multi: bool,
    },
    /// `{"lon":x,"lat":y}` JSON.
    GeoPoint,
    /// Password hash (never filterable by clients).
    Password,
}

impl FieldKind {
    /// `true` for fields stored as a JSON array of values.
    pub fn is_multi(&self) -> bool {
        matches!(
            self,
            FieldKind::Select { multi: true }
                | FieldKind::File { multi: true }
                | FieldKind::Relation { multi: true, .. }
        )
    }

    /// `true` for select, file and relation fields, single or multiple: the kinds whose
    /// `:length` counts values (PocketBase's "multi-valuer" fields).
    pub fn is_list(&self) -> bool {
        matches!(
            self,
            FieldKind::Select { .. } | FieldKind::File { .. } | FieldKind::Relation { .. }
        )
    }

    /// `true` when the column has NUMERIC affinity under the storage layout
    /// (`NUMERIC`, `BOOLEAN` and `JSON` declared types); all others are TEXT.
    pub(crate) fn numeric_affinity(&self) -> bool {
        matches!(
            self,
            FieldKind::Number | FieldKind::Bool | FieldKind::Json | FieldKind::GeoPoint
        ) || self.is_multi()
    }
}

/// One field of a collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldInfo {
    /// Field (and column) name.
    pub name: String,
    /// Field type.
    pub kind: FieldKind,
    /// Hidden fields are not filterable/sortable by non-superusers.
    pub hidden: bool,
}

impl FieldInfo {
    /// Convenience constructor for a visible field.
    pub fn new(name: &str, kind: FieldKind) -> FieldInfo {
        FieldInfo {
            name: name.to_string(),
            kind,
            hidden: false,
        }
    }
}

/// Collection types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CollectionKind {
    /// Plain collection.
    Base,
    /// Auth collection (has email, emailVisibility, verified, password, tokenKey).
    Auth,
    /// SQL view.
    View,
}

/// One collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionInfo {
    /// Collection id.
    pub id: String,
    /// Collection (and table) name.
    pub name: String,
    /// Type.
    pub kind: CollectionKind,
    /// Fields, in schema order.
    pub fields: Vec<FieldInfo>,
    /// listRule text: `None` = superusers only, `Some("")` = everyone.
    pub list_rule: Option<String>,
}

static IMPLICIT_ID: std::sync::LazyLock<FieldInfo> =
    std::sync::LazyLock::new(|| FieldInfo::new("id", FieldKind::Text));

impl CollectionInfo {
    /// Looks a field up by exact name (the implicit `id` included).
    pub fn field(&self, name: &str) -> Option<&FieldInfo> {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .or_else(|| (name == "id").then(|| &*IMPLICIT_ID))
    }
}

/// All collections, looked up by name or id.
pub trait Schema {
    /// Finds a collection by name or id.
    fn find(&self, name_or_id: &str) -> Option<&CollectionInfo>;
    /// Every collection.
    fn all(&self) -> Vec<&CollectionInfo>;
}

impl Schema for Vec<CollectionInfo> {
    fn find(&self, name_or_id: &str) -> Option<&CollectionInfo> {
        self.iter()
            .find(|c| c.id == name_or_id)
            .or_else(|| self.iter().find(|c| c.name == name_or_id))
    }

    fn all(&self) -> Vec<&CollectionInfo> {
        self.iter().collect()
    }
}
