//! OTP end to end through a real SMTP sink: `request-otp` (enumeration-safe), the mailed code,
//! `auth-with-otp`, the `_otps` rows (committed, consumed, expired), the attempts limit —
//! statuses and messages as measured on PocketBase v0.40.6.

mod common;
mod mail_support;

use common::TestServer;
use mail_support::{otp_code_in as code_in, Sink};
use serde_json::{json, Value};

async fn setup(sink: &Sink, otp: Value) -> TestServer {
    let server = common::start().await;
    let admin = server.admin.clone();
    server
        .json(
            "PATCH",
            "/api/settings",
            json!({"smtp": {"enabled": true, "host": "127.0.0.1", "port": sink.port},
                "meta": {"appName": "OtpApp"}}),
            Some(&admin),
            200,
        )
        .await;
    server
        .json(
            "PATCH",
            "/api/collections/users",
            json!({ "otp": otp }),
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

async fn otp_rows(server: &TestServer) -> Vec<Value> {
    let list = server
        .json(
            "GET",
            "/api/collections/_otps/records",
            json!(null),
            Some(&server.admin.clone()),
            200,
        )
        .await;
    list["items"].as_array().expect("items").clone()
}

#[tokio::test]
async fn otp_disabled_is_403() {
    let sink = Sink::start();
    let server = setup(&sink, json!({"enabled": false})).await;
    for (path, body) in [
        ("request-otp", json!({"email": "a@x.test"})),
        ("auth-with-otp", json!({"otpId": "x", "password": "1"})),
    ] {
        let reply = post(&server, path, body).await;
        assert_eq!(reply.status, 403, "{path}");
        assert_eq!(
            reply.json["message"],
            "The collection is not configured to allow OTP authentication."
        );
    }
}

#[tokio::test]
async fn otp_is_mailed_and_signs_in_once() {
    let sink = Sink::start();
    let server = setup(&sink, json!({"enabled": true, "length": 6})).await;
    let (id, _) = server.user("otp@x.test", "12345678").await;

    let blank = post(&server, "request-otp", json!({})).await;
    assert_eq!(blank.status, 400);
    assert_eq!(blank.json["data"]["email"]["code"], "validation_required");
    let bad = post(&server, "request-otp", json!({"email": "bad"})).await;
    assert_eq!(bad.json["data"]["email"]["code"], "validation_is_email");

    // Unknown address: the same answer, nothing stored, nothing sent.
    let unknown = post(&server, "request-otp", json!({"email": "nobody@x.test"})).await;
    assert_eq!(unknown.status, 200);
    assert_eq!(unknown.json["otpId"].as_str().expect("otpId").len(), 15);
    let known = post(&server, "request-otp", json!({"email": "OTP@x.test"})).await;
    assert_eq!(known.status, 200);
    let otp_id = known.json["otpId"].as_str().expect("otpId").to_string();
    assert_eq!(otp_id.len(), 15);
    assert_eq!(
        known.json.as_object().expect("object").len(),
        1,
        "only otpId"
    );
    sink.wait_for(1).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let mails = sink.mails();
    assert_eq!(mails.len(), 1, "the unknown address got no mail");
    assert_eq!(mails[0]["rcpt"], json!(["otp@x.test"]));
    assert_eq!(mails[0]["subject"], "OTP for OtpApp");
    let code = code_in(&mails[0]);
    assert_eq!(code.len(), 6, "otp.length");
    let rows = otp_rows(&server).await;
    assert_eq!(rows.len(), 1, "one _otps row: {rows:?}");
    assert_eq!(rows[0]["id"], otp_id);
    assert_eq!(rows[0]["recordRef"], id);
    assert_eq!(rows[0]["collectionRef"], "_pb_users_auth_");
    assert!(rows[0].get("password").is_none() || rows[0]["password"] == "");

    let blank = post(&server, "auth-with-otp", json!({})).await;
    assert_eq!(blank.status, 400);
    assert_eq!(
        blank.json["data"],
        json!({"otpId": {"code": "validation_required", "message": "Cannot be blank."},
            "password": {"code": "validation_required", "message": "Cannot be blank."}})
    );
    let wrong_code = if code == "000000" { "111111" } else { "000000" };
    let wrong = post(
        &server,
        "auth-with-otp",
        json!({"otpId": otp_id, "password": wrong_code}),
    )
    .await;
    assert_eq!(wrong.status, 400);
    assert_eq!(
        wrong.json,
        json!({"data": {}, "message": "Invalid or expired OTP.", "status": 400})
    );
    let unknown_id = post(
        &server,
        "auth-with-otp",
        json!({"otpId": unknown.json["otpId"], "password": code}),
    )
    .await;
    assert_eq!(unknown_id.status, 400);

    let ok = post(
        &server,
        "auth-with-otp",
        json!({"otpId": otp_id, "password": code}),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.json["record"]["id"], id);
    assert_eq!(
        ok.json["record"]["verified"], true,
        "the code proved the address"
    );
    let token = ok.json["token"].as_str().expect("token");
    let refreshed = server
        .send(
            "POST",
            "/api/collections/users/auth-refresh",
            None,
            Some(token),
        )
        .await;
    assert_eq!(refreshed.status, 200, "a full auth token");
    assert!(otp_rows(&server).await.is_empty(), "the code is consumed");
    // An unverified record proven by OTP loses its (possibly pre-registered) password.
    let old_password = post(
        &server,
        "auth-with-password",
        json!({"identity": "otp@x.test", "password": "12345678"}),
    )
    .await;
    assert_eq!(old_password.status, 400, "{}", old_password.text);
    let replay = post(
        &server,
        "auth-with-otp",
        json!({"otpId": otp_id, "password": code}),
    )
    .await;
    assert_eq!(replay.status, 400);
}

#[tokio::test]
async fn otp_brute_force_is_bounded_per_record() {
    let sink = Sink::start();
    let server = setup(&sink, json!({"enabled": true})).await;
    server.user("victim@x.test", "12345678").await;
    server.user("other@x.test", "12345678").await;
    let first = post(&server, "request-otp", json!({"email": "victim@x.test"})).await;
    let otp_id = first.json["otpId"].as_str().expect("otpId").to_string();
    let code = code_in(&sink.wait_for(1).await[0]);
    assert_eq!(code.len(), 8, "default otp.length");
    let wrong = if code == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    for attempt in 1..=5 {
        let reply = post(
            &server,
            "auth-with-otp",
            json!({"otpId": otp_id, "password": wrong}),
        )
        .await;
        assert_eq!(reply.status, 400, "attempt {attempt}");
    }
    for body in [
        json!({"otpId": otp_id, "password": wrong}),
        json!({"otpId": otp_id, "password": code}),
    ] {
        let reply = post(&server, "auth-with-otp", body).await;
        assert_eq!(reply.status, 429);
        assert_eq!(
            reply.json["message"],
            "Too many attempts, please try again later with a new OTP."
        );
    }
    // A new code for the same record is locked too; another record is not.
    let second = post(&server, "request-otp", json!({"email": "victim@x.test"})).await;
    let code2 = code_in(&sink.wait_for(2).await[1]);
    let reply = post(
        &server,
        "auth-with-otp",
        json!({"otpId": second.json["otpId"], "password": code2}),
    )
    .await;
    assert_eq!(reply.status, 429);
    let other = post(&server, "request-otp", json!({"email": "other@x.test"})).await;
    let code3 = code_in(&sink.wait_for(3).await[2]);
    let reply = post(
        &server,
        "auth-with-otp",
        json!({"otpId": other.json["otpId"], "password": code3}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

#[tokio::test]
async fn expired_otp_is_refused_and_cleaned_up() {
    let sink = Sink::start();
    let server = setup(&sink, json!({"enabled": true, "duration": 1})).await;
    server.user("late@x.test", "12345678").await;
    let reply = post(&server, "request-otp", json!({"email": "late@x.test"})).await;
    let otp_id = reply.json["otpId"].as_str().expect("otpId").to_string();
    let code = code_in(&sink.wait_for(1).await[0]);
    assert_eq!(otp_rows(&server).await.len(), 1);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let reply = post(
        &server,
        "auth-with-otp",
        json!({"otpId": otp_id, "password": code}),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.json["message"], "Invalid or expired OTP.");
    assert!(otp_rows(&server).await.is_empty(), "expired row deleted");
}

/// The reference mails at most 10 codes per record: the 11th and later `request-otp` for the
/// same address answer 200 with the newest code's id, store nothing and send nothing; other
/// records are not affected.
#[tokio::test]
async fn otp_codes_per_record_are_capped_like_the_reference() {
    let sink = Sink::start();
    let server = setup(&sink, json!({"enabled": true, "length": 6})).await;
    server.user("capped@x.test", "12345678").await;
    server.user("other@x.test", "12345678").await;
    let max = api::auth::otp::OTP_CODES_PER_RECORD_MAX;
    let mut ids = Vec::new();
    for _ in 0..max + 5 {
        let reply = post(&server, "request-otp", json!({"email": "capped@x.test"})).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        ids.push(reply.json["otpId"].as_str().expect("otpId").to_string());
    }
    let first: std::collections::BTreeSet<&String> = ids[..max].iter().collect();
    assert_eq!(
        first.len(),
        max,
        "the first {max} requests get distinct codes"
    );
    for id in &ids[max..] {
        assert_eq!(id, &ids[max - 1], "beyond the cap: the newest code's id");
    }
    sink.wait_for(max).await;
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert_eq!(sink.mails().len(), max, "no mail beyond the cap");
    let rows = otp_rows(&server).await;
    assert_eq!(rows.len(), max, "no row beyond the cap");
    for id in &ids[..max] {
        assert!(rows.iter().any(|row| row["id"] == json!(id)), "{id} stored");
    }
    // Another record still gets its code.
    let other = post(&server, "request-otp", json!({"email": "other@x.test"})).await;
    assert_eq!(other.status, 200);
    let mails = sink.wait_for(max + 1).await;
    assert!(mails
        .iter()
        .any(|mail| mail["rcpt"] == json!(["other@x.test"])));
}
