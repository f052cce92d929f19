//! `GET /api/metrics`: access (superusers or the scraper token), the Prometheus text format
//! (parsed line by line), and that the numbers follow what the server did (commits, request
//! counts by class, histograms whose buckets are cumulative and end in `+Inf` = count).

mod common;

use api::ServerOptions;
use common::{start, start_with};
use serde_json::json;
use std::collections::HashMap;

/// One parsed sample: metric name, labels, value.
type Sample = (String, HashMap<String, String>, f64);

/// Parses the text exposition format strictly enough to catch malformed lines: every line is
/// a `# HELP`/`# TYPE` comment or `name{labels} value`; every sample's family has a TYPE.
fn parse(text: &str) -> Vec<Sample> {
    let mut typed = HashMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(
                ["counter", "gauge", "histogram"].contains(&kind),
                "kind {kind}"
            );
            typed.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(!line.is_empty() && !line.starts_with('#'), "line {line:?}");
        let (series, value) = line.rsplit_once(' ').expect("series value");
        let value: f64 = value.parse().expect("numeric value");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                let labels = body
                    .split(',')
                    .map(|pair| {
                        let (key, quoted) = pair.split_once('=').expect("label =");
                        let value = quoted
                            .strip_prefix('"')
                            .and_then(|v| v.strip_suffix('"'))
                            .expect("quoted label");
                        (key.to_string(), value.to_string())
                    })
                    .collect();
                (name.to_string(), labels)
            }
            None => (series.to_string(), HashMap::new()),
        };
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "name {name}"
        );
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                name.strip_suffix(suffix)
                    .filter(|base| typed.get(*base).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(&name)
            .to_string();
        assert!(typed.contains_key(&family), "{name} has no TYPE");
        samples.push((name, labels, value));
    }
    samples
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| *v)
}

/// Checks a histogram family: cumulative buckets, `+Inf` equal to `_count`.
fn check_histogram(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let bucket_name = format!("{name}_bucket");
    let buckets: Vec<(f64, f64)> = samples
        .iter()
        .filter(|(n, l, _)| {
            *n == bucket_name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, l, v)| {
            let le = l.get("le").expect("le");
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().expect("le number")
            };
            (bound, *v)
        })
        .collect();
    assert!(buckets.len() > 2, "{name} has buckets");
    assert!(buckets
        .windows(2)
        .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
    let last = buckets.last().expect("buckets");
    assert!(last.0.is_infinite());
    let count = value(samples, &format!("{name}_count"), labels).expect("count");
    assert_eq!(last.1, count, "{name}: +Inf bucket equals count");
    count
}

#[tokio::test]
async fn metrics_needs_a_superuser() {
    let server = start().await;
    let guest = server.send("GET", "/api/metrics", None, None).await;
    assert_eq!(guest.status, 401, "{}", guest.text);
    assert!(guest.text.contains("\"status\":401"));
    let (_, user) = server.user("u1@example.com", "Passw0rd123").await;
    let user = server.send("GET", "/api/metrics", None, Some(&user)).await;
    assert_eq!(user.status, 403);
    // No token configured: a bearer token does not open it.
    let bearer = server
        .send("GET", "/api/metrics", None, Some("Bearer anything"))
        .await;
    assert_eq!(bearer.status, 401);
    let admin = server
        .send("GET", "/api/metrics", None, Some(&server.admin))
        .await;
    assert_eq!(admin.status, 200);
    assert_eq!(
        admin.headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
}

#[tokio::test]
async fn metrics_scraper_token_is_accepted_and_checked() {
    let server = start_with(ServerOptions {
        metrics_token: Some("s3cret-scrape".into()),
        ..ServerOptions::default()
    })
    .await;
    let ok = server
        .send("GET", "/api/metrics", None, Some("Bearer s3cret-scrape"))
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    parse(&ok.text);
    let wrong = server
        .send("GET", "/api/metrics", None, Some("Bearer s3cret-scrapf"))
        .await;
    assert_eq!(wrong.status, 401);
    let prefix = server
        .send("GET", "/api/metrics", None, Some("Bearer s3cret"))
        .await;
    assert_eq!(prefix.status, 401);
}

#[tokio::test]
async fn metrics_follow_commits_and_requests() {
    let server = start().await;
    server
        .collection(
            json!({"name": "notes", "type": "base", "listRule": "", "viewRule": "",
            "createRule": "", "fields": [{"name": "title", "type": "text"}]}),
        )
        .await;
    let scrape = || async {
        let reply = server
            .send("GET", "/api/metrics", None, Some(&server.admin))
            .await;
        assert_eq!(reply.status, 200);
        parse(&reply.text)
    };
    let before = scrape().await;
    let commits_before = value(&before, "pocketlog_commits_total", &[]).expect("commits");
    let head_before = value(&before, "pocketlog_log_head_seq", &[]).expect("head");
    let appends_before = check_histogram(&before, "pocketlog_log_append_seconds", &[]);
    for n in 0..5 {
        server
            .json(
                "POST",
                "/api/collections/notes/records",
                json!({"title": format!("t{n}")}),
                None,
                200,
            )
            .await;
    }
    for _ in 0..3 {
        server
            .json(
                "GET",
                "/api/collections/notes/records",
                json!({}),
                None,
                200,
            )
            .await;
    }
    let missing = server
        .send("GET", "/api/collections/notes/records/nope", None, None)
        .await;
    assert_eq!(missing.status, 404);
    let after = scrape().await;
    assert_eq!(
        value(&after, "pocketlog_commits_total", &[]),
        Some(commits_before + 5.0)
    );
    assert_eq!(
        value(&after, "pocketlog_log_head_seq", &[]),
        Some(head_before + 5.0)
    );
    assert_eq!(
        value(&after, "pocketlog_log_head_seq", &[]),
        Some(server.state.engine.last_seq() as f64)
    );
    assert!(value(&after, "pocketlog_log_segments", &[]).is_some_and(|v| v >= 1.0));
    assert_eq!(
        value(&after, "pocketlog_writer_queue_depth", &[]),
        Some(0.0)
    );
    assert_eq!(
        value(&after, "pocketlog_projection_lag_commits", &[]),
        Some(0.0)
    );
    let appends = check_histogram(&after, "pocketlog_log_append_seconds", &[]);
    assert!(appends >= appends_before + 5.0, "{appends} appends");
    let groups = check_histogram(&after, "pocketlog_writer_group_size", &[]);
    assert!(groups >= 5.0);
    let writes = value(
        &after,
        "pocketlog_http_requests_total",
        &[
            ("class", "records_write"),
            ("method", "write"),
            ("code", "2xx"),
        ],
    );
    assert_eq!(writes, Some(5.0));
    let reads = value(
        &after,
        "pocketlog_http_requests_total",
        &[
            ("class", "records_read"),
            ("method", "read"),
            ("code", "2xx"),
        ],
    );
    assert_eq!(reads, Some(3.0));
    let not_found = value(
        &after,
        "pocketlog_http_requests_total",
        &[
            ("class", "records_read"),
            ("method", "read"),
            ("code", "4xx"),
        ],
    );
    assert_eq!(not_found, Some(1.0));
    let read_latency = check_histogram(
        &after,
        "pocketlog_http_request_seconds",
        &[("class", "records_read")],
    );
    assert_eq!(read_latency, 4.0);
    // The previous scrape itself was counted as an admin read.
    assert!(value(
        &after,
        "pocketlog_http_requests_total",
        &[("class", "admin"), ("method", "read"), ("code", "2xx")],
    )
    .is_some_and(|v| v >= 1.0));
    for name in [
        "pocketlog_realtime_sessions",
        "pocketlog_realtime_queued_frames",
        "pocketlog_realtime_catch_ups_total",
        "pocketlog_compactions_total",
        "pocketlog_log_first_seq",
    ] {
        assert!(value(&after, name, &[]).is_some(), "{name} exported");
    }
}

/// The gaps of the first version: the fsync histogram, compaction and redaction state, the
/// replica lag (0 outside a cluster), and redactions counted.
#[tokio::test]
async fn metrics_show_fsync_maintenance_redactions_and_replica_lag() {
    let server = start().await;
    server
        .collection(
            json!({"name": "notes", "type": "base", "listRule": "", "viewRule": "",
            "createRule": "", "fields": [{"name": "title", "type": "text"}]}),
        )
        .await;
    let record = server
        .json(
            "POST",
            "/api/collections/notes/records",
            json!({"title": "erase me"}),
            None,
            200,
        )
        .await;
    let scrape = || async {
        let reply = server
            .send("GET", "/api/metrics", None, Some(&server.admin))
            .await;
        assert_eq!(reply.status, 200);
        parse(&reply.text)
    };
    let before = scrape().await;
    // The test server runs with sync = none: the fsync histogram is there, empty.
    assert_eq!(
        check_histogram(&before, "pocketlog_log_fsync_seconds", &[]),
        0.0
    );
    assert_eq!(
        value(&before, "pocketlog_compaction_running", &[]),
        Some(0.0)
    );
    assert_eq!(
        value(&before, "pocketlog_redaction_running", &[]),
        Some(0.0)
    );
    assert_eq!(value(&before, "pocketlog_redactions_total", &[]), Some(0.0));
    assert_eq!(
        value(&before, "pocketlog_replica_lag_commits", &[]),
        Some(0.0)
    );
    assert_eq!(
        value(&before, "pocketlog_replica_lag_seconds", &[]),
        Some(0.0)
    );
    let id = record["id"].as_str().expect("id");
    server
        .json(
            "POST",
            &format!("/api/collections/notes/records/{id}/redact"),
            json!({"fields": ["title"]}),
            Some(&server.admin),
            200,
        )
        .await;
    server
        .state
        .engine
        .compact(engine::Retention::Commits(1_000_000))
        .expect("compact");
    let after = scrape().await;
    assert_eq!(value(&after, "pocketlog_redactions_total", &[]), Some(1.0));
    assert_eq!(value(&after, "pocketlog_compactions_total", &[]), Some(1.0));
    assert_eq!(
        value(&after, "pocketlog_compaction_running", &[]),
        Some(0.0)
    );
    assert_eq!(value(&after, "pocketlog_redaction_running", &[]), Some(0.0));
}

/// The fsync histogram counts one fsync per write group when the log syncs.
#[test]
fn fsync_histogram_counts_each_group_fsync() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (engine, _) =
        engine::Engine::open(dir.path(), engine::EngineConfig::default()).expect("open");
    let before = engine.log().fsync_seconds().count;
    for n in 0..4i64 {
        engine
            .execute(engine::Actor::System, move |tx| {
                tx.stage(engine::Change::ParamSet {
                    key: format!("k{n}"),
                    value: Some("1".into()),
                })
            })
            .map_err(|_| "write")
            .expect("write");
    }
    let after = engine.log().fsync_seconds();
    assert_eq!(after.count, before + 4);
    assert_eq!(
        after.buckets.last().map(|(_, count)| *count),
        Some(after.count)
    );
    engine.shutdown();
}

/// The cost of one scrape: the render alone (µs, printed) and through HTTP. A scrape reads
/// atomics only, so it stays in the low milliseconds even in a debug build with sessions and
/// request counters populated (the bound is loose: CI's cores are shared).
#[tokio::test]
async fn metrics_scrape_cost_is_printed_and_small() {
    const SCRAPES: u32 = 2_000;
    let server = start().await;
    for _ in 0..20 {
        server.send("GET", "/api/health", None, None).await;
    }
    let started = std::time::Instant::now();
    let mut bytes = 0;
    for _ in 0..SCRAPES {
        bytes = api::metrics::render(&server.state).len();
    }
    let render_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(SCRAPES);
    let started = std::time::Instant::now();
    for _ in 0..200 {
        let reply = server
            .send("GET", "/api/metrics", None, Some(&server.admin))
            .await;
        assert_eq!(reply.status, 200);
    }
    let http_us = started.elapsed().as_secs_f64() * 1e6 / 200.0;
    println!("metrics scrape: render {render_us:.1} µs ({bytes} bytes), over HTTP {http_us:.1} µs");
    assert!(render_us < 20_000.0, "render takes {render_us} µs");
}
