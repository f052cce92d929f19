//! Shared helpers for the `api_*` integration tests: a real server on 127.0.0.1:0 over a
//! temporary data dir, HTTP helpers, and a table-driven scenario runner.
//!
//! 1. Every test gets its own data dir and server (sync policy `None`: durability is not what
//!    these tests check), so tests never share state.
//! 2. A superuser `admin@example.com` exists from the start; its token is `TestServer::admin`.
//! 3. Scenarios compare substrings of the raw (compact) JSON response, so an expected fragment
//!    is written exactly as serde_json prints it, e.g. `"status":404`.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use api::access::Auth;
use api::model::SUPERUSERS_ID;
use api::{AppState, ServerOptions};
use engine::{Engine, EngineConfig, SyncPolicy};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// The superuser every test server starts with.
pub const ADMIN_EMAIL: &str = "admin@example.com";
/// Its password.
pub const ADMIN_PASSWORD: &str = "Passw0rd123";

/// A running server.
pub struct TestServer {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The shared client.
    pub client: reqwest::Client,
    /// The server's state (for building tokens the way the server does).
    pub state: Arc<AppState>,
    /// The superuser's auth token.
    pub admin: String,
    _dir: tempfile::TempDir,
}

/// A response: status, parsed JSON (`Null` when empty or not JSON), raw text, headers.
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Parsed body.
    pub json: Value,
    /// Raw body.
    pub text: String,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
}

/// Starts a server with default options.
pub async fn start() -> TestServer {
    start_with(ServerOptions::default()).await
}

/// Starts a server with `options`.
pub async fn start_with(options: ServerOptions) -> TestServer {
    let dir = tempfile::tempdir().expect("temp dir");
    let (engine, _report) = Engine::open(
        dir.path(),
        EngineConfig {
            sync: SyncPolicy::None,
            ..Default::default()
        },
    )
    .expect("open engine");
    let state = AppState::new(engine, options).expect("app state");
    create_superuser(&state, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("local addr");
    let router = api::router(Arc::clone(&state));
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .expect("serve");
    });
    let mut server = TestServer {
        base: format!("http://{address}"),
        client: reqwest::Client::new(),
        state,
        admin: String::new(),
        _dir: dir,
    };
    server.admin = server
        .login("_superusers", ADMIN_EMAIL, ADMIN_PASSWORD)
        .await;
    server
}

/// Creates a superuser directly (as the `pocketlog superuser upsert` CLI does).
pub async fn create_superuser(state: &Arc<AppState>, email: &str, password: &str) {
    let schema = state.schema();
    let collection = Arc::clone(schema.find(SUPERUSERS_ID).expect("_superusers"));
    let mut record = Map::new();
    record.insert("id".into(), json!("system"));
    let system = Some(Auth {
        collection: Arc::clone(&collection),
        record,
    });
    let mut body = Map::new();
    body.insert("email".into(), json!(email));
    body.insert("password".into(), json!(password));
    body.insert("passwordConfirm".into(), json!(password));
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

impl TestServer {
    /// Sends a request with an optional raw body and token.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        token: Option<&str>,
    ) -> Reply {
        self.send_with(method, path, body, token, "application/json")
            .await
    }

    /// [`TestServer::send`] with an explicit content type.
    pub async fn send_with(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        token: Option<&str>,
        content_type: &str,
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self
            .client
            .request(method, format!("{}{}", self.base, path))
            .header("content-type", content_type);
        if let Some(token) = token {
            request = request.header("authorization", token);
        }
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            json,
            text,
            headers,
        }
    }

    /// Sends JSON and expects `status`; returns the parsed body.
    pub async fn json(
        &self,
        method: &str,
        path: &str,
        body: Value,
        token: Option<&str>,
        status: u16,
    ) -> Value {
        let reply = self
            .send(method, path, Some(&body.to_string()), token)
            .await;
        assert_eq!(
            reply.status, status,
            "{method} {path} {body}: unexpected status, body {}",
            reply.text
        );
        reply.json
    }

    /// Logs in with a password and returns the token.
    pub async fn login(&self, collection: &str, identity: &str, password: &str) -> String {
        let reply = self
            .json(
                "POST",
                &format!("/api/collections/{collection}/auth-with-password"),
                json!({"identity": identity, "password": password}),
                None,
                200,
            )
            .await;
        reply["token"].as_str().expect("token").to_string()
    }

    /// Creates a `users` record and returns `(id, token)`.
    pub async fn user(&self, email: &str, password: &str) -> (String, String) {
        let record = self
            .json(
                "POST",
                "/api/collections/users/records",
                json!({"email": email, "password": password, "passwordConfirm": password}),
                None,
                200,
            )
            .await;
        let id = record["id"].as_str().expect("id").to_string();
        let token = self.login("users", email, password).await;
        (id, token)
    }

    /// Creates a collection as the superuser; returns its JSON.
    pub async fn collection(&self, definition: Value) -> Value {
        self.json(
            "POST",
            "/api/collections",
            definition,
            Some(&self.admin.clone()),
            200,
        )
        .await
    }

    /// Enables batch requests (`maxRequests` as given).
    pub async fn enable_batch(&self, max_requests: u64) {
        self.json(
            "PATCH",
            "/api/settings",
            json!({"batch": {"enabled": true, "maxRequests": max_requests}}),
            Some(&self.admin.clone()),
            200,
        )
        .await;
    }

    /// Runs every scenario and panics with all failures listed.
    pub async fn run(&self, scenarios: &[Scenario]) {
        let mut failures = Vec::new();
        for scenario in scenarios {
            let reply = self
                .send(
                    scenario.method,
                    &scenario.url,
                    scenario.body.as_deref(),
                    scenario.token.as_deref(),
                )
                .await;
            let mut problems = Vec::new();
            if reply.status != scenario.status {
                problems.push(format!("status {} != {}", reply.status, scenario.status));
            }
            for fragment in &scenario.expect {
                if !reply.text.contains(fragment) {
                    problems.push(format!("missing {fragment}"));
                }
            }
            for fragment in &scenario.forbid {
                if reply.text.contains(fragment) {
                    problems.push(format!("forbidden {fragment} present"));
                }
            }
            if !problems.is_empty() {
                failures.push(format!(
                    "[{}] {} {}: {}\n    body: {}",
                    scenario.name,
                    scenario.method,
                    scenario.url,
                    problems.join("; "),
                    reply.text.chars().take(600).collect::<String>()
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {} scenarios failed:\n{}",
            failures.len(),
            scenarios.len(),
            failures.join("\n")
        );
    }
}

/// One row of a table-driven test.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Short name shown on failure.
    pub name: &'static str,
    /// HTTP method.
    pub method: &'static str,
    /// Path and query.
    pub url: String,
    /// Raw body (sent as `application/json`).
    pub body: Option<String>,
    /// `Authorization` header value.
    pub token: Option<String>,
    /// Expected status.
    pub status: u16,
    /// Fragments the raw body must contain.
    pub expect: Vec<String>,
    /// Fragments the raw body must not contain.
    pub forbid: Vec<String>,
}

/// Builds a scenario; chain [`Scenario::body`], [`Scenario::auth`], [`Scenario::expect`],
/// [`Scenario::forbid`].
pub fn scenario(name: &'static str, method: &'static str, url: &str, status: u16) -> Scenario {
    Scenario {
        name,
        method,
        url: url.to_string(),
        body: None,
        token: None,
        status,
        expect: Vec::new(),
        forbid: Vec::new(),
    }
}

impl Scenario {
    /// Sets a JSON body.
    pub fn body(mut self, body: Value) -> Self {
        self.body = Some(body.to_string());
        self
    }
    /// Sets a raw body.
    pub fn raw(mut self, body: &str) -> Self {
        self.body = Some(body.to_string());
        self
    }
    /// Sets the token.
    pub fn auth(mut self, token: &str) -> Self {
        self.token = Some(token.to_string());
        self
    }
    /// Adds expected fragments.
    pub fn expect(mut self, fragments: &[&str]) -> Self {
        self.expect
            .extend(fragments.iter().map(|f| (*f).to_string()));
        self
    }
    /// Adds forbidden fragments.
    pub fn forbid(mut self, fragments: &[&str]) -> Self {
        self.forbid
            .extend(fragments.iter().map(|f| (*f).to_string()));
        self
    }
}
