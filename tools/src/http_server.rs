//! The HTTP/1.1 accept loop of `pocketlog serve`, with the timeouts `axum::serve` lacks.
//!
//! Deadlines are totals, never renewed by a byte that arrives (a trickling client cannot
//! stretch them):
//! - `header_timeout`: a connection must have sent its first request head within this time of
//!   being accepted (the routing peek and hyper's head parsing share the one deadline); for the
//!   next request on a keep-alive connection hyper's own header timer bounds the idle wait plus
//!   the head (hyper starts it once per head and does not renew it).
//! - `request_timeout`: counted from the complete request head until the response head is
//!   ready: reading the body, the handler, and draining an unread body. Past it the answer is
//!   408 with the JSON error envelope and `Connection: close`. Streaming responses (SSE) are not
//!   cut: the bound ends when the response head is ready.
//!
//! Keep-alive after early answers: a handler may answer without reading the request body (404,
//! wrong method, 401 before parsing). hyper then closes the connection if the rest of the body
//! has not arrived yet, without telling the client, whose next request on that connection gets
//! no answer. So every request body is tracked: when the handler is done and left body bytes
//! unread, up to [`DRAIN_MAX`] bytes are read and discarded (within the request deadline)
//! before the response is sent, as Go's net/http does; when that is not possible (larger
//! body, deadline, `Expect: 100-continue` never answered) the response says
//! `Connection: close`, so a client never sends a request into a connection being closed.
//!
//! TLS (`--https`): with an acceptor, each accepted connection first completes its TLS
//! handshake (within the same head deadline) and is then served like a plain one, on this
//! runtime (the stream routing peeks at plaintext, so it does not apply to TLS connections).
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
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::IntoResponse as _;
use axum::Router;
use hyper::body::{Body as _, Bytes, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::Interest;
use tokio::time::Instant;
use tower::ServiceExt as _;

/// Connection and request time limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub request_timeout: Duration,
    pub drain: Duration,
}

/// Most unread request-body bytes read and discarded after a handler answered, so that the
/// connection can be kept alive (Go's net/http uses the same bound).
pub const DRAIN_MAX: u64 = 256 * 1024;

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
            #[allow(unsafe_code)]
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
    /// Nothing decisive arrived before the head deadline (or the peer went away): close it.
    Close,
}

/// Peeks (without consuming) at the connection's first bytes to decide where it is served.
/// Waits until `deadline` at most, sleeping on socket readiness between looks (no polling
/// loop: thousands of connections trickling their first bytes cost nothing while they wait).
async fn route(stream: &tokio::net::TcpStream, deadline: Instant) -> Route {
    let mut buffer = [0u8; STREAM_REQUEST.len()];
    loop {
        let peeked = match tokio::time::timeout_at(deadline, stream.peek(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return Route::Close,
            Ok(Ok(n)) => n,
        };
        if buffer[..peeked] != STREAM_REQUEST[..peeked] {
            return Route::Requests;
        }
        if peeked == STREAM_REQUEST.len() {
            return Route::Stream;
        }
        // A request line split across segments: `peek` leaves the readiness set, so clear it,
        // look once more (bytes that came in between are seen here, later ones set the
        // readiness again), then sleep until more bytes come.
        let _ = stream.try_io(Interest::READABLE, || {
            Err::<(), _>(std::io::ErrorKind::WouldBlock.into())
        });
        match peek_now(stream, &mut buffer) {
            Ok(n) if n > peeked => continue,
            Ok(0) => return Route::Close,
            _ => {}
        }
        if tokio::time::timeout_at(deadline, stream.readable())
            .await
            .is_err()
        {
            return Route::Close;
        }
    }
}

/// A non-blocking `recv(MSG_PEEK)`: the bytes waiting now, without touching tokio's readiness.
#[allow(unsafe_code)] // the one `recv` call below, see its SAFETY comment
fn peek_now(stream: &tokio::net::TcpStream, buffer: &mut [u8]) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd as _;
    // SAFETY: `buffer` is valid for writes of its length; the fd is open for `stream`'s life.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            buffer.as_mut_ptr().cast(),
            buffer.len(),
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    usize::try_from(n).map_err(|_| std::io::Error::last_os_error())
}

/// What is left of a request body once the request is in the handler's hands.
struct BodySlot {
    /// `None` once the body was taken back for draining.
    body: Option<Incoming>,
    /// Whether the handler ever asked for body bytes (with `Expect: 100-continue`, asking is
    /// what makes hyper send `100 Continue`).
    polled: bool,
}

/// The request body handed to the app: reads from a slot the connection keeps a handle on,
/// so whatever the handler leaves unread can still be drained after it answered.
struct TrackedBody(Arc<Mutex<BodySlot>>);

impl hyper::body::Body for TrackedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, hyper::Error>>> {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        slot.polled = true;
        match slot.body.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        let slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        slot.body.as_ref().is_none_or(|body| body.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        slot.body
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |body| body.size_hint())
    }
}

/// After the handler answered: reads and discards what it left of the body, up to
/// [`DRAIN_MAX`] bytes and until `deadline`. Returns whether the connection can be kept
/// alive (the whole body was read).
async fn drain_unread(slot: &Mutex<BodySlot>, expects_continue: bool, deadline: Instant) -> bool {
    let (body, polled) = {
        let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
        (slot.body.take(), slot.polled)
    };
    let Some(mut body) = body else {
        return true;
    };
    if body.is_end_stream() {
        return true;
    }
    // The client waits for `100 Continue` before it sends the body; asking for it now only to
    // throw it away would make it send the whole body for nothing.
    if expects_continue && !polled {
        return false;
    }
    if body.size_hint().lower() > DRAIN_MAX {
        return false;
    }
    let mut drained: u64 = 0;
    loop {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx));
        match tokio::time::timeout_at(deadline, frame).await {
            Ok(None) => return true,
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    drained = drained.saturating_add(data.len() as u64);
                    if drained > DRAIN_MAX {
                        return false;
                    }
                }
            }
            Ok(Some(Err(_))) | Err(_) => return false,
        }
    }
}

/// One request through `app` under the request deadline, with the unread body drained.
async fn handle(
    app: Router,
    request: axum::http::Request<Incoming>,
    peer: std::net::SocketAddr,
    request_timeout: Duration,
) -> axum::response::Response {
    let deadline = Instant::now() + request_timeout;
    let (mut parts, body) = request.into_parts();
    let expects_continue = parts
        .headers
        .get(header::EXPECT)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let slot = Arc::new(Mutex::new(BodySlot {
        body: Some(body),
        polled: false,
    }));
    // The peer address for handlers and the request log (`ConnectInfo`, as axum::serve).
    parts.extensions.insert(axum::extract::ConnectInfo(peer));
    let request = axum::http::Request::from_parts(
        parts,
        axum::body::Body::new(TrackedBody(Arc::clone(&slot))),
    );
    let (mut response, keep_alive) =
        match tokio::time::timeout_at(deadline, app.oneshot(request)).await {
            Ok(Ok(response)) => {
                let keep_alive = drain_unread(&slot, expects_continue, deadline).await;
                (response, keep_alive)
            }
            Ok(Err(infallible)) => match infallible {},
            Err(_) => {
                tracing::debug!(%peer, "request deadline passed before the response was ready");
                let response = api::error::ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "The request took too long to arrive or to be processed.",
                )
                .into_response();
                (response, false)
            }
        };
    if !keep_alive {
        // Whatever is left of the body is dropped with the slot: hyper stops reading and
        // closes the connection after this response, which the client is told here.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Serves `app` on `listener` until `shutdown` resolves; realtime streams on `streams` when
/// given; TLS connections when `tls` is given.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: Limits,
    streams: Option<tokio::runtime::Handle>,
    tls: Option<crate::tls::Acceptor>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
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
        // The first request head must be complete by then, however it trickles in.
        let head_deadline = Instant::now() + limits.header_timeout;
        let _ = stream.set_nodelay(true);
        let started = Arc::new(AtomicBool::new(false));
        let service = {
            let app = app.clone();
            let started = Arc::clone(&started);
            hyper::service::service_fn(move |request| {
                started.store(true, Ordering::Relaxed);
                let app = app.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(
                        handle(app, request, peer, limits.request_timeout).await,
                    )
                }
            })
        };
        // No upgrades: nothing in the API uses WebSockets.
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let streams = streams.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            // Closes the connection at the head deadline unless its first request started.
            let first_head = async move {
                tokio::time::sleep_until(head_deadline).await;
                if started.load(Ordering::Relaxed) {
                    std::future::pending::<()>().await;
                }
            };
            if let Some(tls) = tls {
                let Ok(Some(stream)) =
                    tokio::time::timeout_at(head_deadline, tls.accept(stream)).await
                else {
                    return;
                };
                let connection = builder.serve_connection(TokioIo::new(stream), service);
                tokio::select! {
                    _ = watcher.watch(connection) => {}
                    () = first_head => {}
                }
                return;
            }
            if let Some(streams) = streams {
                let route = route(&stream, head_deadline).await;
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
                        tokio::select! {
                            _ = watcher.watch(connection) => {}
                            () = first_head => {}
                        }
                    });
                    return;
                }
            }
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = watcher.watch(connection) => {}
                () = first_head => {}
            }
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
