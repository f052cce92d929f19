//! Auth endpoints over real HTTP: auth-with-password, auth-refresh, auth-methods — exact
//! statuses and envelopes (`docs/wire/auth.md`, `docs/wire/errors.md`).
//!
//! Guards against: account enumeration (unknown identity and wrong password must look the
//! same), tokens of one collection refreshing in another, missing email in auth responses.

mod common;

use common::{scenario, start};
use serde_json::json;

#[tokio::test]
async fn password_auth_refresh_and_methods() {
    let server = start().await;
    server
        .collection(json!({"name": "posts", "fields": [{"name": "title", "type": "text"}]}))
        .await;
    let (_, alice_token) = server.user("alice@example.com", "alicepass123").await;
    let admin = server.admin.clone();
    let awp = "/api/collections/users/auth-with-password";
    let refresh = "/api/collections/users/auth-refresh";
    let failed = r#"{"data":{},"message":"Failed to authenticate.","status":400}"#;
    server
        .run(&[
            scenario("login: ok", "POST", awp, 200)
                .body(json!({"identity": "alice@example.com", "password": "alicepass123"}))
                .expect(&[r#""record":{"#, r#""email":"alice@example.com""#, r#""token":"eyJ"#])
                .forbid(&["tokenKey", r#""password""#]),
            scenario("login: case-insensitive email", "POST", awp, 200)
                .body(json!({"identity": "ALICE@example.com", "password": "alicepass123"})),
            scenario("login: fields", "POST", &format!("{awp}?fields=record.email"), 200)
                .body(json!({"identity": "alice@example.com", "password": "alicepass123"}))
                .expect(&[r#"{"record":{"email":"alice@example.com"}}"#]),
            scenario("login: wrong password", "POST", awp, 400)
                .body(json!({"identity": "alice@example.com", "password": "wrongpass1"}))
                .expect(&[failed]),
            scenario("login: unknown identity", "POST", awp, 400)
                .body(json!({"identity": "nobody@example.com", "password": "whatever12"}))
                .expect(&[failed]),
            scenario("login: missing both", "POST", awp, 400)
                .body(json!({}))
                .expect(&[r#"{"data":{"identity":{"code":"validation_required","message":"Cannot be blank."},"password":{"code":"validation_required","message":"Cannot be blank."}},"message":"An error occurred while validating the submitted data.","status":400}"#]),
            scenario("login: bad identityField", "POST", awp, 400)
                .body(json!({"identity": "alice@example.com", "password": "alicepass123", "identityField": "name"}))
                .expect(&[r#""identityField":{"code":"validation_in_invalid","message":"Must be a valid value."}"#]),
            scenario("login: bad json", "POST", awp, 400).raw("{"),
            scenario("login: base collection", "POST", "/api/collections/posts/auth-with-password", 404)
                .body(json!({"identity": "a", "password": "b"}))
                .expect(&[r#"{"data":{},"message":"Missing or invalid auth collection context.","status":404}"#]),
            scenario("login: superuser", "POST", "/api/collections/_superusers/auth-with-password", 200)
                .body(json!({"identity": common::ADMIN_EMAIL, "password": common::ADMIN_PASSWORD}))
                .expect(&[r#""collectionName":"_superusers""#, r#""verified":true"#]),
            scenario("login: user is not a superuser", "POST", "/api/collections/_superusers/auth-with-password", 400)
                .body(json!({"identity": "alice@example.com", "password": "alicepass123"}))
                .expect(&[failed]),
            scenario("refresh: no token", "POST", refresh, 401)
                .expect(&[r#"{"data":{},"message":"The request requires valid record authorization token.","status":401}"#]),
            scenario("refresh: garbage", "POST", refresh, 401).auth("garbage.token.value"),
            scenario("refresh: ok (empty body, json content type)", "POST", refresh, 200)
                .auth(&alice_token)
                .expect(&[r#""email":"alice@example.com""#, r#""token":"eyJ"#]),
            scenario("refresh: expand", "POST", &format!("{refresh}?fields=token"), 200)
                .auth(&alice_token)
                .forbid(&[r#""record""#]),
            scenario("refresh: other collection", "POST", "/api/collections/_superusers/auth-refresh", 403)
                .auth(&alice_token)
                .expect(&[r#"{"data":{},"message":"The request requires auth record from users collection.","status":403}"#]),
            scenario("refresh: superuser token on users", "POST", refresh, 403)
                .auth(&admin)
                .expect(&["The request requires auth record from _superusers collection."]),
            scenario("methods: users", "GET", "/api/collections/users/auth-methods", 200)
                .expect(&[r#""password":{"identityFields":["email"],"enabled":true}"#, r#""oauth2":{"providers":[],"enabled":false}"#, r#""emailPassword":true"#]),
            scenario("methods: sdk fields", "GET", "/api/collections/users/auth-methods?fields=mfa,otp,password,oauth2", 200)
                .expect(&[r#""mfa":{"enabled":false,"duration":0}"#, r#""otp":{"enabled":false,"duration":0}"#])
                .forbid(&["authProviders", "usernamePassword"]),
            scenario("methods: base collection", "GET", "/api/collections/posts/auth-methods", 404)
                .expect(&["Missing or invalid auth collection context."]),
            scenario("methods: unknown collection", "GET", "/api/collections/nope/auth-methods", 404)
                .expect(&[r#"{"data":{},"message":"Missing or invalid collection context.","status":404}"#]),
            scenario("login: unknown collection", "POST", "/api/collections/nope/auth-with-password", 404)
                .body(json!({"identity": "a", "password": "b"}))
                .expect(&[r#"{"data":{},"message":"Missing or invalid collection context.","status":404}"#]),
        ])
        .await;

    // Disabling password auth: 403.
    server
        .json(
            "PATCH",
            "/api/collections/users",
            json!({"passwordAuth": {"enabled": false, "identityFields": ["email"]}}),
            Some(&admin),
            200,
        )
        .await;
    server
        .run(&[scenario("login: password auth disabled", "POST", awp, 403)
            .body(json!({"identity": "alice@example.com", "password": "alicepass123"}))
            .expect(&[r#"{"data":{},"message":"The collection is not configured to allow password authentication.","status":403}"#])])
        .await;

    // Changing authRule rotates the secret: every users token dies; a failing authRule is 403.
    server
        .json(
            "PATCH",
            "/api/collections/users",
            json!({"passwordAuth": {"enabled": true, "identityFields": ["email"]}, "authRule": "verified = true"}),
            Some(&admin),
            200,
        )
        .await;
    server
        .run(&[
            scenario("refresh: secret rotated", "POST", refresh, 401).auth(&alice_token),
            scenario("login: authRule fails", "POST", awp, 403)
                .body(json!({"identity": "alice@example.com", "password": "alicepass123"}))
                .expect(&[r#"{"data":{},"message":"The request doesn't satisfy the collection requirements to authenticate.","status":403}"#]),
        ])
        .await;
}
