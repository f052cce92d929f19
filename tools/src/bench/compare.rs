//! Compare mode: start pocketlog and the reference on fresh data dirs, alternately (A B B A …),
//! each pinned to one core with `taskset`, run every scenario against each, and print a table:
//! per server the min, median and max of each scenario's metric over the rounds, the ratio of
//! the medians, and the server CPU per request (median). Both servers keep their stock
//! settings (pocketlog's `--sync` is the only flag passed).

use super::client::Server;
use super::scenarios::{self, Options};
use super::stats::{proc_memory_kb, round1};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const EMAIL: &str = "bench@example.com";
pub const PASSWORD: &str = "benchpass123";

/// One server binary under comparison.
#[derive(Clone, Debug)]
pub struct Target {
    pub name: String,
    pub binary: PathBuf,
    pub extra_args: Vec<String>,
}

pub struct Plan {
    pub targets: [Target; 2],
    pub rounds: usize,
    pub server_cpu: Option<String>,
    pub work_dir: PathBuf,
    pub options: Options,
    pub scenarios: Vec<String>,
    /// `--hooks-dir`: the bench hooks dir both servers load (then `hooks_vm_rss` is measured).
    pub hooks_dir: Option<PathBuf>,
}

struct Running {
    child: Child,
    dir: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

fn start(target: &Target, plan: &Plan, round: usize) -> Result<(Running, String)> {
    let dir = plan.work_dir.join(format!("{}-{round}", target.name));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let status = Command::new(&target.binary)
        .args(["superuser", "upsert", EMAIL, PASSWORD, "--dir"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .with_context(|| format!("running {} superuser upsert", target.binary.display()))?;
    if !status.success() {
        bail!("{} superuser upsert failed", target.binary.display());
    }
    let port = free_port()?;
    let address = format!("127.0.0.1:{port}");
    let mut command = match &plan.server_cpu {
        Some(cpu) => {
            let mut command = Command::new("taskset");
            command.args(["-c", cpu]).arg(&target.binary);
            command
        }
        None => Command::new(&target.binary),
    };
    command
        .args(["serve", "--http", &address, "--dir"])
        .arg(&dir)
        .args(&target.extra_args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.with_extension("log"))?);
    let child = command
        .spawn()
        .with_context(|| format!("starting {}", target.binary.display()))?;
    Ok((Running { child, dir }, format!("http://{address}")))
}

async fn one_round(
    target: &Target,
    plan: &Plan,
    round: usize,
    results: &mut Vec<Value>,
) -> Result<()> {
    let (running, base) = start(target, plan, round)?;
    let pid = running.child.id();
    let mut server = Server::new(&base, Some(pid))?;
    server.wait_healthy(Duration::from_secs(60)).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    if let Some((hwm, rss)) = proc_memory_kb(pid) {
        let value = json!({"server": target.name, "round": round, "scenario": "idle_memory",
            "server_vmrss_mb": round1(rss as f64 / 1024.0), "server_vmhwm_mb": round1(hwm as f64 / 1024.0)});
        println!("{value}");
        results.push(value);
    }
    server.login_superuser(EMAIL, PASSWORD).await?;
    let fixture = scenarios::setup(&server, &plan.options).await?;
    let mut emit = |mut value: Value| {
        value["round"] = json!(round);
        println!("{value}");
        results.push(value);
    };
    scenarios::run(
        &server,
        &target.name,
        &fixture,
        &plan.options,
        &plan.scenarios,
        &mut emit,
    )
    .await?;
    drop(running);
    Ok(())
}

/// Runs the plan; prints JSON lines as it goes and the ratio table at the end.
pub async fn compare(plan: Plan) -> Result<()> {
    std::fs::create_dir_all(&plan.work_dir)?;
    let mut results = Vec::new();
    for round in 0..plan.rounds {
        // A B B A A B B A …
        let index = [0, 1, 1, 0][round % 4];
        let target = plan.targets[index].clone();
        eprintln!("round {} of {}: {}", round + 1, plan.rounds, target.name);
        one_round(&target, &plan, round, &mut results)
            .await
            .with_context(|| format!("round {} ({})", round + 1, target.name))?;
    }
    if let Some(hooks_dir) = &plan.hooks_dir {
        for target in &plan.targets {
            let value = super::hooks::vm_rss(target, &plan.work_dir, hooks_dir).await?;
            println!("{value}");
            results.push(value);
        }
    }
    print_table(&plan, &results);
    Ok(())
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let mid = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    })
}

/// The metric compared per scenario and whether higher is better.
fn metric(scenario: &str) -> (&'static str, bool) {
    if let Some(metric) = super::files::metric(scenario) {
        metric
    } else if scenario == "idle_memory" {
        ("server_vmrss_mb", false)
    } else if scenario == "hooks_added_p99" {
        ("added_p99_ms", false)
    } else if scenario == "hooks_vm_rss" {
        ("rss_per_vm_mb", false)
    } else if scenario.starts_with("realtime_paced") {
        ("delivery_p99_ms", false)
    } else {
        ("throughput", true)
    }
}

/// `min / median / max` of a series, or `–`.
fn spread(values: &[f64]) -> String {
    let Some(mid) = median(values.to_vec()) else {
        return "–".into();
    };
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{min:.1} / **{mid:.1}** / {max:.1}")
}

fn print_table(plan: &Plan, results: &[Value]) {
    let (a, b) = (&plan.targets[0].name, &plan.targets[1].name);
    let mut by: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    let mut cpu: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    let mut peak: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for value in results {
        let scenario = value["scenario"].as_str().unwrap_or_default().to_string();
        let server = value["server"].as_str().unwrap_or_default().to_string();
        let (key, _) = metric(&scenario);
        if let Some(x) = value[key].as_f64() {
            if !order.contains(&scenario) {
                order.push(scenario.clone());
            }
            by.entry((scenario.clone(), server.clone()))
                .or_default()
                .push(x);
        }
        if let Some(x) = value["server_cpu_us_per_req"].as_f64() {
            cpu.entry((scenario.clone(), server.clone()))
                .or_default()
                .push(x);
        }
        if let Some(x) = value["server_vmhwm_mb"].as_f64() {
            peak.entry((scenario, server)).or_default().push(x);
        }
    }
    let rounds = |server: &String| {
        results
            .iter()
            .filter(|v| v["scenario"] == "idle_memory" && v["server"] == json!(server))
            .count()
    };
    println!();
    println!(
        "min / **median** / max over {} rounds of {a} and {} of {b}; ratio of the medians \
         (higher is better for {a} on every line); CPU = server CPU µs per request (median).",
        rounds(a),
        rounds(b)
    );
    println!();
    println!(
        "| scenario | metric | {a} | {b} | ratio | {a} CPU | {b} CPU | {a} peak MB | {b} peak MB |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for scenario in order {
        let (key, higher_better) = metric(&scenario);
        let get = |map: &BTreeMap<(String, String), Vec<f64>>, server: &String| {
            map.get(&(scenario.clone(), server.clone()))
                .cloned()
                .unwrap_or_default()
        };
        let (xs, ys) = (get(&by, a), get(&by, b));
        let ratio = match (median(xs.clone()), median(ys.clone())) {
            (Some(x), Some(y)) if x > 0.0 && y > 0.0 => {
                let r = if higher_better { x / y } else { y / x };
                format!("{r:.2}×")
            }
            _ => "–".into(),
        };
        let one = |values: Vec<f64>| {
            median(values)
                .map(|v| format!("{v:.1}"))
                .unwrap_or_else(|| "–".into())
        };
        let unit = if higher_better {
            format!("{key} (/s)")
        } else {
            format!("{key} (lower is better)")
        };
        println!(
            "| {scenario} | {unit} | {} | {} | {ratio} | {} | {} | {} | {} |",
            spread(&xs),
            spread(&ys),
            one(get(&cpu, a)),
            one(get(&cpu, b)),
            one(get(&peak, a)),
            one(get(&peak, b)),
        );
    }
}

/// `taskset -a -p -c CPU PID` on this process, so the generator stays off the server's core.
pub fn pin_self(cpu: &str) -> Result<()> {
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", cpu, &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status()
        .context("running taskset (util-linux)")?;
    if !status.success() {
        bail!("taskset could not pin the generator to CPU {cpu}");
    }
    Ok(())
}

/// Default path of the pocketlog binary: next to this one.
pub fn sibling(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(name)))
        .unwrap_or_else(|| Path::new(name).to_path_buf())
}
