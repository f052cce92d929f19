//! `pocketlog serve --cluster` against a real NATS JetStream server started by the test
//! (`nats-server -js` on a free loopback port; `.ci/run` installs it):
//! - a leader and two replicas under concurrent writes sent to every node: every write is
//!   read back at once on the node that took it, every node ends with the same records and a
//!   byte-identical log, and `pb-tools verify` passes on each;
//! - `sync` mode: kill -9 of the leader, a follower takes over with every acknowledged write,
//!   the old leader restarts as a follower and catches up (`CLUSTER_FAILOVER_CYCLES` cycles,
//!   1 by default); with NATS gone the leader refuses writes and changes nothing;
//! - bad input: NATS unreachable, a data dir of another cluster, a bad mode or name.

mod support;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{create_superuser, pb_tools, runtime, Server};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .expect("local addr")
        .port()
}

/// A `nats-server -js` on a free loopback port, killed on drop.
struct Nats {
    child: Option<Child>,
    port: u16,
}

impl Nats {
    fn start(store: &Path) -> Nats {
        Nats::start_on(store, free_port())
    }

    fn start_on(store: &Path, port: u16) -> Nats {
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server is not installed (apt-get install nats-server; see .ci/run)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Nats {
            child: Some(child),
            port,
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}

/// SIGKILL of a server (the harness's `terminate` is a clean SIGTERM).
fn kill9(server: &Server) {
    let pid = libc::pid_t::try_from(server.pid()).expect("pid");
    // SAFETY: sends a signal to our own child process, which has not been reaped yet.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    std::thread::sleep(Duration::from_millis(200));
}

fn cluster_flags<'a>(url: &'a str, name: &'a str, mode: &'a str) -> Vec<&'a str> {
    vec![
        "--cluster",
        url,
        "--cluster-name",
        name,
        "--replicate",
        mode,
        "--sync",
        "always",
    ]
}

async fn cluster_status(server: &Server, token: &str) -> Value {
    let (status, body) = server.call("GET", "/api/health", Some(token), None).await;
    assert_eq!(status, 200, "{body}");
    body["data"]["cluster"].clone()
}

/// Waits until `check` holds for the node's cluster status.
async fn wait_status(
    server: &Server,
    token: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = cluster_status(server, token).await;
        if check(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {status}\n{}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn create_notes(server: &Server, token: &str) {
    let (status, body) = server
        .call(
            "POST",
            "/api/collections",
            Some(token),
            Some(json!({"name": "notes", "type": "base",
                "listRule": "", "viewRule": "", "createRule": "",
                "fields": [{"name": "title", "type": "text"}]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
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

/// The concatenated bytes of a data dir's log segments.
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

#[test]
fn a_leader_and_two_replicas_converge_under_concurrent_writes() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut nats = Nats::start(&root.path().join("nats"));
    let url = nats.url();
    let dirs: Vec<PathBuf> = (0..3)
        .map(|i| root.path().join(format!("node{i}")))
        .collect();
    create_superuser(&dirs[0]);
    runtime().block_on(async {
        let flags = cluster_flags(&url, "conv", "async");
        let leader = Server::start(&dirs[0], &flags).await;
        let token = leader.login().await;
        let mut nodes = vec![];
        for dir in &dirs[1..] {
            nodes.push(Server::start(dir, &flags).await);
        }
        let status = cluster_status(&leader, &token).await;
        assert_eq!(status["role"], "leader", "{status}");
        let epoch = status["epoch"].as_u64().expect("epoch");
        assert!(epoch > 0, "{status}");
        for node in &nodes {
            // The replicas got the leader's superuser through the log: the same token works.
            let status = wait_status(node, &token, "follower", |s| s["role"] == "follower").await;
            assert_eq!(status["leader"]["epoch"].as_u64(), Some(epoch), "{status}");
        }
        // A collection made through a replica (forwarded to the leader) exists on the replica
        // as soon as it answers.
        create_notes(&nodes[0], &token).await;
        let (status, body) = nodes[0]
            .call("GET", "/api/collections/notes", Some(&token), None)
            .await;
        assert_eq!(status, 200, "{body}");
        nodes.insert(0, leader);
        let per_node = 25;
        let mut tasks = vec![];
        let nodes = std::sync::Arc::new(nodes);
        for writer in 0..6 {
            let nodes = std::sync::Arc::clone(&nodes);
            let token = token.clone();
            tasks.push(tokio::spawn(async move {
                let node = &nodes[writer % 3];
                for i in 0..per_node {
                    let title = format!("w{writer}-{i:03}");
                    let (status, body) = node
                        .call(
                            "POST",
                            "/api/collections/notes/records",
                            Some(&token),
                            Some(json!({"title": title})),
                        )
                        .await;
                    assert_eq!(status, 200, "{body}");
                    // Read-your-writes on the node that took the write.
                    let id = body["id"].as_str().expect("id").to_string();
                    let (status, body) = node
                        .call(
                            "GET",
                            &format!("/api/collections/notes/records/{id}"),
                            Some(&token),
                            None,
                        )
                        .await;
                    assert_eq!(
                        status,
                        200,
                        "read-your-writes on node {}: {body}",
                        writer % 3
                    );
                    assert_eq!(body["title"], title);
                }
            }));
        }
        for task in tasks {
            task.await.expect("writer task");
        }
        let leader_seq = cluster_status(&nodes[0], &token).await["appliedSeq"]
            .as_u64()
            .expect("seq");
        for node in nodes.iter().skip(1) {
            let status = wait_status(node, &token, "caught up", |s| {
                s["appliedSeq"].as_u64() == Some(leader_seq)
            })
            .await;
            assert_eq!(status["lagPositions"], 0, "{status}");
        }
        let expected = titles(&nodes[0], &token).await;
        assert_eq!(expected.len(), 6 * per_node);
        for node in nodes.iter().skip(1) {
            assert_eq!(titles(node, &token).await, expected);
        }
        let mut nodes =
            std::sync::Arc::try_unwrap(nodes).unwrap_or_else(|_| panic!("nodes shared"));
        for node in nodes.iter_mut() {
            assert!(node.terminate(), "clean stop: {}", node.stderr());
        }
    });
    nats.stop();
    let reference = log_bytes(&dirs[0]);
    for dir in &dirs {
        assert_eq!(
            log_bytes(dir),
            reference,
            "{} holds the leader's log",
            dir.display()
        );
        let (code, output) = pb_tools(&["verify"], dir);
        assert_eq!(code, 0, "{}: {output}", dir.display());
    }
}

#[test]
fn sync_failover_keeps_every_acknowledged_write_and_refuses_writes_without_nats() {
    let cycles: usize = std::env::var("CLUSTER_FAILOVER_CYCLES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(1);
    let root = tempfile::tempdir().expect("tempdir");
    let mut nats = Nats::start(&root.path().join("nats"));
    let url = nats.url();
    let dirs = [root.path().join("a"), root.path().join("b")];
    create_superuser(&dirs[0]);
    runtime().block_on(async {
        let flags = cluster_flags(&url, "fail", "sync");
        let mut leader = Server::start(&dirs[0], &flags).await;
        let token = leader.login().await;
        let mut follower = Server::start(&dirs[1], &flags).await;
        wait_status(&follower, &token, "follower", |s| s["role"] == "follower").await;
        create_notes(&leader, &token).await;
        let mut acknowledged: Vec<String> = vec![];
        let mut leader_dir = 0;
        for cycle in 0..cycles {
            for i in 0..10 {
                let title = format!("c{cycle:02}-{i:02}");
                let (status, body) = leader
                    .call(
                        "POST",
                        "/api/collections/notes/records",
                        Some(&token),
                        Some(json!({"title": title})),
                    )
                    .await;
                assert_eq!(status, 200, "{body}");
                acknowledged.push(title);
            }
            let old_epoch = cluster_status(&leader, &token).await["epoch"]
                .as_u64()
                .expect("epoch");
            kill9(&leader);
            let started = Instant::now();
            let status =
                wait_status(&follower, &token, "takeover", |s| s["role"] == "leader").await;
            assert!(
                status["epoch"].as_u64().expect("epoch") > old_epoch,
                "{status}"
            );
            eprintln!("cycle {cycle}: failover in {:?}", started.elapsed());
            let mut seen = titles(&follower, &token).await;
            seen.sort();
            let mut expected = acknowledged.clone();
            expected.sort();
            assert_eq!(
                seen, expected,
                "every acknowledged write survives the failover"
            );
            // The new leader takes writes; the old one comes back as a follower and catches up.
            let (status, body) = follower
                .call(
                    "POST",
                    "/api/collections/notes/records",
                    Some(&token),
                    Some(json!({"title": format!("after-{cycle:02}")})),
                )
                .await;
            assert_eq!(status, 200, "{body}");
            acknowledged.push(format!("after-{cycle:02}"));
            let restarted = Server::start(&dirs[leader_dir], &flags).await;
            let status = wait_status(&restarted, &token, "rejoined", |s| {
                s["role"] == "follower" && s["lagPositions"] == 0
            })
            .await;
            assert!(status["error"].is_null(), "{status}");
            assert_eq!(titles(&restarted, &token).await.len(), acknowledged.len());
            leader = std::mem::replace(&mut follower, restarted);
            leader_dir = 1 - leader_dir;
        }
        // NATS gone: the sync leader refuses writes and changes nothing.
        let before = titles(&leader, &token).await.len();
        nats.stop();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (status, body) = leader
            .call(
                "POST",
                "/api/collections/notes/records",
                Some(&token),
                Some(json!({"title": "no-nats"})),
            )
            .await;
        assert_eq!(status, 503, "{body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap_or("")
                .contains("cannot replicate"),
            "{body}"
        );
        assert_eq!(titles(&leader, &token).await.len(), before);
        let status = cluster_status(&leader, &token).await;
        assert_eq!(status["connected"], false, "{status}");
        leader.terminate();
        follower.terminate();
    });
}

/// Runs `pocketlog serve` expecting it to fail at start; returns its stderr.
fn serve_fails(dir: &Path, flags: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_pocketlog"))
        .args([
            "serve",
            "--http",
            &format!("127.0.0.1:{}", free_port()),
            "--dir",
        ])
        .arg(dir)
        .args(flags)
        .stdin(Stdio::null())
        .output()
        .expect("run pocketlog");
    assert!(!output.status.success(), "serve should fail");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn bad_cluster_input_gives_clear_errors() {
    let root = tempfile::tempdir().expect("tempdir");
    // NATS unreachable at start.
    let dead = format!("nats://127.0.0.1:{}", free_port());
    let err = serve_fails(
        &root.path().join("x"),
        &["--cluster", &dead, "--cluster-connect-timeout", "1"],
    );
    assert!(err.contains("cannot reach NATS"), "{err}");
    // A bad mode, a bad name.
    let err = serve_fails(
        &root.path().join("x"),
        &["--cluster", &dead, "--replicate", "maybe"],
    );
    assert!(err.contains("--replicate"), "{err}");
    let err = serve_fails(
        &root.path().join("x"),
        &["--cluster", &dead, "--cluster-name", "a b"],
    );
    assert!(err.contains("invalid cluster name"), "{err}");

    let nats = Nats::start(&root.path().join("nats"));
    let url = nats.url();
    // Cluster "one" gets a leader with its history.
    let one = root.path().join("one");
    create_superuser(&one);
    let other = root.path().join("other");
    create_superuser(&other);
    runtime().block_on(async {
        let mut leader = Server::start(&one, &cluster_flags(&url, "one", "async")).await;
        let token = leader.login().await;
        wait_status(&leader, &token, "published", |s| {
            s["ackedSeq"].as_u64().is_some_and(|acked| acked >= 2)
        })
        .await;
        // A data dir with another history cannot join it.
        let err = serve_fails(&other, &cluster_flags(&url, "one", "async"));
        assert!(err.contains("does not belong to cluster"), "{err}");
        leader.terminate();
    });
    drop(nats);
}
