//! Compiler: resolved AST to an SQL `WHERE` fragment with numbered bound parameters.
//!
//! Strategy (one row per main record wherever possible):
//! - own fields are columns of the main alias; JSON paths use `json_extract` with the path
//!   as a bound parameter;
//! - relation paths, back-relations and `:each` become correlated subqueries: a single
//!   chain is a scalar subquery, a multi-valued chain is a row source `SELECT … AS v`;
//!   `?op` is `EXISTS (… WHERE cmp)`, plain `op` is `NOT EXISTS (… WHERE NOT cmp)`, and an
//!   empty source behaves as one NULL row (PocketBase's LEFT JOIN semantics);
//! - `@collection.x[:alias]` inside `?op` comparisons needs one row shared by every
//!   comparison naming the same alias, so it becomes a `LEFT JOIN` of the main query and
//!   sets `needs_distinct`; inside plain `op` it is a `NOT EXISTS` subquery.
//!
//! Invariants:
//! 1. User literals only ever appear as `?N` placeholders; identifiers only as quoted
//!    schema names or generated aliases (`__jN`, `__sN`, `__cN`).
//! 2. Static values (literals, `@request.*`, macros) are pushed to `Params` only when they
//!    are rendered, so every placeholder is referenced by the SQL text.

use std::collections::HashMap;

use crate::ast::{CmpOp, Comparison, Expr, FuncName, Ident, Modifier, OpKind, Operand, Root};
use crate::errors::RuleError;
use crate::limits::RELATION_DEPTH_MAX;
use crate::parser::parse_rule;
use crate::request::{Params, RequestInfo, SqlValue};
use crate::resolve::{
    back_relation, json_path, lookup_field, quote_ident, request_value, RequestValue,
};
use crate::schema::{CollectionInfo, CollectionKind, FieldKind, Schema};

/// How the expression is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CompileOptions {
    /// `true` for a client `filter`/`sort`: for non-superusers this forbids `@request.*`,
    /// `@collection.*` and hidden fields, hides non-visible emails, and applies each
    /// traversed collection's listRule. `false` for collection rules.
    pub client_filter: bool,
}

/// A compiled `WHERE` fragment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SqlFilter {
    /// `LEFT JOIN …` clauses to add after `FROM <table> <alias>`.
    pub joins: Vec<String>,
    /// The condition (never empty).
    pub where_sql: String,
    /// `true` when `joins` may multiply rows: select `DISTINCT <alias>.*`.
    pub needs_distinct: bool,
    /// Ids of the collections reached through relations/back-relations.
    pub traversed_collections: Vec<String>,
}

/// Compiles `expr` for `collection` aliased as `main_alias`.
pub fn compile(
    expr: &Expr,
    schema: &dyn Schema,
    collection: &CollectionInfo,
    main_alias: &str,
    req: &RequestInfo,
    params: &mut Params,
    opts: &CompileOptions,
) -> Result<SqlFilter, RuleError> {
    let mut counter = 0;
    let mut compiler = Compiler::new(schema, req, params, opts, &mut counter);
    let where_sql = compiler.expr(expr, collection, main_alias)?;
    Ok(SqlFilter {
        needs_distinct: !compiler.joins.is_empty(),
        joins: compiler.joins,
        where_sql,
        traversed_collections: compiler.traversed,
    })
}

/// How a comparison treats an operand (`docs/wire/rules.md` "Meaning": empty and NULL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Static NULL or `""`.
    StaticEmpty,
    /// Static non-empty value.
    StaticValue,
    /// JSON paths, `geoDistance`, `:changed`: NULL-strict `IS`.
    Raw,
    /// Columns and other expressions.
    Plain,
}

#[derive(Debug, Clone)]
enum Value {
    Static(SqlValue),
    Sql(String),
}

/// A resolved operand.
#[derive(Debug, Clone)]
struct SqlOperand {
    value: Value,
    /// Row sources `(alias, SELECT … AS v …)` the value refers to.
    sources: Vec<(String, String)>,
    raw: bool,
}

impl SqlOperand {
    fn fixed(value: SqlValue) -> SqlOperand {
        SqlOperand {
            value: Value::Static(value),
            sources: Vec::new(),
            raw: false,
        }
    }

    fn sql(sql: String, raw: bool) -> SqlOperand {
        SqlOperand {
            value: Value::Sql(sql),
            sources: Vec::new(),
            raw,
        }
    }

    fn class(&self) -> Class {
        match &self.value {
            Value::Static(_) if self.raw => Class::Raw,
            Value::Static(v) if v.is_empty() => Class::StaticEmpty,
            Value::Static(_) => Class::StaticValue,
            Value::Sql(_) if self.raw => Class::Raw,
            Value::Sql(_) => Class::Plain,
        }
    }
}

/// `json_each` input that is always a valid JSON document.
fn json_list(expr: &str) -> String {
    format!("(CASE WHEN json_valid({expr}) THEN {expr} ELSE '[]' END)")
}

/// LIKE pattern for a static right operand (`docs/wire/rules.md` "Meaning"): a literal with an
/// unescaped `%` is a raw pattern; otherwise `\`/`_` are escaped and the text is wrapped in
/// `%…%`.
pub(crate) fn like_pattern(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut raw = false;
    let mut index = 0;
    while index < chars.len() {
        if chars[index] == '\\' {
            index += 2;
            continue;
        }
        if chars[index] == '%' {
            raw = true;
            break;
        }
        index += 1;
    }
    if raw {
        return text.to_string();
    }
    let mut out = String::from("%");
    let mut index = 0;
    while index < chars.len() {
        let c = chars[index];
        match c {
            '\\' if matches!(chars.get(index + 1), Some('%' | '_' | '\\')) => {
                out.push('\\');
                out.push(chars[index + 1]);
                index += 2;
                continue;
            }
            '\\' => out.push_str("\\\\"),
            '_' => out.push_str("\\_"),
            other => out.push(other),
        }
        index += 1;
    }
    out.push('%');
    out
}

/// Text form of a static LIKE operand.
pub(crate) fn like_text(value: &SqlValue) -> String {
    match value {
        SqlValue::Null => String::new(),
        SqlValue::Int(i) => i.to_string(),
        SqlValue::Real(r) => crate::resolve::real_to_text(*r),
        SqlValue::Text(t) => t.clone(),
    }
}

struct Walk<'s> {
    from: String,
    conds: Vec<String>,
    alias: String,
    collection: &'s CollectionInfo,
    multi: bool,
    hops: usize,
}

struct Compiler<'a, 's> {
    schema: &'s dyn Schema,
    req: &'a RequestInfo,
    params: &'a mut Params,
    restricted: bool,
    client: bool,
    counter: &'a mut usize,
    joins: Vec<String>,
    collection_aliases: HashMap<String, String>,
    traversed: Vec<String>,
}

impl<'a, 's> Compiler<'a, 's> {
    fn new(
        schema: &'s dyn Schema,
        req: &'a RequestInfo,
        params: &'a mut Params,
        opts: &CompileOptions,
        counter: &'a mut usize,
    ) -> Compiler<'a, 's> {
        Compiler {
            schema,
            req,
            params,
            restricted: opts.client_filter && !req.is_superuser,
            client: opts.client_filter,
            counter,
            joins: Vec::new(),
            collection_aliases: HashMap::new(),
            traversed: Vec::new(),
        }
    }

    fn alias(&mut self, prefix: &str) -> String {
        *self.counter += 1;
        format!("__{prefix}{}", self.counter)
    }

    fn render(&mut self, value: &Value) -> String {
        match value {
            Value::Static(v) => self.params.push(v.clone()),
            Value::Sql(s) => s.clone(),
        }
    }

    fn expr(
        &mut self,
        expr: &Expr,
        collection: &'s CollectionInfo,
        main: &str,
    ) -> Result<String, RuleError> {
        match expr {
            Expr::And(l, r) => Ok(format!(
                "({} AND {})",
                self.expr(l, collection, main)?,
                self.expr(r, collection, main)?
            )),
            Expr::Or(l, r) => Ok(format!(
                "({} OR {})",
                self.expr(l, collection, main)?,
                self.expr(r, collection, main)?
            )),
            Expr::Cmp(c) => self.comparison(c, collection, main),
        }
    }

    fn comparison(
        &mut self,
        c: &Comparison,
        collection: &'s CollectionInfo,
        main: &str,
    ) -> Result<String, RuleError> {
        let any = c.op.any;
        let left = self.operand(&c.left, collection, main, any)?;
        let right = self.operand(&c.right, collection, main, any)?;
        if left.sources.is_empty() && right.sources.is_empty() {
            return Ok(self.cmp_sql(c.op, &left, &right));
        }
        let body = self.cmp_sql(c.op, &left, &right);
        let from: Vec<String> = left
            .sources
            .iter()
            .chain(right.sources.iter())
            .map(|(alias, select)| {
                format!(
                    "(SELECT v FROM ({select}) UNION ALL SELECT NULL WHERE NOT EXISTS ({select})) {alias}"
                )
            })
            .collect();
        let from = from.join(", ");
        Ok(if any {
            format!("EXISTS (SELECT 1 FROM {from} WHERE {body})")
        } else {
            format!("NOT EXISTS (SELECT 1 FROM {from} WHERE NOT COALESCE({body}, 0))")
        })
    }

    /// SQL for one comparison of two single values.
    fn cmp_sql(&mut self, op: CmpOp, left: &SqlOperand, right: &SqlOperand) -> String {
        let (lc, rc) = (left.class(), right.class());
        match op.kind {
            OpKind::Eq | OpKind::Neq => {
                let eq = op.kind == OpKind::Eq;
                if lc == Class::Raw || rc == Class::Raw {
                    let (l, r) = (self.render(&left.value), self.render(&right.value));
                    return format!("({l} {} {r})", if eq { "IS" } else { "IS NOT" });
                }
                if lc == Class::StaticEmpty && rc == Class::StaticEmpty {
                    return if eq { "1".into() } else { "0".into() };
                }
                if lc == Class::StaticValue || rc == Class::StaticValue {
                    let (l, r) = (self.render(&left.value), self.render(&right.value));
                    return format!("({l} {} {r})", if eq { "=" } else { "IS NOT" });
                }
                let other = if lc == Class::StaticEmpty {
                    Some(&right.value)
                } else if rc == Class::StaticEmpty {
                    Some(&left.value)
                } else {
                    None
                };
                if let Some(other) = other {
                    let x = self.render(other);
                    return if eq {
                        format!("({x} = '' OR {x} IS NULL)")
                    } else {
                        format!("({x} IS NOT '' AND {x} IS NOT NULL)")
                    };
                }
                let (l, r) = (self.render(&left.value), self.render(&right.value));
                format!(
                    "(COALESCE({l}, '') {} COALESCE({r}, ''))",
                    if eq { "=" } else { "IS NOT" }
                )
            }
            OpKind::Gt | OpKind::Gte | OpKind::Lt | OpKind::Lte => {
                let (l, r) = (self.render(&left.value), self.render(&right.value));
                format!("({l} {} {r})", op.kind)
            }
            OpKind::Like | OpKind::NotLike => {
                let l = self.render(&left.value);
                let pattern = match &right.value {
                    Value::Static(v) => self
                        .params
                        .push(SqlValue::Text(like_pattern(&like_text(v)))),
                    Value::Sql(s) => format!("('%' || {s} || '%')"),
                };
                let not = if op.kind == OpKind::NotLike {
                    "NOT "
                } else {
                    ""
                };
                format!("({l} {not}LIKE {pattern} ESCAPE '\\')")
            }
        }
    }

    fn operand(
        &mut self,
        operand: &Operand,
        collection: &'s CollectionInfo,
        main: &str,
        any: bool,
    ) -> Result<SqlOperand, RuleError> {
        match operand {
            Operand::Null => Ok(SqlOperand::fixed(SqlValue::Null)),
            Operand::Bool(b) => Ok(SqlOperand::fixed(SqlValue::Int(i64::from(*b)))),
            Operand::Number(n) => Ok(SqlOperand::fixed(SqlValue::from_f64(*n))),
            Operand::Text(t) => Ok(SqlOperand::fixed(SqlValue::Text(t.clone()))),
            Operand::Func(func) => {
                let mut args = Vec::new();
                for arg in &func.args {
                    args.push(self.operand(arg, collection, main, any)?);
                }
                if func.name == FuncName::GeoDistance {
                    let statics: Vec<f64> = args
                        .iter()
                        .filter_map(|a| match &a.value {
                            Value::Static(SqlValue::Int(i)) => Some(*i as f64),
                            Value::Static(SqlValue::Real(r)) => Some(*r),
                            _ => None,
                        })
                        .collect();
                    // Constant arguments are folded here, so no SQL math functions are needed.
                    if let [lon_a, lat_a, lon_b, lat_b] = statics[..] {
                        let km = crate::resolve::geo_distance_km(lon_a, lat_a, lon_b, lat_b);
                        return Ok(SqlOperand {
                            value: Value::Static(SqlValue::Real(km)),
                            sources: Vec::new(),
                            raw: true,
                        });
                    }
                }
                let mut sources = Vec::new();
                let mut rendered = Vec::new();
                for arg in &args {
                    sources.extend(arg.sources.iter().cloned());
                    rendered.push(self.render(&arg.value));
                }
                let (sql, raw) = match func.name {
                    FuncName::Strftime => (format!("strftime({})", rendered.join(", ")), false),
                    FuncName::GeoDistance => (geo_distance_sql(&rendered)?, true),
                };
                Ok(SqlOperand {
                    value: Value::Sql(sql),
                    sources,
                    raw,
                })
            }
            Operand::Ident(ident) => self.ident(ident, collection, main, any),
        }
    }

    fn ident(
        &mut self,
        ident: &Ident,
        collection: &'s CollectionInfo,
        main: &str,
        any: bool,
    ) -> Result<SqlOperand, RuleError> {
        match &ident.root {
            Root::Field => {
                let walk = Walk {
                    from: String::new(),
                    conds: Vec::new(),
                    alias: main.to_string(),
                    collection,
                    multi: false,
                    hops: 0,
                };
                self.walk(walk, &ident.path, ident.modifier, ident)
            }
            Root::Collection { name, alias } => {
                if self.restricted {
                    return Err(RuleError::Forbidden(
                        "Only superusers can filter by @collection.".into(),
                    ));
                }
                let target = self.schema.find(name).ok_or_else(|| {
                    RuleError::Resolve(format!("unknown collection {name:?} in {ident}"))
                })?;
                let walk = if any {
                    let key = alias.clone().unwrap_or_else(|| format!("{name}\0"));
                    let join_alias = match self.collection_aliases.get(&key) {
                        Some(a) => a.clone(),
                        None => {
                            let a = self.alias("c");
                            self.joins.push(format!(
                                "LEFT JOIN {} {a} ON 1=1",
                                quote_ident(&target.name)
                            ));
                            self.collection_aliases.insert(key, a.clone());
                            a
                        }
                    };
                    Walk {
                        from: String::new(),
                        conds: Vec::new(),
                        alias: join_alias,
                        collection: target,
                        multi: false,
                        hops: 0,
                    }
                } else {
                    let a = self.alias("j");
                    Walk {
                        from: format!("{} {a}", quote_ident(&target.name)),
                        conds: Vec::new(),
                        alias: a,
                        collection: target,
                        multi: true,
                        hops: 0,
                    }
                };
                self.walk(walk, &ident.path, ident.modifier, ident)
            }
            _ => {
                // Datetime macros (`@now`, `@todayStart`, …) are not request data: every
                // caller may use them (as on the reference).
                if self.restricted && !matches!(ident.root, Root::Macro(_)) {
                    return Err(RuleError::Forbidden(
                        "Only superusers can filter by @request.".into(),
                    ));
                }
                match request_value(ident, self.schema, collection, self.req)? {
                    RequestValue::Value(v) => Ok(SqlOperand::fixed(v)),
                    RequestValue::List(items) => {
                        let json =
                            serde_json::Value::Array(items.iter().map(sql_to_json).collect())
                                .to_string();
                        let p = self.params.push(SqlValue::Text(json));
                        let source_alias = self.alias("s");
                        Ok(SqlOperand {
                            value: Value::Sql(format!("{source_alias}.v")),
                            sources: vec![(
                                source_alias,
                                format!("SELECT value AS v FROM json_each({p})"),
                            )],
                            raw: false,
                        })
                    }
                    RequestValue::Changed { submitted, field } => {
                        let Some(submitted) = submitted else {
                            return Ok(SqlOperand::fixed(SqlValue::Int(0)));
                        };
                        let column = SqlOperand::sql(
                            format!("{main}.{}", quote_ident(&field.name)),
                            matches!(field.kind, FieldKind::Json),
                        );
                        let ne = CmpOp {
                            kind: OpKind::Neq,
                            any: false,
                        };
                        let sql = self.cmp_sql(ne, &SqlOperand::fixed(submitted), &column);
                        Ok(SqlOperand::sql(sql, true))
                    }
                    RequestValue::Hop { target, ids, rest } => {
                        let a = self.alias("j");
                        let json = serde_json::Value::from(ids.clone()).to_string();
                        let p = self.params.push(SqlValue::Text(json));
                        let walk = Walk {
                            from: format!("{} {a}", quote_ident(&target.name)),
                            conds: vec![format!(
                                "{a}.\"id\" IN (SELECT value FROM json_each({p}))"
                            )],
                            alias: a,
                            collection: target,
                            multi: ids.len() > 1,
                            hops: 1,
                        };
                        self.walk(walk, &rest, ident.modifier, ident)
                    }
                }
            }
        }
    }

    /// Adds the listRule of a traversed collection for restricted callers.
    fn hop_into(
        &mut self,
        walk: &mut Walk<'s>,
        target: &'s CollectionInfo,
    ) -> Result<(), RuleError> {
        walk.hops += 1;
        if walk.hops > RELATION_DEPTH_MAX {
            return Err(RuleError::Limit(format!(
                "relation paths may be at most {RELATION_DEPTH_MAX} levels deep"
            )));
        }
        if !self.traversed.contains(&target.id) {
            self.traversed.push(target.id.clone());
        }
        if !self.restricted {
            return Ok(());
        }
        let Some(rule) = &target.list_rule else {
            return Err(RuleError::Resolve(format!(
                "only superusers can filter by fields of {:?}",
                target.name
            )));
        };
        if rule.trim().is_empty() {
            return Ok(());
        }
        let rule_expr = parse_rule(rule)?;
        let opts = CompileOptions {
            client_filter: false,
        };
        let mut nested = Compiler::new(self.schema, self.req, self.params, &opts, self.counter);
        let sql = nested.expr(&rule_expr, target, &walk.alias)?;
        for join in nested.joins {
            walk.from.push(' ');
            walk.from.push_str(&join);
        }
        walk.conds.push(sql);
        Ok(())
    }

    fn walk(
        &mut self,
        mut walk: Walk<'s>,
        path: &[String],
        modifier: Option<Modifier>,
        ident: &Ident,
    ) -> Result<SqlOperand, RuleError> {
        let unknown = |segment: &str| {
            RuleError::Resolve(format!(
                "invalid left operand {:?} - unknown field {segment:?}",
                ident.to_string()
            ))
        };
        let bad_modifier = |m: Modifier| {
            RuleError::Resolve(format!(
                "modifier :{} is not supported on {ident}",
                m.name()
            ))
        };
        let mut modifier = modifier;
        let mut index = 0;
        let (mut value_sql, raw, field_kind) = loop {
            let Some(segment) = path.get(index) else {
                return Err(unknown(""));
            };
            let last = index + 1 == path.len();
            let cur = walk.alias.clone();
            if let Some(field) =
                lookup_field(walk.collection, segment, self.restricted, self.client)?
            {
                let column = format!("{cur}.{}", quote_ident(&field.name));
                if last {
                    let visible_email = self.restricted
                        && walk.collection.kind == CollectionKind::Auth
                        && field.name == "email";
                    let sql = if visible_email {
                        format!("(CASE WHEN {cur}.\"emailVisibility\" THEN {column} END)")
                    } else if field.kind == FieldKind::Json {
                        format!("NULLIF({column}, 'null')")
                    } else {
                        column
                    };
                    break (sql, field.kind == FieldKind::Json, Some(field.kind.clone()));
                }
                match &field.kind {
                    FieldKind::Relation {
                        collection_id,
                        multi,
                    } => {
                        let target = self.schema.find(collection_id).ok_or_else(|| {
                            RuleError::Resolve(format!(
                                "missing relation collection {collection_id:?}"
                            ))
                        })?;
                        // `rel.id` of a single relation is the column itself (no join).
                        if !multi && index + 2 == path.len() && path[index + 1] == "id" {
                            break (column, false, Some(FieldKind::Text));
                        }
                        let j = self.alias("j");
                        let table = quote_ident(&target.name);
                        if *multi {
                            let e = self.alias("e");
                            let each = format!(
                                "json_each({}) {e} JOIN {table} {j} ON {j}.\"id\" = {e}.value",
                                json_list(&column)
                            );
                            if walk.from.is_empty() {
                                walk.from = each;
                            } else {
                                walk.from = format!("{} JOIN {each}", walk.from);
                            }
                            walk.multi = true;
                        } else if walk.from.is_empty() {
                            walk.from = format!("{table} {j}");
                            walk.conds.push(format!("{j}.\"id\" = {column}"));
                        } else {
                            walk.from =
                                format!("{} JOIN {table} {j} ON {j}.\"id\" = {column}", walk.from);
                        }
                        walk.alias = j;
                        walk.collection = target;
                        self.hop_into(&mut walk, target)?;
                    }
                    FieldKind::Json | FieldKind::GeoPoint => {
                        let keys = json_path_keys(&path[index + 1..], modifier.take());
                        let p = self.params.push(SqlValue::Text(json_path(&keys)));
                        let sql = format!(
                            "json_extract(CASE WHEN json_valid({column}) THEN {column} END, {p})"
                        );
                        break (sql, true, None);
                    }
                    _ => return Err(unknown(&path[index + 1])),
                }
            } else if let Some((target, via)) =
                back_relation(self.schema, walk.collection, segment)?
            {
                if last {
                    return Err(match modifier {
                        Some(m) => bad_modifier(m),
                        None => unknown(segment),
                    });
                }
                let j = self.alias("j");
                let via_column = format!("{j}.{}", quote_ident(&via.name));
                let cond = if via.kind.is_multi() {
                    format!(
                        "EXISTS (SELECT 1 FROM json_each({}) WHERE value = {cur}.\"id\")",
                        json_list(&via_column)
                    )
                } else {
                    format!("{via_column} = {cur}.\"id\"")
                };
                let table = quote_ident(&target.name);
                if walk.from.is_empty() {
                    walk.from = format!("{table} {j}");
                    walk.conds.push(cond);
                } else {
                    walk.from = format!("{} JOIN {table} {j} ON {cond}", walk.from);
                }
                walk.multi = true;
                walk.alias = j;
                walk.collection = target;
                self.hop_into(&mut walk, target)?;
            } else {
                return Err(unknown(segment));
            }
            index += 1;
        };
        match modifier {
            None => {}
            Some(Modifier::Lower) => value_sql = format!("LOWER({value_sql})"),
            Some(Modifier::Length) if field_kind.as_ref().is_some_and(FieldKind::is_list) => {
                // PocketBase's count: a JSON array's length, one for any other non-empty
                // value (a single select/relation/file), zero for empty or NULL.
                value_sql = format!(
                    "json_array_length(CASE WHEN json_valid({value_sql}) THEN {value_sql} ELSE (CASE WHEN {value_sql} = '' OR {value_sql} IS NULL THEN json_array() ELSE json_array({value_sql}) END) END)"
                );
            }
            Some(Modifier::Each) if field_kind.as_ref().is_some_and(FieldKind::is_multi) => {
                let e = self.alias("e");
                let each = format!("json_each({}) {e}", json_list(&value_sql));
                walk.from = if walk.from.is_empty() {
                    each
                } else {
                    format!("{} JOIN {each}", walk.from)
                };
                walk.multi = true;
                value_sql = format!("{e}.value");
            }
            // The reference ignores the other field modifiers (`:length` on a text or JSON
            // field, `:each` on a single select, `:isset` on a column); measured.
            Some(_) if field_kind.is_some() => {}
            Some(m) => return Err(bad_modifier(m)),
        }
        if walk.from.is_empty() {
            return Ok(SqlOperand::sql(value_sql, raw));
        }
        let where_sql = if walk.conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", walk.conds.join(" AND "))
        };
        if !walk.multi {
            return Ok(SqlOperand::sql(
                format!("(SELECT {value_sql} FROM {}{where_sql} LIMIT 1)", walk.from),
                raw,
            ));
        }
        let source_alias = self.alias("s");
        Ok(SqlOperand {
            value: Value::Sql(format!("{source_alias}.v")),
            sources: vec![(
                source_alias,
                format!("SELECT {value_sql} AS v FROM {}{where_sql}", walk.from),
            )],
            raw,
        })
    }
}

/// The JSON keys below a JSON field. A modifier written after a JSON path
/// (`meta.arr:length`) is not a modifier there: PocketBase (v0.40.6, measured) strips the
/// `:` and keeps the name as part of the last key (`$.arrlength`), so such a filter
/// evaluates (usually to NULL) instead of failing.
pub(crate) fn json_path_keys(path: &[String], modifier: Option<Modifier>) -> Vec<String> {
    let mut keys = path.to_vec();
    if let (Some(modifier), Some(last)) = (modifier, keys.last_mut()) {
        last.push_str(modifier.name());
    }
    keys
}

fn sql_to_json(value: &SqlValue) -> serde_json::Value {
    match value {
        SqlValue::Null => serde_json::Value::Null,
        SqlValue::Int(i) => serde_json::Value::from(*i),
        SqlValue::Real(r) => serde_json::Value::from(*r),
        SqlValue::Text(t) => serde_json::Value::from(t.clone()),
    }
}

/// Haversine distance in km between (lonA, latA) and (lonB, latB).
fn geo_distance_sql(args: &[String]) -> Result<String, RuleError> {
    let [lon_a, lat_a, lon_b, lat_b] = args else {
        return Err(RuleError::Syntax(
            "geoDistance expects exactly 4 arguments".into(),
        ));
    };
    Ok(format!(
        "(12742.0 * asin(sqrt(pow(sin((radians({lat_b}) - radians({lat_a})) / 2), 2) + \
         cos(radians({lat_a})) * cos(radians({lat_b})) * \
         pow(sin((radians({lon_b}) - radians({lon_a})) / 2), 2))))"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns() {
        assert_eq!(like_pattern("WRITE"), "%WRITE%");
        assert_eq!(like_pattern("100%"), "100%");
        assert_eq!(like_pattern(r"100\%"), r"%100\%%");
        assert_eq!(like_pattern("review_"), r"%review\_%");
        assert_eq!(like_pattern(r"a\b"), r"%a\\b%");
    }
}
