//! One cluster node: the NATS connection, the lease, the leader's publisher and the follower's
//! consumer, switching between them (see `cluster/mod.rs` for the invariants).
//!
//! One control task runs the node: as a follower it consumes the stream into the engine and
//! watches the lease; when the lease is free it takes it, applies whatever the stream still
//! holds, and leads: it publishes every commit from the stream's last position on, in order,
//! and renews the lease. A failed renewal, a refused publish (another writer: fenced) or a
//! lease it no longer holds make it a follower again.

use super::lease::Lease;
use super::{
    stream_description, stream_name, subject_name, ClusterConfig, Diverged, LeaseValue, Replicate,
    Role, Status, APPLY_BATCH_MAX, EPOCH_HEADER, FORK_SEARCH_MAX, FORWARD_TIMEOUT, LEASE_RENEW,
    LEASE_TTL, PUBLISH_BATCH_MAX, RETRY_PAUSE,
};
use async_nats::jetstream::{self, stream};
use engine::{Engine, Seq};
use futures::StreamExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// A running cluster node (shared by the control task, the HTTP layer and the handlers).
pub struct Cluster {
    config: ClusterConfig,
    engine: Engine,
    js: jetstream::Context,
    client: async_nats::Client,
    lease: Lease,
    status: Mutex<Status>,
    /// The last position the stream acknowledged (leader).
    acked: watch::Sender<Seq>,
    /// Set while this node holds the lease and publishes.
    leading: AtomicBool,
    /// The epoch this node leads in (0 when not leading).
    epoch: AtomicU64,
    /// The lease revision this node last wrote (while leading).
    revision: AtomicU64,
    /// Asked to give the lease up (`step-down`).
    step_down: AtomicBool,
    /// The log was found to hold a tail the stream does not: never lead nor apply again in
    /// this process (it restarts to move the tail aside).
    diverged: AtomicBool,
    /// The HTTP client that forwards writes to the leader.
    http: reqwest::Client,
    /// The app state (set by [`Cluster::spawn`]): its schema follows replicated commits.
    app: std::sync::OnceLock<std::sync::Weak<crate::state::AppState>>,
}

/// Why leading or following stopped.
enum Next {
    Lead { revision: u64, epoch: u64 },
    Follow,
}

/// How long opening the stream's consumer is retried before the node gives up.
const OPEN_CONSUMER_PATIENCE: Duration = Duration::from_secs(60);

fn nats_error(what: &str, err: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{what}: {err}")
}

impl Cluster {
    /// Connects to NATS, opens (or creates) the cluster's stream and lease bucket, and checks
    /// that this data dir belongs to the cluster. Does not take any role yet.
    pub async fn connect(config: ClusterConfig, engine: Engine) -> anyhow::Result<Arc<Cluster>> {
        super::check_name(&config.name).map_err(|err| anyhow::anyhow!(err))?;
        let urls: Vec<async_nats::ServerAddr> = config
            .urls
            .iter()
            .map(|url| {
                url.parse()
                    .map_err(|err| anyhow::anyhow!("--cluster {url:?}: not a NATS URL: {err}"))
            })
            .collect::<anyhow::Result<_>>()?;
        let connect = async_nats::ConnectOptions::new()
            .name(format!("pocketlog {} {}", config.name, config.node_id))
            .connection_timeout(config.connect_timeout)
            .connect(urls);
        let client = tokio::time::timeout(config.connect_timeout, connect)
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "cannot reach NATS at {} within {:?}",
                    config.urls.join(","),
                    config.connect_timeout
                )
            })?
            .map_err(|err| {
                anyhow::anyhow!("cannot reach NATS at {}: {err}", config.urls.join(","))
            })?;
        let js = jetstream::new(client.clone());
        let name = stream_name(&config.name);
        let description = stream_description(&config.name);
        let mut stream = js
            .get_or_create_stream(stream::Config {
                name: name.clone(),
                subjects: vec![subject_name(&config.name)],
                description: Some(description.clone()),
                storage: stream::StorageType::File,
                num_replicas: config.stream_replicas.max(1),
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .map_err(|err| {
                nats_error(
                    &format!("cannot open the JetStream stream {name} (is JetStream enabled?)"),
                    err,
                )
            })?;
        let info = stream
            .info()
            .await
            .map_err(|err| nats_error("stream info", err))?;
        if info.config.description.as_deref() != Some(description.as_str())
            || info.config.subjects != vec![subject_name(&config.name)]
        {
            anyhow::bail!(
                "the JetStream stream {name} was not made by pocketlog cluster {:?} \
                 (description {:?}, subjects {:?}); refusing to use it",
                config.name,
                info.config.description,
                info.config.subjects
            );
        }
        let lease = Lease::open(&js, &config.name, config.stream_replicas, LEASE_TTL).await?;
        let cluster = Arc::new(Cluster {
            status: Mutex::new(Status {
                name: config.name.clone(),
                node: config.node_id.clone(),
                role: Role::Candidate,
                replicate: match config.replicate {
                    Replicate::Async => "async",
                    Replicate::Sync => "sync",
                },
                leader: None,
                epoch: 0,
                applied_seq: engine.last_seq(),
                stream_seq: info.state.last_sequence,
                acked_seq: 0,
                lag_positions: 0,
                lag_ms: 0,
                connected: true,
                error: None,
                discarded: None,
            }),
            acked: watch::channel(0).0,
            leading: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            revision: AtomicU64::new(0),
            step_down: AtomicBool::new(false),
            diverged: AtomicBool::new(false),
            http: reqwest::Client::builder()
                .timeout(FORWARD_TIMEOUT)
                .build()
                .map_err(|err| anyhow::anyhow!("the forwarding HTTP client: {err}"))?,
            app: std::sync::OnceLock::new(),
            config,
            engine,
            js,
            client,
            lease,
        });
        cluster.check_history(info.state.last_sequence).await?;
        Ok(cluster)
    }

    /// The HTTP client that forwards writes to the leader.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The settings.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// The status for `/api/health` and `/api/cluster`.
    pub fn status(&self) -> Status {
        let mut status = self.lock_status().clone();
        status.applied_seq = self.engine.last_seq();
        status.acked_seq = *self.acked.borrow();
        status.lag_positions = status.stream_seq.saturating_sub(status.applied_seq);
        status.connected =
            self.client.connection_state() == async_nats::connection::State::Connected;
        status
    }

    fn lock_status(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_error(&self, error: Option<String>) {
        if let Some(error) = &error {
            tracing::warn!(error = %error, "cluster: degraded");
        }
        self.lock_status().error = error;
    }

    /// Whether this node leads (holds the lease and publishes) right now.
    pub fn is_leader(&self) -> bool {
        self.leading.load(Ordering::SeqCst)
    }

    /// Whether NATS is connected.
    pub fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// The leader's HTTP base URL, as the lease says (None: no leader now, or this node is
    /// named but no longer leads).
    pub fn leader_url(&self) -> Option<String> {
        self.lock_status()
            .leader
            .as_ref()
            .filter(|leader| leader.node != self.config.node_id)
            .map(|leader| leader.http.clone())
    }

    /// Asks the leader to give up its lease (it becomes a follower; another node takes over).
    pub fn request_step_down(&self) -> bool {
        if self.is_leader() {
            self.step_down.store(true, Ordering::SeqCst);
            true
        } else {
            false
        }
    }

    /// Waits until the stream acknowledged every commit up to `seq` (false on timeout).
    pub async fn wait_acked(&self, seq: Seq, timeout: Duration) -> bool {
        let mut acked = self.acked.subscribe();
        tokio::time::timeout(timeout, acked.wait_for(|acked| *acked >= seq))
            .await
            .map(|result| result.is_ok())
            .unwrap_or(false)
    }

    /// The last of the first `published` positions realtime may deliver: on a `sync` node that
    /// leads (or led and holds a tail the stream lacks), only what the stream acknowledged or
    /// holds; otherwise everything published.
    pub fn visible_seq(&self, published: Seq) -> Seq {
        if self.config.replicate != Replicate::Sync {
            return published;
        }
        let acked = *self.acked.borrow();
        if self.is_leader() || self.diverged.load(Ordering::SeqCst) {
            return published.min(acked);
        }
        published.min(acked.max(self.lock_status().stream_seq))
    }

    /// Waits until realtime may deliver `seq` ([`Cluster::visible_seq`]).
    pub async fn wait_visible(&self, seq: Seq) {
        let mut acked = self.acked.subscribe();
        while self.visible_seq(seq) < seq {
            tokio::select! {
                _ = acked.changed() => {}
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
    }

    /// Waits until this node has applied (and published) `seq` (false on timeout).
    pub async fn wait_applied(&self, seq: Seq, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.engine.published_seq() < seq {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        true
    }

    /// Refuses a data dir that shares no position with the stream (another cluster's); a
    /// shared history that forked later is [`Cluster::start_role`]'s to handle.
    async fn check_history(&self, stream_last: Seq) -> anyhow::Result<()> {
        let common = self.engine.last_seq().min(stream_last);
        if common > 0 && self.fork_point(stream_last).await? == 0 {
            anyhow::bail!(
                "this data dir does not belong to cluster {:?}: its commit at position 1 \
                 differs from the stream's (wrong --cluster-name, or a data dir of another \
                 cluster)",
                self.config.name
            );
        }
        Ok(())
    }

    /// The last position whose commit is the same frame in the local log and in the stream
    /// (searching back from the last position both hold, at most [`FORK_SEARCH_MAX`]).
    async fn fork_point(&self, stream_last: Seq) -> anyhow::Result<Seq> {
        let mut position = self.engine.last_seq().min(stream_last);
        if position == 0 {
            return Ok(0);
        }
        let stream = self
            .js
            .get_stream(stream_name(&self.config.name))
            .await
            .map_err(|err| nats_error("stream", err))?;
        let lowest = position.saturating_sub(FORK_SEARCH_MAX);
        while position > lowest {
            let ours = self
                .engine
                .log()
                .read_from(position, 1)
                .map_err(|err| anyhow::anyhow!("reading the local log at {position}: {err}"))?;
            let Some(ours) = ours.first().filter(|commit| commit.seq == position) else {
                // Compacted away locally: nothing older to compare.
                return Ok(position);
            };
            let ours = engine::encode_frame(ours).map_err(|err| anyhow::anyhow!("{err}"))?;
            let theirs = stream
                .get_raw_message(position)
                .await
                .map_err(|err| nats_error(&format!("reading the stream at {position}"), err))?;
            if theirs.payload.as_ref() == ours.as_slice() {
                return Ok(position);
            }
            position -= 1;
        }
        if lowest == 0 {
            Ok(0)
        } else {
            anyhow::bail!(
                "this node's log and the cluster's stream differ over more than \
                 {FORK_SEARCH_MAX} positions"
            )
        }
    }

    /// `Err(Diverged)` when the log holds commits after the last position it shares with the
    /// stream that the stream does not: always when they differ from the stream's, and past
    /// the stream's end unless `may_publish` (a node taking the lease publishes its tail).
    async fn check_fork(&self, stream_last: Seq, may_publish: bool) -> anyhow::Result<()> {
        let last = self.engine.last_seq();
        let keep = self.fork_point(stream_last).await?;
        let diverged = keep < last.min(stream_last) || (!may_publish && last > stream_last);
        if diverged {
            self.diverged.store(true, Ordering::SeqCst);
            let keep = if keep < last.min(stream_last) {
                keep
            } else {
                stream_last
            };
            return Err(anyhow::Error::new(Diverged { keep, last }));
        }
        Ok(())
    }

    /// Records the tail this node moved aside before it rejoined (shown in its status).
    pub fn set_discarded(&self, discarded: super::DiscardedTail) {
        self.lock_status().discarded = Some(discarded);
    }

    async fn stream_last(&self) -> anyhow::Result<Seq> {
        let mut stream = self
            .js
            .get_stream(stream_name(&self.config.name))
            .await
            .map_err(|err| nats_error("stream", err))?;
        let info = stream
            .info()
            .await
            .map_err(|err| nats_error("stream info", err))?;
        let last = info.state.last_sequence;
        self.lock_status().stream_seq = last;
        Ok(last)
    }

    async fn read_lease(&self) -> anyhow::Result<Option<(LeaseValue, u64)>> {
        let entry = self.lease.entry().await?;
        Ok(entry.and_then(|entry| {
            entry
                .value
                .and_then(|value| serde_json::from_slice::<LeaseValue>(&value).ok())
                .map(|value| (value, entry.revision))
        }))
    }

    /// Tries to take the lease: `Some((revision, epoch))` when this node got it.
    async fn try_take_lease(&self) -> anyhow::Result<Option<(u64, u64)>> {
        // The epoch is the revision of the create; the value names it once renewed.
        let value = |epoch: u64| LeaseValue {
            node: self.config.node_id.clone(),
            http: self.config.advertise.clone(),
            epoch,
        };
        let bytes = serde_json::to_vec(&value(0))?;
        let Some(created) = self.lease.create(bytes).await? else {
            return Ok(None);
        };
        let epoch = created;
        let bytes = serde_json::to_vec(&value(epoch))?;
        let Some(revision) = self.lease.update(bytes, created).await? else {
            return Ok(None);
        };
        self.lock_status().leader = Some(value(epoch));
        Ok(Some((revision, epoch)))
    }

    /// Takes a role before the server starts: the leader if the lease is free (after applying
    /// the stream's tail), otherwise a follower caught up with the stream (so that a fresh
    /// data dir gets the leader's bootstrap instead of making its own). Returns the role.
    pub async fn start_role(self: &Arc<Self>) -> anyhow::Result<Role> {
        loop {
            let stream_last = self.stream_last().await?;
            self.check_fork(stream_last, true).await?;
            if let Some((revision, epoch)) = self.try_take_lease().await? {
                self.catch_up_to(stream_last).await?;
                self.become_leader(revision, epoch);
                return Ok(Role::Leader);
            }
            self.engine.set_follower(true);
            self.lock_status().role = Role::Follower;
            if let Some((leader, _)) = self.read_lease().await? {
                self.lock_status().leader = Some(leader);
            }
            self.check_fork(stream_last, false).await?;
            if stream_last >= 1 {
                self.catch_up_to(stream_last).await?;
                return Ok(Role::Follower);
            }
            // A leader without its first commit published yet: wait for it.
            tracing::info!("cluster: waiting for the leader's first commit");
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    fn become_leader(&self, revision: u64, epoch: u64) {
        self.revision.store(revision, Ordering::SeqCst);
        self.epoch.store(epoch, Ordering::SeqCst);
        self.engine.set_follower(false);
        self.leading.store(true, Ordering::SeqCst);
        let mut status = self.lock_status();
        status.role = Role::Leader;
        status.epoch = epoch;
        status.error = None;
        tracing::info!(epoch, node = %self.config.node_id, "cluster: this node leads");
    }

    fn become_follower(&self, why: &str) {
        self.leading.store(false, Ordering::SeqCst);
        self.engine.set_follower(true);
        self.epoch.store(0, Ordering::SeqCst);
        let mut status = self.lock_status();
        status.role = Role::Follower;
        status.leader = None;
        drop(status);
        tracing::warn!(reason = why, "cluster: this node follows");
    }

    /// Applies the stream until this node holds position `target`.
    async fn catch_up_to(&self, target: Seq) -> anyhow::Result<()> {
        if self.engine.last_seq() >= target {
            return Ok(());
        }
        let mut messages = self.open_consumer().await?;
        while self.engine.last_seq() < target {
            let batch = tokio::time::timeout(Duration::from_secs(30), messages.next())
                .await
                .map_err(|_| anyhow::anyhow!("the stream stopped delivering while catching up"))?
                .ok_or_else(|| anyhow::anyhow!("the stream closed while catching up"))?;
            self.apply(batch).await?;
        }
        Ok(())
    }

    /// [`Self::open_consumer_once`], retried while JetStream is unavailable (a NATS node that
    /// just restarted answers timeouts until its cluster has a meta leader again) for up to
    /// [`OPEN_CONSUMER_PATIENCE`].
    async fn open_consumer(
        &self,
    ) -> anyhow::Result<futures::stream::ReadyChunks<jetstream::consumer::pull::Ordered>> {
        let deadline = tokio::time::Instant::now() + OPEN_CONSUMER_PATIENCE;
        loop {
            match self.open_consumer_once().await {
                Ok(messages) => return Ok(messages),
                Err(err) if tokio::time::Instant::now() < deadline => {
                    tracing::info!(error = %err, "cluster: the stream is not available yet; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(err) => return Err(err),
            }
        }
    }

    async fn open_consumer_once(
        &self,
    ) -> anyhow::Result<futures::stream::ReadyChunks<jetstream::consumer::pull::Ordered>> {
        let start = self.engine.last_seq() + 1;
        let stream = self
            .js
            .get_stream(stream_name(&self.config.name))
            .await
            .map_err(|err| nats_error("stream", err))?;
        let consumer = stream
            .create_consumer(jetstream::consumer::pull::OrderedConfig {
                deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: start,
                },
                ..Default::default()
            })
            .await
            .map_err(|err| nats_error("creating the stream consumer", err))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|err| nats_error("consuming the stream", err))?;
        Ok(messages.ready_chunks(APPLY_BATCH_MAX))
    }

    /// Verifies and applies a batch of delivered messages.
    async fn apply(
        &self,
        batch: Vec<Result<jetstream::Message, jetstream::consumer::pull::OrderedError>>,
    ) -> anyhow::Result<()> {
        let mut commits = Vec::with_capacity(batch.len());
        let mut stream_last = 0;
        for message in batch {
            let message = message.map_err(|err| nats_error("stream delivery", err))?;
            let info = message
                .info()
                .map_err(|err| nats_error("stream message info", err))?;
            let seq = info.stream_sequence;
            stream_last = seq + info.pending;
            let commit = engine::decode_frame(&message.payload, Some(seq))
                .map_err(|err| anyhow::anyhow!("stream message {seq}: {err}"))?;
            commits.push(commit);
        }
        let Some(last) = commits.last() else {
            return Ok(());
        };
        let timestamp = last.timestamp_ms;
        let schema_changes: Vec<engine::Commit> = commits
            .iter()
            .filter(|commit| crate::state::touches_collections(commit))
            .cloned()
            .collect();
        let engine = self.engine.clone();
        // Callers whose record or collection a replicated commit changes are dropped from the
        // verified-caller cache right after the batch is visible (`auth_cache` invariant 1).
        let auth_cache = self
            .app
            .get()
            .and_then(std::sync::Weak::upgrade)
            .map(|app| Arc::clone(&app.auth_cache))
            .filter(|cache| commits.iter().any(|commit| cache.changes_callers(commit)));
        tokio::task::spawn_blocking(move || {
            let applied = engine.apply_replicated(commits);
            if let Some(cache) = auth_cache {
                cache.invalidate();
            }
            applied
        })
        .await
        .map_err(|err| anyhow::anyhow!("{err}"))?
        .map_err(|err| anyhow::anyhow!("applying replicated commits: {err}"))?;
        // The schema follows before anyone waiting for these positions is answered.
        if let Some(app) = self.app.get().and_then(std::sync::Weak::upgrade) {
            for commit in &schema_changes {
                app.follow(commit)
                    .map_err(|err| anyhow::anyhow!("reloading the schema: {err}"))?;
            }
        }
        let mut status = self.lock_status();
        status.stream_seq = status.stream_seq.max(stream_last);
        status.lag_ms = (chrono::Utc::now().timestamp_millis() - timestamp).max(0);
        Ok(())
    }

    /// Runs the node until the process stops (on the current tokio runtime).
    pub fn spawn(self: &Arc<Self>, app: &Arc<crate::state::AppState>) {
        let _ = self.app.set(Arc::downgrade(app));
        let node = Arc::clone(self);
        tokio::spawn(async move {
            let mut next = if node.is_leader() {
                Next::Lead {
                    revision: node.revision.load(Ordering::SeqCst),
                    epoch: node.epoch.load(Ordering::SeqCst),
                }
            } else {
                Next::Follow
            };
            loop {
                next = match next {
                    Next::Lead { revision, epoch } => node.lead(revision, epoch).await,
                    Next::Follow => node.follow().await,
                };
            }
        });
    }

    /// Leads until the lease is lost or a publish is fenced; returns [`Next::Follow`].
    async fn lead(&self, mut revision: u64, epoch: u64) -> Next {
        self.become_leader(revision, epoch);
        let mut renew = tokio::time::interval(LEASE_RENEW);
        let mut lease_until = Instant::now() + LEASE_TTL;
        let mut publisher: Option<(engine::Subscription, Seq)> = None;
        let value = serde_json::to_vec(&LeaseValue {
            node: self.config.node_id.clone(),
            http: self.config.advertise.clone(),
            epoch,
        })
        .unwrap_or_default();
        loop {
            if self.step_down.swap(false, Ordering::SeqCst) {
                let _ = self.lease.release(revision).await;
                self.become_follower("asked to step down");
                // Give another node the time to take over before this one may try again.
                tokio::time::sleep(LEASE_TTL).await;
                return Next::Follow;
            }
            if Instant::now() >= lease_until {
                self.become_follower("the lease expired before it could be renewed");
                return Next::Follow;
            }
            if publisher.is_none() {
                match self.stream_last().await {
                    Ok(last) if last > self.engine.last_seq() => {
                        self.become_follower("the stream holds commits this node lacks (fenced)");
                        return Next::Follow;
                    }
                    Ok(last) => {
                        self.acked.send_replace(last);
                        match self.engine.subscribe(last + 1) {
                            Ok(subscription) => {
                                self.set_error(None);
                                publisher = Some((subscription, last + 1));
                            }
                            Err(err) => self.set_error(Some(format!(
                                "cannot read the log from position {}: {err}",
                                last + 1
                            ))),
                        }
                    }
                    Err(err) => self.set_error(Some(format!("{err:#}"))),
                }
            }
            let ready = async {
                match publisher.as_mut() {
                    Some((subscription, _)) => {
                        std::future::poll_fn(|cx| subscription.poll_ready(cx)).await
                    }
                    None => tokio::time::sleep(RETRY_PAUSE).await,
                }
            };
            tokio::select! {
                _ = renew.tick() => {
                    match self.lease.update(value.clone(), revision).await {
                        Ok(Some(next)) => {
                            revision = next;
                            lease_until = Instant::now() + LEASE_TTL;
                        }
                        Ok(None) => {
                            self.become_follower("another node holds the lease");
                            return Next::Follow;
                        }
                        Err(err) => self.set_error(Some(format!("renewing the lease: {err:#}"))),
                    }
                }
                () = ready => {
                    let Some((subscription, _)) = publisher.as_mut() else { continue };
                    let commits = match subscription.try_next_batch(PUBLISH_BATCH_MAX) {
                        Ok(commits) => commits,
                        Err(err) => {
                            self.set_error(Some(format!("reading the log: {err}")));
                            publisher = None;
                            continue;
                        }
                    };
                    if let Err(err) = self.publish(&commits, epoch).await {
                        let fenced = format!("{err:#}").contains("wrong last sequence");
                        if fenced {
                            self.become_follower("the stream refused a publish (another writer)");
                            return Next::Follow;
                        }
                        self.set_error(Some(format!("{err:#}")));
                        publisher = None;
                        tokio::time::sleep(RETRY_PAUSE).await;
                    }
                }
            }
        }
    }

    /// Publishes commits in order (pipelined), then awaits their acknowledgements.
    async fn publish(&self, commits: &[Arc<engine::Commit>], epoch: u64) -> anyhow::Result<()> {
        let subject = subject_name(&self.config.name);
        let mut acks = Vec::with_capacity(commits.len());
        for commit in commits {
            let frame = engine::encode_frame(commit).map_err(|err| anyhow::anyhow!("{err}"))?;
            let publish = jetstream::message::PublishMessage::build()
                .payload(frame.into())
                .message_id(commit.seq.to_string())
                .expected_last_sequence(commit.seq - 1)
                .header(EPOCH_HEADER, epoch.to_string().as_str());
            let ack = self
                .js
                .send_publish(subject.clone(), publish)
                .await
                .map_err(|err| nats_error(&format!("publishing position {}", commit.seq), err))?;
            acks.push((commit.seq, ack));
        }
        for (seq, ack) in acks {
            let ack = ack
                .await
                .map_err(|err| nats_error(&format!("publishing position {seq}"), err))?;
            if ack.sequence != seq {
                anyhow::bail!(
                    "the stream stored position {seq} at its sequence {}: wrong last sequence",
                    ack.sequence
                );
            }
            self.acked.send_replace(seq);
            self.lock_status().stream_seq = seq;
        }
        Ok(())
    }

    /// Follows the stream until this node takes the lease; returns [`Next::Lead`].
    async fn follow(&self) -> Next {
        self.engine.set_follower(true);
        self.lock_status().role = Role::Follower;
        let mut watch = tokio::time::interval(LEASE_RENEW);
        let mut messages = None;
        loop {
            if messages.is_none() {
                let checked = match self.stream_last().await {
                    Ok(last) => self.check_fork(last, false).await,
                    Err(err) => Err(err),
                };
                match checked {
                    Ok(()) => {}
                    Err(err) if err.downcast_ref::<Diverged>().is_some() => {
                        self.lock_status().role = Role::Candidate;
                        self.set_error(Some(format!(
                            "{err:#}; restarting to move it aside and rejoin"
                        )));
                        if let Some(app) = self.app.get().and_then(std::sync::Weak::upgrade) {
                            app.backups.restart_requested().notify_waiters();
                        }
                        tokio::time::sleep(RETRY_PAUSE).await;
                        continue;
                    }
                    Err(err) => {
                        self.set_error(Some(format!("{err:#}")));
                        tokio::time::sleep(RETRY_PAUSE).await;
                        continue;
                    }
                }
                match self.open_consumer().await {
                    Ok(opened) => {
                        self.set_error(None);
                        messages = Some(opened);
                    }
                    Err(err) => {
                        self.set_error(Some(format!("{err:#}")));
                        tokio::time::sleep(RETRY_PAUSE).await;
                        continue;
                    }
                }
            }
            let Some(stream) = messages.as_mut() else {
                continue;
            };
            tokio::select! {
                batch = stream.next() => match batch {
                    Some(batch) => {
                        if let Err(err) = self.apply(batch).await {
                            self.set_error(Some(format!("{err:#}")));
                            messages = None;
                            tokio::time::sleep(RETRY_PAUSE).await;
                        }
                    }
                    None => messages = None,
                },
                _ = watch.tick() => {
                    match self.read_lease().await {
                        Ok(Some((leader, _))) => {
                            let mut status = self.lock_status();
                            status.epoch = leader.epoch;
                            status.leader = Some(leader);
                        }
                        Ok(None) if self.diverged.load(Ordering::SeqCst) => {}
                        Ok(None) => {
                            self.lock_status().leader = None;
                            // The most caught-up follower tries first: a lagging one waits
                            // a little per position it lacks.
                            let behind = self.lock_status().stream_seq.saturating_sub(self.engine.last_seq());
                            if behind > 0 {
                                tokio::time::sleep(Duration::from_millis(behind.min(200) * 5)).await;
                            }
                            match self.try_take_lease().await {
                                Ok(Some((revision, epoch))) => {
                                    drop(messages.take());
                                    let caught = match self.stream_last().await {
                                        Ok(last) => self.catch_up_to(last).await,
                                        Err(err) => Err(err),
                                    };
                                    match caught {
                                        Ok(()) => return Next::Lead { revision, epoch },
                                        Err(err) => {
                                            self.set_error(Some(format!("taking over: {err:#}")));
                                            let _ = self.lease.release(revision).await;
                                        }
                                    }
                                }
                                Ok(None) => {}
                                Err(err) => self.set_error(Some(format!("{err:#}"))),
                            }
                        }
                        Err(err) => self.set_error(Some(format!("{err:#}"))),
                    }
                }
            }
        }
    }
}
