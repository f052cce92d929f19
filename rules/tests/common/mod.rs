//! Shared test helpers: the storage layout in a real SQLite and the dataset the filter examples
//! were measured on (`docs/wire/rules.md`).
#![allow(dead_code)]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failed unwrap is a failed test"
)]

use chrono::{TimeZone, Utc};
use rules::{
    AuthInfo, CollectionInfo, CollectionKind, FieldInfo, FieldKind, RequestInfo, SqlFilter,
    SqlValue,
};
use rusqlite::Connection;
use serde_json::{json, Map, Value};

pub const ALICE: &str = "o0k6hlh1ivc6xwf";
pub const BOB: &str = "lq38hoczobdnaja";

pub fn column_decl(kind: &FieldKind) -> &'static str {
    match kind {
        FieldKind::Number => "NUMERIC NOT NULL DEFAULT 0",
        FieldKind::Bool => "BOOLEAN NOT NULL DEFAULT FALSE",
        FieldKind::Json => "JSON DEFAULT NULL",
        FieldKind::GeoPoint => "JSON NOT NULL DEFAULT '{\"lon\":0,\"lat\":0}'",
        k if k.is_multi() => "JSON NOT NULL DEFAULT '[]'",
        _ => "TEXT NOT NULL DEFAULT ''",
    }
}

pub fn create_table(conn: &Connection, c: &CollectionInfo) {
    let mut cols = vec!["\"id\" TEXT PRIMARY KEY".to_string()];
    for f in &c.fields {
        if f.name != "id" {
            cols.push(format!("\"{}\" {}", f.name, column_decl(&f.kind)));
        }
    }
    let sql = format!("CREATE TABLE \"{}\" ({})", c.name, cols.join(", "));
    conn.execute(&sql, []).unwrap();
}

/// Converts a record JSON value to its stored SQL value.
pub fn stored_value(kind: &FieldKind, v: &Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    match (kind, v) {
        (FieldKind::Json, Value::Null) => V::Null,
        (FieldKind::Json | FieldKind::GeoPoint, v) => V::Text(v.to_string()),
        (k, v) if k.is_multi() => V::Text(v.to_string()),
        (_, Value::Bool(b)) => V::Integer(i64::from(*b)),
        (_, Value::Number(n)) => match n.as_i64() {
            Some(i) => V::Integer(i),
            None => V::Real(n.as_f64().unwrap()),
        },
        (_, Value::String(s)) => V::Text(s.clone()),
        (_, Value::Null) => V::Text(String::new()),
        (_, other) => V::Text(other.to_string()),
    }
}

pub fn insert(conn: &Connection, c: &CollectionInfo, record: &Map<String, Value>) {
    let mut names = Vec::new();
    let mut values = Vec::new();
    for (k, v) in record {
        let kind = c
            .field(k)
            .map(|f| f.kind.clone())
            .unwrap_or(FieldKind::Text);
        names.push(format!("\"{k}\""));
        values.push(stored_value(&kind, v));
    }
    let marks: Vec<String> = (1..=values.len()).map(|i| format!("?{i}")).collect();
    let sql = format!(
        "INSERT INTO \"{}\" ({}) VALUES ({})",
        c.name,
        names.join(", "),
        marks.join(", ")
    );
    conn.execute(&sql, rusqlite::params_from_iter(values))
        .unwrap();
}

pub fn to_sql(v: &SqlValue) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    match v {
        SqlValue::Null => V::Null,
        SqlValue::Int(i) => V::Integer(*i),
        SqlValue::Real(r) => V::Real(*r),
        SqlValue::Text(t) => V::Text(t.clone()),
    }
}

/// Runs a compiled filter against `table` and returns matching ids sorted.
pub fn query_ids(
    conn: &Connection,
    table: &str,
    filter: &SqlFilter,
    params: &[SqlValue],
) -> rusqlite::Result<Vec<String>> {
    let sql = format!(
        "SELECT {}t.\"id\" FROM \"{table}\" t {} WHERE {} ORDER BY t.\"id\"",
        if filter.needs_distinct {
            "DISTINCT "
        } else {
            ""
        },
        filter.joins.join(" "),
        filter.where_sql
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(params.iter().map(to_sql)), |r| {
        r.get::<_, String>(0)
    })?;
    rows.collect()
}

fn field(name: &str, kind: FieldKind) -> FieldInfo {
    FieldInfo::new(name, kind)
}

pub fn users(list_rule: Option<&str>) -> CollectionInfo {
    CollectionInfo {
        id: "_pb_users_auth_".into(),
        name: "users".into(),
        kind: CollectionKind::Auth,
        fields: vec![
            field("id", FieldKind::Text),
            FieldInfo {
                name: "password".into(),
                kind: FieldKind::Password,
                hidden: true,
            },
            FieldInfo {
                name: "tokenKey".into(),
                kind: FieldKind::Text,
                hidden: true,
            },
            field("email", FieldKind::Email),
            field("emailVisibility", FieldKind::Bool),
            field("verified", FieldKind::Bool),
            field("username", FieldKind::Text),
            FieldInfo {
                name: "secret".into(),
                kind: FieldKind::Text,
                hidden: true,
            },
        ],
        list_rule: list_rule.map(str::to_string),
    }
}

pub fn tasks() -> CollectionInfo {
    CollectionInfo {
        id: "pbc_tasks".into(),
        name: "tasks".into(),
        kind: CollectionKind::Base,
        fields: vec![
            field("id", FieldKind::Text),
            field("title", FieldKind::Text),
            field("priority", FieldKind::Number),
            field("done", FieldKind::Bool),
            field("due", FieldKind::Date),
            field("tags", FieldKind::Select { multi: true }),
            field(
                "owner",
                FieldKind::Relation {
                    collection_id: "_pb_users_auth_".into(),
                    multi: false,
                },
            ),
            field(
                "watchers",
                FieldKind::Relation {
                    collection_id: "_pb_users_auth_".into(),
                    multi: true,
                },
            ),
            field("data", FieldKind::Json),
            field("location", FieldKind::GeoPoint),
            field("created", FieldKind::Autodate),
        ],
        list_rule: Some(String::new()),
    }
}

pub fn tnotes() -> CollectionInfo {
    CollectionInfo {
        id: "pbc_tnotes".into(),
        name: "tnotes".into(),
        kind: CollectionKind::Base,
        fields: vec![
            field("id", FieldKind::Text),
            field("text", FieldKind::Text),
            field(
                "task",
                FieldKind::Relation {
                    collection_id: "pbc_tasks".into(),
                    multi: false,
                },
            ),
        ],
        list_rule: Some(String::new()),
    }
}

pub fn schema(users_list_rule: Option<&str>) -> Vec<CollectionInfo> {
    vec![users(users_list_rule), tasks(), tnotes()]
}

pub fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 15, 10, 0, 0).unwrap()
}

pub fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

pub fn alice_record() -> Map<String, Value> {
    obj(
        json!({"id": ALICE, "email": "alice@example.com", "emailVisibility": false,
        "verified": true, "username": "alice", "tokenKey": "tkalice", "secret": "s1"}),
    )
}

pub fn bob_record() -> Map<String, Value> {
    obj(
        json!({"id": BOB, "email": "bob2@example.com", "emailVisibility": true,
        "verified": true, "username": "bob", "tokenKey": "tkbob", "secret": "s2"}),
    )
}

pub fn task_records() -> Vec<Map<String, Value>> {
    let created = "2026-05-01 08:00:00.000Z";
    vec![
        obj(
            json!({"id": "task1aaaaaaaaaa", "title": "Write spec", "priority": 3, "done": false,
            "due": "2026-05-16 12:00:00.000Z", "tags": ["a", "b"], "owner": ALICE,
            "watchers": [BOB], "data": {"level": 2, "labels": ["x", "y"]},
            "location": {"lon": 0, "lat": 0}, "created": created}),
        ),
        obj(
            json!({"id": "task2aaaaaaaaaa", "title": "write tests", "priority": 1, "done": true,
            "due": "2026-05-14 12:00:00.000Z", "tags": ["b"], "owner": BOB,
            "watchers": [ALICE, BOB], "data": {"level": 5},
            "location": {"lon": 23.32, "lat": 42.69}, "created": created}),
        ),
        obj(
            json!({"id": "task3aaaaaaaaaa", "title": "Deploy 100%", "priority": 5, "done": false,
            "due": "", "tags": [], "owner": "", "watchers": [], "data": null,
            "location": {"lon": 0, "lat": 0}, "created": created}),
        ),
        obj(
            json!({"id": "task4aaaaaaaaaa", "title": "review_code", "priority": 2, "done": false,
            "due": "2020-01-01 00:00:00.000Z", "tags": ["c"], "owner": ALICE,
            "watchers": [ALICE], "data": {"level": "2"},
            "location": {"lon": 0, "lat": 0}, "created": created}),
        ),
        obj(
            json!({"id": "task5aaaaaaaaaa", "title": "O'Reilly book", "priority": 0, "done": true,
            "due": "2030-06-15 12:00:00.000Z", "tags": ["a", "b", "c"], "owner": BOB,
            "watchers": [], "data": [1, 2],
            "location": {"lon": 0, "lat": 0}, "created": created}),
        ),
    ]
}

/// The measured dataset (see `spec_examples.rs`) in a fresh in-memory SQLite.
pub fn dataset() -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    let s = schema(Some("@request.auth.id != ''"));
    for c in &s {
        create_table(&conn, c);
    }
    insert(&conn, &s[0], &alice_record());
    insert(&conn, &s[0], &bob_record());
    for t in task_records() {
        insert(&conn, &s[1], &t);
    }
    for (id, text, task) in [
        ("note1aaaaaaaaaa", "spec note 1", "task1aaaaaaaaaa"),
        ("note2aaaaaaaaaa", "spec note 2", "task1aaaaaaaaaa"),
        ("note3aaaaaaaaaa", "tests note", "task2aaaaaaaaaa"),
    ] {
        insert(
            &conn,
            &s[2],
            &obj(json!({"id": id, "text": text, "task": task})),
        );
    }
    conn
}

pub fn superuser() -> RequestInfo {
    let mut req = RequestInfo::guest(now());
    req.is_superuser = true;
    req.auth = Some(AuthInfo {
        collection_id: "pbc_3142635823".into(),
        collection_name: "_superusers".into(),
        record: obj(json!({"id": "efi40kujujbe5nu", "email": "admin@example.com"})),
    });
    req
}

pub fn as_user(record: Map<String, Value>) -> RequestInfo {
    let mut req = RequestInfo::guest(now());
    req.auth = Some(AuthInfo {
        collection_id: "_pb_users_auth_".into(),
        collection_name: "users".into(),
        record,
    });
    req
}
