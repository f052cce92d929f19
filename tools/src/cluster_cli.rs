//! `pocketlog cluster status|step-down` on the data dir of a running cluster node: the request
//! goes through the server's control socket (`control.rs`, owner only) and the server answers
//! from its cluster node (`api::cluster`). `status` prints the node's status as JSON;
//! `step-down` asks the leader to give its lease up (another node takes over), an error on a
//! node that does not lead.

use anyhow::Result;
use std::sync::Arc;

/// What `pocketlog cluster …` asks.
#[derive(Debug, Clone, Copy, clap::Subcommand, serde::Serialize, serde::Deserialize)]
pub enum ClusterAction {
    /// Prints this node's cluster status (role, leader, epoch, positions, lag) as JSON.
    Status,
    /// Asks this node, the leader, to give its lease up; another node takes over.
    StepDown,
}

/// One request on the control socket: a cluster action, or a superuser action (sent as is by
/// `pocketlog superuser …`, so the socket's protocol is unchanged for it).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum ControlRequest<S> {
    /// `{"cluster": "Status"}`.
    Cluster { cluster: ClusterAction },
    /// A superuser action.
    Superuser(S),
}

/// Performs `action` on the running server's cluster node; the line to print.
pub fn perform(state: &Arc<api::state::AppState>, action: ClusterAction) -> Result<String> {
    let Some(node) = state.cluster.get() else {
        anyhow::bail!("this server does not run in a cluster (no --cluster)");
    };
    match action {
        ClusterAction::Status => Ok(serde_json::to_string_pretty(&node.status())?),
        ClusterAction::StepDown => {
            if node.request_step_down() {
                Ok("asked to step down: another node takes over".to_string())
            } else {
                anyhow::bail!(
                    "this node is not the cluster's leader; run it on the leader's data dir"
                )
            }
        }
    }
}
