//! Micro-benchmark: parse+compile of a typical rule and in-memory evaluation per record.
//! Plain `Instant` loop (no criterion); run with `cargo bench -p pocketlog-rules`.

use std::hint::black_box;
use std::time::Instant;

use rules::{
    compile, eval, parse_rule, AuthInfo, CollectionInfo, CollectionKind, CompileOptions, FieldInfo,
    FieldKind, Params, RequestInfo,
};
use serde_json::json;

const RULE: &str = "@request.auth.id != \"\" && (owner = @request.auth.id || public = true)";

fn main() {
    let collection = CollectionInfo {
        id: "pbc_posts".into(),
        name: "posts".into(),
        kind: CollectionKind::Base,
        fields: vec![
            FieldInfo::new("id", FieldKind::Text),
            FieldInfo::new("owner", FieldKind::Text),
            FieldInfo::new("public", FieldKind::Bool),
        ],
        list_rule: Some(String::new()),
    };
    let schema = vec![collection.clone()];
    let mut req = RequestInfo::guest(chrono::Utc::now());
    req.auth = Some(AuthInfo {
        collection_id: "_pb_users_auth_".into(),
        collection_name: "users".into(),
        record: json!({"id": "o0k6hlh1ivc6xwf"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    });
    let opts = CompileOptions::default();

    let iterations = 200_000;
    let start = Instant::now();
    for _ in 0..iterations {
        let expr = parse_rule(black_box(RULE)).expect("rule parses");
        let mut params = Params::new();
        let sql = compile(&expr, &schema, &collection, "t", &req, &mut params, &opts)
            .expect("rule compiles");
        black_box(sql);
    }
    let per = start.elapsed().as_nanos() / iterations;
    println!("parse+compile: {per} ns/op");

    let expr = parse_rule(RULE).expect("rule parses");
    let records: Vec<_> = (0..1000)
        .map(|i| {
            let owner = if i % 3 == 0 {
                "o0k6hlh1ivc6xwf"
            } else {
                "someoneelse1234"
            };
            json!({"id": format!("rec{i:012}"), "owner": owner, "public": i % 2 == 0})
                .as_object()
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    let rounds = 1000;
    let mut matched = 0usize;
    let start = Instant::now();
    for _ in 0..rounds {
        for record in &records {
            if eval(&expr, &schema, &collection, black_box(record), &req).unwrap_or(false) {
                matched += 1;
            }
        }
    }
    let per = start.elapsed().as_nanos() / (rounds * records.len() as u128);
    println!("eval: {per} ns/record ({matched} matches)");
}
