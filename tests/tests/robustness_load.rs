//! Robustness under load, against the real `pocketlog` binary over HTTP:
//! lost updates, read-your-writes, overload (503, never a hang, nothing acknowledged lost) and
//! slow clients (slowloris headers and bodies timed out without starving others).
//!
//! CI counts are small; full counts via env: `ROBUST_CLIENTS` (default 16, full 64),
//! `ROBUST_INCREMENTS` (default 25, full 100), `ROBUST_OVERLOAD_CLIENTS` (default 256),
//! `ROBUST_SLOW_CLIENTS` (default 64). Needs `cargo build --bin pocketlog --bin pb-tools`.

#[path = "robustness_support/mod.rs"]
mod support;

use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{env_usize, runtime, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `C` clients × `K` concurrent `n+` increments on one record end at exactly `C·K`.
#[test]
fn no_lost_updates_under_concurrent_increments() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Arc::new(Server::start(dir.path(), &[]).await);
        server
            .public_collection("counters", json!([{"name": "n", "type": "number"}]))
            .await;
        let record = server
            .admin("POST", "/api/collections/counters/records", json!({"n": 0}))
            .await;
        let id = record["id"].as_str().expect("id").to_string();
        let clients = env_usize("ROBUST_CLIENTS", 16);
        let increments = env_usize("ROBUST_INCREMENTS", 25);
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let server = Arc::clone(&server);
            let path = format!("/api/collections/counters/records/{id}");
            tasks.push(tokio::spawn(async move {
                for _ in 0..increments {
                    let (status, body) = server
                        .call("PATCH", &path, None, Some(json!({"n+": 1})))
                        .await
                        .expect("transport");
                    assert_eq!(status, 200, "{body}");
                }
            }));
        }
        for task in tasks {
            task.await.expect("client task");
        }
        let (status, body) = server
            .call(
                "GET",
                &format!("/api/collections/counters/records/{id}"),
                None,
                None,
            )
            .await
            .expect("view");
        assert_eq!(status, 200);
        assert_eq!(body["n"], json!(clients * increments), "{body}");
    });
}

/// Every acknowledged create, and update, is visible to the very next read (view and list).
#[test]
fn read_your_writes() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Arc::new(Server::start(dir.path(), &[]).await);
        server
            .public_collection("notes", json!([{"name": "v", "type": "number"}]))
            .await;
        let clients = env_usize("ROBUST_CLIENTS", 16);
        let rounds = env_usize("ROBUST_INCREMENTS", 25);
        let mut tasks = Vec::new();
        for c in 0..clients {
            let server = Arc::clone(&server);
            tasks.push(tokio::spawn(async move {
                for i in 0..rounds {
                    let v = (c * 100_000 + i) as i64;
                    let (status, created) = server
                        .call(
                            "POST",
                            "/api/collections/notes/records",
                            None,
                            Some(json!({"v": v})),
                        )
                        .await
                        .expect("create");
                    assert_eq!(status, 200, "{created}");
                    let id = created["id"].as_str().expect("id").to_string();
                    let view = format!("/api/collections/notes/records/{id}");
                    let (status, seen) = server.call("GET", &view, None, None).await.expect("view");
                    assert_eq!((status, &seen["v"]), (200, &json!(v)), "create not visible");
                    let (status, _) = server
                        .call("PATCH", &view, None, Some(json!({"v": v + 1})))
                        .await
                        .expect("update");
                    assert_eq!(status, 200);
                    let (_, seen) = server.call("GET", &view, None, None).await.expect("view");
                    assert_eq!(seen["v"], json!(v + 1), "update not visible");
                    let list = format!(
                        "/api/collections/notes/records?filter={}",
                        support::urlencode(&format!("id = '{id}' && v = {}", v + 1))
                    );
                    let (status, listed) =
                        server.call("GET", &list, None, None).await.expect("list");
                    assert_eq!(
                        (status, &listed["totalItems"]),
                        (200, &json!(1)),
                        "{listed}"
                    );
                }
            }));
        }
        for task in tasks {
            task.await.expect("client task");
        }
    });
}

/// With a one-slot writer queue and many concurrent writers: every answer is 200 or a clear
/// 503, none hangs, and exactly the acknowledged records exist afterwards.
#[test]
fn overload_answers_503_and_loses_nothing_acknowledged() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Arc::new(Server::start(dir.path(), &["--writer-queue", "1"]).await);
        server
            .public_collection("flood", json!([{"name": "k", "type": "number"}]))
            .await;
        let clients = env_usize("ROBUST_OVERLOAD_CLIENTS", 256);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for k in 0..clients {
            let server = Arc::clone(&server);
            tasks.push(tokio::spawn(async move {
                let result = server
                    .call(
                        "POST",
                        "/api/collections/flood/records",
                        None,
                        Some(json!({"k": k})),
                    )
                    .await;
                (k, result)
            }));
        }
        let mut acked = 0u64;
        let mut rejected = 0u64;
        for task in tasks {
            let (k, result) = task.await.expect("client task");
            let (status, body) = result.unwrap_or_else(|e| panic!("request {k} failed: {e}"));
            match status {
                200 => acked += 1,
                503 | 429 => {
                    rejected += 1;
                    assert!(
                        body["message"].as_str().unwrap_or("").contains("busy"),
                        "unclear overload answer: {body}"
                    );
                }
                other => panic!("unexpected status {other}: {body}"),
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(25),
            "overload made clients wait"
        );
        assert!(
            rejected > 0,
            "a one-slot queue under {clients} writers never said 503"
        );
        assert_eq!(
            server.count("flood", "").await,
            acked,
            "acknowledged records lost (or extra)"
        );
        // And it recovers.
        server
            .admin("POST", "/api/collections/flood/records", json!({"k": -1}))
            .await;
    });
}

/// Slowloris: connections that trickle their headers or their body are cut after the
/// configured timeouts, while ordinary requests keep being served promptly.
#[test]
fn slow_clients_are_timed_out_without_starving_others() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Arc::new(
            Server::start(dir.path(), &["--header-timeout", "1", "--request-timeout", "2"]).await,
        );
        server
            .public_collection("slow", json!([{"name": "t", "type": "text"}]))
            .await;
        let address = server.base.trim_start_matches("http://").to_string();
        let slow = env_usize("ROBUST_SLOW_CLIENTS", 64);
        let mut attackers = Vec::new();
        for i in 0..slow {
            let address = address.clone();
            attackers.push(tokio::spawn(async move {
                let mut stream = tokio::net::TcpStream::connect(&address).await.expect("connect");
                let started = Instant::now();
                let (head, trickle): (String, &[u8]) = if i % 2 == 0 {
                    // Headers that never finish.
                    ("GET /api/health HTTP/1.1\r\nHost: x\r\n".into(), b"X-Slow: aaaaaaaaaaaaaaaaaaaa")
                } else {
                    // A body that never finishes.
                    ("POST /api/collections/slow/records HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"t\":\"".into(), b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
                };
                stream.write_all(head.as_bytes()).await.expect("write head");
                let mut answer = Vec::new();
                for byte in trickle.iter().cycle() {
                    if started.elapsed() > Duration::from_secs(15) {
                        panic!("slow client {i} was never cut off");
                    }
                    let mut buf = [0u8; 512];
                    tokio::select! {
                        read = stream.read(&mut buf) => match read {
                            Ok(0) | Err(_) => break,
                            Ok(n) => { answer.extend_from_slice(&buf[..n]); break; }
                        },
                        () = tokio::time::sleep(Duration::from_millis(200)) => {
                            if stream.write_all(&[*byte]).await.is_err() { break; }
                        }
                    }
                }
                (i, started.elapsed(), String::from_utf8_lossy(&answer).into_owned())
            }));
        }
        // Meanwhile, ordinary clients are served.
        tokio::time::sleep(Duration::from_millis(300)).await;
        for n in 0..20 {
            let sent = Instant::now();
            let (status, body) = server
                .call("POST", "/api/collections/slow/records", None, Some(json!({"t": format!("ok {n}")})))
                .await
                .expect("ordinary request");
            assert_eq!(status, 200, "{body}");
            assert!(sent.elapsed() < Duration::from_secs(1), "ordinary request starved: {:?}", sent.elapsed());
        }
        for attacker in attackers {
            let (i, elapsed, answer) = attacker.await.expect("attacker task");
            assert!(elapsed < Duration::from_secs(6), "slow client {i} held on for {elapsed:?}");
            if i % 2 == 1 {
                assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "slow body {i}: {answer}");
            }
        }
        assert_eq!(server.count("slow", "").await, 20);
    });
}

#[allow(dead_code)]
fn _uses(_: Value) {}
