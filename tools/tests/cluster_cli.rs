//! Operating a cluster node (issue #19): `pocketlog cluster status|step-down` through the
//! running node's control socket, the cluster metrics in `/api/metrics`, and a follower that
//! starts with a pending JS migration (only the leader applies migrations: the follower starts
//! and gets the leader's commits instead of failing on its read-only engine).

mod cluster_support;
mod support;

use cluster_support::{cluster_flags, try_status, wait_status, Nats};
use std::path::Path;
use std::process::Command;
use support::{create_superuser, runtime, Server};

fn cluster_cli(dir: &Path, action: &str) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_pocketlog"))
        .args(["cluster", action])
        .arg("--dir")
        .arg(dir)
        .output()
        .expect("run pocketlog cluster");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn cluster_cli_metrics_and_follower_migrations() {
    let root = tempfile::tempdir().expect("tempdir");
    let nats = Nats::start(&root.path().join("nats"));
    let url = nats.url();
    let (a, b) = (root.path().join("a"), root.path().join("b"));
    create_superuser(&a);
    runtime().block_on(async {
        let flags = cluster_flags(&url, "ops", "async");
        let mut leader = Server::start(&a, &flags).await;
        let token = leader.login().await;
        // A migration appears after the leader started: the follower starting now sees it
        // pending, leaves it to the leader and starts.
        let migrations = root.path().join("pb_migrations");
        std::fs::create_dir_all(&migrations).expect("migrations dir");
        std::fs::write(
            migrations.join("1700000000_migrated.js"),
            r#"migrate((app) => { app.save(new Collection({name: "migrated", type: "base"})) })"#,
        )
        .expect("migration");
        let mut follower = Server::start(&b, &flags).await;
        wait_status(&follower, &token, "follower", |s| s["role"] == "follower").await;
        assert!(
            follower
                .stderr()
                .contains("the leader applies the migrations"),
            "{}",
            follower.stderr()
        );
        let (status, _) = follower
            .call("GET", "/api/collections/migrated", Some(&token), None)
            .await;
        assert_eq!(status, 404, "a follower applies no migration");

        // `cluster status` on each node's data dir.
        let (ok, out, err) = cluster_cli(&a, "status");
        assert!(ok, "{err}");
        let status: serde_json::Value = serde_json::from_str(&out).expect("status JSON");
        assert_eq!(status["role"], "leader", "{out}");
        let epoch = status["epoch"].as_u64().expect("epoch");
        let (ok, out, err) = cluster_cli(&b, "status");
        assert!(ok, "{err}");
        assert!(out.contains("\"follower\""), "{out}");

        // Metrics.
        let response = leader
            .http
            .get(leader.url("/api/metrics"))
            .header("Authorization", &token)
            .send()
            .await
            .expect("metrics");
        let text = response.text().await.expect("text");
        assert!(
            text.contains("pocketlog_cluster_role{role=\"leader\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(&format!("pocketlog_cluster_epoch {epoch}")),
            "{text}"
        );
        assert!(text.contains("pocketlog_cluster_lag_positions "), "{text}");

        // `cluster step-down`: refused on a follower; on the leader, the follower takes over.
        let (ok, _, err) = cluster_cli(&b, "step-down");
        assert!(!ok);
        assert!(err.contains("not the cluster's leader"), "{err}");
        let (ok, out, err) = cluster_cli(&a, "step-down");
        assert!(ok, "{err}");
        assert!(out.contains("step down"), "{out}");
        let status = wait_status(&follower, &token, "takeover", |s| s["role"] == "leader").await;
        assert!(status["epoch"].as_u64().expect("epoch") > epoch, "{status}");
        wait_status(&leader, &token, "deposed", |s| s["role"] == "follower").await;
        assert!(try_status(&leader, &token).await.is_some());

        // Without a server on the data dir there is nothing to ask.
        follower.terminate();
        leader.terminate();
        let (ok, _, err) = cluster_cli(&a, "status");
        assert!(!ok);
        assert!(err.contains("control socket"), "{err}");
    });
    drop(nats);
}
