//! Keep-alive after early answers, against the built binary over raw TCP.
//!
//! A handler may answer before it read the request body (unknown route, wrong method). The
//! next request on the same connection must still be answered: the server reads and discards
//! the unread rest (up to 256 KiB) before answering, and says `Connection: close` when it will
//! not (larger body, `Expect: 100-continue` it never answered). Before the fix the server
//! closed such connections silently whenever the body had not arrived with the head, so the
//! client's next request got no response at all.

mod edge_support;
mod support;

use edge_support::{head, RawConn, HEALTH};
use std::time::Duration;
use support::{runtime, Server};

const WAIT: Duration = Duration::from_secs(10);

/// Wrong methods and unknown routes, as the reference answers them (404 + JSON envelope).
const EARLY_ANSWERS: &[(&str, &str, &str)] = &[
    (
        "POST",
        "/api/health",
        "The requested resource wasn't found.",
    ),
    ("POST", "/api/nope", "The requested resource wasn't found."),
    (
        "PUT",
        "/api/collections/x/records",
        "The requested resource wasn't found.",
    ),
    (
        "DELETE",
        "/api/settings",
        "The requested resource wasn't found.",
    ),
    (
        "POST",
        "/api/collections/_superusers",
        "The requested resource wasn't found.",
    ),
    ("GET", "/api/collections/x/truncate", "File not found."),
];

#[test]
fn the_next_request_is_answered_after_an_early_answer_to_a_late_body() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("pb_data");
    runtime().block_on(async {
        let server = Server::start(&dir, &["--sync", "none"]).await;
        for (method, path, message) in EARLY_ANSWERS {
            let body = br#"{"text":"late"}"#;
            let mut conn = RawConn::connect(&server.base).await;
            // The head alone: the handler answers without the body, which comes later.
            assert!(conn.send(&head(method, path, body.len(), "")).await);
            tokio::time::sleep(Duration::from_millis(200)).await;
            let mut rest = body.to_vec();
            rest.extend_from_slice(HEALTH);
            assert!(conn.send(&rest).await, "{method} {path}: closed early");
            let first = conn.response(WAIT).await.expect("first response");
            assert_eq!(first.status, 404, "{method} {path}");
            assert_eq!(first.json()["message"], *message, "{method} {path}");
            assert_eq!(first.json()["status"], 404, "{method} {path}");
            assert_eq!(first.header("allow"), None, "{method} {path}");
            assert_eq!(first.header("connection"), None, "{method} {path}");
            let second = conn.response(WAIT).await;
            assert_eq!(
                second.map(|r| r.status),
                Some(200),
                "{method} {path}: the next request on the connection got no answer"
            );
        }
    });
}

#[test]
fn a_thousand_early_answers_with_bodies_keep_the_connection() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("pb_data");
    runtime().block_on(async {
        let server = Server::start(&dir, &["--sync", "none"]).await;
        let mut conn = RawConn::connect(&server.base).await;
        let body = br#"{"email":"a@b.c","password":"1234567890"}"#;
        for round in 0..1000 {
            let (method, path, _) = EARLY_ANSWERS[round % EARLY_ANSWERS.len()];
            // Head and body in two writes, as Python's http.client sends them (the race the
            // reported failures came from: the answer is ready before the body arrives).
            assert!(conn.send(&head(method, path, body.len(), "")).await);
            assert!(conn.send(body).await, "round {round}: closed");
            let first = conn.response(WAIT).await;
            assert_eq!(first.map(|r| r.status), Some(404), "round {round}");
            assert!(conn.send(HEALTH).await, "round {round}: closed");
            let second = conn.response(WAIT).await;
            assert_eq!(
                second.map(|r| r.status),
                Some(200),
                "round {round}: no answer after {method} {path}"
            );
        }
    });
}

#[test]
fn a_body_too_big_to_drain_or_never_asked_for_closes_the_connection_openly() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("pb_data");
    runtime().block_on(async {
        let server = Server::start(&dir, &["--sync", "none"]).await;

        // More than the drain bound: answered at once, with `Connection: close`.
        let mut conn = RawConn::connect(&server.base).await;
        assert!(conn.send(&head("POST", "/api/nope", 1 << 20, "")).await);
        assert!(conn.send(&[b'x'; 1024]).await);
        let response = conn.response(WAIT).await.expect("response");
        assert_eq!(response.status, 404);
        assert_eq!(response.header("connection"), Some("close"));
        assert!(conn.closed_within(WAIT).await);

        // Within the bound: drained, the connection stays usable.
        let mut conn = RawConn::connect(&server.base).await;
        let size = 200 * 1024;
        let mut request = head("POST", "/api/nope", size, "");
        request.extend(std::iter::repeat_n(b'x', size));
        request.extend_from_slice(HEALTH);
        assert!(conn.send(&request).await);
        let response = conn.response(WAIT).await.expect("response");
        assert_eq!(
            (response.status, response.header("connection")),
            (404, None)
        );
        assert_eq!(conn.response(WAIT).await.map(|r| r.status), Some(200));

        // `Expect: 100-continue` to a route that never reads the body: no `100 Continue`
        // (the client would send the body for nothing), a 404 with `Connection: close`.
        let mut conn = RawConn::connect(&server.base).await;
        let expect = head("POST", "/api/nope", 1000, "Expect: 100-continue\r\n");
        assert!(conn.send(&expect).await);
        let response = conn.response(WAIT).await.expect("response");
        assert_eq!(response.status, 404);
        assert_eq!(response.header("connection"), Some("close"));

        // `Expect: 100-continue` to a route that reads the body: answered normally.
        let mut conn = RawConn::connect(&server.base).await;
        let body = br#"{"identity":"a@b.c","password":"wrong-password"}"#;
        let expect = head(
            "POST",
            "/api/collections/_superusers/auth-with-password",
            body.len(),
            "Expect: 100-continue\r\n",
        );
        assert!(conn.send(&expect).await);
        let continued = conn.response(WAIT).await.expect("100 Continue");
        assert_eq!(continued.status, 100);
        assert!(conn.send(body).await);
        let response = conn.response(WAIT).await.expect("response");
        assert_eq!(response.status, 400, "{:?}", response.json());
        assert_eq!(response.header("connection"), None);
        assert!(conn.send(HEALTH).await);
        assert_eq!(conn.response(WAIT).await.map(|r| r.status), Some(200));
    });
}
