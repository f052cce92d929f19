//! `sort` parameter: parsing into [`SortItem`]s and compiling to an `ORDER BY` body.
//!
//! Uses the same identifier parser and resolver as filters, so the same allow-list,
//! hidden-field and listRule checks apply. It does not support multi-valued paths (a sort
//! key must be one value per record).
//!
//! Invariants:
//! 1. At most `SORT_FIELDS_MAX` items, each at most `SORT_FIELD_CHARS_MAX` characters.
//! 2. The output contains only quoted schema names, generated aliases and placeholders.

use crate::ast::{CmpOp, Comparison, Expr, OpKind, Operand, Root, SortItem};
use crate::compile_sql::{compile, CompileOptions};
use crate::errors::RuleError;
use crate::limits::{SORT_FIELDS_MAX, SORT_FIELD_CHARS_MAX};
use crate::parser::parse_identifier;
use crate::request::{Params, RequestInfo};
use crate::schema::{CollectionInfo, Schema};

/// Parses `-created,title,+author.name,@random`.
pub fn parse_sort(input: &str) -> Result<Vec<SortItem>, RuleError> {
    let mut items = Vec::new();
    if input.is_empty() {
        return Ok(items);
    }
    for raw in input.split(',') {
        let raw = raw.trim();
        // `a,`, `,a`, `a,,b` and a blank sort are 400 on the reference (measured).
        if raw.is_empty() {
            return Err(RuleError::Syntax("empty sort field".into()));
        }
        if items.len() >= SORT_FIELDS_MAX {
            return Err(RuleError::Limit(format!(
                "at most {SORT_FIELDS_MAX} sort fields"
            )));
        }
        if raw.chars().count() > SORT_FIELD_CHARS_MAX {
            return Err(RuleError::Limit("sort field too long".into()));
        }
        let (desc, name) = match raw.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, raw.strip_prefix('+').unwrap_or(raw)),
        };
        let item = match name {
            "@random" => SortItem::Random,
            "@rowid" => SortItem::RowId { desc },
            // Any identifier parses; `compile_sort` holds it to the filter's restrictions
            // (403 for `@request.*`/`@collection.*` from non-superusers, as the reference).
            _ => match parse_identifier(name)? {
                Operand::Ident(ident) => SortItem::Field { ident, desc },
                _ => return Err(RuleError::Syntax(format!("invalid sort field {name:?}"))),
            },
        };
        items.push(item);
    }
    Ok(items)
}

/// Compiles sort items into an `ORDER BY` body (without the keywords); empty when `items`
/// is empty. Relation paths become scalar subqueries; restricted callers get the same
/// checks as for filters.
pub fn compile_sort(
    items: &[SortItem],
    schema: &dyn Schema,
    collection: &CollectionInfo,
    main_alias: &str,
    req: &RequestInfo,
    params: &mut Params,
    opts: &CompileOptions,
) -> Result<String, RuleError> {
    let mut parts = Vec::new();
    for item in items {
        match item {
            SortItem::Random => parts.push("RANDOM()".to_string()),
            SortItem::RowId { desc } => parts.push(format!(
                "{main_alias}._rowid_ {}",
                if *desc { "DESC" } else { "ASC" }
            )),
            SortItem::Field { ident, desc } => {
                // Compile `ident IS NULL` and take the operand side: the resolver and every
                // access check run exactly as for a filter.
                let probe = Expr::Cmp(Box::new(Comparison {
                    left: Operand::Ident(ident.clone()),
                    op: CmpOp {
                        kind: OpKind::Gt,
                        any: false,
                    },
                    right: Operand::Null,
                }));
                let mut scratch = params.clone();
                let compiled = compile(
                    &probe,
                    schema,
                    collection,
                    main_alias,
                    req,
                    &mut scratch,
                    opts,
                )?;
                // The same resolver as a filter answered first (403 for a restricted
                // caller); a request value or macro is still no sort key (400).
                if ident.root != Root::Field {
                    return Err(RuleError::Resolve(format!("cannot sort by {ident}")));
                }
                if !compiled.joins.is_empty() || compiled.where_sql.starts_with("NOT EXISTS") {
                    return Err(RuleError::Resolve(format!(
                        "cannot sort by the multi-valued {ident}"
                    )));
                }
                let placeholder = format!(" > ?{})", scratch.len());
                let Some(body) = compiled
                    .where_sql
                    .strip_prefix('(')
                    .and_then(|s| s.strip_suffix(&placeholder))
                else {
                    return Err(RuleError::Resolve(format!("cannot sort by {ident}")));
                };
                // Keep the parameters the operand used, drop the probe's NULL.
                let mut used = scratch.into_vec();
                used.pop();
                let mut rebuilt = Params::new();
                for value in used {
                    rebuilt.push(value);
                }
                *params = rebuilt;
                parts.push(format!("{body} {}", if *desc { "DESC" } else { "ASC" }));
            }
        }
    }
    Ok(parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_items() {
        let items = parse_sort("-created, +title,@random,-@rowid,author.name").unwrap();
        assert_eq!(items.len(), 5);
        assert_eq!(items[2], SortItem::Random);
        assert_eq!(items[3], SortItem::RowId { desc: true });
        assert!(parse_sort("a,b,c,d,e,f,g,h,i").is_err());
        assert!(parse_sort("@request.auth.id").is_ok());
        assert!(parse_sort("a b").is_err());
        for bad in ["a,", ",a", "a,,b", " ", ",", "-", "+", "--a"] {
            assert!(parse_sort(bad).is_err(), "{bad:?}");
        }
        assert!(parse_sort("").unwrap().is_empty());
        assert_eq!(parse_sort(" a , b").unwrap().len(), 2);
    }
}
