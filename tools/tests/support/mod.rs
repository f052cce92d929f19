//! Shared harness of the `serve_*` tests: runs the built `pocketlog` binary on a data dir and a
//! free loopback port (stderr kept in `<dir>/../serve-N.log` for assertions), talks JSON over
//! HTTP, and stops it with SIGTERM like an operator would.

#![allow(dead_code)]

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const EMAIL: &str = "serve-test@example.com";
pub const PASSWORD: &str = "servetestpass123";

/// A tokio runtime for one test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Creates the test superuser in `dir` through the CLI.
pub fn create_superuser(dir: &Path) {
    let status = Command::new(env!("CARGO_BIN_EXE_pocketlog"))
        .args(["superuser", "upsert", EMAIL, PASSWORD, "--dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run superuser upsert");
    assert!(status.success(), "superuser upsert failed");
}

/// Runs `pb-tools` with `args`; returns (exit code, stdout + stderr).
pub fn pb_tools(args: &[&str], dir: &Path) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_pb-tools"))
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .expect("run pb-tools");
    (
        output.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

/// A running `pocketlog serve`.
pub struct Server {
    child: Option<Child>,
    pub base: String,
    pub http: reqwest::Client,
    pub stderr_path: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .expect("local addr")
        .port()
}

impl Server {
    /// Starts `pocketlog serve` on `dir` with extra flags and waits for `/api/health`.
    pub async fn start(dir: &Path, args: &[&str]) -> Server {
        let address = format!("127.0.0.1:{}", free_port());
        let parent = dir.parent().unwrap_or(dir);
        let mut index = 0;
        let stderr_path = loop {
            let path = parent.join(format!("serve-{index}.log"));
            if !path.exists() {
                break path;
            }
            index += 1;
        };
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        let child = Command::new(env!("CARGO_BIN_EXE_pocketlog"))
            .args(["serve", "--http", &address, "--dir"])
            .arg(dir)
            .args(args)
            // Test data dirs sit in one shared temp folder: automigrate files written beside
            // one test's data dir would be applied by every later one (as on PocketBase).
            .args(
                (!args.iter().any(|arg| arg.starts_with("--automigrate")))
                    .then_some("--automigrate=false"),
            )
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn pocketlog serve");
        let server = Server {
            child: Some(child),
            base: format!("http://{address}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            stderr_path,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(response) = server.http.get(server.url("/api/health")).send().await {
                if response.status().is_success() {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "pocketlog did not start: {}",
                server.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// One JSON call; panics on a transport error.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let verb = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.http.request(verb, self.url(path));
        if let Some(token) = token {
            request = request.header("Authorization", token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|err| panic!("{method} {path}: {err}"));
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Signs in as the test superuser; returns the token.
    pub async fn login(&self) -> String {
        let (status, body) = self
            .call(
                "POST",
                "/api/collections/_superusers/auth-with-password",
                None,
                Some(json!({"identity": EMAIL, "password": PASSWORD})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["token"].as_str().expect("token").to_string()
    }

    /// SIGTERM, then waits for the exit; returns whether it exited successfully.
    pub fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let pid = libc::pid_t::try_from(child.id()).expect("pid");
        // SAFETY: sends a signal to our own child process, which has not been reaped yet.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
