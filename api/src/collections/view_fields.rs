//! A view collection's fields from its query, typed as the reference (v0.40.6) infers them.
//! Measured rules, per column of the outermost SELECT (matched to SQLite's result columns by
//! position):
//! - the `id` column is always the standard view id field (`text3208210256`: text, required,
//!   primary key, system, pattern `^[a-z0-9]+$`, no length bounds);
//! - `[alias.]name` naming a field of a collection in the FROM/JOIN clause clones that field
//!   (renamed to the output name, id `_clone_…`); the `id` of such a collection under another
//!   name becomes a single relation to it;
//! - `COUNT(…)` → number (`onlyInt`), `TOTAL(…)` → number; `CAST(… AS INT…)` → number
//!   (`onlyInt`), `CAST(… AS REAL|NUMERIC|FLOAT|DOUBLE|DECIMAL)` → number, `CAST(… AS TEXT)`
//!   → text, `CAST(… AS BOOL|BOOLEAN)` → bool;
//! - anything else (literals, other functions, expressions, CTE columns) → json with
//!   `maxSize` 1.
//!
//! Generated fields get the reference's id `<type><crc32(name)>`. The parser is a tokenizer,
//! not a SQL grammar: anything it does not recognise types as json, never fails.

use crate::model::{Collection, Field, FieldType};
use serde_json::{json, Map, Value};

/// The reference's message when a view query has no `id` column.
pub const MISSING_ID: &str =
    "missing required id column (you can use `(ROW_NUMBER() OVER()) as id` if you don't have one)";

/// The fields of a view whose result columns are `columns` (SQLite's names, in order).
/// `sources` are the non-view collections; `view_name` seeds the clone ids.
pub fn derive(
    query: &str,
    columns: &[String],
    sources: &[Collection],
    view_name: &str,
) -> Vec<Field> {
    let tokens = tokenize(query);
    let (items, from) = select_parts(&tokens);
    let tables = tables(&from, sources);
    let items: Vec<Option<Vec<Token>>> = if items.len() == columns.len() {
        items.into_iter().map(Some).collect()
    } else {
        // `*` or something the tokenizer misread: type by name only.
        columns.iter().map(|_| None).collect()
    };
    let mut fields = Vec::new();
    for (column, item) in columns.iter().zip(items) {
        let input = if column == "id" {
            id_input()
        } else {
            let expression = item.map(|tokens| strip_alias(&tokens));
            typed(column, expression.as_deref(), &tables, view_name)
        };
        if let Ok(field) = Field::from_input(&input) {
            fields.push(field);
        }
    }
    fields
}

/// The view id field's input.
fn id_input() -> Map<String, Value> {
    let Value::Object(map) = json!({"autogeneratePattern":"","hidden":false,"id":"text3208210256",
        "max":0,"min":0,"name":"id","pattern":"^[a-z0-9]+$","presentable":false,
        "primaryKey":true,"required":true,"system":true,"type":"text"})
    else {
        return Map::new();
    };
    map
}

fn generated(name: &str, kind: &str, extra: Value) -> Map<String, Value> {
    let mut input = Map::new();
    input.insert("name".into(), json!(name));
    input.insert("type".into(), json!(kind));
    if let Value::Object(extra) = extra {
        input.extend(extra);
    }
    input
}

/// The field input of a non-id column.
fn typed(
    name: &str,
    expression: Option<&[Token]>,
    tables: &[(String, &Collection, bool)],
    view_name: &str,
) -> Map<String, Value> {
    let json_field = || generated(name, "json", json!({"maxSize": 1}));
    let Some(expression) = expression else {
        return json_field();
    };
    // `[alias.]field`
    let words: Vec<&str> = expression
        .iter()
        .filter(|t| !matches!(t, Token::Punct('.')))
        .filter_map(Token::word)
        .collect();
    let dotted = expression.len() == 3 && matches!(expression[1], Token::Punct('.'));
    if (expression.len() == 1 && words.len() == 1) || (dotted && words.len() == 2) {
        let (qualifier, field) = if dotted {
            (Some(words[0]), words[1])
        } else {
            (None, words[0])
        };
        let table = match qualifier {
            Some(q) => tables
                .iter()
                .find(|(alias, _, _)| alias.eq_ignore_ascii_case(q)),
            None => tables.iter().find(|(_, _, main)| *main),
        };
        let Some((_, collection, _)) = table else {
            return json_field();
        };
        if field.eq_ignore_ascii_case("id") {
            return generated(
                name,
                "relation",
                json!({"collectionId": collection.id, "maxSelect": 1, "minSelect": 0,
                       "cascadeDelete": false}),
            );
        }
        return match collection.field(field) {
            Some(source) if source.kind() != FieldType::Password => {
                let mut input = source.json().clone();
                input.insert("name".into(), json!(name));
                input.insert(
                    "id".into(),
                    json!(format!(
                        "_clone_{}",
                        short_hash(&format!("{view_name}.{name}"))
                    )),
                );
                input
            }
            _ => json_field(),
        };
    }
    // FUNCTION(...)
    let whole_call = closing_paren(expression, 1) == Some(expression.len() - 1);
    if let (true, Some(Token::Word(function))) = (whole_call, expression.first()) {
        let function = function.to_ascii_lowercase();
        match function.as_str() {
            "count" => return generated(name, "number", json!({"onlyInt": true})),
            "total" => return generated(name, "number", json!({"onlyInt": false})),
            "cast" => {
                // CAST(expr AS type): the last word before the closing parenthesis.
                let target = expression
                    .iter()
                    .rev()
                    .filter_map(Token::word)
                    .next()
                    .unwrap_or("")
                    .to_ascii_lowercase();
                if target.contains("int") {
                    return generated(name, "number", json!({"onlyInt": true}));
                }
                if ["real", "numeric", "float", "double", "decimal"]
                    .iter()
                    .any(|t| target.contains(t))
                {
                    return generated(name, "number", json!({"onlyInt": false}));
                }
                if target == "text" {
                    return generated(name, "text", json!({}));
                }
                if target == "bool" || target == "boolean" {
                    return generated(name, "bool", json!({}));
                }
            }
            _ => {}
        }
    }
    json_field()
}

/// The index of the `)` matching the `(` at `open`, if `open` is one.
fn closing_paren(tokens: &[Token], open: usize) -> Option<usize> {
    if tokens.get(open) != Some(&Token::Punct('(')) {
        return None;
    }
    let mut depth = 0i32;
    for (index, token) in tokens.iter().enumerate().skip(open) {
        match token {
            Token::Punct('(') => depth += 1,
            Token::Punct(')') => {
                depth -= 1;
                if depth == 0 {
                    return Some(index);
                }
            }
            _ => {}
        }
    }
    None
}

/// Four base-62 characters from a hash (the reference's clone ids are random; these are stable).
fn short_hash(text: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut hash = crc32fast::hash(text.as_bytes());
    (0..4)
        .map(|_| {
            let c = ALPHABET[(hash % 62) as usize] as char;
            hash /= 62;
            c
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// A bare or quoted identifier or keyword (quotes removed).
    Word(String),
    /// Whether it was quoted (never a keyword).
    Quoted(String),
    /// A string or number literal.
    Literal,
    Punct(char),
}

impl Token {
    fn word(&self) -> Option<&str> {
        match self {
            Token::Word(word) | Token::Quoted(word) => Some(word),
            _ => None,
        }
    }

    fn keyword(&self, keyword: &str) -> bool {
        matches!(self, Token::Word(word) if word.eq_ignore_ascii_case(keyword))
    }
}

fn tokenize(query: &str) -> Vec<Token> {
    let chars: Vec<char> = query.chars().collect();
    let mut tokens = Vec::new();
    let mut index = 0;
    while index < chars.len() {
        let c = chars[index];
        if c.is_whitespace() {
            index += 1;
        } else if c == '-' && chars.get(index + 1) == Some(&'-') {
            while index < chars.len() && chars[index] != '\n' {
                index += 1;
            }
        } else if c == '/' && chars.get(index + 1) == Some(&'*') {
            index += 2;
            while index < chars.len()
                && !(chars[index] == '*' && chars.get(index + 1) == Some(&'/'))
            {
                index += 1;
            }
            index += 2;
        } else if matches!(c, '"' | '`' | '[' | '\'') {
            let close = if c == '[' { ']' } else { c };
            let start = index + 1;
            index = start;
            while index < chars.len() && chars[index] != close {
                index += 1;
            }
            let text: String = chars[start..index.min(chars.len())].iter().collect();
            index += 1;
            tokens.push(if c == '\'' {
                Token::Literal
            } else {
                Token::Quoted(text)
            });
        } else if c.is_alphabetic() || c == '_' {
            let start = index;
            while index < chars.len()
                && (chars[index].is_alphanumeric() || chars[index] == '_' || chars[index] == '$')
            {
                index += 1;
            }
            tokens.push(Token::Word(chars[start..index].iter().collect()));
        } else if c.is_ascii_digit() {
            while index < chars.len()
                && (chars[index].is_ascii_alphanumeric() || chars[index] == '.')
            {
                index += 1;
            }
            tokens.push(Token::Literal);
        } else {
            tokens.push(Token::Punct(c));
            index += 1;
        }
    }
    tokens
}

/// The select items (split at top-level commas) and the FROM clause tokens of the outermost
/// SELECT (the first one at parenthesis depth 0).
fn select_parts(tokens: &[Token]) -> (Vec<Vec<Token>>, Vec<Token>) {
    let mut depth = 0i32;
    let mut select = None;
    let mut from = None;
    let mut end = tokens.len();
    for (index, token) in tokens.iter().enumerate() {
        match token {
            Token::Punct('(') => depth += 1,
            Token::Punct(')') => depth -= 1,
            _ if depth == 0 => {
                if select.is_none() && token.keyword("select") {
                    select = Some(index + 1);
                } else if select.is_some() && from.is_none() && token.keyword("from") {
                    from = Some(index);
                } else if from.is_some()
                    && [
                        "where",
                        "group",
                        "order",
                        "limit",
                        "having",
                        "window",
                        "union",
                        "except",
                        "intersect",
                    ]
                    .iter()
                    .any(|k| token.keyword(k))
                {
                    end = index;
                    break;
                }
            }
            _ => {}
        }
    }
    let Some(mut start) = select else {
        return (Vec::new(), Vec::new());
    };
    if tokens
        .get(start)
        .is_some_and(|t| t.keyword("distinct") || t.keyword("all"))
    {
        start += 1;
    }
    let list_end = from.unwrap_or(end);
    let mut items = Vec::new();
    let mut current = Vec::new();
    let mut depth = 0i32;
    for token in &tokens[start..list_end.max(start)] {
        match token {
            Token::Punct('(') => depth += 1,
            Token::Punct(')') => depth -= 1,
            Token::Punct(',') if depth == 0 => {
                items.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(token.clone());
    }
    if !current.is_empty() {
        items.push(current);
    }
    let from_tokens = from
        .map(|f| tokens[f + 1..end.max(f + 1)].to_vec())
        .unwrap_or_default();
    (items, from_tokens)
}

/// An item without its alias (`expr AS name`, or `a.b name` for a plain column).
fn strip_alias(item: &[Token]) -> Vec<Token> {
    let mut depth = 0i32;
    let mut as_at = None;
    for (index, token) in item.iter().enumerate() {
        match token {
            Token::Punct('(') => depth += 1,
            Token::Punct(')') => depth -= 1,
            _ if depth == 0 && token.keyword("as") => as_at = Some(index),
            _ => {}
        }
    }
    if let Some(index) = as_at {
        return item[..index].to_vec();
    }
    // `a name` or `a.b name`: the last word is an alias.
    let plain = item
        .iter()
        .all(|t| matches!(t, Token::Word(_) | Token::Quoted(_) | Token::Punct('.')));
    if plain && item.len() >= 2 && !matches!(item[item.len() - 2], Token::Punct('.')) {
        return item[..item.len() - 1].to_vec();
    }
    item.to_vec()
}

/// The tables of a FROM clause: (alias or name, collection, whether it is the main one).
fn tables<'a>(from: &[Token], sources: &'a [Collection]) -> Vec<(String, &'a Collection, bool)> {
    const STOP: &[&str] = &[
        "on", "using", "left", "right", "inner", "outer", "cross", "full", "natural", "join",
    ];
    let mut out = Vec::new();
    let mut index = 0;
    let mut expect_table = true;
    let mut depth = 0i32;
    while index < from.len() {
        let token = &from[index];
        match token {
            Token::Punct('(') => depth += 1,
            Token::Punct(')') => depth -= 1,
            Token::Punct(',') if depth == 0 => expect_table = true,
            _ if depth == 0 && token.keyword("join") => expect_table = true,
            _ if depth == 0 && expect_table => {
                expect_table = false;
                if let Some(name) = token.word() {
                    let mut alias = name.to_string();
                    let mut next = index + 1;
                    if from.get(next).is_some_and(|t| t.keyword("as")) {
                        next += 1;
                    }
                    if let Some(candidate) = from.get(next) {
                        let is_alias = match candidate {
                            Token::Quoted(_) => true,
                            Token::Word(word) => !STOP.iter().any(|k| word.eq_ignore_ascii_case(k)),
                            _ => false,
                        };
                        if is_alias {
                            if let Some(word) = candidate.word() {
                                alias = word.to_string();
                                index = next;
                            }
                        }
                    }
                    if let Some(collection) =
                        sources.iter().find(|c| c.name.eq_ignore_ascii_case(name))
                    {
                        let main = out.is_empty();
                        out.push((alias, collection, main));
                    } else if out.is_empty() {
                        // A CTE or subquery first: no main collection; later columns stay json.
                        return Vec::new();
                    }
                }
            }
            _ => {}
        }
        index += 1;
    }
    out
}

/// Rows a dry run shows at most (the reference's sample size).
pub const DRY_RUN_SAMPLE: usize = 10;
/// The longest a dry run's query may run.
pub const DRY_RUN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `POST /api/collections/meta/dry-run-view`: the fields a view with `query` would get and
/// up to [`DRY_RUN_SAMPLE`] of its rows, `{"fields":[…],"sample":[…]}`. Runs on a read-only
/// pooled connection (only a statement SQLite reports read-only), within
/// [`DRY_RUN_TIMEOUT`] (or the shorter `--queryTimeout`); nothing is written.
pub async fn dry_run(
    state: &std::sync::Arc<crate::state::AppState>,
    query: &str,
) -> crate::error::ApiResult<Value> {
    use crate::error::{field_error, ApiError};
    let trimmed = query.trim().trim_end_matches(';').trim().to_string();
    if trimmed.is_empty() {
        let mut data = Map::new();
        data.insert(
            "query".into(),
            field_error("validation_required", "Cannot be blank.", None),
        );
        return Err(ApiError::validation(
            "An error occurred while validating the submitted data.",
            data,
        ));
    }
    let invalid = |detail: &str| {
        ApiError::bad_request(&format!("Invalid view query. Raw error: \n{detail}."))
    };
    let upper = trimmed.to_ascii_uppercase();
    if !(upper.starts_with("SELECT") || upper.starts_with("WITH")) || trimmed.contains(';') {
        return Err(invalid("only a single SELECT statement is allowed"));
    }
    let timeout = state
        .options
        .query_timeout
        .map_or(DRY_RUN_TIMEOUT, |configured| {
            configured.min(DRY_RUN_TIMEOUT)
        });
    let sql = format!("SELECT * FROM ({trimmed}) LIMIT {DRY_RUN_SAMPLE}");
    let reader = std::sync::Arc::clone(state);
    let result = tokio::task::spawn_blocking(move || {
        reader
            .engine
            .read(|conn| conn.within(timeout, |conn| conn.console(&sql, DRY_RUN_SAMPLE)))
    })
    .await
    .map_err(ApiError::internal)?;
    let console = match result {
        Ok(Some(console)) => console,
        Ok(None) => return Err(invalid("only read-only statements are allowed")),
        Err(engine::Error::Sqlite(detail)) => return Err(invalid(&detail)),
        Err(engine::Error::QueryTimeout(limit)) => {
            return Err(invalid(&format!("the query ran longer than {limit:?}")))
        }
        Err(other) => return Err(ApiError::from(other)),
    };
    let columns: Vec<String> = console
        .columns
        .iter()
        .map(|(name, _)| name.clone())
        .collect();
    if !columns.iter().any(|c| c == "id") {
        return Err(invalid(MISSING_ID));
    }
    let schema = state.schema();
    let sources: Vec<Collection> = schema
        .collections
        .iter()
        .filter(|c| !c.is_view())
        .map(|c| c.as_ref().clone())
        .collect();
    let name = format!("temp_view_{}", short_hash(&trimmed));
    let fields = derive(&trimmed, &columns, &sources, &name);
    let id = format!("pbc_{}", crc32fast::hash(name.as_bytes()));
    let sample: Vec<Value> = console
        .rows
        .iter()
        .map(|row| {
            let mut record = Map::new();
            record.insert("collectionId".into(), json!(id));
            record.insert("collectionName".into(), json!(name));
            for field in &fields {
                let index = columns.iter().position(|c| c == field.name());
                let value = index.map_or(engine::Value::Null, |i| row[i].clone());
                record.insert(field.name().to_string(), present(field.kind(), value));
            }
            Value::Object(record)
        })
        .collect();
    let fields: Vec<Value> = fields
        .iter()
        .map(|f| Value::Object(f.json().clone()))
        .collect();
    Ok(json!({"fields": fields, "sample": sample}))
}

/// A sample value as its field type shows it.
fn present(kind: FieldType, value: engine::Value) -> Value {
    use engine::Value as V;
    match (kind, value) {
        (FieldType::Bool, value) => json!(value.as_i64().is_some_and(|v| v != 0)),
        (FieldType::Number, V::Null) => json!(0),
        (FieldType::Number, value) => value.as_f64().map_or(json!(0), |f| {
            if f.fract() == 0.0 && f.abs() < 9e15 {
                json!(f as i64)
            } else {
                json!(f)
            }
        }),
        (FieldType::Json, V::Null) => Value::Null,
        (FieldType::Json, V::Int(int)) => json!(int),
        (FieldType::Json, V::Real(real)) => json!(real),
        (FieldType::Json, V::Text(text)) => {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        }
        (_, V::Null) => json!(""),
        (_, V::Int(int)) => json!(int.to_string()),
        (_, V::Real(real)) => json!(real.to_string()),
        (_, V::Text(text)) => json!(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(query: &str) -> (usize, usize) {
        let (items, from) = select_parts(&tokenize(query));
        (items.len(), from.len())
    }

    #[test]
    fn select_lists_split_at_top_level_commas() {
        assert_eq!(
            items("select a, f(b, c) as d, 'x,y' from t where x"),
            (3, 1)
        );
        assert_eq!(items("with x as (select 1, 2) select id, n from x"), (2, 1));
        assert_eq!(items("select distinct a from t"), (1, 1));
    }

    #[test]
    fn aliases_are_stripped() {
        let strip = |text: &str| strip_alias(&tokenize(text)).len();
        assert_eq!(strip("p.title as t"), 3);
        assert_eq!(strip("p.title t"), 3);
        assert_eq!(strip("count(*) c"), 5);
        assert_eq!(strip("title"), 1);
    }
}
