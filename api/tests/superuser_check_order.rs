//! The order of the answers on superuser-only routes, as measured on PocketBase v0.40.6:
//! a body over the limit is a 413 before the superuser check (the reference's body limit runs
//! before its auth middleware); otherwise a guest gets 401 and another record 403 before any
//! 404 of an unknown collection, log or backup, and before any 400 of a malformed body.
//!
//! Guards against: the `Superuser`/`Caller` extractors changing which error a caller sees
//! first (e.g. a guest learning which collections exist).

mod common;

use api::ServerOptions;
use common::start_with;

/// Body limit of the test server (small, so an oversized body is cheap).
const LIMIT: usize = 4096;

#[tokio::test]
async fn superuser_routes_answer_413_then_401_or_403_then_404_or_400() {
    let server = start_with(ServerOptions {
        body_limit_bytes: LIMIT,
        ..ServerOptions::default()
    })
    .await;
    let (_, user) = server.user("u@example.com", "userpass123").await;
    let big = format!(r#"{{"x":"{}"}}"#, "a".repeat(LIMIT * 2));
    let with_body = [
        ("PATCH", "/api/settings"),
        ("POST", "/api/collections"),
        ("PATCH", "/api/collections/nope"),
        ("PUT", "/api/collections/import"),
        ("POST", "/api/backups"),
        ("POST", "/api/collections/nope/impersonate/x"),
    ];
    for (method, path) in with_body {
        let reply = server.send(method, path, Some(&big), None).await;
        assert_eq!(
            reply.status, 413,
            "{method} {path} guest, big body: {}",
            reply.text
        );
        let reply = server.send(method, path, Some("{"), None).await;
        assert_eq!(
            reply.status, 401,
            "{method} {path} guest, bad body: {}",
            reply.text
        );
        let reply = server.send(method, path, Some("{"), Some(&user)).await;
        assert_eq!(
            reply.status, 403,
            "{method} {path} user, bad body: {}",
            reply.text
        );
    }
    let without_body = [
        ("GET", "/api/settings"),
        ("GET", "/api/collections"),
        ("GET", "/api/collections/nope"),
        ("DELETE", "/api/collections/nope"),
        ("DELETE", "/api/collections/nope/truncate"),
        ("GET", "/api/collections/meta/scaffolds"),
        ("GET", "/api/collections/nope/records/x/history"),
        ("GET", "/api/logs"),
        ("GET", "/api/logs/nope"),
        ("GET", "/api/logs/stats"),
        ("DELETE", "/api/logs"),
        ("GET", "/api/backups"),
        ("DELETE", "/api/backups/nope"),
        ("POST", "/api/backups/nope/restore"),
    ];
    for (method, path) in without_body {
        let reply = server.send(method, path, None, None).await;
        assert_eq!(reply.status, 401, "{method} {path} guest: {}", reply.text);
        let reply = server.send(method, path, None, Some(&user)).await;
        assert_eq!(reply.status, 403, "{method} {path} user: {}", reply.text);
    }
    // Past the check, the superuser sees the 404s and 400s.
    let admin = server.admin.clone();
    for (method, path, status) in [
        ("GET", "/api/collections/nope", 404),
        ("DELETE", "/api/collections/nope/truncate", 404),
        ("GET", "/api/collections/nope/records/x/history", 404),
        ("POST", "/api/backups/nope/restore", 400),
    ] {
        let reply = server.send(method, path, None, Some(&admin)).await;
        assert_eq!(
            reply.status, status,
            "{method} {path} superuser: {}",
            reply.text
        );
    }
}
