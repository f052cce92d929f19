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
//! 3. [`FieldType`] and [`CollectionKind`] are the workspace's one vocabulary of field and
//!    collection types: `parse` is the only place their JSON spelling becomes a type and
//!    `as_str` the only place it is written back (the two round-trip). [`FieldKind`] is a
//!    field type plus what filters need of its options; [`FieldKind::field_type`] maps back.

/// The type of a field: one tag per type PocketBase knows, spelled as in collection JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// `text`.
    Text,
    /// `number`.
    Number,
    /// `bool`.
    Bool,
    /// `email`.
    Email,
    /// `url`.
    Url,
    /// `editor`.
    Editor,
    /// `date`.
    Date,
    /// `autodate`.
    Autodate,
    /// `select`.
    Select,
    /// `json`.
    Json,
    /// `file`.
    File,
    /// `relation`.
    Relation,
    /// `geoPoint`.
    GeoPoint,
    /// `password`.
    Password,
}

impl FieldType {
    /// Every field type, in PocketBase's order.
    pub const ALL: [FieldType; 14] = [
        FieldType::Text,
        FieldType::Number,
        FieldType::Bool,
        FieldType::Email,
        FieldType::Url,
        FieldType::Editor,
        FieldType::Date,
        FieldType::Autodate,
        FieldType::Select,
        FieldType::Json,
        FieldType::File,
        FieldType::Relation,
        FieldType::GeoPoint,
        FieldType::Password,
    ];

    /// The JSON spelling (`"text"`, `"geoPoint"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Number => "number",
            FieldType::Bool => "bool",
            FieldType::Email => "email",
            FieldType::Url => "url",
            FieldType::Editor => "editor",
            FieldType::Date => "date",
            FieldType::Autodate => "autodate",
            FieldType::Select => "select",
            FieldType::Json => "json",
            FieldType::File => "file",
            FieldType::Relation => "relation",
            FieldType::GeoPoint => "geoPoint",
            FieldType::Password => "password",
        }
    }

    /// The type a JSON spelling names (exact, case-sensitive); `None` for an unknown one.
    pub fn parse(text: &str) -> Option<FieldType> {
        FieldType::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }

    /// `true` for the types that hold one or several values (select, relation, file).
    pub fn is_list(self) -> bool {
        matches!(
            self,
            FieldType::Select | FieldType::Relation | FieldType::File
        )
    }
}

impl std::fmt::Display for FieldType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    /// The plain type tag of this kind.
    pub fn field_type(&self) -> FieldType {
        match self {
            FieldKind::Text => FieldType::Text,
            FieldKind::Number => FieldType::Number,
            FieldKind::Bool => FieldType::Bool,
            FieldKind::Email => FieldType::Email,
            FieldKind::Url => FieldType::Url,
            FieldKind::Editor => FieldType::Editor,
            FieldKind::Date => FieldType::Date,
            FieldKind::Autodate => FieldType::Autodate,
            FieldKind::Select { .. } => FieldType::Select,
            FieldKind::Json => FieldType::Json,
            FieldKind::File { .. } => FieldType::File,
            FieldKind::Relation { .. } => FieldType::Relation,
            FieldKind::GeoPoint => FieldType::GeoPoint,
            FieldKind::Password => FieldType::Password,
        }
    }

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CollectionKind {
    /// Plain collection (`base`, the default type).
    #[default]
    Base,
    /// Auth collection (has email, emailVisibility, verified, password, tokenKey).
    Auth,
    /// SQL view.
    View,
}

impl CollectionKind {
    /// Every collection type, in PocketBase's order.
    pub const ALL: [CollectionKind; 3] = [
        CollectionKind::Base,
        CollectionKind::Auth,
        CollectionKind::View,
    ];

    /// The JSON spelling (`"base"`, `"auth"`, `"view"`).
    pub fn as_str(self) -> &'static str {
        match self {
            CollectionKind::Base => "base",
            CollectionKind::Auth => "auth",
            CollectionKind::View => "view",
        }
    }

    /// The type a JSON spelling names (exact, case-sensitive); `None` for an unknown one.
    pub fn parse(text: &str) -> Option<CollectionKind> {
        CollectionKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

impl std::fmt::Display for CollectionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_types_round_trip_their_json_spelling() {
        for kind in FieldType::ALL {
            assert_eq!(FieldType::parse(kind.as_str()), Some(kind));
        }
        let spellings: std::collections::HashSet<&str> =
            FieldType::ALL.iter().map(|kind| kind.as_str()).collect();
        assert_eq!(spellings.len(), FieldType::ALL.len());
        assert_eq!(FieldType::GeoPoint.as_str(), "geoPoint");
        assert_eq!(FieldType::parse("geopoint"), None);
        assert_eq!(FieldType::parse("Text"), None);
        assert_eq!(FieldType::parse(""), None);
    }

    #[test]
    fn collection_kinds_round_trip_their_json_spelling() {
        for kind in CollectionKind::ALL {
            assert_eq!(CollectionKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(CollectionKind::parse("Auth"), None);
        assert_eq!(CollectionKind::parse("nope"), None);
        assert_eq!(CollectionKind::default(), CollectionKind::Base);
    }

    #[test]
    fn field_kind_maps_to_its_type() {
        let relation = FieldKind::Relation {
            collection_id: "c".into(),
            multi: true,
        };
        assert_eq!(relation.field_type(), FieldType::Relation);
        assert_eq!(
            FieldKind::Select { multi: false }.field_type(),
            FieldType::Select
        );
        assert_eq!(FieldKind::GeoPoint.field_type(), FieldType::GeoPoint);
    }
}
