//! The HTTP/1.1 accept loop of `pocketlog serve`, with the timeouts `axum::serve` lacks.
//!
//! - `header_timeout`: a connection that has not sent a complete request head within it is
//!   closed (slowloris-style headers; it also bounds how long an idle keep-alive connection
//!   waiting for its next request is kept).
//! - `request_timeout`: a request whose response has not started within it gets 408 (bounds a
//!   slowly trickled body). Streaming responses (SSE) are not cut: the bound ends when the
//!   response head is ready.
//!
//! Graceful shutdown: stop accepting when `shutdown` resolves, then let in-flight requests
//! finish (up to `drain`).
//!
//! Streams on their own runtime: a connection whose first request line starts with
//! `GET /api/realtime` is served on `streams` (when given), a runtime whose threads run at a
//! lower OS priority (see [`streams_runtime`]). Writing events to thousands of SSE sockets is
//! the one burst of work that grows with the number of listeners; on a busy core the kernel
//! then runs requests first and fan-out in the time they leave, instead of tokio queueing
//! requests behind thousands of woken streams. Other connections stay on the caller's runtime.

use anyhow::Result;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::time::Duration;
use tower::ServiceExt as _;

/// Connection and request time limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub request_timeout: Duration,
    pub drain: Duration,
}

/// The first bytes of a request that opens a realtime stream.
const STREAM_REQUEST: &[u8] = b"GET /api/realtime";

/// Nice value of the stream runtime's threads (requests run at 0).
pub const STREAMS_NICE: i32 = 10;

/// A runtime for SSE streams and the realtime fan-out: one worker thread (plus tokio's
/// blocking pool), all at nice [`STREAMS_NICE`].
pub fn streams_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("pl-streams")
        .on_thread_start(|| {
            // Per thread on Linux: `setpriority(PRIO_PROCESS, 0, …)` applies to the calling
            // thread only. Failing to lower the priority is harmless.
            // SAFETY: plain syscall without pointers.
            let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, STREAMS_NICE) };
        })
        .enable_all()
        .build()
}

/// Where a new connection is served.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    /// Its first request opens a realtime stream: the streams runtime.
    Stream,
    /// Anything else: this runtime.
    Requests,
    /// Nothing arrived within the header timeout (or the peer went away): close it.
    Close,
}

/// Peeks (without consuming) at the connection's first bytes to decide where it is served.
/// Waits for up to `limit` for enough bytes to decide.
async fn route(stream: &tokio::net::TcpStream, limit: Duration) -> Route {
    let deadline = tokio::time::Instant::now() + limit;
    let mut buffer = [0u8; STREAM_REQUEST.len()];
    loop {
        let peeked = match tokio::time::timeout_at(deadline, stream.peek(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Route::Close,
            Ok(Ok(n)) => n,
            Err(_) => return Route::Close,
        };
        if buffer[..peeked] != STREAM_REQUEST[..peeked] {
            return Route::Requests;
        }
        if peeked == STREAM_REQUEST.len() {
            return Route::Stream;
        }
        // A request line split across segments (rare): look again shortly.
        if tokio::time::Instant::now() >= deadline {
            return Route::Requests;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Serves `app` on `listener` until `shutdown` resolves; realtime streams on `streams` when
/// given.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: Limits,
    streams: Option<tokio::runtime::Handle>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let app = app.layer(tower_http::timeout::TimeoutLayer::with_status_code(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        limits.request_timeout,
    ));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // The peer address for handlers and the request log (`ConnectInfo`, as axum::serve).
        // (`map_request` on a cheap Router clone: `Router::layer` would rebuild every route.)
        let service = TowerToHyperService::new(app.clone().map_request(
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                request
            },
        ));
        // No upgrades: nothing in the API uses WebSockets.
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let streams = streams.clone();
        tokio::spawn(async move {
            if let Some(streams) = streams {
                let route = route(&stream, limits.header_timeout).await;
                if route == Route::Close {
                    return;
                }
                if route == Route::Stream {
                    // Move the socket to the other runtime's reactor.
                    let Ok(stream) = stream.into_std() else {
                        return;
                    };
                    streams.spawn(async move {
                        let Ok(stream) = tokio::net::TcpStream::from_std(stream) else {
                            return;
                        };
                        let connection = builder.serve_connection(TokioIo::new(stream), service);
                        let _ = watcher.watch(connection).await;
                    });
                    return;
                }
            }
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            let _ = watcher.watch(connection).await;
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still open after the shutdown grace period");
    }
    Ok(())
}
