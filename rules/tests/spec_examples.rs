//! The filter examples measured on PocketBase v0.40.6 (`docs/wire/rules.md`) as a data-driven
//! test.
//!
//! Method: the measured dataset is created in a real SQLite with the workspace storage layout;
//! each filter goes parse → compile → SQLite, and the matching ids (or the error status) must
//! equal what PocketBase v0.40.6 returned. Guards against any drift of the filter semantics.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failed unwrap is a failed test"
)]

mod common;

use common::*;
use rules::{
    compile, eval, needs_database, parse, parse_rule, CompileOptions, Params, RequestInfo,
};

#[derive(Clone, Copy)]
enum Who {
    Guest,
    Alice,
    Bob,
}

fn request(who: Who) -> RequestInfo {
    match who {
        Who::Guest => RequestInfo::guest(now()),
        Who::Alice => as_user(alice_record()),
        Who::Bob => as_user(bob_record()),
    }
}

/// Runs a client filter (or a rule when `rule` is set); `Ok(ids)` as "T1 T3", `Err(status)`.
fn run(
    filter: &str,
    req: &RequestInfo,
    users_rule: Option<&str>,
    rule: bool,
) -> Result<String, u16> {
    let conn = dataset();
    let schema = schema(users_rule);
    let tasks = &schema[1];
    let expr = if rule {
        parse_rule(filter)
    } else {
        parse(filter)
    }
    .map_err(|e| e.status())?;
    let mut params = Params::new();
    let opts = CompileOptions {
        client_filter: !rule,
    };
    let compiled =
        compile(&expr, &schema, tasks, "t", req, &mut params, &opts).map_err(|e| e.status())?;
    let ids = query_ids(&conn, "tasks", &compiled, params.as_slice())
        .unwrap_or_else(|e| panic!("{filter}: SQL failed: {e}\n{}", compiled.where_sql));
    Ok(ids
        .iter()
        .map(|id| format!("T{}", &id[4..5]))
        .collect::<Vec<_>>()
        .join(" "))
}

const USERS_RULE: Option<&str> = Some("@request.auth.id != ''");

#[rustfmt::skip]
const SU_CASES: &[(u32, &str, &str)] = &[
    (1, "priority > 2", "T1 T3"),
    (2, "priority >= 2 && done = false", "T1 T3 T4"),
    (3, "priority = 0 || priority = 5", "T3 T5"),
    (4, "(priority = 1 || priority = 3) && done = true", "T2"),
    (5, "priority = 3 || priority = 2 && done = true", "T1"),
    (6, "(priority = 3 || priority = 2) && done = true", ""),
    (7, "done = true && priority = 1 || priority = 5", "T2 T3"),
    (8, "priority != 3", "T2 T3 T4 T5"),
    (9, "priority = 3.0", "T1"),
    (10, "priority = -1 || priority > 4.5", "T3"),
    (11, "priority = '3'", "T1"),
    (12, "priority > 'abc'", ""),
    (13, "priority > done", "T1 T3 T4"),
    (14, "title = 'Write spec'", "T1"),
    (15, "title = \"write spec\"", ""),
    (16, "title:lower = 'write spec'", "T1"),
    (17, "title ~ 'WRITE'", "T1 T2"),
    (18, "title !~ 'write'", "T3 T4 T5"),
    (19, "title ~ 'write' && title !~ 'tests'", "T1"),
    (20, "title ~ '100%'", ""),
    (21, r"title ~ '100\%'", "T3"),
    (22, "title ~ 'Deploy%'", "T3"),
    (23, "title ~ '%tests'", "T2"),
    (24, "title ~ 'rev%code'", "T4"),
    (25, "title ~ 'review_'", "T4"),
    (26, r"title ~ 'O\'Reilly'", "T5"),
    (27, "title ~ \"O'Reilly\"", "T5"),
    (29, "title = 'a' // trailing comment", ""),
    (30, "title ~ 'Spec' && // comment\n priority = 3", "T1"),
    (31, "done = true", "T2 T5"),
    (32, "done = 1", "T2 T5"),
    (33, "done != false", "T2 T5"),
    (34, "done = 'true'", ""),
    (35, "due = ''", "T3"),
    (36, "due = null", "T3"),
    (37, "due != ''", "T1 T2 T4 T5"),
    (38, "due > @now", "T1 T5"),
    (39, "due < @now && due != ''", "T2 T4"),
    (40, "due > @yesterday && due < @tomorrow", "T2"),
    (41, "due > @monthStart && due < @monthEnd", "T1 T2"),
    (42, "due >= '2030-01-01'", "T5"),
    (43, "due < '2021-01-01 00:00:00.000Z' && due != ''", "T4"),
    (44, "due ?> '2025-01-01'", "T1 T2 T5"),
    (45, "strftime('%Y', due) = '2030'", "T5"),
    (46, "strftime('%Y-%m-%d', due) = strftime('%Y-%m-%d', @tomorrow)", "T1"),
    (47, "created > '2000-01-01' && created <= @now", "T1 T2 T3 T4 T5"),
    (48, "@month = @month && @year > 2000", "T1 T2 T3 T4 T5"),
    (49, "tags ~ 'b'", "T1 T2 T5"),
    (50, "tags ?= 'b'", ""),
    (51, "tags = 'b'", ""),
    (52, "tags = '[]'", "T3"),
    (53, "tags = ''", ""),
    (54, "tags:length = 2", "T1"),
    (55, "tags:length > 1", "T1 T5"),
    (56, "tags:each = 'b'", "T2"),
    (57, "tags:each ?= 'c'", "T4 T5"),
    (58, "tags:each ?~ 'a'", "T1 T5"),
    (59, "tags:each != 'a'", "T2 T3 T4"),
    (60, "owner = ''", "T3"),
    (61, "owner = null", "T3"),
    (62, "owner ~ 'o0k6'", "T1 T4"),
    (63, "owner.id = 'o0k6hlh1ivc6xwf'", "T1 T4"),
    (64, "owner.username = 'alice'", "T1 T4"),
    (65, "owner.email = 'bob2@example.com'", "T2 T5"),
    (66, "owner.verified = true && owner.username != 'bob'", "T1 T4"),
    (67, "owner.tasks_via_owner.title ?= 'review_code'", "T1 T4"),
    (68, "watchers ?= 'o0k6hlh1ivc6xwf'", ""),
    (69, "watchers = 'o0k6hlh1ivc6xwf'", ""),
    (70, "watchers ~ 'o0k6hlh1ivc6xwf'", "T2 T4"),
    (71, "watchers.id ?= 'o0k6hlh1ivc6xwf'", "T2 T4"),
    (72, "watchers.id = 'o0k6hlh1ivc6xwf'", "T4"),
    (73, "watchers:each ?= 'o0k6hlh1ivc6xwf'", "T2 T4"),
    (74, "watchers:length = 0", "T3 T5"),
    (75, "watchers.username ?= 'bob'", "T1 T2"),
    (76, "watchers.username = 'bob'", "T1"),
    (77, "watchers.username != 'bob'", "T3 T4 T5"),
    (78, "watchers.username ?!= 'bob'", "T2 T3 T4 T5"),
    (79, "watchers.username ?~ 'ali'", "T2 T4"),
    (80, "watchers.username ~ 'ali'", "T4"),
    (81, "owner.username = watchers.username", "T3 T4"),
    (82, "owner ?= watchers.id", "T2 T3 T4"),
    (83, "data.level = 2", "T1"),
    (84, "data.level = '2'", "T4"),
    (85, "data.level > 1", "T1 T2 T4"),
    (86, "data.labels.0 = 'x'", "T1"),
    (87, "data.1 = 2", "T5"),
    (88, "data = null", "T3"),
    (89, "data.missing = null", "T1 T2 T3 T4 T5"),
    (90, "tnotes_via_task.text ?~ 'spec'", "T1"),
    (91, "tnotes_via_task.text ?= 'spec note 1'", "T1"),
    (92, "tnotes_via_task.text = 'spec note 1'", ""),
    (93, "tnotes_via_task.id != ''", "T1 T2"),
    (95, "@collection.tnotes.task ?= id", "T1 T2"),
    (96, "@collection.tnotes:n.task ?= id && @collection.tnotes:n.text ?~ 'note 2'", "T1"),
    (97, "@request.auth.collectionName = '_superusers'", "T1 T2 T3 T4 T5"),
    (99, "@request.query.nope:isset = true", ""),
    (101, "@request.body.title:isset = false", "T1 T2 T3 T4 T5"),
    (102, "geoDistance(0, 0, 0, 0) < 1 && priority = 3", "T1"),
    (103, "id ?= 'task1aaaaaaaaaa'", "T1"),
    (104, "true = true && priority = 1", "T2"),
    (104, "null = null && priority = 1", "T2"),
    (104, "'' = null && priority = 1", "T2"),
];

#[test]
fn superuser_examples() {
    let mut failures = Vec::new();
    for (number, filter, expected) in SU_CASES {
        let got = run(filter, &superuser(), USERS_RULE, false);
        if got != Ok(expected.to_string()) {
            failures.push(format!(
                "#{number} {filter:?}: expected {expected:?}, got {got:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn request_query_and_headers() {
    let mut req = superuser();
    req.query.insert("foo".into(), "bar".into());
    assert_eq!(
        run(
            "@request.query.foo = 'bar' && priority = 1",
            &req,
            USERS_RULE,
            false
        ),
        Ok("T2".into())
    );
    let mut req = superuser();
    req.headers
        .insert(RequestInfo::normalize_header_name("X-Custom"), "yes".into());
    assert_eq!(
        run(
            "@request.headers.x_custom = 'yes' && priority = 1",
            &req,
            USERS_RULE,
            false
        ),
        Ok("T2".into())
    );
}

#[test]
fn invalid_filters_are_400() {
    for filter in [
        "title:lower ~ 'o''reilly'",
        "tnotes_via_task:length > 0",
        "nosuchfield = 1",
        "priority >",
        "(priority > 1",
        "priority >> 1",
        "title ~ 'spec' ??",
    ] {
        assert_eq!(
            run(filter, &superuser(), USERS_RULE, false),
            Err(400),
            "{filter}"
        );
    }
}

#[test]
fn non_superuser_examples() {
    let u = USERS_RULE;
    assert_eq!(
        run("priority > 2", &request(Who::Guest), u, false),
        Ok("T1 T3".into())
    );
    assert_eq!(
        run("owner.username = 'alice'", &request(Who::Guest), u, false),
        Ok("".into())
    );
    assert_eq!(
        run("owner.username = 'alice'", &request(Who::Alice), u, false),
        Ok("T1 T4".into())
    );
    assert_eq!(
        run(
            "owner.username = 'alice'",
            &request(Who::Alice),
            None,
            false
        ),
        Err(400)
    );
    assert_eq!(
        run(
            "owner.id = 'o0k6hlh1ivc6xwf'",
            &request(Who::Alice),
            None,
            false
        ),
        Ok("T1 T4".into())
    );
    assert_eq!(
        run("owner = @request.auth.id", &request(Who::Alice), u, false),
        Err(403)
    );
    assert_eq!(
        run(
            "@collection.tnotes.task ?= id",
            &request(Who::Alice),
            u,
            false
        ),
        Err(403)
    );
    // Hidden and secret fields of related collections.
    assert_eq!(
        run("owner.secret = 's1'", &request(Who::Alice), u, false),
        Err(400)
    );
    assert_eq!(
        run("owner.tokenKey = 'x'", &request(Who::Alice), u, false),
        Err(400)
    );
    assert_eq!(
        run("owner.secret = 's1'", &superuser(), u, false),
        Ok("T1 T4".into())
    );
    // Emails are only matched where visible (alice cannot find herself by email).
    assert_eq!(
        run(
            "owner.email = 'alice@example.com'",
            &request(Who::Alice),
            u,
            false
        ),
        Ok("".into())
    );
    assert_eq!(
        run(
            "owner.email = 'bob2@example.com'",
            &request(Who::Alice),
            u,
            false
        ),
        Ok("T2 T5".into())
    );
}

#[test]
fn list_rules_per_caller() {
    let rule = "owner = @request.auth.id || watchers.id ?= @request.auth.id";
    let u = USERS_RULE;
    assert_eq!(
        run(rule, &request(Who::Alice), u, true),
        Ok("T1 T2 T4".into())
    );
    assert_eq!(
        run(rule, &request(Who::Bob), u, true),
        Ok("T1 T2 T5".into())
    );
    assert_eq!(run(rule, &request(Who::Guest), u, true), Ok("T3 T5".into()));
    let alice = request(Who::Alice);
    for (rule, expected) in [
        ("watchers ?= @request.auth.id", ""),
        ("@request.auth.id ?= watchers", ""),
        ("watchers.id ?= @request.auth.id", "T2 T4"),
        ("watchers ~ @request.auth.id", "T2 T4"),
        ("tags ?= \"b\"", ""),
        ("tags ~ \"b\"", "T1 T2 T5"),
        ("tags:each ?= \"b\"", "T1 T2 T5"),
        ("tags ~ \"a\" && tags:length = 2", "T1"),
        ("@request.auth.tokenKey = 'tkalice' && priority = 3", "T1"),
        (
            "@request.auth.id != '' && (owner = @request.auth.id || done = true)",
            "T1 T2 T4 T5",
        ),
    ] {
        assert_eq!(
            run(rule, &alice, u, true),
            Ok(expected.to_string()),
            "{rule}"
        );
    }
}

/// The in-memory evaluator must give the spec's result for every example it can evaluate.
#[test]
fn evaluator_agrees_with_spec_examples() {
    let schema = schema(USERS_RULE);
    let tasks = &schema[1];
    let req = superuser();
    let mut evaluated = 0;
    let mut failures = Vec::new();
    for (number, filter, expected) in SU_CASES {
        let expr = parse(filter).unwrap();
        if needs_database(&expr, &schema, tasks) {
            continue;
        }
        evaluated += 1;
        let mut got = Vec::new();
        for record in task_records() {
            match eval(&expr, &schema, tasks, &record, &req) {
                Ok(true) => got.push(format!("T{}", &record["id"].as_str().unwrap()[4..5])),
                Ok(false) => {}
                Err(e) => got.push(format!("error {e}")),
            }
        }
        if got.join(" ") != *expected {
            failures.push(format!(
                "#{number} {filter:?}: expected {expected:?}, got {got:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        evaluated > 60,
        "only {evaluated} examples were evaluated in memory"
    );
}

#[test]
fn create_rule_in_memory() {
    let schema = schema(USERS_RULE);
    let tasks = &schema[1];
    let rule = parse_rule(
        "@request.auth.id != \"\" && priority > 2 && owner = @request.auth.id && \
         @request.body.done:isset = false && @request.method = \"POST\" && @request.context = \"default\"",
    )
    .unwrap();
    assert!(!needs_database(&rule, &schema, tasks));
    let check = |body: serde_json::Value, context: &str| {
        let mut req = as_user(alice_record());
        req.method = "POST".into();
        req.context = context.into();
        req.body = obj(body);
        let record = req.body.clone();
        eval(&rule, &schema, tasks, &record, &req).unwrap()
    };
    assert!(check(
        serde_json::json!({"priority": 3, "owner": ALICE}),
        "default"
    ));
    assert!(!check(
        serde_json::json!({"priority": 2, "owner": ALICE}),
        "default"
    ));
    assert!(!check(
        serde_json::json!({"priority": 3, "owner": ALICE, "done": false}),
        "default"
    ));
    assert!(!check(
        serde_json::json!({"priority": 3, "owner": ALICE}),
        "batch"
    ));
    let guest = parse_rule("@request.auth.id != '' && owner = @request.auth.id").unwrap();
    let req = RequestInfo::guest(now());
    assert!(!eval(
        &guest,
        &schema,
        tasks,
        &obj(serde_json::json!({"owner": ""})),
        &req
    )
    .unwrap());
}

#[test]
fn changed_modifier_on_update() {
    let schema = schema(USERS_RULE);
    let tasks = &schema[1];
    let rule =
        parse_rule("owner = @request.auth.id && @request.body.owner:changed = false").unwrap();
    let stored = task_records()[0].clone();
    let mut req = as_user(alice_record());
    req.method = "PATCH".into();
    req.body = obj(serde_json::json!({"owner": ALICE}));
    assert!(eval(&rule, &schema, tasks, &stored, &req).unwrap());
    req.body = obj(serde_json::json!({"owner": BOB}));
    assert!(!eval(&rule, &schema, tasks, &stored, &req).unwrap());
    req.body = obj(serde_json::json!({"title": "x"}));
    assert!(eval(&rule, &schema, tasks, &stored, &req).unwrap());
    // The same decisions through SQL.
    let conn = dataset();
    for (body, expected) in [
        (serde_json::json!({"owner": ALICE}), "T1 T4"),
        (serde_json::json!({"owner": BOB}), ""),
        (serde_json::json!({"title": "x"}), "T1 T4"),
    ] {
        req.body = obj(body);
        let mut params = Params::new();
        let compiled = compile(
            &rule,
            &schema,
            tasks,
            "t",
            &req,
            &mut params,
            &CompileOptions::default(),
        )
        .unwrap();
        let ids: Vec<String> = query_ids(&conn, "tasks", &compiled, params.as_slice())
            .unwrap()
            .iter()
            .map(|id| format!("T{}", &id[4..5]))
            .collect();
        assert_eq!(ids.join(" "), expected);
    }
}

fn sorted_ids(sort: &str, req: &RequestInfo, users_rule: Option<&str>) -> Result<String, u16> {
    let conn = dataset();
    let schema = schema(users_rule);
    let items = rules::parse_sort(sort).map_err(|e| e.status())?;
    let mut params = Params::new();
    let opts = CompileOptions {
        client_filter: true,
    };
    let order = rules::compile_sort(&items, &schema, &schema[1], "t", req, &mut params, &opts)
        .map_err(|e| e.status())?;
    let sql = format!("SELECT t.id FROM tasks t ORDER BY {order}, t.id");
    let mut stmt = conn.prepare(&sql).unwrap();
    let ids: Vec<String> = stmt
        .query_map(
            rusqlite::params_from_iter(params.as_slice().iter().map(to_sql)),
            |r| r.get::<_, String>(0),
        )
        .unwrap()
        .map(|r| format!("T{}", &r.unwrap()[4..5]))
        .collect();
    Ok(ids.join(" "))
}

#[test]
fn sort_examples() {
    let su = superuser();
    assert_eq!(
        sorted_ids("-priority", &su, USERS_RULE),
        Ok("T3 T1 T4 T2 T5".into())
    );
    assert_eq!(
        sorted_ids("done,-title", &su, USERS_RULE),
        Ok("T4 T1 T3 T2 T5".into())
    );
    assert_eq!(
        sorted_ids("-owner.username,priority", &su, USERS_RULE),
        Ok("T5 T2 T4 T1 T3".into())
    );
    assert_eq!(
        sorted_ids("data.level", &su, USERS_RULE),
        Ok("T3 T5 T1 T2 T4".into())
    );
    assert_eq!(
        sorted_ids("@rowid", &su, USERS_RULE),
        Ok("T1 T2 T3 T4 T5".into())
    );
    assert!(sorted_ids("@random", &su, USERS_RULE).is_ok());
    assert_eq!(sorted_ids("nosuch", &su, USERS_RULE), Err(400));
    assert_eq!(sorted_ids("watchers.username", &su, USERS_RULE), Err(400));
    let alice = as_user(alice_record());
    assert_eq!(sorted_ids("owner.secret", &alice, USERS_RULE), Err(400));
    assert_eq!(sorted_ids("owner.username", &alice, None), Err(400));
}
