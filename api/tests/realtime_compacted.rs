//! Never silent loss: resuming from a position the log no longer holds (history compacted
//! away) gets an explicit `PB_RESET` event (same session, then the live stream), and the
//! change feed answers such a `since` with an explicit 400 instead of a shortened feed.
//!
//! Method: small segments, a real `Engine::compact` that drops the segments before the
//! resume position, then a resume with the stale `Last-Event-ID`.

mod realtime_support;

use api::ServerOptions;
use realtime_support::{open_engine, temp_dir, Server, Sse};
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_resume_from_compacted_position_gets_reset() {
    let (_dir, path) = temp_dir();
    let engine = open_engine(&path, Some(4096));
    let server = Server::start_engine(engine, ServerOptions::default()).await;
    server.create_messages().await;
    let (mut sse, _) = Sse::connect(&server.addr, None).await;
    let client_id = sse.client_id.clone();
    assert_eq!(
        server.subscribe(&client_id, &["messages/*"], None).await,
        204
    );
    server
        .create("messages", json!({"text": "seen"}), None)
        .await;
    let seen = sse.take(1).await.remove(0);
    let stale_position = seen.seq();
    drop(sse);
    for _ in 0..200 {
        if server
            .state
            .realtime
            .session(&client_id)
            .is_some_and(|s| s.is_parked())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for index in 0..60 {
        server
            .create(
                "messages",
                json!({"text": format!("missed {index} {}", "y".repeat(200))}),
                None,
            )
            .await;
    }
    let state = std::sync::Arc::clone(&server.state);
    tokio::task::spawn_blocking(move || state.engine.compact(engine::Retention::Commits(5)))
        .await
        .expect("join")
        .expect("compact");
    let first = server.state.engine.log().first_seq();
    assert!(
        first > stale_position + 1,
        "compaction kept the history (first {first}, position {stale_position})"
    );

    let (mut sse, connect) = Sse::connect(&server.addr, Some(&seen.id)).await;
    assert_eq!(sse.client_id, client_id, "the session is kept");
    assert_eq!(connect.json()["resumed"], true);
    let reset = sse.take(1).await.remove(0);
    assert_eq!(reset.event, "PB_RESET");
    assert_eq!(reset.json()["reason"], "position_compacted");
    sse.expect_silence(Duration::from_millis(200)).await;
    // Live delivery goes on after the reset.
    let live = server
        .create("messages", json!({"text": "live"}), None)
        .await;
    let frame = sse.take(1).await.remove(0);
    assert_eq!(frame.json()["record"]["id"], live["id"]);

    // The change feed refuses the stale position explicitly.
    let (status, body) = server
        .send(
            "GET",
            &format!("/api/collections/messages/changes?since={stale_position}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["data"]["since"]["code"],
        "validation_position_compacted"
    );
    server.stop().await;
}
