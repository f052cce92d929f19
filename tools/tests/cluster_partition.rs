//! `pocketlog serve --cluster` on a 3-node NATS cluster (three `nats-server -js` with routes,
//! the stream and the lease with 3 replicas; each pocketlog node talks to its own NATS node):
//! - `sync`: writes through every node converge; the leader's NATS node stopped (a partition)
//!   → the leader answers writes 503 and acknowledges nothing, another node takes over and
//!   takes writes; once healed the old leader rejoins as a follower and every node holds the
//!   same log, with every acknowledged write;
//! - `async`: the partitioned leader acknowledges writes the cluster never sees; once healed it
//!   finds its log diverged, restarts by itself, moves the unreplicated tail aside into
//!   `.broken-cluster-*` files, rejoins as a follower and reports the discarded range.

mod cluster_support;
mod support;

use cluster_support::{try_status, wait_status, Nats};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The two tests run one after the other: each starts three NATS servers and three pocketlog
/// nodes, and together on CI's 2 cores their lease and JetStream timeouts would race the load.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
use support::{create_superuser, pb_tools, runtime, Server};

fn flags<'a>(url: &'a str, name: &'a str, mode: &'a str) -> Vec<&'a str> {
    vec![
        "--cluster",
        url,
        "--cluster-name",
        name,
        "--replicate",
        mode,
        "--cluster-replicas",
        "3",
        "--sync",
        "always",
    ]
}

fn log_bytes(dir: &Path) -> Vec<u8> {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir.join(engine::admin::LOG_DIR))
        .expect("log dir")
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        .collect();
    segments.sort();
    segments
        .iter()
        .flat_map(|path| std::fs::read(path).expect("read segment"))
        .collect()
}

async fn create(server: &Server, token: &str, title: &str) -> (u16, Value) {
    server
        .call(
            "POST",
            "/api/collections/notes/records",
            Some(token),
            Some(json!({"title": title})),
        )
        .await
}

async fn titles(server: &Server, token: &str) -> Vec<String> {
    let (status, body) = server
        .call(
            "GET",
            "/api/collections/notes/records?perPage=1000&sort=title",
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["title"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Starts three pocketlog nodes, node i on NATS node i; node 0 leads. Returns them and a
/// superuser token.
async fn start_nodes(
    nats: &[Nats],
    dirs: &[PathBuf],
    name: &str,
    mode: &str,
) -> (Vec<Server>, String) {
    let urls: Vec<String> = nats.iter().map(Nats::url).collect();
    let leader = Server::start(&dirs[0], &flags(&urls[0], name, mode)).await;
    let token = leader.login().await;
    let mut nodes = vec![leader];
    for i in 1..3 {
        nodes.push(Server::start(&dirs[i], &flags(&urls[i], name, mode)).await);
    }
    wait_status(&nodes[0], &token, "leader", |s| s["role"] == "leader").await;
    for node in &nodes[1..] {
        wait_status(node, &token, "follower", |s| s["role"] == "follower").await;
    }
    let (status, body) = nodes[0]
        .call(
            "POST",
            "/api/collections",
            Some(&token),
            Some(json!({"name": "notes", "type": "base",
                "listRule": "", "viewRule": "", "createRule": "",
                "fields": [{"name": "title", "type": "text"}]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    (nodes, token)
}

/// Waits until one of `nodes[1..]` leads; returns its index.
async fn wait_takeover(nodes: &[Server], token: &str, old_epoch: u64) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for (index, node) in nodes.iter().enumerate().skip(1) {
            if let Some(status) = try_status(node, token).await {
                if status["role"] == "leader" && status["epoch"].as_u64() > Some(old_epoch) {
                    return index;
                }
            }
        }
        assert!(Instant::now() < deadline, "no takeover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn converge(nodes: &[Server], token: &str) -> Vec<String> {
    let mut head = 0;
    for node in nodes {
        if let Some(status) = try_status(node, token).await {
            if status["role"] == "leader" {
                head = status["appliedSeq"].as_u64().expect("seq");
            }
        }
    }
    for node in nodes {
        wait_status(node, token, "caught up", |s| {
            s["role"] != "candidate" && s["appliedSeq"].as_u64() == Some(head)
        })
        .await;
    }
    let reference = titles(&nodes[0], token).await;
    for node in nodes {
        assert_eq!(titles(node, token).await, reference);
    }
    reference
}

#[test]
fn sync_partitioned_leader_cannot_commit_and_rejoins_after_healing() {
    let _serial = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let root = tempfile::tempdir().expect("tempdir");
    let mut nats = Nats::cluster3(&root.path().join("nats"));
    let dirs: Vec<PathBuf> = (0..3).map(|i| root.path().join(format!("p{i}"))).collect();
    create_superuser(&dirs[0]);
    runtime().block_on(async {
        let (mut nodes, token) = start_nodes(&nats, &dirs, "part", "sync").await;
        let mut acknowledged = vec![];
        // Writes through every node converge over the 3-node NATS cluster.
        for i in 0..30 {
            let title = format!("before-{i:02}");
            let (status, body) = create(&nodes[i % 3], &token, &title).await;
            assert_eq!(status, 200, "{body}");
            acknowledged.push(title);
        }
        converge(&nodes, &token).await;
        let epoch = try_status(&nodes[0], &token).await.expect("status")["epoch"]
            .as_u64()
            .expect("epoch");
        let before = titles(&nodes[0], &token).await;
        // Partition: the leader's NATS node goes away.
        nats[0].stop();
        tokio::time::sleep(Duration::from_millis(300)).await;
        for i in 0..5 {
            let (status, body) = create(&nodes[0], &token, &format!("cut-{i}")).await;
            assert_eq!(
                status, 503,
                "the partitioned leader acknowledges nothing: {body}"
            );
        }
        assert_eq!(
            titles(&nodes[0], &token).await,
            before,
            "nothing was committed"
        );
        let leader = wait_takeover(&nodes, &token, epoch).await;
        for i in 0..10 {
            let title = format!("after-{i:02}");
            let node = (leader + i) % 3;
            let (mut status, mut body) = create(&nodes[node], &token, &title).await;
            if node == 0 {
                // The partitioned node can reach no leader.
                assert_eq!(status, 503, "{body}");
                continue;
            }
            // A follower that still names the old leader gets its 503 for a moment.
            let deadline = Instant::now() + Duration::from_secs(10);
            while status == 503 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(200)).await;
                (status, body) = create(&nodes[node], &token, &title).await;
            }
            assert_eq!(status, 200, "{body}");
            acknowledged.push(title);
        }
        // Healing: the old leader follows again, nothing of its own to discard.
        nats[0].restart();
        let status = wait_status(&nodes[0], &token, "rejoined", |s| {
            s["role"] == "follower" && s["lagPositions"] == 0 && s["connected"] == true
        })
        .await;
        assert!(status["discarded"].is_null(), "{status}");
        let mut all = converge(&nodes, &token).await;
        all.sort();
        acknowledged.sort();
        assert_eq!(
            all, acknowledged,
            "exactly the acknowledged writes, on every node"
        );
        for node in &mut nodes {
            assert!(node.terminate(), "clean stop: {}", node.stderr());
        }
    });
    let reference = log_bytes(&dirs[0]);
    for dir in &dirs {
        assert_eq!(log_bytes(dir), reference, "{}", dir.display());
        let (code, output) = pb_tools(&["verify"], dir);
        assert_eq!(code, 0, "{}: {output}", dir.display());
    }
}

#[test]
fn async_deposed_leader_moves_its_unreplicated_tail_aside_and_rejoins() {
    let _serial = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let root = tempfile::tempdir().expect("tempdir");
    let mut nats = Nats::cluster3(&root.path().join("nats"));
    let dirs: Vec<PathBuf> = (0..3).map(|i| root.path().join(format!("q{i}"))).collect();
    create_superuser(&dirs[0]);
    runtime().block_on(async {
        let (mut nodes, token) = start_nodes(&nats, &dirs, "tail", "async").await;
        for i in 0..5 {
            let (status, body) = create(&nodes[i % 3], &token, &format!("shared-{i}")).await;
            assert_eq!(status, 200, "{body}");
        }
        converge(&nodes, &token).await;
        let epoch = try_status(&nodes[0], &token).await.expect("status")["epoch"]
            .as_u64()
            .expect("epoch");
        let shared_head = try_status(&nodes[0], &token).await.expect("status")["appliedSeq"]
            .as_u64()
            .expect("seq");
        // Partition: in `async` mode the old leader still acknowledges writes for as long as
        // it believes it leads; the cluster never gets them.
        nats[0].stop();
        let mut tail = vec![];
        for i in 0..3 {
            let title = format!("lost-{i}");
            let (status, _) = create(&nodes[0], &token, &title).await;
            if status == 200 {
                tail.push(title);
            }
        }
        assert!(
            !tail.is_empty(),
            "the async leader acknowledged writes while partitioned"
        );
        let leader = wait_takeover(&nodes, &token, epoch).await;
        for i in 0..4 {
            let (status, body) = create(&nodes[leader], &token, &format!("new-{i}")).await;
            assert_eq!(status, 200, "{body}");
        }
        // Healing: the old leader finds its log diverged, restarts by itself, moves the tail
        // aside and follows.
        nats[0].restart();
        let status = wait_status(
            &nodes[0],
            &token,
            "rejoined after moving the tail aside",
            |s| s["role"] == "follower" && s["lagPositions"] == 0 && !s["discarded"].is_null(),
        )
        .await;
        assert_eq!(
            status["discarded"]["from"].as_u64(),
            Some(shared_head + 1),
            "{status}"
        );
        assert_eq!(
            status["discarded"]["to"].as_u64(),
            Some(shared_head + tail.len() as u64),
            "{status}"
        );
        let kept: Vec<String> = status["discarded"]["keptIn"]
            .as_array()
            .expect("keptIn")
            .iter()
            .map(|path| path.as_str().expect("path").to_string())
            .collect();
        assert!(!kept.is_empty(), "{status}");
        let mut kept_bytes = vec![];
        for path in &kept {
            assert!(path.contains(".broken-cluster-"), "{path}");
            kept_bytes.extend(std::fs::read(path).expect("the kept tail exists"));
        }
        // The kept bytes hold the lost writes; the node now holds the cluster's history.
        for title in &tail {
            assert!(
                kept_bytes
                    .windows(title.len())
                    .any(|w| w == title.as_bytes()),
                "{title} is kept in {kept:?}"
            );
        }
        let all = converge(&nodes, &token).await;
        for title in &tail {
            assert!(!all.contains(title), "{title} was never replicated");
        }
        assert!(nodes[0].stderr().contains("aside"), "{}", nodes[0].stderr());
        for node in &mut nodes {
            assert!(node.terminate(), "clean stop: {}", node.stderr());
        }
    });
    let reference = log_bytes(&dirs[0]);
    for dir in &dirs {
        assert_eq!(log_bytes(dir), reference, "{}", dir.display());
        let (code, output) = pb_tools(&["verify"], dir);
        assert_eq!(code, 0, "{}: {output}", dir.display());
    }
}
