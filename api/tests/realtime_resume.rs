//! Resume: a client that reconnects with `Last-Event-ID` (or `?lastEventId=`) gets its
//! session back (same client id, subscriptions, auth once proven) and exactly the events it missed, in
//! order, then the live stream; across a server restart too (sessions are persisted in the
//! data dir). Unknown sessions and positions the log no longer holds get an explicit
//! `PB_RESET` event. Revoked auth and tightened rules stop delivery, for live and replayed
//! events alike.
//!
//! Method: raw SSE over TCP; the client drops its connection, the test writes while it is
//! away, then resumes with the id of the last complete frame it saw.

mod realtime_support;

use api::ServerOptions;
use realtime_support::{temp_dir, Server, Sse};
use serde_json::json;
use std::time::Duration;

async fn wait_parked(server: &Server, client_id: &str) {
    for _ in 0..200 {
        if server
            .state
            .realtime
            .session(client_id)
            .is_some_and(|s| s.is_parked())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("session {client_id} was not parked");
}

async fn create_texts(server: &Server, texts: &[&str]) -> Vec<String> {
    let mut ids = Vec::new();
    for text in texts {
        let record = server.create("messages", json!({"text": text}), None).await;
        ids.push(record["id"].as_str().expect("id").to_string());
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_resume_delivers_exactly_the_missed_events() {
    let (_dir, path) = temp_dir();
    let server = Server::start(&path, ServerOptions::default()).await;
    server.create_messages().await;
    let (mut sse, _) = Sse::connect(&server.addr, None).await;
    let client_id = sse.client_id.clone();
    assert_eq!(
        server.subscribe(&client_id, &["messages/*"], None).await,
        204
    );
    create_texts(&server, &["a", "b"]).await;
    let before = sse.take(2).await;
    let last_id = sse.last_id.clone();
    assert_eq!(last_id, before[1].id);
    drop(sse);
    wait_parked(&server, &client_id).await;
    // A parked session is not a connected client: POST answers 404 like PocketBase.
    assert_eq!(
        server.subscribe(&client_id, &["messages/*"], None).await,
        404
    );

    let missed = create_texts(&server, &["c", "d", "e", "f", "g"]).await;
    let (mut sse, connect) = Sse::connect(&server.addr, Some(&last_id)).await;
    assert_eq!(sse.client_id, client_id, "same client id after resume");
    assert_eq!(connect.id, client_id);
    assert_eq!(connect.json()["resumed"], true);
    let frames = sse.take(5).await;
    let got: Vec<String> = frames
        .iter()
        .map(|f| f.json()["record"]["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(got, missed, "exactly the missed events, in order");
    assert!(frames.windows(2).all(|w| w[0].seq() < w[1].seq()));
    assert!(frames[0].seq() > before[1].seq());
    // Then the live stream, with the same subscriptions.
    let live = create_texts(&server, &["h"]).await;
    let frame = sse.take(1).await.remove(0);
    assert_eq!(frame.json()["record"]["id"], live[0].as_str());
    sse.expect_silence(Duration::from_millis(200)).await;

    // Resume naming only the client id (no event received on the last stream), through the
    // documented query parameter.
    let last_connect_id = client_id.clone();
    drop(sse);
    wait_parked(&server, &client_id).await;
    let missed = create_texts(&server, &["i", "j"]).await;
    let (mut sse, _) = Sse::connect_path(
        &server.addr,
        &format!("/api/realtime?lastEventId={last_connect_id}"),
        None,
    )
    .await;
    assert_eq!(sse.client_id, client_id);
    // A client that got nothing on its last stream reports the bare client id: that stream
    // is replayed from where it started (after "b"), then the events missed since.
    let frames = sse.take(8).await;
    let texts: Vec<String> = frames
        .iter()
        .map(|f| {
            f.json()["record"]["text"]
                .as_str()
                .expect("text")
                .to_string()
        })
        .collect();
    assert_eq!(texts, ["c", "d", "e", "f", "g", "h", "i", "j"]);
    assert_eq!(frames[7].json()["record"]["id"], missed[1].as_str());
    sse.expect_silence(Duration::from_millis(200)).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_resume_from_the_middle_of_a_commit() {
    let (_dir, path) = temp_dir();
    let server = Server::start(&path, ServerOptions::default()).await;
    server.create_messages().await;
    let (mut sse, _) = Sse::connect(&server.addr, None).await;
    let client_id = sse.client_id.clone();
    let topics = ["messages/*", "messages"];
    assert_eq!(server.subscribe(&client_id, &topics, None).await, 204);
    create_texts(&server, &["x"]).await;
    let frames = sse.take(2).await;
    assert_eq!(frames[0].event, "messages/*");
    assert_eq!(frames[1].event, "messages");
    drop(sse);
    wait_parked(&server, &client_id).await;
    // The client only got the first frame of the commit.
    let (mut sse, _) = Sse::connect(&server.addr, Some(&frames[0].id)).await;
    let again = sse.take(1).await.remove(0);
    assert_eq!(
        again.raw, frames[1].raw,
        "only the frame after the named one"
    );
    sse.expect_silence(Duration::from_millis(200)).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_resume_across_restart() {
    let (_dir, path) = temp_dir();
    let server = Server::start(&path, ServerOptions::default()).await;
    server.create_messages().await;
    let (user_id, token) = server.user("carol").await;
    let (mut sse, _) = Sse::connect(&server.addr, None).await;
    let client_id = sse.client_id.clone();
    assert_eq!(
        server
            .subscribe(&client_id, &["messages/*", "users/*"], Some(&token))
            .await,
        204
    );
    create_texts(&server, &["before"]).await;
    sse.take(1).await;
    let last_id = sse.last_id.clone();
    server.stop().await;
    // The stream ended with the server.
    assert!(sse.next(Duration::from_secs(2)).await.is_none());

    let server = Server::start(&path, ServerOptions::default()).await;
    // Resume has to bring the hub up to restore the parked sessions first.
    let missed = create_texts(&server, &["after1", "after2"]).await;
    let (status, _) = server
        .send(
            "PATCH",
            &format!("/api/collections/users/records/{user_id}"),
            Some(json!({"name": "Carol"})),
            Some(&server.admin),
        )
        .await;
    assert_eq!(status, 200);
    let (mut sse, _) = Sse::connect(&server.addr, Some(&last_id)).await;
    assert_eq!(sse.client_id, client_id);
    // The bound auth came back too, but a resume only names the session: the missed events
    // wait until carol's token proves her on this stream (`realtime_security.rs`).
    sse.expect_silence(Duration::from_millis(300)).await;
    assert_eq!(
        server
            .subscribe(&client_id, &["messages/*", "users/*"], Some(&token))
            .await,
        204
    );
    let frames = sse.take(3).await;
    assert_eq!(frames[0].json()["record"]["id"], missed[0].as_str());
    assert_eq!(frames[1].json()["record"]["id"], missed[1].as_str());
    // Carol may see her own users record (listRule id = auth.id), email included.
    assert_eq!(frames[2].event, "users/*");
    assert_eq!(frames[2].json()["record"]["email"], "carol@example.com");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_resume_unknown_session_gets_reset() {
    let (_dir, path) = temp_dir();
    let server = Server::start(&path, ServerOptions::default()).await;
    let (mut sse, connect) = Sse::connect(&server.addr, Some("Unknown123.5.0")).await;
    assert_ne!(sse.client_id, "Unknown123");
    assert!(connect.json().get("resumed").is_none());
    let reset = sse.take(1).await.remove(0);
    assert_eq!(reset.event, "PB_RESET");
    assert_eq!(reset.id, sse.client_id);
    assert_eq!(reset.json()["reason"], "session_expired");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_revoked_subscriber_gets_nothing_more() {
    let (_dir, path) = temp_dir();
    let server = Server::start(&path, ServerOptions::default()).await;
    server.create_messages().await;
    server
        .create_collection(json!({
            "name": "members", "type": "base",
            "listRule": "@request.auth.id != \"\"", "viewRule": "@request.auth.id != \"\"",
            "fields": [{"name": "title", "type": "text"}]
        }))
        .await;
    let (dave, dave_token) = server.user("dave").await;
    let (erin, erin_token) = server.user("erin").await;
    let (mut live, _) = Sse::connect(&server.addr, None).await;
    let (mut away, _) = Sse::connect(&server.addr, None).await;
    let live_id = live.client_id.clone();
    let away_id = away.client_id.clone();
    assert_eq!(
        server
            .subscribe(&live_id, &["members/*", "messages/*"], Some(&dave_token))
            .await,
        204
    );
    assert_eq!(
        server
            .subscribe(&away_id, &["members/*", "messages/*"], Some(&erin_token))
            .await,
        204
    );
    server
        .create("members", json!({"title": "one"}), Some(&server.admin))
        .await;
    assert_eq!(live.take(1).await[0].json()["record"]["title"], "one");
    assert_eq!(away.take(1).await[0].json()["record"]["title"], "one");
    let away_last = away.last_id.clone();
    drop(away);
    wait_parked(&server, &away_id).await;

    // Both passwords change: their tokens (and the bound auth) are revoked.
    for (id, token) in [(&dave, &dave_token), (&erin, &erin_token)] {
        let (status, body) = server
            .send(
                "PATCH",
                &format!("/api/collections/users/records/{id}"),
                Some(json!({"oldPassword": "Passw0rd123", "password": "NewPassw0rd1", "passwordConfirm": "NewPassw0rd1"})),
                Some(token),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    server
        .create("members", json!({"title": "two"}), Some(&server.admin))
        .await;
    let marker = create_texts(&server, &["marker"]).await;
    // Live: the members event is not delivered, the public marker is.
    let frame = live.take(1).await.remove(0);
    assert_eq!(frame.event, "messages/*");
    assert_eq!(frame.json()["record"]["id"], marker[0].as_str());
    // Replayed: the same, although "two" was committed while erin's session was parked.
    let (mut away, _) = Sse::connect(&server.addr, Some(&away_last)).await;
    let frame = away.take(1).await.remove(0);
    assert_eq!(frame.event, "messages/*", "{frame:?}");
    away.expect_silence(Duration::from_millis(200)).await;

    // A tightened rule stops delivery too.
    let (status, _) = server
        .send(
            "PATCH",
            "/api/collections/messages",
            Some(json!({"listRule": "text = 'visible'"})),
            Some(&server.admin),
        )
        .await;
    assert_eq!(status, 200);
    create_texts(&server, &["hidden", "visible"]).await;
    let frame = live.take(1).await.remove(0);
    assert_eq!(frame.json()["record"]["text"], "visible");
    live.expect_silence(Duration::from_millis(200)).await;
    server.stop().await;
}
