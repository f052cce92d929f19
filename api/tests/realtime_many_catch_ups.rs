//! Many sessions catching up at once while the dispatcher keeps dispatching bursts: every
//! session receives every event, in order, exactly once, and nothing deadlocks (the dispatcher
//! holds a round's shared encode caches while it locks sessions; catch-up tasks take a cache
//! and then their session — the opposite order would hang here).
//!
//! Method: a queue bound of two frames (so sessions that do not read fall back to catch-up at
//! once), concurrent writers (so dispatcher rounds carry several commits), half of the
//! subscribers reading while the writes run and half only afterwards, then a graceful stop
//! that must complete.

mod realtime_support;

use api::realtime::RealtimeOptions;
use api::ServerOptions;
use realtime_support::{temp_dir, Server, Sse};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const SUBSCRIBERS: usize = 24;
const WRITERS: usize = 6;
const PER_WRITER: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_catch_ups_with_bursts_deliver_everything_in_order() {
    let (_dir, path) = temp_dir();
    let options = ServerOptions {
        realtime: RealtimeOptions {
            queue_frames_max: 2,
            ..RealtimeOptions::default()
        },
        ..ServerOptions::default()
    };
    let server = Arc::new(Server::start(&path, options).await);
    server.create_messages().await;
    let mut streams = Vec::new();
    for _ in 0..SUBSCRIBERS {
        let (sse, _) = Sse::connect(&server.addr, None).await;
        assert_eq!(
            server
                .subscribe(&sse.client_id, &["messages/*"], None)
                .await,
            204
        );
        streams.push(sse);
    }
    let total = WRITERS * PER_WRITER;
    let late: Vec<Sse> = streams.split_off(SUBSCRIBERS / 2);
    let early: Vec<_> = streams
        .into_iter()
        .map(|mut sse| tokio::spawn(async move { sse.take(total).await }))
        .collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let server = Arc::clone(&server);
            tokio::spawn(async move {
                for n in 0..PER_WRITER {
                    server
                        .create("messages", json!({"text": format!("{writer}-{n}")}), None)
                        .await;
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    let mut orders = Vec::new();
    for reader in early {
        orders.push(reader.await.expect("early reader"));
    }
    for mut sse in late {
        orders.push(sse.take(total).await);
    }
    let reference: Vec<u64> = orders[0].iter().map(|f| f.seq()).collect();
    assert_eq!(reference.len(), total);
    assert!(
        reference.windows(2).all(|w| w[1] == w[0] + 1),
        "no gap, no duplicate: {reference:?}"
    );
    for frames in &orders {
        let seqs: Vec<u64> = frames.iter().map(|f| f.seq()).collect();
        assert_eq!(
            seqs, reference,
            "every session gets the same events in order"
        );
        let texts: std::collections::HashSet<String> = frames
            .iter()
            .map(|f| {
                f.json()["record"]["text"]
                    .as_str()
                    .expect("text")
                    .to_string()
            })
            .collect();
        assert_eq!(texts.len(), total);
    }
    assert!(server.state.realtime.catch_ups_started() > 0);
    let server = Arc::into_inner(server).expect("no other handle");
    tokio::time::timeout(Duration::from_secs(20), server.stop())
        .await
        .expect("graceful stop completes");
}
