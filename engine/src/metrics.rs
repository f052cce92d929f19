//! The engine's run-time metrics: counters and histograms updated on the hot path with
//! relaxed atomics only (no lock, no allocation), read by `GET /api/metrics`.
//!
//! Invariants:
//! 1. Updating a metric never blocks and never allocates: a histogram is a fixed array of
//!    atomic bucket counters ([`Histogram`]), a counter one atomic.
//! 2. Reading is a set of independent loads: a scrape may see one metric a moment newer than
//!    another, never a torn value of one counter.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histograms' buckets (`+Inf` is implied).
pub const LATENCY_BUCKETS_SECONDS: [f64; 14] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Upper bounds of the group-size histogram's buckets (commands per group).
pub const GROUP_SIZE_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// A Prometheus-style cumulative histogram over fixed bounds, lock-free.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// One counter per bound, plus the `+Inf` bucket (not cumulative here; summed on read).
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    /// The sum of observations in millionths of the unit (integer, so it can be atomic).
    sum_micros: AtomicU64,
}

/// A consistent-enough copy of a [`Histogram`] for rendering.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// `(upper bound, cumulative count)` per bucket, `+Inf` last (as `f64::INFINITY`).
    pub buckets: Vec<(f64, u64)>,
    /// Number of observations.
    pub count: u64,
    /// Sum of observations (in the histogram's unit).
    pub sum: f64,
}

impl Histogram {
    /// A histogram over `bounds` (ascending).
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// A latency histogram over [`LATENCY_BUCKETS_SECONDS`].
    pub fn latency() -> Histogram {
        Histogram::new(&LATENCY_BUCKETS_SECONDS)
    }

    /// Records one observation.
    pub fn observe(&self, value: f64) {
        let index = self
            .bounds
            .iter()
            .position(|bound| value <= *bound)
            .unwrap_or(self.bounds.len());
        if let Some(bucket) = self.buckets.get(index) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = (value.max(0.0) * 1_000_000.0) as u64;
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Records a duration in seconds.
    pub fn observe_duration(&self, elapsed: Duration) {
        self.observe(elapsed.as_secs_f64());
    }

    /// The cumulative buckets, count and sum.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(self.buckets.len());
        for (index, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let bound = self.bounds.get(index).copied().unwrap_or(f64::INFINITY);
            buckets.push((bound, cumulative));
        }
        HistogramSnapshot {
            buckets,
            count: cumulative,
            sum: self.sum_micros.load(Ordering::Relaxed) as f64 / 1_000_000.0,
        }
    }
}

/// The engine's metrics (one per open engine, see `Engine::metrics`).
#[derive(Debug)]
pub struct EngineMetrics {
    /// Duration of each group's log append, fsync included (seconds).
    pub append_seconds: Histogram,
    /// Commands per write group.
    pub group_size: Histogram,
    /// Commands queued for the writer and not yet taken into a group.
    pub(crate) queued: AtomicI64,
    /// Commits appended since the engine opened.
    pub commits: AtomicU64,
    /// Write groups that failed as a whole (I/O, full disk).
    pub failed_groups: AtomicU64,
    /// Compactions run since the engine opened.
    pub compactions: AtomicU64,
    /// Unix milliseconds of the last finished compaction (0 = none yet).
    pub last_compaction_ms: AtomicU64,
    /// Snapshots cut since the engine opened.
    pub snapshots: AtomicU64,
    /// 1 while a compaction runs, else 0.
    pub compacting: AtomicU64,
    /// Redactions finished since the engine opened (`redact.rs`).
    pub redactions: AtomicU64,
    /// 1 while a redaction rewrites history, else 0.
    pub redacting: AtomicU64,
}

impl Default for EngineMetrics {
    fn default() -> Self {
        EngineMetrics {
            append_seconds: Histogram::latency(),
            group_size: Histogram::new(&GROUP_SIZE_BUCKETS),
            queued: AtomicI64::new(0),
            commits: AtomicU64::new(0),
            failed_groups: AtomicU64::new(0),
            compactions: AtomicU64::new(0),
            last_compaction_ms: AtomicU64::new(0),
            snapshots: AtomicU64::new(0),
            compacting: AtomicU64::new(0),
            redactions: AtomicU64::new(0),
            redacting: AtomicU64::new(0),
        }
    }
}

impl EngineMetrics {
    /// Commands waiting in the writer's queue now.
    pub fn queue_depth(&self) -> u64 {
        u64::try_from(self.queued.load(Ordering::Relaxed)).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let histogram = Histogram::new(&GROUP_SIZE_BUCKETS);
        for value in [1.0, 1.0, 3.0, 300.0] {
            histogram.observe(value);
        }
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.count, 4);
        assert_eq!(snapshot.buckets[0], (1.0, 2));
        assert_eq!(snapshot.buckets[2], (4.0, 3));
        assert_eq!(snapshot.buckets.last().map(|b| b.1), Some(4));
        assert!(snapshot.buckets.last().is_some_and(|b| b.0.is_infinite()));
        assert!((snapshot.sum - 305.0).abs() < 1e-6);
    }
}
