//! A subscriber that does not read is neither dropped nor allowed to grow server memory: its
//! queue stays within the configured bound (the session switches to log catch-up when full),
//! and once it reads again it receives every event, in order, with no gap and no duplicate.
//! Meanwhile a fast subscriber keeps receiving live.
//!
//! Method: a tiny queue bound, large events (so the kernel socket buffers fill quickly), a
//! sampler of the session's queue length while writing.

mod realtime_support;

use api::realtime::RealtimeOptions;
use api::ServerOptions;
use realtime_support::{temp_dir, Server, Sse};
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const EVENTS: usize = 600;
const QUEUE_FRAMES_MAX: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_slow_reader_is_bounded_and_complete() {
    let (_dir, path) = temp_dir();
    let options = ServerOptions {
        realtime: RealtimeOptions {
            queue_frames_max: QUEUE_FRAMES_MAX,
            queue_bytes_max: 256 * 1024,
            ..RealtimeOptions::default()
        },
        ..ServerOptions::default()
    };
    let server = Server::start(&path, options).await;
    server
        .create_collection(json!({
            "name": "blobs", "type": "base", "listRule": "", "viewRule": "", "createRule": "",
            "fields": [{"name": "text", "type": "text", "max": 100000}]
        }))
        .await;
    let (mut slow, _) = Sse::connect(&server.addr, None).await;
    let (mut fast, _) = Sse::connect(&server.addr, None).await;
    let slow_id = slow.client_id.clone();
    let fast_id = fast.client_id.clone();
    assert_eq!(server.subscribe(&slow_id, &["blobs/*"], None).await, 204);
    assert_eq!(server.subscribe(&fast_id, &["blobs/*"], None).await, 204);

    let session = server.state.realtime.session(&slow_id).expect("session");
    let max_queued = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let max_queued = Arc::clone(&max_queued);
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            while !done.load(Ordering::Acquire) {
                max_queued.fetch_max(session.queued_frames(), Ordering::AcqRel);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let fast_reader = tokio::spawn(async move {
        let frames = fast.take(EVENTS).await;
        frames.iter().map(|f| f.seq()).collect::<Vec<_>>()
    });
    let big = "x".repeat(32 * 1024);
    let mut ids = Vec::new();
    for index in 0..EVENTS {
        let record = server
            .create("blobs", json!({"text": format!("{index}-{big}")}), None)
            .await;
        ids.push(record["id"].as_str().expect("id").to_string());
    }
    let fast_seqs = fast_reader.await.expect("fast reader");
    assert_eq!(fast_seqs.len(), EVENTS);
    // Now the slow reader drains everything.
    let frames = slow.take(EVENTS).await;
    done.store(true, Ordering::Release);
    sampler.await.expect("sampler");
    let got: Vec<String> = frames
        .iter()
        .map(|f| f.json()["record"]["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(got, ids, "every event, in order, exactly once");
    let seqs: Vec<u64> = frames.iter().map(|f| f.seq()).collect();
    assert_eq!(seqs, fast_seqs);
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "no gap");
    let max = max_queued.load(Ordering::Acquire);
    assert!(
        max <= QUEUE_FRAMES_MAX,
        "queue grew to {max} frames (bound {QUEUE_FRAMES_MAX})"
    );
    assert!(
        server.state.realtime.catch_ups_started() > 0,
        "the slow reader never fell back to the log"
    );
    slow.expect_silence(Duration::from_millis(100)).await;
    server.stop().await;
}
