//! Collections API over real HTTP: list/view/create/update/delete/truncate with their
//! auth levels and exact error bodies (`docs/wire/http.md`), scaffolds, and import (one commit,
//! deleteMissing semantics, validation against the post-import set).
//!
//! Guards against: non-superusers reaching collection admin, import half-applied, import
//! dropping fields when `deleteMissing` is false.

mod common;

use common::{scenario, start};
use serde_json::{json, Value};

#[tokio::test]
async fn collections_crud_and_errors() {
    let server = start().await;
    let admin = server.admin.clone();
    let (_, user) = server.user("u@example.com", "userpass123").await;
    let posts = server
        .collection(
            json!({"name": "posts", "listRule": "", "fields": [{"name": "title", "type": "text"}]}),
        )
        .await;
    let posts_id = posts["id"].as_str().expect("id").to_string();
    server
        .collection(json!({"name": "comments", "fields": [
            {"name": "post", "type": "relation", "collectionId": posts_id, "maxSelect": 1}]}))
        .await;
    server
        .run(&[
            scenario("list: guest", "GET", "/api/collections", 401)
                .expect(&[r#"{"data":{},"message":"The request requires valid record authorization token.","status":401}"#]),
            scenario("list: user", "GET", "/api/collections", 403)
                .auth(&user)
                .expect(&[r#"{"data":{},"message":"The authorized record is not allowed to perform this action.","status":403}"#]),
            scenario("list: superuser", "GET", "/api/collections", 200)
                .auth(&admin)
                .expect(&[r#""name":"_superusers""#, r#""name":"users""#, r#""name":"posts""#, r#""page":1,"perPage":30"#]),
            scenario("list: filter+fields", "GET", "/api/collections?filter=(type%3D%22auth%22)&fields=id,name", 200)
                .auth(&admin)
                .expect(&[r#"{"id":"_pb_users_auth_","name":"users"}"#, r#""totalItems":2"#])
                .forbid(&[r#""name":"posts""#]),
            scenario("list: bad sort field", "GET", "/api/collections?sort=nope", 400)
                .auth(&admin)
                .expect(&["Something went wrong while processing your request."]),
            scenario("list: skipTotal", "GET", "/api/collections?skipTotal=1&perPage=1", 200)
                .auth(&admin)
                .expect(&[r#""totalItems":-1"#, r#""totalPages":-1"#, r#""perPage":1"#]),
            scenario("view: by name", "GET", "/api/collections/posts", 200)
                .auth(&admin)
                .expect(&[r#""name":"posts""#, r#""type":"base""#]),
            scenario("view: by id", "GET", &format!("/api/collections/{posts_id}"), 200)
                .auth(&admin)
                .expect(&[r#""name":"posts""#]),
            scenario("view: unknown", "GET", "/api/collections/nope", 404)
                .auth(&admin)
                .expect(&[r#"{"data":{},"message":"The requested resource wasn't found.","status":404}"#]),
            scenario("view: user", "GET", "/api/collections/posts", 403).auth(&user),
            scenario("create: minimal", "POST", "/api/collections", 200)
                .auth(&admin)
                .body(json!({"name": "tmpc"}))
                .expect(&[r#""name":"tmpc""#, r#""listRule":null"#, r#""name":"id""#]),
            scenario("create: duplicate name", "POST", "/api/collections", 400)
                .auth(&admin)
                .body(json!({"name": "POSTS"}))
                .expect(&[r#""name":{"code":"validation_collection_name_exists","message":"Collection name must be unique (case insensitive)."}"#, r#""message":"Failed to create collection.""#]),
            scenario("create: bad name", "POST", "/api/collections", 400)
                .auth(&admin)
                .body(json!({"name": "bad name!"}))
                .expect(&[r#""name":{"code":"validation_match_invalid","message":"Must be in a valid format."}"#]),
            scenario("create: no name", "POST", "/api/collections", 400)
                .auth(&admin)
                .body(json!({}))
                .expect(&[r#""name":{"code":"validation_required","message":"Cannot be blank."}"#]),
            scenario("create: bad type", "POST", "/api/collections", 400)
                .auth(&admin)
                .body(json!({"name": "x1", "type": "nope"}))
                .expect(&[r#""type":{"code":"validation_in_invalid","message":"Must be a valid value."}"#]),
            scenario("create: bad rule", "POST", "/api/collections", 400)
                .auth(&admin)
                .body(json!({"name": "x2", "listRule": "(("}))
                .expect(&[r#""listRule":{"code":"validation_invalid_rule""#]),
            scenario("create: unknown field type", "POST", "/api/collections", 400)
                .auth(&admin)
                .body(json!({"name": "x3", "fields": [{"name": "a", "type": "nope"}]}))
                .expect(&[r#"{"data":{},"message":"Failed to load the submitted data due to invalid formatting.","status":400}"#]),
            scenario("create: bad json", "POST", "/api/collections", 400)
                .auth(&admin)
                .raw("{nope")
                .expect(&[r#"{"data":{},"message":"Something went wrong while processing your request.","status":400}"#]),
            scenario("create: guest", "POST", "/api/collections", 401).body(json!({"name": "x4"})),
            scenario("update: rules", "PATCH", "/api/collections/posts", 200)
                .auth(&admin)
                .body(json!({"viewRule": ""}))
                .expect(&[r#""viewRule":"""#, r#""listRule":"""#, r#""name":"title""#]),
            scenario("update: type change", "PATCH", "/api/collections/posts", 400)
                .auth(&admin)
                .body(json!({"type": "auth"}))
                .expect(&["validation_collection_type_change", r#""message":"Failed to update collection.""#]),
            scenario("update: identity field without unique index", "PATCH", "/api/collections/users", 400)
                .auth(&admin)
                .body(json!({"fields": [{"name": "username", "type": "text"}], "passwordAuth": {"enabled": true, "identityFields": ["email", "username"]}}))
                .expect(&[r#""passwordAuth":{"identityFields":{"code":"validation_missing_unique_constraint","message":"The field username doesn't have a UNIQUE constraint.","params":{"fieldName":"username"}}}"#]),
            scenario("update: unknown", "PATCH", "/api/collections/nope", 404).auth(&admin).body(json!({})),
            scenario("delete: referenced", "DELETE", "/api/collections/posts", 400)
                .auth(&admin)
                .expect(&[r#""message":"Failed to delete collection probably due to existing reference in comments.""#]),
            scenario("delete: system", "DELETE", "/api/collections/_superusers", 400).auth(&admin),
            scenario("delete: user", "DELETE", "/api/collections/tmpc", 403).auth(&user),
            scenario("delete: ok", "DELETE", "/api/collections/tmpc", 204).auth(&admin),
            scenario("delete: gone", "DELETE", "/api/collections/tmpc", 404).auth(&admin),
            scenario("truncate: user", "DELETE", "/api/collections/posts/truncate", 403).auth(&user),
        ])
        .await;
    for title in ["a", "b"] {
        server
            .json(
                "POST",
                "/api/collections/posts/records",
                json!({"title": title}),
                Some(&admin),
                200,
            )
            .await;
    }
    server
        .run(&[
            scenario(
                "truncate: ok",
                "DELETE",
                "/api/collections/posts/truncate",
                204,
            )
            .auth(&admin),
            scenario(
                "truncate: empty after",
                "GET",
                "/api/collections/posts/records",
                200,
            )
            .expect(&[r#""totalItems":0"#]),
        ])
        .await;
    // A collection update may drop fields: the PATCH list replaces the whole field list.
    let updated = server
        .json(
            "PATCH",
            "/api/collections/posts",
            json!({"fields": [{"name": "body", "type": "text"}]}),
            Some(&admin),
            200,
        )
        .await;
    let names: Vec<&str> = updated["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(names, ["id", "body"]);
}

#[tokio::test]
async fn scaffolds() {
    let server = start().await;
    let (_, user) = server.user("u@example.com", "userpass123").await;
    server
        .run(&[
            scenario(
                "scaffolds: guest",
                "GET",
                "/api/collections/meta/scaffolds",
                401,
            ),
            scenario(
                "scaffolds: user",
                "GET",
                "/api/collections/meta/scaffolds",
                403,
            )
            .auth(&user),
        ])
        .await;
    let reply = server
        .json(
            "GET",
            "/api/collections/meta/scaffolds",
            Value::Null,
            Some(&server.admin),
            200,
        )
        .await;
    let keys: Vec<&String> = reply.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["base", "auth", "view"]);
    for kind in ["base", "auth", "view"] {
        let scaffold = &reply[kind];
        assert_eq!(scaffold["id"], "", "{kind}");
        assert_eq!(scaffold["name"], "", "{kind}");
        assert_eq!(scaffold["type"], kind);
        assert_eq!(scaffold["created"], "");
        assert_eq!(scaffold["listRule"], Value::Null);
        assert_eq!(scaffold["system"], false);
    }
    assert_eq!(reply["base"]["fields"][0]["name"], "id");
    assert_eq!(reply["view"]["fields"], json!([]));
    assert_eq!(reply["view"]["viewQuery"], "");
    let auth_fields: Vec<&str> = reply["auth"]["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(
        auth_fields,
        [
            "id",
            "password",
            "tokenKey",
            "email",
            "emailVisibility",
            "verified"
        ]
    );
    assert_eq!(reply["auth"]["authRule"], "");
    assert_eq!(
        reply["auth"]["passwordAuth"]["identityFields"],
        json!(["email"])
    );
    assert!(
        reply["auth"]["authToken"].get("secret").is_none(),
        "secrets never leave"
    );
    assert_eq!(reply["auth"]["indexes"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn import_collections() {
    let server = start().await;
    let admin = server.admin.clone();
    let (_, user) = server.user("u@example.com", "userpass123").await;
    server
        .collection(json!({"name": "old", "fields": [{"name": "a", "type": "text"}]}))
        .await;
    server
        .collection(json!({"name": "keep", "fields": [{"name": "x", "type": "text"}, {"name": "y", "type": "number"}]}))
        .await;
    server
        .json(
            "POST",
            "/api/collections/keep/records",
            json!({"x": "hello", "y": 3}),
            Some(&admin),
            200,
        )
        .await;
    let url = "/api/collections/import";
    let seq_before = server.state.engine.last_seq();
    server
        .run(&[
            scenario("import: guest", "PUT", url, 401).body(json!({"collections": []})),
            scenario("import: user", "PUT", url, 403).auth(&user).body(json!({"collections": []})),
            scenario("import: empty", "PUT", url, 400)
                .auth(&admin)
                .body(json!({"collections": []}))
                .expect(&[r#"{"data":{"collections":{"code":"validation_required","message":"Cannot be blank."}},"message":"An error occurred while validating the submitted data.","status":400}"#]),
            scenario("import: missing", "PUT", url, 400)
                .auth(&admin)
                .body(json!({}))
                .expect(&["validation_required"]),
            scenario("import: bad json", "PUT", url, 400).auth(&admin).raw("{x"),
            scenario("import: invalid definition", "PUT", url, 400)
                .auth(&admin)
                .body(json!({"collections": [
                    {"name": "fine1", "fields": [{"name": "t", "type": "text"}]},
                    {"name": "bad name!"}
                ]}))
                .expect(&[
                    r#""collections":{"code":"validation_collections_import_failure","message":"Failed to import the collections configuration. Raw error: "#,
                    r#""message":"Failed to import collections.","status":400"#,
                ]),
            scenario("import: dangling relation", "PUT", url, 400)
                .auth(&admin)
                .body(json!({"collections": [
                    {"name": "fine2", "fields": [{"name": "r", "type": "relation", "collectionId": "nowhere", "maxSelect": 1}]}
                ]}))
                .expect(&["validation_collections_import_failure"]),
        ])
        .await;
    assert_eq!(
        server.state.engine.last_seq(),
        seq_before,
        "failed imports commit nothing"
    );

    // deleteMissing false: create two related collections, update `keep` (its omitted field
    // `y` is kept), leave `old` alone. One commit.
    server
        .run(&[scenario("import: ok", "PUT", url, 204).auth(&admin).body(json!({
            "collections": [
                {"name": "authors", "fields": [{"name": "name", "type": "text"}]},
                {"name": "books", "listRule": "", "fields": [
                    {"name": "title", "type": "text"},
                    {"name": "author", "type": "relation", "collectionId": "authors", "maxSelect": 1}]},
                {"name": "keep", "listRule": "", "fields": [{"name": "x", "type": "text"}, {"name": "z", "type": "bool"}]}
            ],
            "deleteMissing": false
        }))])
        .await;
    assert_eq!(server.state.engine.last_seq(), seq_before + 1, "one commit");
    let keep = server
        .json(
            "GET",
            "/api/collections/keep",
            Value::Null,
            Some(&admin),
            200,
        )
        .await;
    let names: Vec<&str> = keep["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(names, ["id", "x", "z", "y"]);
    assert_eq!(keep["listRule"], "");
    let list = server
        .json(
            "GET",
            "/api/collections/keep/records",
            Value::Null,
            None,
            200,
        )
        .await;
    assert_eq!(list["items"][0]["x"], "hello");
    assert_eq!(list["items"][0]["y"], 3);
    server
        .json(
            "GET",
            "/api/collections/old",
            Value::Null,
            Some(&admin),
            200,
        )
        .await;

    // deleteMissing true: `old`, `authors`, `books` go (system collections stay although not
    // listed; `users` is not a system collection, so it is listed), `keep` loses `y` and `z`.
    server
        .run(&[scenario("import: delete missing", "PUT", url, 204).auth(&admin).body(json!({
            "collections": [{"name": "users"}, {"name": "keep", "fields": [{"name": "x", "type": "text"}]}],
            "deleteMissing": true
        }))])
        .await;
    let all = server
        .json(
            "GET",
            "/api/collections?fields=name",
            Value::Null,
            Some(&admin),
            200,
        )
        .await;
    let names: Vec<&str> = all["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(
        names.contains(&"_superusers") && names.contains(&"users"),
        "{names:?}"
    );
    assert!(names.contains(&"keep"));
    assert!(
        !names.contains(&"old") && !names.contains(&"books"),
        "{names:?}"
    );
    let keep = server
        .json(
            "GET",
            "/api/collections/keep",
            Value::Null,
            Some(&admin),
            200,
        )
        .await;
    assert_eq!(keep["fields"].as_array().map(Vec::len), Some(2));
}

/// A taken name (whose generated id is taken too) or a taken id answers the reference's 400,
/// never a 500, and writes nothing.
#[tokio::test]
async fn a_taken_name_or_id_answers_400_with_the_reference_codes() {
    let server = common::start().await;
    let body = json!({"name": "dupe", "type": "base", "fields": [{"name": "t", "type": "text"}]});
    let created = server
        .json(
            "POST",
            "/api/collections",
            body.clone(),
            Some(&server.admin),
            200,
        )
        .await;
    let before = server.state.engine.last_seq();
    let again = server
        .json("POST", "/api/collections", body, Some(&server.admin), 400)
        .await;
    assert_eq!(
        again["data"]["name"]["code"],
        json!("validation_collection_name_exists"),
        "{again}"
    );
    let same_id = server
        .json(
            "POST",
            "/api/collections",
            json!({"id": created["id"], "name": "other", "type": "base"}),
            Some(&server.admin),
            400,
        )
        .await;
    assert_eq!(
        same_id["data"]["id"]["code"],
        json!("validation_invalid_or_existing_id"),
        "{same_id}"
    );
    assert_eq!(server.state.engine.last_seq(), before);
}
