//! Fuzz target: arbitrary text through parse → compile (as a superuser rule and as a
//! guest client filter) → in-memory eval, and the same text as a sort. Nothing may panic;
//! a printed AST must parse back to the same AST.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rules::{
    compile, eval, parse, parse_sort, CollectionInfo, CollectionKind, CompileOptions, FieldInfo,
    FieldKind, Params, RequestInfo,
};

fn collection() -> CollectionInfo {
    CollectionInfo {
        id: "pbc_tasks".into(),
        name: "tasks".into(),
        kind: CollectionKind::Base,
        fields: vec![
            FieldInfo::new("id", FieldKind::Text),
            FieldInfo::new("title", FieldKind::Text),
            FieldInfo::new("n", FieldKind::Number),
            FieldInfo::new("tags", FieldKind::Select { multi: true }),
            FieldInfo::new("data", FieldKind::Json),
            FieldInfo::new(
                "owner",
                FieldKind::Relation { collection_id: "pbc_tasks".into(), multi: false },
            ),
            FieldInfo::new(
                "many",
                FieldKind::Relation { collection_id: "pbc_tasks".into(), multi: true },
            ),
        ],
        list_rule: Some("n > 1".into()),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let tasks = collection();
    let schema = vec![tasks.clone()];
    let _ = parse_sort(text);
    let Ok(expr) = parse(text) else {
        return;
    };
    let printed = expr.to_string();
    if let Ok(again) = parse(&printed) {
        assert_eq!(again, expr, "print/parse roundtrip");
    }
    let now = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
    let mut superuser = RequestInfo::guest(now);
    superuser.is_superuser = true;
    let guest = RequestInfo::guest(now);
    for (req, client_filter) in [(&superuser, false), (&guest, true)] {
        let mut params = Params::new();
        let _ = compile(&expr, &schema, &tasks, "t", req, &mut params, &CompileOptions { client_filter });
    }
    let record = serde_json::json!({"id": "x", "title": "a", "n": 2, "tags": ["a"], "data": {"k": 1}});
    if let Some(record) = record.as_object() {
        let _ = eval(&expr, &schema, &tasks, record, &guest);
    }
});
