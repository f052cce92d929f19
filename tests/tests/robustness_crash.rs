//! Crash under load over HTTP: N writers send single creates and 3-record batch requests to the
//! real `pocketlog serve` (sync = always); the server is SIGKILLed at random moments and
//! restarted, for several cycles. Checks: every acknowledged create is present, every batch is
//! all-or-nothing (and present when acknowledged), and `pb-tools verify --dir` passes.
//!
//! Env: `ROBUST_CRASH_CYCLES` (default 3), `ROBUST_CRASH_WRITERS` (default 8),
//! `ROBUST_CRASH_SEED` to replay (the seed is printed). Needs
//! `cargo build --bin pocketlog --bin pb-tools`.

#[path = "robustness_support/mod.rs"]
mod support;

use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{binary, env_usize, runtime, Server};

#[derive(Default)]
struct Acked {
    singles: BTreeSet<String>,
    batches: BTreeSet<String>,
}

async fn writer(
    base: String,
    http: reqwest::Client,
    token: String,
    w: usize,
    cycle: usize,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Acked>>,
) {
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        if n.is_multiple_of(2) {
            let group = format!("c{cycle}w{w}n{n}");
            let requests: Vec<Value> = (0..3)
                .map(|i| {
                    json!({"method": "POST", "url": "/api/collections/crash/records",
                                "body": {"g": group, "i": i}})
                })
                .collect();
            let sent = http
                .post(format!("{base}/api/batch"))
                .header("Authorization", &token)
                .json(&json!({"requests": requests}))
                .send()
                .await;
            match sent {
                Ok(response) if response.status().as_u16() == 200 => {
                    if response.bytes().await.is_ok() {
                        acked.lock().expect("acked").batches.insert(group);
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        } else {
            let sent = http
                .post(format!("{base}/api/collections/crash/records"))
                .json(&json!({"g": "", "i": n}))
                .send()
                .await;
            match sent {
                Ok(response) if response.status().as_u16() == 200 => {
                    if let Ok(body) = response.json::<Value>().await {
                        if let Some(id) = body["id"].as_str() {
                            acked.lock().expect("acked").singles.insert(id.to_string());
                        }
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
}

/// Every record as (id, g).
async fn all_records(server: &Server) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for page in 1.. {
        let body = server
            .admin(
                "GET",
                &format!("/api/collections/crash/records?perPage=1000&page={page}&skipTotal=1&fields=id,g"),
                Value::Null,
            )
            .await;
        let items = body["items"].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            break;
        }
        for item in items {
            out.push((
                item["id"].as_str().unwrap_or_default().to_string(),
                item["g"].as_str().unwrap_or_default().to_string(),
            ));
        }
    }
    out
}

#[test]
fn acknowledged_writes_survive_sigkill_under_load() {
    let seed = std::env::var("ROBUST_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("ROBUST_CRASH_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let cycles = env_usize("ROBUST_CRASH_CYCLES", 3);
    let writers = env_usize("ROBUST_CRASH_WRITERS", 8);
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let mut server = Server::start(dir.path(), &["--sync", "always"]).await;
        server
            .admin(
                "PATCH",
                "/api/settings",
                json!({"batch": {"enabled": true}}),
            )
            .await;
        server
            .public_collection(
                "crash",
                json!([{"name": "g", "type": "text"}, {"name": "i", "type": "number"}]),
            )
            .await;
        let acked = Arc::new(Mutex::new(Acked::default()));
        for cycle in 0..cycles {
            let stop = Arc::new(AtomicBool::new(false));
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client");
            let tasks: Vec<_> = (0..writers)
                .map(|w| {
                    tokio::spawn(writer(
                        server.base.clone(),
                        http.clone(),
                        server.token.clone(),
                        w,
                        cycle,
                        Arc::clone(&stop),
                        Arc::clone(&acked),
                    ))
                })
                .collect();
            tokio::time::sleep(Duration::from_millis(rng.gen_range(200..1500))).await;
            server.kill();
            stop.store(true, Ordering::Relaxed);
            for task in tasks {
                let _ = task.await;
            }
            server.spawn().await;
            let records = all_records(&server).await;
            let ids: BTreeSet<&str> = records.iter().map(|(id, _)| id.as_str()).collect();
            let mut groups: BTreeMap<&str, usize> = BTreeMap::new();
            for (_, g) in &records {
                if !g.is_empty() {
                    *groups.entry(g.as_str()).or_default() += 1;
                }
            }
            let acked = acked.lock().expect("acked");
            for id in &acked.singles {
                assert!(
                    ids.contains(id.as_str()),
                    "cycle {cycle}: acknowledged record {id} lost (seed {seed})"
                );
            }
            for (group, n) in &groups {
                assert_eq!(
                    *n, 3,
                    "cycle {cycle}: batch {group} half applied (seed {seed})"
                );
            }
            for group in &acked.batches {
                assert!(
                    groups.contains_key(group.as_str()),
                    "cycle {cycle}: acknowledged batch {group} lost (seed {seed})"
                );
            }
            eprintln!(
                "cycle {cycle}: {} records, {} acked singles, {} acked batches: ok",
                records.len(),
                acked.singles.len(),
                acked.batches.len()
            );
        }
        server.kill();
    });
    let output = std::process::Command::new(binary("pb-tools"))
        .arg("verify")
        .arg("--dir")
        .arg(dir.path())
        .output()
        .expect("run pb-tools verify");
    assert!(
        output.status.success(),
        "pb-tools verify failed (seed {seed}):\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
