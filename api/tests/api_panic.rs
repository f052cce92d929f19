//! A panic inside one request answers PocketBase's 500 envelope and the server keeps serving
//! (the panic layer of `api::routes::with_layers`), while other requests — before, during and
//! after — are unaffected.
//!
//! Method: the real route table plus one extra route that panics, wrapped in the same layers as
//! production, served on a real socket; requests interleave the panicking route with normal ones.

use api::{AppState, ServerOptions};
use engine::{Engine, EngineConfig, SyncPolicy};
use serde_json::Value;
use std::sync::Arc;

async fn boom() -> &'static str {
    panic!("a handler bug");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_request_answers_500_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = EngineConfig {
        sync: SyncPolicy::None,
        ..EngineConfig::default()
    };
    let (engine, _) = Engine::open(dir.path(), config).expect("open engine");
    let state = AppState::new(engine, ServerOptions::default()).expect("state");
    let routes = api::routes::routes().route("/api/test-panic", axum::routing::get(boom));
    let app = api::routes::with_layers(routes, Arc::clone(&state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    let client = reqwest::Client::new();
    for round in 0..5 {
        let panicked = client
            .get(format!("{base}/api/test-panic"))
            .send()
            .await
            .expect("the panicking request gets an answer");
        assert_eq!(panicked.status().as_u16(), 500, "round {round}");
        assert_eq!(
            panicked.headers()["x-content-type-options"],
            "nosniff",
            "the security headers still apply"
        );
        let body: Value = panicked.json().await.expect("JSON error envelope");
        assert_eq!(body["status"], 500);
        assert_eq!(
            body["message"],
            "Something went wrong while processing your request."
        );
        assert!(body["data"].as_object().is_some_and(|data| data.is_empty()));

        let health = client
            .get(format!("{base}/api/health"))
            .send()
            .await
            .expect("health after a panic");
        assert_eq!(health.status().as_u16(), 200, "round {round}");
        let list = client
            .get(format!("{base}/api/collections/users/records"))
            .send()
            .await
            .expect("list after a panic");
        assert_eq!(list.status().as_u16(), 200, "round {round}");
    }
}
