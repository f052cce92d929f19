//! Real e-mail through a real SMTP server (an `aiosmtpd` sink started by each test): the
//! superuser's test e-mail (statuses and bodies as measured on PocketBase v0.40.6), the
//! verification and password-reset mails whose links' tokens complete the flows, the
//! enumeration-safe answers, and a broken SMTP server that never delays a request.

mod common;
mod mail_support;

use common::TestServer;
use mail_support::{token_in, Sink};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Points the server's SMTP settings at `port` and sets the app/sender names.
async fn configure_smtp(server: &TestServer, port: u16) {
    server
        .json(
            "PATCH",
            "/api/settings",
            json!({"smtp": {"enabled": true, "host": "127.0.0.1", "port": port, "tls": false},
                "meta": {"appName": "MailApp", "appURL": "http://mail.test/",
                    "senderName": "Mail Sender", "senderAddress": "sender@mail.test"}}),
            Some(&server.admin.clone()),
            200,
        )
        .await;
}

async fn test_email(server: &TestServer, body: Value) -> common::Reply {
    server
        .send(
            "POST",
            "/api/settings/test/email",
            Some(&body.to_string()),
            Some(&server.admin.clone()),
        )
        .await
}

#[tokio::test]
async fn test_email_validates_and_reaches_the_sink() {
    let sink = Sink::start();
    let server = common::start().await;
    configure_smtp(&server, sink.port).await;

    let guest = server
        .send("POST", "/api/settings/test/email", Some("{}"), None)
        .await;
    assert_eq!(guest.status, 401, "{}", guest.text);

    let empty = test_email(&server, json!({})).await;
    assert_eq!(empty.status, 400);
    assert_eq!(
        empty.json,
        json!({"data": {"email": {"code": "validation_required", "message": "Cannot be blank."},
            "template": {"code": "validation_required", "message": "Cannot be blank."}},
            "message": "Failed to send the test email.", "status": 400})
    );
    let bad = test_email(&server, json!({"email": "bad", "template": "nope"})).await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json["data"]["email"]["code"], "validation_is_email");
    assert_eq!(
        bad.json["data"]["template"]["code"],
        "validation_in_invalid"
    );
    let no_collection = test_email(
        &server,
        json!({"email": "t@x.test", "template": "verification", "collection": "nope"}),
    )
    .await;
    assert_eq!(no_collection.status, 400);
    assert_eq!(
        no_collection.json["data"]["collection"]["code"],
        "validation_invalid_auth_collection"
    );
    assert!(sink.mails().is_empty(), "refused requests send nothing");

    let templates = [
        (
            "verification",
            "Verify your MailApp email",
            "[Verify](http://mail.test/_/#/auth/confirm-verification/",
        ),
        (
            "password-reset",
            "Reset your MailApp password",
            "confirm-password-reset/",
        ),
        (
            "email-change",
            "Confirm your MailApp new email address",
            "confirm-email-change/",
        ),
        ("otp", "OTP for MailApp", "123456"),
        ("login-alert", "Login from a new location", "MailApp"),
    ];
    for (template, _, _) in templates {
        let reply = test_email(
            &server,
            json!({"email": "t@x.test", "template": template, "collection": "users"}),
        )
        .await;
        assert_eq!(reply.status, 204, "{template}: {}", reply.text);
    }
    let mails = sink.wait_for(templates.len()).await;
    assert_eq!(mails.len(), templates.len());
    for (mail, (template, subject, fragment)) in mails.iter().zip(templates) {
        assert_eq!(mail["subject"], subject, "{template}");
        assert_eq!(mail["from"], "Mail Sender <sender@mail.test>");
        assert_eq!(mail["rcpt"], json!(["t@x.test"]));
        let text = mail["text"].as_str().expect("text");
        assert!(text.contains(fragment), "{template}: {text}");
        assert!(mail["html"].as_str().expect("html").contains("<html"));
    }
}

#[tokio::test]
async fn verification_mail_token_confirms_and_unknown_email_sends_nothing() {
    let sink = Sink::start();
    let server = common::start().await;
    configure_smtp(&server, sink.port).await;
    let (id, _) = server.user("known@mail.test", "12345678").await;

    for email in ["unknown@mail.test", "known@mail.test"] {
        let reply = server
            .send(
                "POST",
                "/api/collections/users/request-verification",
                Some(&json!({"email": email}).to_string()),
                None,
            )
            .await;
        assert_eq!(reply.status, 204, "same answer for {email}");
        assert!(reply.text.is_empty());
    }
    sink.wait_for(1).await;
    // Had the unknown address been mailed, it would arrive within the same moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mails = sink.mails();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0]["rcpt"], json!(["known@mail.test"]));
    assert_eq!(mails[0]["subject"], "Verify your MailApp email");
    let token = token_in(&mails[0], "confirm-verification");
    // A repeated request within the resend window sends nothing more (as the reference).
    let again = server
        .send(
            "POST",
            "/api/collections/users/request-verification",
            Some(&json!({"email": "known@mail.test"}).to_string()),
            None,
        )
        .await;
    assert_eq!(again.status, 204);

    let before = server
        .json(
            "GET",
            &format!("/api/collections/users/records/{id}"),
            json!(null),
            Some(&server.admin.clone()),
            200,
        )
        .await;
    assert_eq!(before["verified"], false);
    let confirmed = server
        .send(
            "POST",
            "/api/collections/users/confirm-verification",
            Some(&json!({"token": token}).to_string()),
            None,
        )
        .await;
    assert_eq!(confirmed.status, 204, "{}", confirmed.text);
    let after = server
        .json(
            "GET",
            &format!("/api/collections/users/records/{id}"),
            json!(null),
            Some(&server.admin.clone()),
            200,
        )
        .await;
    assert_eq!(after["verified"], true);

    // A verified record gets no further verification mail.
    let again = server
        .send(
            "POST",
            "/api/collections/users/request-verification",
            Some(&json!({"email": "known@mail.test"}).to_string()),
            None,
        )
        .await;
    assert_eq!(again.status, 204);
    let reset = server
        .send(
            "POST",
            "/api/collections/users/request-password-reset",
            Some(&json!({"email": "known@mail.test"}).to_string()),
            None,
        )
        .await;
    assert_eq!(reset.status, 204);
    let mails = sink.wait_for(2).await;
    assert_eq!(mails.len(), 2);
    assert_eq!(mails[1]["subject"], "Reset your MailApp password");
}

#[tokio::test]
async fn password_reset_mail_token_resets_the_password() {
    let sink = Sink::start();
    let server = common::start().await;
    configure_smtp(&server, sink.port).await;
    let (_, old_token) = server.user("reset@mail.test", "12345678").await;

    let reply = server
        .send(
            "POST",
            "/api/collections/users/request-password-reset",
            Some(&json!({"email": "RESET@mail.test"}).to_string()),
            None,
        )
        .await;
    assert_eq!(reply.status, 204);
    let mails = sink.wait_for(1).await;
    assert_eq!(mails[0]["rcpt"], json!(["reset@mail.test"]));
    let token = token_in(&mails[0], "confirm-password-reset");
    assert!(mails[0]["html"].as_str().expect("html").contains(&format!(
        "http://mail.test/_/#/auth/confirm-password-reset/{token}"
    )));

    let confirmed = server
        .send(
            "POST",
            "/api/collections/users/confirm-password-reset",
            Some(
                &json!({"token": token, "password": "new-pass-123", "passwordConfirm": "new-pass-123"})
                    .to_string(),
            ),
            None,
        )
        .await;
    assert_eq!(confirmed.status, 204, "{}", confirmed.text);
    server
        .login("users", "reset@mail.test", "new-pass-123")
        .await;
    let old = server
        .send(
            "POST",
            "/api/collections/users/auth-with-password",
            Some(&json!({"identity": "reset@mail.test", "password": "12345678"}).to_string()),
            None,
        )
        .await;
    assert_eq!(old.status, 400);
    // The reset rotated the token key: the old auth token is dead, and the mailed token
    // cannot be used twice.
    let me = server
        .send(
            "POST",
            "/api/collections/users/auth-refresh",
            None,
            Some(&old_token),
        )
        .await;
    assert_eq!(me.status, 401);
    let replay = server
        .send(
            "POST",
            "/api/collections/users/confirm-password-reset",
            Some(
                &json!({"token": token, "password": "other-pass-1", "passwordConfirm": "other-pass-1"})
                    .to_string(),
            ),
            None,
        )
        .await;
    assert_eq!(replay.status, 400);
}

#[tokio::test]
async fn broken_smtp_never_delays_a_request_and_fails_the_test_email() {
    // A port nobody listens on: connections are refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let server = common::start().await;
    configure_smtp(&server, closed).await;
    server.user("broken@mail.test", "12345678").await;

    let started = Instant::now();
    for _ in 0..20 {
        let reply = server
            .send(
                "POST",
                "/api/collections/users/request-password-reset",
                Some(&json!({"email": "broken@mail.test"}).to_string()),
                None,
            )
            .await;
        assert_eq!(reply.status, 204);
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "requests waited for the mail: {:?}",
        started.elapsed()
    );

    let reply = test_email(
        &server,
        json!({"email": "t@x.test", "template": "verification"}),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    let message = reply.json["message"].as_str().expect("message");
    assert!(
        message.starts_with("Failed to send the test email. Raw error: \n"),
        "{message}"
    );
    assert_eq!(reply.json["data"], json!({}));

    // SMTP disabled: the request flows still answer 204 (the mail goes to the log) and the
    // test e-mail says why it failed.
    server
        .json(
            "PATCH",
            "/api/settings",
            json!({"smtp": {"enabled": false}}),
            Some(&server.admin.clone()),
            200,
        )
        .await;
    let reply = server
        .send(
            "POST",
            "/api/collections/users/request-verification",
            Some(&json!({"email": "broken@mail.test"}).to_string()),
            None,
        )
        .await;
    assert_eq!(reply.status, 204);
    let reply = test_email(&server, json!({"email": "t@x.test", "template": "otp"})).await;
    assert_eq!(reply.status, 400);
    assert!(reply.json["message"]
        .as_str()
        .expect("message")
        .contains("SMTP is disabled"));
}

/// Requests that trigger a mail answer as fast as the same requests with SMTP off (the mail
/// is queued), and a burst of mails all reach the sink. `request-otp` is used (the reference
/// de-duplicates verification/reset mails, not OTP ones). Prints the numbers
/// (`--nocapture`).
#[tokio::test]
async fn mail_burst_is_delivered_without_slowing_requests() {
    const REQUESTS: usize = 200;
    let sink = Sink::start();
    let server = common::start().await;
    configure_smtp(&server, sink.port).await;
    let admin = server.admin.clone();
    server
        .json(
            "PATCH",
            "/api/collections/users",
            json!({"otp": {"enabled": true}}),
            Some(&admin),
            200,
        )
        .await;
    // A record holds at most OTP_CODES_PER_RECORD_MAX codes (as the reference): the two
    // rounds of requests rotate over enough users to stay within it.
    let users = (2 * REQUESTS).div_ceil(api::auth::otp::OTP_CODES_PER_RECORD_MAX);
    let emails: Vec<String> = (0..users).map(|i| format!("burst{i}@mail.test")).collect();
    for email in &emails {
        server.user(email, "12345678").await;
    }

    async fn p99(server: &TestServer, emails: &[String]) -> Duration {
        let mut times = Vec::with_capacity(REQUESTS);
        for index in 0..REQUESTS {
            let email = &emails[index % emails.len()];
            let started = Instant::now();
            let reply = server
                .send(
                    "POST",
                    "/api/collections/users/request-otp",
                    Some(&json!({ "email": email }).to_string()),
                    None,
                )
                .await;
            times.push(started.elapsed());
            assert_eq!(reply.status, 200);
        }
        times.sort();
        times[REQUESTS * 99 / 100]
    }
    let started = Instant::now();
    let with_mail = p99(&server, &emails).await;
    let mails = sink.wait_for(REQUESTS).await;
    let elapsed = started.elapsed();
    assert_eq!(mails.len(), REQUESTS);
    assert!(mails
        .iter()
        .all(|mail| mail["subject"] == "OTP for MailApp"));
    server
        .json(
            "PATCH",
            "/api/settings",
            json!({"smtp": {"enabled": false}}),
            Some(&admin),
            200,
        )
        .await;
    let without_mail = p99(&server, &emails).await;
    println!(
        "p99 request-otp: {with_mail:?} with SMTP, {without_mail:?} with SMTP off; \
         {REQUESTS} mails delivered in {elapsed:?} ({:.0} mails/s)",
        REQUESTS as f64 / elapsed.as_secs_f64()
    );
}
