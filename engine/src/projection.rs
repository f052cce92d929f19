//! The projection: commits applied to SQLite tables.
//!
//! `apply_change` is the one function that turns a change into SQL, used by the live writer
//! (inside the command's savepoint) and by replay alike.
//! 1. Deterministic: no clock, no randomness; the same commits give the same database.
//! 2. `_meta.last_seq` is written in the same SQLite transaction as the commits it covers.
//! 3. The catalog (collection id → definition) mirrors `_collections` exactly.

use crate::commit::{Change, CollectionDef, Commit, Seq};
use crate::error::{Error, Result};
use crate::value::{Rows, Value};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;

/// Quotes an identifier for SQLite (`"name"`, inner quotes doubled).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

const SCHEMA_SQL: &str = "
CREATE TABLE IF NOT EXISTS _meta (key TEXT PRIMARY KEY NOT NULL, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _collections (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT UNIQUE NOT NULL COLLATE NOCASE,
    type TEXT NOT NULL,
    def TEXT NOT NULL,
    meta TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS _params (key TEXT PRIMARY KEY NOT NULL, value TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _stored_files (
    collection_id TEXT NOT NULL,
    record_id TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (collection_id, record_id, name)
) WITHOUT ROWID;
";

/// Pages the projection's WAL may grow to before SQLite checkpoints it (default 1000).
const WAL_AUTOCHECKPOINT_PAGES: i64 = 8000;

/// In-memory mirror of `_collections`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Catalog {
    by_id: HashMap<String, CollectionDef>,
    /// Record statement texts per collection id (dropped when the collection changes).
    sql: HashMap<String, SqlTexts>,
}

/// Most column-set variants remembered per collection and statement kind.
const SQL_VARIANTS_MAX: usize = 16;

/// The record statements of one collection, keyed by the column names they bind.
#[derive(Debug, Clone, Default)]
struct SqlTexts {
    inserts: Vec<(Vec<String>, String)>,
    updates: Vec<(Vec<String>, String)>,
    delete: Option<String>,
}

fn same_columns(columns: &[String], values: &[(String, Value)]) -> bool {
    columns.len() == values.len()
        && columns
            .iter()
            .zip(values)
            .all(|(column, (name, _))| column == name)
}

/// The cached statement text for `values`' column set, built by `build` on a miss.
fn variant<'a>(
    variants: &'a mut Vec<(Vec<String>, String)>,
    values: &[(String, Value)],
    build: impl FnOnce() -> String,
) -> &'a str {
    let index = match variants
        .iter()
        .position(|(columns, _)| same_columns(columns, values))
    {
        Some(index) => index,
        None => {
            if variants.len() >= SQL_VARIANTS_MAX {
                variants.remove(0);
            }
            let columns = values.iter().map(|(name, _)| name.clone()).collect();
            variants.push((columns, build()));
            variants.len() - 1
        }
    };
    &variants[index].1
}

fn insert_sql(table: &str, values: &[(String, Value)]) -> String {
    let columns: Vec<String> = values.iter().map(|(name, _)| quote_ident(name)).collect();
    let placeholders: Vec<String> = (1..=values.len()).map(|n| format!("?{n}")).collect();
    format!(
        "INSERT INTO {} ({}) VALUES ({})",
        quote_ident(table),
        columns.join(", "),
        placeholders.join(", ")
    )
}

fn update_sql(table: &str, values: &[(String, Value)]) -> String {
    let sets: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(index, (name, _))| format!("{} = ?{}", quote_ident(name), index + 1))
        .collect();
    format!(
        "UPDATE {} SET {} WHERE id = ?{}",
        quote_ident(table),
        sets.join(", "),
        values.len() + 1
    )
}

impl Catalog {
    /// Looks a collection up by id, or by name (case-insensitive).
    pub fn get(&self, id_or_name: &str) -> Option<&CollectionDef> {
        self.by_id.get(id_or_name).or_else(|| {
            self.by_id
                .values()
                .find(|def| def.name.eq_ignore_ascii_case(id_or_name))
        })
    }

    /// All collections, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &CollectionDef> {
        self.by_id.values()
    }
}

/// Sets up the bookkeeping tables and pragmas of a writable projection connection.
pub(crate) fn init(conn: &Connection) -> Result<()> {
    register_functions(conn)?;
    // Room for every collection's record statements plus the commands' queries (the default
    // of 16 makes a schema with a handful of collections re-prepare on every write).
    conn.set_prepared_statement_cache_capacity(256);
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // Fewer, larger checkpoints: repeated writes to hot pages coalesce between them, and the
    // log (not the WAL) is what makes commits durable.
    conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    conn.execute_batch(SCHEMA_SQL)?;
    Ok(())
}

/// A scalar SQL function that rules may compile to (`geoDistance` uses them): the bundled
/// SQLite is built without its own math functions. The engine registers [`SQL_FUNCTIONS`] on
/// its connections; a caller with its own SQLite database registers them from this table.
#[derive(Debug, Clone, Copy)]
pub struct SqlFunction {
    /// The SQL name.
    pub name: &'static str,
    /// The number of arguments.
    pub arity: usize,
    /// The function on its (non-NULL, REAL) arguments; exactly `arity` of them.
    pub call: fn(&[f64]) -> f64,
}

impl SqlFunction {
    /// The SQL result for `args`: NULL (`None`) when an argument is NULL, the argument count
    /// is wrong, or the result is not finite.
    pub fn eval(&self, args: &[Option<f64>]) -> Option<f64> {
        if args.len() != self.arity {
            return None;
        }
        let values: Option<Vec<f64>> = args.iter().copied().collect();
        values
            .map(|values| (self.call)(&values))
            .filter(|result| result.is_finite())
    }
}

/// The math functions registered on every engine connection.
pub const SQL_FUNCTIONS: &[SqlFunction] = &[
    SqlFunction {
        name: "sqrt",
        arity: 1,
        call: |args| args[0].sqrt(),
    },
    SqlFunction {
        name: "sin",
        arity: 1,
        call: |args| args[0].sin(),
    },
    SqlFunction {
        name: "cos",
        arity: 1,
        call: |args| args[0].cos(),
    },
    SqlFunction {
        name: "asin",
        arity: 1,
        call: |args| args[0].asin(),
    },
    SqlFunction {
        name: "radians",
        arity: 1,
        call: |args| args[0].to_radians(),
    },
    SqlFunction {
        name: "pow",
        arity: 2,
        call: |args| args[0].powf(args[1]),
    },
];

/// Registers [`SQL_FUNCTIONS`] on a connection.
pub(crate) fn register_functions(conn: &Connection) -> Result<()> {
    use rusqlite::functions::FunctionFlags;
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    for function in SQL_FUNCTIONS {
        conn.create_scalar_function(function.name, function.arity as i32, flags, move |ctx| {
            let args = (0..ctx.len())
                .map(|index| ctx.get::<Option<f64>>(index))
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(function.eval(&args))
        })?;
    }
    Ok(())
}

/// The seq of the last commit applied.
pub(crate) fn last_applied(conn: &Connection) -> Result<Seq> {
    let seq: Option<i64> = conn
        .query_row(
            "SELECT value FROM _meta WHERE key = 'last_seq'",
            [],
            |row| row.get(0),
        )
        .optional()?;
    Ok(seq.unwrap_or(0) as Seq)
}

pub(crate) fn set_last_applied(conn: &Connection, seq: Seq) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO _meta (key, value) VALUES ('last_seq', ?1)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![seq as i64])?;
    Ok(())
}

/// Reads the catalog from `_collections`.
pub(crate) fn load_catalog(conn: &Connection) -> Result<Catalog> {
    let mut statement = conn.prepare("SELECT def FROM _collections")?;
    let mut rows = statement.query([])?;
    let mut catalog = Catalog::default();
    while let Some(row) = rows.next()? {
        let text: String = row.get(0)?;
        let def: CollectionDef = serde_json::from_str(&text)
            .map_err(|err| Error::ProjectionDamaged(format!("bad _collections row: {err}")))?;
        catalog.by_id.insert(def.id.clone(), def);
    }
    Ok(catalog)
}

/// Applies every change of a commit and records its seq (replay path).
pub(crate) fn apply_commit(
    conn: &Connection,
    catalog: &mut Catalog,
    commit: &Commit,
) -> Result<()> {
    for change in &commit.changes {
        apply_change(conn, catalog, change)?;
    }
    set_last_applied(conn, commit.seq)
}

fn table_of<'a>(
    by_id: &'a HashMap<String, CollectionDef>,
    collection_id: &str,
) -> Result<&'a CollectionDef> {
    by_id
        .get(collection_id)
        .ok_or_else(|| Error::InvalidChange(format!("unknown collection {collection_id}")))
}

/// Applies one change to the database and the catalog.
pub(crate) fn apply_change(
    conn: &Connection,
    catalog: &mut Catalog,
    change: &Change,
) -> Result<()> {
    match change {
        Change::RecordCreated {
            collection_id,
            values,
            ..
        } => {
            let def = table_of(&catalog.by_id, collection_id)?;
            let texts = catalog.sql.entry(collection_id.clone()).or_default();
            let sql = variant(&mut texts.inserts, values, || insert_sql(&def.name, values));
            let mut statement = conn.prepare_cached(sql)?;
            statement.execute(rusqlite::params_from_iter(
                values.iter().map(|(_, value)| value),
            ))?;
        }
        Change::RecordUpdated {
            collection_id,
            id,
            values,
        } => {
            let def = table_of(&catalog.by_id, collection_id)?;
            let texts = catalog.sql.entry(collection_id.clone()).or_default();
            let sql = variant(&mut texts.updates, values, || update_sql(&def.name, values));
            let mut statement = conn.prepare_cached(sql)?;
            let id_value = Value::Text(id.clone());
            let bound = values
                .iter()
                .map(|(_, value)| value)
                .chain(std::iter::once(&id_value));
            let changed = statement.execute(rusqlite::params_from_iter(bound))?;
            if changed != 1 {
                return Err(Error::InvalidChange(format!("record {id} does not exist")));
            }
        }
        Change::RecordDeleted {
            collection_id, id, ..
        } => {
            let def = table_of(&catalog.by_id, collection_id)?;
            let texts = catalog.sql.entry(collection_id.clone()).or_default();
            let sql = texts.delete.get_or_insert_with(|| {
                format!("DELETE FROM {} WHERE id = ?1", quote_ident(&def.name))
            });
            conn.prepare_cached(sql)?.execute(params![id])?;
        }
        Change::CollectionCreated(def) => {
            if catalog.by_id.contains_key(&def.id) {
                return Err(Error::InvalidChange(format!(
                    "collection {} exists already",
                    def.id
                )));
            }
            catalog.sql.remove(&def.id);
            create_relation(conn, def)?;
            upsert_collection_row(conn, def)?;
            catalog.by_id.insert(def.id.clone(), def.clone());
        }
        Change::CollectionUpdated(def) => {
            let old = table_of(&catalog.by_id, &def.id)?.clone();
            catalog.sql.remove(&def.id);
            update_relation(conn, &old, def)?;
            upsert_collection_row(conn, def)?;
            catalog.by_id.insert(def.id.clone(), def.clone());
        }
        Change::CollectionDeleted { id, .. } => {
            let old = table_of(&catalog.by_id, id)?.clone();
            catalog.sql.remove(id);
            let kind = if old.is_view() { "VIEW" } else { "TABLE" };
            conn.execute_batch(&format!("DROP {kind} IF EXISTS {}", quote_ident(&old.name)))?;
            conn.execute("DELETE FROM _collections WHERE id = ?1", params![id])?;
            // A dropped collection references no stored file any more.
            conn.execute(
                "DELETE FROM _stored_files WHERE collection_id = ?1",
                params![id],
            )?;
            catalog.by_id.remove(id);
        }
        Change::ParamSet { key, value } => match value {
            Some(value) => {
                conn.prepare_cached(
                    "INSERT INTO _params (key, value) VALUES (?1, ?2)
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                )?
                .execute(params![key, value])?;
            }
            None => {
                conn.execute("DELETE FROM _params WHERE key = ?1", params![key])?;
            }
        },
        // Files live in storage; the record's own change carries the field values.
        // `_stored_files` is the set of files referenced at this point (what backups,
        // point-in-time restores and the file GC read; see `engine/src/files.rs`).
        Change::FilesChanged {
            collection_id,
            record_id,
            added,
            removed,
        } => {
            let mut remove = conn.prepare_cached(
                "DELETE FROM _stored_files WHERE collection_id = ?1 AND record_id = ?2 AND name = ?3",
            )?;
            for name in removed {
                remove.execute(params![collection_id, record_id, name])?;
            }
            let mut add = conn.prepare_cached(
                "INSERT OR IGNORE INTO _stored_files (collection_id, record_id, name) VALUES (?1, ?2, ?3)",
            )?;
            for name in added {
                add.execute(params![collection_id, record_id, name])?;
            }
        }
        // The record's erased columns take their erased value (a deleted record has no row:
        // nothing to do here; its history is erased by the log rewrite).
        Change::Redacted {
            collection_id,
            id,
            field_ids,
            ..
        } => {
            let def = table_of(&catalog.by_id, collection_id)?;
            let (sql, values) = crate::redact::erase_sql(def, field_ids)?;
            let mut bound = values;
            bound.push(Value::Text(id.clone()));
            conn.execute(&sql, rusqlite::params_from_iter(bound.iter()))?;
        }
    }
    Ok(())
}

fn upsert_collection_row(conn: &Connection, def: &CollectionDef) -> Result<()> {
    let text = serde_json::to_string(def).expect("collection defs serialize");
    conn.execute(
        "INSERT INTO _collections (id, name, type, def, meta) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(id) DO UPDATE SET name = excluded.name, type = excluded.type,
             def = excluded.def, meta = excluded.meta",
        params![def.id, def.name, def.kind, text, def.meta],
    )?;
    Ok(())
}

fn create_relation(conn: &Connection, def: &CollectionDef) -> Result<()> {
    if def.is_view() {
        let query = def
            .view_query
            .as_deref()
            .ok_or_else(|| Error::InvalidChange("view without a query".into()))?;
        conn.execute_batch(&format!(
            "CREATE VIEW {} AS {}",
            quote_ident(&def.name),
            query
        ))?;
        return Ok(());
    }
    create_table(conn, &def.name, def)?;
    for index in &def.indexes {
        conn.execute_batch(index)?;
    }
    Ok(())
}

fn create_table(conn: &Connection, table: &str, def: &CollectionDef) -> Result<()> {
    let columns: Vec<String> = def
        .columns
        .iter()
        .map(|column| format!("{} {}", quote_ident(&column.name), column.decl))
        .collect();
    conn.execute_batch(&format!(
        "CREATE TABLE {} ({})",
        quote_ident(table),
        columns.join(", ")
    ))?;
    Ok(())
}

fn drop_indexes(conn: &Connection, table: &str) -> Result<()> {
    let names: Vec<String> = {
        let mut statement = conn.prepare(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?1 AND sql IS NOT NULL",
        )?;
        let rows = statement.query_map(params![table], |row| row.get::<_, String>(0))?;
        rows.collect::<std::result::Result<_, _>>()?
    };
    for name in names {
        conn.execute_batch(&format!("DROP INDEX IF EXISTS {}", quote_ident(&name)))?;
    }
    Ok(())
}

/// Moves a table from `old` to `new`: rename, then either plain `ADD COLUMN`s or a full
/// rebuild that carries every column whose field id survives.
fn update_relation(conn: &Connection, old: &CollectionDef, new: &CollectionDef) -> Result<()> {
    if old.is_view() || new.is_view() {
        let kind = if old.is_view() { "VIEW" } else { "TABLE" };
        conn.execute_batch(&format!("DROP {kind} IF EXISTS {}", quote_ident(&old.name)))?;
        return create_relation(conn, new);
    }
    drop_indexes(conn, &old.name)?;
    if old.name != new.name {
        if old.name.eq_ignore_ascii_case(&new.name) {
            let tmp = format!("_tmp_rename_{}", new.id);
            conn.execute_batch(&format!(
                "ALTER TABLE {} RENAME TO {}; ALTER TABLE {} RENAME TO {}",
                quote_ident(&old.name),
                quote_ident(&tmp),
                quote_ident(&tmp),
                quote_ident(&new.name)
            ))?;
        } else {
            conn.execute_batch(&format!(
                "ALTER TABLE {} RENAME TO {}",
                quote_ident(&old.name),
                quote_ident(&new.name)
            ))?;
        }
    }
    let is_append_only = old.columns.len() <= new.columns.len()
        && old.columns.iter().zip(&new.columns).all(|(a, b)| a == b);
    if is_append_only {
        for column in &new.columns[old.columns.len()..] {
            conn.execute_batch(&format!(
                "ALTER TABLE {} ADD COLUMN {} {}",
                quote_ident(&new.name),
                quote_ident(&column.name),
                column.decl
            ))?;
        }
    } else {
        let tmp = format!("_tmp_rebuild_{}", new.id);
        create_table(conn, &tmp, new)?;
        let mut targets = Vec::new();
        let mut sources = Vec::new();
        for column in &new.columns {
            if let Some(previous) = old.columns.iter().find(|c| c.id == column.id) {
                targets.push(quote_ident(&column.name));
                sources.push(quote_ident(&previous.name));
            }
        }
        if !targets.is_empty() {
            conn.execute_batch(&format!(
                "INSERT INTO {} ({}) SELECT {} FROM {}",
                quote_ident(&tmp),
                targets.join(", "),
                sources.join(", "),
                quote_ident(&new.name)
            ))?;
        }
        conn.execute_batch(&format!(
            "DROP TABLE {}; ALTER TABLE {} RENAME TO {}",
            quote_ident(&new.name),
            quote_ident(&tmp),
            quote_ident(&new.name)
        ))?;
    }
    for index in &new.indexes {
        conn.execute_batch(index)?;
    }
    Ok(())
}

/// Runs a query with bound values and collects the rows.
pub(crate) fn query(conn: &Connection, sql: &str, params: &[Value]) -> Result<Rows> {
    query_statement(conn.prepare_cached(sql)?, params)
}

/// Like [`query`], but refuses (before running it) a statement that could write: the staged
/// state of a command changes only through staged changes, which the log records.
pub(crate) fn query_read_only(conn: &Connection, sql: &str, params: &[Value]) -> Result<Rows> {
    let statement = conn.prepare_cached(sql)?;
    if !statement.readonly() {
        return Err(Error::Sqlite(format!(
            "Tx::query only runs read-only statements; stage a change to write: {sql}"
        )));
    }
    query_statement(statement, params)
}

fn query_statement(mut statement: rusqlite::CachedStatement<'_>, params: &[Value]) -> Result<Rows> {
    let mut rows = statement.query(rusqlite::params_from_iter(params.iter()))?;
    let mut out = Vec::new();
    // Column names are read after the first step: a cached statement is re-prepared by SQLite
    // when the schema changed (a renamed or dropped column), and only then are its names current.
    let mut columns: Option<std::sync::Arc<[String]>> = None;
    while let Some(row) = rows.next()? {
        let names = columns.get_or_insert_with(|| {
            row.as_ref()
                .column_names()
                .into_iter()
                .map(str::to_string)
                .collect::<Vec<_>>()
                .into()
        });
        let width = names.len();
        let mut values = Vec::with_capacity(width);
        for index in 0..width {
            values.push(Value::from_ref(row.get_ref(index)?));
        }
        out.push(values);
    }
    drop(rows);
    let columns = match columns {
        Some(columns) => columns,
        None => statement
            .column_names()
            .into_iter()
            .map(str::to_string)
            .collect::<Vec<_>>()
            .into(),
    };
    Ok(Rows { columns, rows: out })
}

/// Name of the SQL function that counts the rows of a scan (read connections only; see
/// [`query_counted`]).
pub const ROW_COUNTER_FN: &str = "_pl_count";

thread_local! {
    /// Rows counted by [`ROW_COUNTER_FN`] on this thread since the last reset.
    static COUNTED_ROWS: std::cell::Cell<i64> = const { std::cell::Cell::new(0) };
}

/// Registers [`ROW_COUNTER_FN`]`(x)`: adds 1 to this thread's counter when `x` is 1 and
/// always returns 1 (so as a WHERE term it never filters). Not deterministic, so SQLite
/// evaluates it once per row the scan reaches and never factors it out of the loop.
pub(crate) fn register_row_counter(conn: &Connection) -> Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(ROW_COUNTER_FN, 1, FunctionFlags::SQLITE_UTF8, |ctx| {
        if ctx.get::<Option<i64>>(0)? == Some(1) {
            COUNTED_ROWS.with(|count| count.set(count.get() + 1));
        }
        Ok(1i64)
    })?;
    Ok(())
}

/// Runs a query whose WHERE ends with `AND _pl_count(CASE WHEN <the rest> THEN 1 ELSE 0 END)`
/// and returns its rows with the number of rows matching the rest of the WHERE, counted in
/// the same scan, when that number is exact: when SQLite's plan sorts the whole result in a
/// temp b-tree (every matching row is reached before the first row comes out, whatever the
/// LIMIT), on a single table. Otherwise (`None`) the caller counts separately. The plan is
/// read with EXPLAIN QUERY PLAN (same SQL, same bound values) inside the read transaction
/// the query runs in, so both see one schema. When the count would not be exact, `plain`
/// (the same query without the counter term) runs instead, so a WHERE is never evaluated
/// twice per row for nothing.
pub(crate) fn query_counted(
    conn: &Connection,
    sql: &str,
    plain: &str,
    params: &[Value],
) -> Result<(Rows, Option<i64>)> {
    // Inside a caller's read transaction (`ReadConn::at_position`) it runs in that one.
    let own = conn.is_autocommit();
    if own {
        conn.execute_batch("BEGIN")?;
    }
    let result: Result<(Rows, Option<i64>)> = (|| {
        let full_sort = {
            let mut plan = conn.prepare_cached(&format!("EXPLAIN QUERY PLAN {sql}"))?;
            let mut rows = plan.query(rusqlite::params_from_iter(params.iter()))?;
            let mut scans = 0;
            let mut full_sort = false;
            let mut other = false;
            while let Some(row) = rows.next()? {
                let detail: String = row.get(3)?;
                if detail == "USE TEMP B-TREE FOR ORDER BY" {
                    full_sort = true;
                } else if detail.starts_with("SCAN ") || detail.starts_with("SEARCH ") {
                    scans += 1;
                } else {
                    other = true;
                }
            }
            full_sort && scans == 1 && !other
        };
        if !full_sort {
            return Ok((query(conn, plain, params)?, None));
        }
        COUNTED_ROWS.with(|count| count.set(0));
        let rows = query(conn, sql, params)?;
        let counted = COUNTED_ROWS.with(|count| count.replace(0));
        Ok((rows, Some(counted)))
    })();
    let ended = if own {
        conn.execute_batch("COMMIT")
    } else {
        Ok(())
    };
    let value = result?;
    ended?;
    Ok(value)
}

/// Dumps every user-visible table of the projection in a canonical text form
/// (used by `verify` and the tests to compare a projection with a fresh replay).
pub(crate) fn dump(conn: &Connection) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let tables: Vec<(String, String)> = {
        let mut statement = conn.prepare(
            "SELECT name, type FROM sqlite_master WHERE type IN ('table','view')
             AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        rows.collect::<std::result::Result<_, _>>()?
    };
    for (table, kind) in tables {
        out.push(format!("== {kind} {table}"));
        let rows = query(
            conn,
            &format!("SELECT * FROM {} ORDER BY 1", quote_ident(&table)),
            &[],
        )?;
        out.push(rows.columns.join("|"));
        for row in rows.rows {
            out.push(format!("{row:?}"));
        }
    }
    let indexes = query(
        conn,
        "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name",
        &[],
    )?;
    for row in indexes.rows {
        out.push(format!("index {row:?}"));
    }
    Ok(out)
}

#[cfg(test)]
mod counted_tests {
    use super::*;

    fn table(indexed: bool) -> Connection {
        let conn = Connection::open_in_memory().expect("open");
        register_row_counter(&conn).expect("register");
        conn.execute_batch(
            "CREATE TABLE t (id TEXT PRIMARY KEY NOT NULL, c TEXT, s NUMERIC, created TEXT);
             WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 1999)
             INSERT INTO t SELECT 'id' || i, 'c' || (i % 10), (i * 7919) % 1000,
                                  CASE WHEN i % 7 = 0 THEN NULL ELSE 'x' || i END FROM n;",
        )
        .expect("fill");
        if indexed {
            conn.execute_batch("CREATE INDEX t_s ON t (s)")
                .expect("index");
        }
        conn
    }

    fn counted(
        conn: &Connection,
        cond: &str,
        order: &str,
        limit: i64,
        offset: i64,
    ) -> (usize, Option<i64>) {
        let sql = format!(
            "SELECT m.* FROM t m WHERE {cond} AND {ROW_COUNTER_FN}(CASE WHEN {cond} THEN 1 ELSE 0 END) {order} LIMIT ?2 OFFSET ?3"
        );
        let params = [
            Value::Text("c3".into()),
            Value::Int(limit),
            Value::Int(offset),
        ];
        let plain = format!("SELECT m.* FROM t m WHERE {cond} {order} LIMIT ?2 OFFSET ?3");
        let (rows, total) = query_counted(conn, &sql, &plain, &params).expect("query");
        let expected = query(conn, &plain, &params).expect("plain");
        assert_eq!(rows.rows, expected.rows, "{sql}");
        (rows.rows.len(), total)
    }

    fn count(conn: &Connection, cond: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM t m WHERE {cond}");
        query(conn, &sql, &[Value::Text("c3".into())])
            .expect("count")
            .rows[0][0]
            .as_i64()
            .expect("int")
    }

    #[test]
    fn counts_in_the_page_scan_only_when_every_row_is_sorted() {
        let plain = table(false);
        let indexed = table(true);
        let conds = [
            "(m.c = ?1)",
            "((m.c = ?1) AND (m.s > 500))",
            "((m.c = ?1) OR (m.created IS NULL))",
            "(m.s > 2000 AND ?1 = ?1)",
            "(m.id = 'id3' OR m.id = 'id13' OR m.id = ?1)",
        ];
        for cond in conds {
            let expected = count(&plain, cond);
            for (limit, offset) in [(30, 0), (5, 7), (1000, 0), (30, 5000)] {
                let (_, total) = counted(
                    &plain,
                    cond,
                    "ORDER BY m.s DESC, m.created ASC",
                    limit,
                    offset,
                );
                assert_eq!(total, Some(expected), "{cond} {limit} {offset}");
                // An index serves the leading sort term: the scan may stop early.
                let (_, total) = counted(
                    &indexed,
                    cond,
                    "ORDER BY m.s DESC, m.created ASC",
                    limit,
                    offset,
                );
                assert!(total.is_none() || total == Some(expected), "{cond}");
                // Rowid order: usually no sort at all (a search by ids may still sort).
                let (_, total) = counted(&plain, cond, "ORDER BY m.rowid", limit, offset);
                assert!(total.is_none() || total == Some(expected), "{cond}");
            }
        }
        let (_, total) = counted(&indexed, "(m.c = ?1)", "ORDER BY m.s DESC", 30, 0);
        assert_eq!(total, None);
        let (_, total) = counted(&plain, "(m.c = ?1)", "ORDER BY m.rowid", 30, 0);
        assert_eq!(total, None);
    }
}

#[cfg(test)]
mod function_tests {
    use super::*;

    #[test]
    fn registered_math_functions_propagate_null_and_hide_non_finite_results() {
        let conn = Connection::open_in_memory().expect("open");
        register_functions(&conn).expect("register");
        let row: (f64, Option<f64>, f64, Option<f64>, Option<f64>, f64) = conn
            .query_row(
                "SELECT sqrt(4), sqrt(-1), pow(2, 10), pow(2, NULL), pow(10, 400), \
                 radians(180)",
                [],
                |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                        row.get(5)?,
                    ))
                },
            )
            .expect("query");
        assert_eq!(row, (2.0, None, 1024.0, None, None, std::f64::consts::PI));
    }

    #[test]
    fn eval_refuses_a_wrong_argument_count() {
        let sqrt = SQL_FUNCTIONS
            .iter()
            .find(|function| function.name == "sqrt")
            .expect("sqrt");
        assert_eq!(sqrt.eval(&[Some(9.0)]), Some(3.0));
        assert_eq!(sqrt.eval(&[Some(9.0), Some(1.0)]), None);
        assert_eq!(sqrt.eval(&[]), None);
    }
}
