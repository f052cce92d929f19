//! Record and auth write security over real HTTP (issue #12 holes 3–7): every expected answer
//! here was measured on PocketBase v0.40.6 (`/tmp/pocketbase`, 2026-12-03).
//!
//! Guards against: manage-only fields (`verified`, `email`) set through a form or
//! `@jsonPayload` body; update modifiers (`owner+`) slipping past `:changed`/`@request.body`
//! rules; auth record ids shared by two auth collections (a token names only the id);
//! collection secret rotation that does not revoke tokens; `Authorization` headers parsed
//! more loosely than the reference.

mod common;

use common::{start, TestServer};
use serde_json::{json, Value};

const FORM: &str = "application/x-www-form-urlencoded";
const PASSWORD: &str = "1234567890";

/// Percent-encodes a form value.
fn enc(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// `users` open for sign-up, self-update and self-view (as the reference's default-ish app).
async fn open_users(server: &TestServer) {
    server
        .json(
            "PATCH",
            "/api/collections/users",
            json!({"createRule": "", "updateRule": "id = @request.auth.id",
                   "listRule": "id = @request.auth.id", "viewRule": "id = @request.auth.id"}),
            Some(&server.admin.clone()),
            200,
        )
        .await;
}

async fn users_with_email(server: &TestServer, email: &str) -> Vec<Value> {
    let filter = enc(&format!("email = \"{email}\""));
    let reply = server
        .send(
            "GET",
            &format!("/api/collections/users/records?filter={filter}"),
            None,
            Some(&server.admin),
        )
        .await;
    reply.json["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn guest_signup_cannot_set_verified_in_any_encoding() {
    let server = start().await;
    open_users(&server).await;
    const MISMATCH: &str = r#""verified":{"code":"validation_values_mismatch""#;
    // (content type, body) — each must be refused exactly like JSON `true`.
    let attempts: Vec<(&str, String)> = vec![
        ("application/json", json!({"email": "a1@x.io", "password": PASSWORD, "passwordConfirm": PASSWORD, "verified": true}).to_string()),
        ("application/json", json!({"email": "a2@x.io", "password": PASSWORD, "passwordConfirm": PASSWORD, "verified": "true"}).to_string()),
        ("application/json", json!({"email": "a3@x.io", "password": PASSWORD, "passwordConfirm": PASSWORD, "verified": 1}).to_string()),
        (FORM, format!("email=a4%40x.io&password={PASSWORD}&passwordConfirm={PASSWORD}&verified=true")),
        (FORM, format!("email=a5%40x.io&password={PASSWORD}&passwordConfirm={PASSWORD}&verified=1")),
        (FORM, format!("email=a6%40x.io&password={PASSWORD}&passwordConfirm={PASSWORD}&%40jsonPayload={}", enc(r#"{"verified":true}"#))),
        (FORM, format!("%40jsonPayload={}", enc(&json!({"email": "a7@x.io", "password": PASSWORD, "passwordConfirm": PASSWORD, "verified": true}).to_string()))),
        ("application/json", json!({"email": "a8@x.io", "password": PASSWORD, "passwordConfirm": PASSWORD, "verified": "T"}).to_string()),
        ("application/json", json!({"email": "a9@x.io", "password": PASSWORD, "passwordConfirm": PASSWORD, "verified": 2}).to_string()),
        (FORM, format!("email=a10%40x.io&password={PASSWORD}&passwordConfirm={PASSWORD}&verified=t")),
    ];
    for (index, (content_type, body)) in attempts.iter().enumerate() {
        let reply = server
            .send_with(
                "POST",
                "/api/collections/users/records",
                Some(body),
                None,
                content_type,
            )
            .await;
        assert_eq!(reply.status, 400, "attempt {index}: {}", reply.text);
        assert!(
            reply.text.contains(MISMATCH),
            "attempt {index}: {}",
            reply.text
        );
        assert!(
            users_with_email(&server, &format!("a{}@x.io", index + 1))
                .await
                .is_empty(),
            "attempt {index} created a record"
        );
    }
    // `verified=false` is allowed in both encodings, and the record is unverified.
    let reply = server
        .send_with(
            "POST",
            "/api/collections/users/records",
            Some(&format!(
                "email=b1%40x.io&password={PASSWORD}&passwordConfirm={PASSWORD}&verified=false"
            )),
            None,
            FORM,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["verified"], json!(false));
    // A malformed `@jsonPayload` is a 400 that creates nothing (reference: same).
    for payload in ["%7Bbad", "%5B1%5D"] {
        let reply = server
            .send_with(
                "POST",
                "/api/collections/users/records",
                Some(&format!(
                    "email=b2%40x.io&password={PASSWORD}&passwordConfirm={PASSWORD}&%40jsonPayload={payload}"
                )),
                None,
                FORM,
            )
            .await;
        assert_eq!(reply.status, 400, "{}", reply.text);
    }
    assert!(users_with_email(&server, "b2@x.io").await.is_empty());
}

#[tokio::test]
async fn owner_cannot_change_manage_only_fields_in_any_encoding() {
    let server = start().await;
    open_users(&server).await;
    let (id, token) = server.user("c1@x.io", PASSWORD).await;
    let path = format!("/api/collections/users/records/{id}");
    let attempts: Vec<(&str, String, &str)> = vec![
        (FORM, "verified=true".into(), "verified"),
        (FORM, "verified=1".into(), "verified"),
        (
            FORM,
            format!("%40jsonPayload={}", enc(r#"{"verified":true}"#)),
            "verified",
        ),
        (
            "application/json",
            r#"{"verified":"true"}"#.into(),
            "verified",
        ),
        (FORM, "email=other%40x.io".into(), "email"),
        (
            FORM,
            format!("%40jsonPayload={}", enc(r#"{"email":"other@x.io"}"#)),
            "email",
        ),
    ];
    for (content_type, body, field) in &attempts {
        let reply = server
            .send_with("PATCH", &path, Some(body), Some(&token), content_type)
            .await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text);
        assert!(
            reply.text.contains(&format!(
                r#""{field}":{{"code":"validation_values_mismatch""#
            )),
            "{body}: {}",
            reply.text
        );
    }
    let stored = &users_with_email(&server, "c1@x.io").await[0];
    assert_eq!(stored["verified"], json!(false));
    // Sending the current values is fine in a form too; a `tokenKey` in the body is ignored
    // (the token keeps working).
    let reply = server
        .send_with(
            "PATCH",
            &path,
            Some(
                "verified=false&email=c1%40x.io&tokenKey=abcabcabcabcabcabcabcabcabcabcabc&name=n",
            ),
            Some(&token),
            FORM,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let refresh = server
        .send(
            "POST",
            "/api/collections/users/auth-refresh",
            None,
            Some(&token),
        )
        .await;
    assert_eq!(refresh.status, 200, "{}", refresh.text);
}

/// `posts` owned by users; the updateRule forbids moving a post to another owner.
async fn posts(server: &TestServer) {
    server
        .collection(json!({
            "name": "posts",
            "listRule": "", "viewRule": "", "createRule": "",
            "updateRule": "owner = @request.auth.id && @request.body.owner:changed = false",
            "fields": [
                {"name": "title", "type": "text"},
                {"name": "owner", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1},
                {"name": "helpers", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 5}
            ]
        }))
        .await;
}

#[tokio::test]
async fn modifiers_cannot_bypass_changed_rules() {
    let server = start().await;
    posts(&server).await;
    let (alice, alice_token) = server.user("alice@x.io", PASSWORD).await;
    let (bob, _) = server.user("bob@x.io", PASSWORD).await;
    let post = server
        .json(
            "POST",
            "/api/collections/posts/records",
            json!({"title": "p", "owner": alice}),
            Some(&alice_token),
            200,
        )
        .await;
    let path = format!(
        "/api/collections/posts/records/{}",
        post["id"].as_str().unwrap_or("")
    );
    // Measured on the reference: every modifier that changes the owner is a 404.
    let refused: Vec<(&str, String)> = vec![
        ("application/json", json!({"owner+": bob}).to_string()),
        ("application/json", json!({"owner-": alice}).to_string()),
        (
            "application/json",
            json!({"owner+": [bob], "title": "moved"}).to_string(),
        ),
        (FORM, format!("owner%2B={bob}")),
        (FORM, format!("owner-={alice}")),
        (
            FORM,
            format!(
                "%40jsonPayload={}",
                enc(&json!({"owner+": bob}).to_string())
            ),
        ),
    ];
    for (content_type, body) in &refused {
        let reply = server
            .send_with("PATCH", &path, Some(body), Some(&alice_token), content_type)
            .await;
        assert_eq!(reply.status, 404, "{body}: {}", reply.text);
    }
    let stored = server.json("GET", &path, json!(null), None, 200).await;
    assert_eq!(stored["owner"], json!(alice));
    assert_eq!(stored["title"], json!("p"));
    // `+owner` on a single relation keeps the last value: no change, allowed (reference: 200).
    let reply = server
        .send(
            "PATCH",
            &path,
            Some(&json!({"+owner": bob}).to_string()),
            Some(&alice_token),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["owner"], json!(alice));
    // Modifiers on other fields still work.
    let reply = server
        .send(
            "PATCH",
            &path,
            Some(&json!({"helpers+": bob}).to_string()),
            Some(&alice_token),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["helpers"], json!([bob]));
}

#[tokio::test]
async fn rules_see_the_resolved_value_of_modifiers() {
    let server = start().await;
    server
        .collection(json!({
            "name": "mods",
            "listRule": "", "viewRule": "", "createRule": "@request.body.n < 10 && @request.body.tags:length < 2 && @request.body.n:isset = true",
            "updateRule": "(@request.body.n:isset = false || @request.body.n < 10) && (@request.body.tags:isset = false || @request.body.tags:length < 3) && (@request.body.n:changed = false || @request.query.allowchange = \"1\")",
            "fields": [
                {"name": "tags", "type": "select", "values": ["a", "b", "c"], "maxSelect": 3},
                {"name": "n", "type": "number"}
            ]
        }))
        .await;
    // Creates (reference answers): (body, status, n).
    let creates = [
        (json!({"n+": 5}), 200, Some(5)),
        (json!({"n+": 20}), 400, None),
        (json!({"n": 5, "n+": 6}), 400, None),
        (json!({"n": 1, "tags+": ["a", "b"]}), 400, None),
        (json!({"n": 1, "+tags": "a"}), 200, Some(1)),
        (json!({"n-": 5}), 200, Some(-5)),
        (json!({"tags": ["a"]}), 400, None),
    ];
    for (body, status, n) in creates {
        let reply = server
            .send(
                "POST",
                "/api/collections/mods/records",
                Some(&body.to_string()),
                None,
            )
            .await;
        assert_eq!(reply.status, status, "create {body}: {}", reply.text);
        if let Some(n) = n {
            assert_eq!(reply.json["n"], json!(n), "create {body}");
        }
    }
    let record = server
        .json(
            "POST",
            "/api/collections/mods/records",
            json!({"n": 5, "tags": ["a"]}),
            None,
            200,
        )
        .await;
    let id = record["id"].as_str().unwrap_or("").to_string();
    // Updates in sequence (reference answers): (body, allowchange, status, n, tags).
    let updates = [
        (json!({"n+": 1}), true, 200, 6, json!(["a"])),
        (json!({"n+": 10}), true, 404, 6, json!(["a"])),
        (json!({"n-": 1}), true, 200, 5, json!(["a"])),
        (json!({"n+": 0}), true, 200, 5, json!(["a"])),
        (json!({"tags+": "b"}), true, 200, 5, json!(["a", "b"])),
        (
            json!({"tags+": ["b", "c"]}),
            true,
            404,
            5,
            json!(["a", "b"]),
        ),
        (
            json!({"+tags": ["b", "c"]}),
            true,
            404,
            5,
            json!(["a", "b"]),
        ),
        (json!({"tags-": "a"}), true, 200, 5, json!(["b"])),
        (json!({"n": 5, "n+": 3}), true, 200, 8, json!(["b"])),
        (json!({"n+": 1}), false, 404, 8, json!(["b"])),
        (json!({"n+": 0}), false, 200, 8, json!(["b"])),
    ];
    for (body, allow, status, n, tags) in updates {
        let query = if allow { "?allowchange=1" } else { "" };
        let reply = server
            .send(
                "PATCH",
                &format!("/api/collections/mods/records/{id}{query}"),
                Some(&body.to_string()),
                None,
            )
            .await;
        assert_eq!(reply.status, status, "update {body}: {}", reply.text);
        let stored = server
            .json(
                "GET",
                &format!("/api/collections/mods/records/{id}"),
                json!(null),
                None,
                200,
            )
            .await;
        assert_eq!(stored["n"], json!(n), "after {body}");
        assert_eq!(stored["tags"], tags, "after {body}");
    }
}

#[tokio::test]
async fn auth_record_ids_are_unique_across_auth_collections() {
    let server = start().await;
    open_users(&server).await;
    let admin = server.admin.clone();
    server
        .collection(json!({"name": "members", "type": "auth", "createRule": "", "fields": []}))
        .await;
    server
        .collection(json!({"name": "notes", "createRule": "", "fields": [{"name": "title", "type": "text"}]}))
        .await;
    let user = server
        .json(
            "POST",
            "/api/collections/users/records",
            json!({"id": "o1aaaaaaaaaaaaa", "email": "o1@x.io", "password": PASSWORD, "passwordConfirm": PASSWORD}),
            None,
            200,
        )
        .await;
    assert_eq!(user["id"], json!("o1aaaaaaaaaaaaa"));
    const INVALID: &str = r#"{"data":{"id":{"code":"validation_invalid_auth_id","message":"Invalid or duplicated auth record id."}},"message":"Failed to create record.","status":400}"#;
    let member = |id: &str, email: &str| {
        json!({"id": id, "email": email, "password": PASSWORD, "passwordConfirm": PASSWORD})
            .to_string()
    };
    for token in [None, Some(admin.as_str())] {
        let reply = server
            .send(
                "POST",
                "/api/collections/members/records",
                Some(&member("o1aaaaaaaaaaaaa", "m1@x.io")),
                token,
            )
            .await;
        assert_eq!(reply.status, 400);
        assert_eq!(reply.text, INVALID);
    }
    // The superuser's id too.
    let superusers = server
        .json(
            "GET",
            "/api/collections/_superusers/records",
            json!(null),
            Some(&admin),
            200,
        )
        .await;
    let superuser_id = superusers["items"][0]["id"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let reply = server
        .send(
            "POST",
            "/api/collections/members/records",
            Some(&member(&superuser_id, "m1@x.io")),
            Some(&admin),
        )
        .await;
    assert_eq!(reply.text, INVALID);
    // And a user may not take a member's id (the other direction).
    server
        .json(
            "POST",
            "/api/collections/members/records",
            json!({"id": "m9aaaaaaaaaaaaa", "email": "m9@x.io", "password": PASSWORD, "passwordConfirm": PASSWORD}),
            None,
            200,
        )
        .await;
    let reply = server
        .send(
            "POST",
            "/api/collections/users/records",
            Some(&member("m9aaaaaaaaaaaaa", "u9@x.io")),
            None,
        )
        .await;
    assert_eq!(reply.text, INVALID);
    // A base collection may reuse it; the same auth collection says "not unique".
    server
        .json(
            "POST",
            "/api/collections/notes/records",
            json!({"id": "o1aaaaaaaaaaaaa", "title": "x"}),
            None,
            200,
        )
        .await;
    let reply = server
        .send(
            "POST",
            "/api/collections/users/records",
            Some(&member("o1aaaaaaaaaaaaa", "zz@x.io")),
            Some(&admin),
        )
        .await;
    assert!(
        reply.text.contains("validation_not_unique"),
        "{}",
        reply.text
    );
    // Batch: a later request colliding with an earlier one of the same batch fails the whole
    // batch (reference: request "1" fails with the same body) and commits nothing.
    server.enable_batch(50).await;
    let reply = server
        .send(
            "POST",
            "/api/batch",
            Some(
                &json!({"requests": [
                    {"method": "POST", "url": "/api/collections/members/records",
                     "body": {"id": "o3aaaaaaaaaaaaa", "email": "m3@x.io", "password": PASSWORD, "passwordConfirm": PASSWORD}},
                    {"method": "POST", "url": "/api/collections/users/records",
                     "body": {"id": "o3aaaaaaaaaaaaa", "email": "m4@x.io", "password": PASSWORD, "passwordConfirm": PASSWORD}}
                ]})
                .to_string(),
            ),
            Some(&admin),
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(
        reply
            .text
            .contains(r#""requests":{"1":{"code":"batch_request_failed""#)
            && reply.text.contains("validation_invalid_auth_id"),
        "{}",
        reply.text
    );
    let reply = server
        .send(
            "GET",
            "/api/collections/members/records/o3aaaaaaaaaaaaa",
            None,
            Some(&admin),
        )
        .await;
    assert_eq!(
        reply.status, 404,
        "the failed batch committed its first create"
    );
}

async fn refresh_status(server: &TestServer, collection: &str, token: &str) -> u16 {
    server
        .send(
            "POST",
            &format!("/api/collections/{collection}/auth-refresh"),
            None,
            Some(token),
        )
        .await
        .status
}

/// A `verification`/`passwordReset` token signed the way the server signs them now.
async fn email_token(
    server: &TestServer,
    id: &str,
    email: &str,
    kind: api::auth::token::TokenType,
) -> String {
    use api::auth::token;
    let schema = server.state.schema();
    let collection = schema.find("users").expect("users");
    let record = api::access::load_record(&server.state, collection, id)
        .await
        .expect("load")
        .expect("record");
    let exp = chrono::Utc::now().timestamp() + 600;
    let claims = match kind {
        token::TokenType::PasswordReset => {
            token::TokenClaims::password_reset(&collection.id, id, exp, email)
        }
        _ => token::TokenClaims::verification(&collection.id, id, exp, email),
    };
    token::sign(
        &claims,
        &token::signing_key(
            record["tokenKey"].as_str().unwrap_or(""),
            &collection.token_secret(kind.collection_option()),
        ),
    )
}

#[tokio::test]
async fn rotating_a_token_secret_revokes_that_types_tokens() {
    use api::auth::token::TokenType;
    let server = start().await;
    let admin = server.admin.clone();
    let (id, token) = server.user("r1@x.io", PASSWORD).await;
    let patch = |body: Value| {
        let admin = admin.clone();
        let server = &server;
        async move {
            server
                .send(
                    "PATCH",
                    "/api/collections/users",
                    Some(&body.to_string()),
                    Some(&admin),
                )
                .await
        }
    };
    // auth: a duration change keeps tokens; a new secret revokes them (reference: 200, 401).
    assert_eq!(refresh_status(&server, "users", &token).await, 200);
    let reply = patch(json!({"authToken": {"duration": 432001}})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["authToken"], json!({"duration": 432001}));
    assert_eq!(refresh_status(&server, "users", &token).await, 200);
    let reply = patch(json!({"authToken": {"secret": "abcdefghijabcdefghijabcdefghij12"}})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    // The partial option keeps the duration and never shows the secret.
    assert_eq!(reply.json["authToken"], json!({"duration": 432001}));
    assert_eq!(refresh_status(&server, "users", &token).await, 401);
    let fresh = server.login("users", "r1@x.io", PASSWORD).await;
    assert_eq!(refresh_status(&server, "users", &fresh).await, 200);

    // verification and passwordReset: old tokens fail after their secret changes, new ones
    // (signed with the new secret) work.
    for (kind, option, path, body) in [
        (
            TokenType::Verification,
            "verificationToken",
            "/api/collections/users/confirm-verification",
            json!({}),
        ),
        (
            TokenType::PasswordReset,
            "passwordResetToken",
            "/api/collections/users/confirm-password-reset",
            json!({"password": "newpass12345", "passwordConfirm": "newpass12345"}),
        ),
    ] {
        let old = email_token(&server, &id, "r1@x.io", kind).await;
        let reply =
            patch(json!({ option: {"secret": format!("{option}-rotated-0123456789abcdef")} }))
                .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let mut with_token = body.clone();
        with_token["token"] = json!(old);
        let reply = server
            .send("POST", path, Some(&with_token.to_string()), None)
            .await;
        assert_eq!(
            reply.status, 400,
            "{option}: the old token still works: {}",
            reply.text
        );
        let new = email_token(&server, &id, "r1@x.io", kind).await;
        with_token["token"] = json!(new);
        let reply = server
            .send("POST", path, Some(&with_token.to_string()), None)
            .await;
        assert_eq!(reply.status, 204, "{option}: {}", reply.text);
    }

    // emailChange (no confirm endpoint yet): the new secret is the one the server signs with.
    let reply =
        patch(json!({"emailChangeToken": {"secret": "emailchange-rotated-0123456789abc"}})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let schema = server.state.schema();
    let users = schema.find("users").expect("users");
    assert_eq!(
        users.token_secret("emailChangeToken"),
        "emailchange-rotated-0123456789abc"
    );
    assert_eq!(
        users.token_secret("authToken"),
        "abcdefghijabcdefghijabcdefghij12"
    );

    // file: a superuser file token opens a backup download until `fileToken.secret` changes.
    let backup = server
        .send(
            "POST",
            "/api/backups",
            Some(r#"{"name":"b1.zip"}"#),
            Some(&admin),
        )
        .await;
    assert_eq!(backup.status, 204, "{}", backup.text);
    let file_token = server
        .json("POST", "/api/files/token", json!({}), Some(&admin), 200)
        .await["token"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let download = format!("/api/backups/b1.zip?token={file_token}");
    assert_eq!(server.send("GET", &download, None, None).await.status, 200);
    let reply = server
        .send(
            "PATCH",
            "/api/collections/_superusers",
            Some(
                &json!({"fileToken": {"secret": "file-rotated-0123456789abcdefghij"}}).to_string(),
            ),
            Some(&admin),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_ne!(server.send("GET", &download, None, None).await.status, 200);
}

#[tokio::test]
async fn token_secret_values_are_checked_like_the_reference() {
    let server = start().await;
    let admin = server.admin.clone();
    let long = "x".repeat(256);
    let required = r#"{"data":{"authToken":{"secret":{"code":"validation_required","message":"Cannot be blank."}}},"message":"Failed to update collection.","status":400}"#;
    let range = r#"{"data":{"authToken":{"secret":{"code":"validation_length_out_of_range","message":"The length must be between 30 and 255.","params":{"max":255,"min":30}}}},"message":"Failed to update collection.","status":400}"#;
    let format = r#"{"data":{},"message":"Failed to load the submitted data due to invalid formatting.","status":400}"#;
    let cases = [
        (json!({"authToken": {"secret": "short"}}), range),
        (json!({"authToken": {"secret": long}}), range),
        (json!({"authToken": {"secret": ""}}), required),
        (json!({"authToken": {"secret": null}}), required),
        (json!({"authToken": {"secret": 123}}), format),
    ];
    let before = server
        .state
        .schema()
        .find("users")
        .expect("users")
        .token_secret("authToken");
    for (body, expected) in cases {
        let reply = server
            .send(
                "PATCH",
                "/api/collections/users",
                Some(&body.to_string()),
                Some(&admin),
            )
            .await;
        assert_eq!(reply.text, expected, "{body}");
    }
    let after = server
        .state
        .schema()
        .find("users")
        .expect("users")
        .token_secret("authToken");
    assert_eq!(before, after, "a refused secret was stored");
    // Exactly 30 and 255 characters are fine.
    for len in [30, 255] {
        let secret = "s".repeat(len);
        let reply = server
            .send(
                "PATCH",
                "/api/collections/users",
                Some(&json!({"authToken": {"secret": secret}}).to_string()),
                Some(&admin),
            )
            .await;
        assert_eq!(reply.status, 200, "{len}: {}", reply.text);
    }
}

#[tokio::test]
async fn authorization_header_is_parsed_like_the_reference() {
    let server = start().await;
    let (_, token) = server.user("h1@x.io", PASSWORD).await;
    // (header value, refresh status) measured on the reference.
    let cases = [
        (token.clone(), 200),
        (format!("Bearer {token}"), 200),
        (format!("bearer {token}"), 200),
        (format!("BEARER {token}"), 200),
        (format!("Bearer  {token}"), 401),
        (format!("Bearer\t{token}"), 401),
        (format!("Bearer {token} "), 200),
        (format!("{token}\t"), 200),
        (format!("Token {token}"), 401),
        (format!("Bearer{token}"), 401),
        (format!("Basic {token}"), 401),
        ("Bearer".to_string(), 401),
    ];
    for (header, status) in cases {
        let reply = server
            .client
            .post(format!(
                "{}/api/collections/users/auth-refresh",
                server.base
            ))
            .header("authorization", header.clone())
            .send()
            .await
            .expect("request");
        assert_eq!(
            reply.status().as_u16(),
            status,
            "{:?}",
            header.replace(&token, "TOKEN")
        );
    }
}

#[tokio::test]
async fn submitted_values_are_cast_per_field_for_records_and_rules() {
    let server = start().await;
    server
        .collection(json!({
            "name": "flags",
            "listRule": "", "viewRule": "",
            "createRule": "@request.body.flag = true && @request.body.n > 5 && @request.body.s = \"7\"",
            "fields": [
                {"name": "flag", "type": "bool"},
                {"name": "n", "type": "number"},
                {"name": "s", "type": "text"}
            ]
        }))
        .await;
    // (content type, body, status) measured on the reference.
    let cases = [
        (
            "application/json",
            r#"{"flag":"true","n":"7","s":"7"}"#,
            200,
        ),
        ("application/json", r#"{"flag":"t","n":7,"s":7}"#, 200),
        ("application/json", r#"{"flag":1,"n":7,"s":"7"}"#, 200),
        ("application/json", r#"{"flag":"T","n":7,"s":"7"}"#, 200),
        ("application/json", r#"{"flag":"yes","n":7,"s":"7"}"#, 400),
        (FORM, "flag=true&n=7&s=7", 200),
        (FORM, "flag=1&n=7&s=7", 200),
        (FORM, "flag=true&n=3&s=7", 400),
        (FORM, "flag=false&n=7&s=7", 400),
    ];
    for (content_type, body, status) in cases {
        let reply = server
            .send_with(
                "POST",
                "/api/collections/flags/records",
                Some(body),
                None,
                content_type,
            )
            .await;
        assert_eq!(reply.status, status, "{body}: {}", reply.text);
        if status == 200 {
            assert_eq!(reply.json["flag"], json!(true), "{body}");
        }
    }
    // What a bool field stores (reference): non-zero numbers and Go's ParseBool spellings.
    server
        .json(
            "PATCH",
            "/api/collections/flags",
            json!({"createRule": ""}),
            Some(&server.admin.clone()),
            200,
        )
        .await;
    let stored = [
        (json!(2), true),
        (json!(0.5), true),
        (json!(-1), true),
        (json!("TRUE"), true),
        (json!("True"), true),
        (json!(" true"), false),
        (json!("tRue"), false),
        (json!([true]), false),
        (json!("2"), false),
    ];
    for (value, expected) in stored {
        let record = server
            .json(
                "POST",
                "/api/collections/flags/records",
                json!({"flag": value}),
                None,
                200,
            )
            .await;
        assert_eq!(record["flag"], json!(expected), "{value}");
    }
}
