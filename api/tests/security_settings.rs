//! Security settings through the real HTTP API: settings validation (as PocketBase v0.40.6
//! answers), the real client IP behind a trusted proxy (health endpoint, request logs) and
//! the superuser IP allow-list.
//!
//! Every server runs on 127.0.0.1; other client addresses are simulated with a trusted proxy
//! header once `trustedProxy.headers` names it.

mod common;

use common::{start, TestServer, ADMIN_EMAIL, ADMIN_PASSWORD};
use serde_json::{json, Value};

/// Sends a request with extra headers; returns (status, json).
async fn call(
    server: &TestServer,
    method: &str,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = server
        .client
        .request(method, format!("{}{}", server.base, path));
    if let Some(token) = token {
        request = request.header("authorization", token);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn patch_settings(server: &TestServer, body: Value) -> (u16, Value) {
    call(
        server,
        "PATCH",
        "/api/settings",
        Some(body),
        Some(&server.admin),
        &[],
    )
    .await
}

async fn settings(server: &TestServer) -> Value {
    let (status, body) = call(
        server,
        "GET",
        "/api/settings",
        None,
        Some(&server.admin),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn invalid_settings_are_refused_field_by_field_and_not_saved() {
    let server = start().await;
    let before = settings(&server).await;
    // (patch, error pointer inside `data`, expected code)
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"smtp": {"enabled": true, "host": ""}}),
            "/smtp/host",
            "validation_required",
        ),
        (
            json!({"smtp": {"enabled": true, "port": 0}}),
            "/smtp/port",
            "validation_required",
        ),
        (
            json!({"smtp": {"host": "h h"}}),
            "/smtp/host",
            "validation_is_host",
        ),
        (
            json!({"smtp": {"port": -5}}),
            "/smtp/port",
            "validation_min_greater_equal_than_required",
        ),
        (
            json!({"smtp": {"authMethod": "login"}}),
            "/smtp/authMethod",
            "validation_in_invalid",
        ),
        (
            json!({"smtp": {"localName": "bad name!"}}),
            "/smtp/localName",
            "validation_is_host",
        ),
        (
            json!({"meta": {"appName": ""}}),
            "/meta/appName",
            "validation_required",
        ),
        (
            json!({"meta": {"appName": "a".repeat(256)}}),
            "/meta/appName",
            "validation_length_out_of_range",
        ),
        (
            json!({"meta": {"appURL": "http://"}}),
            "/meta/appURL",
            "validation_is_url",
        ),
        (
            json!({"meta": {"senderAddress": "a@b"}}),
            "/meta/senderAddress",
            "validation_is_email",
        ),
        (
            json!({"meta": {"senderAddress": ""}}),
            "/meta/senderAddress",
            "validation_required",
        ),
        (
            json!({"meta": {"senderName": ""}}),
            "/meta/senderName",
            "validation_required",
        ),
        (
            json!({"meta": {"accentColor": "zzz"}}),
            "/meta/accentColor",
            "validation_length_invalid",
        ),
        (
            json!({"meta": {"accentColor": "#zzzzzz"}}),
            "/meta/accentColor",
            "validation_is_hex_color",
        ),
        (
            json!({"s3": {"enabled": true}}),
            "/s3/bucket",
            "validation_required",
        ),
        (
            json!({"s3": {"enabled": true, "bucket": "b", "region": "r", "endpoint": "not a url", "accessKey": "a", "secret": "s"}}),
            "/s3/endpoint",
            "validation_is_url",
        ),
        (
            json!({"backups": {"s3": {"enabled": true}}}),
            "/backups/s3/secret",
            "validation_required",
        ),
        (
            json!({"backups": {"cron": "61 0 * * *"}}),
            "/backups/cron",
            "validation_invalid_cron",
        ),
        (
            json!({"backups": {"cron": "@daily", "cronMaxKeep": 0}}),
            "/backups/cronMaxKeep",
            "validation_required",
        ),
        (
            json!({"backups": {"cronMaxKeep": -1}}),
            "/backups/cronMaxKeep",
            "validation_min_greater_equal_than_required",
        ),
        (
            json!({"batch": {"enabled": true, "maxRequests": 0}}),
            "/batch/maxRequests",
            "validation_required",
        ),
        (
            json!({"batch": {"timeout": -1}}),
            "/batch/timeout",
            "validation_min_greater_equal_than_required",
        ),
        (
            json!({"batch": {"maxBodySize": -1}}),
            "/batch/maxBodySize",
            "validation_min_greater_equal_than_required",
        ),
        (
            json!({"logs": {"maxDays": -1}}),
            "/logs/maxDays",
            "validation_min_greater_equal_than_required",
        ),
        (
            json!({"logs": {"maxDataSize": -1}}),
            "/logs/maxDataSize",
            "validation_min_greater_equal_than_required",
        ),
        (
            json!({"rateLimits": {"enabled": true, "rules": []}}),
            "/rateLimits/rules",
            "validation_required",
        ),
        (
            json!({"rateLimits": {"rules": [{"label": "", "audience": "x"}]}}),
            "/rateLimits/rules/0/label",
            "validation_required",
        ),
        (
            json!({"rateLimits": {"rules": [{"label": "/a", "audience": "x", "duration": 1, "maxRequests": 1}]}}),
            "/rateLimits/rules/0/audience",
            "validation_in_invalid",
        ),
        (
            json!({"rateLimits": {"rules": [{"label": "/a b", "duration": 1, "maxRequests": 1}]}}),
            "/rateLimits/rules/0/label",
            "validation_match_invalid",
        ),
        (
            json!({"rateLimits": {"rules": [{"label": "/a", "duration": -1, "maxRequests": 1}]}}),
            "/rateLimits/rules/0/duration",
            "validation_min_greater_equal_than_required",
        ),
        (
            json!({"rateLimits": {"rules": [{"label": "/a", "duration": 1}]}}),
            "/rateLimits/rules/0/maxRequests",
            "validation_required",
        ),
        (
            json!({"rateLimits": {"rules": [{"label": "/a", "duration": 1, "maxRequests": 1}, {"label": "/a", "audience": "@guest", "duration": 1, "maxRequests": 1}]}}),
            "/rateLimits/rules/1/label",
            "validation_conflicting_rate_limit_rule",
        ),
        (
            json!({"rateLimits": {"excludedIPs": ["10.0.0.0/8", "bad"]}}),
            "/rateLimits/excludedIPs/1",
            "validation_invlaid_ip_or_subnet",
        ),
        (
            json!({"superuserIPs": ["1.2.3.4/99"]}),
            "/superuserIPs/0",
            "validation_invlaid_ip_or_subnet",
        ),
        (
            json!({"superuserIPs": [""]}),
            "/superuserIPs/0",
            "validation_required",
        ),
    ];
    for (patch, pointer, code) in cases {
        let (status, body) = patch_settings(&server, patch.clone()).await;
        assert_eq!(status, 400, "{patch}: {body}");
        assert_eq!(
            body["message"], "An error occurred while saving the new settings.",
            "{patch}: {body}"
        );
        assert_eq!(
            body["data"].pointer(pointer).and_then(|e| e.get("code")),
            Some(&json!(code)),
            "{patch}: {body}"
        );
    }
    // Wrong JSON types fail loading, before validation.
    for patch in [
        json!({"smtp": "x"}),
        json!({"rateLimits": {"enabled": "yes"}}),
        json!({"logs": {"maxDays": 1.5}}),
        json!({"superuserIPs": "1.2.3.4"}),
        json!({"superuserIPs": [1]}),
        json!([1]),
    ] {
        let (status, body) = patch_settings(&server, patch.clone()).await;
        assert_eq!(status, 400, "{patch}: {body}");
        assert_eq!(
            body["message"],
            "An error occurred while loading the submitted data."
        );
        assert_eq!(body["data"], json!({}));
    }
    assert_eq!(
        settings(&server).await,
        before,
        "a refused PATCH changed nothing"
    );
}

#[tokio::test]
async fn valid_settings_are_saved_with_their_shape() {
    let server = start().await;
    let (status, body) = patch_settings(
        &server,
        json!({
            "unknownKey": 1,
            "smtp": {"enabled": true, "host": "smtp.example.org", "port": 2525, "authMethod": "LOGIN", "password": "pw"},
            "meta": {"appURL": "localhost:8090"},
            "backups": {"cron": "1-5/2 * * * *", "cronMaxKeep": 2},
            "rateLimits": {"rules": [
                {"label": "/a", "audience": "@auth", "duration": 1, "maxRequests": 1},
                {"label": "/a", "audience": "@guest", "duration": 1, "maxRequests": 1, "extra": true},
                {"label": "POST /api/collections/", "duration": 2, "maxRequests": 3}
            ], "excludedIPs": ["10.0.0.0/8", "::1"]},
            "trustedProxy": {"headers": ["X-Real-IP"], "useLeftmostIP": true},
            "superuserIPs": ["127.0.0.1", "10.0.0.0/8"]
        }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let stored = settings(&server).await;
    assert_eq!(stored, body);
    assert!(stored.get("unknownKey").is_none());
    assert!(
        stored["smtp"].get("password").is_none(),
        "secrets are not returned"
    );
    assert_eq!(stored["smtp"]["port"], 2525);
    assert_eq!(
        stored["rateLimits"]["rules"][1],
        json!({"label": "/a", "audience": "@guest", "duration": 1, "maxRequests": 1})
    );
    assert_eq!(stored["superuserIPs"], json!(["127.0.0.1", "10.0.0.0/8"]));
    assert_eq!(stored["trustedProxy"]["useLeftmostIP"], true);
}

#[tokio::test]
async fn password_field_bounds_are_checked() {
    let server = start().await;
    let create = |min: i64, max: i64| {
        json!({"name": format!("pw_{}_{}", min.unsigned_abs(), max.unsigned_abs()), "type": "base",
               "fields": [{"name": "secret", "type": "password", "min": min, "max": max}]})
    };
    let cases = [
        (71, 0, None),
        (8, 71, None),
        (
            72,
            0,
            Some(("min", "validation_max_less_equal_than_required")),
        ),
        (
            -1,
            0,
            Some(("min", "validation_min_greater_equal_than_required")),
        ),
        (
            8,
            5,
            Some(("max", "validation_min_greater_equal_than_required")),
        ),
        (
            8,
            72,
            Some(("max", "validation_max_less_equal_than_required")),
        ),
        (
            0,
            -1,
            Some(("max", "validation_min_greater_equal_than_required")),
        ),
    ];
    for (min, max, error) in cases {
        let (status, body) = call(
            &server,
            "POST",
            "/api/collections",
            Some(create(min, max)),
            Some(&server.admin),
            &[],
        )
        .await;
        match error {
            None => assert_eq!(status, 200, "min {min} max {max}: {body}"),
            Some((field, code)) => {
                assert_eq!(status, 400, "min {min} max {max}: {body}");
                assert_eq!(
                    body["data"]["fields"]["1"][field]["code"], code,
                    "min {min} max {max}: {body}"
                );
            }
        }
    }
    // The auth collections' own password field too.
    let (_, users) = call(
        &server,
        "GET",
        "/api/collections/users",
        None,
        Some(&server.admin),
        &[],
    )
    .await;
    let mut fields = users["fields"].as_array().expect("fields").clone();
    let index = fields
        .iter()
        .position(|f| f["name"] == "password")
        .expect("password field");
    fields[index]["min"] = json!(100);
    let (status, body) = call(
        &server,
        "PATCH",
        "/api/collections/users",
        Some(json!({"fields": fields})),
        Some(&server.admin),
        &[],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["data"]["fields"][index.to_string()]["min"]["params"]["threshold"],
        71
    );
}

#[tokio::test]
async fn health_reports_the_real_ip_behind_a_trusted_proxy() {
    let server = start().await;
    let admin = server.admin.clone();
    let health = |headers: &'static [(&'static str, &'static str)]| {
        let server = &server;
        let admin = admin.clone();
        async move {
            let (status, body) =
                call(server, "GET", "/api/health", None, Some(&admin), headers).await;
            assert_eq!(status, 200, "{body}");
            (
                body["data"]["realIP"].as_str().unwrap_or("?").to_string(),
                body["data"]["possibleProxyHeader"]
                    .as_str()
                    .unwrap_or("?")
                    .to_string(),
            )
        }
    };
    // Not configured: the socket peer, and a hint naming a known proxy header.
    assert_eq!(health(&[]).await, ("127.0.0.1".into(), "".into()));
    assert_eq!(
        health(&[("X-Forwarded-For", "10.1.2.3")]).await,
        ("127.0.0.1".into(), "X-Forwarded-For".into())
    );
    assert_eq!(
        health(&[
            ("X-Forwarded-For", "1.1.1.1"),
            ("CF-Connecting-IP", "2.2.2.2")
        ])
        .await,
        ("127.0.0.1".into(), "CF-Connecting-IP".into())
    );
    let (status, _) = patch_settings(
        &server,
        json!({"trustedProxy": {"headers": ["X-Real-IP", "X-Forwarded-For"]}}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        health(&[("X-Real-IP", "10.1.2.3")]).await,
        ("10.1.2.3".into(), "X-Real-IP".into())
    );
    assert_eq!(
        health(&[("X-Forwarded-For", "10.1.2.3, junk,, 10.9.9.9")]).await,
        ("10.9.9.9".into(), "X-Forwarded-For".into())
    );
    assert_eq!(
        health(&[("X-Forwarded-For", "garbage")]).await,
        ("127.0.0.1".into(), "X-Forwarded-For".into())
    );
    let (status, _) =
        patch_settings(&server, json!({"trustedProxy": {"useLeftmostIP": true}})).await;
    assert_eq!(status, 200);
    assert_eq!(
        health(&[("X-Forwarded-For", "junk, 10.1.2.3, 10.9.9.9")]).await,
        ("10.1.2.3".into(), "X-Forwarded-For".into())
    );
    // Guests never see these fields.
    let (_, body) = call(
        &server,
        "GET",
        "/api/health",
        None,
        None,
        &[("X-Real-IP", "1.1.1.1")],
    )
    .await;
    assert_eq!(body["data"], json!({}));
}

#[tokio::test]
async fn request_logs_record_the_real_ip() {
    let server = start().await;
    let (status, _) =
        patch_settings(&server, json!({"trustedProxy": {"headers": ["X-Real-IP"]}})).await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &server,
        "GET",
        "/api/health?probe=realip",
        None,
        None,
        &[("X-Real-IP", "10.20.30.40")],
    )
    .await;
    assert_eq!(status, 200);
    let mut found = Value::Null;
    for _ in 0..100 {
        let (_, body) = call(
            &server,
            "GET",
            "/api/logs?filter=data.url%3D%27%2Fapi%2Fhealth%3Fprobe%3Drealip%27",
            None,
            Some(&server.admin),
            &[],
        )
        .await;
        if let Some(item) = body["items"].as_array().and_then(|items| items.first()) {
            found = item.clone();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(found["data"]["userIP"], "10.20.30.40", "{found}");
    assert_eq!(found["data"]["remoteIP"], "127.0.0.1", "{found}");
}

#[tokio::test]
async fn superuser_ips_refuse_a_superuser_from_another_address() {
    let server = start().await;
    let (_, user_token) = server.user("someone@example.com", "12345678").await;
    let (status, body) = patch_settings(
        &server,
        json!({"superuserIPs": ["10.0.0.1"], "trustedProxy": {"headers": ["X-Real-IP"]}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let admin = server.admin.clone();
    let refused = json!({"data": {}, "message": "You are not allowed to perform this request.", "status": 403});
    // Every route, even the health check, refuses the superuser's token from 127.0.0.1.
    for (method, path) in [
        ("GET", "/api/health"),
        ("GET", "/api/settings"),
        ("GET", "/api/collections"),
        ("GET", "/api/collections/users/records"),
        ("POST", "/api/collections/_superusers/auth-refresh"),
    ] {
        let (status, body) = call(&server, method, path, None, Some(&admin), &[]).await;
        assert_eq!((status, &body), (403, &refused), "{method} {path}");
    }
    // A successful superuser sign-in from there is refused too; a failed one stays a 400.
    let login = |password: &str| json!({"identity": ADMIN_EMAIL, "password": password});
    let (status, body) = call(
        &server,
        "POST",
        "/api/collections/_superusers/auth-with-password",
        Some(login(ADMIN_PASSWORD)),
        None,
        &[],
    )
    .await;
    assert_eq!((status, &body), (403, &refused));
    let (status, _) = call(
        &server,
        "POST",
        "/api/collections/_superusers/auth-with-password",
        Some(login("wrong-password")),
        None,
        &[],
    )
    .await;
    assert_eq!(status, 400);
    // Guests and other records are not affected.
    let (status, body) = call(&server, "GET", "/api/health", None, None, &[]).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(
        &server,
        "GET",
        "/api/collections/users/records",
        None,
        Some(&user_token),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // From an allowed address (through the trusted proxy) the superuser works.
    let allowed = [("X-Real-IP", "10.0.0.1")];
    let (status, body) = call(&server, "GET", "/api/health", None, Some(&admin), &allowed).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["realIP"], "10.0.0.1");
    let (status, body) = call(
        &server,
        "POST",
        "/api/collections/_superusers/auth-with-password",
        Some(login(ADMIN_PASSWORD)),
        None,
        &allowed,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // A subnet that holds 127.0.0.1 allows it again; clearing the list allows everyone.
    let (status, body) = call(
        &server,
        "PATCH",
        "/api/settings",
        Some(json!({"superuserIPs": ["127.0.0.0/8"]})),
        Some(&admin),
        &allowed,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = call(&server, "GET", "/api/settings", None, Some(&admin), &[]).await;
    assert_eq!(status, 200);
    let (status, _) = patch_settings(&server, json!({"superuserIPs": []})).await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &server,
        "GET",
        "/api/settings",
        None,
        Some(&admin),
        &[("X-Real-IP", "8.8.8.8")],
    )
    .await;
    assert_eq!(status, 200);
}
