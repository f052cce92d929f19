//! Compare mode: start pocketlog and the reference on fresh data dirs, alternately (A B B A …),
//! each pinned to one core with `taskset`, run every scenario against each, and print a table
//! of ratios (medians over the rounds).

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
    if scenario == "idle_memory" {
        ("server_vmrss_mb", false)
    } else {
        ("throughput", true)
    }
}

fn print_table(plan: &Plan, results: &[Value]) {
    let (a, b) = (&plan.targets[0].name, &plan.targets[1].name);
    let mut by: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for value in results {
        let scenario = value["scenario"].as_str().unwrap_or_default().to_string();
        let (key, _) = metric(&scenario);
        if let Some(x) = value[key].as_f64() {
            if !order.contains(&scenario) {
                order.push(scenario.clone());
            }
            by.entry((
                scenario,
                value["server"].as_str().unwrap_or_default().to_string(),
            ))
            .or_default()
            .push(x);
        }
    }
    println!();
    println!("| scenario | metric | {a} | {b} | {a} / {b} |");
    println!("|---|---|---:|---:|---:|");
    for scenario in order {
        let (key, higher_better) = metric(&scenario);
        let get = |server: &String| {
            by.get(&(scenario.clone(), server.clone()))
                .cloned()
                .and_then(median)
        };
        let (x, y) = (get(a), get(b));
        let ratio = match (x, y) {
            (Some(x), Some(y)) if y > 0.0 => format!("{:.2}×", x / y),
            _ => "–".into(),
        };
        let show = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "–".into());
        let unit = if higher_better {
            format!("{key} (/s)")
        } else {
            format!("{key} (lower is better)")
        };
        println!(
            "| {scenario} | {unit} | {} | {} | {ratio} |",
            show(x),
            show(y)
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
