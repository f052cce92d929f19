//! The verified-caller cache (`api/src/auth_cache.rs`) over real HTTP: a cached caller is
//! served from the cache, and every commit that can change a caller empties it before its
//! answer is sent, so a revoked token fails on the very next request.
//!
//! Guards against: a token that still works from the cache after a password change, a
//! token-secret rotation, a record update (stale `@request.auth.*` values) or the record's
//! deletion; a cache that fills up with guests or junk tokens.

#![allow(clippy::unwrap_used)]

mod common;

use common::start;
use serde_json::{json, Value};

#[tokio::test]
async fn a_cached_caller_is_dropped_by_each_change_that_can_revoke_it() {
    let server = start().await;
    let (alice, token) = server.user("alice@example.com", "alicepass123").await;
    let me = format!("/api/collections/users/records/{alice}");

    // Served twice: the second time from the cache.
    server
        .json("GET", &me, Value::Null, Some(&token), 200)
        .await;
    server
        .json("GET", &me, Value::Null, Some(&token), 200)
        .await;
    assert!(
        !server.state.auth_cache.is_empty(),
        "a signed-in request caches its caller"
    );

    // An update of the caller's record empties the cache; the token stays valid and the
    // next request sees the new values (a rule on @request.auth.name).
    let renamed: Value = server
        .json("PATCH", &me, json!({"name": "Alice B"}), Some(&token), 200)
        .await;
    assert_eq!(renamed["name"], "Alice B");
    assert!(
        server.state.auth_cache.is_empty(),
        "an auth record update invalidates"
    );
    let refreshed: Value = server
        .json(
            "POST",
            "/api/collections/users/auth-refresh",
            Value::Null,
            Some(&token),
            200,
        )
        .await;
    assert_eq!(refreshed["record"]["name"], "Alice B", "no stale caller");

    // A password change revokes the cached token at once.
    server
        .json("GET", &me, Value::Null, Some(&token), 200)
        .await;
    server
        .json(
            "PATCH",
            &me,
            json!({"oldPassword": "alicepass123", "password": "newalicepass1", "passwordConfirm": "newalicepass1"}),
            Some(&token),
            200,
        )
        .await;
    let reply = server
        .send(
            "POST",
            "/api/collections/users/auth-refresh",
            None,
            Some(&token),
        )
        .await;
    assert_eq!(reply.status, 401, "{}", reply.text);

    // Rotating the collection's auth token secret (a collection change) revokes too.
    let token = server
        .login("users", "alice@example.com", "newalicepass1")
        .await;
    server
        .json("GET", &me, Value::Null, Some(&token), 200)
        .await;
    server
        .json(
            "PATCH",
            "/api/collections/users",
            json!({"authToken": {"secret": "a-brand-new-secret-of-enough-length-0123456789"}}),
            Some(&server.admin),
            200,
        )
        .await;
    let reply = server
        .send(
            "POST",
            "/api/collections/users/auth-refresh",
            None,
            Some(&token),
        )
        .await;
    assert_eq!(reply.status, 401, "{}", reply.text);

    // Deleting the record revokes its token.
    let token = server
        .login("users", "alice@example.com", "newalicepass1")
        .await;
    server
        .json("GET", &me, Value::Null, Some(&token), 200)
        .await;
    let reply = server.send("DELETE", &me, None, Some(&server.admin)).await;
    assert_eq!(reply.status, 204, "{}", reply.text);
    let reply = server
        .send(
            "POST",
            "/api/collections/users/auth-refresh",
            None,
            Some(&token),
        )
        .await;
    assert_eq!(reply.status, 401, "{}", reply.text);
}

#[tokio::test]
async fn writes_elsewhere_keep_the_cache_and_junk_tokens_are_never_cached() {
    let server = start().await;
    let (_, token) = server.user("bob@example.com", "bobpass1234").await;
    server
        .json(
            "POST",
            "/api/collections",
            json!({"name": "notes", "type": "base", "createRule": "", "fields": [{"name": "t", "type": "text"}]}),
            Some(&server.admin),
            200,
        )
        .await;
    server
        .json(
            "POST",
            "/api/collections/users/auth-refresh",
            Value::Null,
            Some(&token),
            200,
        )
        .await;
    let cached = server.state.auth_cache.len();
    assert!(cached > 0);
    // Creates in another collection change no caller: the cache keeps its entries.
    for i in 0..5 {
        server
            .json(
                "POST",
                "/api/collections/notes/records",
                json!({"t": format!("n{i}")}),
                Some(&token),
                200,
            )
            .await;
    }
    assert_eq!(server.state.auth_cache.len(), cached);
    // Forged and junk tokens stay guests and add nothing.
    let forged = format!("{}x", &token[..token.len() - 1]);
    for junk in [forged.as_str(), "nope", "Bearer abc.def.ghi"] {
        let reply = server
            .send(
                "POST",
                "/api/collections/users/auth-refresh",
                None,
                Some(junk),
            )
            .await;
        assert_eq!(reply.status, 401, "{junk}: {}", reply.text);
    }
    assert_eq!(server.state.auth_cache.len(), cached);
}
