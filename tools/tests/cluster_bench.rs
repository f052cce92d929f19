//! The cluster benchmark of issue #19, run only with `CLUSTER_BENCH=1` (it prints numbers; it
//! asserts only that the work was done): create throughput and latency at 64 concurrent
//! clients standalone vs `--replicate async` vs `sync` (a leader and a follower on one NATS
//! server), the follower's replication lag under that load (p50/p99 of `lagMs` samples),
//! failover time (kill -9 of the leader to the first write accepted by the new leader), list
//! reads per second on the leader vs a follower, and the physical bound: JetStream's own
//! acknowledged publish rate at the same concurrency.

mod cluster_support;
mod support;

use cluster_support::{cluster_flags, kill9, try_status, wait_status, Nats};
use serde_json::json;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{create_superuser, runtime, Server};

/// Concurrent clients.
const CLIENTS: usize = 64;
/// How long each load phase runs.
const PHASE: Duration = Duration::from_secs(5);

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// `CLIENTS` clients sending `request` to `base` for `PHASE`: (ok per second, p50 ms, p99 ms).
async fn load(base: &str, token: &str, write: bool) -> (f64, f64, f64) {
    let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
    let started = Instant::now();
    let mut tasks = vec![];
    for client in 0..CLIENTS {
        let (base, token, latencies) =
            (base.to_string(), token.to_string(), Arc::clone(&latencies));
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut n = 0;
            while started.elapsed() < PHASE {
                let sent = Instant::now();
                let request = if write {
                    http.post(format!("{base}/api/collections/notes/records"))
                        .json(&json!({"title": format!("c{client}-{n}")}))
                } else {
                    http.get(format!("{base}/api/collections/notes/records?perPage=20"))
                };
                n += 1;
                if let Ok(answer) = request.header("Authorization", &token).send().await {
                    if answer.status().is_success() && answer.bytes().await.is_ok() {
                        latencies
                            .lock()
                            .expect("latencies")
                            .push(sent.elapsed().as_secs_f64() * 1000.0);
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("client");
    }
    let mut latencies = latencies.lock().expect("latencies").clone();
    latencies.sort_by(f64::total_cmp);
    (
        latencies.len() as f64 / started.elapsed().as_secs_f64(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
    )
}

async fn notes(server: &Server, token: &str) {
    let (status, body) = server
        .call(
            "POST",
            "/api/collections",
            Some(token),
            Some(
                json!({"name": "notes", "type": "base", "listRule": "", "createRule": "",
                "fields": [{"name": "title", "type": "text"}]}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn cluster_phase(root: &Path, url: &str, mode: &str) {
    let (a, b) = (
        root.join(format!("{mode}-a")),
        root.join(format!("{mode}-b")),
    );
    create_superuser(&a);
    let flags = cluster_flags(url, mode, mode);
    let leader = Server::start(&a, &flags).await;
    let token = leader.login().await;
    let follower = Server::start(&b, &flags).await;
    wait_status(&follower, &token, "follower", |s| s["role"] == "follower").await;
    notes(&leader, &token).await;
    // Lag samples on the follower while the leader takes the load.
    let lags = Arc::new(Mutex::new(Vec::<f64>::new()));
    let sampler = {
        let (lags, token) = (Arc::clone(&lags), token.clone());
        let base = follower.base.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let started = Instant::now();
            while started.elapsed() < PHASE {
                if let Ok(answer) = http
                    .get(format!("{base}/api/cluster"))
                    .header("Authorization", &token)
                    .send()
                    .await
                {
                    if let Ok(status) = answer.json::<serde_json::Value>().await {
                        if let Some(lag) = status["lagMs"].as_f64() {
                            lags.lock().expect("lags").push(lag);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let (rate, p50, p99) = load(&leader.base, &token, true).await;
    sampler.await.expect("sampler");
    let mut lags = lags.lock().expect("lags").clone();
    lags.sort_by(f64::total_cmp);
    eprintln!(
        "bench {mode}: create c{CLIENTS} {rate:.0}/s p50 {p50:.1} ms p99 {p99:.1} ms; \
         follower lag p50 {:.0} ms p99 {:.0} ms ({} samples)",
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        lags.len()
    );
    let (leader_reads, _, leader_p99) = load(&leader.base, &token, false).await;
    let (follower_reads, _, follower_p99) = load(&follower.base, &token, false).await;
    eprintln!(
        "bench {mode}: list reads c{CLIENTS} leader {leader_reads:.0}/s (p99 {leader_p99:.1} ms), \
         follower {follower_reads:.0}/s (p99 {follower_p99:.1} ms)"
    );
    // Failover: kill -9 of the leader to the first write the new leader accepts.
    let epoch = try_status(&leader, &token).await.expect("status")["epoch"].as_u64();
    kill9(&leader);
    let killed = Instant::now();
    loop {
        let (status, _) = follower
            .call(
                "POST",
                "/api/collections/notes/records",
                Some(&token),
                Some(json!({"title": "after"})),
            )
            .await;
        if status == 200 {
            break;
        }
        assert!(killed.elapsed() < Duration::from_secs(60), "no failover");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = try_status(&follower, &token).await.expect("status");
    assert!(status["epoch"].as_u64() > epoch, "{status}");
    eprintln!(
        "bench {mode}: failover (kill -9 to the first accepted write) {:?}",
        killed.elapsed()
    );
    drop(follower);
    drop(leader);
}

#[test]
fn cluster_benchmark() {
    if std::env::var("CLUSTER_BENCH").map_or(true, |v| v != "1") {
        eprintln!("CLUSTER_BENCH=1 runs the cluster benchmark");
        return;
    }
    let root = tempfile::tempdir().expect("tempdir");
    let nats = Nats::start(&root.path().join("nats"));
    let url = nats.url();
    runtime().block_on(async {
        let dir = root.path().join("standalone");
        create_superuser(&dir);
        let server = Server::start(&dir, &["--sync", "always"]).await;
        let token = server.login().await;
        notes(&server, &token).await;
        let (rate, p50, p99) = load(&server.base, &token, true).await;
        eprintln!(
            "bench standalone: create c{CLIENTS} {rate:.0}/s p50 {p50:.1} ms p99 {p99:.1} ms"
        );
        drop(server);
        cluster_phase(root.path(), &url, "async").await;
        cluster_phase(root.path(), &url, "sync").await;
        // The bound: JetStream's own acknowledged publishes at the same concurrency.
        let client = async_nats::connect(url.as_str()).await.expect("nats");
        let js = async_nats::jetstream::new(client);
        js.get_or_create_stream(async_nats::jetstream::stream::Config {
            name: "BENCH".into(),
            subjects: vec!["bench".into()],
            ..Default::default()
        })
        .await
        .expect("stream");
        let started = Instant::now();
        let mut tasks = vec![];
        for _ in 0..CLIENTS {
            let js = js.clone();
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                while started.elapsed() < PHASE {
                    let ack = js
                        .publish("bench", vec![0u8; 200].into())
                        .await
                        .expect("publish");
                    ack.await.expect("ack");
                    n += 1;
                }
                n
            }));
        }
        let mut total = 0;
        for task in tasks {
            total += task.await.expect("publisher");
        }
        eprintln!(
            "bench jetstream: acknowledged publishes c{CLIENTS} {:.0}/s",
            total as f64 / started.elapsed().as_secs_f64()
        );
    });
    drop(nats);
}
