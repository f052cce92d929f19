//! `pl-bench`: HTTP load generator for pocketlog and PocketBase (public API only).
//!
//! `pl-bench run --url URL --email E --password P [--pid PID]` sets up its schema as the
//! superuser and prints one JSON line per scenario. `pl-bench compare --reference BIN` starts
//! pocketlog and the reference on fresh data dirs, alternately (A B B A), pins each server to
//! one core and the generator to another (`taskset`), and prints a table of ratios.
//!
//! Exit codes: 0 success, 1 failure (with one clear error line).

#[path = "../bench/mod.rs"]
mod bench;

use anyhow::{Context, Result};
use bench::scenarios::{self, Options};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "pl-bench",
    version,
    about = "HTTP load generator for pocketlog / PocketBase"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug, Clone)]
struct Common {
    /// Seconds per load scenario.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Records in the list collection.
    #[arg(long, default_value_t = 100_000)]
    records: usize,
    /// Scenarios to run (comma separated); default the realistic set:
    /// create_c64,create_auth_c64,view_auth_c64,view_auth_3k_c64,list_auth_c64,
    /// list_expand_auth_c64,auth_c16,realtime_paced,realtime_burst. Best-case extras, run only
    /// when named: create_c1,view_c64,list_c64,list_expand_c64 (guests on 2,000 small records).
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,
    /// Turn the server's request logs off first (a best case; the default keeps stock settings).
    #[arg(long)]
    logs_off: bool,
    /// Realtime subscriber counts (comma separated), e.g. 1000,10000 (raise `ulimit -n`).
    #[arg(long, value_delimiter = ',', default_value = "1000")]
    subscribers: Vec<usize>,
    /// Concurrent writers during the realtime burst.
    #[arg(long, default_value_t = 16)]
    rt_writers: usize,
    /// Records created during the realtime burst.
    #[arg(long, default_value_t = 2000)]
    rt_events: u64,
    /// Seconds to wait for complete delivery after the last realtime create.
    #[arg(long, default_value_t = 60.0)]
    rt_drain: f64,
    /// Pace the realtime burst's creates at this many per second in total (0 = as fast as the
    /// writers go). `realtime_paced` always runs one writer at 25 creates/s.
    #[arg(long, default_value_t = 0.0)]
    rt_rate: f64,
    /// Tokio worker threads of the generator.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the scenarios against a running server.
    Run {
        /// Base URL of the server.
        #[arg(long, default_value = "http://127.0.0.1:8090")]
        url: String,
        /// Superuser email.
        #[arg(long)]
        email: String,
        /// Superuser password.
        #[arg(long)]
        password: String,
        /// The server's pid (for VmHWM/VmRSS readings).
        #[arg(long)]
        pid: Option<u32>,
        #[command(flatten)]
        common: Common,
    },
    /// Starts pocketlog and the reference alternately and prints a ratio table.
    Compare {
        /// The reference PocketBase binary.
        #[arg(long, default_value = "/tmp/pocketbase")]
        reference: PathBuf,
        /// The pocketlog binary (default: next to pl-bench).
        #[arg(long)]
        pocketlog: Option<PathBuf>,
        /// pocketlog's `--sync` policy.
        #[arg(long, default_value = "always")]
        sync: String,
        /// Rounds, alternating A B B A A B (6 = each server three times).
        #[arg(long, default_value_t = 6)]
        rounds: usize,
        /// CPU list for the servers (`taskset -c`); empty = no pinning.
        #[arg(long, default_value = "0")]
        server_cpu: String,
        /// CPU list for the generator; empty = no pinning.
        #[arg(long, default_value = "1")]
        client_cpu: String,
        /// Where the fresh data dirs go.
        #[arg(long, default_value = "/tmp/pl-bench")]
        work_dir: PathBuf,
        /// Writes the bench's JS hooks into DIR and serves both servers with `--hooksDir DIR`
        /// (for the `hooks_*` scenarios; also measures the RSS per hook VM).
        #[arg(long)]
        hooks_dir: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
}

fn options(common: &Common) -> (Options, Vec<String>) {
    let names = if common.scenarios.is_empty() {
        scenarios::ALL.iter().map(|s| s.to_string()).collect()
    } else {
        common.scenarios.clone()
    };
    (
        Options {
            duration: Duration::from_secs_f64(common.duration),
            records: common.records,
            subscribers: common.subscribers.clone(),
            rt_writers: common.rt_writers,
            rt_events: common.rt_events,
            rt_drain: Duration::from_secs_f64(common.rt_drain),
            rt_rate: common.rt_rate,
            logs_off: common.logs_off,
        },
        names,
    )
}

fn runtime(threads: usize) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            url,
            email,
            password,
            pid,
            common,
        } => run(url, email, password, pid, common),
        Command::Compare {
            reference,
            pocketlog,
            sync,
            rounds,
            server_cpu,
            client_cpu,
            work_dir,
            hooks_dir,
            common,
        } => compare(
            reference, pocketlog, sync, rounds, server_cpu, client_cpu, work_dir, hooks_dir, common,
        ),
    };
    if let Err(err) = result {
        eprintln!("Error: {err:#}");
        std::process::exit(1);
    }
}

fn run(
    url: String,
    email: String,
    password: String,
    pid: Option<u32>,
    common: Common,
) -> Result<()> {
    let (options, names) = options(&common);
    runtime(common.threads)?.block_on(async move {
        let mut server = bench::client::Server::new(&url, pid)?;
        server.wait_healthy(Duration::from_secs(10)).await?;
        if let Some((hwm, rss)) = pid.and_then(bench::stats::proc_memory_kb) {
            println!(
                "{}",
                serde_json::json!({"server": url, "scenario": "memory_before",
                "server_vmrss_mb": bench::stats::round1(rss as f64 / 1024.0),
                "server_vmhwm_mb": bench::stats::round1(hwm as f64 / 1024.0)})
            );
        }
        server.login_superuser(&email, &password).await?;
        let fixture = scenarios::setup(&server, &options).await?;
        let mut emit = |value: serde_json::Value| println!("{value}");
        scenarios::run(&server, &url, &fixture, &options, &names, &mut emit).await
    })
}

#[allow(clippy::too_many_arguments)]
fn compare(
    reference: PathBuf,
    pocketlog: Option<PathBuf>,
    sync: String,
    rounds: usize,
    server_cpu: String,
    client_cpu: String,
    work_dir: PathBuf,
    hooks_dir: Option<PathBuf>,
    common: Common,
) -> Result<()> {
    if !reference.exists() {
        anyhow::bail!(
            "the reference binary {} is missing (get it with get-pocketbase.sh)",
            reference.display()
        );
    }
    let pocketlog = pocketlog.unwrap_or_else(|| bench::compare::sibling("pocketlog"));
    if !client_cpu.is_empty() {
        bench::compare::pin_self(&client_cpu)?;
    }
    let (options, scenarios) = options(&common);
    let hooks_args = match &hooks_dir {
        Some(dir) => {
            bench::hooks::write_hooks(dir)?;
            vec!["--hooksDir".to_string(), dir.display().to_string()]
        }
        None => Vec::new(),
    };
    let plan = bench::compare::Plan {
        targets: [
            bench::compare::Target {
                name: "pocketlog".into(),
                binary: pocketlog,
                extra_args: [vec!["--sync".into(), sync], hooks_args.clone()].concat(),
            },
            bench::compare::Target {
                name: "reference".into(),
                binary: reference,
                extra_args: hooks_args,
            },
        ],
        rounds,
        server_cpu: (!server_cpu.is_empty()).then_some(server_cpu),
        work_dir,
        options,
        scenarios,
        hooks_dir,
    };
    runtime(common.threads)?.block_on(bench::compare::compare(plan))
}
