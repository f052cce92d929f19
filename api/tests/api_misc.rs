//! Cross-cutting HTTP behaviour: health, settings (auth levels, deep merge, write-only
//! secrets, validation), unknown routes, security/CORS headers, and the body limit (413 in
//! PocketBase's envelope, not axum's plain text).
//!
//! Guards against: secrets leaking through `GET /api/settings`, non-JSON error bodies.

mod common;

use api::ServerOptions;
use common::{scenario, start, start_with};
use serde_json::{json, Value};

#[tokio::test]
async fn health_settings_and_routes() {
    let server = start().await;
    let admin = server.admin.clone();
    let (_, user) = server.user("u@example.com", "userpass123").await;
    server
        .run(&[
            scenario("health", "GET", "/api/health", 200)
                .expect(&[r#""message":"API is healthy.""#, r#""code":200"#, r#""data":{}"#]),
            scenario("health: superuser data", "GET", "/api/health", 200)
                .auth(&admin)
                .expect(&[r#""canBackup":true"#]),
            scenario("health: fields", "GET", "/api/health?fields=code", 200).expect(&[r#"{"code":200}"#]),
            scenario("settings: guest", "GET", "/api/settings", 401)
                .expect(&["The request requires valid record authorization token."]),
            scenario("settings: user", "GET", "/api/settings", 403)
                .auth(&user)
                .expect(&["The authorized record is not allowed to perform this action."]),
            scenario("settings: defaults", "GET", "/api/settings", 200)
                .auth(&admin)
                .expect(&[
                    r#""batch":{"enabled":false,"maxRequests":50,"timeout":3,"maxBodySize":0}"#,
                    r#""appName":"Acme""#,
                ]),
            scenario("settings: patch", "PATCH", "/api/settings", 200)
                .auth(&admin)
                .body(json!({"meta": {"appName": "ChatApp"}, "smtp": {"password": "hunter2", "host": "127.0.0.1"}}))
                .expect(&[r#""appName":"ChatApp""#, r#""senderName":"Support""#, r#""host":"127.0.0.1""#])
                .forbid(&["hunter2"]),
            scenario("settings: secrets stay write-only", "GET", "/api/settings", 200)
                .auth(&admin)
                .expect(&[r#""appName":"ChatApp""#])
                .forbid(&["hunter2", r#""password""#]),
            scenario("settings: blank appName", "PATCH", "/api/settings", 400)
                .auth(&admin)
                .body(json!({"meta": {"appName": ""}}))
                .expect(&[r#"{"data":{"meta":{"appName":{"code":"validation_required","message":"Cannot be blank."}}},"message":"An error occurred while saving the new settings.","status":400}"#]),
            scenario("settings: bad json", "PATCH", "/api/settings", 400)
                .auth(&admin)
                .raw("{")
                .expect(&[r#"{"data":{},"message":"An error occurred while loading the submitted data.","status":400}"#]),
            scenario("settings: patch by user", "PATCH", "/api/settings", 403)
                .auth(&user)
                .body(json!({"meta": {"appName": "x"}})),
            scenario("unknown GET route", "GET", "/api/nope", 404)
                .expect(&[r#"{"data":{},"message":"File not found.","status":404}"#]),
            scenario("unknown POST route", "POST", "/api/nope", 404)
                .expect(&[r#"{"data":{},"message":"The requested resource wasn't found.","status":404}"#]),
        ])
        .await;
    // The failed PATCH changed nothing.
    let settings = server
        .json("GET", "/api/settings", Value::Null, Some(&admin), 200)
        .await;
    assert_eq!(settings["meta"]["appName"], "ChatApp");

    let reply = server.send("HEAD", "/api/health", None, None).await;
    assert_eq!(reply.status, 200);
    let reply = server.send("GET", "/api/health", None, None).await;
    for (name, value) in [
        ("x-xss-protection", "1; mode=block"),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "SAMEORIGIN"),
        ("cross-origin-opener-policy", "same-origin"),
    ] {
        assert_eq!(
            reply.headers.get(name).and_then(|v| v.to_str().ok()),
            Some(value),
            "{name}"
        );
    }
    let response = server
        .client
        .get(format!("{}/api/health", server.base))
        .header("origin", "http://example.com")
        .send()
        .await
        .expect("request");
    assert!(response
        .headers()
        .get("access-control-allow-origin")
        .is_some());
}

#[tokio::test]
async fn body_over_the_limit_is_413_in_the_envelope() {
    let server = start_with(ServerOptions {
        body_limit_bytes: 4096,
        ..ServerOptions::default()
    })
    .await;
    server
        .collection(json!({"name": "notes", "createRule": "", "fields": [{"name": "text", "type": "text", "max": 100000}]}))
        .await;
    let big = json!({"text": "x".repeat(10_000)}).to_string();
    server
        .run(&[
            scenario(
                "413 on record create",
                "POST",
                "/api/collections/notes/records",
                413,
            )
            .raw(&big)
            .expect(&[r#"{"data":{},"message":"Request entity too large.","status":413}"#]),
            scenario(
                "413 on login",
                "POST",
                "/api/collections/users/auth-with-password",
                413,
            )
            .raw(&big)
            .expect(&["Request entity too large."]),
            scenario(
                "under the limit is fine",
                "POST",
                "/api/collections/notes/records",
                200,
            )
            .raw(&json!({"text": "x".repeat(1000)}).to_string()),
        ])
        .await;
    let reply = server
        .send("POST", "/api/collections/notes/records", Some(&big), None)
        .await;
    assert_eq!(
        reply
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
}
