//! The filter and API-rule language of pocketlog (PocketBase v0.40.6 compatible).
//!
//! Pipeline: `lexer` → `parser` → `ast` (schema-free, parsed once per rule) → `resolve`
//! (identifiers against a [`Schema`] allow-list) → `compile_sql` (SQL text with numbered
//! placeholders) or `eval` (in memory, no SQLite).
//!
//! Public API (the api crate codes against this):
//! - [`parse`] (client filter, ≤ 3500 chars) / [`parse_rule`] (collection rules) → [`Expr`];
//!   [`parse_sort`] → `Vec<`[`SortItem`]`>`. Parse once when a schema loads; `Expr: Clone`.
//! - [`compile`]`(expr, schema, collection, main_alias, req, params, opts)` → [`SqlFilter`]
//!   `{ joins, where_sql, needs_distinct, traversed_collections }`; [`compile_sort`] → the
//!   `ORDER BY` body. Share one [`Params`] across rule, filter and sort fragments.
//!   [`CompileOptions::client_filter`] enables the non-superuser restrictions (403 for
//!   `@request.*`/`@collection.*`, 400 for hidden/secret fields, listRule of every traversed
//!   collection AND-ed in, emails matched only where `emailVisibility`). Datetime macros
//!   (`@now`, `@todayStart`, …) are not request data and allowed for every caller. A sort
//!   goes through the same resolver (same 403s); a sort key that is not a field is then 400.
//! - Modifiers follow the reference (measured on v0.40.6): after a JSON path the modifier is
//!   part of the last key (`meta.arr:length` reads `$.arrlength`); `:length` counts the
//!   values of select/relation/file fields (single ones too); `:each` needs a multiple
//!   field; on any other field a modifier other than `:lower` is ignored.
//! - [`eval`]`(expr, schema, collection, record, req)` in memory; `Err(`[`EvalError::NeedsDatabase`]`)`
//!   when joins are required; [`needs_database`]`(expr, schema, collection)` decides ahead.
//!   (Deviation from the first sketch: both take the `schema`, needed to resolve
//!   `@request.auth.*` relation paths and back-relations.)
//! - [`RuleError::status`] (400/403), [`RuleError::public_message`] (client envelope) and
//!   [`RuleError::invalid_rule_message`] (`validation_invalid_rule`).
//!
//! SQL shape: own fields are columns of `main_alias`; relation paths, back-relations and
//! `:each` are correlated subqueries (one row per main record, so no DISTINCT needed);
//! `@collection.x[:alias]` inside a `?op` comparison is a `LEFT JOIN … ON 1=1` shared by all
//! comparisons naming the same alias, and sets `needs_distinct`. `geoDistance` with
//! constant arguments is folded in Rust; with field arguments it emits SQLite math
//! functions (`asin`, `sqrt`, `sin`, `cos`, `radians`, `pow`), which the connection must
//! provide (SQLITE_ENABLE_MATH_FUNCTIONS or registered functions).
//!
//! Invariants:
//! 1. No user text is ever spliced into SQL: literals, `@request.*` values, JSON paths and
//!    LIKE patterns are bound parameters; identifiers are quoted schema names.
//! 2. No input makes any function here panic; limits live in `limits.rs`.

mod ast;
mod compile_sql;
mod errors;
mod eval;
mod lexer;
mod limits;
mod parser;
mod request;
mod resolve;
mod schema;
mod sort;

pub use ast::{
    CmpOp, Comparison, Expr, Func, FuncName, Ident, Macro, Modifier, OpKind, Operand, Root,
    SortItem,
};
pub use compile_sql::{compile, CompileOptions, SqlFilter};
pub use errors::{EvalError, RuleError};
pub use eval::{eval, needs_database};
pub use limits::*;
pub use parser::{parse, parse_rule};
pub use request::{AuthInfo, Params, RequestInfo, SqlValue};
pub use schema::{CollectionInfo, CollectionKind, FieldInfo, FieldKind, FieldType, Schema};
pub use sort::{compile_sort, parse_sort};
