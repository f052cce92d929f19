//! A webhook receiver for the tests: a real HTTP server on a loopback port that records every
//! POST (body, headers, arrival time) and answers according to a mode that the test can change
//! at any time (succeed, fail with 500, hang, fail the next N), and that can be stopped and
//! started again on the same port (a receiver restarting).

#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// 200 at once.
    Ok,
    /// 500 at once.
    Fail,
    /// Never answers (until the client gives up).
    Hang,
    /// Sleeps, then 200.
    Slow(Duration),
}

/// One received request.
#[derive(Debug, Clone)]
pub struct Received {
    /// The raw body.
    pub body: Bytes,
    /// Parsed body.
    pub json: Value,
    /// Request headers.
    pub headers: HeaderMap,
    /// The status the receiver answered with (0: hung).
    pub answered: u16,
    /// When it arrived.
    pub at: Instant,
}

#[derive(Default)]
struct Inner {
    mode: Option<Mode>,
    fail_next: usize,
    received: Vec<Received>,
}

/// A receiver.
#[derive(Clone)]
pub struct Receiver {
    inner: Arc<Mutex<Inner>>,
    /// `127.0.0.1:<port>`.
    pub addr: std::net::SocketAddr,
    stop: Arc<Mutex<Option<tokio::sync::oneshot::Sender<()>>>>,
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mode = {
        let mut guard = inner.lock().expect("receiver lock");
        let mode = if guard.fail_next > 0 {
            guard.fail_next -= 1;
            Mode::Fail
        } else {
            guard.mode.unwrap_or(Mode::Ok)
        };
        let answered = match mode {
            Mode::Ok | Mode::Slow(_) => 200,
            Mode::Fail => 500,
            Mode::Hang => 0,
        };
        guard.received.push(Received {
            json: serde_json::from_slice(&body).unwrap_or(Value::Null),
            body: body.clone(),
            headers,
            answered,
            at: Instant::now(),
        });
        mode
    };
    match mode {
        Mode::Ok => StatusCode::OK,
        Mode::Fail => StatusCode::INTERNAL_SERVER_ERROR,
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK
        }
        Mode::Slow(delay) => {
            tokio::time::sleep(delay).await;
            StatusCode::OK
        }
    }
}

impl Receiver {
    /// Starts a receiver on a free port.
    pub async fn start(mode: Mode) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let receiver = Receiver {
            inner: Arc::new(Mutex::new(Inner {
                mode: Some(mode),
                ..Default::default()
            })),
            addr,
            stop: Arc::new(Mutex::new(None)),
        };
        receiver.serve(listener);
        receiver
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let app = Router::new()
            .route("/hook", post(handle))
            .with_state(Arc::clone(&self.inner));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        *self.stop.lock().expect("stop lock") = Some(stop);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
    }

    /// Stops listening (connections are refused until [`Receiver::restart`]).
    pub async fn stop(&self) {
        if let Some(stop) = self.stop.lock().expect("stop lock").take() {
            let _ = stop.send(());
        }
        // Wait until the port refuses connections.
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(self.addr).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Listens again on the same port.
    pub async fn restart(&self) {
        for _ in 0..100 {
            if let Ok(listener) = tokio::net::TcpListener::bind(self.addr).await {
                self.serve(listener);
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("could not bind {} again", self.addr);
    }

    /// The webhook URL.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Changes the answer mode.
    pub fn set_mode(&self, mode: Mode) {
        self.inner.lock().expect("receiver lock").mode = Some(mode);
    }

    /// Fails the next `count` requests with 500, whatever the mode.
    pub fn fail_next(&self, count: usize) {
        self.inner.lock().expect("receiver lock").fail_next = count;
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().expect("receiver lock").received.clone()
    }

    /// The requests answered with 200, in arrival order.
    pub fn accepted(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.answered == 200)
            .collect()
    }

    /// Waits until at least `count` requests were accepted (panics after `timeout`).
    pub async fn wait_accepted(&self, count: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let accepted = self.accepted();
            if accepted.len() >= count {
                return accepted;
            }
            assert!(
                Instant::now() < deadline,
                "receiver got {} of {count} deliveries in {timeout:?}",
                accepted.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
