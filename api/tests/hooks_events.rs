//! The JS hook events besides record writes, through the real HTTP API: `onRecordAuthRequest`
//! (every auth answer), `onMailerSend` (every mail, with an SMTP sink), hook crons in
//! `/api/crons`, hook errors with file and line in the request logs, and the model hooks of
//! `$app.save`/`$app.delete` inside hooks.

#![allow(clippy::unwrap_used)]

mod common;
#[path = "mail_support/mod.rs"]
mod mail_support;

use api::hooks::{HooksOptions, HOOK_SUFFIX};
use common::TestServer;
use mail_support::Sink;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

const HOOKS: &str = include_str!("hooks_files/events.pb.js");
const PASSWORD: &str = "1234567890";

/// A server with `events.pb.js` loaded and an `audit` collection.
async fn start(dir: &Path) -> TestServer {
    std::fs::write(dir.join(format!("events{HOOK_SUFFIX}")), HOOKS).unwrap();
    let server = common::start().await;
    server
        .collection(json!({"name": "audit", "type": "base",
            "fields": [{"name": "action", "type": "text"}]}))
        .await;
    let options = HooksOptions {
        pool: 2,
        timeout: Duration::from_secs(2),
        ..HooksOptions::new(dir)
    };
    api::hooks::start(&server.state, options).unwrap();
    server
}

async fn create_user(server: &TestServer, email: &str) -> String {
    let record = server
        .json(
            "POST",
            "/api/collections/users/records",
            json!({"email": email, "password": PASSWORD, "passwordConfirm": PASSWORD}),
            None,
            200,
        )
        .await;
    record["id"].as_str().unwrap().to_string()
}

async fn password_auth(server: &TestServer, email: &str) -> common::Reply {
    let body = json!({"identity": email, "password": PASSWORD}).to_string();
    server
        .send(
            "POST",
            "/api/collections/users/auth-with-password",
            Some(&body),
            None,
        )
        .await
}

async fn audit(server: &TestServer) -> Vec<String> {
    let list = server
        .json(
            "GET",
            "/api/collections/audit/records?sort=@rowid&perPage=100",
            json!({}),
            Some(&server.admin),
            200,
        )
        .await;
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["action"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn auth_request_hooks_see_and_edit_every_auth_answer() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    for email in ["plain@x.io", "deny@x.io", "token@x.io", "own@x.io"] {
        create_user(&server, email).await;
    }

    // Password: the hook edits the record and adds `meta`; the token is a real one.
    let reply = password_auth(&server, "plain@x.io").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["record"]["name"], "seen by password");
    assert_eq!(
        reply.json["meta"],
        json!({"method": "password", "hadToken": true})
    );
    let token = reply.json["token"].as_str().unwrap().to_string();
    assert!(token.len() > 20);

    // Refresh: authMethod is "" (as on the reference).
    let refreshed = server
        .send(
            "POST",
            "/api/collections/users/auth-refresh",
            None,
            Some(&token),
        )
        .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    assert_eq!(refreshed.json["meta"]["method"], "");
    assert_eq!(refreshed.json["record"]["name"], "seen by refresh");

    // A throwing hook answers its error and gives no token.
    let denied = password_auth(&server, "deny@x.io").await;
    assert_eq!(denied.status, 400);
    assert_eq!(denied.json["message"], "Denied by hook.");
    assert!(denied.json.get("token").is_none());

    // The token can be replaced; a hook may answer itself.
    let custom = password_auth(&server, "token@x.io").await;
    assert_eq!(custom.json["token"], "custom-token");
    let own = password_auth(&server, "own@x.io").await;
    assert_eq!(own.status, 200);
    assert_eq!(own.json, json!({"own": true, "method": "password"}));

    // Superusers are no `users`: the tagged hook leaves them alone.
    let admin = server
        .send(
            "POST",
            "/api/collections/_superusers/auth-with-password",
            Some(
                &json!({"identity": common::ADMIN_EMAIL, "password": common::ADMIN_PASSWORD})
                    .to_string(),
            ),
            None,
        )
        .await;
    assert_eq!(admin.status, 200, "{}", admin.text);
    assert!(admin.json.get("meta").is_none());
}

async fn configure_smtp(server: &TestServer, port: u16) {
    server
        .json(
            "PATCH",
            "/api/settings",
            json!({"smtp": {"enabled": true, "host": "127.0.0.1", "port": port, "tls": false},
                "meta": {"appName": "HookApp", "appURL": "http://mail.test/",
                    "senderName": "Mail Sender", "senderAddress": "sender@mail.test"}}),
            Some(&server.admin.clone()),
            200,
        )
        .await;
}

#[tokio::test]
async fn mailer_send_edits_stops_or_lets_every_mail_through() {
    let sink = Sink::start();
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    configure_smtp(&server, sink.port).await;
    create_user(&server, "mail@x.io").await;

    // An auth mail (verification): subject edited, sender replaced, a cc added.
    let reply = server
        .send(
            "POST",
            "/api/collections/users/request-verification",
            Some(&json!({"email": "mail@x.io"}).to_string()),
            None,
        )
        .await;
    assert_eq!(reply.status, 204);
    let mails = sink.wait_for(2).await;
    let mut rcpts: Vec<String> = mails
        .iter()
        .map(|m| m["to"].as_str().unwrap().to_string())
        .collect();
    rcpts.sort();
    assert_eq!(rcpts, ["copy@mail.test", "mail@x.io"]);
    for mail in &mails {
        assert!(
            mail["subject"]
                .as_str()
                .unwrap()
                .starts_with("HOOKED Verify"),
            "{mail}"
        );
        assert!(
            mail["from"].as_str().unwrap().contains("hooks@mail.test"),
            "{mail}"
        );
    }

    // A throwing handler stops that mail (password reset), the answer is unchanged.
    let reply = server
        .send(
            "POST",
            "/api/collections/users/request-password-reset",
            Some(&json!({"email": "mail@x.io"}).to_string()),
            None,
        )
        .await;
    assert_eq!(reply.status, 204);

    // `$app.newMailClient().send` from a route goes through the hook too; a handler that
    // does not call e.next() drops the mail.
    for subject in ["drop me", "from a route"] {
        server
            .json(
                "POST",
                "/api/events/mail",
                json!({"to": "route@x.io", "subject": subject}),
                None,
                200,
            )
            .await;
    }
    let mails = sink.wait_for(4).await;
    let subjects: Vec<&str> = mails[2..]
        .iter()
        .map(|m| m["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["HOOKED from a route", "HOOKED from a route"]);

    // The superuser's test mail waits for the hook: edited, and refused when it throws.
    let test = server
        .send(
            "POST",
            "/api/settings/test/email",
            Some(&json!({"email": "t@x.io", "template": "verification"}).to_string()),
            Some(&server.admin.clone()),
        )
        .await;
    assert_eq!(test.status, 204, "{}", test.text);
    let mails = sink.wait_for(6).await;
    assert!(mails[4..]
        .iter()
        .all(|m| m["subject"].as_str().unwrap().starts_with("HOOKED ")));
    let refused = server
        .send(
            "POST",
            "/api/settings/test/email",
            Some(&json!({"email": "t@x.io", "template": "password-reset"}).to_string()),
            Some(&server.admin.clone()),
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mails = sink.mails();
    assert_eq!(mails.len(), 6, "no reset mail, no dropped mail: {mails:?}");
    assert!(!mails
        .iter()
        .any(|m| m["subject"].as_str().unwrap().contains("Reset")));
}

#[tokio::test]
async fn hook_crons_are_listed_and_run_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let list = server
        .json("GET", "/api/crons", json!({}), Some(&server.admin), 200)
        .await;
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|job| job["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids[0], "hookJob",
        "hook jobs first, as on the reference: {list}"
    );
    assert_eq!(
        list[0],
        json!({"id": "hookJob", "expression": "*/5 * * * *"})
    );
    assert!(!ids.contains(&"removedJob"), "cronRemove removes: {list}");
    assert!(ids.contains(&"__pbDBOptimize__"));

    let run = server
        .send(
            "POST",
            "/api/crons/hookJob",
            None,
            Some(&server.admin.clone()),
        )
        .await;
    assert_eq!(run.status, 204, "{}", run.text);
    // The cron's $app.save runs the model hook too.
    assert_eq!(audit(&server).await, ["cron ran (model hook)"]);
    let missing = server
        .send(
            "POST",
            "/api/crons/removedJob",
            None,
            Some(&server.admin.clone()),
        )
        .await;
    assert_eq!(missing.status, 404);
    let guest = server.send("POST", "/api/crons/hookJob", None, None).await;
    assert_eq!(guest.status, 401);
    assert_eq!(audit(&server).await.len(), 1);
}

async fn logged(server: &TestServer, url: &str) -> Value {
    let started = Instant::now();
    loop {
        let filter = format!("/api/logs?filter=(data.url%3D'{url}')&perPage=5");
        let list = server
            .json("GET", &filter, json!({}), Some(&server.admin), 200)
            .await;
        if let Some(item) = list["items"].as_array().and_then(|items| items.first()) {
            return item.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{url} never logged"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn hook_errors_reach_the_request_logs_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let boom = server.send("GET", "/boom", None, None).await;
    assert_eq!(boom.status, 400);
    assert_eq!(
        boom.json["message"],
        "Something went wrong while processing your request."
    );
    let denied = server.send("GET", "/api/events/denied", None, None).await;
    assert_eq!(denied.status, 403);

    let line = HOOKS
        .lines()
        .position(|l| l.contains("boom at route"))
        .unwrap()
        + 1;
    let entry = logged(&server, "/boom").await;
    assert_eq!(entry["level"], 8);
    let error = entry["data"]["error"].as_str().unwrap();
    assert!(
        error.starts_with("Error: boom at route at events.pb.js:")
            && error.contains(&format!(":{line}:")),
        "{error}"
    );
    let entry = logged(&server, "/api/events/denied").await;
    assert_eq!(entry["data"]["error"], "Not for you.");
    assert_eq!(entry["data"]["status"], 403);
}

#[tokio::test]
async fn model_hooks_fire_for_app_save_and_delete_inside_hooks() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let saved = server
        .json(
            "POST",
            "/api/events/audit",
            json!({"action": "first"}),
            None,
            200,
        )
        .await;
    assert_eq!(saved["action"], "first (model hook)");
    let kept = server
        .json(
            "POST",
            "/api/events/audit",
            json!({"action": "keep me"}),
            None,
            200,
        )
        .await;
    assert_eq!(
        audit(&server).await,
        ["first (model hook)", "keep me (model hook)"]
    );

    let id = saved["id"].as_str().unwrap();
    let reply = server
        .send("DELETE", &format!("/api/events/audit/{id}"), None, None)
        .await;
    assert_eq!(reply.status, 204);
    let id = kept["id"].as_str().unwrap();
    let reply = server
        .send("DELETE", &format!("/api/events/audit/{id}"), None, None)
        .await;
    assert_eq!(reply.status, 204);
    // The delete hook did not call e.next() for "keep": that record stays.
    assert_eq!(audit(&server).await, ["keep me (model hook)"]);
}

/// A one-thread HTTPS server on loopback with a certificate for `localhost` signed by a fresh
/// rcgen CA; answers every request `200 {"secure":true}`. Returns its port and the CA's PEM.
fn tls_server() -> (u16, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    use std::io::{Read, Write};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der().clone()], key)
    .unwrap();
    let config = std::sync::Arc::new(config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { continue };
            let config = std::sync::Arc::clone(&config);
            std::thread::spawn(move || {
                let connection = rustls::ServerConnection::new(config).unwrap();
                let mut stream = rustls::StreamOwned::new(connection, tcp);
                let mut request = Vec::new();
                let mut buf = [0_u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let body = r#"{"secure":true}"#;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes());
                stream.conn.send_close_notify();
                let _ = stream.flush();
            });
        }
    });
    (port, ca.pem())
}

#[tokio::test]
async fn http_send_speaks_https_and_verifies_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let (port, ca_pem) = tls_server();
    let url = format!("https://localhost:{port}/ping");

    // An unknown CA: the certificate is refused, the hook throws, the request answers 400.
    let untrusted = server
        .send(
            "POST",
            "/api/events/fetch",
            Some(&json!({"url": url}).to_string()),
            None,
        )
        .await;
    assert_eq!(untrusted.status, 400, "{}", untrusted.text);

    // Trusted through the extra-CA file: the answer comes through TLS.
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    std::env::set_var(api::hooks::http::EXTRA_CA_ENV, &ca_file);
    let reply = server
        .json("POST", "/api/events/fetch", json!({"url": url}), None, 200)
        .await;
    assert_eq!(reply, json!({"status": 200, "body": r#"{"secure":true}"#}));
    std::env::remove_var(api::hooks::http::EXTRA_CA_ENV);
}

#[tokio::test]
async fn auth_request_hooks_name_the_otp_method() {
    let sink = Sink::start();
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    configure_smtp(&server, sink.port).await;
    server
        .json(
            "PATCH",
            "/api/collections/users",
            json!({"otp": {"enabled": true}}),
            Some(&server.admin.clone()),
            200,
        )
        .await;
    create_user(&server, "otp@x.io").await;
    let requested = server
        .json(
            "POST",
            "/api/collections/users/request-otp",
            json!({"email": "otp@x.io"}),
            None,
            200,
        )
        .await;
    // The OTP mail went through onMailerSend (to the user and the hook's cc).
    let mails = sink.wait_for(2).await;
    let mail = mails.iter().find(|m| m["to"] == "otp@x.io").unwrap();
    assert!(mail["subject"].as_str().unwrap().starts_with("HOOKED "));
    let code = mail_support::otp_code_in(mail);
    let reply = server
        .json(
            "POST",
            "/api/collections/users/auth-with-otp",
            json!({"otpId": requested["otpId"], "password": code}),
            None,
            200,
        )
        .await;
    assert_eq!(reply["meta"]["method"], "otp");
    assert_eq!(reply["record"]["name"], "seen by otp");
}
