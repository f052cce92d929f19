//! JS hooks (`pb_hooks`) through the real HTTP API: custom routes, the request event, errors,
//! limits (loop, allocation, recursion), record hooks whose `$app` writes join the request's
//! commit, after-success hooks, cron jobs, reloads, and determinism (a replay of the log
//! gives the same projection without hooks).

#![allow(clippy::unwrap_used)]

mod common;

use api::hooks::{HooksOptions, HOOK_SUFFIX};
use common::TestServer;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const HOOKS: &str = include_str!("hooks_files/main.pb.js");

/// A server with `main.pb.js` loaded (2 VMs, 1 s per invocation, 32 MiB per VM) and the
/// `posts`, `notes` and `audit` collections.
async fn start(dir: &Path) -> TestServer {
    std::fs::write(dir.join(format!("main{HOOK_SUFFIX}")), HOOKS).unwrap();
    let server = common::start().await;
    for name in ["posts", "notes"] {
        server
            .collection(json!({"name": name, "type": "base",
                "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
                "fields": [{"name": "title", "type": "text"}]}))
            .await;
    }
    server
        .collection(json!({"name": "audit", "type": "base",
            "fields": [{"name": "action", "type": "text"}]}))
        .await;
    api::hooks::start(&server.state, options(dir)).unwrap();
    server
}

fn options(dir: &Path) -> HooksOptions {
    HooksOptions {
        pool: 2,
        timeout: Duration::from_secs(1),
        memory_bytes: 32 * 1024 * 1024,
        ..HooksOptions::new(dir)
    }
}

async fn audit(server: &TestServer) -> Vec<String> {
    let list = server
        .json(
            "GET",
            "/api/collections/audit/records?sort=@rowid&perPage=100",
            json!({}),
            Some(&server.admin),
            200,
        )
        .await;
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["action"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn custom_routes_answer_like_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let reply = server.send("GET", "/hello/bob?x=1", None, None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text, r#"{"message":"Hello bob","q":"1"}"#);
    assert_eq!(reply.headers["content-type"], "application/json");
    let reply = server.send("GET", "/str", None, None).await;
    assert_eq!((reply.status, reply.text.as_str()), (201, "hi"));
    assert_eq!(reply.headers["content-type"], "text/plain; charset=utf-8");
    let reply = server.send("GET", "/html", None, None).await;
    assert_eq!(reply.headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(server.send("GET", "/nc", None, None).await.status, 204);
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let reply = no_redirects
        .get(format!("{}/redir", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status().as_u16(), 307);
    assert_eq!(reply.headers()["location"], "/x");
    let reply = server.send("GET", "/none", None, None).await;
    assert_eq!((reply.status, reply.text.as_str()), (200, ""));
    // Unknown paths and wrong methods still get the API's 404s.
    let reply = server.send("GET", "/nothing", None, None).await;
    assert_eq!(reply.status, 404);
    assert_eq!(
        server.send("POST", "/hello/bob", None, None).await.status,
        404
    );
    // Built-in routes are not shadowed.
    assert_eq!(
        server.send("GET", "/api/health", None, None).await.status,
        200
    );
    let reply = server
        .send(
            "POST",
            "/api/myapp/bind",
            Some(r#"{"a":"x","b":3,"c":1}"#),
            None,
        )
        .await;
    assert_eq!(reply.text, r#"{"a":"x","b":3}"#);
}

#[tokio::test]
async fn auth_middlewares_and_the_request_event() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let reply = server.send("GET", "/api/myapp/me", None, None).await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.text,
        r#"{"data":{},"message":"The request requires valid record authorization token.","status":401}"#
    );
    let (user_id, user_token) = server.user("u@example.com", "Passw0rd123").await;
    let reply = server
        .send("GET", "/api/myapp/me?z=2", None, Some(&user_token))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["id"], json!(user_id));
    assert_eq!(reply.json["collection"], json!("users"));
    assert_eq!(reply.json["info"], json!({"z": "2"}));
    assert_eq!(
        server
            .send("GET", "/api/myapp/admin", None, Some(&user_token))
            .await
            .status,
        401
    );
    assert_eq!(
        server
            .send("GET", "/api/myapp/admin", None, Some(&server.admin))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn thrown_errors_use_the_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let reply = server.send("GET", "/throw/api", None, None).await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.text,
        r#"{"data":{"a":{"code":"validation_invalid_value","message":"Invalid value."}},"message":"Nope.","status":400}"#
    );
    let reply = server.send("GET", "/throw/notfound", None, None).await;
    assert_eq!(reply.status, 404);
    assert_eq!(
        reply.json["message"],
        json!("The requested resource wasn't found.")
    );
    let reply = server.send("GET", "/throw/plain", None, None).await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.text,
        r#"{"data":{},"message":"Something went wrong while processing your request.","status":400}"#
    );
}

#[tokio::test]
async fn loops_allocations_and_recursion_are_stopped_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    for path in [
        "/limits/loop",
        "/limits/alloc",
        "/limits/recurse",
        "/limits/loop",
    ] {
        let started = Instant::now();
        let reply = server.send("GET", path, None, None).await;
        assert_eq!(reply.status, 400, "{path}: {}", reply.text);
        assert_eq!(
            reply.json["message"],
            json!("Something went wrong while processing your request.")
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{path} took {:?}",
            started.elapsed()
        );
        // Both VMs still answer.
        for _ in 0..4 {
            let reply = server.send("GET", "/hello/x", None, None).await;
            assert_eq!(reply.status, 200, "after {path}: {}", reply.text);
        }
    }
    // Concurrent loops occupy the VMs, not the server: the API still answers meanwhile.
    let loops: Vec<_> = (0..2)
        .map(|_| {
            let client = server.client.clone();
            let url = format!("{}/limits/loop", server.base);
            tokio::spawn(async move { client.get(url).send().await.unwrap().status().as_u16() })
        })
        .collect();
    assert_eq!(
        server.send("GET", "/api/health", None, None).await.status,
        200
    );
    for handle in loops {
        assert_eq!(handle.await.unwrap(), 400);
    }
}

#[tokio::test]
async fn create_hook_sets_a_field_and_its_writes_join_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let before = server.state.engine.last_seq();
    let created = server
        .json(
            "POST",
            "/api/collections/posts/records",
            json!({"title": "t1"}),
            None,
            200,
        )
        .await;
    assert_eq!(created["title"], json!("hooked:t1"));
    // The request's record and the hook's audit record: one commit; the after-success
    // hook's record: a second one.
    assert_eq!(server.state.engine.last_seq(), before + 2);
    assert_eq!(
        audit(&server).await,
        vec!["create hooked:t1", "after hooked:t1"]
    );
    // A throwing hook writes nothing.
    let before = server.state.engine.last_seq();
    let reply = server
        .send(
            "POST",
            "/api/collections/posts/records",
            Some(r#"{"title":"boom"}"#),
            None,
        )
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json["message"], json!("No booms."));
    // A hook that does not call e.next(): 200, empty, nothing written.
    let reply = server
        .send(
            "POST",
            "/api/collections/posts/records",
            Some(r#"{"title":"silent"}"#),
            None,
        )
        .await;
    assert_eq!((reply.status, reply.text.as_str()), (200, ""));
    assert_eq!(server.state.engine.last_seq(), before);
    // An update hook answering by itself.
    let id = created["id"].as_str().unwrap();
    let url = format!("/api/collections/posts/records/{id}");
    let reply = server
        .send("PATCH", &url, Some(r#"{"title":"custom"}"#), None)
        .await;
    assert_eq!(
        (reply.status, reply.text.as_str()),
        (202, r#"{"custom":true}"#)
    );
    // The view hook changes what is answered, not what is stored.
    let viewed = server.json("GET", &url, json!({}), None, 200).await;
    assert_eq!(viewed["title"], json!("HOOKED:T1"));
    let listed = server
        .json(
            "GET",
            "/api/collections/posts/records",
            json!({}),
            None,
            200,
        )
        .await;
    assert_eq!(listed["items"][0]["title"], json!("hooked:t1"));
    // History names the request's actor for the hook's write too (a guest here).
    let history = server
        .json(
            "GET",
            &format!("{url}/history"),
            json!({}),
            Some(&server.admin),
            200,
        )
        .await;
    assert!(history.to_string().contains("guest"), "{history}");
}

#[tokio::test]
async fn app_reads_and_writes_from_routes() {
    let dir = tempfile::tempdir().unwrap();
    std::env::set_var("POCKETLOG_HOOKS_TEST_ENV", "from-env");
    let server = start(dir.path()).await;
    let before = server.state.engine.last_seq();
    let reply = server
        .send(
            "POST",
            "/api/myapp/notes",
            Some(r#"{"title":"alpha"}"#),
            None,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["ids"].as_array().unwrap().len(), 2);
    assert_eq!(
        server.state.engine.last_seq(),
        before + 1,
        "runInTransaction is one commit"
    );
    let reply = server
        .send("GET", "/api/myapp/notes?q=alpha", None, None)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["titles"], json!(["alpha (copy)", "alpha"]));
    assert_eq!(reply.json["first"], json!("alpha (copy)"));
    let reply = server.send("GET", "/api/myapp/security", None, None).await;
    assert_eq!(reply.json["random"], json!(12));
    assert_eq!(reply.json["claims"]["sub"], json!("x"));
    assert_eq!(reply.json["env"], json!("from-env"));
    assert_eq!(reply.json["str"], json!("hi"));
    // A cron job's writes are a commit of their own.
    api::hooks::run_cron(&server.state, "notes_cleanup")
        .await
        .unwrap();
    assert_eq!(audit(&server).await, vec!["cron"]);
}

#[tokio::test]
async fn replaying_a_log_written_with_hooks_gives_the_same_projection_without_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    for title in ["a", "b", "c"] {
        server
            .json(
                "POST",
                "/api/collections/posts/records",
                json!({"title": title}),
                None,
                200,
            )
            .await;
    }
    server
        .send("POST", "/api/myapp/notes", Some(r#"{"title":"n"}"#), None)
        .await;
    let data_dir = server.state.engine.dir().to_path_buf();
    let last = server.state.engine.last_seq();
    let live = engine::admin::Projection::open_read_only(&data_dir.join("data.db"))
        .unwrap()
        .dump()
        .unwrap();
    let replay_dir = tempfile::tempdir().unwrap();
    let mut replayed = engine::admin::Projection::open(&replay_dir.path().join("data.db")).unwrap();
    let (reader, _) =
        engine::LogReader::open_dir(Arc::new(engine::FsStorage), &data_dir.join("log")).unwrap();
    replayed.replay(&reader, 1, last, |_| {}).unwrap();
    let replayed = replayed.dump().unwrap();
    let titles = |dump: &[String]| dump.iter().filter(|l| l.contains("hooked:")).count();
    // 3 posts, 3 audit records of the create hook, 3 of the after-success hook.
    assert_eq!(titles(&live), 9);
    assert_eq!(live, replayed);
}

#[tokio::test]
async fn watch_reloads_changed_hook_files() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let mut options = options(dir.path());
    options.watch = true;
    api::hooks::start(&server.state, options).unwrap();
    assert_eq!(
        server.send("GET", "/reloaded", None, None).await.status,
        404
    );
    std::fs::write(
        dir.path().join(format!("zz{HOOK_SUFFIX}")),
        r#"routerAdd("GET", "/reloaded", (e) => e.string(200, "yes"))"#,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = server.send("GET", "/reloaded", None, None).await;
        if reply.status == 200 {
            assert_eq!(reply.text, "yes");
            break;
        }
        assert!(Instant::now() < deadline, "the new route never appeared");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The old routes are still there.
    assert_eq!(server.send("GET", "/hello/x", None, None).await.status, 200);
}

#[test]
fn route_patterns_match_like_go() {
    use api::hooks::routes::match_path;
    assert_eq!(match_path("/a/{x}", "/a/1").unwrap()["x"], "1");
    assert!(match_path("/a/{x}", "/a/").is_none());
    assert!(match_path("/a/{x}", "/a/1/2").is_none());
    assert_eq!(match_path("/f/{rest...}", "/f/1/2").unwrap()["rest"], "1/2");
    assert!(match_path("/a", "/b").is_none());
}
