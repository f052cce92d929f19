//! Request logs through HTTP against the built binary: API requests land in
//! `pb_data/auxiliary.db` (written in the background) and are listed, filtered, sorted, viewed and
//! counted per hour by `GET /api/logs`, `/api/logs/{id}`, `/api/logs/stats`; only superusers may
//! read them; `settings.logs.minLevel`, `logAuthId` and `maxDays` 0 (off) are honoured;
//! `DELETE /api/logs` empties them.

mod support;

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::{create_superuser, runtime, Server};

/// Waits until `GET /api/logs?filter=…` has at least `count` items; returns the list.
async fn wait_for(server: &Server, token: &str, filter: &str, count: u64) -> Value {
    let path = format!("/api/logs?perPage=100&filter={}", encode(filter));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = server.call("GET", &path, Some(token), None).await;
        assert_eq!(status, 200, "{body}");
        if body["totalItems"].as_u64().unwrap_or(0) >= count {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "fewer than {count} logs for {filter}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

#[test]
fn request_logs_are_written_in_the_background_and_listed() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("pb_data");
    create_superuser(&dir);
    runtime().block_on(async {
        let mut server = Server::start(&dir, &["--sync", "none"]).await;
        let token = server.login().await;
        for _ in 0..3 {
            let (status, _) = server.call("GET", "/api/health", None, None).await;
            assert_eq!(status, 200);
        }
        let (status, _) = server
            .call("GET", "/api/collections/nope/records", None, None)
            .await;
        assert_eq!(status, 404);

        // Guests and plain users may not read logs.
        let (status, _) = server.call("GET", "/api/logs", None, None).await;
        assert_eq!(status, 401);

        let health = wait_for(&server, &token, "data.url = '/api/health'", 3).await;
        let item = &health["items"][0];
        assert_eq!(item["message"], json!("GET /api/health"));
        assert_eq!(item["level"], json!(0));
        assert_eq!(item["data"]["type"], json!("request"));
        assert_eq!(item["data"]["status"], json!(200));
        assert_eq!(item["data"]["remoteIP"], json!("127.0.0.1"));
        assert_eq!(item["data"]["auth"], json!(""));
        assert!(item["data"]["execTime"].as_f64().is_some(), "{item}");
        assert!(item.get("updated").is_none());

        // Errors are level 8; the filter reaches into data.
        let errors = wait_for(&server, &token, "level = 8 && data.status = 404", 1).await;
        assert_eq!(
            errors["items"][0]["data"]["url"],
            json!("/api/collections/nope/records")
        );

        // Authenticated requests carry the collection name.
        let (status, _) = server
            .call("GET", "/api/collections", Some(&token), None)
            .await;
        assert_eq!(status, 200);
        let authed = wait_for(
            &server,
            &token,
            "data.url ~ '/api/collections' && data.auth = '_superusers'",
            1,
        )
        .await;
        assert!(authed["items"][0]["data"].get("authId").is_none());

        // Sort, paging, view, stats.
        let (status, sorted) = server
            .call(
                "GET",
                "/api/logs?sort=created&perPage=2&page=1",
                Some(&token),
                None,
            )
            .await;
        assert_eq!(status, 200, "{sorted}");
        assert_eq!(sorted["items"].as_array().map(Vec::len), Some(2));
        let first = sorted["items"][0]["created"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let second = sorted["items"][1]["created"]
            .as_str()
            .unwrap_or("")
            .to_string();
        assert!(first <= second, "{sorted}");
        let id = item["id"].as_str().expect("id");
        let (status, viewed) = server
            .call("GET", &format!("/api/logs/{id}"), Some(&token), None)
            .await;
        assert_eq!((status, &viewed["id"]), (200, &json!(id)));
        let (status, _) = server
            .call("GET", "/api/logs/missing", Some(&token), None)
            .await;
        assert_eq!(status, 404);
        let (status, stats) = server
            .call("GET", "/api/logs/stats", Some(&token), None)
            .await;
        assert_eq!(status, 200, "{stats}");
        let bucket = &stats[0];
        assert!(bucket["total"].as_i64().unwrap_or(0) >= 5, "{stats}");
        assert!(
            bucket["date"]
                .as_str()
                .unwrap_or("")
                .ends_with(":00:00.000Z"),
            "{stats}"
        );
        let (status, bad) = server
            .call(
                "GET",
                "/api/logs/stats?filter=%3D%3D%3D",
                Some(&token),
                None,
            )
            .await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(bad["message"], json!("Invalid filter format."));

        // minLevel 8 keeps only errors; logAuthId adds the record id.
        let (status, body) = server
            .call(
                "PATCH",
                "/api/settings",
                Some(&token),
                Some(json!({"logs": {"minLevel": 8, "logAuthId": true}})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let (status, _) = server
            .call("GET", "/api/health?after=minlevel", None, None)
            .await;
        assert_eq!(status, 200);
        let (status, _) = server
            .call("GET", "/api/collections/missing", Some(&token), None)
            .await;
        assert_eq!(status, 404);
        let missing = wait_for(&server, &token, "data.url = '/api/collections/missing'", 1).await;
        assert!(
            missing["items"][0]["data"]["authId"]
                .as_str()
                .is_some_and(|id| !id.is_empty()),
            "{missing}"
        );
        let skipped = wait_for(&server, &token, "data.url ~ 'after=minlevel'", 0).await;
        assert_eq!(skipped["totalItems"], json!(0), "{skipped}");

        // maxDays 0 turns request logging off; DELETE empties the table.
        let (status, _) = server
            .call(
                "PATCH",
                "/api/settings",
                Some(&token),
                Some(json!({"logs": {"maxDays": 0, "minLevel": 0}})),
            )
            .await;
        assert_eq!(status, 200);
        let (status, _) = server
            .call("GET", "/api/health?after=off", None, None)
            .await;
        assert_eq!(status, 200);
        let (status, _) = server.call("DELETE", "/api/logs", Some(&token), None).await;
        assert_eq!(status, 204);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (status, empty) = server.call("GET", "/api/logs", Some(&token), None).await;
        assert_eq!((status, &empty["totalItems"]), (200, &json!(0)), "{empty}");
        assert!(server.terminate(), "{}", server.stderr());
    });
    assert!(dir.join("auxiliary.db").exists());
}
