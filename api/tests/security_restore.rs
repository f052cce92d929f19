//! Restores never revive revoked tokens (issue #12 hole 9a). PocketBase revives them (a token
//! revoked after the restore point works again); pocketlog is stricter on purpose: every
//! restore path leaves `ROTATE_SECRETS_MARKER` and the next start rotates every auth
//! collection's token secrets as one commit after the restored state
//! (`api::backups::finish_restore`, ARCHITECTURE.md "Restores").
//!
//! Guards against: a point-in-time restore or a backup restore bringing back tokens revoked by
//! a password change or a deleted user; the marker being lost or left behind.

mod common;

use api::backups::{finish_restore, mark_restored, ROTATE_SECRETS_MARKER};
use api::{AppState, ServerOptions};
use common::start;
use engine::{Engine, EngineConfig, SyncPolicy};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

/// Opens a data dir and serves it on loopback; returns the state and the base URL.
async fn serve(dir: &Path) -> (Arc<AppState>, String) {
    let (engine, _report) = Engine::open(
        dir,
        EngineConfig {
            sync: SyncPolicy::None,
            ..Default::default()
        },
    )
    .expect("open engine");
    let state = AppState::new(engine, ServerOptions::default()).expect("app state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let router = api::router(Arc::clone(&state));
    tokio::spawn(async move {
        axum::serve(listener, router).await.expect("serve");
    });
    (state, base)
}

async fn refresh(base: &str, token: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{base}/api/collections/users/auth-refresh"))
        .header("authorization", token)
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

async fn login(base: &str, email: &str, password: &str) -> Option<String> {
    let reply = reqwest::Client::new()
        .post(format!("{base}/api/collections/users/auth-with-password"))
        .json(&json!({"identity": email, "password": password}))
        .send()
        .await
        .expect("request");
    if reply.status() != 200 {
        return None;
    }
    let body: serde_json::Value = reply.json().await.expect("json");
    body["token"].as_str().map(str::to_string)
}

#[tokio::test]
async fn a_point_in_time_restore_revokes_every_earlier_token() {
    let server = start().await;
    let (alice, alice_token) = server.user("alice@x.io", "alicepass123").await;
    let (bob, bob_token) = server.user("bob@x.io", "bobpass12345").await;
    let point = server.state.engine.last_seq();
    // After the point: alice changes her password, bob is deleted; both tokens die.
    server
        .json(
            "PATCH",
            &format!("/api/collections/users/records/{alice}"),
            json!({"oldPassword": "alicepass123", "password": "newpass12345", "passwordConfirm": "newpass12345"}),
            Some(&alice_token),
            200,
        )
        .await;
    server
        .json(
            "DELETE",
            &format!("/api/collections/users/records/{bob}"),
            json!(null),
            Some(&server.admin.clone()),
            204,
        )
        .await;
    assert_eq!(refresh(&server.base, &alice_token).await, 401);
    assert_eq!(refresh(&server.base, &bob_token).await, 401);

    let scratch = tempfile::tempdir().expect("temp dir");
    let options = || engine::admin::RestoreOptions {
        at: engine::admin::At::Seq(point),
        ..Default::default()
    };
    // Control: the restored state alone revives both tokens (the reference's behaviour).
    let plain = scratch.path().join("plain");
    engine::admin::restore_dir(server.state.engine.dir(), &plain, options(), &mut |_| {})
        .expect("restore");
    let (_, plain_base) = serve(&plain).await;
    assert_eq!(refresh(&plain_base, &alice_token).await, 200);
    assert_eq!(refresh(&plain_base, &bob_token).await, 200);

    // A restore as `pb-tools restore` makes it: the marker, then the first start rotates.
    let restored = scratch.path().join("restored");
    engine::admin::restore_dir(server.state.engine.dir(), &restored, options(), &mut |_| {})
        .expect("restore");
    mark_restored(&restored).expect("marker");
    let (state, base) = serve(&restored).await;
    let seq_before = state.engine.last_seq();
    let rotated = finish_restore(&state).expect("finish restore");
    let auth_collections = state
        .schema()
        .collections
        .iter()
        .filter(|c| c.is_auth())
        .count();
    assert_eq!(rotated, Some(auth_collections));
    // One ordinary commit after the restored state.
    assert_eq!(state.engine.last_seq(), seq_before + 1);
    assert!(!restored.join(ROTATE_SECRETS_MARKER).exists());
    assert_eq!(refresh(&base, &alice_token).await, 401);
    assert_eq!(refresh(&base, &bob_token).await, 401);
    // The restored data is intact: the old password (as of the point) logs in again.
    let fresh = login(&base, "alice@x.io", "alicepass123")
        .await
        .expect("login after the restore");
    assert_eq!(refresh(&base, &fresh).await, 200);
    assert!(login(&base, "bob@x.io", "bobpass12345").await.is_some());
    // Nothing left to finish: the next start does not rotate again.
    assert_eq!(finish_restore(&state).expect("finish restore"), None);
    assert_eq!(refresh(&base, &fresh).await, 200);
}

#[tokio::test]
async fn a_backup_restore_through_the_api_leaves_the_marker() {
    let server = start().await;
    let admin = server.admin.clone();
    let dir = server.state.engine.dir().to_path_buf();
    // A refused restore leaves nothing behind.
    let reply = server
        .send(
            "POST",
            "/api/backups/missing.zip/restore",
            None,
            Some(&admin),
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(!dir.join(ROTATE_SECRETS_MARKER).exists());
    let reply = server
        .send(
            "POST",
            "/api/backups",
            Some(r#"{"name":"b1.zip"}"#),
            Some(&admin),
        )
        .await;
    assert_eq!(reply.status, 204, "{}", reply.text);
    let reply = server
        .send("POST", "/api/backups/b1.zip/restore", None, Some(&admin))
        .await;
    assert_eq!(reply.status, 204, "{}", reply.text);
    assert!(dir.join(ROTATE_SECRETS_MARKER).exists());
    assert!(dir.join(".pending_restore.ready").is_dir());
}
