//! Realtime security (issue #12, hole 1): a client id or event id is not a credential.
//!
//! A stream resumed with `Last-Event-ID` for a session bound to an auth record gets no events
//! (they are held, in order, nothing dropped) until that auth record proves itself on the
//! stream: a `POST /api/realtime` with its token, or the resume request's own
//! `Authorization`. Then the backlog arrives in order, then the live stream. `POST /api/realtime` checks the caller against the
//! session as PocketBase v0.40.6 does (measured): 404 unknown or disconnected client, 400
//! `Invalid realtime client.` from another address than the stream's, 403 for an auth other
//! than the bound one; a refused POST changes nothing.
//!
//! Method: raw SSE over TCP on a real server; other addresses are other loopback IPs
//! (`127.0.0.2`), which Linux routes to the server on `127.0.0.1`.

mod realtime_support;

use api::ServerOptions;
use realtime_support::{temp_dir, Frame, Server, Sse};
use serde_json::{json, Value};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

const OTHER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const QUIET: Duration = Duration::from_millis(300);

async fn wait_parked(server: &Server, client_id: &str) {
    for _ in 0..300 {
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

/// Public `messages` and private `notes` (only the owner may list or view them).
async fn setup(server: &Server) {
    server.create_messages().await;
    server
        .create_collection(json!({
            "name": "notes", "type": "base",
            "listRule": "owner = @request.auth.id", "viewRule": "owner = @request.auth.id",
            "createRule": "", "updateRule": "", "deleteRule": "",
            "fields": [
                {"name": "text", "type": "text"},
                {"name": "owner", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1}
            ]
        }))
        .await;
}

async fn message(server: &Server, text: &str) -> String {
    let record = server.create("messages", json!({"text": text}), None).await;
    record["id"].as_str().expect("id").to_string()
}

async fn note(server: &Server, owner: &str, text: &str) -> String {
    let record = server
        .create("notes", json!({"text": text, "owner": owner}), None)
        .await;
    record["id"].as_str().expect("id").to_string()
}

fn record_id(frame: &Frame) -> String {
    frame.json()["record"]["id"]
        .as_str()
        .expect("record id")
        .to_string()
}

const TOPICS: &[&str] = &["messages/*", "notes/*"];

/// Alice's session, subscribed to both collections with her token, after one private note
/// reached her; returns the stream, its last event id and the client id.
async fn alice_session(server: &Server, alice: &str, alice_token: &str) -> (Sse, String, String) {
    let (mut sse, _) = Sse::connect(&server.addr, None).await;
    let client_id = sse.client_id.clone();
    assert_eq!(
        server
            .subscribe(&client_id, TOPICS, Some(alice_token))
            .await,
        204
    );
    let first = note(server, alice, "n0").await;
    let frame = sse.take(1).await.remove(0);
    assert_eq!(record_id(&frame), first);
    let last = sse.last_id.clone();
    (sse, last, client_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_a_guest_resuming_an_owners_session_gets_nothing_until_the_owner_proves_itself() {
    let (_dir, path) = temp_dir();
    let server = Server::start(&path, ServerOptions::default()).await;
    setup(&server).await;
    let (alice, alice_token) = server.user("alice").await;
    let (_bob, bob_token) = server.user("bob").await;
    let (sse, last, client_id) = alice_session(&server, &alice, &alice_token).await;
    drop(sse);
    wait_parked(&server, &client_id).await;

    let m1 = message(&server, "m1").await;
    let n2 = note(&server, &alice, "n2").await;
    let m3 = message(&server, "m3").await;

    // The bare client id resumes from where alice's stream started, her last event id from
    // after her first note: either way the stream stays silent, the backlog waits.
    let (mut guest, connect) = Sse::connect(&server.addr, Some(&client_id)).await;
    assert_eq!(guest.client_id, client_id);
    assert_eq!(connect.json()["resumed"], true);
    guest.expect_silence(QUIET).await;
    let (mut guest, _) = Sse::connect(&server.addr, Some(&last)).await;
    guest.expect_silence(QUIET).await;

    // Naming the session gives a guest or another user no say over it.
    let refused = json!({
        "status": 403, "data": {},
        "message": "The current and the previous request authorization don't match."
    });
    for token in [None, Some(bob_token.as_str())] {
        let (status, body) = server
            .send(
                "POST",
                "/api/realtime",
                Some(json!({"clientId": client_id, "subscriptions": ["messages/*"]})),
                token,
            )
            .await;
        assert_eq!((status, &body), (403, &refused));
    }
    let (status, body) = server
        .subscribe_from(OTHER_IP, &client_id, TOPICS, Some(&alice_token))
        .await;
    assert_eq!(status, 400, "{body}");
    guest.expect_silence(QUIET).await;

    // Alice takes her session back and proves herself: the backlog arrives in order, once.
    let (mut resumed, _) = Sse::connect(&server.addr, Some(&last)).await;
    assert_eq!(resumed.client_id, client_id);
    assert!(
        guest.next(Duration::from_secs(2)).await.is_none(),
        "the superseded stream ends"
    );
    resumed.expect_silence(QUIET).await;
    assert_eq!(
        server
            .subscribe(&client_id, TOPICS, Some(&alice_token))
            .await,
        204
    );
    let frames = resumed.take(3).await;
    let ids: Vec<String> = frames.iter().map(record_id).collect();
    assert_eq!(ids, [m1, n2, m3]);
    assert_eq!(frames[1].event, "notes/*");
    assert!(frames.windows(2).all(|pair| pair[0].seq() < pair[1].seq()));
    // Live again, private events included.
    let n4 = note(&server, &alice, "n4").await;
    assert_eq!(record_id(&resumed.take(1).await[0]), n4);
    resumed.expect_silence(QUIET).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_a_resume_carrying_the_owners_token_is_proof() {
    let (_dir, path) = temp_dir();
    let server = Server::start(&path, ServerOptions::default()).await;
    setup(&server).await;
    let (alice, alice_token) = server.user("alice").await;
    let (_bob, bob_token) = server.user("bob").await;
    let (sse, last, client_id) = alice_session(&server, &alice, &alice_token).await;
    drop(sse);
    wait_parked(&server, &client_id).await;
    let m1 = message(&server, "m1").await;
    let n2 = note(&server, &alice, "n2").await;

    // Another user's token proves nothing about alice.
    let (mut other, _) = Sse::connect_with(
        &server.addr,
        "/api/realtime",
        Some(&last),
        None,
        Some(&bob_token),
    )
    .await;
    other.expect_silence(QUIET).await;

    let (mut own, _) = Sse::connect_with(
        &server.addr,
        "/api/realtime",
        Some(&last),
        None,
        Some(&alice_token),
    )
    .await;
    let frames = own.take(2).await;
    assert_eq!(record_id(&frames[0]), m1);
    assert_eq!(record_id(&frames[1]), n2);
    own.expect_silence(QUIET).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_post_checks_the_caller_against_the_session_as_pocketbase_does() {
    let (_dir, path) = temp_dir();
    let server = Server::start(&path, ServerOptions::default()).await;
    setup(&server).await;
    let (alice, alice_token) = server.user("alice").await;
    let (_bob, bob_token) = server.user("bob").await;

    // Unknown client: 404, from any address.
    let (status, body) = server.subscribe_from(OTHER_IP, "nope", TOPICS, None).await;
    assert_eq!(
        (status, body),
        (
            404,
            json!({"status": 404, "message": "Missing or invalid client id.", "data": {}})
        )
    );

    // Another address than the stream's: 400, before the auth is looked at, and for a
    // session nobody is bound to yet.
    let (sse, _) = Sse::connect(&server.addr, None).await;
    let client_id = sse.client_id.clone();
    let invalid = json!({"status": 400, "message": "Invalid realtime client.", "data": {}});
    for token in [None, Some(alice_token.as_str())] {
        let (status, body) = server
            .subscribe_from(OTHER_IP, &client_id, TOPICS, token)
            .await;
        assert_eq!((status, &body), (400, &invalid));
    }
    // The refused POSTs bound nothing: bob may still claim the fresh session...
    assert_eq!(
        server.subscribe(&client_id, &[], Some(&bob_token)).await,
        204
    );
    drop(sse);

    // After the fact: alice's session refuses a guest, another user and another address,
    // and keeps her auth and subscriptions.
    let (mut sse_alice, _) = Sse::connect(&server.addr, None).await;
    let alice_client = sse_alice.client_id.clone();
    assert_eq!(
        server
            .subscribe(&alice_client, TOPICS, Some(&alice_token))
            .await,
        204
    );
    assert_eq!(
        server.subscribe(&alice_client, &["messages/*"], None).await,
        403
    );
    assert_eq!(
        server
            .subscribe(&alice_client, &["messages/*"], Some(&bob_token))
            .await,
        403
    );
    let (status, _) = server
        .subscribe_from(OTHER_IP, &alice_client, &["messages/*"], Some(&alice_token))
        .await;
    assert_eq!(status, 400);
    let n1 = note(&server, &alice, "n1").await;
    let frame = sse_alice.take(1).await.remove(0);
    assert_eq!(frame.event, "notes/*");
    assert_eq!(record_id(&frame), n1);
    // Same user again: fine.
    assert_eq!(
        server
            .subscribe(&alice_client, TOPICS, Some(&alice_token))
            .await,
        204
    );

    // A stream opened from the other address takes POSTs from there only.
    let (sse_other, _) =
        Sse::connect_with(&server.addr, "/api/realtime", None, Some(OTHER_IP), None).await;
    let other_client = sse_other.client_id.clone();
    let (status, _) = server
        .subscribe_from(OTHER_IP, &other_client, TOPICS, None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(server.subscribe(&other_client, TOPICS, None).await, 400);
    // A resume moves the session to the resuming address.
    drop(sse_other);
    wait_parked(&server, &other_client).await;
    let (_resumed, _) = Sse::connect(&server.addr, Some(&other_client)).await;
    assert_eq!(server.subscribe(&other_client, TOPICS, None).await, 204);
    let (status, _) = server
        .subscribe_from(OTHER_IP, &other_client, TOPICS, None)
        .await;
    assert_eq!(status, 400);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_a_held_backlog_survives_a_small_queue_and_arrives_in_order() {
    let (_dir, path) = temp_dir();
    let mut options = ServerOptions::default();
    options.realtime.queue_frames_max = 4;
    options.realtime.queue_bytes_max = 4096;
    let server = Server::start(&path, options).await;
    setup(&server).await;
    let (alice, alice_token) = server.user("alice").await;
    let (sse, last, client_id) = alice_session(&server, &alice, &alice_token).await;
    drop(sse);
    wait_parked(&server, &client_id).await;

    let mut expected = vec![note(&server, &alice, "first").await];
    for index in 0..120 {
        let id = if index % 3 == 0 {
            message(&server, &format!("m{index}")).await
        } else {
            note(&server, &alice, &format!("n{index}")).await
        };
        expected.push(id);
    }
    // A guest gets nothing: the first missed event is private.
    let (mut guest, _) = Sse::connect(&server.addr, Some(&last)).await;
    guest.expect_silence(QUIET).await;
    // Commits keep coming while the session is held.
    for index in 0..30 {
        expected.push(note(&server, &alice, &format!("late{index}")).await);
    }
    guest.expect_silence(Duration::from_millis(100)).await;

    let (mut own, _) = Sse::connect(&server.addr, Some(&last)).await;
    own.expect_silence(Duration::from_millis(100)).await;
    assert_eq!(
        server
            .subscribe(&client_id, TOPICS, Some(&alice_token))
            .await,
        204
    );
    let frames = own.take(expected.len()).await;
    let got: Vec<String> = frames.iter().map(record_id).collect();
    assert_eq!(got, expected);
    assert!(frames.windows(2).all(|pair| pair[0].seq() < pair[1].seq()));
    own.expect_silence(QUIET).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_a_held_session_whose_owner_is_revoked_continues_as_a_guest() {
    let (_dir, path) = temp_dir();
    let server = Server::start(&path, ServerOptions::default()).await;
    setup(&server).await;
    let (alice, alice_token) = server.user("alice").await;
    let (sse, last, client_id) = alice_session(&server, &alice, &alice_token).await;
    drop(sse);
    wait_parked(&server, &client_id).await;
    let n1 = note(&server, &alice, "n1").await;
    let m2 = message(&server, "m2").await;
    let (mut guest, _) = Sse::connect(&server.addr, Some(&last)).await;
    guest.expect_silence(QUIET).await;

    // Alice changes her password: the session is no longer bound to her (PocketBase
    // downgrades such clients to guest), so there is nothing left to hold.
    let (status, body) = server
        .send(
            "PATCH",
            &format!("/api/collections/users/records/{alice}"),
            Some(json!({"oldPassword": "Passw0rd123", "password": "NewPassw0rd1", "passwordConfirm": "NewPassw0rd1"})),
            Some(&alice_token),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let frame = guest.take(1).await.remove(0);
    assert_eq!(record_id(&frame), m2);
    guest.expect_silence(QUIET).await;
    let seen: Value = frame.json();
    assert_ne!(seen["record"]["id"], n1.as_str());
    // The old token proves nothing any more.
    assert_eq!(
        server
            .subscribe(&client_id, TOPICS, Some(&alice_token))
            .await,
        204
    );
    guest.expect_silence(QUIET).await;
    server.stop().await;
}
