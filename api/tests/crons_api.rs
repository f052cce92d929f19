//! The crons API through HTTP: the list's shape and the reference's job ids, superuser-only
//! access (401/403 like the reference), 404 for an unknown job, and each job's effect when run
//! now: expired OTPs go (fresh ones stay), old request logs go (recent ones stay), a snapshot
//! appears, the optimize job succeeds.

#![allow(clippy::unwrap_used)]

mod common;

use common::start;
use serde_json::{json, Value};

#[tokio::test]
async fn list_is_the_reference_shape_for_superusers_only() {
    let server = start().await;
    let list = server
        .json(
            "GET",
            "/api/crons",
            json!(null),
            Some(&server.admin.clone()),
            200,
        )
        .await;
    let jobs: Vec<(String, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|job| {
            assert_eq!(job.as_object().unwrap().len(), 2, "{job}");
            (
                job["id"].as_str().unwrap().to_string(),
                job["expression"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (id, expression) in [
        ("__pbDBOptimize__", "0 0 * * *"),
        ("__pbMFACleanup__", "0 * * * *"),
        ("__pbOTPCleanup__", "0 * * * *"),
        ("__pbLogsCleanup__", "0 */6 * * *"),
    ] {
        assert!(
            jobs.contains(&(id.to_string(), expression.to_string())),
            "{id} missing: {list}"
        );
    }
    // Snapshots are listed only when the server compacts (serve sets the expression).
    assert!(!list.to_string().contains("__plSnapshot__"), "{list}");

    let guest = server.send("GET", "/api/crons", None, None).await;
    assert_eq!(guest.status, 401);
    assert_eq!(
        guest.json["message"],
        "The request requires valid record authorization token."
    );
    let (_, user) = server.user("u@example.com", "password123").await;
    let forbidden = server.send("GET", "/api/crons", None, Some(&user)).await;
    assert_eq!(forbidden.status, 403);
    let run = server
        .send("POST", "/api/crons/__pbLogsCleanup__", None, Some(&user))
        .await;
    assert_eq!(run.status, 403);
    let run = server
        .send("POST", "/api/crons/__pbLogsCleanup__", None, None)
        .await;
    assert_eq!(run.status, 401);
}

#[tokio::test]
async fn unknown_jobs_are_404() {
    let server = start().await;
    let reply = server
        .send("POST", "/api/crons/nope", None, Some(&server.admin))
        .await;
    assert_eq!(reply.status, 404);
    assert_eq!(
        reply.text,
        r#"{"data":{},"message":"Missing or invalid cron job.","status":404}"#
    );
}

#[tokio::test]
async fn otp_cleanup_removes_only_expired_otps() {
    let server = start().await;
    let admin = server.admin.clone();
    let (user, _) = server.user("otp@example.com", "password123").await;
    let otp = |password: &str| json!({"collectionRef": "_pb_users_auth_", "recordRef": user, "password": password});
    let old = server
        .json(
            "POST",
            "/api/collections/_otps/records",
            otp("111111"),
            Some(&admin),
            200,
        )
        .await;
    // The users collection's OTP duration becomes 1 s; the first OTP expires meanwhile.
    server
        .json(
            "PATCH",
            "/api/collections/users",
            json!({"otp": {"duration": 1}}),
            Some(&admin),
            200,
        )
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let fresh = server
        .json(
            "POST",
            "/api/collections/_otps/records",
            otp("222222"),
            Some(&admin),
            200,
        )
        .await;
    let run = server
        .send("POST", "/api/crons/__pbOTPCleanup__", None, Some(&admin))
        .await;
    assert_eq!(run.status, 204, "{}", run.text);
    let left = server
        .json(
            "GET",
            "/api/collections/_otps/records",
            json!(null),
            Some(&admin),
            200,
        )
        .await;
    let ids: Vec<&Value> = left["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["id"])
        .collect();
    assert_eq!(ids, [&fresh["id"]], "old {}: {left}", old["id"]);
}

#[tokio::test]
async fn logs_cleanup_removes_logs_older_than_max_days() {
    let server = start().await;
    let admin = server.admin.clone();
    // A request that is logged now.
    server.send("GET", "/api/health", None, None).await;
    let path = server.state.logs.path().to_path_buf();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let count: i64 = api::request_log::open(&path)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM _logs", [], |row| row.get(0))
            .unwrap();
        if count > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no request log written"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let conn = api::request_log::open(&path).unwrap();
    conn.execute(
        "INSERT INTO _logs (id, level, message, data, created) VALUES ('oldlog', 0, 'GET /old', '{}', '2001-01-01 00:00:00.000Z')",
        [],
    )
    .unwrap();
    let before: i64 = conn
        .query_row("SELECT COUNT(*) FROM _logs", [], |row| row.get(0))
        .unwrap();
    let run = server
        .send("POST", "/api/crons/__pbLogsCleanup__", None, Some(&admin))
        .await;
    assert_eq!(run.status, 204, "{}", run.text);
    let old: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM _logs WHERE id = 'oldlog'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    let after: i64 = conn
        .query_row("SELECT COUNT(*) FROM _logs", [], |row| row.get(0))
        .unwrap();
    assert_eq!(old, 0);
    assert!(
        after >= before - 1 && after > 0,
        "before {before}, after {after}"
    );
}

#[tokio::test]
async fn snapshot_and_optimize_jobs_run() {
    let server = common::start_with(api::ServerOptions {
        snapshot_cron: Some("0 3 * * *".into()),
        ..api::ServerOptions::default()
    })
    .await;
    let admin = server.admin.clone();
    let snapshots = server.state.engine.dir().join("snapshots");
    let count = || {
        std::fs::read_dir(&snapshots)
            .map(|dir| dir.count())
            .unwrap_or(0)
    };
    let before = count();
    for job in ["__plSnapshot__", "__pbDBOptimize__"] {
        let run = server
            .send("POST", &format!("/api/crons/{job}"), None, Some(&admin))
            .await;
        assert_eq!(run.status, 204, "{job}: {}", run.text);
    }
    assert!(count() > before, "no snapshot written");
}
