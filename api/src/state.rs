//! `AppState`: the engine handle, the schema cache and the settings, shared by all handlers.
//!
//! 1. Writes go through [`AppState::write`], which runs a command on the engine's writer thread
//!    and awaits its durable commit.
//! 2. The schema follows commits: the schema cache is replaced (not mutated) by
//!    [`AppState::follow`] after every commit that changes collections, once per commit (it
//!    knows the seq it was loaded at). [`AppState::write`] and [`AppState::execute`] follow
//!    their own commit before their caller gets the answer, and the realtime hub (once
//!    started) follows each commit before it renders it, so commits made by any path
//!    (handlers, batch, import, the CLI, the engine directly) are seen; no handler reloads
//!    the schema by hand.
//! 3. A fresh data dir is bootstrapped with `_superusers`, `users` and default settings as
//!    ordinary commits.

use crate::auth::token;
use crate::error::{ApiError, ApiResult};
use crate::model::collection::{auth_system_fields, TOKEN_KEYS};
use crate::model::field::{field, id_field};
use crate::model::record::format_ms;
use crate::model::{
    Collection, CollectionKind, RuleKind, Schema, SUPERUSERS, SUPERUSERS_ID, USERS_ID,
};
use engine::{Actor, Change, Commit, Engine, Failure, Outcome, Seq, Tx};
use serde_json::{json, Map, Value};
use std::sync::{Arc, Mutex, RwLock};

/// Server-wide settings that are not stored in the log.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Largest accepted request body in bytes.
    pub body_limit_bytes: usize,
    /// Allowed CORS origins (`*` = any).
    pub origins: Vec<String>,
    /// Realtime tunables (grace period, queue bounds, keep-alive, limits).
    pub realtime: crate::realtime::RealtimeOptions,
    /// The static files directory served at `/` (`--publicDir`; `None`: none).
    pub public_dir: Option<std::path::PathBuf>,
    /// Serve `/index.html` for a missing static path (`--indexFallback`).
    pub index_fallback: bool,
    /// The timeout of handlers' read queries (`--queryTimeout`; `None`: none).
    pub query_timeout: Option<std::time::Duration>,
    /// The cron expression of the `__plScrub__` job (`None`: no such job; the engine's own
    /// interval, if any, scrubs).
    pub scrub_cron: Option<String>,
    /// The cron expression of the `__plSnapshot__` job (`None`: no such job; snapshots are
    /// only removed by compaction, so `serve` sets it only when it compacts).
    pub snapshot_cron: Option<String>,
    /// The settings encryption key (`--encryptionEnv`; `None`: settings stored in clear).
    pub settings_key: Option<crate::settings::encrypt::SettingsKey>,
    /// The variable named by `--encryptionEnv` (for the error when it is empty).
    pub encryption_env: Option<String>,
    /// A bearer token that lets a scraper read `/api/metrics` without a superuser
    /// (`POCKETLOG_METRICS_TOKEN`; `None`: superusers only).
    pub metrics_token: Option<String>,
    /// Where `--automigrate` writes a migration per API collection change (`None`: off).
    pub automigrate_dir: Option<std::path::PathBuf>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            body_limit_bytes: 32 * 1024 * 1024,
            origins: vec!["*".into()],
            realtime: crate::realtime::RealtimeOptions::default(),
            public_dir: None,
            index_fallback: true,
            query_timeout: None,
            scrub_cron: None,
            snapshot_cron: None,
            settings_key: None,
            encryption_env: None,
            metrics_token: None,
            automigrate_dir: None,
        }
    }
}

/// Shared state of the HTTP server.
pub struct AppState {
    /// The storage engine.
    pub engine: Engine,
    schema: RwLock<Arc<Schema>>,
    /// The seq the schema reflects at least (held while reloading, so reloads are serialized
    /// and a commit is reloaded for once).
    schema_seq: Mutex<Seq>,
    settings: RwLock<Arc<Value>>,
    /// Options from the command line.
    pub options: ServerOptions,
    /// The realtime hub (SSE sessions and the commit dispatcher).
    pub realtime: Arc<crate::realtime::Hub>,
    /// The first-run installer link secret (in memory only).
    pub installer: crate::installer::Installer,
    /// Request logs (`auxiliary.db`, written by a background thread).
    pub logs: crate::request_log::RequestLogs,
    /// Rate limiter and compiled security settings (`ratelimit.rs`).
    pub security: crate::ratelimit::Security,
    /// Backups: the one-operation flag and the restart request (`backups.rs`).
    pub backups: crate::backups::Backups,
    /// The cron jobs (`crons.rs`).
    pub crons: crate::crons::Crons,
    /// Outgoing mail queue (`mail/`).
    pub mailer: crate::mail::Mailer,
    /// Wrong OTP attempts per record (`auth/otp.rs`).
    pub otp_failures: crate::auth::otp::Failures,
    /// Verified callers by token (`auth_cache.rs`), invalidated by the commits that can
    /// change a caller.
    pub auth_cache: Arc<crate::auth_cache::AuthCache>,
    /// The cluster node, when serving with `--cluster` (`cluster/`); set once at start.
    pub cluster: std::sync::OnceLock<Arc<crate::cluster::Cluster>>,
    /// The JS hooks (`hooks/`; empty until `hooks::start`).
    pub hooks: crate::hooks::Hooks,
    /// HTTP request counters and latencies (`metrics.rs`).
    pub request_metrics: crate::metrics::RequestMetrics,
    /// Webhook delivery tasks, their cursors' store and counters (`webhooks/`).
    pub webhooks: crate::webhooks::Webhooks,
    /// Materialised past states for `asOf` reads (`asof.rs`).
    pub asof: crate::asof::AsOfCache,
}

/// Whether a commit changes collections (so the schema must follow it).
pub fn touches_collections(commit: &Commit) -> bool {
    commit.changes.iter().any(|change| {
        matches!(
            change,
            Change::CollectionCreated(_)
                | Change::CollectionUpdated(_)
                | Change::CollectionDeleted { .. }
        )
    })
}

/// The settings key in `_params`.
pub const SETTINGS_KEY: &str = "settings";

/// Default settings (PocketBase's fresh install).
pub fn default_settings() -> Value {
    json!({"superuserIPs":[],"smtp":{"enabled":false,"port":587,"host":"smtp.example.com","username":"","authMethod":"","tls":false,"localName":""},
     "backups":{"cron":"","cronMaxKeep":3,"s3":{"enabled":false,"bucket":"","region":"","endpoint":"","accessKey":"","forcePathStyle":false}},
     "s3":{"enabled":false,"bucket":"","region":"","endpoint":"","accessKey":"","forcePathStyle":false},
     "meta":{"accentColor":"#1055c9","appName":"Acme","appURL":"http://localhost:8090","senderName":"Support","senderAddress":"support@example.com","hideControls":false},
     "rateLimits":{"rules":[{"label":"*:auth","audience":"","duration":3,"maxRequests":2},{"label":"*:create","audience":"","duration":5,"maxRequests":20},{"label":"/api/batch","audience":"","duration":1,"maxRequests":3},{"label":"/api/","audience":"","duration":10,"maxRequests":300}],"excludedIPs":[],"enabled":false},
     "trustedProxy":{"headers":[],"useLeftmostIP":false},
     "batch":{"enabled":false,"maxRequests":50,"timeout":3,"maxBodySize":0},
     "logs":{"maxDataSize":0,"maxDays":5,"minLevel":0,"logIP":true,"logAuthId":false}})
}

/// Gives every token kind of an auth collection a fresh secret when it has none.
pub fn ensure_secrets(collection: &mut Collection) {
    if !collection.is_auth() {
        return;
    }
    for key in TOKEN_KEYS {
        let mut option = collection.auth_option(key);
        if let Value::Object(map) = &mut option {
            if map
                .get("secret")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
            {
                map.insert("secret".into(), json!(token::new_collection_secret()));
            }
        }
        collection.rest.insert((*key).to_string(), option);
    }
}

fn bootstrap_collections(now: i64) -> Vec<Collection> {
    let mut superusers = Collection {
        id: SUPERUSERS_ID.into(),
        name: SUPERUSERS.into(),
        kind: CollectionKind::Auth,
        fields: vec![id_field()],
        rest: Map::new(),
    };
    superusers.fields.extend(auth_system_fields());
    superusers.fields.push(field(json!({"name":"created","type":"autodate","onCreate":true,"system":true,"id":"autodate2990389176"})));
    superusers.fields.push(field(json!({"name":"updated","type":"autodate","onCreate":true,"onUpdate":true,"system":true,"id":"autodate3332085495"})));
    for rule in RuleKind::RECORD {
        superusers.set_rule(rule, None);
    }
    superusers.set_rule(RuleKind::Manage, None);
    superusers.set_rule(RuleKind::Auth, Some(""));
    superusers.rest.insert("system".into(), json!(true));
    superusers
        .rest
        .insert("authToken".into(), json!({"duration": 86400}));
    superusers.rest.insert(
        "indexes".into(),
        json!([
            "CREATE UNIQUE INDEX `idx_tokenKey_pbc_3142635823` ON `_superusers` (`tokenKey`)",
            "CREATE UNIQUE INDEX `idx_email_pbc_3142635823` ON `_superusers` (`email`) WHERE `email` != ''"
        ]),
    );
    let mut users = Collection {
        id: USERS_ID.into(),
        name: "users".into(),
        kind: CollectionKind::Auth,
        fields: vec![id_field()],
        rest: Map::new(),
    };
    users.fields.extend(auth_system_fields());
    users.fields.push(field(
        json!({"name":"name","type":"text","max":255,"id":"text1579384326"}),
    ));
    users.fields.push(field(
        json!({"name":"avatar","type":"file","maxSelect":1,"id":"file376926767",
        "mimeTypes":["image/jpeg","image/png","image/svg+xml","image/gif","image/webp"]}),
    ));
    users.fields.push(field(
        json!({"name":"created","type":"autodate","onCreate":true,"id":"autodate2990389176"}),
    ));
    users.fields.push(field(json!({"name":"updated","type":"autodate","onCreate":true,"onUpdate":true,"id":"autodate3332085495"})));
    for rule in [
        RuleKind::List,
        RuleKind::View,
        RuleKind::Update,
        RuleKind::Delete,
    ] {
        users.set_rule(rule, Some("id = @request.auth.id"));
    }
    users.set_rule(RuleKind::Create, Some(""));
    users.set_rule(RuleKind::Auth, Some(""));
    users.set_rule(RuleKind::Manage, None);
    users.rest.insert("system".into(), json!(false));
    users.rest.insert(
        "oauth2".into(),
        json!({"providers":[],"mappedFields":{"id":"","name":"name","username":"","avatarURL":"avatar"},"enabled":false}),
    );
    users.rest.insert(
        "indexes".into(),
        json!([
            "CREATE UNIQUE INDEX `idx_tokenKey__pb_users_auth_` ON `users` (`tokenKey`)",
            "CREATE UNIQUE INDEX `idx_email__pb_users_auth_` ON `users` (`email`) WHERE `email` != ''"
        ]),
    );
    let owner_rule = "@request.auth.id != '' && recordRef = @request.auth.id && collectionRef = @request.auth.collectionId";
    let system_base = |id: &str,
                       name: &str,
                       extra: Vec<crate::model::Field>,
                       rules_set: &[RuleKind]| {
        let mut collection = Collection {
            id: id.into(),
            name: name.into(),
            kind: CollectionKind::Base,
            fields: vec![id_field()],
            rest: Map::new(),
        };
        collection.fields.push(field(
            json!({"name":"collectionRef","type":"text","required":true,"system":true}),
        ));
        collection.fields.push(field(
            json!({"name":"recordRef","type":"text","required":true,"system":true}),
        ));
        collection.fields.extend(extra);
        collection.fields.push(field(
            json!({"name":"created","type":"autodate","onCreate":true,"system":true}),
        ));
        collection.fields.push(field(json!({"name":"updated","type":"autodate","onCreate":true,"onUpdate":true,"system":true})));
        for rule in RuleKind::RECORD {
            collection.set_rule(rule, rules_set.contains(&rule).then_some(owner_rule));
        }
        collection.rest.insert("system".into(), json!(true));
        collection.rest.insert("indexes".into(), json!([]));
        collection
    };
    let mfas = system_base(
        "pbc_2279338944",
        "_mfas",
        vec![field(
            json!({"name":"method","type":"text","required":true,"system":true}),
        )],
        &[RuleKind::List, RuleKind::View],
    );
    let otps = system_base(
        "pbc_1638494021",
        "_otps",
        vec![
            field(
                json!({"name":"password","type":"password","required":true,"system":true,"hidden":true}),
            ),
            field(json!({"name":"sentTo","type":"text","system":true,"hidden":true})),
        ],
        &[RuleKind::List, RuleKind::View],
    );
    let external_auths = system_base(
        "pbc_2281828961",
        "_externalAuths",
        vec![
            field(json!({"name":"provider","type":"text","required":true,"system":true})),
            field(json!({"name":"providerId","type":"text","required":true,"system":true})),
        ],
        &[RuleKind::List, RuleKind::View, RuleKind::Delete],
    );
    let auth_origins = system_base(
        "pbc_4275539003",
        "_authOrigins",
        vec![field(
            json!({"name":"fingerprint","type":"text","required":true,"system":true,"hidden":true}),
        )],
        &[RuleKind::List, RuleKind::View, RuleKind::Delete],
    );
    let mut out = vec![mfas, otps, external_auths, auth_origins, superusers, users];
    for (offset, collection) in out.iter_mut().enumerate() {
        // One millisecond apart, so sorting by `created` gives the creation order.
        let created = format_ms(now + offset as i64);
        collection.rest.insert("created".into(), json!(created));
        collection.rest.insert("updated".into(), json!(created));
        ensure_secrets(collection);
    }
    out
}

/// Loads every collection from the projection, in creation order.
pub fn load_collections(engine: &Engine) -> engine::Result<Vec<Collection>> {
    let rows =
        engine.read(|conn| conn.query("SELECT meta FROM _collections ORDER BY rowid", &[]))?;
    Ok(rows
        .rows
        .iter()
        .filter_map(|row| {
            row[0]
                .as_str()
                .and_then(|meta| Collection::from_meta(meta).ok())
        })
        .collect())
}

/// The stored settings (defaults when none) and whether they are stored in clear; encrypted
/// ones are opened with the options' key (`settings/encrypt.rs`), a missing or wrong key is an
/// error.
fn load_settings(engine: &Engine, options: &ServerOptions) -> anyhow::Result<(Value, bool)> {
    let rows = engine.read(|conn| {
        conn.query(
            "SELECT value FROM _params WHERE key = ?1",
            &[engine::Value::from(SETTINGS_KEY)],
        )
    })?;
    let Some(stored) = rows.rows.first().and_then(|row| row[0].as_str()) else {
        return Ok((default_settings(), false));
    };
    match crate::settings::encrypt::load(
        stored,
        options.settings_key.as_ref(),
        options.encryption_env.as_deref(),
    ) {
        Ok(loaded) => Ok(loaded),
        // Unreadable plain text (never written by pocketlog): the defaults, as before.
        Err(_) if stored.trim_start().starts_with('{') => Ok((default_settings(), false)),
        Err(err) => Err(err),
    }
}

impl AppState {
    /// Wraps an open engine, bootstrapping a fresh data dir.
    pub fn new(engine: Engine, options: ServerOptions) -> anyhow::Result<Arc<AppState>> {
        let existing = load_collections(&engine)?;
        let bootstrap_settings =
            crate::settings::encrypt::store(&default_settings(), options.settings_key.as_ref())?;
        if existing.is_empty() {
            let result = engine.execute(
                Actor::System,
                move |tx: &mut Tx<'_>| -> engine::Result<()> {
                    for collection in bootstrap_collections(tx.timestamp_ms()) {
                        tx.stage(Change::CollectionCreated(collection.to_def()))?;
                    }
                    tx.stage(Change::ParamSet {
                        key: SETTINGS_KEY.into(),
                        value: Some(bootstrap_settings),
                    })?;
                    Ok(())
                },
            );
            match result {
                Ok(_) => tracing::info!("initialized a fresh data dir"),
                Err(Failure::Command(err)) | Err(Failure::Engine(err)) => {
                    return Err(anyhow::anyhow!("bootstrapping the data dir failed: {err}"))
                }
            }
        }
        // Taken before loading: the schema reflects at least this seq.
        let schema_seq = engine.last_seq();
        let schema = Schema::new(load_collections(&engine)?);
        let (settings, plain) = load_settings(&engine, &options)?;
        if plain && options.settings_key.is_some() {
            // Encryption was just turned on: store the settings sealed from now on.
            let sealed = crate::settings::encrypt::store(&settings, options.settings_key.as_ref())?;
            engine
                .execute(
                    Actor::System,
                    move |tx: &mut Tx<'_>| -> engine::Result<()> {
                        tx.stage(Change::ParamSet {
                            key: SETTINGS_KEY.into(),
                            value: Some(sealed),
                        })?;
                        Ok(())
                    },
                )
                .map_err(|err| match err {
                    Failure::Command(err) | Failure::Engine(err) => {
                        anyhow::anyhow!("encrypting the stored settings failed: {err}")
                    }
                })?;
            tracing::info!("settings are now stored encrypted (--encryptionEnv)");
        }
        let logs = crate::request_log::RequestLogs::new(engine.dir());
        // Uploads of requests that never committed (a crash mid-write) are garbage.
        crate::files::storage::LocalStorage::new(engine.dir()).sweep_tmp()?;
        let auth_cache = Arc::new(crate::auth_cache::AuthCache::default());
        auth_cache.set_schema(&schema);
        let state = Arc::new(AppState {
            engine,
            schema: RwLock::new(Arc::new(schema)),
            schema_seq: Mutex::new(schema_seq),
            settings: RwLock::new(Arc::new(settings)),
            realtime: Arc::new(crate::realtime::Hub::new(options.realtime.clone())),
            installer: crate::installer::Installer::new(),
            logs,
            security: crate::ratelimit::Security::default(),
            backups: crate::backups::Backups::default(),
            crons: crate::crons::Crons::builtin(
                options.snapshot_cron.as_deref(),
                options.scrub_cron.as_deref(),
            ),
            mailer: crate::mail::Mailer::new(),
            otp_failures: crate::auth::otp::Failures::default(),
            auth_cache,
            cluster: std::sync::OnceLock::new(),
            hooks: crate::hooks::Hooks::default(),
            request_metrics: crate::metrics::RequestMetrics::default(),
            webhooks: crate::webhooks::Webhooks::default(),
            asof: crate::asof::AsOfCache::default(),
            options,
        });
        // Stored files no commit references (a crash between an upload and its commit) are
        // swept in the background; compaction sweeps the S3 bucket too.
        crate::files::gc::start(&state);
        Ok(state)
    }

    /// The current schema.
    pub fn schema(&self) -> Arc<Schema> {
        Arc::clone(&self.schema.read().expect("schema lock"))
    }

    /// Makes the schema follow `commit`: reloads it from the projection when the commit
    /// changes collections and is newer than the schema; otherwise does nothing. Idempotent
    /// (a commit is reloaded for once, whoever follows it first). The commit must be applied
    /// to the projection (true for every commit a write answers with or the engine publishes).
    pub fn follow(&self, commit: &Commit) -> engine::Result<()> {
        if !touches_collections(commit) {
            return Ok(());
        }
        let mut seq = self.schema_seq.lock().unwrap_or_else(|e| e.into_inner());
        if commit.seq <= *seq {
            return Ok(());
        }
        let collections = load_collections(&self.engine)?;
        let schema = Schema::new(collections);
        self.auth_cache.set_schema(&schema);
        *self.schema.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(schema);
        *seq = commit.seq;
        tracing::debug!(seq = commit.seq, "the schema followed a commit");
        Ok(())
    }

    /// The seq the current schema reflects at least.
    pub fn schema_seq(&self) -> Seq {
        *self.schema_seq.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current settings (with secrets).
    pub fn settings(&self) -> Arc<Value> {
        Arc::clone(&self.settings.read().expect("settings lock"))
    }

    /// Replaces the cached settings.
    pub fn set_settings(&self, settings: Value) {
        *self.settings.write().expect("settings lock") = Arc::new(settings);
    }

    /// Runs a command on the writer thread and waits for its durable commit.
    pub async fn write<T, C>(&self, actor: Actor, command: C) -> ApiResult<Outcome<T>>
    where
        T: Send + 'static,
        C: FnOnce(&mut Tx<'_>) -> ApiResult<T> + Send + 'static,
    {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let auth_cache = Arc::clone(&self.auth_cache);
        self.engine
            .submit(actor, command, move |result| {
                // On the writer thread, whether or not the caller still waits (a client that
                // hung up must not leave its revoked token cached).
                if let Ok(Outcome {
                    commit: Some(commit),
                    ..
                }) = &result
                {
                    auth_cache.observe(commit);
                }
                let _ = sender.send(result);
            })
            .map_err(ApiError::from)?;
        match receiver.await {
            Ok(Ok(outcome)) => {
                if let Some(commit) = &outcome.commit {
                    self.follow(commit)?;
                }
                Ok(outcome)
            }
            Ok(Err(Failure::Command(err))) => Err(err),
            Ok(Err(Failure::Engine(err))) => Err(ApiError::from(err)),
            Err(_) => Err(ApiError::internal("the writer dropped the reply")),
        }
    }

    /// Runs a command and blocks until it is durable (start-up steps, tools; never on the
    /// async runtime), then follows its commit like [`AppState::write`].
    pub fn execute<T, E, C>(&self, actor: Actor, command: C) -> Result<Outcome<T>, Failure<E>>
    where
        T: Send + 'static,
        E: Send + 'static,
        C: FnOnce(&mut Tx<'_>) -> Result<T, E> + Send + 'static,
    {
        let outcome = self.engine.execute(actor, command)?;
        if let Some(commit) = &outcome.commit {
            self.auth_cache.observe(commit);
            self.follow(commit).map_err(Failure::Engine)?;
        }
        Ok(outcome)
    }

    /// Runs a read on a pooled connection off the async runtime, stopped after the
    /// `--queryTimeout` ([`ServerOptions::query_timeout`]).
    pub async fn read<T, F>(self: &Arc<Self>, f: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&engine::ReadConn<'_>) -> engine::Result<T> + Send + 'static,
    {
        if let Some(at) = crate::asof::current() {
            // An `asOf` read: served from the materialised past state.
            return crate::asof::read(self.options.query_timeout, at, f).await;
        }
        let state = Arc::clone(self);
        tokio::task::spawn_blocking(move || match state.options.query_timeout {
            Some(timeout) => state.engine.read(|conn| conn.within(timeout, f)),
            None => state.engine.read(f),
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::from)
    }
}
