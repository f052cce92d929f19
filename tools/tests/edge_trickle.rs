//! Clients that trickle their request head or body (a byte now and then) are closed by total
//! deadlines that no byte renews: the head within `--header-timeout` of the accept (or of
//! the previous response on a keep-alive connection), the body within `--request-timeout` of
//! the complete head. Thousands of them at once do not slow a normal client down much (the
//! numbers are printed; the p99 bound is asserted with a small absolute slack for this shared
//! machine). SSE streams are not cut by the request deadline (it ends with the response head).

mod edge_support;
mod support;

use edge_support::{head, RawConn, HEALTH};
use std::time::{Duration, Instant};
use support::{runtime, Server};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const HEADER_TIMEOUT: f64 = 1.0;
const REQUEST_TIMEOUT: f64 = 2.0;
/// How late after its deadline a trickler may be closed.
const MARGIN: Duration = Duration::from_millis(1000);
/// A trickler's pace.
const PACE: Duration = Duration::from_millis(PACE_MS);
const PACE_MS: u64 = 100;
/// Added to the 2× p99 bound for the noise of a shared machine.
const P99_SLACK: Duration = Duration::from_millis(25);

fn secs(value: f64) -> Duration {
    Duration::from_secs_f64(value)
}

fn flags() -> Vec<String> {
    vec![
        "--sync".into(),
        "none".into(),
        "--header-timeout".into(),
        HEADER_TIMEOUT.to_string(),
        "--request-timeout".into(),
        REQUEST_TIMEOUT.to_string(),
    ]
}

/// What a trickler sends first (all at once), then one byte per [`PACE`] forever.
#[derive(Clone, Copy, Debug)]
enum Trickle {
    /// A request head that never ends, starting like a realtime stream (the routing peek).
    StreamHead,
    /// A request head that never ends.
    Head,
    /// A complete head, then a body that never completes, to a handler that reads it.
    ReadBody,
    /// The same to a route that answers without reading the body.
    UnreadBody,
}

impl Trickle {
    fn start(self) -> Vec<u8> {
        match self {
            Trickle::StreamHead => b"G".to_vec(),
            Trickle::Head => b"POST /api/collections/x/records HTTP/1.1\r\nX-Pad: ".to_vec(),
            Trickle::ReadBody => head(
                "POST",
                "/api/collections/_superusers/auth-with-password",
                100_000,
                "",
            ),
            Trickle::UnreadBody => head("POST", "/api/nope", 100_000, ""),
        }
    }

    fn deadline(self) -> Duration {
        match self {
            Trickle::StreamHead | Trickle::Head => secs(HEADER_TIMEOUT),
            Trickle::ReadBody | Trickle::UnreadBody => secs(REQUEST_TIMEOUT),
        }
    }
}

/// The byte a trickler sends at step `index` (the rest of `GET /api/realtime …` first).
fn byte_at(kind: Trickle, index: usize) -> u8 {
    const REST: &[u8] = b"ET /api/realtime HTTP/1.1\r\nX-Pad: ";
    match kind {
        Trickle::StreamHead => REST.get(index).copied().unwrap_or(b'a'),
        Trickle::Head => b'a',
        Trickle::ReadBody | Trickle::UnreadBody => b'{',
    }
}

/// Runs one trickler until the server closes it; returns how long that took after connecting
/// and the status of any response it got (`None`: closed without one).
async fn trickle(base: String, kind: Trickle) -> (Duration, Option<u16>) {
    let address = base.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let opened = Instant::now();
    let _ = stream.write_all(&kind.start()).await;
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut index = 0;
    let mut next = tokio::time::Instant::now() + PACE;
    loop {
        tokio::select! {
            read = stream.read(&mut chunk) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
            },
            () = tokio::time::sleep_until(next) => {
                next += PACE;
                // A failed write means the server closed; the read side reports it.
                let _ = stream.write_all(&[byte_at(kind, index)]).await;
                index += 1;
                assert!(opened.elapsed() < Duration::from_secs(60), "{kind:?} never closed");
            }
        }
    }
    let status = std::str::from_utf8(&received)
        .ok()
        .and_then(|text| text.split(' ').nth(1))
        .and_then(|code| code.parse().ok());
    (opened.elapsed(), status)
}

#[test]
fn each_kind_of_trickler_is_closed_at_its_total_deadline() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("pb_data");
    runtime().block_on(async {
        let flags = flags();
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let server = Server::start(&dir, &flags).await;
        for kind in [
            Trickle::StreamHead,
            Trickle::Head,
            Trickle::ReadBody,
            Trickle::UnreadBody,
        ] {
            let (took, status) = trickle(server.base.clone(), kind).await;
            let deadline = kind.deadline();
            assert!(
                took + Duration::from_millis(50) >= deadline && took <= deadline + MARGIN,
                "{kind:?}: closed after {took:?}, deadline {deadline:?}"
            );
            let expected = match kind {
                Trickle::StreamHead | Trickle::Head => None,
                // The handler still waited for the body: 408.
                Trickle::ReadBody => Some(408),
                // Answered, but the unread body could not be drained in time.
                Trickle::UnreadBody => Some(404),
            };
            assert_eq!(status, expected, "{kind:?}");
        }

        // The next head on a keep-alive connection has the same total bound, counted from
        // the previous response.
        let mut conn = RawConn::connect(&server.base).await;
        assert!(conn.send(HEALTH).await);
        assert_eq!(conn.response(secs(10.0)).await.map(|r| r.status), Some(200));
        let answered = Instant::now();
        assert!(conn.send(b"GET /api/health HTTP/1.1\r\nX-Pad: ").await);
        let closed = tokio::time::timeout(secs(10.0), async {
            loop {
                tokio::time::sleep(PACE).await;
                if !conn.send(b"a").await {
                    break;
                }
                let mut byte = [0u8; 1];
                if let Ok(Ok(0) | Err(_)) =
                    tokio::time::timeout(Duration::from_millis(1), conn.stream.read(&mut byte))
                        .await
                {
                    break;
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "keep-alive trickler never closed");
        let took = answered.elapsed();
        assert!(
            took <= secs(HEADER_TIMEOUT) + MARGIN,
            "keep-alive trickler closed after {took:?}"
        );

        // An SSE stream outlives the request deadline.
        let mut sse = RawConn::connect(&server.base).await;
        assert!(
            sse.send(b"GET /api/realtime HTTP/1.1\r\nHost: test\r\n\r\n")
                .await
        );
        assert!(
            !sse.closed_within(secs(REQUEST_TIMEOUT) + MARGIN).await,
            "the SSE stream was cut"
        );
    });
}

/// [`latencies`] on a thread and runtime of its own, so that the test's own tricklers do not
/// delay the normal client's tasks.
async fn latencies_apart(base: &str, window: Duration) -> Vec<Duration> {
    let base = base.to_string();
    tokio::task::spawn_blocking(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(latencies(&base, window))
    })
    .await
    .expect("normal client")
}

/// Latencies of sequential `GET /api/health` calls on one keep-alive connection for `window`.
async fn latencies(base: &str, window: Duration) -> Vec<Duration> {
    let mut conn = RawConn::connect(base).await;
    let mut out = Vec::new();
    let end = Instant::now() + window;
    while Instant::now() < end {
        let start = Instant::now();
        assert!(conn.send(HEALTH).await, "normal client: closed");
        let response = conn.response(secs(10.0)).await;
        assert_eq!(response.map(|r| r.status), Some(200), "normal client");
        out.push(start.elapsed());
    }
    out
}

/// CPU time (user + system) the process `pid` used so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = after
        .split_whitespace()
        .map(|field| field.parse().unwrap_or(0))
        .collect();
    // SAFETY: sysconf has no preconditions.
    #[allow(unsafe_code)]
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let used = fields.get(11).unwrap_or(&0) + fields.get(12).unwrap_or(&0);
    Duration::from_secs_f64(used as f64 / ticks)
}

fn p99(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[(samples.len() * 99 / 100).min(samples.len() - 1)]
}

#[test]
fn two_thousand_tricklers_are_closed_in_time_and_barely_slow_a_normal_client() {
    const TRICKLERS: usize = 2000;
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("pb_data");
    runtime().block_on(async {
        let flags = flags();
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let server = Server::start(&dir, &flags).await;
        let window = secs(REQUEST_TIMEOUT);
        let cpu_start = cpu_time(server.pid());
        let mut idle = latencies_apart(&server.base, window).await;
        let idle_cpu = cpu_time(server.pid()) - cpu_start;
        let idle_count = idle.len();
        let idle_p99 = p99(&mut idle);

        let kinds = [
            Trickle::StreamHead,
            Trickle::Head,
            Trickle::ReadBody,
            Trickle::UnreadBody,
        ];
        let mut tasks = Vec::new();
        for index in 0..TRICKLERS {
            let kind = kinds[index % kinds.len()];
            tasks.push((kind, tokio::spawn(trickle(server.base.clone(), kind))));
        }
        let cpu_start = cpu_time(server.pid());
        let mut loaded = latencies_apart(&server.base, window).await;
        let loaded_cpu = cpu_time(server.pid()) - cpu_start;
        let loaded_count = loaded.len();
        let loaded_p99 = p99(&mut loaded);

        let mut worst = Duration::ZERO;
        for (kind, task) in tasks {
            let (took, _) = task.await.expect("trickler");
            let late = took.saturating_sub(kind.deadline());
            worst = worst.max(late);
            assert!(
                took <= kind.deadline() + MARGIN,
                "{kind:?}: closed after {took:?}"
            );
        }
        eprintln!(
            "normal client p99: idle {idle_p99:?} ({idle_count} requests), with {TRICKLERS} \
             tricklers {loaded_p99:?} ({loaded_count} requests); server CPU in the {window:?} \
             window: idle {idle_cpu:?}, with tricklers {loaded_cpu:?}; latest trickler closed \
             {worst:?} after its deadline"
        );
        // 2× plus an allowance for the other processes on a shared 2-core machine (the
        // tricklers themselves run in this process).
        assert!(
            loaded_p99 <= idle_p99 * 2 + P99_SLACK,
            "p99 {loaded_p99:?} with tricklers vs {idle_p99:?} idle"
        );
    });
}
