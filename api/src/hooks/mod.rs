//! JavaScript hooks (`pb_hooks/*.pb.js`): PocketBase's JSVM API on embedded QuickJS.
//!
//! - [`vm`]: the pool of VMs, each invocation bounded in time and memory.
//! - `prelude.js`: the JS API (`routerAdd`, `onRecord*`, `$app`, `Record`, errors, ...).
//! - [`native`]: the native ops the prelude calls (reads, mail, JWT, env, sleep, HTTP).
//! - [`writes`]: a hook's `$app.save`/`$app.delete` calls, prepared and applied in a command.
//! - [`records`]: the record hook points of the API's writes and reads.
//! - [`routes`]: custom routes (`routerAdd`) matched after the API's own routes.
//! - [`migrations`](crate::migrations) reuses the VM for `pb_migrations`.
//!
//! Invariants:
//! 1. Writes from hooks go through the log: the writes of one invocation are one command,
//!    joined with the request's own write when there is one, so one request is one commit,
//!    under the request's actor (history names the caller).
//! 2. Replay never runs hooks: the log holds their results, so replaying a log written with
//!    hooks gives the same projection without them.
//! 3. A hook that throws, loops or allocates without bound answers its request with an error
//!    in PocketBase's envelope; the VM and the server keep serving.
//! 4. Without hook files (or with none registering anything), no request touches a VM.

pub mod events;
pub mod http;
pub mod native;
pub mod records;
pub mod routes;
pub mod vm;
pub mod writes;

use crate::error::ApiError;
use crate::model::Collection;
use crate::state::AppState;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, SystemTime};

/// PocketBase's default number of prewarmed VMs (`--hooksPool`).
pub const DEFAULT_POOL_SIZE: usize = 15;
/// The longest one hook invocation may run (`--hooksTimeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The memory limit of one VM (`--hooksMemory`).
pub const DEFAULT_MEMORY_BYTES: usize = 64 * 1024 * 1024;
/// How often `--hooksWatch` looks at the hook files.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(500);
/// The suffix of hook files.
pub const HOOK_SUFFIX: &str = ".pb.js";

/// How the hooks run.
#[derive(Clone, Debug)]
pub struct HooksOptions {
    /// The `pb_hooks` directory.
    pub dir: PathBuf,
    /// VMs in the pool.
    pub pool: usize,
    /// Reload the files when they change.
    pub watch: bool,
    /// Time limit of one invocation.
    pub timeout: Duration,
    /// Memory limit of one VM.
    pub memory_bytes: usize,
}

impl HooksOptions {
    /// Defaults for `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> HooksOptions {
        HooksOptions {
            dir: dir.into(),
            pool: DEFAULT_POOL_SIZE,
            watch: false,
            timeout: DEFAULT_TIMEOUT,
            memory_bytes: DEFAULT_MEMORY_BYTES,
        }
    }
}

/// What the hook files registered (read from the first VM).
#[derive(Debug, Default, Deserialize)]
pub struct Registry {
    /// `routerAdd` routes, in registration order.
    pub routes: Vec<RouteSpec>,
    /// Hook name → the tags of each registered handler.
    pub hooks: HashMap<String, Vec<Vec<String>>>,
    /// `cronAdd` jobs.
    pub crons: Vec<CronSpec>,
}

/// One custom route.
#[derive(Debug, Deserialize)]
pub struct RouteSpec {
    /// Upper-case method.
    pub method: String,
    /// Path pattern (`/hello/{name}`, `/files/{path...}`).
    pub path: String,
}

/// One cron job of the hooks.
#[derive(Debug, Deserialize)]
pub struct CronSpec {
    /// Job id.
    pub id: String,
    /// Cron expression.
    pub expression: String,
}

impl Registry {
    /// Whether a handler of `name` applies to `collection` (no tags: every collection).
    pub fn has(&self, name: &str, collection: &Collection) -> bool {
        self.hooks.get(name).is_some_and(|handlers| {
            handlers.iter().any(|tags| {
                tags.is_empty()
                    || tags
                        .iter()
                        .any(|t| *t == collection.name || *t == collection.id)
            })
        })
    }

    /// Whether any handler of `name` is registered.
    pub fn has_any(&self, name: &str) -> bool {
        self.hooks.get(name).is_some_and(|h| !h.is_empty())
    }
}

/// A loaded set of hook files: the VMs and what they registered.
pub struct Loaded {
    /// The VMs.
    pub pool: vm::Pool,
    /// What the files registered.
    pub registry: Registry,
    generation: u64,
}

/// The hooks of a server (empty until [`start`]).
#[derive(Default)]
pub struct Hooks {
    loaded: RwLock<Option<Arc<Loaded>>>,
    generation: AtomicU64,
}

impl Hooks {
    /// The current hooks, if any are loaded.
    pub fn current(&self) -> Option<Arc<Loaded>> {
        self.loaded
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn install(&self, loaded: Option<Arc<Loaded>>) {
        let old = std::mem::replace(
            &mut *self.loaded.write().unwrap_or_else(|e| e.into_inner()),
            loaded,
        );
        if let Some(old) = old {
            old.pool.close();
        }
    }
}

/// The hook files of `dir` (`*.pb.js`), in name order.
pub fn read_files(dir: &Path) -> std::io::Result<Vec<vm::Source>> {
    read_sources(dir, |name| name.ends_with(HOOK_SUFFIX))
}

/// The JS files of `dir` whose names `accept` takes, in name order (shared by the hooks and
/// the migrations); a missing directory has none.
pub fn read_sources(dir: &Path, accept: impl Fn(&str) -> bool) -> std::io::Result<Vec<vm::Source>> {
    let mut files = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(files),
        Err(err) => return Err(err),
    };
    for entry in entries {
        let path = entry?.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        if accept(&name) && path.is_file() {
            let text = std::fs::read_to_string(&path)?;
            files.push(vm::Source { name, path, text });
        }
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

/// A fingerprint of the hook files (names, sizes, modification times) for `--hooksWatch`.
fn fingerprint(dir: &Path) -> Vec<(String, u64, Option<SystemTime>)> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if !name.ends_with(".js") {
                continue;
            }
            let meta = entry.metadata().ok();
            out.push((
                name,
                meta.as_ref().map(|m| m.len()).unwrap_or(0),
                meta.and_then(|m| m.modified().ok()),
            ));
        }
    }
    out.sort();
    out
}

fn load(
    state: &Arc<AppState>,
    options: &HooksOptions,
    generation: u64,
) -> anyhow::Result<Option<Loaded>> {
    let files = read_files(&options.dir)?;
    if files.is_empty() {
        return Ok(None);
    }
    let native = native::Native::new(
        Arc::downgrade(state),
        tokio::runtime::Handle::try_current().ok(),
    );
    let limits = vm::Limits {
        timeout: options.timeout,
        memory_bytes: options.memory_bytes,
    };
    let (pool, summary) = vm::Pool::start(options.pool, Arc::new(files), limits, native)
        .map_err(|err| anyhow::anyhow!("loading the hooks failed: {err}"))?;
    let registry: Registry = serde_json::from_str(&summary)?;
    tracing::info!(
        dir = %options.dir.display(),
        vms = pool.size,
        routes = registry.routes.len(),
        hooks = registry.hooks.values().map(Vec::len).sum::<usize>(),
        crons = registry.crons.len(),
        "loaded the JS hooks"
    );
    Ok(Some(Loaded {
        pool,
        registry,
        generation,
    }))
}

/// Loads the hook files of `options.dir` into `state` (call on the tokio runtime), fires
/// `onBootstrap`, starts their cron jobs and, with `watch`, the reloader. A file that does
/// not evaluate is an error here (start-up fails, as the reference's).
pub fn start(state: &Arc<AppState>, options: HooksOptions) -> anyhow::Result<()> {
    let generation = state.hooks.generation.fetch_add(1, Ordering::SeqCst) + 1;
    let loaded = load(state, &options, generation)?.map(Arc::new);
    state.hooks.install(loaded.clone());
    if let Some(loaded) = &loaded {
        start_crons(state, loaded);
    }
    if options.watch {
        watch(Arc::downgrade(state), options);
    }
    Ok(())
}

/// Fires a global event (`onBootstrap`, `onServe`) and commits its writes (one commit by the
/// system).
pub async fn fire(state: &Arc<AppState>, name: &str, event: Value) -> Result<(), ApiError> {
    let Some(loaded) = state.hooks.current() else {
        return Ok(());
    };
    if !loaded.registry.has_any(name) {
        return Ok(());
    }
    let out = loaded
        .pool
        .call("__pl_event", vec![name.to_string(), event.to_string()])
        .await
        .map_err(|err| script_error(&err.to_string()))?;
    let out = parse_outcome(&out)?;
    writes::commit_alone(state, engine::Actor::System, out.writes).await
}

fn start_crons(state: &Arc<AppState>, loaded: &Arc<Loaded>) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    for spec in &loaded.registry.crons {
        let schedule = match crate::crons::parse(&spec.expression) {
            Ok(schedule) => schedule,
            Err(err) => {
                tracing::error!(id = spec.id, expression = spec.expression, error = %err, "bad hook cron expression; job left out");
                continue;
            }
        };
        let weak = Arc::downgrade(state);
        let id = spec.id.clone();
        let generation = loaded.generation;
        handle.spawn(async move {
            loop {
                let now = chrono::Utc::now();
                let Ok(next) = schedule.find_next_occurrence(&now, false) else {
                    return;
                };
                tokio::time::sleep((next - now).to_std().unwrap_or_default()).await;
                let Some(state) = weak.upgrade() else { return };
                if state.hooks.generation.load(Ordering::SeqCst) != generation {
                    return;
                }
                if crate::cluster::follows(&state) {
                    tracing::debug!(target: "hooks", id, "hook cron job skipped: this cluster node follows");
                    continue;
                }
                if let Err(err) = run_cron(&state, &id).await {
                    tracing::error!(target: "hooks", id, error = %err.message, "hook cron job failed");
                }
            }
        });
    }
}

/// Runs the hook cron job `id` now (its writes are one commit by the system).
pub async fn run_cron(state: &Arc<AppState>, id: &str) -> Result<(), ApiError> {
    let Some(loaded) = state.hooks.current() else {
        return Err(ApiError::not_found());
    };
    let out = loaded
        .pool
        .call("__pl_cron", vec![id.to_string()])
        .await
        .map_err(|err| script_error(&err.to_string()))?;
    let out = parse_outcome(&out)?;
    writes::commit_alone(state, engine::Actor::System, out.writes).await
}

fn watch(state: Weak<AppState>, options: HooksOptions) {
    let handle = tokio::runtime::Handle::try_current().ok();
    // Taken now, so a change made right after `start` returns is seen.
    let mut seen = fingerprint(&options.dir);
    let spawned = std::thread::Builder::new()
        .name("hooks-watch".into())
        .spawn(move || {
            let _guard = handle.as_ref().map(|h| h.enter());

            loop {
                std::thread::sleep(WATCH_INTERVAL);
                let Some(state) = state.upgrade() else { return };
                let now = fingerprint(&options.dir);
                if now == seen {
                    continue;
                }
                seen = now;
                let generation = state.hooks.generation.fetch_add(1, Ordering::SeqCst) + 1;
                match load(&state, &options, generation) {
                    Ok(loaded) => {
                        let loaded = loaded.map(Arc::new);
                        state.hooks.install(loaded.clone());
                        if let Some(loaded) = &loaded {
                            start_crons(&state, loaded);
                        }
                        tracing::info!(dir = %options.dir.display(), "reloaded the JS hooks");
                    }
                    Err(err) => {
                        tracing::error!(error = %err, "reloading the JS hooks failed; the previous ones stay");
                    }
                }
            }
        });
    if let Err(err) = spawned {
        tracing::error!(error = %err, "could not start the hooks watcher");
    }
}

/// What one invocation answered (see the prelude's `__invoke`).
#[derive(Debug, Default, Deserialize)]
pub struct Outcome {
    /// The writes to commit.
    #[serde(default)]
    pub writes: Vec<writes::Write>,
    /// A response the handler set (`e.json`, ...).
    #[serde(default)]
    pub response: Option<HookResponse>,
    /// The record hooks' default action ran (`e.next()` reached the end of the chain).
    #[serde(default)]
    pub proceed: bool,
    /// The event's record after the hooks.
    #[serde(default)]
    pub record: Option<Map<String, Value>>,
    /// The keys the hooks set on the record.
    #[serde(default)]
    pub changed: Vec<String>,
    /// The event's records after the hooks (list).
    #[serde(default)]
    pub records: Option<Vec<Map<String, Value>>>,
    #[serde(default)]
    error: Option<ThrownError>,
}

/// A response set by a hook.
#[derive(Debug, Deserialize)]
pub struct HookResponse {
    /// HTTP status.
    pub status: u16,
    /// `json`, `text`, `html`, `empty`, `redirect`.
    pub kind: String,
    /// Body text (the redirect target for `redirect`).
    pub body: String,
    /// Content type of a blob.
    #[serde(default, rename = "contentType")]
    pub content_type: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ThrownError {
    status: u16,
    message: String,
    #[serde(default)]
    data: Value,
    #[serde(default)]
    cause: Option<String>,
}

/// Parses an invocation's answer; a thrown error becomes the request's error.
pub fn parse_outcome(text: &str) -> Result<Outcome, ApiError> {
    let outcome: Outcome = serde_json::from_str(text).map_err(ApiError::internal)?;
    if let Some(thrown) = &outcome.error {
        let error = thrown_error(thrown);
        if thrown.status != 0 {
            events::record_error(&error.message);
        }
        return Err(error);
    }
    Ok(outcome)
}

fn thrown_error(thrown: &ThrownError) -> ApiError {
    if thrown.status == 0 {
        return script_error(thrown.cause.as_deref().unwrap_or(""));
    }
    let status = axum::http::StatusCode::from_u16(thrown.status)
        .unwrap_or(axum::http::StatusCode::BAD_REQUEST);
    let mut error = ApiError::new(status, &thrown.message);
    if let Value::Object(data) = &thrown.data {
        error.data = data
            .iter()
            .map(|(key, value)| {
                let normalized = match value {
                    Value::Object(map)
                        if map.contains_key("code") && map.contains_key("message") =>
                    {
                        value.clone()
                    }
                    _ => json!({"code": "validation_invalid_value", "message": "Invalid value."}),
                };
                (key.clone(), normalized)
            })
            .collect();
    }
    error
}

/// A hook failure that is no `ApiError` (an `Error`, an interrupt, out of memory): logged
/// with its stack, answered as the reference does (400, the generic message).
pub fn script_error(cause: &str) -> ApiError {
    tracing::error!(target: "hooks", cause, "a JS hook failed");
    events::record_error(cause);
    ApiError::bad_request_default()
}
