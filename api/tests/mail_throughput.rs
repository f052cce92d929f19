//! Mail throughput and the latency cost of sending a mail, measured through the HTTP API with a
//! real SMTP sink: the same `request-otp` (stores a hashed code, then mails it) first with SMTP
//! off (the mail is only logged) and then with SMTP on (the mail is queued and delivered).
//! Prints the mails/s the sink received and both p50/p99; asserts that every mail arrives and
//! that the mailing request's p99 stays within [`P99_FACTOR_MAX`] of the other's plus 50 ms
//! (requests never wait for SMTP).
//! `MAIL_BENCH_REQUESTS` sets the number of requests of each kind (default 100).

#![allow(clippy::unwrap_used)]

mod common;
mod mail_support;

use mail_support::Sink;
use serde_json::json;
use std::time::{Duration, Instant};

/// The mailing request's p99 may be at most this many times the other's (plus 50 ms).
const P99_FACTOR_MAX: f64 = 4.0;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_throughput_and_the_latency_of_a_mailing_request() {
    let requests: usize = std::env::var("MAIL_BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let sink = Sink::start();
    let server = common::start().await;
    server
        .json(
            "PATCH",
            "/api/collections/users",
            json!({"otp": {"enabled": true}}),
            Some(&server.admin),
            200,
        )
        .await;
    // A record holds at most OTP_CODES_PER_RECORD_MAX codes (as the reference): the two
    // rounds rotate over enough users to stay within it.
    let users = (2 * requests).div_ceil(api::auth::otp::OTP_CODES_PER_RECORD_MAX);
    let emails: Vec<String> = (0..users)
        .map(|i| format!("bench{i}@example.com"))
        .collect();
    for email in &emails {
        server.user(email, "benchpass123").await;
    }

    let timed = || {
        let (server, emails) = (&server, &emails);
        async move {
            let mut out = Vec::with_capacity(requests);
            for index in 0..requests {
                let email = &emails[index % emails.len()];
                let start = Instant::now();
                let reply = server
                    .send(
                        "POST",
                        "/api/collections/users/request-otp",
                        Some(&json!({ "email": email }).to_string()),
                        None,
                    )
                    .await;
                out.push(start.elapsed());
                assert_eq!(reply.status, 200, "{}", reply.text);
            }
            out.sort();
            out
        }
    };
    let without = timed().await;
    server
        .json(
            "PATCH",
            "/api/settings",
            json!({"smtp": {"enabled": true, "host": "127.0.0.1", "port": sink.port}}),
            Some(&server.admin),
            200,
        )
        .await;
    let started = Instant::now();
    let with = timed().await;
    sink.wait_for(requests).await;
    let elapsed = started.elapsed();
    let rate = requests as f64 / elapsed.as_secs_f64();
    let (p50_with, p99_with) = (percentile(&with, 0.5), percentile(&with, 0.99));
    let (p50_without, p99_without) = (percentile(&without, 0.5), percentile(&without, 0.99));
    println!(
        "mail bench: {requests} mails delivered in {elapsed:?} ({rate:.1} mails/s, requests sequential); \
         request-otp with mail p50 {p50_with:?} p99 {p99_with:?}; without mail p50 {p50_without:?} p99 {p99_without:?}"
    );
    assert!(
        p99_with.as_secs_f64() <= p99_without.as_secs_f64() * P99_FACTOR_MAX + 0.050,
        "a mailing request waited: p99 {p99_with:?} vs {p99_without:?}"
    );
}
