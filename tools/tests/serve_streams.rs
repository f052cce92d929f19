//! Connection routing of `pocketlog serve` against the built binary: a connection opened by
//! `GET /api/realtime` is served by the streams runtime (its threads run at nice 10, requests at
//! 0), records created meanwhile reach it, a realtime request on a keep-alive connection that
//! served another request first still works, a connection that sends nothing is closed after one
//! header timeout, and SIGTERM ends open streams and exits cleanly.

mod support;

use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::{create_superuser, runtime, Server};

/// Nice values of the server's threads named `name`.
fn nice_of_threads(pid: u32, name: &str) -> Vec<i64> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("task dir") {
        let task = task.expect("task").path();
        let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(task.join("stat")).expect("stat");
        // Fields after the `(comm)`: state is field 3; nice is field 19.
        let after = &stat[stat.rfind(')').expect("comm end") + 2..];
        let nice = after.split(' ').nth(16).expect("nice field");
        out.push(nice.parse().expect("nice"));
    }
    out
}

/// Reads from `stream` until `needle` shows up (or panics after `wait`).
fn read_until(stream: &mut TcpStream, needle: &str, wait: Duration) -> String {
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let deadline = Instant::now() + wait;
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    while Instant::now() < deadline {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                seen.extend_from_slice(&buffer[..n]);
                if String::from_utf8_lossy(&seen).contains(needle) {
                    return String::from_utf8_lossy(&seen).into_owned();
                }
            }
            Err(_) => continue,
        }
    }
    panic!(
        "{needle:?} did not arrive; got {:?}",
        String::from_utf8_lossy(&seen)
    );
}

fn client_id(text: &str) -> String {
    let start = text.find("\"clientId\":\"").expect("clientId") + 12;
    text[start..start + text[start..].find('"').expect("end")].to_string()
}

#[test]
fn streams_are_routed_to_their_own_runtime_and_everything_still_works() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("pb_data");
    create_superuser(&data);
    runtime().block_on(async {
        let mut server = Server::start(&data, &["--header-timeout", "1"]).await;
        let pid = server.pid();
        let address = server.base.trim_start_matches("http://").to_string();
        let token = server.login().await;
        let (status, body) = server
            .call(
                "POST",
                "/api/collections",
                Some(&token),
                Some(
                    json!({"name": "notes", "type": "base", "listRule": "", "viewRule": "",
                    "createRule": "", "fields": [{"name": "text", "type": "text"}]}),
                ),
            )
            .await;
        assert_eq!(status, 200, "{body}");

        // A fresh connection opening a stream.
        let mut sse = TcpStream::connect(&address).expect("connect");
        write!(
            sse,
            "GET /api/realtime HTTP/1.1\r\nHost: {address}\r\nAccept: text/event-stream\r\n\r\n"
        )
        .expect("request");
        let connect = read_until(&mut sse, "PB_CONNECT", Duration::from_secs(10));
        let id = client_id(&connect);
        let (status, body) = server
            .call(
                "POST",
                "/api/realtime",
                None,
                Some(json!({"clientId": id, "subscriptions": ["notes/*"]})),
            )
            .await;
        assert_eq!(status, 204, "{body}");
        let (status, body) = server
            .call(
                "POST",
                "/api/collections/notes/records",
                None,
                Some(json!({"text": "routed"})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        read_until(&mut sse, "\"routed\"", Duration::from_secs(10));

        // The streams runtime exists and runs below the request threads' priority.
        let streams = nice_of_threads(pid, "pl-streams");
        assert!(!streams.is_empty(), "no pl-streams thread");
        assert!(streams.iter().all(|nice| *nice == 10), "{streams:?}");
        let requests = nice_of_threads(pid, "tokio-rt-worker");
        assert!(requests.iter().all(|nice| *nice == 0), "{requests:?}");

        // A stream on a keep-alive connection that served a plain request first.
        let mut reused = TcpStream::connect(&address).expect("connect");
        write!(
            reused,
            "GET /api/health HTTP/1.1\r\nHost: {address}\r\n\r\n"
        )
        .expect("health");
        read_until(&mut reused, "\r\n\r\n", Duration::from_secs(10));
        write!(
            reused,
            "GET /api/realtime HTTP/1.1\r\nHost: {address}\r\nAccept: text/event-stream\r\n\r\n"
        )
        .expect("request");
        read_until(&mut reused, "PB_CONNECT", Duration::from_secs(10));

        // A connection that sends nothing is closed after about one header timeout.
        let mut idle = TcpStream::connect(&address).expect("connect");
        idle.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let started = Instant::now();
        let mut byte = [0u8; 1];
        let read = idle.read(&mut byte);
        assert!(
            matches!(read, Ok(0)) || read.is_err(),
            "the idle connection got {read:?}"
        );
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(800) && waited < Duration::from_millis(1900),
            "closed after {waited:?} (header timeout 1 s)"
        );

        assert!(
            server.terminate(),
            "SIGTERM with open streams: {}",
            server.stderr()
        );
    });
}
