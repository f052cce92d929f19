//! View collections' fields as the reference (v0.40.6) infers them, for the queries measured
//! on it (plain and aliased columns, COUNT/TOTAL/SUM/AVG/MIN/MAX, literals, expressions, CASTs,
//! joins, a CTE, a computed id), through `POST /api/collections` (type view) and
//! `POST /api/collections/meta/dry-run-view` (same fields plus sample rows); the dry run's
//! envelopes, read-only rule and superuser-only access.

#![allow(clippy::unwrap_used)]

mod common;

use common::{start, TestServer};
use serde_json::{json, Value};

async fn posts(server: &TestServer) {
    server
        .collection(json!({"name": "posts", "type": "base", "listRule": "", "fields": [
            {"name": "title", "type": "text"}, {"name": "views", "type": "number"},
            {"name": "done", "type": "bool"}, {"name": "meta", "type": "json"},
            {"name": "author", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1},
            {"name": "when", "type": "date"}]}))
        .await;
    server
        .json(
            "POST",
            "/api/collections/posts/records",
            json!({"title": "Minimal", "views": 3, "done": true}),
            Some(&server.admin.clone()),
            200,
        )
        .await;
}

/// Checks that `field` has every key of `expected` (`"id": "_clone_"` checks the prefix).
fn check(field: &Value, expected: &Value, query: &str) {
    for (key, want) in expected.as_object().unwrap() {
        let got = &field[key];
        if key == "id" && want == "_clone_" {
            assert!(
                got.as_str().unwrap().starts_with("_clone_"),
                "{query}: {field}"
            );
        } else {
            assert_eq!(got, want, "{query}: {key} of {field}");
        }
    }
}

const ID: &str = r#"{"name":"id","type":"text","id":"text3208210256","required":true,"primaryKey":true,"system":true,"pattern":"^[a-z0-9]+$","min":0,"max":0,"autogeneratePattern":""}"#;

/// The measured cases: query → expected fields (subset of keys) in order.
fn cases() -> Vec<(&'static str, Vec<Value>)> {
    let id: Value = serde_json::from_str(ID).unwrap();
    let json1 =
        |name: &str, id: &str| json!({"name": name, "type": "json", "id": id, "maxSize": 1});
    vec![
        (
            "select p.id, p.title as t, p.views as v from posts p",
            vec![
                id.clone(),
                json!({"name": "t", "type": "text", "id": "_clone_", "system": false, "required": false}),
                json!({"name": "v", "type": "number", "id": "_clone_", "onlyInt": false}),
            ],
        ),
        (
            "select id, count(*) as c, count(id) as ci from posts group by id",
            vec![
                id.clone(),
                json!({"name": "c", "type": "number", "id": "number112844655", "onlyInt": true}),
                json!({"name": "ci", "type": "number", "id": "number996668263", "onlyInt": true}),
            ],
        ),
        (
            "select id, sum(views) as s, total(views) as tt, avg(views) as a, min(views) as mi, max(title) as ma from posts group by id",
            vec![
                id.clone(),
                json1("s", "json453955339"),
                json!({"name": "tt", "type": "number", "id": "number1575099176", "onlyInt": false}),
                json1("a", "json3904355907"),
                json!({"name": "mi", "type": "json", "maxSize": 1}),
                json!({"name": "ma", "type": "json", "maxSize": 1}),
            ],
        ),
        (
            "select id, 'lit' as l, 5 as n, 1.5 as r, null as z, (views + 1) as e from posts",
            vec![
                id.clone(),
                json1("l", "json2517025534"),
                json1("n", "json2013832146"),
                json1("r", "json1812594589"),
                json1("z", "json1657960367"),
                json1("e", "json4024072794"),
            ],
        ),
        (
            "select id, cast(views as integer) as ci, cast(views as real) as cr, cast(views as numeric) as cn, cast(title as text) as ct, cast(done as boolean) as cb, cast(views as bool) as cb2 from posts",
            vec![
                id.clone(),
                json!({"name": "ci", "type": "number", "id": "number996668263", "onlyInt": true}),
                json!({"name": "cr", "type": "number", "id": "number2969713291", "onlyInt": false}),
                json!({"name": "cn", "type": "number", "id": "number2768463556", "onlyInt": false}),
                json!({"name": "ct", "type": "text", "id": "text1482792894", "primaryKey": false, "required": false}),
                json!({"name": "cb", "type": "bool", "id": "bool2897554159"}),
                json!({"name": "cb2", "type": "bool", "id": "bool718075086"}),
            ],
        ),
        (
            "select posts.id, users.name, users.email, users.id as uid from posts left join users on users.id = posts.author",
            vec![
                id.clone(),
                json!({"name": "name", "type": "text", "id": "_clone_"}),
                json!({"name": "email", "type": "email", "id": "_clone_", "required": true, "system": true}),
                json!({"name": "uid", "type": "relation", "id": "relation1402668550",
                       "collectionId": "_pb_users_auth_", "maxSelect": 1, "minSelect": 0, "cascadeDelete": false}),
            ],
        ),
        (
            "select id, author as a, author from posts",
            vec![
                id.clone(),
                json!({"name": "a", "type": "relation", "id": "_clone_", "collectionId": "_pb_users_auth_", "maxSelect": 1}),
                json!({"name": "author", "type": "relation", "id": "_clone_"}),
            ],
        ),
        (
            "select (row_number() over()) as id, title from posts",
            vec![id.clone(), json!({"name": "title", "type": "text", "id": "_clone_"})],
        ),
        (
            "with x as (select id, title from posts) select id, title from x",
            vec![id.clone(), json1("title", "json724990059")],
        ),
    ]
}

#[tokio::test]
async fn created_views_get_the_reference_fields() {
    let server = start().await;
    posts(&server).await;
    for (index, (query, expected)) in cases().into_iter().enumerate() {
        let created = server
            .collection(json!({"name": format!("v{index}"), "type": "view", "viewQuery": query}))
            .await;
        let fields = created["fields"].as_array().unwrap();
        assert_eq!(fields.len(), expected.len(), "{query}: {created}");
        for (field, want) in fields.iter().zip(&expected) {
            check(field, want, query);
        }
    }
}

#[tokio::test]
async fn dry_run_answers_fields_and_a_sample() {
    let server = start().await;
    posts(&server).await;
    let admin = server.admin.clone();
    for (query, expected) in cases() {
        let answer = server
            .json(
                "POST",
                "/api/collections/meta/dry-run-view",
                json!({ "query": query }),
                Some(&admin),
                200,
            )
            .await;
        let fields = answer["fields"].as_array().unwrap();
        assert_eq!(fields.len(), expected.len(), "{query}: {answer}");
        for (field, want) in fields.iter().zip(&expected) {
            check(field, want, query);
        }
    }
    let answer = server
        .json(
            "POST",
            "/api/collections/meta/dry-run-view",
            json!({"query": "SELECT id, title, views, done FROM posts LIMIT 2"}),
            Some(&admin),
            200,
        )
        .await;
    let sample = answer["sample"].as_array().unwrap();
    assert_eq!(sample.len(), 1);
    assert_eq!(sample[0]["title"], "Minimal");
    assert_eq!(sample[0]["views"], 3);
    assert_eq!(sample[0]["done"], true);
    assert!(sample[0]["collectionName"]
        .as_str()
        .unwrap()
        .starts_with("temp_view_"));
    assert!(sample[0]["collectionId"]
        .as_str()
        .unwrap()
        .starts_with("pbc_"));
    // No view was created.
    let list = server
        .json(
            "GET",
            "/api/collections?perPage=100",
            json!(null),
            Some(&admin),
            200,
        )
        .await;
    assert!(!list.to_string().contains("temp_view_"));
}

#[tokio::test]
async fn dry_run_refuses_bad_queries() {
    let server = start().await;
    posts(&server).await;
    let admin = server.admin.clone();
    let reply = server
        .send(
            "POST",
            "/api/collections/meta/dry-run-view",
            Some("{}"),
            Some(&admin),
        )
        .await;
    assert_eq!(
        reply.text,
        r#"{"data":{"query":{"code":"validation_required","message":"Cannot be blank."}},"message":"An error occurred while validating the submitted data.","status":400}"#
    );
    for query in [
        "delete from posts",
        "select id from posts; delete from posts",
        "select title from posts",
        "select nope from posts",
    ] {
        let reply = server
            .send(
                "POST",
                "/api/collections/meta/dry-run-view",
                Some(&json!({ "query": query }).to_string()),
                Some(&admin),
            )
            .await;
        assert_eq!(reply.status, 400, "{query}: {}", reply.text);
        assert!(
            reply.json["message"]
                .as_str()
                .unwrap()
                .starts_with("Invalid view query. Raw error: \n"),
            "{query}: {}",
            reply.text
        );
    }
    let reply = server
        .send(
            "POST",
            "/api/collections/meta/dry-run-view",
            Some(&json!({"query": "select title from posts"}).to_string()),
            Some(&admin),
        )
        .await;
    assert!(
        reply.text.contains("missing required id column"),
        "{}",
        reply.text
    );
    let count = server
        .json(
            "GET",
            "/api/collections/posts/records",
            json!(null),
            Some(&admin),
            200,
        )
        .await;
    assert_eq!(count["totalItems"], 1);
    let guest = server
        .send(
            "POST",
            "/api/collections/meta/dry-run-view",
            Some(r#"{"query":"select id from posts"}"#),
            None,
        )
        .await;
    assert_eq!(guest.status, 401);
}
