//! Filter and sort parity for every kind of caller (issue #12 hole 8, issue #13 item 8): a
//! table of `filter`/`sort` queries with the answers PocketBase v0.40.6 gives a guest, an
//! auth record and a superuser on the same data (measured on `/tmp/pocketbase`, 2026-12-03).
//!
//! Each answer is a status (an error) or the titles of the listed records in order. The
//! deterministic test runs the table against pocketlog. With `PB_REFERENCE=/path/to/pocketbase`
//! set, `differential_against_the_reference` also starts the reference binary on loopback,
//! builds the same data through its HTTP API and checks that both servers answer every row
//! the same way (and as the table says).
//!
//! Guards against: a sort that escapes the filter's access checks (400 where the reference
//! says 403), datetime macros treated as request data (403 for non-superusers), `:length` /
//! `:each` after a JSON path answering 400, sorts with empty items being accepted.

mod common;

use serde_json::{json, Value};

/// An expected answer.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    /// An error status.
    Status(u16),
    /// The titles of the items, concatenated in order (sorted by title unless the row sorts).
    Titles(&'static str),
}
use Answer::{Status, Titles};

/// A row: query parameter name, its value, answers for guest, user, superuser.
type Row = (&'static str, &'static str, [Answer; 3]);

/// Same answer for all three callers.
fn all(answer: Answer) -> [Answer; 3] {
    [answer.clone(), answer.clone(), answer]
}

/// Measured on the reference (see the module docs).
fn table() -> Vec<Row> {
    vec![
        // Datetime macros are not `@request` data: every caller may use them.
        ("filter", "created > @now", all(Titles(""))),
        ("filter", "@now > created", all(Titles("klmqx"))),
        ("filter", "created < @todayEnd", all(Titles("klmqx"))),
        ("filter", "created > @tomorrow", all(Titles(""))),
        ("filter", "created > @monthEnd", all(Titles(""))),
        ("filter", "updated <= @yearEnd", all(Titles("klmqx"))),
        ("filter", "created > @yesterday", all(Titles("klmqx"))),
        ("filter", "@hour >= 0", all(Titles("klmqx"))),
        ("filter", "@weekday < 7", all(Titles("klmqx"))),
        (
            "filter",
            "@second >= 0 && @minute >= 0 && @day > 0 && @month > 0 && @year > 2000",
            all(Titles("klmqx")),
        ),
        // `@request.*` and `@collection.*` stay superuser-only in client filters.
        (
            "filter",
            "@request.auth.id != \"\"",
            [Status(403), Status(403), Titles("klmqx")],
        ),
        (
            "filter",
            "@request.query.x = \"\"",
            [Status(403), Status(403), Titles("klmqx")],
        ),
        (
            "filter",
            "@collection.users.id != \"\"",
            [Status(403), Status(403), Titles("klmqx")],
        ),
        // Modifiers after a JSON path are part of the key (`$.arrlength`): evaluated, no 400.
        ("filter", "meta.arr:length = 2", all(Titles(""))),
        ("filter", "meta.arr:length != 3", all(Titles("klmqx"))),
        ("filter", "meta.arr:each = 1", all(Titles(""))),
        ("filter", "meta.arr:lower = 1", all(Titles(""))),
        ("filter", "meta.arr:isset = true", all(Titles(""))),
        ("filter", "meta.o.x:length = 1", all(Titles(""))),
        ("filter", "meta.arr.0 = 1", all(Titles("km"))),
        // On the JSON field itself, and on single-value fields, such modifiers are ignored.
        ("filter", "meta:length != 2", all(Titles("klmqx"))),
        ("filter", "meta:each > 4", all(Titles("klm"))),
        ("filter", "meta:lower != \"\"", all(Titles("klmqx"))),
        ("filter", "meta:isset = true", all(Titles(""))),
        ("filter", "title:length = 1", all(Titles(""))),
        ("filter", "title:each = \"k\"", all(Titles("k"))),
        ("filter", "title:isset = true", all(Titles(""))),
        ("filter", "title:lower = \"k\"", all(Titles("k"))),
        ("filter", "n:length = 0", all(Titles("klmqx"))),
        // `:length` counts a single relation/select value; `:each` needs a multiple field.
        ("filter", "owner:length = 1", all(Titles("mq"))),
        (
            "filter",
            "owner:each = \"o1aaaaaaaaaaaaa\"",
            all(Titles("mq")),
        ),
        ("filter", "tags:length = 0", all(Titles("klmqx"))),
        ("filter", "tags:each = \"a\"", all(Titles(""))),
        // Sorts: one resolver with the filter's statuses.
        (
            "sort",
            "@request.auth.id",
            [Status(403), Status(403), Status(400)],
        ),
        (
            "sort",
            "-@request.auth.id",
            [Status(403), Status(403), Status(400)],
        ),
        (
            "sort",
            "@request.query.x",
            [Status(403), Status(403), Status(400)],
        ),
        (
            "sort",
            "@request.body.x",
            [Status(403), Status(403), Status(400)],
        ),
        ("sort", "@now", all(Status(400))),
        // Empty sort items are 400; an empty parameter is no sort.
        ("sort", "title,", all(Status(400))),
        ("sort", "-title,", all(Status(400))),
        ("sort", ",title", all(Status(400))),
        ("sort", "title,,n", all(Status(400))),
        ("sort", " ", all(Status(400))),
        ("sort", ",", all(Status(400))),
        ("sort", "-", all(Status(400))),
        ("sort", "+", all(Status(400))),
        ("sort", "--title", all(Status(400))),
        ("sort", "", all(Titles("qxmkl"))),
        ("sort", "title", all(Titles("klmqx"))),
        ("sort", " title", all(Titles("klmqx"))),
        ("sort", "+title", all(Titles("klmqx"))),
        ("sort", "-title", all(Titles("xqmlk"))),
        ("sort", "title:lower", all(Titles("klmqx"))),
        ("sort", "meta.arr", all(Titles("qxlkm"))),
        ("sort", "-meta.arr.0", all(Titles("mkqxl"))),
        ("sort", "meta", all(Titles("qxlkm"))),
        ("sort", "tags:length", all(Titles("qxmkl"))),
        ("sort", "meta.arr:length", all(Titles("qxmkl"))),
        ("sort", "created,title", all(Titles("qxmkl"))),
        // A wider sweep of relation paths (hidden emails, secret fields), JSON paths, `?=`,
        // back-relations, request data and macros for the three callers.
        (
            "filter",
            "owner.email = \"o1@x.io\"",
            [Titles(""), Titles(""), Titles("mq")],
        ),
        (
            "filter",
            "owner.email != \"\"",
            [Titles(""), Titles(""), Titles("mq")],
        ),
        ("filter", "owner.emailVisibility = false", all(Titles("mq"))),
        (
            "filter",
            "owner.id = \"o1aaaaaaaaaaaaa\"",
            all(Titles("mq")),
        ),
        ("filter", "owner.name = \"\"", all(Titles("klmqx"))),
        (
            "filter",
            "owner.tokenKey != \"\"",
            [Status(400), Status(400), Titles("mq")],
        ),
        (
            "filter",
            "owner.password != \"\"",
            [Status(400), Status(400), Titles("mq")],
        ),
        ("filter", "owner.verified = false", all(Titles("mq"))),
        ("filter", "owner.created != \"\"", all(Titles("mq"))),
        (
            "filter",
            "owner:length > 0 && meta.o.x = \"y\"",
            all(Titles("m")),
        ),
        ("filter", "meta.o.x = \"y\"", all(Titles("m"))),
        (
            "filter",
            "meta.o = \"{\\\"x\\\":\\\"y\\\"}\"",
            all(Titles("m")),
        ),
        ("filter", "meta.arr ?= 1", all(Titles(""))),
        ("filter", "meta.arr.1 = 2", all(Titles("km"))),
        ("filter", "meta.arr.5 = null", all(Titles("klmqx"))),
        ("filter", "meta.nope = null", all(Titles("klmqx"))),
        ("filter", "meta.nope != null", all(Titles(""))),
        ("filter", "meta ~ \"arr\"", all(Titles("km"))),
        ("filter", "meta.arr ~ \"2\"", all(Titles("km"))),
        ("filter", "meta = null", all(Titles("qx"))),
        ("filter", "meta != null", all(Titles("klm"))),
        ("filter", "meta.o.x ~ \"y\"", all(Titles("m"))),
        ("filter", "meta.o.x:lower = \"y\"", all(Titles(""))),
        ("filter", "meta.0 = 5", all(Titles("l"))),
        ("filter", "meta.1 > 5", all(Titles("l"))),
        ("filter", "meta.arr.0:length = 1", all(Titles(""))),
        ("filter", "meta.arr:each ?= 1", all(Titles(""))),
        ("filter", "tags:each ?= \"a\"", all(Titles(""))),
        ("filter", "tags ?= \"a\"", all(Titles(""))),
        ("filter", "tags:length > 0", all(Titles(""))),
        ("filter", "owner ?= \"o1aaaaaaaaaaaaa\"", all(Titles("mq"))),
        (
            "filter",
            "owner.email:lower ~ \"x.io\"",
            [Titles(""), Titles(""), Titles("mq")],
        ),
        ("filter", "users_via_id.email != \"\"", all(Status(400))),
        ("filter", "posts_via_owner.title != \"\"", all(Status(400))),
        (
            "filter",
            "owner.posts_via_owner.title ?= \"m\"",
            all(Titles("mq")),
        ),
        (
            "filter",
            "@request.method = \"GET\"",
            [Status(403), Status(403), Titles("klmqx")],
        ),
        (
            "filter",
            "@request.context = \"default\"",
            [Status(403), Status(403), Titles("klmqx")],
        ),
        (
            "filter",
            "@request.headers.x = \"\"",
            [Status(403), Status(403), Titles("klmqx")],
        ),
        (
            "filter",
            "@collection.users.email ?= owner.email",
            [Status(403), Status(403), Titles("mq")],
        ),
        ("filter", "@yesterday < @now", all(Titles("klmqx"))),
        ("filter", "@now = @now", all(Titles("klmqx"))),
        ("filter", "@monthStart < @monthEnd", all(Titles("klmqx"))),
        ("filter", "@yearStart < @yearEnd", all(Titles("klmqx"))),
        ("filter", "created > \"2020-01-01\"", all(Titles("klmqx"))),
        (
            "filter",
            "created > @now || title = \"k\"",
            all(Titles("k")),
        ),
        ("filter", "title = @now", all(Titles(""))),
        (
            "filter",
            "@second < 60 && @minute < 60 && @hour < 24",
            all(Titles("klmqx")),
        ),
        ("filter", "@weekday:lower = 1", all(Status(400))),
        ("filter", "@now:length = 1", all(Status(400))),
        ("filter", "@now:isset = true", all(Status(400))),
        ("filter", "n = 0 && @now != \"\"", all(Titles("klmqx"))),
        ("filter", "geoDistance(0,0,0,0) = 0", all(Titles("klmqx"))),
        ("filter", "title:lower ?= \"k\"", all(Titles("k"))),
        ("filter", "title ~ \"%\"", all(Titles("klmqx"))),
        ("filter", "id:length = 15", all(Titles(""))),
        ("filter", "id != \"\"", all(Titles("klmqx"))),
        ("filter", "collectionId != \"\"", all(Status(400))),
        ("filter", "collectionName = \"posts\"", all(Status(400))),
        ("filter", "title ~ @now", all(Titles(""))),
        ("sort", "owner.name", all(Titles("xklqm"))),
        ("sort", "-owner.id", all(Titles("qmxkl"))),
        (
            "sort",
            "owner.tokenKey",
            [Status(400), Status(400), Titles("xklqm")],
        ),
        (
            "sort",
            "owner.password",
            [Status(400), Status(400), Titles("xklqm")],
        ),
        ("sort", "meta.o.x", all(Titles("qxklm"))),
        ("sort", "meta.arr.1,title", all(Titles("lqxkm"))),
        ("sort", "posts_via_owner.title", all(Status(400))),
        ("sort", "tags", all(Titles("qxmkl"))),
        ("sort", "-tags:length,title", all(Titles("klmqx"))),
        ("sort", "meta:length,title", all(Titles("qxlkm"))),
        ("sort", "title:each", all(Titles("klmqx"))),
        ("sort", "owner:length,title", all(Titles("klxmq"))),
        ("sort", "@rowid", all(Titles("qxmkl"))),
        ("sort", "-@rowid", all(Titles("lkmxq"))),
        ("sort", "collectionId", all(Status(400))),
        ("sort", "title:isset", all(Titles("klmqx"))),
        ("sort", "a b", all(Status(400))),
        ("sort", "title desc", all(Status(400))),
        ("sort", "-title , n", all(Titles("xqmlk"))),
        ("sort", "title, -n, meta.arr", all(Titles("klmqx"))),
    ]
}

/// A server to query: base URL, a user token and a superuser token.
struct Target {
    base: String,
    user: String,
    admin: String,
    client: reqwest::Client,
}

impl Target {
    async fn call(&self, method: &str, path: &str, body: Value, token: Option<&str>) -> Value {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(token) = token {
            request = request.header("authorization", token);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let json: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status < 300, "{path}: {status} {json}");
        json
    }

    /// What a caller gets for one row.
    async fn answer(&self, param: &str, value: &str, token: Option<&str>) -> Answer {
        let mut query = vec![(param, value)];
        if param == "filter" {
            query.push(("sort", "title"));
        }
        let mut request = self
            .client
            .get(format!("{}/api/collections/posts/records", self.base))
            .query(&query);
        if let Some(token) = token {
            request = request.header("authorization", token);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let json: Value = response.json().await.unwrap_or(Value::Null);
        if status != 200 {
            return Status(status);
        }
        let titles: String = json["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| item["title"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        Titles(Box::leak(titles.into_boxed_str()))
    }

    async fn answers(&self, param: &str, value: &str) -> [Answer; 3] {
        [
            self.answer(param, value, None).await,
            self.answer(param, value, Some(&self.user)).await,
            self.answer(param, value, Some(&self.admin)).await,
        ]
    }
}

/// Builds the fixture through the HTTP API (the same calls for both servers); returns the
/// user's token.
async fn fixture(base: &str, admin: &str) -> String {
    let target = Target {
        base: base.to_string(),
        user: String::new(),
        admin: admin.to_string(),
        client: reqwest::Client::new(),
    };
    target
        .call(
            "PATCH",
            "/api/collections/users",
            json!({"createRule": "", "listRule": "", "viewRule": ""}),
            Some(admin),
        )
        .await;
    target
        .call(
            "POST",
            "/api/collections",
            json!({
                "name": "posts", "type": "base",
                "listRule": "", "viewRule": "", "createRule": "",
                "fields": [
                    {"name": "title", "type": "text"},
                    {"name": "owner", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1},
                    {"name": "tags", "type": "select", "values": ["a", "b", "c"], "maxSelect": 3},
                    {"name": "n", "type": "number"},
                    {"name": "meta", "type": "json"},
                    {"name": "created", "type": "autodate", "onCreate": true},
                    {"name": "updated", "type": "autodate", "onCreate": true, "onUpdate": true}
                ]
            }),
            Some(admin),
        )
        .await;
    for user in ["o1", "o2"] {
        target
            .call(
                "POST",
                "/api/collections/users/records",
                json!({"id": format!("{user}aaaaaaaaaaaaa"), "email": format!("{user}@x.io"),
                       "password": "1234567890", "passwordConfirm": "1234567890"}),
                Some(admin),
            )
            .await;
    }
    let user = target
        .call(
            "POST",
            "/api/collections/users/auth-with-password",
            json!({"identity": "o1@x.io", "password": "1234567890"}),
            None,
        )
        .await["token"]
        .as_str()
        .unwrap_or("")
        .to_string();
    for post in [
        json!({"title": "q", "owner": "o1aaaaaaaaaaaaa"}),
        json!({"title": "x"}),
        json!({"title": "m", "owner": "o1aaaaaaaaaaaaa", "meta": {"arr": [1, 2], "o": {"x": "y"}}}),
        json!({"title": "k", "meta": {"arr": [1, 2, 3]}}),
        json!({"title": "l", "meta": [5, 6]}),
    ] {
        target
            .call("POST", "/api/collections/posts/records", post, Some(&user))
            .await;
        // Distinct `created` values (millisecond precision) for the `created` sort.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    user
}

fn compare(rows: &[Row], got: &[[Answer; 3]]) -> Vec<String> {
    rows.iter()
        .zip(got)
        .filter(|((_, _, expected), got)| expected != *got)
        .map(|((param, value, expected), got)| {
            format!("{param}={value:?}: expected {expected:?}, got {got:?}")
        })
        .collect()
}

#[tokio::test]
async fn filters_and_sorts_answer_like_the_reference_for_every_caller() {
    let server = common::start().await;
    let user = fixture(&server.base, &server.admin).await;
    let target = Target {
        base: server.base.clone(),
        user,
        admin: server.admin.clone(),
        client: reqwest::Client::new(),
    };
    let rows = table();
    let mut got = Vec::new();
    for (param, value, _) in &rows {
        got.push(target.answers(param, value).await);
    }
    let failures = compare(&rows, &got);
    assert!(
        failures.is_empty(),
        "{} of {} rows differ:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

/// Opt-in: `PB_REFERENCE=/tmp/pocketbase cargo test -p pocketlog-api --test security_filters`.
#[tokio::test]
async fn differential_against_the_reference() {
    let Ok(binary) = std::env::var("PB_REFERENCE") else {
        eprintln!("PB_REFERENCE not set: skipping the live differential");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("pb_data");
    let status = std::process::Command::new(&binary)
        .args([
            "superuser",
            "upsert",
            "ref@example.com",
            "1234567890",
            "--dir",
        ])
        .arg(&data)
        .output()
        .expect("run the reference");
    assert!(status.status.success(), "superuser upsert failed");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut child = std::process::Command::new(&binary)
        .args(["serve", "--http", &format!("127.0.0.1:{port}"), "--dir"])
        .arg(&data)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the reference");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if client
            .get(format!("{base}/api/health"))
            .send()
            .await
            .is_ok()
        {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ready, "the reference did not start");
    let admin: Value = client
        .post(format!(
            "{base}/api/collections/_superusers/auth-with-password"
        ))
        .json(&json!({"identity": "ref@example.com", "password": "1234567890"}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let admin = admin["token"].as_str().unwrap_or("").to_string();
    let user = fixture(&base, &admin).await;
    let reference = Target {
        base,
        user,
        admin,
        client,
    };
    let rows = table();
    let mut got = Vec::new();
    for (param, value, _) in &rows {
        got.push(reference.answers(param, value).await);
    }
    let _ = child.kill();
    let _ = child.wait();
    let failures = compare(&rows, &got);
    assert!(
        failures.is_empty(),
        "the reference disagrees with {} of {} rows:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn view_sorts_go_through_the_same_resolver() {
    let server = common::start().await;
    let user = fixture(&server.base, &server.admin).await;
    let target = Target {
        base: server.base.clone(),
        user,
        admin: server.admin.clone(),
        client: reqwest::Client::new(),
    };
    target
        .call(
            "POST",
            "/api/collections",
            json!({"name": "pview", "type": "view", "listRule": "", "viewRule": "",
                   "viewQuery": "select id, title, meta from posts"}),
            Some(&server.admin),
        )
        .await;
    // Measured on the reference (guest caller).
    let cases = [
        ("title", Titles("klmqx")),
        ("-title", Titles("xqmlk")),
        ("meta.arr", Titles("qxlkm")),
        ("@rowid", Status(400)),
        ("title,", Status(400)),
        ("@request.auth.id", Status(403)),
        ("nope", Status(400)),
    ];
    for (sort, expected) in cases {
        let response = target
            .client
            .get(format!("{}/api/collections/pview/records", target.base))
            .query(&[("sort", sort)])
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let json: Value = response.json().await.unwrap_or(Value::Null);
        let got = if status == 200 {
            let titles: String = json["items"]
                .as_array()
                .map(|items| items.iter().filter_map(|i| i["title"].as_str()).collect())
                .unwrap_or_default();
            Titles(Box::leak(titles.into_boxed_str()))
        } else {
            Status(status)
        };
        assert_eq!(got, expected, "sort={sort:?}");
    }
}
