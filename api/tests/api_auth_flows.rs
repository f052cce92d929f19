//! Auth flows over real HTTP: request/confirm verification, request/confirm password reset,
//! impersonation and file tokens — statuses, exact messages and validation codes (see
//! `docs/wire/`), plus the effects (verified flag, password change, tokenKey rotation).
//!
//! Emailed tokens are built in the test with the same functions the server uses
//! (`TokenClaims::verification/password_reset`, key = record tokenKey + collection secret);
//! there is no test-only hook in the server.
//!
//! Guards against: reusable reset tokens, old sessions surviving a reset, tokens of one
//! collection confirming in another, impersonation tokens being refreshed into normal ones.

mod common;

use api::auth::token::{self, TokenClaims, TokenType};
use api::model::USERS_ID;
use common::{scenario, start, TestServer};
use serde_json::{json, Value};
use std::sync::Arc;

/// Signs an emailed token for a `users` record the way the server does.
async fn email_token(server: &TestServer, id: &str, kind: TokenType, exp_delta: i64) -> String {
    let schema = server.state.schema();
    let users = Arc::clone(schema.find(USERS_ID).expect("users"));
    let record = api::access::load_record(&server.state, &users, id)
        .await
        .expect("read")
        .expect("record");
    let token_key = record["tokenKey"].as_str().expect("tokenKey");
    let email = record["email"].as_str().expect("email");
    let exp = chrono::Utc::now().timestamp() + exp_delta;
    let claims = match kind {
        TokenType::PasswordReset => TokenClaims::password_reset(USERS_ID, id, exp, email),
        _ => TokenClaims::verification(USERS_ID, id, exp, email),
    };
    let secret = users.token_secret(kind.collection_option());
    token::sign(&claims, &token::signing_key(token_key, &secret))
}

async fn view_user(server: &TestServer, id: &str) -> Value {
    server
        .json(
            "GET",
            &format!("/api/collections/users/records/{id}"),
            Value::Null,
            Some(&server.admin),
            200,
        )
        .await
}

const INVALID_DATA: &str =
    r#""message":"An error occurred while validating the submitted data.","status":400"#;

#[tokio::test]
async fn verification_flow() {
    let server = start().await;
    server
        .collection(json!({"name": "posts", "fields": [{"name": "title", "type": "text"}]}))
        .await;
    let (alice, _) = server.user("alice@example.com", "alicepass123").await;
    let good = email_token(&server, &alice, TokenType::Verification, 600).await;
    let expired = email_token(&server, &alice, TokenType::Verification, -10).await;
    let reset = email_token(&server, &alice, TokenType::PasswordReset, 600).await;
    let mut forged = good.clone();
    forged.truncate(forged.len() - 4);
    forged.push_str("AAAA");
    let rv = "/api/collections/users/request-verification";
    let cv = "/api/collections/users/confirm-verification";
    server
        .run(&[
            scenario("request: email required", "POST", rv, 400)
                .body(json!({}))
                .expect(&[r#"{"data":{"email":{"code":"validation_required","message":"Cannot be blank."}},"message":"An error occurred while validating the submitted data.","status":400}"#]),
            scenario("request: bad email", "POST", rv, 400)
                .body(json!({"email": "bad"}))
                .expect(&[r#""email":{"code":"validation_is_email","message":"Must be a valid email address."}"#]),
            scenario("request: unknown email is 204", "POST", rv, 204)
                .body(json!({"email": "nobody@example.com"})),
            scenario("request: known email is 204", "POST", rv, 204)
                .body(json!({"email": "ALICE@example.com"})),
            scenario("request: bad json", "POST", rv, 400)
                .raw("{nope")
                .expect(&[r#"{"data":{},"message":"Something went wrong while processing your request.","status":400}"#]),
            scenario("request: base collection", "POST", "/api/collections/posts/request-verification", 404)
                .body(json!({}))
                .expect(&[r#"{"data":{},"message":"Missing or invalid auth collection context.","status":404}"#]),
            scenario("request: unknown collection", "POST", "/api/collections/nope/request-verification", 404)
                .body(json!({"email": "a@b.co"}))
                .expect(&["Missing or invalid collection context."]),
            scenario("confirm: token required", "POST", cv, 400)
                .body(json!({}))
                .expect(&[r#""token":{"code":"validation_required","message":"Cannot be blank."}"#, INVALID_DATA]),
            scenario("confirm: garbage", "POST", cv, 400)
                .body(json!({"token": "garbage"}))
                .expect(&[r#""token":{"code":"validation_invalid_token_claims","message":"Missing email token claim."}"#]),
            scenario("confirm: forged signature", "POST", cv, 400)
                .body(json!({"token": forged}))
                .expect(&[r#""token":{"code":"validation_invalid_token","message":"Invalid or expired token."}"#]),
            scenario("confirm: expired", "POST", cv, 400)
                .body(json!({"token": expired}))
                .expect(&["validation_invalid_token"]),
            scenario("confirm: wrong type", "POST", cv, 400)
                .body(json!({"token": reset}))
                .expect(&["validation_invalid_token"]),
            scenario("confirm: other collection", "POST", "/api/collections/_superusers/confirm-verification", 400)
                .body(json!({"token": good}))
                .expect(&[r#""token":{"code":"validation_token_collection_mismatch","message":"The provided token is for different auth collection."}"#]),
        ])
        .await;
    assert_eq!(view_user(&server, &alice).await["verified"], false);
    server
        .run(&[
            scenario("confirm: ok", "POST", cv, 204).body(json!({"token": good})),
            scenario("confirm: again is still 204", "POST", cv, 204).body(json!({"token": good})),
            scenario("request: already verified is 204", "POST", rv, 204)
                .body(json!({"email": "alice@example.com"})),
        ])
        .await;
    assert_eq!(view_user(&server, &alice).await["verified"], true);
}

#[tokio::test]
async fn password_reset_flow() {
    let server = start().await;
    let (bob, bob_token) = server.user("bob@example.com", "bobpass1234").await;
    let reset = email_token(&server, &bob, TokenType::PasswordReset, 600).await;
    let verification = email_token(&server, &bob, TokenType::Verification, 600).await;
    let rr = "/api/collections/users/request-password-reset";
    let cr = "/api/collections/users/confirm-password-reset";
    server
        .run(&[
            scenario("request: email required", "POST", rr, 400)
                .body(json!({}))
                .expect(&[r#""email":{"code":"validation_required""#, INVALID_DATA]),
            scenario("request: bad email", "POST", rr, 400)
                .body(json!({"email": "x@"}))
                .expect(&["validation_is_email"]),
            scenario("request: unknown", "POST", rr, 204).body(json!({"email": "zed@example.com"})),
            scenario("request: known", "POST", rr, 204).body(json!({"email": "bob@example.com"})),
            scenario("confirm: all required", "POST", cr, 400)
                .body(json!({}))
                .expect(&[
                    r#"{"data":{"token":{"code":"validation_required","message":"Cannot be blank."},"password":{"code":"validation_required","message":"Cannot be blank."},"passwordConfirm":{"code":"validation_required","message":"Cannot be blank."}},"message":"An error occurred while validating the submitted data.","status":400}"#,
                ]),
            scenario("confirm: everything wrong", "POST", cr, 400)
                .body(json!({"token": "garbage", "password": "short", "passwordConfirm": "x"}))
                .expect(&[
                    r#""token":{"code":"validation_invalid_token_claims","message":"Missing email token claim."}"#,
                    r#""password":{"code":"validation_length_out_of_range","message":"The length must be between 8 and 255.","params":{"max":255,"min":8}}"#,
                    r#""passwordConfirm":{"code":"validation_values_mismatch","message":"Values don't match."}"#,
                ]),
            scenario("confirm: too long for the field", "POST", cr, 400)
                .body(json!({"token": reset, "password": "p".repeat(80), "passwordConfirm": "p".repeat(80)}))
                .expect(&[r#""password":{"code":"validation_max_text_constraint","message":"Must be less than 71 character(s)."}"#])
                .forbid(&[r#""token""#]),
            scenario("confirm: verification token refused", "POST", cr, 400)
                .body(json!({"token": verification, "password": "newbobpass1", "passwordConfirm": "newbobpass1"}))
                .expect(&[r#""token":{"code":"validation_invalid_token""#]),
        ])
        .await;
    // Nothing changed yet: the old session still works.
    let reply = server
        .send(
            "POST",
            "/api/collections/users/auth-refresh",
            None,
            Some(&bob_token),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    server
        .run(&[scenario("confirm: ok", "POST", cr, 204).body(
            json!({"token": reset, "password": "newbobpass1", "passwordConfirm": "newbobpass1"}),
        )])
        .await;
    let reply = server
        .send(
            "POST",
            "/api/collections/users/auth-refresh",
            None,
            Some(&bob_token),
        )
        .await;
    assert_eq!(reply.status, 401, "old session must die: {}", reply.text);
    let reply = server
        .send(
            "POST",
            "/api/collections/users/auth-with-password",
            Some(r#"{"identity":"bob@example.com","password":"bobpass1234"}"#),
            None,
        )
        .await;
    assert_eq!(reply.status, 400, "old password must fail");
    server
        .login("users", "bob@example.com", "newbobpass1")
        .await;
    assert_eq!(view_user(&server, &bob).await["verified"], true);
    server
        .run(&[scenario("confirm: reuse refused", "POST", cr, 400)
            .body(json!({"token": reset, "password": "otherpass12", "passwordConfirm": "otherpass12"}))
            .expect(&[r#""token":{"code":"validation_invalid_token","message":"Invalid or expired token."}"#])])
        .await;
}

#[tokio::test]
async fn impersonate_and_file_tokens() {
    let server = start().await;
    server
        .collection(json!({"name": "posts", "fields": [{"name": "title", "type": "text"}]}))
        .await;
    let (carol, carol_token) = server.user("carol@example.com", "carolpass12").await;
    let admin = server.admin.clone();
    let url = format!("/api/collections/users/impersonate/{carol}");
    server
        .run(&[
            scenario("impersonate: guest", "POST", &url, 401)
                .body(json!({}))
                .expect(&[r#"{"data":{},"message":"The request requires valid record authorization token.","status":401}"#]),
            scenario("impersonate: regular user", "POST", &url, 403)
                .body(json!({}))
                .auth(&carol_token)
                .expect(&["The authorized record is not allowed to perform this action."]),
            scenario("impersonate: base collection", "POST", &format!("/api/collections/posts/impersonate/{carol}"), 404)
                .body(json!({}))
                .auth(&admin)
                .expect(&["Missing or invalid auth collection context."]),
            scenario("impersonate: unknown id", "POST", "/api/collections/users/impersonate/nope", 404)
                .body(json!({}))
                .auth(&admin)
                .expect(&[r#"{"data":{},"message":"The requested resource wasn't found.","status":404}"#]),
            scenario("impersonate: negative duration", "POST", &url, 400)
                .body(json!({"duration": -1}))
                .auth(&admin)
                .expect(&[r#"{"data":{"duration":{"code":"validation_min_greater_equal_than_required","message":"Must be no less than 0.","params":{"threshold":0}}},"message":"An error occurred while validating the submitted data.","status":400}"#]),
            scenario("impersonate: fields", "POST", &format!("{url}?fields=record.email"), 200)
                .body(json!({}))
                .auth(&admin)
                .expect(&[r#"{"record":{"email":"carol@example.com"}}"#]),
            scenario("files token: guest", "POST", "/api/files/token", 401)
                .expect(&["The request requires valid record authorization token."]),
            scenario("files token: garbage token is a guest", "POST", "/api/files/token", 401)
                .auth("garbage.token.value"),
        ])
        .await;

    let reply = server
        .json("POST", &url, json!({"duration": 100}), Some(&admin), 200)
        .await;
    assert_eq!(reply["record"]["id"], json!(carol));
    assert_eq!(reply["record"]["email"], "carol@example.com");
    let static_token = reply["token"].as_str().expect("token").to_string();
    let claims = token::decode_unverified(&static_token).expect("claims");
    assert_eq!(claims.token_type, TokenType::Auth);
    assert_eq!(claims.refreshable, Some(false));
    let now = chrono::Utc::now().timestamp();
    assert!(
        (now + 90..=now + 110).contains(&claims.exp),
        "exp {}",
        claims.exp
    );
    // The impersonation token authenticates, and refresh returns it unchanged.
    let refreshed = server
        .json(
            "POST",
            "/api/collections/users/auth-refresh",
            Value::Null,
            Some(&static_token),
            200,
        )
        .await;
    assert_eq!(refreshed["token"], json!(static_token));
    // Omitted duration: the collection's authToken duration.
    let reply = server
        .json("POST", &url, json!({}), Some(&admin), 200)
        .await;
    let claims = token::decode_unverified(reply["token"].as_str().expect("token")).expect("claims");
    assert!(claims.exp > now + 400_000, "default duration");

    // File token: type file, signed with tokenKey + fileToken secret, 180 s.
    let reply = server
        .json(
            "POST",
            "/api/files/token",
            Value::Null,
            Some(&carol_token),
            200,
        )
        .await;
    let file_token = reply["token"].as_str().expect("token");
    let schema = server.state.schema();
    let users = Arc::clone(schema.find(USERS_ID).expect("users"));
    let record = api::access::load_record(&server.state, &users, &carol)
        .await
        .expect("read")
        .expect("record");
    let key = token::signing_key(
        record["tokenKey"].as_str().expect("tokenKey"),
        &users.token_secret("fileToken"),
    );
    let claims =
        token::verify_as(file_token, &key, now, TokenType::File).expect("valid file token");
    assert_eq!(claims.id, carol);
    assert!((now + 170..=now + 190).contains(&claims.exp));
    // A file token is not an auth token.
    let reply = server
        .send("POST", "/api/files/token", None, Some(file_token))
        .await;
    assert_eq!(reply.status, 401);
    // Superusers get file tokens too.
    server
        .json("POST", "/api/files/token", Value::Null, Some(&admin), 200)
        .await;
}
