//! `pocketlog`: the server (`serve`) and the superuser CLI, mirroring PocketBase's commands.
//!
//! Exit codes: 0 success, 1 failure (with one clear error line).
//!
//! `superuser` and `migrate` work whether or not a server runs on the data dir: offline they
//! open the engine themselves; when the data dir is locked by a running `serve`, they send the
//! operation over the server's control socket (`tools/src/control.rs`) and the server performs
//! it through the normal write path. Output and exit codes are the same either way.

use anyhow::{Context, Result};
use api::access::Auth;
use api::model::{Collection, SUPERUSERS_ID};
use api::{AppState, ServerOptions};
use clap::{Parser, Subcommand};
use engine::{Engine, EngineConfig, SyncPolicy};
use serde_json::{json, Map};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[path = "../cluster_cli.rs"]
mod cluster_cli;
#[path = "../compactor.rs"]
mod compactor;
#[path = "../control.rs"]
mod control;
#[path = "../duration.rs"]
mod duration;
#[path = "../http_server.rs"]
mod http_server;
#[path = "../cmd/import_pocketbase.rs"]
mod import_pocketbase;
#[path = "../cmd/migrate.rs"]
mod migrate;
#[path = "../service.rs"]
mod service;
#[path = "../tls.rs"]
mod tls;

#[derive(Parser)]
#[command(
    name = "pocketlog",
    version,
    about = "A PocketBase-compatible backend on an event log"
)]
struct Cli {
    /// The data directory.
    #[arg(long, global = true, default_value = "pb_data")]
    dir: PathBuf,
    /// Enable dev mode (verbose logs).
    #[arg(long, global = true)]
    dev: bool,
    #[command(flatten)]
    pocketbase: PocketBaseFlags,
    #[command(subcommand)]
    command: Command,
}

/// Parses a boolean the way Go's `strconv.ParseBool` does (PocketBase's `--flag=false`).
fn go_bool(text: &str) -> std::result::Result<bool, String> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        other => Err(format!("invalid boolean {other:?} (use true or false)")),
    }
}

/// PocketBase's global flags, accepted with the same names and defaults.
#[derive(clap::Args)]
struct PocketBaseFlags {
    /// The directory to serve static files from (PocketBase's `pb_public`, relative to the
    /// working directory like PocketBase's default).
    #[arg(long = "publicDir", global = true, default_value = "./pb_public")]
    public_dir: PathBuf,
    /// Fall back to index.html on a missing static path (SPAs with pretty URLs).
    #[arg(long = "indexFallback", global = true, default_value = "true", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", value_parser = go_bool,
          action = clap::ArgAction::Set)]
    index_fallback: bool,
    /// The default timeout of read queries, in seconds (0: none).
    #[arg(long = "queryTimeout", global = true, default_value_t = 30)]
    query_timeout: u64,
    /// The env variable whose value of 32 characters encrypts the app settings at rest
    /// (AES-256-GCM, as PocketBase; in the log and in data.db).
    #[arg(long = "encryptionEnv", global = true, value_name = "ENV")]
    encryption_env: Option<String>,
    /// The directory with the JS app hooks (default: `pb_hooks` beside the data dir).
    #[arg(long = "hooksDir", global = true, value_name = "DIR")]
    hooks_dir: Option<PathBuf>,
    /// Reload the hooks when their files change.
    #[arg(long = "hooksWatch", global = true, default_value = "true", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", value_parser = go_bool,
          action = clap::ArgAction::Set)]
    hooks_watch: bool,
    /// Prewarmed JS runtimes for hooks.
    #[arg(long = "hooksPool", global = true, default_value_t = 15)]
    hooks_pool: i64,
    /// The longest one JS hook invocation may run, in seconds (pocketlog's own flag).
    #[arg(long = "hooksTimeout", global = true, default_value_t = 30.0)]
    hooks_timeout: f64,
    /// The directory with the JS migrations (default: `pb_migrations` beside the data dir),
    /// applied at start.
    #[arg(long = "migrationsDir", global = true, value_name = "DIR")]
    migrations_dir: Option<PathBuf>,
    /// Write a JS migration for each collection change made through the API (and record it
    /// as applied).
    #[arg(long = "automigrate", global = true, default_value = "true", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", value_parser = go_bool,
          action = clap::ArgAction::Set)]
    automigrate: bool,
}

impl PocketBaseFlags {
    /// The JS migrations directory for the data dir `dir` (`--migrationsDir`, else
    /// `pb_migrations` beside the data dir).
    fn migrations_dir(&self, dir: &std::path::Path) -> PathBuf {
        self.migrations_dir
            .clone()
            .unwrap_or_else(|| dir.join("..").join("pb_migrations"))
    }

    /// The JS hooks options of `serve` for the data dir `dir`.
    fn hooks(&self, dir: &std::path::Path) -> api::hooks::HooksOptions {
        let hooks_dir = self
            .hooks_dir
            .clone()
            .unwrap_or_else(|| dir.join("..").join("pb_hooks"));
        let timeout = Duration::try_from_secs_f64(self.hooks_timeout)
            .ok()
            .filter(|t| !t.is_zero())
            .unwrap_or_else(|| {
                tracing::warn!(
                    "--hooksTimeout must be a positive number of seconds; using the default"
                );
                api::hooks::DEFAULT_TIMEOUT
            });
        api::hooks::HooksOptions {
            pool: self.hooks_pool.clamp(1, 1024) as usize,
            watch: self.hooks_watch,
            timeout,
            ..api::hooks::HooksOptions::new(hooks_dir)
        }
    }
}

impl PocketBaseFlags {
    /// `ServerOptions` with the settings key of `--encryptionEnv` (an empty variable: settings
    /// in clear, with one warning line, as PocketBase stores them then).
    fn options(&self) -> Result<ServerOptions> {
        let settings_key = match &self.encryption_env {
            Some(env) => {
                let key = api::settings::encrypt::SettingsKey::from_env(env)?;
                if key.is_none() {
                    tracing::warn!(
                        "--encryptionEnv={env}: ${env} is empty; settings are stored unencrypted"
                    );
                }
                key
            }
            None => None,
        };
        Ok(ServerOptions {
            settings_key,
            encryption_env: self.encryption_env.clone(),
            ..ServerOptions::default()
        })
    }
}

#[derive(Subcommand)]
#[allow(
    clippy::large_enum_variant,
    reason = "parsed once at start; `serve` carries its flags"
)]
enum Command {
    /// Starts the web server (default to 127.0.0.1:8090 if no domain is specified).
    Serve {
        /// Domain names for automatic TLS (Let's Encrypt); with domains, --http defaults to
        /// 0.0.0.0:80 and --https to 0.0.0.0:443, as in PocketBase.
        #[arg(value_name = "DOMAIN")]
        domains: Vec<String>,
        /// TCP address to listen on (default 127.0.0.1:8090, or 0.0.0.0:80 with domains). With
        /// HTTPS on, it redirects to HTTPS.
        #[arg(long)]
        http: Option<String>,
        /// TCP address for HTTPS (default 0.0.0.0:443 with domains, else none). The
        /// certificate comes from ACME for the domains, or from --tlsCert/--tlsKey.
        #[arg(long)]
        https: Option<String>,
        #[command(flatten)]
        tls: TlsFlags,
        /// CORS allowed origins (comma separated).
        #[arg(long, value_delimiter = ',', default_value = "*")]
        origins: Vec<String>,
        /// fsync policy for the log: `always` (durable, default) or `none`.
        #[arg(long, default_value = "always")]
        sync: String,
        /// Seconds a connection may take, in total, to send a request head after it was
        /// accepted or its previous response was sent (slowloris guard; also the idle
        /// keep-alive limit).
        #[arg(long, default_value_t = 30.0)]
        header_timeout: f64,
        /// Seconds from a complete request head until the response must have started (a total
        /// bound on slow request bodies); 408 and `Connection: close` after.
        #[arg(long, default_value_t = 600.0)]
        request_timeout: f64,
        /// Writes the writer queue holds before clients get 503.
        #[arg(long, default_value_t = 8192)]
        writer_queue: usize,
        #[command(flatten)]
        maintenance: Maintenance,
        #[command(flatten)]
        cluster: ClusterFlags,
    },
    /// Imports a PocketBase data dir (collections, records, settings, superusers) into a new
    /// pocketlog data dir (`--dir`), as ordinary log commits.
    ImportPocketbase {
        /// The PocketBase data dir, or a PocketBase backup zip, to import (only read, never
        /// modified).
        #[arg(long)]
        from: PathBuf,
    },
    /// Writes a hardened systemd unit that runs `pocketlog serve` on --dir, and prints the
    /// systemctl commands that enable it.
    InstallService {
        /// Domain names for automatic TLS (passed to `serve`).
        #[arg(value_name = "DOMAIN")]
        domains: Vec<String>,
        /// The account the service runs as (default: root).
        #[arg(long)]
        user: Option<String>,
        /// The HTTP address (passed to `serve`; its default applies when not given).
        #[arg(long)]
        http: Option<String>,
        /// The HTTPS address (passed to `serve`).
        #[arg(long)]
        https: Option<String>,
        /// The unit name.
        #[arg(long, default_value = "pocketlog")]
        name: String,
        /// Where to write the unit (`-`: print it); default /etc/systemd/system/NAME.service.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Executes app DB migration scripts: up, down [n], create NAME, collections,
    /// history-sync.
    Migrate {
        /// The subcommand and its arguments (default: up).
        #[arg(value_name = "ARGS")]
        args: Vec<String>,
    },
    /// Manages superusers.
    Superuser {
        #[command(subcommand)]
        action: SuperuserAction,
    },
    /// Operates the cluster node running on --dir (through its control socket).
    Cluster {
        #[command(subcommand)]
        action: cluster_cli::ClusterAction,
    },
}

/// Where the HTTPS certificate comes from (with `--https` or domains).
#[derive(clap::Args)]
struct TlsFlags {
    /// PEM certificate chain for --https instead of ACME (pocketlog extension).
    #[arg(long = "tlsCert", value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tlsCert.
    #[arg(long = "tlsKey", value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// ACME directory URL (default: Let's Encrypt production).
    #[arg(long = "acmeDirectory", value_name = "URL", hide = true)]
    acme_directory: Option<String>,
    /// PEM file of the CA that signs the ACME directory's HTTPS certificate (tests).
    #[arg(long = "acmeCA", value_name = "FILE", hide = true)]
    acme_ca: Option<PathBuf>,
    /// Contact e-mail for the ACME account (optional, as in PocketBase).
    #[arg(long = "acmeEmail", value_name = "EMAIL")]
    acme_email: Option<String>,
}

/// The listeners of `serve`: plain HTTP, and HTTPS with its certificate source.
struct Listen {
    http: String,
    https: Option<(String, tls::Source)>,
}

/// PocketBase's listener defaults: with domains `--http 0.0.0.0:80` and `--https
/// 0.0.0.0:443`; without, `--http 127.0.0.1:8090` and no HTTPS. With `--https` and no domain
/// and no certificate files, a host name in the `--https` address is the ACME domain.
fn listen_addresses(
    http: Option<String>,
    https: Option<String>,
    domains: Vec<String>,
    flags: TlsFlags,
) -> Result<Listen> {
    let with_domains = !domains.is_empty();
    let http = http.unwrap_or_else(|| {
        if with_domains {
            "0.0.0.0:80"
        } else {
            "127.0.0.1:8090"
        }
        .to_string()
    });
    let https = https.or_else(|| with_domains.then(|| "0.0.0.0:443".to_string()));
    let Some(https) = https else {
        anyhow::ensure!(
            flags.tls_cert.is_none(),
            "--tlsCert/--tlsKey need --https ADDRESS (or domain arguments)"
        );
        return Ok(Listen { http, https: None });
    };
    let source = match (flags.tls_cert, flags.tls_key) {
        (Some(cert), Some(key)) => tls::Source::Files { cert, key },
        _ => {
            let mut domains = domains;
            if domains.is_empty() {
                let host = https
                    .rsplit_once(':')
                    .map_or(https.as_str(), |(host, _)| host);
                if !host.is_empty() && host.parse::<std::net::IpAddr>().is_err() {
                    domains.push(host.to_string());
                }
            }
            tls::Source::Acme {
                domains,
                directory: flags
                    .acme_directory
                    .unwrap_or_else(|| tls::LETS_ENCRYPT_DIRECTORY.to_string()),
                directory_ca: flags.acme_ca,
                contact: flags
                    .acme_email
                    .map(|email| vec![format!("mailto:{email}")])
                    .unwrap_or_default(),
            }
        }
    };
    Ok(Listen {
        http,
        https: Some((https, source)),
    })
}

/// Replication through NATS JetStream (`api/src/cluster/`); none of it runs without `--cluster`.
#[derive(clap::Args)]
struct ClusterFlags {
    /// Join a cluster: the NATS server URLs (comma separated, e.g. nats://127.0.0.1:4222).
    #[arg(long, value_name = "URLS", value_delimiter = ',')]
    cluster: Vec<String>,
    /// The cluster's name (names its JetStream stream and lease bucket).
    #[arg(long, value_name = "NAME", default_value = "pocketlog")]
    cluster_name: String,
    /// `async`: answer writes after the local fsync and ship them after; `sync`: answer only
    /// once the cluster's stream acknowledged them too.
    #[arg(long, value_name = "MODE", default_value = "async")]
    replicate: String,
    /// This node's HTTP base URL as the other nodes reach it (default: http://<--http>).
    #[arg(long, value_name = "URL")]
    cluster_advertise: Option<String>,
    /// This node's id in the cluster (default: the advertised address).
    #[arg(long, value_name = "ID")]
    cluster_node: Option<String>,
    /// Replicas of the stream in the NATS cluster (1 for a single NATS server, 3 for three).
    #[arg(long, value_name = "N", default_value_t = 1)]
    cluster_replicas: usize,
    /// Seconds to try reaching NATS at start.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    cluster_connect_timeout: f64,
}

impl ClusterFlags {
    /// The cluster settings, or None when `--cluster` is not given.
    fn config(&self, http: &str) -> Result<Option<api::cluster::ClusterConfig>> {
        if self.cluster.is_empty() {
            return Ok(None);
        }
        api::cluster::check_name(&self.cluster_name).map_err(|err| anyhow::anyhow!(err))?;
        let replicate = self
            .replicate
            .parse()
            .map_err(|err: String| anyhow::anyhow!("--replicate: {err}"))?;
        let advertise = self
            .cluster_advertise
            .clone()
            .unwrap_or_else(|| format!("http://{http}"));
        Ok(Some(api::cluster::ClusterConfig {
            urls: self.cluster.clone(),
            name: self.cluster_name.clone(),
            replicate,
            node_id: self
                .cluster_node
                .clone()
                .unwrap_or_else(|| advertise.clone()),
            advertise,
            stream_replicas: self.cluster_replicas.max(1),
            connect_timeout: Duration::try_from_secs_f64(self.cluster_connect_timeout)
                .ok()
                .filter(|timeout| !timeout.is_zero())
                .context("--cluster-connect-timeout must be a positive number of seconds")?,
        }))
    }
}

/// Background maintenance while serving: compaction and snapshots.
#[derive(clap::Args)]
struct Maintenance {
    /// Compact automatically, keeping this much history (e.g. 30d, 12h, 90m); older whole
    /// log segments are removed (see `pb-tools compact`).
    #[arg(
        long,
        value_name = "DURATION",
        conflicts_with = "compact_retain_commits"
    )]
    compact_retain: Option<String>,
    /// Compact automatically, keeping at least the last N commits.
    #[arg(long, value_name = "N")]
    compact_retain_commits: Option<u64>,
    /// Seconds between automatic compactions.
    #[arg(long, value_name = "SECS", default_value_t = 3600.0)]
    compact_interval: f64,
    /// Snapshot the projection in the background every N commits (faster restores and
    /// restarts).
    #[arg(long, value_name = "N")]
    snapshot_every_commits: Option<u64>,
    /// Snapshot the projection in the background every SECS seconds when there were commits.
    #[arg(long, value_name = "SECS")]
    snapshot_every: Option<f64>,
    /// Seconds between background scrubs of data.db against the log (0: off; default 6 h).
    /// An interval a cron expression states exactly (e.g. 6 h) runs as the `__plScrub__` cron
    /// job (listed by /api/crons).
    #[arg(long, value_name = "SECS", default_value_t = 21600)]
    scrub_every: u64,
    /// Log segment size in bytes at which the log rolls (tests).
    #[arg(long, hide = true)]
    segment_bytes: Option<u64>,
}

impl Maintenance {
    /// The compaction policy, if any (`--compact-retain` is parsed here).
    fn retain(&self) -> Result<Option<compactor::Retain>> {
        Ok(match (&self.compact_retain, self.compact_retain_commits) {
            (Some(text), _) => Some(compactor::Retain::Window(
                duration::parse_duration_ms(text).context("--compact-retain")?,
            )),
            (None, Some(count)) => Some(compactor::Retain::Commits(count)),
            (None, None) => None,
        })
    }

    fn interval(&self) -> Result<Duration> {
        Duration::try_from_secs_f64(self.compact_interval)
            .ok()
            .filter(|interval| !interval.is_zero())
            .context("--compact-interval must be a positive number of seconds")
    }

    fn apply(&self, config: &mut EngineConfig) -> Result<()> {
        config.snapshot_every_commits = self.snapshot_every_commits;
        if let Some(secs) = self.snapshot_every {
            let every = Duration::try_from_secs_f64(secs)
                .ok()
                .filter(|every| !every.is_zero())
                .context("--snapshot-every must be a positive number of seconds")?;
            config.snapshot_every_ms = Some(every.as_millis().max(1) as u64);
        }
        if let Some(bytes) = self.segment_bytes {
            config.segment_bytes_max = bytes.max(1);
        }
        config.scrub_every_ms =
            (self.scrub_every > 0).then(|| self.scrub_every.saturating_mul(1000));
        Ok(())
    }
}

#[derive(Subcommand, serde::Serialize, serde::Deserialize)]
enum SuperuserAction {
    /// Creates a superuser, or updates its password when it exists.
    Upsert { email: String, password: String },
    /// Creates a new superuser.
    Create { email: String, password: String },
    /// Changes the password of an existing superuser.
    Update { email: String, password: String },
    /// Deletes a superuser.
    Delete { email: String },
    /// Sets the superuser IP allow-list (IPs or CIDR subnets); no argument clears it.
    Ips { ips: Vec<String> },
    /// Creates a new OTP for the specified superuser.
    Otp { email: String },
}

fn open(
    dir: &std::path::Path,
    config: EngineConfig,
    options: ServerOptions,
) -> Result<Arc<AppState>> {
    let opened = Engine::open(dir, config).map_err(|err| anyhow::anyhow!("{err}"))?;
    state_of(opened, options)
}

/// The app state over an opened engine.
fn state_of(
    (engine, report): (Engine, engine::RecoveryReport),
    options: ServerOptions,
) -> Result<Arc<AppState>> {
    if let Some(torn) = &report.torn_tail {
        tracing::warn!(segment = %torn.segment.display(), offset = torn.offset, "recovered a torn log tail");
    }
    let state = AppState::new(engine, options)?;
    // After any restore: revoke every token issued before it (ARCHITECTURE.md, "Restores").
    if let Some(count) = api::backups::finish_restore(&state)? {
        eprintln!("Restored data dir: rotated the token secrets of {count} auth collections");
    }
    Ok(state)
}

/// Makes glibc return big blocks to the OS when they are freed.
///
/// Each argon2id hash allocates 19 MiB. glibc's default mmap threshold is dynamic: after the
/// first such block is freed it rises to 19 MiB, so later blocks come from per-thread arenas
/// and stay resident (observed: ~400 MB RSS after signing up 64 users, 1.1 GB after 16
/// concurrent logins). A fixed 1 MiB threshold keeps them mmapped, so RSS falls back after
/// every hash.
#[allow(unsafe_code)] // the one `mallopt` call below, see its SAFETY comment
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

fn main() {
    tune_allocator();
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    let level = if cli.dev { "debug" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Serve {
            domains,
            http,
            https,
            tls,
            origins,
            sync,
            header_timeout,
            request_timeout,
            writer_queue,
            maintenance,
            cluster,
        } => {
            let base = cli.pocketbase.options();
            listen_addresses(http, https, domains, tls).and_then(|listen| {
                serve(
                    &cli.dir,
                    listen,
                    ServerOptions {
                        settings_key: base?.settings_key,
                        encryption_env: cli.pocketbase.encryption_env.clone(),
                        origins,
                        public_dir: Some(cli.pocketbase.public_dir.clone()),
                        index_fallback: cli.pocketbase.index_fallback,
                        query_timeout: (cli.pocketbase.query_timeout > 0)
                            .then(|| Duration::from_secs(cli.pocketbase.query_timeout)),
                        metrics_token: std::env::var(api::metrics::METRICS_TOKEN_ENV)
                            .ok()
                            .filter(|token| !token.is_empty()),
                        automigrate_dir: cli
                            .pocketbase
                            .automigrate
                            .then(|| cli.pocketbase.migrations_dir(&cli.dir)),
                        ..ServerOptions::default()
                    },
                    &sync,
                    ServeTuning {
                        limits: http_server::Limits {
                            header_timeout: Duration::from_secs_f64(header_timeout),
                            request_timeout: Duration::from_secs_f64(request_timeout),
                            drain: Duration::from_secs(30),
                        },
                        writer_queue,
                        maintenance,
                        cluster,
                        hooks: cli.pocketbase.hooks(&cli.dir),
                        migrations_dir: cli.pocketbase.migrations_dir(&cli.dir),
                    },
                )
            })
        }
        Command::InstallService {
            domains,
            user,
            http,
            https,
            name,
            output,
        } => install_service(
            &cli.dir,
            InstallService {
                domains,
                user,
                http,
                https,
                name,
                output,
            },
            &cli.pocketbase,
        ),
        Command::Migrate { args } => cli.pocketbase.options().and_then(|options| {
            run_migrate(
                &cli.dir,
                &cli.pocketbase.migrations_dir(&cli.dir),
                &args,
                options,
            )
        }),
        Command::Cluster { action } => cluster_via_server(&cli.dir, action),
        Command::Superuser { action } => cli
            .pocketbase
            .options()
            .and_then(|options| superuser(&cli.dir, action, options)),
        Command::ImportPocketbase { from } => cli
            .pocketbase
            .options()
            .and_then(|options| import_pocketbase::run(&from, &cli.dir, options))
            .map(drop),
    };
    if let Err(err) = result {
        eprintln!("Error: {err:#}");
        std::process::exit(1);
    }
}

/// `install-service`'s arguments.
struct InstallService {
    domains: Vec<String>,
    user: Option<String>,
    http: Option<String>,
    https: Option<String>,
    name: String,
    output: Option<PathBuf>,
}

/// Writes the systemd unit (see `service.rs`) and prints what to run next.
fn install_service(
    dir: &std::path::Path,
    args: InstallService,
    flags: &PocketBaseFlags,
) -> Result<()> {
    let absolute = |path: &std::path::Path| -> Result<PathBuf> {
        Ok(if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir()
                .context("the working directory")?
                .join(path)
        })
    };
    let mut serve_args = Vec::new();
    for (flag, value) in [("--http", &args.http), ("--https", &args.https)] {
        if let Some(value) = value {
            serve_args.push(flag.to_string());
            serve_args.push(value.clone());
        }
    }
    if let Some(env) = &flags.encryption_env {
        serve_args.push("--encryptionEnv".to_string());
        serve_args.push(env.clone());
    }
    let public = absolute(&flags.public_dir)?;
    serve_args.push(format!("--publicDir={}", public.display()));
    serve_args.extend(args.domains.iter().cloned());
    let spec = service::Spec {
        name: args.name.clone(),
        user: args.user,
        exe: std::env::current_exe().context("cannot find the pocketlog binary")?,
        dir: absolute(dir)?,
        serve_args,
        encryption_env: flags.encryption_env.clone(),
    };
    let text = service::unit(&spec);
    let path = args
        .output
        .unwrap_or_else(|| PathBuf::from(service::UNIT_DIR).join(format!("{}.service", args.name)));
    if path == std::path::Path::new("-") {
        print!("{text}");
        return Ok(());
    }
    std::fs::write(&path, text)
        .with_context(|| format!("cannot write {} (run as root?)", path.display()))?;
    print!("{}", service::next_steps(&spec, &path));
    Ok(())
}

/// When the `__plSnapshot__` cron job runs (while compacting).
const SNAPSHOT_CRON: &str = "0 3 * * *";

/// `serve` knobs beyond the PocketBase-compatible flags.
struct ServeTuning {
    limits: http_server::Limits,
    writer_queue: usize,
    maintenance: Maintenance,
    cluster: ClusterFlags,
    hooks: api::hooks::HooksOptions,
    migrations_dir: PathBuf,
}

fn serve(
    dir: &std::path::Path,
    listen: Listen,
    options: ServerOptions,
    sync: &str,
    tuning: ServeTuning,
) -> Result<()> {
    if let Some(hint) = import_pocketbase::serve_hint(dir) {
        anyhow::bail!(hint);
    }
    let sync: SyncPolicy = sync.parse().map_err(|err: String| anyhow::anyhow!(err))?;
    let mut config = EngineConfig {
        sync,
        queue_capacity: tuning.writer_queue,
        ..EngineConfig::default()
    };
    tuning.maintenance.apply(&mut config)?;
    let mut options = options;
    // A scrub interval that a cron expression states exactly is run by the cron scheduler
    // (`__plScrub__`, listed and runnable through /api/crons); any other stays the engine's.
    options.scrub_cron = api::crons::every(tuning.maintenance.scrub_every);
    if options.scrub_cron.is_some() {
        config.scrub_every_ms = None;
    }
    // A daily snapshot only when compacting (compaction is what removes old snapshots).
    let retain = tuning.maintenance.retain()?;
    options.snapshot_cron = retain.is_some().then(|| SNAPSHOT_CRON.to_string());
    let compact_interval = tuning.maintenance.interval()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let streams = http_server::streams_runtime().context("starting the realtime runtime")?;
    let streams_handle = streams.handle().clone();
    // A restore staged through the backups API is applied before the engine opens.
    if engine::admin::apply_staged_restore(dir).map_err(|err| anyhow::anyhow!("{err}"))? {
        eprintln!("Applied a staged backup restore to {}", dir.display());
    }
    let state = match tuning.cluster.config(&listen.http)? {
        None => open(dir, config, options)?,
        Some(cluster) => {
            // The node takes its role before the app state exists: a follower first applies
            // the cluster's log, so a fresh data dir gets the leader's bootstrap commit.
            // A deposed leader's unreplicated tail is moved aside first (once), then it
            // rejoins as a follower (`api/src/cluster/mod.rs`, invariant 4).
            let mut discarded = None;
            let (opened, node) = loop {
                let opened =
                    Engine::open(dir, config.clone()).map_err(|err| anyhow::anyhow!("{err}"))?;
                let engine = opened.0.clone();
                let cluster = cluster.clone();
                let joined = runtime.block_on(async move {
                    let node = api::cluster::Cluster::connect(cluster, engine).await?;
                    let role = node.start_role().await?;
                    eprintln!("Cluster node {:?}: {role:?}", node.config().node_id);
                    anyhow::Ok(node)
                });
                let diverged = match joined {
                    Ok(node) => break (opened, node),
                    Err(err) => match err.downcast_ref::<api::cluster::Diverged>() {
                        Some(diverged) if discarded.is_none() => *diverged,
                        _ => return Err(err),
                    },
                };
                opened.0.shutdown();
                drop(opened);
                let tail = engine::admin::discard_log_tail(dir, diverged.keep)
                    .map_err(|err| anyhow::anyhow!("moving the diverged tail aside: {err}"))?;
                eprintln!(
                    "Cluster: moved this node's unreplicated positions {}..={} aside into {:?}",
                    diverged.keep + 1,
                    diverged.last,
                    tail.as_ref().map(|tail| &tail.kept_in)
                );
                discarded = Some(tail);
            };
            if let Some(Some(tail)) = discarded {
                node.set_discarded(tail);
            }
            // Realtime sessions resume on any node by adoption (`Hub::adopt`, from the
            // client's position); a per-node sessions file would bring back a session cut at
            // a position of this node's own, possibly discarded, history.
            let mut options = options;
            options.realtime.persist_sessions = false;
            let state = state_of(opened, options)?;
            let _ = state.cluster.set(node);
            state
        }
    };
    let compactor = match retain {
        Some(retain) => Some(compactor::Compactor::start(
            state.engine.clone(),
            retain,
            compact_interval,
        )?),
        None => None,
    };
    let restart = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let restart_flag = Arc::clone(&restart);
    let served = runtime.block_on(async move {
        let Listen { http, https } = listen;
        let bind = |address: String| async move {
            tokio::net::TcpListener::bind(&address)
                .await
                .with_context(|| format!("cannot listen on {address} (is the port already in use, or is it a privileged port?)"))
        };
        let plain = bind(http.clone()).await?;
        // With HTTPS: the API on the HTTPS listener, PocketBase's redirect on the plain one.
        let (listener, redirect, tls, base) = match https {
            Some((address, source)) => {
                let listener = bind(address.clone()).await?;
                let port = listener.local_addr().context("the HTTPS address")?.port();
                let acceptor = tls::Acceptor::new(source, dir)?;
                let base = format!("https://{address}");
                (listener, Some((plain, port)), Some(acceptor), base)
            }
            None => (plain, None, None, format!("http://{http}")),
        };
        let has_superuser = state
            .engine
            .read(|conn| conn.query("SELECT COUNT(*) FROM _superusers", &[]))
            .map(|rows| rows.rows.first().and_then(|r| r[0].as_i64()).unwrap_or(0) > 0)
            .unwrap_or(false);
        eprintln!("Server started at {base}");
        eprintln!("├─ REST API:  {base}/api/");
        eprintln!("└─ Dashboard: {base}/_/");
        if !has_superuser {
            // A one-time link (30 min, this process only; see api/src/installer.rs).
            eprintln!(
                "\n(!) Launch the URL below in the browser to create your first superuser account:\n\
                 {base}/_/#/pbinstall/{}\n\
                 (you can also create your first superuser by running: pocketlog superuser upsert \
                 EMAIL PASS --dir {})",
                state.installer.new_link_token(),
                dir.display()
            );
        }
        // `pocketlog superuser …` while this server runs (see control.rs).
        let control_state = Arc::clone(&state);
        let _control = control::listen(dir, move |request: ControlRequest| {
            let state = Arc::clone(&control_state);
            async move {
                match request {
                    ControlRequest::Migrate { migrate } => migrate::execute(&state, migrate).await,
                    ControlRequest::Cluster { cluster } => cluster_cli::perform(&state, cluster),
                    ControlRequest::Superuser(action) => superuser_action(&state, action).await,
                }
            }
        })
        .map_err(|err| {
            tracing::warn!(
                error = format!("{err:#}"),
                "no control socket: `pocketlog superuser` will not work while this server runs"
            )
        })
        .ok();
        if let Err(err) = api::migrations::types::write(dir) {
            tracing::warn!(error = %err, "could not write types.d.ts");
        }
        // In a cluster only the leader applies migrations (a follower gets their commits).
        let migrated = if api::cluster::follows(&state) {
            tracing::info!("cluster follower: the leader applies the migrations");
            Vec::new()
        } else {
            api::migrations::up(&state, &tuning.migrations_dir)
                .await
                .map_err(|err| anyhow::anyhow!("applying the migrations failed: {}", err.message))?
        };
        if !migrated.is_empty() {
            tracing::info!(count = migrated.len(), "applied the pending JS migrations");
        }
        api::hooks::start(&state, tuning.hooks)?;
        for event in ["onBootstrap", "onServe"] {
            if let Err(err) = api::hooks::fire(&state, event, serde_json::json!({})).await {
                tracing::error!(event, error = %err.message, "a JS hook failed");
            }
        }
        api::crons::start(Arc::clone(&state));
        api::webhooks::start(&state).await?;
        if let Some(node) = state.cluster.get() {
            node.spawn(&state);
        }
        let app = api::router(Arc::clone(&state));
        let hub = Arc::clone(&state.realtime);
        let restart_state = Arc::clone(&state);
        hub.run_on(streams_handle.clone());
        let (stop_redirect, redirect_stopped) = tokio::sync::watch::channel(false);
        let redirect_task = redirect.map(|(plain, https_port)| {
            let mut stopped = redirect_stopped;
            tokio::spawn(http_server::serve(
                plain,
                tls::redirect_router(https_port),
                tuning.limits,
                None,
                None,
                async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                },
            ))
        });
        http_server::serve(listener, app, tuning.limits, Some(streams_handle), tls, async move {
                tokio::select! {
                    () = shutdown_signal() => {},
                    // A restore was staged through the backups API.
                    () = restart_state.backups.restart_requested().notified() => {
                        restart_flag.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                }
                // Open SSE streams would otherwise keep the graceful shutdown waiting.
                hub.shutdown().await;
        })
        .await
        .context("serving")?;
        let _ = stop_redirect.send(true);
        if let Some(task) = redirect_task {
            let _ = task.await;
        }
        if let Some(compactor) = compactor {
            compactor.stop();
        }
        state.engine.shutdown();
        eprintln!("Server stopped; every acknowledged write is in the log.");
        Ok::<bool, anyhow::Error>(restart.load(std::sync::atomic::Ordering::SeqCst))
    });
    // The engine is shut down and every acknowledged write is in the log: tasks still parked
    // on the network (a NATS request, a webhook delivery, a hung client) must not hold the
    // exit, which dropping the runtimes would do for blocking tasks without a bound.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    streams.shutdown_timeout(std::time::Duration::from_secs(1));
    if served? {
        // Same PID, like PocketBase: re-exec with the same arguments. The data dir lock is
        // released by exec (close-on-exec) and the new process applies the staged restore.
        eprintln!("Restarting to apply the staged restore");
        return reexec();
    }
    Ok(())
}

#[cfg(unix)]
fn reexec() -> Result<()> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().context("cannot find the current executable")?;
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .exec();
    Err(anyhow::anyhow!("cannot restart: {err}"))
}

#[cfg(not(unix))]
fn reexec() -> Result<()> {
    anyhow::bail!("restore staged; start the server again to apply it")
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// What the control socket accepts: a migrate request (`{"migrate": …}`), a cluster action
/// (`{"cluster": …}`, sent by `pocketlog cluster`, see `cluster_cli.rs`) or a superuser
/// action (as `pocketlog superuser` sends it).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum ControlRequest {
    Migrate { migrate: migrate::Request },
    Cluster { cluster: cluster_cli::ClusterAction },
    Superuser(SuperuserAction),
}

/// `migrate ARGS`: offline on the data dir, or through the control socket of the server
/// that runs on it.
fn run_migrate(
    dir: &std::path::Path,
    migrations_dir: &std::path::Path,
    args: &[String],
    options: ServerOptions,
) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // Only `create` works without the data dir.
    if args.first().map(String::as_str) == Some("create") {
        return migrate::run(args, migrations_dir, |_| {
            anyhow::bail!("`migrate create` needs no data dir")
        });
    }
    let state = match Engine::open(dir, EngineConfig::default()) {
        Ok(opened) => Some(state_of(opened, options)?),
        Err(engine::Error::Locked(_)) => None,
        Err(err) => anyhow::bail!("{err}"),
    };
    if let Err(err) = api::migrations::types::write(dir) {
        tracing::warn!(error = %err, "could not write types.d.ts");
    }
    let result = migrate::run(args, migrations_dir, |request| match &state {
        Some(state) => runtime.block_on(migrate::execute(state, request)),
        None => via_server(dir, &ControlRequest::Migrate { migrate: request }),
    });
    if let Some(state) = state {
        state.engine.shutdown();
    }
    result
}

/// Sends `request` to the server that holds the data dir; its reply line.
fn via_server(dir: &std::path::Path, request: &impl serde::Serialize) -> Result<String> {
    match control::call(dir, request)? {
        Ok(reply) if reply.ok => Ok(reply.message),
        Ok(reply) => Err(anyhow::anyhow!(reply.message)),
        Err(why) => anyhow::bail!(
            "data dir {} is locked by a running server, and its control socket {} is {}",
            dir.display(),
            control::socket_path(dir).display(),
            match why {
                control::Unreachable::Missing => "missing",
                control::Unreachable::Stale => "not answering",
            }
        ),
    }
}

fn superuser(dir: &std::path::Path, action: SuperuserAction, options: ServerOptions) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let opened = match Engine::open(dir, EngineConfig::default()) {
        Ok(opened) => opened,
        Err(engine::Error::Locked(_)) => return superuser_via_server(dir, &action),
        Err(err) => anyhow::bail!("{err}"),
    };
    let state = state_of(opened, options)?;
    let result = runtime.block_on(superuser_action(&state, action));
    state.engine.shutdown();
    println!("{}", result?);
    Ok(())
}

/// `pocketlog cluster …`: asks the server running on `dir` (there is no offline form).
fn cluster_via_server(dir: &std::path::Path, action: cluster_cli::ClusterAction) -> Result<()> {
    let request: cluster_cli::ControlRequest<()> =
        cluster_cli::ControlRequest::Cluster { cluster: action };
    println!("{}", via_server(dir, &request)?);
    Ok(())
}

/// The data dir is locked by a running server: ask it to perform `action`.
fn superuser_via_server(dir: &std::path::Path, action: &SuperuserAction) -> Result<()> {
    println!("{}", via_server(dir, action)?);
    Ok(())
}

/// Performs a superuser operation on an open state; returns the line to print on success.
async fn superuser_action(state: &Arc<AppState>, action: SuperuserAction) -> Result<String> {
    let schema = state.schema();
    let collection: Arc<Collection> = Arc::clone(
        schema
            .find(SUPERUSERS_ID)
            .context("the _superusers collection is missing")?,
    );
    let system = Some(system_superuser(&collection));
    let find = |email: String| {
        let state = Arc::clone(state);
        async move {
            let rows = state
                .read(move |conn| {
                    conn.query(
                        "SELECT id FROM _superusers WHERE email = ?1 COLLATE NOCASE",
                        &[engine::Value::Text(email)],
                    )
                })
                .await
                .map_err(|err| anyhow::anyhow!(err.message))?;
            Ok::<Option<String>, anyhow::Error>(
                rows.rows
                    .first()
                    .and_then(|r| r[0].as_str().map(str::to_string)),
            )
        }
    };
    let body = |email: &str, password: &str| {
        let mut map = Map::new();
        map.insert("email".into(), json!(email));
        map.insert("password".into(), json!(password));
        map.insert("passwordConfirm".into(), json!(password));
        map
    };
    let describe = |err: api::error::ApiError| {
        let data = serde_json::Value::Object(err.data.clone());
        anyhow::anyhow!(
            "{} {}",
            err.message,
            if err.data.is_empty() {
                String::new()
            } else {
                data.to_string()
            }
        )
    };
    let data = api::access::RequestData::default();
    match action {
        SuperuserAction::Upsert { email, password } => match find(email.clone()).await? {
            Some(id) => {
                api::records::update_record(
                    state,
                    &schema,
                    &collection,
                    system.as_ref(),
                    &id,
                    body(&email, &password),
                    data,
                )
                .await
                .map_err(describe)?;
                Ok(format!("Successfully saved superuser \"{email}\"!"))
            }
            None => {
                api::records::create_record(
                    state,
                    &schema,
                    &collection,
                    system.as_ref(),
                    body(&email, &password),
                    data,
                )
                .await
                .map_err(describe)?;
                Ok(format!("Successfully saved superuser \"{email}\"!"))
            }
        },
        SuperuserAction::Create { email, password } => {
            if find(email.clone()).await?.is_some() {
                anyhow::bail!("superuser \"{email}\" already exists");
            }
            api::records::create_record(
                state,
                &schema,
                &collection,
                system.as_ref(),
                body(&email, &password),
                data,
            )
            .await
            .map_err(describe)?;
            Ok(format!("Successfully created new superuser \"{email}\"!"))
        }
        SuperuserAction::Update { email, password } => {
            let id = find(email.clone())
                .await?
                .with_context(|| format!("superuser \"{email}\" doesn't exist"))?;
            api::records::update_record(
                state,
                &schema,
                &collection,
                system.as_ref(),
                &id,
                body(&email, &password),
                data,
            )
            .await
            .map_err(describe)?;
            Ok(format!(
                "Successfully changed superuser \"{email}\" password!"
            ))
        }
        SuperuserAction::Ips { ips } => superuser_ips(state, ips).await,
        SuperuserAction::Otp { email } => {
            // PocketBase's output: the id, the code and its validity, as a tree.
            let (id, code, valid) = api::auth::otp::issue_for_cli(state, &collection, &email)
                .await
                .map_err(|message| anyhow::anyhow!(message))?;
            Ok(format!(
                "Successfully created OTP for superuser \"{email}\":\n├─ Id:    {id}\n├─ Pass:  {code}\n└─ Valid: {valid}s\n"
            ))
        }
        SuperuserAction::Delete { email } => {
            let id = find(email.clone())
                .await?
                .with_context(|| format!("superuser \"{email}\" doesn't exist"))?;
            api::records::delete_record(state, &schema, &collection, system.as_ref(), &id, data)
                .await
                .map_err(describe)?;
            Ok(format!("Successfully deleted superuser \"{email}\"!"))
        }
    }
}

/// `superuser ips [IP/CIDR ...]`: PocketBase's output (a tree of the entries, or "cleared").
async fn superuser_ips(state: &Arc<AppState>, ips: Vec<String>) -> Result<String> {
    let saved = api::settings::set_superuser_ips(state, ips)
        .await
        .map_err(|err| {
            let entries = err
                .data
                .get("superuserIPs")
                .and_then(serde_json::Value::as_object)
                .map(|errors| {
                    errors
                        .iter()
                        .map(|(index, error)| {
                            format!("{index}: {}", error["message"].as_str().unwrap_or(""))
                        })
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .unwrap_or_else(|| err.message.clone());
            anyhow::anyhow!("superuserIPs: ({entries}).")
        })?;
    if saved.is_empty() {
        return Ok("Successfully cleared SuperuserIPs setting!".to_string());
    }
    let mut out = String::from("Successfully updated SuperuserIPs setting:");
    for (index, ip) in saved.iter().enumerate() {
        let branch = if index + 1 == saved.len() {
            "└─"
        } else {
            "├─"
        };
        out.push_str(&format!("\n{branch} {ip}"));
    }
    Ok(out)
}

/// The CLI acts as a superuser (the system) for its record operations.
fn system_superuser(collection: &Arc<Collection>) -> Auth {
    let mut record = Map::new();
    record.insert("id".into(), json!("system"));
    Auth {
        collection: Arc::clone(collection),
        record,
    }
}
