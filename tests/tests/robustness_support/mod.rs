//! Shared harness of the `robustness_*` tests: spawns the built `pocketlog` binary on a fresh
//! data dir and a free loopback port, with a superuser, and talks HTTP to it.
//!
//! Build the binaries first: `cargo build --bin pocketlog --bin pb-tools`.

#![allow(dead_code)]

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const EMAIL: &str = "robust@example.com";
pub const PASSWORD: &str = "robustpass123";

/// A `usize` from the environment (full counts) or the CI default.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `target/debug/<name>`, or a clear panic saying how to build it.
pub fn binary(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/debug")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --bin pocketlog --bin pb-tools` first",
        path.display()
    );
    path
}

/// A running `pocketlog serve`.
pub struct Server {
    pub child: Option<Child>,
    pub dir: PathBuf,
    pub base: String,
    pub http: reqwest::Client,
    pub token: String,
    args: Vec<String>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .expect("local addr")
        .port()
}

impl Server {
    /// Creates the superuser in `dir` and starts the server with extra `serve` flags.
    pub async fn start(dir: &Path, args: &[&str]) -> Server {
        let status = Command::new(binary("pocketlog"))
            .args(["superuser", "upsert", EMAIL, PASSWORD, "--dir"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run superuser upsert");
        assert!(status.success(), "superuser upsert failed");
        let mut server = Server {
            child: None,
            dir: dir.to_path_buf(),
            base: String::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            token: String::new(),
            args: args.iter().map(|s| s.to_string()).collect(),
        };
        server.spawn().await;
        server
    }

    /// (Re)starts the process on the same dir and signs in.
    pub async fn spawn(&mut self) {
        let address = format!("127.0.0.1:{}", free_port());
        let child = Command::new(binary("pocketlog"))
            .args(["serve", "--http", &address, "--dir"])
            .arg(&self.dir)
            .args(&self.args)
            // Data dirs share one temp folder: automigrate files written beside one would be
            // applied by every later server (as on PocketBase).
            .args(
                (!self.args.iter().any(|arg| arg.starts_with("--automigrate")))
                    .then_some("--automigrate=false"),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn pocketlog serve");
        self.child = Some(child);
        self.base = format!("http://{address}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = self.http.get(self.url("/api/health")).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "pocketlog did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (status, body) = self
            .call(
                "POST",
                "/api/collections/_superusers/auth-with-password",
                None,
                Some(json!({"identity": EMAIL, "password": PASSWORD})),
            )
            .await
            .expect("superuser login");
        assert_eq!(status, 200, "{body}");
        self.token = body["token"].as_str().expect("token").to_string();
    }

    /// SIGKILL, no goodbye.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// One JSON call; `Err` on a transport error.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<(u16, Value), String> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.header("Authorization", token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| e.to_string())?;
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((status, value))
    }

    /// As the superuser; panics unless 2xx.
    pub async fn admin(&self, method: &str, path: &str, body: Value) -> Value {
        let body = (!body.is_null()).then_some(body);
        let (status, value) = self
            .call(method, path, Some(&self.token.clone()), body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {value}"
        );
        value
    }

    /// A base collection with public rules and the given extra fields.
    pub async fn public_collection(&self, name: &str, fields: Value) -> Value {
        self.admin(
            "POST",
            "/api/collections",
            json!({"name": name, "type": "base", "listRule": "", "viewRule": "", "createRule": "",
                   "updateRule": "", "deleteRule": "", "fields": fields}),
        )
        .await
    }

    /// Total records of a collection (as the superuser).
    pub async fn count(&self, collection: &str, filter: &str) -> u64 {
        let path = format!(
            "/api/collections/{collection}/records?perPage=1&filter={}",
            urlencode(filter)
        );
        self.admin("GET", &path, Value::Null).await["totalItems"]
            .as_u64()
            .expect("totalItems")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn urlencode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}
