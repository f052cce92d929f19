//! In-memory evaluator for rules that touch only the record's own fields, literals,
//! macros and `@request.*` — used by realtime to check many subscribers without SQLite.
//!
//! It mirrors `compile_sql.rs` decision by decision (NULL/empty handling, `IS` vs `=`,
//! LIKE patterns, ANY/ALL over `:each` lists) and emulates SQLite's comparison rules:
//! column affinity (NUMERIC for number/bool/json/multi columns, TEXT otherwise) applied to
//! the other operand, NULL < numbers < text, ASCII case-insensitive LIKE. Anything that
//! needs a join (relations, back-relations, `@collection`, `strftime`) is
//! `EvalError::NeedsDatabase`.
//!
//! Invariants:
//! 1. For every expression it accepts, the result equals the SQL compiled by `compile` run
//!    on a row stored with the workspace layout (checked by a property test).
//! 2. Never panics on any record shape.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use crate::ast::{CmpOp, Expr, FuncName, Ident, Modifier, OpKind, Operand, Root};
use crate::compile_sql::{json_path_keys, like_pattern, like_text};
use crate::errors::{EvalError, RuleError};
use crate::request::{RequestInfo, SqlValue};
use crate::resolve::{
    back_relation, geo_distance_km, json_walk, real_to_text, request_value, sql_lower, RequestValue,
};
use crate::schema::{CollectionInfo, FieldInfo, FieldKind, Schema};

/// Evaluates `expr` against `record` (record JSON form, hidden fields included).
///
/// For create rules pass the would-be record; `:isset`/`:changed` read `req.body`.
pub fn eval(
    expr: &Expr,
    schema: &dyn Schema,
    collection: &CollectionInfo,
    record: &Map<String, Value>,
    req: &RequestInfo,
) -> Result<bool, EvalError> {
    let evaluator = Evaluator {
        schema,
        collection,
        record,
        req,
    };
    Ok(evaluator.expr(expr)? == Some(true))
}

/// `true` when `expr` cannot be evaluated in memory (relations, back-relations,
/// `@collection`, `strftime`, `@request.auth.<rel>.<field>`, `@request.body.<rel>.<field>`).
pub fn needs_database(expr: &Expr, schema: &dyn Schema, collection: &CollectionInfo) -> bool {
    let mut needs = false;
    expr.for_each_comparison(&mut |c| {
        for operand in [&c.left, &c.right] {
            if let Operand::Func(f) = operand {
                needs |= f.name == FuncName::Strftime;
            }
            operand.for_each_ident(&mut |ident| {
                needs |= ident_needs_database(ident, schema, collection);
            });
        }
    });
    needs
}

fn ident_needs_database(ident: &Ident, schema: &dyn Schema, collection: &CollectionInfo) -> bool {
    match &ident.root {
        Root::Collection { .. } => true,
        Root::RequestAuth => ident.path.len() > 1,
        Root::RequestBody => {
            ident.path.len() > 1
                && collection
                    .field(&ident.path[0])
                    .is_some_and(|f| matches!(f.kind, FieldKind::Relation { .. }))
        }
        Root::Field => match collection.field(&ident.path[0]) {
            None => back_relation(schema, collection, &ident.path[0]).is_ok(),
            Some(field) => match &field.kind {
                FieldKind::Relation { multi, .. } => {
                    ident.path.len() > 1
                        && !(!multi && ident.path.len() == 2 && ident.path[1] == "id")
                }
                _ => false,
            },
        },
        _ => false,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    StaticEmpty,
    StaticValue,
    Raw,
    Plain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Affinity {
    None,
    Text,
    Numeric,
}

#[derive(Debug, Clone)]
struct Val {
    value: SqlValue,
    affinity: Affinity,
}

#[derive(Debug, Clone)]
struct EvalOperand {
    values: Vec<Val>,
    multi: bool,
    class: Class,
}

impl EvalOperand {
    fn fixed(value: SqlValue, raw: bool) -> EvalOperand {
        let class = if raw {
            Class::Raw
        } else if value.is_empty() {
            Class::StaticEmpty
        } else {
            Class::StaticValue
        };
        EvalOperand {
            values: vec![Val {
                value,
                affinity: Affinity::None,
            }],
            multi: false,
            class,
        }
    }

    fn plain(value: SqlValue, affinity: Affinity, raw: bool) -> EvalOperand {
        EvalOperand {
            values: vec![Val { value, affinity }],
            multi: false,
            class: if raw { Class::Raw } else { Class::Plain },
        }
    }
}

/// SQLite's NUMERIC affinity conversion of a text value.
fn to_numeric(text: &str) -> Option<SqlValue> {
    let trimmed = text.trim_matches(|c: char| c == ' ' || c == '\t' || c == '\n' || c == '\r');
    if trimmed.is_empty() {
        return None;
    }
    let plain = trimmed.strip_prefix(['+', '-']).unwrap_or(trimmed);
    let valid = !plain.is_empty()
        && plain
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
        && plain.starts_with(|c: char| c.is_ascii_digit() || c == '.');
    if !valid {
        return None;
    }
    if let Ok(i) = trimmed.parse::<i64>() {
        return Some(SqlValue::Int(i));
    }
    let r = trimmed.parse::<f64>().ok().filter(|r| r.is_finite())?;
    Some(SqlValue::from_f64(r))
}

fn apply_affinity(value: &SqlValue, affinity: Affinity) -> SqlValue {
    match (affinity, value) {
        (Affinity::Numeric, SqlValue::Text(t)) => to_numeric(t).unwrap_or_else(|| value.clone()),
        (Affinity::Text, SqlValue::Int(i)) => SqlValue::Text(i.to_string()),
        (Affinity::Text, SqlValue::Real(r)) => SqlValue::Text(real_to_text(*r)),
        _ => value.clone(),
    }
}

fn type_rank(value: &SqlValue) -> u8 {
    match value {
        SqlValue::Null => 0,
        SqlValue::Int(_) | SqlValue::Real(_) => 1,
        SqlValue::Text(_) => 2,
    }
}

/// Orders two non-NULL values like SQLite (BINARY collation).
fn order(l: &SqlValue, r: &SqlValue) -> Ordering {
    match (l, r) {
        (SqlValue::Int(a), SqlValue::Int(b)) => a.cmp(b),
        (SqlValue::Int(a), SqlValue::Real(b)) => {
            (*a as f64).partial_cmp(b).unwrap_or(Ordering::Equal)
        }
        (SqlValue::Real(a), SqlValue::Int(b)) => {
            a.partial_cmp(&(*b as f64)).unwrap_or(Ordering::Equal)
        }
        (SqlValue::Real(a), SqlValue::Real(b)) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
        (SqlValue::Text(a), SqlValue::Text(b)) => a.as_bytes().cmp(b.as_bytes()),
        _ => type_rank(l).cmp(&type_rank(r)),
    }
}

/// Applies SQLite's comparison affinity rules, then orders; `None` when either is NULL.
fn compare(l: &Val, r: &Val) -> Option<Ordering> {
    let (mut lv, mut rv) = (l.value.clone(), r.value.clone());
    if l.affinity == Affinity::Numeric && r.affinity != Affinity::Numeric {
        rv = apply_affinity(&rv, Affinity::Numeric);
    } else if r.affinity == Affinity::Numeric && l.affinity != Affinity::Numeric {
        lv = apply_affinity(&lv, Affinity::Numeric);
    } else if l.affinity == Affinity::Text && r.affinity == Affinity::None {
        rv = apply_affinity(&rv, Affinity::Text);
    } else if r.affinity == Affinity::Text && l.affinity == Affinity::None {
        lv = apply_affinity(&lv, Affinity::Text);
    }
    if lv == SqlValue::Null || rv == SqlValue::Null {
        return None;
    }
    Some(order(&lv, &rv))
}

fn is_same(l: &Val, r: &Val) -> bool {
    match (&l.value, &r.value) {
        (SqlValue::Null, SqlValue::Null) => true,
        (SqlValue::Null, _) | (_, SqlValue::Null) => false,
        _ => compare(l, r) == Some(Ordering::Equal),
    }
}

fn text_of(value: &SqlValue) -> Option<String> {
    match value {
        SqlValue::Null => None,
        other => Some(like_text(other)),
    }
}

/// `value LIKE pattern ESCAPE '\'` with ASCII case folding.
fn like(value: &str, pattern: &str) -> bool {
    let v: Vec<char> = value.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    like_from(&v, &p)
}

fn like_from(v: &[char], p: &[char]) -> bool {
    let (mut vi, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi < p.len() {
            match p[pi] {
                '%' => {
                    star = Some((pi + 1, vi));
                    pi += 1;
                    continue;
                }
                '_' if vi < v.len() => {
                    vi += 1;
                    pi += 1;
                    continue;
                }
                c => {
                    let (literal, width) = if c == '\\' {
                        match p.get(pi + 1) {
                            Some(next) => (*next, 2),
                            None => ('\\', 1),
                        }
                    } else {
                        (c, 1)
                    };
                    let underscore = c == '_';
                    if !underscore && vi < v.len() && v[vi].eq_ignore_ascii_case(&literal) {
                        vi += 1;
                        pi += width;
                        continue;
                    }
                }
            }
        } else if vi == v.len() {
            return true;
        }
        match star {
            Some((sp, sv)) if sv < v.len() => {
                star = Some((sp, sv + 1));
                pi = sp;
                vi = sv + 1;
            }
            _ => return false,
        }
    }
}

fn and3(l: Option<bool>, r: Option<bool>) -> Option<bool> {
    match (l, r) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

fn or3(l: Option<bool>, r: Option<bool>) -> Option<bool> {
    match (l, r) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

/// Mirrors `Compiler::cmp_sql` for two single values.
fn cmp_values(
    op: CmpOp,
    lc: Class,
    l: &Val,
    rc: Class,
    r: &Val,
    right_static: bool,
) -> Option<bool> {
    let empty = Val {
        value: SqlValue::Text(String::new()),
        affinity: Affinity::None,
    };
    match op.kind {
        OpKind::Eq | OpKind::Neq => {
            let eq = op.kind == OpKind::Eq;
            if lc == Class::Raw || rc == Class::Raw {
                return Some(is_same(l, r) == eq);
            }
            if lc == Class::StaticEmpty && rc == Class::StaticEmpty {
                return Some(eq);
            }
            if lc == Class::StaticValue || rc == Class::StaticValue {
                return if eq {
                    compare(l, r).map(|o| o == Ordering::Equal)
                } else {
                    Some(!is_same(l, r))
                };
            }
            let other = if lc == Class::StaticEmpty {
                Some(r)
            } else if rc == Class::StaticEmpty {
                Some(l)
            } else {
                None
            };
            if let Some(x) = other {
                let is_null = x.value == SqlValue::Null;
                let equals_empty = compare(x, &empty).map(|o| o == Ordering::Equal);
                return if eq {
                    or3(equals_empty, Some(is_null))
                } else {
                    Some(!is_same(x, &empty) && !is_null)
                };
            }
            let coalesce = |v: &Val| Val {
                value: if v.value == SqlValue::Null {
                    SqlValue::Text(String::new())
                } else {
                    v.value.clone()
                },
                affinity: Affinity::None,
            };
            Some(is_same(&coalesce(l), &coalesce(r)) == eq)
        }
        OpKind::Gt | OpKind::Gte | OpKind::Lt | OpKind::Lte => {
            let ordering = compare(l, r)?;
            Some(match op.kind {
                OpKind::Gt => ordering == Ordering::Greater,
                OpKind::Gte => ordering != Ordering::Less,
                OpKind::Lt => ordering == Ordering::Less,
                _ => ordering != Ordering::Greater,
            })
        }
        OpKind::Like | OpKind::NotLike => {
            let value = text_of(&l.value)?;
            let pattern = if right_static {
                like_pattern(&like_text(&r.value))
            } else {
                format!("%{}%", text_of(&r.value)?)
            };
            let matched = like(&value, &pattern);
            Some(if op.kind == OpKind::Like {
                matched
            } else {
                !matched
            })
        }
    }
}

struct Evaluator<'a> {
    schema: &'a dyn Schema,
    collection: &'a CollectionInfo,
    record: &'a Map<String, Value>,
    req: &'a RequestInfo,
}

/// The SQL value stored for a record JSON value under the workspace layout.
fn stored(field: &FieldInfo, value: Option<&Value>) -> SqlValue {
    let kind = &field.kind;
    let raw = match (kind, value) {
        (FieldKind::Json, None | Some(Value::Null)) => SqlValue::Null,
        (FieldKind::Json | FieldKind::GeoPoint, Some(v)) => SqlValue::Text(v.to_string()),
        (k, Some(v)) if k.is_multi() => SqlValue::Text(v.to_string()),
        (k, None) if k.is_multi() => SqlValue::Text("[]".into()),
        (FieldKind::GeoPoint, None) => SqlValue::Text("{\"lon\":0,\"lat\":0}".into()),
        (FieldKind::Number | FieldKind::Bool, None | Some(Value::Null)) => SqlValue::Int(0),
        (_, None | Some(Value::Null)) => SqlValue::Text(String::new()),
        (_, Some(v)) => SqlValue::from_json(v),
    };
    let affinity = if kind.numeric_affinity() {
        Affinity::Numeric
    } else {
        Affinity::Text
    };
    apply_affinity(&raw, affinity)
}

fn json_items(value: &SqlValue) -> Vec<SqlValue> {
    let parsed = match value {
        SqlValue::Text(t) => serde_json::from_str::<Value>(t).ok(),
        SqlValue::Int(i) => Some(Value::from(*i)),
        SqlValue::Real(r) => Some(Value::from(*r)),
        SqlValue::Null => None,
    };
    match parsed {
        Some(Value::Array(items)) => items.iter().map(SqlValue::from_json).collect(),
        Some(other) => vec![SqlValue::from_json(&other)],
        None => Vec::new(),
    }
}

impl Evaluator<'_> {
    fn expr(&self, expr: &Expr) -> Result<Option<bool>, EvalError> {
        match expr {
            Expr::And(l, r) => {
                let left = self.expr(l)?;
                if left == Some(false) {
                    return Ok(Some(false));
                }
                Ok(and3(left, self.expr(r)?))
            }
            Expr::Or(l, r) => {
                let left = self.expr(l)?;
                if left == Some(true) {
                    return Ok(Some(true));
                }
                Ok(or3(left, self.expr(r)?))
            }
            Expr::Cmp(c) => {
                let left = self.operand(&c.left)?;
                let right = self.operand(&c.right)?;
                let right_static = matches!(right.class, Class::StaticEmpty | Class::StaticValue)
                    || (right.class == Class::Raw && is_static_operand(&c.right));
                let null = [Val {
                    value: SqlValue::Null,
                    affinity: Affinity::None,
                }];
                let pick = |o: &EvalOperand| -> Vec<Val> {
                    if o.multi && o.values.is_empty() {
                        null.to_vec()
                    } else {
                        o.values.clone()
                    }
                };
                let (lv, rv) = (pick(&left), pick(&right));
                let mut all = true;
                for l in &lv {
                    for r in &rv {
                        let result = cmp_values(c.op, left.class, l, right.class, r, right_static);
                        if c.op.any && result == Some(true) {
                            return Ok(Some(true));
                        }
                        all &= result == Some(true);
                    }
                }
                if !left.multi && !right.multi {
                    let (l, r) = (&lv[0], &rv[0]);
                    return Ok(cmp_values(
                        c.op,
                        left.class,
                        l,
                        right.class,
                        r,
                        right_static,
                    ));
                }
                Ok(Some(if c.op.any { false } else { all }))
            }
        }
    }

    fn operand(&self, operand: &Operand) -> Result<EvalOperand, EvalError> {
        match operand {
            Operand::Null => Ok(EvalOperand::fixed(SqlValue::Null, false)),
            Operand::Bool(b) => Ok(EvalOperand::fixed(SqlValue::Int(i64::from(*b)), false)),
            Operand::Number(n) => Ok(EvalOperand::fixed(SqlValue::from_f64(*n), false)),
            Operand::Text(t) => Ok(EvalOperand::fixed(SqlValue::Text(t.clone()), false)),
            Operand::Func(func) => match func.name {
                FuncName::Strftime => Err(EvalError::NeedsDatabase),
                FuncName::GeoDistance => {
                    let mut numbers = Vec::new();
                    for arg in &func.args {
                        let value = self.operand(arg)?;
                        if value.multi {
                            return Err(EvalError::NeedsDatabase);
                        }
                        numbers.push(match value.values.first().map(|v| &v.value) {
                            Some(SqlValue::Int(i)) => Some(*i as f64),
                            Some(SqlValue::Real(r)) => Some(*r),
                            _ => None,
                        });
                    }
                    let result = match numbers[..] {
                        [Some(a), Some(b), Some(c), Some(d)] => {
                            SqlValue::Real(geo_distance_km(a, b, c, d))
                        }
                        _ => SqlValue::Null,
                    };
                    Ok(EvalOperand::fixed(result, true))
                }
            },
            Operand::Ident(ident) => self.ident(ident),
        }
    }

    fn ident(&self, ident: &Ident) -> Result<EvalOperand, EvalError> {
        if ident.root != Root::Field {
            if matches!(ident.root, Root::Collection { .. }) {
                return Err(EvalError::NeedsDatabase);
            }
            return match request_value(ident, self.schema, self.collection, self.req)? {
                RequestValue::Value(v) => Ok(EvalOperand::fixed(v, false)),
                RequestValue::List(items) => Ok(EvalOperand {
                    values: items
                        .into_iter()
                        .map(|value| Val {
                            value,
                            affinity: Affinity::None,
                        })
                        .collect(),
                    multi: true,
                    class: Class::Plain,
                }),
                RequestValue::Changed { submitted, field } => {
                    let Some(submitted) = submitted else {
                        return Ok(EvalOperand::fixed(SqlValue::Int(0), false));
                    };
                    let column = self.column(field);
                    let column_class = if field.kind == FieldKind::Json {
                        Class::Raw
                    } else {
                        Class::Plain
                    };
                    let submitted_class = if submitted.is_empty() {
                        Class::StaticEmpty
                    } else {
                        Class::StaticValue
                    };
                    let ne = CmpOp {
                        kind: OpKind::Neq,
                        any: false,
                    };
                    let submitted = Val {
                        value: submitted,
                        affinity: Affinity::None,
                    };
                    let changed = cmp_values(
                        ne,
                        submitted_class,
                        &submitted,
                        column_class,
                        &column,
                        false,
                    );
                    Ok(EvalOperand::plain(
                        SqlValue::Int(i64::from(changed == Some(true))),
                        Affinity::None,
                        true,
                    ))
                }
                RequestValue::Hop { .. } => Err(EvalError::NeedsDatabase),
            };
        }
        let path = &ident.path;
        let unknown = || {
            EvalError::Rule(RuleError::Resolve(format!(
                "invalid left operand {:?} - unknown field {:?}",
                ident.to_string(),
                path[0]
            )))
        };
        let Some(field) = self.collection.field(&path[0]) else {
            return match back_relation(self.schema, self.collection, &path[0])? {
                Some(_) => Err(EvalError::NeedsDatabase),
                None => Err(unknown()),
            };
        };
        let bad_modifier = |m: Modifier| {
            EvalError::Rule(RuleError::Resolve(format!(
                "modifier :{} is not supported on {ident}",
                m.name()
            )))
        };
        let mut modifier = ident.modifier;
        let column = self.column(field);
        let (value, raw) = if path.len() == 1 {
            if field.kind == FieldKind::Json {
                let value = match column.value {
                    SqlValue::Text(t) if t == "null" => SqlValue::Null,
                    other => other,
                };
                (
                    Val {
                        value,
                        affinity: Affinity::None,
                    },
                    true,
                )
            } else {
                (column, false)
            }
        } else {
            match &field.kind {
                FieldKind::Relation { multi: false, .. } if path.len() == 2 && path[1] == "id" => {
                    (column, false)
                }
                FieldKind::Relation { .. } => return Err(EvalError::NeedsDatabase),
                FieldKind::Json | FieldKind::GeoPoint => {
                    let json = self.record.get(&field.name);
                    let keys = json_path_keys(&path[1..], modifier.take());
                    let walked = json.and_then(|j| json_walk(j, &keys));
                    let value = walked.map(SqlValue::from_json).unwrap_or(SqlValue::Null);
                    (
                        Val {
                            value,
                            affinity: Affinity::None,
                        },
                        true,
                    )
                }
                _ => return Err(unknown()),
            }
        };
        let multi_field = path.len() == 1 && field.kind.is_multi();
        let list_field = path.len() == 1 && field.kind.is_list();
        match modifier {
            None => Ok(EvalOperand {
                values: vec![value],
                multi: false,
                class: if raw { Class::Raw } else { Class::Plain },
            }),
            Some(Modifier::Lower) => Ok(EvalOperand::plain(
                sql_lower(value.value),
                Affinity::None,
                raw,
            )),
            Some(Modifier::Length) if list_field => {
                // Mirrors the SQL: a JSON array's length, 0 for other JSON or empty/NULL,
                // 1 for any other text (a single select/relation/file value).
                let count = match &value.value {
                    SqlValue::Text(t) => match serde_json::from_str::<Value>(t) {
                        Ok(Value::Array(items)) => items.len() as i64,
                        Ok(_) => 0,
                        Err(_) if t.is_empty() => 0,
                        Err(_) => 1,
                    },
                    SqlValue::Null => 0,
                    SqlValue::Int(_) | SqlValue::Real(_) => 0,
                };
                Ok(EvalOperand::plain(
                    SqlValue::Int(count),
                    Affinity::None,
                    false,
                ))
            }
            Some(Modifier::Each) if multi_field => Ok(EvalOperand {
                values: json_items(&value.value)
                    .into_iter()
                    .map(|value| Val {
                        value,
                        affinity: Affinity::None,
                    })
                    .collect(),
                multi: true,
                class: Class::Plain,
            }),
            // Ignored on other fields, as in the SQL compiler (and the reference).
            Some(_) if path.len() == 1 || matches!(field.kind, FieldKind::Relation { .. }) => {
                Ok(EvalOperand {
                    values: vec![value],
                    multi: false,
                    class: if raw { Class::Raw } else { Class::Plain },
                })
            }
            Some(m) => Err(bad_modifier(m)),
        }
    }

    fn column(&self, field: &FieldInfo) -> Val {
        Val {
            value: stored(field, self.record.get(&field.name)),
            affinity: if field.kind.numeric_affinity() {
                Affinity::Numeric
            } else {
                Affinity::Text
            },
        }
    }
}

fn is_static_operand(operand: &Operand) -> bool {
    matches!(
        operand,
        Operand::Null | Operand::Bool(_) | Operand::Number(_) | Operand::Text(_)
    ) || matches!(operand, Operand::Func(f) if f.name == FuncName::GeoDistance
        && f.args.iter().all(|a| matches!(a, Operand::Number(_))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_matching() {
        assert!(like("Write spec", "%write%"));
        assert!(like("review_code", "%review\\_%"));
        assert!(!like("reviewXcode", "%review\\_c%"));
        assert!(like("Deploy 100%", "%100\\%%"));
        assert!(!like("Deploy 100%", "100%"));
        assert!(like("abc", "a_c"));
        assert!(like("", "%%"));
        assert!(!like("ab", "a"));
    }

    #[test]
    fn affinity_compare() {
        let num = |v| Val {
            value: v,
            affinity: Affinity::Numeric,
        };
        let none = |v| Val {
            value: v,
            affinity: Affinity::None,
        };
        assert_eq!(
            compare(&num(SqlValue::Int(3)), &none(SqlValue::Text("3".into()))),
            Some(Ordering::Equal)
        );
        assert_eq!(
            compare(&num(SqlValue::Int(3)), &none(SqlValue::Text("abc".into()))),
            Some(Ordering::Less)
        );
    }
}
