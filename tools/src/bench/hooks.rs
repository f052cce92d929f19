//! JS hook scenarios of `pl-bench` (issue #18's closing benchmark), run against pocketlog's
//! QuickJS pool and the reference's goja pool alike: both servers load the same
//! [`HOOKS_FILE`] from `--hooksDir` (`pl-bench compare --hooks-dir DIR` writes it there).
//!
//! - `hooks_route_c64`: a `routerAdd` route answering JSON, 64 closed-loop clients.
//! - `hooks_create_c64`: creates in `bench_hooked`, whose `onRecordCreateRequest` hook sets a
//!   field (checked on the first answer), 64 clients.
//! - `hooks_added_p99`: creates at 16 clients in `bench_plain` (no hook) then in
//!   `bench_hooked`; reports both p99s and `added_p99_ms`, the hooked one's excess.
//! - [`vm_rss`]: the resident memory one VM of the pool adds: the idle RSS of a server with
//!   `--hooksPool` [`RSS_POOL_BIG`] minus one with a pool of 1, after every VM ran the route,
//!   divided by the difference in VMs.
//!
//! Invariant: the scenarios only use the hooks file's route and collections, so they leave the
//! other scenarios' fixtures alone.

use super::client::{run_load, Server};
use super::compare::{Target, EMAIL, PASSWORD};
use super::stats::{proc_memory_kb, round1};
use anyhow::{bail, Context, Result};
use reqwest::Method;
use serde_json::{json, Map, Value};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The hook file both servers load.
pub const HOOKS_FILE: &str = r#"// pl-bench's hooks (tools/src/bench/hooks.rs)
routerAdd("GET", "/bench/hello/{name}", (e) => {
  return e.json(200, { message: "Hello " + e.request.pathValue("name"), n: 1 })
})
onRecordCreateRequest((e) => {
  e.record.set("slug", "hooked-" + e.record.get("title"))
  return e.next()
}, "bench_hooked")
"#;

/// The file name of [`HOOKS_FILE`] in the hooks dir.
pub const HOOKS_FILE_NAME: &str = "bench.pb.js";
/// The scenarios of this file.
pub const SCENARIOS: &[&str] = &["hooks_route_c64", "hooks_create_c64", "hooks_added_p99"];
/// The larger pool of the per-VM memory measure.
pub const RSS_POOL_BIG: usize = 16;
/// Clients of the p99 comparison.
const P99_CLIENTS: usize = 16;

/// Writes [`HOOKS_FILE`] into `dir` (created when missing).
pub fn write_hooks(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join(HOOKS_FILE_NAME), HOOKS_FILE)
        .with_context(|| format!("writing the bench hooks into {}", dir.display()))
}

async fn ensure(server: &Server, name: &str) -> Result<()> {
    let (status, _) = server
        .call(
            Method::GET,
            &format!("/api/collections/{name}"),
            Some(&server.superuser_token),
            None,
        )
        .await?;
    if status == 200 {
        return Ok(());
    }
    let body = json!({"name": name, "type": "base", "listRule": "", "viewRule": "", "createRule": "",
        "fields": [{"name": "title", "type": "text"}, {"name": "slug", "type": "text"}]});
    server
        .admin(Method::POST, "/api/collections", body)
        .await
        .map(|_| ())
}

async fn creates(
    server: &Server,
    collection: &str,
    clients: usize,
    duration: Duration,
) -> Map<String, Value> {
    let s = server.clone();
    let url = s.url(&format!("/api/collections/{collection}/records"));
    run_load(server, clients, duration, move |w, i| {
        let request = s
            .http
            .post(url.as_str())
            .json(&json!({"title": format!("w{w}i{i}")}));
        let s = s.clone();
        async move { s.fire(request).await }
    })
    .await
}

/// Runs the hook scenario `name` (one of [`SCENARIOS`]).
pub async fn scenario(
    server: &Server,
    duration: Duration,
    name: &str,
) -> Result<Map<String, Value>> {
    ensure(server, "bench_hooked").await?;
    ensure(server, "bench_plain").await?;
    // The hook must be live: a create answers the field it set.
    let (status, probe) = server
        .call(
            Method::POST,
            "/api/collections/bench_hooked/records",
            None,
            Some(&json!({"title": "probe"})),
        )
        .await?;
    if status != 200 || probe["slug"] != "hooked-probe" {
        bail!("the bench hooks are not loaded (pass --hooks-dir): {status} {probe}");
    }
    Ok(match name {
        "hooks_route_c64" => {
            let s = server.clone();
            let base = s.url("/bench/hello/");
            run_load(server, 64, duration, move |w, _| {
                let request = s.http.get(format!("{base}w{w}"));
                let s = s.clone();
                async move { s.fire(request).await }
            })
            .await
        }
        "hooks_create_c64" => creates(server, "bench_hooked", 64, duration).await,
        "hooks_added_p99" => {
            let plain = creates(server, "bench_plain", P99_CLIENTS, duration).await;
            let mut hooked = creates(server, "bench_hooked", P99_CLIENTS, duration).await;
            let p99 = |m: &Map<String, Value>| m.get("p99_ms").and_then(Value::as_f64);
            if let (Some(a), Some(b)) = (p99(&plain), p99(&hooked)) {
                hooked.insert("plain_p99_ms".into(), json!(a));
                hooked.insert("added_p99_ms".into(), json!(round1(b - a)));
            }
            hooked.insert("plain_throughput".into(), plain["throughput"].clone());
            hooked
        }
        other => bail!(
            "unknown hook scenario {other:?} (known: {})",
            SCENARIOS.join(", ")
        ),
    })
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// The idle RSS (KiB) of `target` serving `hooks_dir` with a pool of `pool` VMs, after `pool`
/// concurrent clients ran the route for a moment (so every VM ran once).
async fn rss_with_pool(
    target: &Target,
    work_dir: &Path,
    hooks_dir: &Path,
    pool: usize,
) -> Result<u64> {
    let dir = work_dir.join(format!("{}-rss-{pool}", target.name));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let status = Command::new(&target.binary)
        .args(["superuser", "upsert", EMAIL, PASSWORD, "--dir"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("{} superuser upsert failed", target.binary.display());
    }
    let address = format!("127.0.0.1:{}", free_port()?);
    let mut child = Command::new(&target.binary)
        .args(["serve", "--http", &address, "--dir"])
        .arg(&dir)
        .arg("--hooksDir")
        .arg(hooks_dir)
        .args(["--hooksPool", &pool.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let pid = child.id();
    let result = async {
        let server = Server::new(&format!("http://{address}"), Some(pid))?;
        server.wait_healthy(Duration::from_secs(60)).await?;
        let s = server.clone();
        let base = s.url("/bench/hello/");
        run_load(&server, pool, Duration::from_millis(500), move |w, _| {
            let request = s.http.get(format!("{base}w{w}"));
            let s = s.clone();
            async move { s.fire(request).await }
        })
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        proc_memory_kb(pid)
            .map(|(_, rss)| rss)
            .context("reading the server's RSS")
    }
    .await;
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The RSS one hook VM adds on `target` (see the module's header): a `hooks_vm_rss` line.
pub async fn vm_rss(target: &Target, work_dir: &Path, hooks_dir: &Path) -> Result<Value> {
    let small = rss_with_pool(target, work_dir, hooks_dir, 1).await?;
    let big = rss_with_pool(target, work_dir, hooks_dir, RSS_POOL_BIG).await?;
    let per_vm = (big as f64 - small as f64) / (RSS_POOL_BIG - 1) as f64 / 1024.0;
    Ok(json!({"server": target.name, "scenario": "hooks_vm_rss",
        "rss_pool1_mb": round1(small as f64 / 1024.0),
        "rss_pool_big_mb": round1(big as f64 / 1024.0), "pool_big": RSS_POOL_BIG,
        "rss_per_vm_mb": round1(per_vm)}))
}
