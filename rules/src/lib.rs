//! The filter and API-rule language of pocketlog (PocketBase v0.40.6 compatible).
//!
//! Pipeline: `lexer` → `parser` → `ast` (schema-free, parsed once per rule) → `resolve`
//! (identifiers against a [`Schema`] allow-list) → `compile_sql` (SQL text with numbered
//! placeholders) or `eval` (in memory, no SQLite).

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
pub use schema::{CollectionInfo, CollectionKind, FieldInfo, FieldKind, Schema};
pub use sort::{compile_sort, parse_sort};
