//! Records CRUD over real HTTP, table-driven: rule outcomes as `docs/wire/errors.md` has them
//! (list filters silently, view/update/delete 404, create 400, null rule 403), filter/sort
//! errors, paging limits, `expand`, `fields`, hidden fields, validation envelopes.
//!
//! Guards against: rule failures leaking existence (403 instead of 404), hidden fields being
//! filterable or visible, unbounded page sizes.

mod common;

use common::{scenario, start, TestServer};
use serde_json::{json, Value};

struct Fixture {
    alice: String,
    alice_token: String,
    bob_token: String,
    message: String,
    locked: String,
}

/// The seed chat app's `messages` plus a `locked` collection (all rules null) and a `notes`
/// collection (public, with a hidden field; only superusers may set hidden fields, as in
/// PocketBase).
async fn setup(server: &TestServer) -> Fixture {
    server
        .collection(json!({
            "name": "messages",
            "listRule": "@request.auth.id != \"\"",
            "viewRule": "@request.auth.id != \"\"",
            "createRule": "@request.auth.id != \"\" && author = @request.auth.id",
            "updateRule": "author = @request.auth.id",
            "deleteRule": "author = @request.auth.id",
            "fields": [
                {"name": "text", "type": "text", "required": true, "max": 2000},
                {"name": "author", "type": "relation", "required": true, "collectionId": "_pb_users_auth_", "maxSelect": 1},
                {"name": "created", "type": "autodate", "onCreate": true},
                {"name": "updated", "type": "autodate", "onCreate": true, "onUpdate": true}
            ]
        }))
        .await;
    server
        .collection(json!({"name": "locked", "fields": [{"name": "title", "type": "text"}]}))
        .await;
    server
        .collection(json!({
            "name": "notes",
            "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
            "fields": [
                {"name": "title", "type": "text"},
                {"name": "secret", "type": "text", "hidden": true},
                {"name": "rank", "type": "number"}
            ]
        }))
        .await;
    let (alice, alice_token) = server.user("alice@example.com", "alicepass123").await;
    let (_, bob_token) = server.user("bob@example.com", "bobpass1234").await;
    let message = server
        .json(
            "POST",
            "/api/collections/messages/records",
            json!({"text": "hello", "author": alice}),
            Some(&alice_token),
            200,
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let locked = server
        .json(
            "POST",
            "/api/collections/locked/records",
            json!({"title": "only admins"}),
            Some(&server.admin),
            200,
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_string();
    for (title, rank) in [("one", 1), ("two", 2), ("three", 3)] {
        server
            .json(
                "POST",
                "/api/collections/notes/records",
                json!({"title": title, "secret": "s3cret", "rank": rank}),
                Some(&server.admin),
                200,
            )
            .await;
    }
    Fixture {
        alice,
        alice_token,
        bob_token,
        message,
        locked,
    }
}

const NOT_FOUND: &str =
    r#"{"data":{},"message":"The requested resource wasn't found.","status":404}"#;
const BAD_REQUEST: &str =
    r#"{"data":{},"message":"Something went wrong while processing your request.","status":400}"#;
const SUPERUSERS_ONLY: &str =
    r#"{"data":{},"message":"Only superusers can perform this action.","status":403}"#;

#[tokio::test]
async fn rules_decide_statuses() {
    let server = start().await;
    let f = setup(&server).await;
    let admin = server.admin.clone();
    let msg = format!("/api/collections/messages/records/{}", f.message);
    let locked = format!("/api/collections/locked/records/{}", f.locked);
    server
        .run(&[
            scenario("unknown collection", "GET", "/api/collections/nope/records", 404)
                .expect(&[r#"{"data":{},"message":"Missing collection context.","status":404}"#]),
            scenario("unknown collection create", "POST", "/api/collections/nope/records", 404)
                .body(json!({}))
                .expect(&["Missing collection context."]),
            scenario("list: guest filtered silently", "GET", "/api/collections/messages/records", 200)
                .expect(&[r#""items":[]"#, r#""totalItems":0"#]),
            scenario("list: garbage token is a guest", "GET", "/api/collections/messages/records", 200)
                .auth("garbage.token.value")
                .expect(&[r#""totalItems":0"#]),
            scenario("list: user sees", "GET", "/api/collections/messages/records", 200)
                .auth(&f.bob_token)
                .expect(&[r#""totalItems":1"#, r#""text":"hello""#]),
            scenario("list: bearer prefix", "GET", "/api/collections/messages/records", 200)
                .auth(&format!("Bearer {}", f.bob_token))
                .expect(&[r#""totalItems":1"#]),
            scenario("view: guest 404", "GET", &msg, 404).expect(&[NOT_FOUND]),
            scenario("view: user 200", "GET", &msg, 200)
                .auth(&f.bob_token)
                .expect(&[r#""collectionName":"messages""#]),
            scenario("view: missing id", "GET", "/api/collections/messages/records/doesnotexist123", 404)
                .auth(&f.bob_token)
                .expect(&[NOT_FOUND]),
            scenario("update: not the author 404", "PATCH", &msg, 404)
                .auth(&f.bob_token)
                .body(json!({"text": "bob"}))
                .expect(&[NOT_FOUND]),
            scenario("update: guest 404", "PATCH", &msg, 404).body(json!({"text": "guest"})),
            scenario("delete: not the author 404", "DELETE", &msg, 404)
                .auth(&f.bob_token)
                .expect(&[NOT_FOUND]),
            scenario("create: guest 400", "POST", "/api/collections/messages/records", 400)
                .body(json!({"text": "x", "author": f.alice}))
                .expect(&[r#"{"data":{},"message":"Failed to create record.","status":400}"#]),
            scenario("create: as someone else 400", "POST", "/api/collections/messages/records", 400)
                .auth(&f.bob_token)
                .body(json!({"text": "x", "author": f.alice}))
                .expect(&[r#"{"data":{},"message":"Failed to create record.","status":400}"#]),
            scenario("locked list 403", "GET", "/api/collections/locked/records", 403)
                .auth(&f.alice_token)
                .expect(&[SUPERUSERS_ONLY]),
            scenario("locked view 403", "GET", &locked, 403).expect(&[SUPERUSERS_ONLY]),
            scenario("locked create 403", "POST", "/api/collections/locked/records", 403)
                .auth(&f.alice_token)
                .body(json!({"title": "x"}))
                .expect(&[SUPERUSERS_ONLY]),
            scenario("locked update 403", "PATCH", &locked, 403)
                .body(json!({"title": "x"}))
                .expect(&[SUPERUSERS_ONLY]),
            scenario("locked delete 403", "DELETE", &locked, 403).expect(&[SUPERUSERS_ONLY]),
            scenario("locked list superuser", "GET", "/api/collections/locked/records", 200)
                .auth(&admin)
                .expect(&[r#""title":"only admins""#]),
            scenario("superusers list by user 403", "GET", "/api/collections/_superusers/records", 403)
                .auth(&f.alice_token)
                .expect(&[SUPERUSERS_ONLY]),
            scenario("users: others are filtered", "GET", "/api/collections/users/records", 200)
                .auth(&f.bob_token)
                .expect(&[r#""totalItems":1"#, r#""email":"bob@example.com""#])
                .forbid(&["alice@example.com"]),
            scenario("update: author ok", "PATCH", &msg, 200)
                .auth(&f.alice_token)
                .body(json!({"text": "edited"}))
                .expect(&[r#""text":"edited""#]),
            scenario("update: pk change", "PATCH", &msg, 400)
                .auth(&f.alice_token)
                .body(json!({"id": "otherid00000000"}))
                .expect(&[r#""id":{"code":"validation_pk_change","message":"The record primary key cannot be changed."}"#]),
            scenario("delete: author ok", "DELETE", &msg, 204).auth(&f.alice_token),
            scenario("view: after delete", "GET", &msg, 404).auth(&f.alice_token),
            scenario("delete: unknown superuser id", "DELETE", "/api/collections/_superusers/records/x", 404)
                .auth(&admin),
        ])
        .await;
    let superusers = server
        .json(
            "GET",
            "/api/collections/_superusers/records",
            Value::Null,
            Some(&admin),
            200,
        )
        .await;
    let admin_id = superusers["items"][0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    server
        .run(&[scenario(
            "delete: the only superuser",
            "DELETE",
            &format!("/api/collections/_superusers/records/{admin_id}"),
            400,
        )
        .auth(&admin)
        .expect(&[
            r#"{"data":{},"message":"You can't delete the only existing superuser.","status":400}"#,
        ])])
        .await;
}

#[tokio::test]
async fn filters_sorts_paging() {
    let server = start().await;
    let f = setup(&server).await;
    let admin = server.admin.clone();
    let notes = "/api/collections/notes/records";
    server
        .run(&[
            scenario("filter ok", "GET", &format!("{notes}?filter=rank%3E1"), 200)
                .expect(&[r#""totalItems":2"#]),
            scenario("filter syntax", "GET", &format!("{notes}?filter=(("), 400)
                .expect(&[BAD_REQUEST]),
            scenario(
                "filter unknown field",
                "GET",
                &format!("{notes}?filter=nope%3D1"),
                400,
            )
            .expect(&[BAD_REQUEST]),
            scenario(
                "filter hidden field (guest)",
                "GET",
                &format!("{notes}?filter=secret%3D%22s3cret%22"),
                400,
            )
            .expect(&[BAD_REQUEST]),
            scenario(
                "filter hidden field (superuser)",
                "GET",
                &format!("{notes}?filter=secret%3D%22s3cret%22"),
                200,
            )
            .auth(&admin)
            .expect(&[r#""totalItems":3"#, r#""secret":"s3cret""#]),
            scenario(
                "filter @request by user",
                "GET",
                &format!("{notes}?filter=@request.auth.id%3D%22%22"),
                403,
            )
            .auth(&f.alice_token)
            .expect(&[
                r#"{"data":{},"message":"Only superusers can filter by @request.","status":403}"#,
            ]),
            scenario(
                "filter @collection by guest",
                "GET",
                &format!("{notes}?filter=@collection.notes.rank%3E0"),
                403,
            )
            .expect(&["Only superusers can filter by @collection."]),
            scenario(
                "sort desc",
                "GET",
                &format!("{notes}?sort=-rank&fields=title"),
                200,
            )
            .expect(&[r#""items":[{"title":"three"},{"title":"two"},{"title":"one"}]"#]),
            scenario("sort unknown", "GET", &format!("{notes}?sort=nope"), 400)
                .expect(&[BAD_REQUEST]),
            scenario(
                "sort hidden (guest)",
                "GET",
                &format!("{notes}?sort=secret"),
                400,
            ),
            scenario("hidden never shown to guests", "GET", notes, 200)
                .forbid(&["s3cret", r#""secret""#]),
            scenario(
                "paging",
                "GET",
                &format!("{notes}?page=2&perPage=2&sort=rank&fields=title"),
                200,
            )
            .expect(&[
                r#""items":[{"title":"three"}]"#,
                r#""page":2"#,
                r#""perPage":2"#,
                r#""totalItems":3"#,
                r#""totalPages":2"#,
            ]),
            // Filter + sort: the total is counted in the page query's scan.
            scenario(
                "filtered, sorted page with its total",
                "GET",
                &format!("{notes}?filter=rank%3E1&sort=-rank&page=2&perPage=1&fields=title"),
                200,
            )
            .expect(&[
                r#""items":[{"title":"two"}]"#,
                r#""totalItems":2"#,
                r#""totalPages":2"#,
            ]),
            scenario(
                "filtered, sorted page past the end keeps its total",
                "GET",
                &format!("{notes}?filter=rank%3E0&sort=title&page=9&perPage=1"),
                200,
            )
            .expect(&[r#""items":[]"#, r#""totalItems":3"#, r#""totalPages":3"#]),
            scenario(
                "filter matching nothing, sorted",
                "GET",
                &format!("{notes}?filter=rank%3E9&sort=-rank"),
                200,
            )
            .expect(&[r#""items":[]"#, r#""totalItems":0"#, r#""totalPages":0"#]),
            scenario(
                "perPage clamped to 1000",
                "GET",
                &format!("{notes}?perPage=5000"),
                200,
            )
            .expect(&[r#""perPage":1000"#]),
            scenario(
                "perPage 0 is the default",
                "GET",
                &format!("{notes}?perPage=0"),
                200,
            )
            .expect(&[r#""perPage":30"#]),
            scenario("page 0 is page 1", "GET", &format!("{notes}?page=0"), 200)
                .expect(&[r#""page":1"#]),
            scenario(
                "page not a number",
                "GET",
                &format!("{notes}?page=abc"),
                400,
            )
            .expect(&[BAD_REQUEST]),
            scenario(
                "perPage not a number",
                "GET",
                &format!("{notes}?perPage=x"),
                400,
            ),
            scenario("skipTotal", "GET", &format!("{notes}?skipTotal=true"), 200)
                .expect(&[r#""totalItems":-1,"totalPages":-1"#]),
            scenario(
                "skipTotal bad",
                "GET",
                &format!("{notes}?skipTotal=maybe"),
                400,
            ),
            scenario(
                "fields excerpt",
                "GET",
                &format!("{notes}?sort=rank&perPage=1&fields=title:excerpt(2,true)"),
                200,
            )
            .expect(&[r#""items":[{"title":"on..."}]"#]),
        ])
        .await;
}

#[tokio::test]
async fn create_validation_expand_fields() {
    let server = start().await;
    let f = setup(&server).await;
    let messages = "/api/collections/messages/records";
    server
        .run(&[
            scenario("create: text required", "POST", messages, 400)
                .auth(&f.alice_token)
                .body(json!({"author": f.alice}))
                .expect(&[r#"{"data":{"text":{"code":"validation_required","message":"Cannot be blank."}},"message":"Failed to create record.","status":400}"#]),
            scenario("create: text too long", "POST", messages, 400)
                .auth(&f.alice_token)
                .body(json!({"author": f.alice, "text": "x".repeat(2001)}))
                .expect(&[r#""text":{"code":"validation_max_text_constraint","message":"Must be no more than 2000 character(s).","params":{"max":2000}}"#]),
            scenario("create: missing relation", "POST", messages, 400)
                .auth(&f.alice_token)
                .body(json!({"author": "nosuchuser0000", "text": "x"}))
                .expect(&[r#""author":{"code":"validation_missing_rel_records""#]),
            scenario("create: bad json", "POST", messages, 400)
                .auth(&f.alice_token)
                .raw("{\"text\":")
                .expect(&[BAD_REQUEST]),
            scenario("create: json array body", "POST", messages, 400)
                .auth(&f.alice_token)
                .raw("[1,2]")
                .expect(&[BAD_REQUEST]),
            scenario("create: empty body tolerated", "POST", "/api/collections/notes/records", 200)
                .expect(&[r#""title":"""#]),
            scenario("create: expand + fields", "POST", &format!("{messages}?expand=author&fields=text,expand.author.id"), 200)
                .auth(&f.alice_token)
                .body(json!({"author": f.alice, "text": "with expand"}))
                .expect(&[&format!(r#""expand":{{"author":{{"id":"{}"}}}}"#, f.alice), r#""text":"with expand""#])
                .forbid(&[r#""collectionName""#]),
            scenario("list: expand", "GET", &format!("{messages}?expand=author&sort=-created"), 200)
                .auth(&f.alice_token)
                .expect(&[r#""expand":{"author":{"#, r#""collectionName":"users""#]),
            scenario("list: expand not viewable is empty", "GET", &format!("{messages}?expand=author"), 200)
                .auth(&f.bob_token)
                .expect(&[r#""expand":{}"#])
                .forbid(&["alice@example.com", r#""collectionName":"users""#]),
            scenario("list: unknown expand ignored", "GET", &format!("{messages}?expand=nope"), 200)
                .auth(&f.bob_token),
            scenario("users: sign-up hides email", "POST", "/api/collections/users/records", 200)
                .body(json!({"email": "carol@example.com", "password": "carolpass123", "passwordConfirm": "carolpass123"}))
                .forbid(&["carol@example.com", "password", "tokenKey"]),
            scenario("users: password mismatch", "POST", "/api/collections/users/records", 400)
                .body(json!({"email": "dave@example.com", "password": "davepass123", "passwordConfirm": "other"}))
                .expect(&[r#"{"data":{"passwordConfirm":{"code":"validation_values_mismatch","message":"Values don't match."}},"message":"Failed to create record.","status":400}"#]),
            scenario("users: stage-1 errors only", "POST", "/api/collections/users/records", 400)
                .body(json!({}))
                .expect(&[r#""password":{"code":"validation_required""#, r#""passwordConfirm":{"code":"validation_required""#])
                .forbid(&[r#""email""#]),
            scenario("users: duplicate email", "POST", "/api/collections/users/records", 400)
                .body(json!({"email": "alice@example.com", "password": "alicepass123", "passwordConfirm": "alicepass123"}))
                .expect(&[r#""email":{"code":"validation_not_unique","message":"Value must be unique."}"#]),
        ])
        .await;
    let list: Value = server
        .json("GET", messages, Value::Null, Some(&f.alice_token), 200)
        .await;
    assert_eq!(list["totalItems"], 2);
}

#[tokio::test]
async fn password_change_invalidates_old_tokens() {
    let server = start().await;
    let (alice, token) = server.user("alice@example.com", "alicepass123").await;
    let url = format!("/api/collections/users/records/{alice}");
    server
        .run(&[
            scenario("change: oldPassword required", "PATCH", &url, 400)
                .auth(&token)
                .body(json!({"password": "newalicepass1", "passwordConfirm": "newalicepass1"}))
                .expect(&[r#""oldPassword":{"code":"validation_required","message":"Cannot be blank."}"#, r#""message":"Failed to update record.""#]),
            scenario("change: oldPassword wrong", "PATCH", &url, 400)
                .auth(&token)
                .body(json!({"oldPassword": "nope12345", "password": "newalicepass1", "passwordConfirm": "newalicepass1"}))
                .expect(&[r#""oldPassword":{"code":"validation_invalid_old_password","message":"Missing or invalid old password."}"#]),
            scenario("change: email by non-manager", "PATCH", &url, 400)
                .auth(&token)
                .body(json!({"email": "other@example.com"}))
                .expect(&[r#""email":{"code":"validation_values_mismatch""#]),
            scenario("token still valid", "POST", "/api/collections/users/auth-refresh", 200).auth(&token),
            scenario("change: ok", "PATCH", &url, 200)
                .auth(&token)
                .body(json!({"oldPassword": "alicepass123", "password": "newalicepass1", "passwordConfirm": "newalicepass1"})),
            scenario("old token dead: refresh", "POST", "/api/collections/users/auth-refresh", 401)
                .auth(&token)
                .expect(&["The request requires valid record authorization token."]),
            scenario("old token dead: view is a guest 404", "GET", &url, 404).auth(&token),
            scenario("old password fails", "POST", "/api/collections/users/auth-with-password", 400)
                .body(json!({"identity": "alice@example.com", "password": "alicepass123"}))
                .expect(&[r#"{"data":{},"message":"Failed to authenticate.","status":400}"#]),
        ])
        .await;
    let new_token = server
        .login("users", "alice@example.com", "newalicepass1")
        .await;
    server
        .json("GET", &url, Value::Null, Some(&new_token), 200)
        .await;
}
