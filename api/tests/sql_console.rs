//! `POST /api/sql` through HTTP: the reference's answer shape (values as strings, declared
//! types, `nullable`), its validation and error envelopes, superuser-only access, writes and
//! connection-changing statements refused (and nothing changed), the row cap, the timeout; and
//! `--queryTimeout` stopping a slow read of an ordinary handler (a view's records list).

#![allow(clippy::unwrap_used)]

mod common;

use api::ServerOptions;
use common::{start, start_with, TestServer};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn sql(server: &TestServer, query: &str) -> common::Reply {
    server
        .send(
            "POST",
            "/api/sql",
            Some(&json!({ "query": query }).to_string()),
            Some(&server.admin),
        )
        .await
}

#[tokio::test]
async fn answers_in_the_reference_shape() {
    let server = start().await;
    let reply = sql(&server, "select 1 as a, 1.5 as b, 'x' as c, null as d").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.json["execTime"].is_u64());
    assert_eq!(reply.json["affectedRows"], 0);
    assert_eq!(
        reply.json["columns"],
        json!([{"name":"a","type":"","nullable":true},{"name":"b","type":"","nullable":true},
               {"name":"c","type":"","nullable":true},{"name":"d","type":"","nullable":true}])
    );
    assert_eq!(reply.json["rows"], json!([["1", "1.5", "x", null]]));
    assert!(reply.json.get("truncated").is_none());

    // Declared column types come through.
    let reply = sql(&server, "select email, verified from _superusers").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["rows"], json!([[common::ADMIN_EMAIL, "1"]]));
    assert_eq!(reply.json["columns"][0]["name"], "email");
    assert_ne!(reply.json["columns"][0]["type"], "", "{}", reply.text);

    let reply = sql(&server, "select x from (select 1 as x) where x > 1").await;
    assert_eq!(reply.json["rows"], json!([]));
    assert_eq!(
        reply.json["columns"],
        json!([{"name":"x","type":"","nullable":true}])
    );
}

#[tokio::test]
async fn bad_requests_get_the_reference_envelopes() {
    let server = start().await;
    for body in [json!({}), json!({"query": "  "})] {
        let reply = server
            .send(
                "POST",
                "/api/sql",
                Some(&body.to_string()),
                Some(&server.admin),
            )
            .await;
        assert_eq!(reply.status, 400);
        assert_eq!(
            reply.text,
            r#"{"data":{"query":{"code":"validation_required","message":"Cannot be blank."}},"message":"An error occurred while validating the submitted data.","status":400}"#
        );
    }
    let reply = sql(&server, "selec").await;
    assert_eq!(reply.status, 400);
    let message = reply.json["message"].as_str().unwrap();
    assert!(
        message.starts_with("Failed to execute query. Raw error:\n"),
        "{message}"
    );
    assert!(message.contains("syntax error"), "{message}");

    let guest = server
        .send("POST", "/api/sql", Some(r#"{"query":"select 1"}"#), None)
        .await;
    assert_eq!(guest.status, 401);
    let (_, user) = server.user("sql@example.com", "password123").await;
    let forbidden = server
        .send(
            "POST",
            "/api/sql",
            Some(r#"{"query":"select 1"}"#),
            Some(&user),
        )
        .await;
    assert_eq!(forbidden.status, 403);
}

#[tokio::test]
async fn writes_and_connection_changes_are_refused_and_change_nothing() {
    let server = start().await;
    server.user("keep@example.com", "password123").await;
    for statement in [
        "delete from users",
        "update users set email = 'x@y.z'",
        "insert into _params (id, value) values ('x', '1')",
        "create table t (a)",
        "drop table users",
        "attach ':memory:' as other",
        "pragma query_only = 0",
        "pragma writable_schema = 1",
        "select 1; delete from users",
    ] {
        let reply = sql(&server, statement).await;
        assert_eq!(reply.status, 400, "{statement}: {}", reply.text);
        assert!(
            reply.json["message"]
                .as_str()
                .unwrap()
                .starts_with("Failed to execute query. Raw error:\n"),
            "{statement}: {}",
            reply.text
        );
    }
    let reply = sql(&server, "select email from users").await;
    assert_eq!(reply.json["rows"], json!([["keep@example.com"]]));
    let reply = sql(
        &server,
        "select count(*) from sqlite_master where name = 't'",
    )
    .await;
    assert_eq!(reply.json["rows"], json!([["0"]]));
    // Introspection pragmas run.
    let reply = sql(&server, "pragma table_info(users)").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["columns"][1]["name"], "name");
}

#[tokio::test]
async fn rows_are_capped() {
    let server = start().await;
    let reply = sql(
        &server,
        "with recursive c(x) as (select 1 union all select x + 1 from c where x < 20000) select x from c",
    )
    .await;
    assert_eq!(reply.status, 200);
    let rows = reply.json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), api::sql::SQL_MAX_ROWS);
    assert_eq!(rows[0], json!(["1"]));
    assert_eq!(reply.json["truncated"], true);
}

const ENDLESS: &str = "with recursive c(x) as (select 1 union all select x + 1 from c) \
                       select count(*) from c";

#[tokio::test]
async fn a_slow_statement_is_stopped_by_the_timeout() {
    let server = start_with(ServerOptions {
        query_timeout: Some(Duration::from_secs(1)),
        ..ServerOptions::default()
    })
    .await;
    let started = Instant::now();
    let reply = sql(&server, ENDLESS).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(
        reply.json["message"]
            .as_str()
            .unwrap()
            .contains("ran longer"),
        "{}",
        reply.text
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // The connection is usable afterwards (no handler left behind).
    let reply = sql(&server, "select 2").await;
    assert_eq!(reply.json["rows"], json!([["2"]]));
}

#[tokio::test]
async fn query_timeout_stops_a_slow_records_list() {
    let server = start_with(ServerOptions {
        query_timeout: Some(Duration::from_secs(1)),
        ..ServerOptions::default()
    })
    .await;
    // Fast to create (no users yet); each row then costs an endless subquery.
    server
        .collection(json!({"name": "slow", "type": "view", "listRule": "",
            "viewQuery": format!("select id, ({ENDLESS}) as n from users")}))
        .await;
    server.user("slow@example.com", "password123").await;
    let started = Instant::now();
    let reply: Value = server
        .send(
            "GET",
            "/api/collections/slow/records",
            None,
            Some(&server.admin),
        )
        .await
        .json;
    assert_eq!(reply["status"], 400, "{reply}");
    assert!(
        reply["message"]
            .as_str()
            .unwrap()
            .contains("--queryTimeout"),
        "{reply}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let health = server
        .send(
            "GET",
            "/api/collections/users/records",
            None,
            Some(&server.admin),
        )
        .await;
    assert_eq!(health.status, 200);
}
