//! Replicas and failover by shipping the log through NATS JetStream (`serve --cluster`).
//!
//! One JetStream stream per cluster (`PL_<NAME>`, one subject) holds the log's own frames: the
//! message at stream sequence N is the commit at log position N (published with
//! `Nats-Msg-Id: N` and `Nats-Expected-Last-Sequence: N-1`, so a second writer is refused by
//! the stream). Leadership is a lease (`lease.rs`: a one-message stream `PL_<NAME>_LEASE`, TTL [`LEASE_TTL`]),
//! taken with compare-and-set (create) and renewed with compare-and-set on its revision; the
//! revision that created it is the leader's *epoch*, carried by every published commit
//! (`Pl-Epoch` header).
//!
//! Invariants:
//! 1. Standalone stays the default: without `--cluster` nothing here runs.
//! 2. A node writes locally only while it holds the lease; a follower's engine is in follower
//!    mode (`engine::Engine::set_follower`) and only appends replicated commits, verified by
//!    checksum and continuity (same positions, same frame bytes as the leader's log).
//! 3. `sync`: a write is answered only once the stream acknowledged every commit up to it
//!    (`forward.rs`); when the stream cannot be reached writes are refused before they run.
//! 4. A follower whose log holds commits the stream does not (a deposed leader's unreplicated
//!    tail) or whose log differs from the stream past a common position never applies the
//!    stream over that history: it stops following and restarts; at start the tail after the
//!    last common position is moved aside into `.broken-cluster-*` files
//!    (`engine::admin::discard_log_tail`, crash-safe) and the node rejoins as a follower,
//!    reporting the discarded range in its status (`discarded`) and the log. A data dir that
//!    shares no position with the stream is refused (another cluster's).
//! 5. A node takes over only after it has applied everything the stream holds.

pub mod forward;
mod lease;
mod metrics;
mod node;

pub use engine::admin::DiscardedTail;
pub use node::Cluster;

use std::time::Duration;

/// How long a leader's lease lives without renewal (the lease stream's max age).
pub const LEASE_TTL: Duration = Duration::from_secs(3);
/// How often the leader renews its lease (and followers look at it).
pub const LEASE_RENEW: Duration = Duration::from_millis(750);
/// How long the leader waits for the stream's acknowledgement of a `sync` write.
pub const SYNC_ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a follower waits to apply a forwarded write before answering.
pub const FORWARD_APPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a forwarded write may take at the leader.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(60);
/// Commits applied by a follower in one engine call at most.
pub const APPLY_BATCH_MAX: usize = 512;
/// Commits the leader publishes before awaiting their acknowledgements.
pub const PUBLISH_BATCH_MAX: usize = 256;
/// Pause before retrying after NATS failed.
pub const RETRY_PAUSE: Duration = Duration::from_millis(500);
/// How far back (positions) a node looks for the last position its log shares with the
/// stream before it gives up.
pub const FORK_SEARCH_MAX: u64 = 100_000;
/// The longest cluster name (it names the stream and the bucket).
pub const CLUSTER_NAME_MAX: usize = 64;
/// The header carrying the leader's epoch on every published commit.
pub const EPOCH_HEADER: &str = "Pl-Epoch";
/// The response header with the leader's last log position after a write.
pub const SEQ_HEADER: &str = "x-pocketlog-seq";
/// The request header marking a write forwarded by a follower (never forwarded again).
pub const FORWARDED_HEADER: &str = "x-pocketlog-forwarded";

/// When a write is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Replicate {
    /// After the local fsync; shipped after.
    #[default]
    Async,
    /// After the local fsync and the stream's (quorum) acknowledgement.
    Sync,
}

impl std::str::FromStr for Replicate {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "async" => Ok(Replicate::Async),
            "sync" => Ok(Replicate::Sync),
            other => Err(format!(
                "unknown replication mode {other:?} (use async or sync)"
            )),
        }
    }
}

/// `serve --cluster …` settings.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// NATS server URLs.
    pub urls: Vec<String>,
    /// The cluster's name (names the stream and the lease bucket).
    pub name: String,
    /// Durability mode.
    pub replicate: Replicate,
    /// This node's HTTP base URL as the other nodes reach it (e.g. `http://127.0.0.1:8090`).
    pub advertise: String,
    /// This node's id (unique in the cluster).
    pub node_id: String,
    /// Replicas of the stream and the bucket in the NATS cluster (1 for a single NATS server).
    pub stream_replicas: usize,
    /// How long to try reaching NATS at start before giving up.
    pub connect_timeout: Duration,
}

/// Checks a cluster name: 1 to [`CLUSTER_NAME_MAX`] ASCII letters, digits, `-` or `_`.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > CLUSTER_NAME_MAX
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!(
            "invalid cluster name {name:?}: use 1 to {CLUSTER_NAME_MAX} letters, digits, '-' or '_'"
        ));
    }
    Ok(())
}

/// Whether this server is a cluster node that does not lead now: it runs no cron job and no
/// migration (their writes are the leader's; a follower's engine refuses local writes).
pub fn follows(state: &crate::state::AppState) -> bool {
    state.cluster.get().is_some_and(|node| !node.is_leader())
}

/// The stream of a cluster.
pub fn stream_name(cluster: &str) -> String {
    format!("PL_{}", cluster.replace('-', "_").to_uppercase())
}

/// The single subject of a cluster's stream.
pub fn subject_name(cluster: &str) -> String {
    format!("pl.{cluster}.log")
}

/// The lease stream's base name of a cluster.
pub fn bucket_name(cluster: &str) -> String {
    format!("pl_{}_lease", cluster.replace('-', "_"))
}

/// The stream description that marks it as this cluster's.
pub fn stream_description(cluster: &str) -> String {
    format!("pocketlog log of cluster {cluster}")
}

/// This node's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Holds the lease and publishes.
    Leader,
    /// Follows the stream.
    Follower,
    /// Neither: starting, taking over, or stopped on an error (see the status's `error`).
    Candidate,
}

/// The lease's value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LeaseValue {
    /// The leader's node id.
    pub node: String,
    /// The leader's HTTP base URL.
    pub http: String,
    /// The leader's epoch (the lease revision that created it).
    pub epoch: u64,
}

/// What `/api/health` (superusers) and `/api/cluster` show.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// The cluster's name.
    pub name: String,
    /// This node's id.
    pub node: String,
    /// This node's role.
    pub role: Role,
    /// `async` or `sync`.
    pub replicate: &'static str,
    /// The current leader (as the lease says), if any.
    pub leader: Option<LeaseValue>,
    /// The current epoch (0: none yet).
    pub epoch: u64,
    /// The last log position on this node.
    pub applied_seq: u64,
    /// The last position the stream holds (as last seen).
    pub stream_seq: u64,
    /// On the leader: the last position the stream acknowledged.
    pub acked_seq: u64,
    /// Positions this node is behind the stream.
    pub lag_positions: u64,
    /// Milliseconds between the last applied commit's time and its apply here (followers).
    pub lag_ms: i64,
    /// Whether NATS is reachable.
    pub connected: bool,
    /// Why the node is degraded, if it is.
    pub error: Option<String>,
    /// The unreplicated tail this node moved aside when it rejoined, if it did.
    pub discarded: Option<engine::admin::DiscardedTail>,
}

/// A node's log holds commits after `keep` that the cluster's stream does not (a deposed
/// leader's unreplicated tail): they must be moved aside before it can follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Diverged {
    /// The last position the log shares with the stream.
    pub keep: engine::Seq,
    /// The log's last position.
    pub last: engine::Seq,
}

impl std::fmt::Display for Diverged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "this node's log holds positions {} to {} that the cluster's stream does not \
             (a deposed leader's unreplicated tail)",
            self.keep + 1,
            self.last
        )
    }
}

impl std::error::Error for Diverged {}
