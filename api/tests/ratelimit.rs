//! Rate limits (`settings.rateLimits`) through the real HTTP API: 429 with PocketBase's
//! envelope, keyed by the real client IP, the label order, audiences, per-collection scopes,
//! superusers and `excludedIPs` exempt, windows that reopen.
//!
//! Clients are told apart by `X-Real-IP`, trusted in every test (`trustedProxy.headers`).

mod common;

use common::{start, TestServer};
use serde_json::{json, Value};

async fn status(
    server: &TestServer,
    method: &str,
    path: &str,
    ip: &str,
    token: Option<&str>,
) -> u16 {
    status_with(server, method, path, ip, token, None).await.0
}

async fn status_with(
    server: &TestServer,
    method: &str,
    path: &str,
    ip: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = server
        .client
        .request(method, format!("{}{}", server.base, path))
        .header("x-real-ip", ip);
    if let Some(token) = token {
        request = request.header("authorization", token);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.expect("request");
    let code = response.status().as_u16();
    let text = response.text().await.expect("body");
    (code, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Enables rate limits with `rules` (and X-Real-IP trusted).
async fn limits(server: &TestServer, rules: Value, extra: Value) {
    let mut body = json!({
        "trustedProxy": {"headers": ["X-Real-IP"]},
        "rateLimits": {"enabled": true, "rules": rules, "excludedIPs": []}
    });
    if let (Some(target), Value::Object(extra)) = (body["rateLimits"].as_object_mut(), extra) {
        target.extend(extra);
    }
    let reply = server
        .send(
            "PATCH",
            "/api/settings",
            Some(&body.to_string()),
            Some(&server.admin),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

async fn statuses(server: &TestServer, method: &str, path: &str, ip: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(status(server, method, path, ip, None).await);
    }
    out
}

#[tokio::test]
async fn exceeded_limit_is_429_per_real_ip() {
    let server = start().await;
    // Disabled (the default): nothing is limited.
    assert_eq!(
        statuses(&server, "GET", "/api/health", "10.0.0.1", 5).await,
        vec![200; 5]
    );
    limits(
        &server,
        json!([{"label": "/api/health", "duration": 60, "maxRequests": 2}]),
        json!({}),
    )
    .await;
    assert_eq!(
        statuses(&server, "GET", "/api/health", "10.0.0.2", 4).await,
        vec![200, 200, 429, 429]
    );
    let (code, body) = status_with(&server, "GET", "/api/health", "10.0.0.2", None, None).await;
    assert_eq!(code, 429);
    assert_eq!(
        body,
        json!({"data": {}, "message": "Too Many Requests.", "status": 429})
    );
    // Another client has its own counter; HEAD counts on the same path.
    assert_eq!(
        statuses(&server, "GET", "/api/health", "10.0.0.3", 2).await,
        vec![200, 200]
    );
    assert_eq!(
        status(&server, "HEAD", "/api/health", "10.0.0.3", None).await,
        429
    );
    // Superusers are exempt.
    for _ in 0..4 {
        assert_eq!(
            status(
                &server,
                "GET",
                "/api/health",
                "10.0.0.2",
                Some(&server.admin)
            )
            .await,
            200
        );
    }
    // A path the rule does not cover is not limited.
    assert_eq!(
        statuses(
            &server,
            "GET",
            "/api/collections/users/auth-methods",
            "10.0.0.2",
            3
        )
        .await,
        vec![200; 3]
    );
    // Turning limits off lifts them at once.
    let reply = server
        .send(
            "PATCH",
            "/api/settings",
            Some(r#"{"rateLimits":{"enabled":false}}"#),
            Some(&server.admin),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        status(&server, "GET", "/api/health", "10.0.0.2", None).await,
        200
    );
}

#[tokio::test]
async fn excluded_ips_are_not_limited() {
    let server = start().await;
    limits(
        &server,
        json!([{"label": "/api/", "duration": 60, "maxRequests": 1}]),
        json!({"excludedIPs": ["10.7.0.0/16"]}),
    )
    .await;
    assert_eq!(
        statuses(&server, "GET", "/api/health", "10.7.1.1", 3).await,
        vec![200; 3]
    );
    assert_eq!(
        statuses(&server, "GET", "/api/health", "10.8.1.1", 3).await,
        vec![200, 429, 429]
    );
}

#[tokio::test]
async fn the_most_specific_rule_wins() {
    let server = start().await;
    limits(
        &server,
        json!([
            {"label": "/api/", "duration": 60, "maxRequests": 5},
            {"label": "GET /api/health", "duration": 60, "maxRequests": 1},
            {"label": "/api/collections/", "duration": 60, "maxRequests": 3},
            {"label": "*:list", "duration": 60, "maxRequests": 2},
            {"label": "users:auth", "duration": 60, "maxRequests": 1},
            {"label": "*:authWithPassword", "duration": 60, "maxRequests": 4}
        ]),
        json!({}),
    )
    .await;
    // METHOD + exact path beats the /api/ prefix.
    assert_eq!(
        statuses(&server, "GET", "/api/health", "10.1.0.1", 2).await,
        vec![200, 429]
    );
    // `/api/` (5) for another method on the same path.
    assert_eq!(
        statuses(&server, "HEAD", "/api/health", "10.1.0.2", 6).await,
        vec![200, 200, 200, 200, 200, 429]
    );
    // A wildcard tag beats path rules; counters are per collection.
    assert_eq!(
        statuses(
            &server,
            "GET",
            "/api/collections/users/records",
            "10.1.0.3",
            3
        )
        .await,
        vec![200, 200, 429]
    );
    assert_eq!(
        statuses(
            &server,
            "GET",
            "/api/collections/_superusers/records",
            "10.1.0.3",
            3
        )
        .await,
        vec![403, 403, 429]
    );
    // The longest prefix beats `/api/` for routes without a tag rule.
    assert_eq!(
        statuses(&server, "GET", "/api/collections", "10.1.0.4", 4).await,
        vec![401, 401, 401, 429]
    );
    // An exact collection tag (`users:auth`) beats a wildcard tag (`*:authWithPassword`).
    let login = json!({"identity": "nobody@example.com", "password": "12345678"});
    let mut codes = Vec::new();
    for _ in 0..2 {
        let (code, _) = status_with(
            &server,
            "POST",
            "/api/collections/users/auth-with-password",
            "10.1.0.5",
            None,
            Some(login.clone()),
        )
        .await;
        codes.push(code);
    }
    assert_eq!(codes, vec![400, 429]);
    // Other collections fall back to `*:authWithPassword`.
    let mut codes = Vec::new();
    for _ in 0..5 {
        let (code, _) = status_with(
            &server,
            "POST",
            "/api/collections/_superusers/auth-with-password",
            "10.1.0.5",
            None,
            Some(login.clone()),
        )
        .await;
        codes.push(code);
    }
    assert_eq!(codes, vec![400, 400, 400, 400, 429]);
}

#[tokio::test]
async fn auth_tag_and_create_tag_cover_their_actions() {
    let server = start().await;
    limits(
        &server,
        json!([
            {"label": "*:auth", "duration": 60, "maxRequests": 1},
            {"label": "*:create", "duration": 60, "maxRequests": 1}
        ]),
        json!({}),
    )
    .await;
    let login = json!({"identity": "nobody@example.com", "password": "12345678"});
    let (first, _) = status_with(
        &server,
        "POST",
        "/api/collections/users/auth-with-password",
        "10.2.0.1",
        None,
        Some(login.clone()),
    )
    .await;
    let (second, body) = status_with(
        &server,
        "POST",
        "/api/collections/users/auth-with-password",
        "10.2.0.1",
        None,
        Some(login),
    )
    .await;
    assert_eq!((first, second), (400, 429), "{body}");
    // auth-refresh is its own tag (`authRefresh`), not `auth`.
    assert_eq!(
        statuses(
            &server,
            "POST",
            "/api/collections/users/auth-refresh",
            "10.2.0.1",
            2
        )
        .await,
        vec![401, 401]
    );
    let user = |n: u32| json!({"email": format!("u{n}@example.com"), "password": "12345678", "passwordConfirm": "12345678"});
    let (first, _) = status_with(
        &server,
        "POST",
        "/api/collections/users/records",
        "10.2.0.2",
        None,
        Some(user(1)),
    )
    .await;
    let (second, _) = status_with(
        &server,
        "POST",
        "/api/collections/users/records",
        "10.2.0.2",
        None,
        Some(user(2)),
    )
    .await;
    assert_eq!((first, second), (200, 429));
    // The refused create wrote nothing.
    let list = server
        .send(
            "GET",
            "/api/collections/users/records?filter=email%3D%27u2%40example.com%27",
            None,
            Some(&server.admin),
        )
        .await;
    assert_eq!(list.json["totalItems"], 0, "{}", list.text);
}

#[tokio::test]
async fn audiences_split_guests_and_records() {
    let server = start().await;
    let (_, token) = server.user("member@example.com", "12345678").await;
    limits(
        &server,
        json!([
            {"label": "/api/health", "audience": "@guest", "duration": 60, "maxRequests": 1},
            {"label": "/api/health", "audience": "@auth", "duration": 60, "maxRequests": 3}
        ]),
        json!({}),
    )
    .await;
    assert_eq!(
        statuses(&server, "GET", "/api/health", "10.3.0.1", 2).await,
        vec![200, 429]
    );
    let mut codes = Vec::new();
    for _ in 0..4 {
        codes.push(status(&server, "GET", "/api/health", "10.3.0.1", Some(&token)).await);
    }
    assert_eq!(codes, vec![200, 200, 200, 429]);
    // A forged token is a guest, not an `@auth` caller.
    let forged = format!("{}x", token);
    assert_eq!(
        status(&server, "GET", "/api/health", "10.3.0.2", Some(&forged)).await,
        200
    );
    assert_eq!(
        status(&server, "GET", "/api/health", "10.3.0.2", Some(&forged)).await,
        429
    );
}

#[tokio::test]
async fn the_window_reopens_after_its_duration() {
    let server = start().await;
    // Windows are whole seconds: with 2 s, two back-to-back requests always share a window.
    limits(
        &server,
        json!([{"label": "/api/health", "duration": 2, "maxRequests": 1}]),
        json!({}),
    )
    .await;
    assert_eq!(
        statuses(&server, "GET", "/api/health", "10.4.0.1", 2).await,
        vec![200, 429]
    );
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    assert_eq!(
        statuses(&server, "GET", "/api/health", "10.4.0.1", 2).await,
        vec![200, 429]
    );
}

#[tokio::test]
async fn batch_sub_requests_are_limited_as_their_routes() {
    let server = start().await;
    server.enable_batch(10).await;
    limits(
        &server,
        json!([{"label": "*:create", "duration": 60, "maxRequests": 1}]),
        json!({}),
    )
    .await;
    let user = |n: u32| {
        json!({"method": "POST", "url": "/api/collections/users/records",
               "body": {"email": format!("b{n}@example.com"), "password": "12345678", "passwordConfirm": "12345678"}})
    };
    let (code, body) = status_with(
        &server,
        "POST",
        "/api/batch",
        "10.5.0.1",
        None,
        Some(json!({"requests": [user(1), user(2)]})),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(
        body["data"]["requests"]["1"]["code"], "batch_request_failed",
        "{body}"
    );
    assert_eq!(
        body["data"]["requests"]["1"]["response"],
        json!({"data": {}, "message": "Too Many Requests.", "status": 429})
    );
    // Nothing of the failed batch was committed.
    let list = server
        .send(
            "GET",
            "/api/collections/users/records",
            None,
            Some(&server.admin),
        )
        .await;
    assert_eq!(list.json["totalItems"], 0, "{}", list.text);
    // Another client still has its allowance; a superuser is exempt.
    let (code, body) = status_with(
        &server,
        "POST",
        "/api/batch",
        "10.5.0.2",
        None,
        Some(json!({"requests": [user(3)]})),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = status_with(
        &server,
        "POST",
        "/api/batch",
        "10.5.0.1",
        Some(&server.admin),
        Some(json!({"requests": [user(4), user(5)]})),
    )
    .await;
    assert_eq!(code, 200, "{body}");
}
