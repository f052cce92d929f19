//! MFA end to end (password + OTP through a real SMTP sink): the first factor answers 401
//! `{"mfaId"}`, a different second factor completes the login, `_mfas` rows are committed and
//! consumed; statuses and messages as measured on PocketBase v0.40.6.

mod common;
mod mail_support;

use common::TestServer;
use mail_support::{otp_code_in as code_in, Sink};
use serde_json::{json, Value};

async fn setup(sink: &Sink) -> TestServer {
    let server = common::start().await;
    let admin = server.admin.clone();
    server
        .json(
            "PATCH",
            "/api/settings",
            json!({"smtp": {"enabled": true, "host": "127.0.0.1", "port": sink.port}}),
            Some(&admin),
            200,
        )
        .await;
    server
        .json(
            "PATCH",
            "/api/collections/users",
            json!({"otp": {"enabled": true}, "mfa": {"enabled": true}}),
            Some(&admin),
            200,
        )
        .await;
    server
}

async fn post(server: &TestServer, path: &str, body: Value) -> common::Reply {
    server
        .send(
            "POST",
            &format!("/api/collections/users/{path}"),
            Some(&body.to_string()),
            None,
        )
        .await
}

async fn mfa_rows(server: &TestServer) -> usize {
    let list = server
        .json(
            "GET",
            "/api/collections/_mfas/records",
            json!(null),
            Some(&server.admin.clone()),
            200,
        )
        .await;
    list["items"].as_array().expect("items").len()
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
    let id = record["id"].as_str().expect("id").to_string();
    // Verified, so an OTP sign-in keeps the password (see otp_flow.rs).
    server
        .json(
            "PATCH",
            &format!("/api/collections/users/records/{id}"),
            json!({"verified": true}),
            Some(&server.admin.clone()),
            200,
        )
        .await;
    id
}

#[tokio::test]
async fn password_then_otp_completes_the_login() {
    let sink = Sink::start();
    let server = setup(&sink).await;
    let id = create_user(&server, "mfa@x.test").await;
    create_user(&server, "other@x.test").await;
    let password = json!({"identity": "mfa@x.test", "password": "12345678"});
    let methods = server
        .json(
            "GET",
            "/api/collections/users/auth-methods",
            json!(null),
            None,
            200,
        )
        .await;
    assert_eq!(methods["otp"]["enabled"], true);
    assert_eq!(methods["mfa"]["enabled"], true);

    let first = post(&server, "auth-with-password", password.clone()).await;
    assert_eq!(first.status, 401, "{}", first.text);
    let mfa_id = first.json["mfaId"].as_str().expect("mfaId").to_string();
    assert_eq!(
        first.json.as_object().expect("object").len(),
        1,
        "only mfaId"
    );
    assert_eq!(mfa_rows(&server).await, 1);

    let mut same = password.clone();
    same["mfaId"] = json!(mfa_id);
    let reply = post(&server, "auth-with-password", same).await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.json,
        json!({"data": {}, "message": "A different authentication method is required.", "status": 400})
    );
    let mut bogus = password.clone();
    bogus["mfaId"] = json!("bogus");
    let reply = post(&server, "auth-with-password", bogus).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json["message"], "Invalid or expired MFA session.");

    // Another record's second factor cannot use this session.
    let other = post(&server, "request-otp", json!({"email": "other@x.test"})).await;
    let other_code = code_in(&sink.wait_for(1).await[0]);
    let reply = post(
        &server,
        "auth-with-otp",
        json!({"otpId": other.json["otpId"], "password": other_code, "mfaId": mfa_id}),
    )
    .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json["message"], "Invalid or expired MFA session.");

    let otp = post(&server, "request-otp", json!({"email": "mfa@x.test"})).await;
    let code = code_in(&sink.wait_for(2).await[1]);
    let done = post(
        &server,
        "auth-with-otp",
        json!({"otpId": otp.json["otpId"], "password": code, "mfaId": mfa_id}),
    )
    .await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(done.json["record"]["id"], id);
    assert!(done.json["token"].as_str().is_some_and(|t| !t.is_empty()));
    assert_eq!(mfa_rows(&server).await, 0, "the session is consumed");

    let mut replay = password.clone();
    replay["mfaId"] = json!(mfa_id);
    let reply = post(&server, "auth-with-password", replay).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json["message"], "Invalid or expired MFA session.");
}

#[tokio::test]
async fn otp_then_password_completes_the_login() {
    let sink = Sink::start();
    let server = setup(&sink).await;
    create_user(&server, "mfa2@x.test").await;
    let otp = post(&server, "request-otp", json!({"email": "mfa2@x.test"})).await;
    let code = code_in(&sink.wait_for(1).await[0]);
    let first = post(
        &server,
        "auth-with-otp",
        json!({"otpId": otp.json["otpId"], "password": code}),
    )
    .await;
    assert_eq!(first.status, 401, "{}", first.text);
    let mfa_id = first.json["mfaId"].as_str().expect("mfaId").to_string();

    let wrong = post(
        &server,
        "auth-with-password",
        json!({"identity": "mfa2@x.test", "password": "wrong-pass", "mfaId": mfa_id}),
    )
    .await;
    assert_eq!(wrong.status, 400);
    assert_eq!(wrong.json["message"], "Failed to authenticate.");
    let done = post(
        &server,
        "auth-with-password",
        json!({"identity": "mfa2@x.test", "password": "12345678", "mfaId": mfa_id}),
    )
    .await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(mfa_rows(&server).await, 0);
}
