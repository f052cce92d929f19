//! Helpers of the cluster tests (`cluster_*.rs`): NATS servers started on loopback (one, or a
//! cluster of three with routes and JetStream), SIGKILL of a node, cluster flags and status
//! polling, and an SSE client that follows a realtime stream across nodes.

#![allow(dead_code)]

use super::support::Server;
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .expect("local addr")
        .port()
}

/// A `nats-server -js` on a loopback port, killed on drop.
pub struct Nats {
    child: Option<Child>,
    pub port: u16,
    args: Vec<String>,
}

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until the NATS node with monitoring port `monitor` answers `/healthz` with 200: for a
/// clustered node that means JetStream reached its meta leader (on a loaded 2-core machine the
/// election can take longer than a client's first JetStream request is willing to wait).
fn wait_healthy(monitor: u16) {
    use std::io::{Read, Write};
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let healthy = std::net::TcpStream::connect(("127.0.0.1", monitor))
            .and_then(|mut stream| {
                stream.set_read_timeout(Some(Duration::from_secs(5)))?;
                stream.write_all(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
                let mut answer = String::new();
                stream.read_to_string(&mut answer)?;
                Ok(answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"))
            })
            .unwrap_or(false);
        if healthy {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the NATS cluster's JetStream did not become healthy"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

impl Nats {
    pub fn start(store: &Path) -> Nats {
        let port = free_port();
        let args = vec![
            "-js".to_string(),
            "-a".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
            "-sd".into(),
            store.display().to_string(),
        ];
        let mut nats = Nats {
            child: None,
            port,
            args,
        };
        nats.restart();
        nats
    }

    /// Three `nats-server -js` routed into one NATS cluster (JetStream replicas up to 3).
    pub fn cluster3(store: &Path) -> Vec<Nats> {
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let monitors: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let routes = ports
            .iter()
            .map(|(_, route)| format!("nats://127.0.0.1:{route}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes: Vec<Nats> = ports
            .iter()
            .enumerate()
            .map(|(i, (port, route))| Nats {
                child: None,
                port: *port,
                args: vec![
                    "-js".to_string(),
                    "-a".into(),
                    "127.0.0.1".into(),
                    "-p".into(),
                    port.to_string(),
                    "-sd".into(),
                    store.join(format!("n{i}")).display().to_string(),
                    "--server_name".into(),
                    format!("n{i}"),
                    "--cluster_name".into(),
                    "plc".into(),
                    "--cluster".into(),
                    format!("nats://127.0.0.1:{route}"),
                    "--routes".into(),
                    routes.clone(),
                    // Clients stay on their own NATS node (a partition stays one).
                    "--no_advertise".into(),
                    "-m".into(),
                    monitors[i].to_string(),
                ],
            })
            .collect();
        for node in &mut nodes {
            node.spawn();
        }
        for node in &nodes {
            wait_port(node.port);
        }
        for monitor in &monitors {
            wait_healthy(*monitor);
        }
        nodes
    }

    fn spawn(&mut self) {
        let child = Command::new("nats-server")
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server is not installed (apt-get install nats-server; see .ci/run)");
        self.child = Some(child);
    }

    /// Starts it (again, on the same port and store).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
        wait_port(self.port);
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
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
pub fn kill9(server: &Server) {
    let pid = libc::pid_t::try_from(server.pid()).expect("pid");
    // SAFETY: sends a signal to our own child process, which has not been reaped yet.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    std::thread::sleep(Duration::from_millis(200));
}

pub fn cluster_flags<'a>(url: &'a str, name: &'a str, mode: &'a str) -> Vec<&'a str> {
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

/// The node's cluster status (`/api/cluster`), or None when it does not answer.
pub async fn try_status(server: &Server, token: &str) -> Option<Value> {
    let response = server
        .http
        .get(server.url("/api/cluster"))
        .header("Authorization", token)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().await.ok()
}

/// Waits until `check` holds for the node's cluster status.
pub async fn wait_status(
    server: &Server,
    token: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = try_status(server, token).await.unwrap_or(Value::Null);
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

/// A record event an SSE client received: its position (seq, part) and the record's title.
#[derive(Debug, Clone)]
pub struct Received {
    pub seq: u64,
    pub part: u64,
    pub title: String,
}

/// What an [`SseFollower`] saw.
#[derive(Debug, Default)]
pub struct SseLog {
    pub events: Vec<Received>,
    /// Streams opened (1 + resumes).
    pub streams: usize,
    /// `PB_RESET` frames, or resumes that were given a new client id.
    pub resets: Vec<String>,
    pub client_id: String,
    /// The node the client streams from now.
    pub current: String,
    /// Set by the test: leave the current stream and resume on another node.
    pub move_now: bool,
}

/// A realtime client subscribed to `topic` that, when its stream ends, resumes with
/// `Last-Event-ID` on another node of `nodes` (the live nodes' base URLs).
pub async fn sse_follow(
    nodes: Arc<Mutex<Vec<String>>>,
    first: String,
    topic: &'static str,
    log: Arc<Mutex<SseLog>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    subscribed: tokio::sync::oneshot::Sender<()>,
) {
    let client = reqwest::Client::new();
    let mut subscribed = Some(subscribed);
    let mut base = first;
    let mut last_id: Option<String> = None;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        let mut request = client.get(format!("{base}/api/realtime"));
        if let Some(id) = &last_id {
            request = request.header("Last-Event-ID", id);
        }
        let opened = tokio::time::timeout(Duration::from_secs(15), request.send()).await;
        if let Ok(Ok(mut response)) = opened {
            if response.status().is_success() {
                {
                    let mut log = log.lock().expect("log");
                    log.streams += 1;
                    log.current = base.clone();
                }
                let mut buffer = String::new();
                loop {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        return;
                    }
                    let chunk =
                        tokio::time::timeout(Duration::from_millis(500), response.chunk()).await;
                    let chunk = match chunk {
                        Err(_) if std::mem::take(&mut log.lock().expect("log").move_now) => break,
                        Err(_) => continue,
                        Ok(Ok(Some(chunk))) => chunk,
                        Ok(_) => break,
                    };
                    buffer.push_str(&String::from_utf8_lossy(&chunk));
                    while let Some(end) = buffer.find("\n\n") {
                        let frame: String = buffer.drain(..end + 2).collect();
                        let (mut id, mut event, mut data) =
                            (String::new(), String::new(), String::new());
                        for line in frame.lines() {
                            if let Some(value) = line.strip_prefix("id:") {
                                id = value.trim().to_string();
                            } else if let Some(value) = line.strip_prefix("event:") {
                                event = value.trim().to_string();
                            } else if let Some(value) = line.strip_prefix("data:") {
                                data.push_str(value.trim());
                            }
                        }
                        let data: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
                        match event.as_str() {
                            "PB_CONNECT" => {
                                let client_id = data["clientId"].as_str().unwrap_or("").to_string();
                                {
                                    let mut log = log.lock().expect("log");
                                    if !log.client_id.is_empty() && log.client_id != client_id {
                                        log.resets.push(format!("new client id on {base}: {data}"));
                                    }
                                    log.client_id = client_id.clone();
                                }
                                let posted = client
                                    .post(format!("{base}/api/realtime"))
                                    .json(&serde_json::json!({"clientId": client_id, "subscriptions": [topic]}))
                                    .send()
                                    .await;
                                match posted {
                                    Ok(answer) if answer.status().as_u16() == 204 => {
                                        if let Some(sender) = subscribed.take() {
                                            let _ = sender.send(());
                                        }
                                    }
                                    _ => break,
                                }
                                if last_id.is_none() {
                                    last_id = Some(client_id);
                                }
                            }
                            "PB_RESET" => log.lock().expect("log").resets.push(format!("{data}")),
                            _ => {
                                let mut parts = id.split('.');
                                let (_, seq, part) = (parts.next(), parts.next(), parts.next());
                                let (Some(seq), Some(part)) = (
                                    seq.and_then(|s| s.parse().ok()),
                                    part.and_then(|s| s.parse().ok()),
                                ) else {
                                    continue;
                                };
                                log.lock().expect("log").events.push(Received {
                                    seq,
                                    part,
                                    title: data["record"]["title"]
                                        .as_str()
                                        .unwrap_or("")
                                        .to_string(),
                                });
                                last_id = Some(id);
                            }
                        }
                    }
                }
            }
        }
        // The stream ended (its node died): resume on another live node.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let live = nodes.lock().expect("nodes").clone();
        if let Some(other) = live.iter().find(|url| **url != base).or(live.first()) {
            base = other.clone();
        }
    }
}
