//! Shared helpers for the `realtime_*` tests: a real server on 127.0.0.1:0 over a temp data
//! dir that can be restarted on the same dir, plain HTTP helpers, and a minimal raw SSE client
//! over a `TcpStream` (so tests see the exact bytes, chunk decoding included).
//!
//! 1. Servers use `SyncPolicy::None`; durability is not what these tests check.
//! 2. The SSE client yields only complete frames; a frame cut by a disconnect is never
//!    counted as received, exactly like EventSource.

#![allow(dead_code)]

use api::access::Auth;
use api::model::SUPERUSERS_ID;
use api::{AppState, ServerOptions};
use engine::{Engine, EngineConfig, SyncPolicy};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The superuser of every test server.
pub const ADMIN_EMAIL: &str = "admin@example.com";
/// Its password.
pub const ADMIN_PASSWORD: &str = "Passw0rd123";

/// A running server.
pub struct Server {
    /// `127.0.0.1:<port>`.
    pub addr: String,
    /// The server state.
    pub state: Arc<AppState>,
    /// Superuser token.
    pub admin: String,
    /// HTTP client.
    pub http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Opens the engine of `dir`.
pub fn open_engine(dir: &Path, segment_bytes_max: Option<u64>) -> Engine {
    let mut config = EngineConfig {
        sync: SyncPolicy::None,
        ..Default::default()
    };
    if let Some(max) = segment_bytes_max {
        config.segment_bytes_max = max;
    }
    Engine::open(dir, config).expect("open engine").0
}

impl Server {
    /// Starts a server on `dir` with `options`.
    pub async fn start(dir: &Path, options: ServerOptions) -> Server {
        Self::start_engine(open_engine(dir, None), options).await
    }

    /// Starts a server on an open engine.
    pub async fn start_engine(engine: Engine, options: ServerOptions) -> Server {
        let state = AppState::new(engine, options).expect("app state");
        ensure_superuser(&state).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let router = api::router(Arc::clone(&state));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let hub = Arc::clone(&state.realtime);
        let task = tokio::spawn(async move {
            // Peer addresses reach the handlers (`ConnectInfo`), as in the real server.
            let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
            let _ = axum::serve(listener, service)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                    hub.shutdown().await;
                })
                .await;
        });
        let mut server = Server {
            addr,
            state,
            admin: String::new(),
            http: reqwest::Client::new(),
            stop: Some(stop),
            task: Some(task),
        };
        server.admin = server
            .login("_superusers", ADMIN_EMAIL, ADMIN_PASSWORD)
            .await;
        server
    }

    /// Graceful stop (streams end, sessions are persisted), then the engine shuts down.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        self.state.engine.shutdown();
        // Give detached tasks a moment to drop their handles on the engine.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    /// `http://addr`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A JSON request; returns status and body.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.header("Authorization", token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Logs in and returns the token.
    pub async fn login(&self, collection: &str, identity: &str, password: &str) -> String {
        let (status, body) = self
            .send(
                "POST",
                &format!("/api/collections/{collection}/auth-with-password"),
                Some(json!({"identity": identity, "password": password})),
                None,
            )
            .await;
        assert_eq!(status, 200, "login failed: {body}");
        body["token"].as_str().expect("token").to_string()
    }

    /// Creates a collection as superuser.
    pub async fn create_collection(&self, body: Value) -> Value {
        let (status, body) = self
            .send("POST", "/api/collections", Some(body), Some(&self.admin))
            .await;
        assert_eq!(status, 200, "collection create failed: {body}");
        body
    }

    /// Creates a public `messages` collection (`text` field, all rules open).
    pub async fn create_messages(&self) {
        self.create_collection(json!({
            "name": "messages", "type": "base",
            "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
            "fields": [{"name": "text", "type": "text"}]
        }))
        .await;
    }

    /// Creates a record; returns it.
    pub async fn create(&self, collection: &str, body: Value, token: Option<&str>) -> Value {
        let (status, body) = self
            .send(
                "POST",
                &format!("/api/collections/{collection}/records"),
                Some(body),
                token,
            )
            .await;
        assert_eq!(status, 200, "record create failed: {body}");
        body
    }

    /// Signs up a user and returns (id, token).
    pub async fn user(&self, name: &str) -> (String, String) {
        let email = format!("{name}@example.com");
        let body = self
            .create(
                "users",
                json!({"email": email, "password": "Passw0rd123", "passwordConfirm": "Passw0rd123"}),
                None,
            )
            .await;
        let id = body["id"].as_str().expect("id").to_string();
        let token = self.login("users", &email, "Passw0rd123").await;
        (id, token)
    }

    /// `POST /api/realtime` sent from the local address `from` (any `127.x.y.z` works on
    /// Linux loopback); returns status and body.
    pub async fn subscribe_from(
        &self,
        from: std::net::IpAddr,
        client_id: &str,
        topics: &[&str],
        token: Option<&str>,
    ) -> (u16, Value) {
        let client = reqwest::Client::builder()
            .local_address(from)
            .build()
            .expect("client");
        let mut request = client
            .post(self.url("/api/realtime"))
            .json(&json!({"clientId": client_id, "subscriptions": topics}));
        if let Some(token) = token {
            request = request.header("Authorization", token);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// `POST /api/realtime`.
    pub async fn subscribe(&self, client_id: &str, topics: &[&str], token: Option<&str>) -> u16 {
        let (status, body) = self
            .send(
                "POST",
                "/api/realtime",
                Some(json!({"clientId": client_id, "subscriptions": topics})),
                token,
            )
            .await;
        assert!(
            status == 204 || status >= 400,
            "unexpected {status}: {body}"
        );
        status
    }
}

async fn ensure_superuser(state: &Arc<AppState>) {
    let exists = state
        .engine
        .read(|conn| conn.query("SELECT COUNT(*) FROM _superusers", &[]))
        .map(|rows| rows.rows.first().and_then(|r| r[0].as_i64()).unwrap_or(0) > 0)
        .unwrap_or(false);
    if exists {
        return;
    }
    let schema = state.schema();
    let collection = Arc::clone(schema.find(SUPERUSERS_ID).expect("_superusers"));
    let mut record = Map::new();
    record.insert("id".into(), json!("system"));
    let system = Some(Auth {
        collection: Arc::clone(&collection),
        record,
    });
    let mut body = Map::new();
    body.insert("email".into(), json!(ADMIN_EMAIL));
    body.insert("password".into(), json!(ADMIN_PASSWORD));
    body.insert("passwordConfirm".into(), json!(ADMIN_PASSWORD));
    api::records::create_record(
        state,
        &schema,
        &collection,
        system.as_ref(),
        body,
        api::access::RequestData::default(),
    )
    .await
    .expect("create superuser");
}

/// One parsed SSE frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The exact bytes of the frame.
    pub raw: String,
    /// `id:` value.
    pub id: String,
    /// `event:` value.
    pub event: String,
    /// `data:` value.
    pub data: String,
}

impl Frame {
    /// `data` as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).expect("frame data is JSON")
    }
    /// The seq of an event id `<client>.<seq>.<part>`.
    pub fn seq(&self) -> u64 {
        self.id
            .split('.')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("event id with a seq")
    }
}

/// A raw SSE client.
pub struct Sse {
    stream: TcpStream,
    /// Response head (status line and headers).
    pub head: String,
    body: Vec<u8>,
    chunked: Vec<u8>,
    /// The last complete frame's id (what EventSource would send as `Last-Event-ID`).
    pub last_id: String,
    /// The client id from `PB_CONNECT`.
    pub client_id: String,
    /// Raw text of every comment/ping frame seen.
    pub comments: usize,
}

impl Sse {
    /// Opens `GET /api/realtime` (optionally resuming) and reads `PB_CONNECT`.
    pub async fn connect(addr: &str, last_event_id: Option<&str>) -> (Sse, Frame) {
        Self::connect_path(addr, "/api/realtime", last_event_id).await
    }

    /// Opens an SSE stream at `path`.
    pub async fn connect_path(addr: &str, path: &str, last_event_id: Option<&str>) -> (Sse, Frame) {
        Self::connect_with(addr, path, last_event_id, None, None).await
    }

    /// Opens an SSE stream at `path` from the local address `from` (default: any), with an
    /// optional `Authorization` header.
    pub async fn connect_with(
        addr: &str,
        path: &str,
        last_event_id: Option<&str>,
        from: Option<std::net::IpAddr>,
        token: Option<&str>,
    ) -> (Sse, Frame) {
        let mut stream = match from {
            None => TcpStream::connect(addr).await.expect("connect"),
            Some(ip) => {
                let socket = tokio::net::TcpSocket::new_v4().expect("socket");
                socket
                    .bind(std::net::SocketAddr::new(ip, 0))
                    .expect("bind local address");
                socket
                    .connect(addr.parse().expect("server address"))
                    .await
                    .expect("connect")
            }
        };
        let mut request =
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n");
        if let Some(id) = last_event_id {
            request.push_str(&format!("Last-Event-ID: {id}\r\n"));
        }
        if let Some(token) = token {
            request.push_str(&format!("Authorization: {token}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut sse = Sse {
            stream,
            head: String::new(),
            body: Vec::new(),
            chunked: Vec::new(),
            last_id: String::new(),
            client_id: String::new(),
            comments: 0,
        };
        let mut raw = Vec::new();
        while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
            let mut buf = [0u8; 4096];
            let n = sse.stream.read(&mut buf).await.expect("read head");
            assert!(n > 0, "connection closed before the response head");
            raw.extend_from_slice(&buf[..n]);
        }
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("head end")
            + 4;
        sse.head = String::from_utf8_lossy(&raw[..split]).into_owned();
        sse.chunked = raw[split..].to_vec();
        let connect = sse
            .next(Duration::from_secs(5))
            .await
            .expect("PB_CONNECT frame");
        assert_eq!(connect.event, "PB_CONNECT", "first frame: {connect:?}");
        sse.client_id = connect.json()["clientId"]
            .as_str()
            .expect("clientId")
            .to_string();
        (sse, connect)
    }

    /// Moves complete chunks from `chunked` to `body`; false at the terminating chunk.
    fn dechunk(&mut self) -> bool {
        loop {
            let Some(line_end) = self.chunked.windows(2).position(|w| w == b"\r\n") else {
                return true;
            };
            let size_text = String::from_utf8_lossy(&self.chunked[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.trim(), 16).expect("chunk size");
            if size == 0 {
                return false;
            }
            if self.chunked.len() < line_end + 2 + size + 2 {
                return true;
            }
            let start = line_end + 2;
            self.body
                .extend_from_slice(&self.chunked[start..start + size]);
            self.chunked.drain(..start + size + 2);
        }
    }

    /// The next complete event frame (comments are counted and skipped), or `None` on
    /// timeout or end of stream.
    pub async fn next(&mut self, timeout: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let open = self.dechunk();
            if let Some(end) = self.body.windows(2).position(|w| w == b"\n\n") {
                let raw: Vec<u8> = self.body.drain(..end + 2).collect();
                let raw = String::from_utf8(raw).expect("utf-8 frame");
                if raw.starts_with(':') {
                    self.comments += 1;
                    continue;
                }
                let mut frame = Frame {
                    raw: raw.clone(),
                    id: String::new(),
                    event: String::new(),
                    data: String::new(),
                };
                for line in raw.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        frame.id = v.to_string();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        frame.event = v.to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        frame.data = v.to_string();
                    }
                }
                if !frame.id.is_empty() {
                    self.last_id = frame.id.clone();
                }
                return Some(frame);
            }
            if !open {
                return None;
            }
            let mut buf = [0u8; 16384];
            let read = tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await;
            match read {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return None,
                Ok(Ok(n)) => self.chunked.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// Collects `count` frames (panics with what arrived when they don't).
    pub async fn take(&mut self, count: usize) -> Vec<Frame> {
        let mut out = Vec::new();
        while out.len() < count {
            match self.next(Duration::from_secs(10)).await {
                Some(frame) => out.push(frame),
                None => panic!("only {} of {count} frames arrived: {out:?}", out.len()),
            }
        }
        out
    }

    /// Asserts that nothing arrives for `wait`.
    pub async fn expect_silence(&mut self, wait: Duration) {
        if let Some(frame) = self.next(wait).await {
            panic!("unexpected frame: {frame:?}");
        }
    }
}

/// A temp dir kept for the whole test (restarts reuse it).
pub fn temp_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_path_buf();
    (dir, path)
}
