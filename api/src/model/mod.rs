//! The data model of the API: collections, fields, records and the schema cache.

pub mod collection;
pub mod field;
pub mod pattern;
pub mod record;
pub mod schema;

pub use collection::{Collection, CollectionKind, SUPERUSERS, SUPERUSERS_ID, USERS_ID};
pub use field::{Field, FieldType};
pub use schema::{RuleKind, Schema};
