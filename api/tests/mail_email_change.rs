//! E-mail change end to end through a real SMTP sink: request (auth, validation as measured
//! on PocketBase v0.40.6), the link mailed to the new address, confirm with the password
//! (statuses and field codes as the reference), token key rotation, replay refused.

mod common;
mod mail_support;

use common::TestServer;
use mail_support::{token_in, Sink};
use serde_json::{json, Value};

async fn configure_smtp(server: &TestServer, port: u16) {
    server
        .json(
            "PATCH",
            "/api/settings",
            json!({"smtp": {"enabled": true, "host": "127.0.0.1", "port": port},
                "meta": {"appName": "MailApp", "appURL": "http://mail.test"}}),
            Some(&server.admin.clone()),
            200,
        )
        .await;
}

async fn post(server: &TestServer, path: &str, body: Value, token: Option<&str>) -> common::Reply {
    server
        .send(
            "POST",
            &format!("/api/collections/users/{path}"),
            Some(&body.to_string()),
            token,
        )
        .await
}

#[tokio::test]
async fn request_email_change_checks_the_caller_and_the_address() {
    let sink = Sink::start();
    let server = common::start().await;
    configure_smtp(&server, sink.port).await;
    let (_, user) = server.user("e1@x.test", "12345678").await;
    server.user("e2@x.test", "12345678").await;

    let guest = post(
        &server,
        "request-email-change",
        json!({"newEmail": "n@x.test"}),
        None,
    )
    .await;
    assert_eq!(guest.status, 401);
    assert_eq!(
        guest.json["message"],
        "The request requires valid record authorization token."
    );
    let admin = server.admin.clone();
    let superuser = post(
        &server,
        "request-email-change",
        json!({"newEmail": "n@x.test"}),
        Some(&admin),
    )
    .await;
    assert_eq!(superuser.status, 403);
    assert_eq!(
        superuser.json,
        json!({"data": {}, "message": "The request requires auth record from _superusers collection.", "status": 403})
    );
    for (body, code) in [
        (json!({}), "validation_required"),
        (json!({"newEmail": "bad"}), "validation_is_email"),
        (
            json!({"newEmail": "e1@x.test"}),
            "validation_not_in_invalid",
        ),
        (
            json!({"newEmail": "E2@x.test"}),
            "validation_invalid_new_email",
        ),
    ] {
        let reply = post(&server, "request-email-change", body.clone(), Some(&user)).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text);
        assert_eq!(reply.json["data"]["newEmail"]["code"], code, "{body}");
        assert_eq!(
            reply.json["message"],
            "An error occurred while validating the submitted data."
        );
    }
    assert!(sink.mails().is_empty());
    // The same address in another case is a change (as on the reference).
    let reply = post(
        &server,
        "request-email-change",
        json!({"newEmail": "E1@x.test"}),
        Some(&user),
    )
    .await;
    assert_eq!(reply.status, 204, "{}", reply.text);
    let mails = sink.wait_for(1).await;
    assert_eq!(mails[0]["rcpt"], json!(["E1@x.test"]));
    assert_eq!(
        mails[0]["subject"],
        "Confirm your MailApp new email address"
    );
}

#[tokio::test]
async fn confirm_email_change_with_the_mailed_token() {
    let sink = Sink::start();
    let server = common::start().await;
    configure_smtp(&server, sink.port).await;
    let (id, user) = server.user("old@x.test", "12345678").await;

    let reply = post(
        &server,
        "request-email-change",
        json!({"newEmail": "new@x.test"}),
        Some(&user),
    )
    .await;
    assert_eq!(reply.status, 204);
    let mails = sink.wait_for(1).await;
    assert_eq!(mails[0]["rcpt"], json!(["new@x.test"]));
    let token = token_in(&mails[0], "confirm-email-change");

    let empty = post(&server, "confirm-email-change", json!({}), None).await;
    assert_eq!(empty.status, 400);
    assert_eq!(
        empty.json["data"],
        json!({"password": {"code": "validation_required", "message": "Cannot be blank."},
            "token": {"code": "validation_required", "message": "Cannot be blank."}})
    );
    let garbage = post(
        &server,
        "confirm-email-change",
        json!({"token": "abc", "password": "x"}),
        None,
    )
    .await;
    assert_eq!(garbage.status, 400);
    assert_eq!(
        garbage.json["data"],
        json!({"password": {"code": "validation_invalid_password", "message": "Missing or invalid auth record password."},
            "token": {"code": "validation_invalid_token_payload", "message": "Invalid token payload - newEmail must be set."}})
    );
    let wrong = post(
        &server,
        "confirm-email-change",
        json!({"token": token, "password": "wrong-password"}),
        None,
    )
    .await;
    assert_eq!(wrong.status, 400);
    assert_eq!(
        wrong.json["data"],
        json!({"password": {"code": "validation_invalid_password", "message": "Missing or invalid auth record password."}})
    );

    let ok = post(
        &server,
        "confirm-email-change",
        json!({"token": token, "password": "12345678"}),
        None,
    )
    .await;
    assert_eq!(ok.status, 204, "{}", ok.text);
    let record = server
        .json(
            "GET",
            &format!("/api/collections/users/records/{id}"),
            json!(null),
            Some(&server.admin.clone()),
            200,
        )
        .await;
    assert_eq!(record["email"], "new@x.test");
    assert_eq!(record["verified"], true);
    server.login("users", "new@x.test", "12345678").await;

    // The token key rotated: the old auth token and the used link are dead.
    let refresh = server
        .send(
            "POST",
            "/api/collections/users/auth-refresh",
            None,
            Some(&user),
        )
        .await;
    assert_eq!(refresh.status, 401);
    let replay = post(
        &server,
        "confirm-email-change",
        json!({"token": token, "password": "12345678"}),
        None,
    )
    .await;
    assert_eq!(replay.status, 400);
    assert_eq!(
        replay.json["data"]["token"]["code"],
        "validation_invalid_token"
    );
}

#[tokio::test]
async fn confirm_refuses_an_address_taken_in_the_meantime() {
    let sink = Sink::start();
    let server = common::start().await;
    configure_smtp(&server, sink.port).await;
    let (id, user) = server.user("a@x.test", "12345678").await;
    let reply = post(
        &server,
        "request-email-change",
        json!({"newEmail": "b@x.test"}),
        Some(&user),
    )
    .await;
    assert_eq!(reply.status, 204);
    let token = token_in(&sink.wait_for(1).await[0], "confirm-email-change");
    server.user("b@x.test", "12345678").await;

    let reply = post(
        &server,
        "confirm-email-change",
        json!({"token": token, "password": "12345678"}),
        None,
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(
        reply.json["data"]["token"]["code"],
        "validation_invalid_new_email"
    );
    let record = server
        .json(
            "GET",
            &format!("/api/collections/users/records/{id}"),
            json!(null),
            Some(&server.admin.clone()),
            200,
        )
        .await;
    assert_eq!(record["email"], "a@x.test", "nothing half-applied");
}
