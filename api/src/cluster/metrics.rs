//! The cluster's lines of `/api/metrics` (Prometheus text format): this node's role, the
//! epoch, its positions (applied, stream, acknowledged) and its lag (positions and ms), and
//! whether NATS is connected. Read from [`super::Cluster::status`]: no I/O, no NATS call.

use super::{Cluster, Role};
use std::fmt::Write as _;

fn gauge(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    let _ = writeln!(out, "{name} {value}");
}

impl Cluster {
    /// Appends this node's cluster metrics to `out`.
    pub fn write_metrics(&self, out: &mut String) {
        let status = self.status();
        let _ = writeln!(
            out,
            "# HELP pocketlog_cluster_role This node's role (1 for the current one)."
        );
        let _ = writeln!(out, "# TYPE pocketlog_cluster_role gauge");
        for (role, label) in [
            (Role::Leader, "leader"),
            (Role::Follower, "follower"),
            (Role::Candidate, "candidate"),
        ] {
            let _ = writeln!(
                out,
                "pocketlog_cluster_role{{role=\"{label}\"}} {}",
                u8::from(status.role == role)
            );
        }
        gauge(
            out,
            "pocketlog_cluster_epoch",
            "The leader's epoch as this node knows it.",
            status.epoch,
        );
        gauge(
            out,
            "pocketlog_cluster_applied_seq",
            "The last log position on this node.",
            status.applied_seq,
        );
        gauge(
            out,
            "pocketlog_cluster_stream_seq",
            "The last position of the cluster's stream, as last seen.",
            status.stream_seq,
        );
        gauge(
            out,
            "pocketlog_cluster_acked_seq",
            "On the leader: the last position the stream acknowledged.",
            status.acked_seq,
        );
        gauge(
            out,
            "pocketlog_cluster_lag_positions",
            "Positions this node is behind the stream.",
            status.lag_positions,
        );
        gauge(
            out,
            "pocketlog_cluster_lag_milliseconds",
            "Milliseconds between the last applied commit's time and its apply here.",
            status.lag_ms,
        );
        gauge(
            out,
            "pocketlog_cluster_connected",
            "1 while NATS is connected.",
            u8::from(status.connected),
        );
    }
}
