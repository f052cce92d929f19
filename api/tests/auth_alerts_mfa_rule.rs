//! Login alerts, `mfa.rule` and an OTP second factor that is not spent on a bad `mfaId`,
//! through the HTTP API with a real SMTP sink; behaviour as measured on PocketBase v0.40.6:
//! - a completed sign-in records its origin (`md5(ip + userAgent)`) in `_authOrigins`; a new
//!   origin that is not the record's first mails "Login from a new location" with
//!   `<date> - <ip> <userAgent>`; a known one only bumps `updated`; 5 origins are kept;
//! - `mfa.rule` limits MFA to the records it matches;
//! - a first factor's OTP presented with an unusable `mfaId` answers the MFA error and the code
//!   stays valid.

#![allow(clippy::unwrap_used)]

mod common;
mod mail_support;

use common::TestServer;
use mail_support::{otp_code_in, Sink};
use serde_json::{json, Value};

async fn with_smtp(sink: &Sink) -> TestServer {
    let server = common::start().await;
    server
        .json(
            "PATCH",
            "/api/settings",
            json!({"smtp": {"enabled": true, "host": "127.0.0.1", "port": sink.port}}),
            Some(&server.admin),
            200,
        )
        .await;
    server
}

async fn login_as(server: &TestServer, email: &str, user_agent: &str) -> (u16, Value) {
    let response = server
        .client
        .post(format!(
            "{}/api/collections/users/auth-with-password",
            server.base
        ))
        .header("user-agent", user_agent)
        .json(&json!({"identity": email, "password": "12345678"}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn origins(server: &TestServer) -> Vec<Value> {
    let list = server
        .json(
            "GET",
            "/api/collections/_authOrigins/records?sort=created",
            Value::Null,
            Some(&server.admin),
            200,
        )
        .await;
    // Only the users' origins (the superuser's own sign-ins have theirs too).
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["collectionRef"] == "_pb_users_auth_")
        .cloned()
        .collect()
}

/// The users' origins once there are `count` (a new origin is committed after its alert
/// mail went out, so it can lag the mail by a moment).
async fn origins_eventually(server: &TestServer, count: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let found = origins(server).await;
        if found.len() == count || std::time::Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn create_user(server: &TestServer, email: &str) -> String {
    let record = server
        .json(
            "POST",
            "/api/collections/users/records",
            json!({"email": email, "password": "12345678", "passwordConfirm": "12345678"}),
            None,
            200,
        )
        .await;
    record["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn login_alert_mails_a_new_origin_but_not_the_first_or_a_known_one() {
    let sink = Sink::start();
    let server = with_smtp(&sink).await;
    let id = create_user(&server, "alert@example.com").await;

    assert_eq!(login_as(&server, "alert@example.com", "ua-A").await.0, 200);
    let first = origins(&server).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["recordRef"], json!(id));
    assert_eq!(first[0]["collectionRef"], "_pb_users_auth_");
    // The reference's fingerprint of 127.0.0.1 + "ua-A" (measured).
    assert_eq!(first[0]["fingerprint"], "95a29056546061617c69e3bdbb0ec619");
    assert_eq!(login_as(&server, "alert@example.com", "ua-A").await.0, 200);
    assert_eq!(origins(&server).await.len(), 1);

    assert_eq!(login_as(&server, "alert@example.com", "ua-B").await.0, 200);
    let mails = sink.wait_for(1).await;
    assert_eq!(mails[0]["subject"], "Login from a new location");
    let text = mails[0]["text"].as_str().unwrap();
    assert!(text.contains(" - 127.0.0.1 ua-B"), "{text}");
    assert_eq!(origins_eventually(&server, 2).await.len(), 2);

    for agent in ["ua-C", "ua-D", "ua-E", "ua-F"] {
        assert_eq!(login_as(&server, "alert@example.com", agent).await.0, 200);
    }
    sink.wait_for(5).await;
    assert_eq!(
        origins_eventually(&server, 5).await.len(),
        5,
        "only the 5 most recent are kept"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(origins(&server).await.len(), 5, "never more than 5");

    // Off: no origin, no mail.
    server
        .json(
            "PATCH",
            "/api/collections/users",
            json!({"authAlert": {"enabled": false}}),
            Some(&server.admin),
            200,
        )
        .await;
    assert_eq!(login_as(&server, "alert@example.com", "ua-G").await.0, 200);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(sink.mails().len(), 5);
    assert!(origins(&server)
        .await
        .iter()
        .all(|o| o["fingerprint"] != json!(api::auth::origins::fingerprint("127.0.0.1", "ua-G"))));
}

#[tokio::test]
async fn mfa_rule_limits_mfa_to_the_matching_records() {
    let sink = Sink::start();
    let server = with_smtp(&sink).await;
    server
        .json(
            "PATCH",
            "/api/collections/users",
            json!({"otp": {"enabled": true}, "mfa": {"enabled": true, "rule": "email ~ 'strict'"}}),
            Some(&server.admin),
            200,
        )
        .await;
    create_user(&server, "strict@example.com").await;
    create_user(&server, "relaxed@example.com").await;
    let (status, body) = login_as(&server, "strict@example.com", "t").await;
    assert_eq!(status, 401, "{body}");
    assert!(body["mfaId"].is_string());
    let (status, body) = login_as(&server, "relaxed@example.com", "t").await;
    assert_eq!(status, 200, "{body}");
    assert!(body["token"].is_string());
}

#[tokio::test]
async fn an_otp_is_not_spent_on_an_unusable_mfa_id() {
    let sink = Sink::start();
    let server = with_smtp(&sink).await;
    server
        .json(
            "PATCH",
            "/api/collections/users",
            json!({"otp": {"enabled": true}, "mfa": {"enabled": true}, "authAlert": {"enabled": false}}),
            Some(&server.admin),
            200,
        )
        .await;
    create_user(&server, "two@example.com").await;
    let otp = server
        .json(
            "POST",
            "/api/collections/users/request-otp",
            json!({"email": "two@example.com"}),
            None,
            200,
        )
        .await;
    let otp_id = otp["otpId"].as_str().unwrap().to_string();
    let code = otp_code_in(&sink.wait_for(1).await[0]);

    let reply = server
        .send(
            "POST",
            "/api/collections/users/auth-with-otp?mfaId=unknownmfa1234",
            Some(&json!({"otpId": otp_id, "password": code}).to_string()),
            None,
        )
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json["message"], "Invalid or expired MFA session.");

    // The password first factor, then the same code completes the login.
    let (status, body) = login_as(&server, "two@example.com", "t").await;
    assert_eq!(status, 401);
    let mfa_id = body["mfaId"].as_str().unwrap();
    let reply = server
        .send(
            "POST",
            &format!("/api/collections/users/auth-with-otp?mfaId={mfa_id}"),
            Some(&json!({"otpId": otp_id, "password": code}).to_string()),
            None,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.json["token"].is_string());
}

/// As the reference (which skips saving a new origin when its alert mail fails): a new origin
/// whose alert cannot be delivered stays unknown, so the next sign-in from it alerts again;
/// once the mail goes out, the origin is recorded.
#[tokio::test]
async fn a_new_origin_is_kept_only_after_its_alert_was_sent() {
    let sink = Sink::start();
    let server = with_smtp(&sink).await;
    create_user(&server, "failing@example.com").await;
    assert_eq!(
        login_as(&server, "failing@example.com", "ua-A").await.0,
        200
    );
    assert_eq!(origins_eventually(&server, 1).await.len(), 1);

    // SMTP pointing at a closed port: the alert fails (after the queue's retries).
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    server
        .json(
            "PATCH",
            "/api/settings",
            json!({"smtp": {"enabled": true, "host": "127.0.0.1", "port": closed}}),
            Some(&server.admin),
            200,
        )
        .await;
    assert_eq!(
        login_as(&server, "failing@example.com", "ua-B").await.0,
        200
    );
    // The queue gives up after MAIL_ATTEMPTS with pauses of 0.5 s and 1 s.
    tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    let kept = origins(&server).await;
    assert_eq!(
        kept.len(),
        1,
        "the origin of the failed alert is not saved: {kept:?}"
    );
    assert_eq!(sink.mails().len(), 0);

    // Delivery works again: the same origin alerts again and is then recorded.
    server
        .json(
            "PATCH",
            "/api/settings",
            json!({"smtp": {"enabled": true, "host": "127.0.0.1", "port": sink.port}}),
            Some(&server.admin),
            200,
        )
        .await;
    assert_eq!(
        login_as(&server, "failing@example.com", "ua-B").await.0,
        200
    );
    let mails = sink.wait_for(1).await;
    assert_eq!(mails[0]["subject"], "Login from a new location");
    assert!(mails[0]["text"].as_str().unwrap().contains("ua-B"));
    let kept = origins_eventually(&server, 2).await;
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(kept
        .iter()
        .any(|o| o["fingerprint"] == json!(api::auth::origins::fingerprint("127.0.0.1", "ua-B"))));
    // Known now: no further alert.
    assert_eq!(
        login_as(&server, "failing@example.com", "ua-B").await.0,
        200
    );
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(sink.mails().len(), 1);
}
