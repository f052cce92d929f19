//! Injection and abuse inputs: quotes, backslashes, SQL comment and statement tokens,
//! unicode, NUL bytes, very long and deeply nested input. Each must either be a valid
//! literal that reaches SQLite only as a bound parameter (and matches literally), or a clean
//! 400 error — never a panic and never SQL text built from user input.

mod common;

use common::*;
use rules::{compile, parse, CompileOptions, Params};

fn run(filter: &str) -> Result<(String, Vec<String>), u16> {
    let conn = dataset();
    let schema = schema(Some(""));
    let expr = parse(filter).map_err(|e| e.status())?;
    let mut params = Params::new();
    let compiled = compile(
        &expr,
        &schema,
        &schema[1],
        "t",
        &superuser(),
        &mut params,
        &CompileOptions {
            client_filter: true,
        },
    )
    .map_err(|e| e.status())?;
    let ids =
        query_ids(&conn, "tasks", &compiled, params.as_slice()).expect("compiled SQL must run");
    Ok((compiled.where_sql, ids))
}

#[test]
fn hostile_literals_are_parameters() {
    for payload in [
        "'; DROP TABLE tasks; --",
        "\\\" OR 1=1 --",
        "x' OR '1'='1",
        "/* comment */",
        "-- trailing",
        "a\0b",
        "ünïcödé ✓ 🚀",
        "\\\\x",
        ") OR (1=1",
        "%' OR title LIKE '%",
    ] {
        let quoted = format!("\"{}\"", payload.replace('"', "\\\""));
        for op in ["=", "!=", "~", "!~", ">", "?="] {
            let filter = format!("title {op} {quoted}");
            let (sql, _ids) = run(&filter).unwrap_or_else(|s| panic!("{filter}: {s}"));
            for fragment in ["DROP", "OR 1=1", "/*", "--", "🚀", "'1'='1"] {
                assert!(!sql.contains(fragment), "{filter} -> {sql}");
            }
        }
    }
    // The table survived and literal matching is exact.
    assert_eq!(
        run("title = \"'; DROP TABLE tasks; --\"").unwrap().1.len(),
        0
    );
    assert_eq!(run("id != ''").unwrap().1.len(), 5);
    assert_eq!(run("title = \"O'Reilly book\"").unwrap().1.len(), 1);
}

#[test]
fn hostile_identifiers_are_errors() {
    for filter in [
        "title; DROP TABLE tasks = 1",
        "\"title\" = 1 OR 1=1",
        "title = 1 -- comment",
        "title = 1 /* x */",
        "title`x` = 1",
        "tasks.id = 1",
        "sqlite_master.name = 1",
        "data.\"x\" = 1",
        "title = 1; SELECT 1",
        "title\0 = 1",
        "@collection.sqlite_master.name ?= 1",
        "title =",
        "'unterminated",
        "ünïcödé = 1",
    ] {
        assert_eq!(run(filter).err(), Some(400), "{filter}");
    }
}

#[test]
fn long_and_nested_inputs_are_clean_errors() {
    let long_literal = format!("title = '{}'", "x".repeat(4000));
    assert_eq!(run(&long_literal).err(), Some(400));
    let ok_literal = format!("title = '{}'", "x".repeat(3000));
    assert!(run(&ok_literal).is_ok());
    let deep = format!("{}title = 'a'{}", "(".repeat(2000), ")".repeat(2000));
    assert_eq!(run(&deep).err(), Some(400));
    let nested_ok = format!("{}title = 'a'{}", "(".repeat(60), ")".repeat(60));
    assert!(run(&nested_ok).is_ok());
    let many = vec!["priority = 1"; 201].join(" || ");
    assert_eq!(run(&many).err(), Some(400));
    let deep_path =
        "owner.tasks_via_owner.owner.tasks_via_owner.owner.tasks_via_owner.owner.username = 'x'";
    assert_eq!(run(deep_path).err(), Some(400));
    let depth_six = "owner.tasks_via_owner.owner.tasks_via_owner.owner.tasks_via_owner.title = 'x'";
    assert!(run(depth_six).is_ok());
    let nested_fn = "strftime('%Y', strftime('%Y', strftime('%Y', due))) = '1'";
    assert_eq!(run(nested_fn).err(), Some(400));
    assert_eq!(run(&"(".repeat(100_000)).err(), Some(400));
    // A literal cannot end with a backslash: the closing quote would be escaped.
    assert_eq!(run("title = \"a\\\"").err(), Some(400));
}
