//! The HTTP side of the load generator: a pooled keep-alive client, JSON calls for set-up, and
//! the closed-loop load runner (N workers, each sending its next request when the last one is
//! answered, until the deadline).

use super::stats::{cpu_per_request_into, memory_into, proc_cpu_us, Recorder};
use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A connection to one server under test.
#[derive(Clone)]
pub struct Server {
    /// `http://host:port`, no trailing slash.
    pub base: String,
    /// Pooled keep-alive client for requests (has a timeout).
    pub http: reqwest::Client,
    /// Client for SSE streams (no overall timeout).
    pub sse: reqwest::Client,
    /// The server's pid, for memory readings.
    pub pid: Option<u32>,
    /// A superuser token (after [`Server::login_superuser`]).
    pub superuser_token: String,
}

impl Server {
    pub fn new(base: &str, pid: Option<u32>) -> Result<Server> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(4096)
            .pool_idle_timeout(Duration::from_secs(600))
            .timeout(Duration::from_secs(120))
            .tcp_nodelay(true)
            .build()
            .context("building the HTTP client")?;
        let sse = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .tcp_nodelay(true)
            .build()
            .context("building the SSE client")?;
        Ok(Server {
            base: base.trim_end_matches('/').to_string(),
            http,
            sse,
            pid,
            superuser_token: String::new(),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// One JSON request; returns the status and the parsed body (`Null` when empty).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<(u16, Value)> {
        let mut request = self.http.request(method.clone(), self.url(path));
        if let Some(token) = token {
            request = request.header("Authorization", token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.context("reading a response")?;
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Ok((status, value))
    }

    /// Like [`Server::call`] as the superuser, failing on a non-2xx answer.
    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> Result<Value> {
        let body = (!body.is_null()).then_some(body);
        let (status, value) = self
            .call(
                method.clone(),
                path,
                Some(&self.superuser_token),
                body.as_ref(),
            )
            .await?;
        if !(200..300).contains(&status) {
            bail!("{method} {path} answered {status}: {value}");
        }
        Ok(value)
    }

    pub async fn login_superuser(&mut self, email: &str, password: &str) -> Result<()> {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/api/collections/_superusers/auth-with-password",
                None,
                Some(&json!({"identity": email, "password": password})),
            )
            .await?;
        if status != 200 {
            bail!("superuser login as {email} failed ({status}): {body}; create it with `superuser upsert`");
        }
        self.superuser_token = body["token"].as_str().unwrap_or_default().to_string();
        Ok(())
    }

    /// Waits until `GET /api/health` answers 200.
    pub async fn wait_healthy(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(response) = self.http.get(self.url("/api/health")).send().await {
                if response.status().is_success() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("{} did not become healthy within {timeout:?}", self.base);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends a request and consumes its body; the status, or the transport error as text.
    pub async fn fire(&self, request: reqwest::RequestBuilder) -> std::result::Result<u16, String> {
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                match response.bytes().await {
                    Ok(_) => Ok(status),
                    Err(err) => Err(err.to_string()),
                }
            }
            Err(err) => Err(err.to_string()),
        }
    }
}

/// Runs `concurrency` closed-loop workers for `duration`; `make(worker, i)` builds request `i`
/// of a worker. Returns the scenario's JSON fields (throughput, percentiles, errors, memory).
pub async fn run_load<F, Fut>(
    server: &Server,
    concurrency: usize,
    duration: Duration,
    make: F,
) -> Map<String, Value>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<u16, String>> + Send + 'static,
{
    let make = Arc::new(make);
    let cpu_before = server.pid.and_then(proc_cpu_us);
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(concurrency);
    for worker in 0..concurrency {
        let make = Arc::clone(&make);
        tasks.push(tokio::spawn(async move {
            let mut recorder = Recorder::default();
            let mut i = 0u64;
            while Instant::now() < deadline {
                let sent = Instant::now();
                let outcome = make(worker, i).await;
                recorder.record(sent.elapsed(), outcome);
                i += 1;
            }
            recorder
        }));
    }
    let mut total = Recorder::default();
    for task in tasks {
        if let Ok(recorder) = task.await {
            total.merge(recorder);
        }
    }
    let elapsed = start.elapsed();
    let cpu_after = server.pid.and_then(proc_cpu_us);
    let answered = total.latencies_us.len() as u64;
    let mut out = total.summary(elapsed);
    cpu_per_request_into(&mut out, cpu_before, cpu_after, answered);
    out.insert("concurrency".into(), json!(concurrency));
    memory_into(&mut out, server.pid);
    out
}
