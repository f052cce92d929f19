//! Latency recording, percentiles and the server's memory from `/proc/PID/status`.

use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// What one load worker saw: a latency per request (microseconds) and its failures.
#[derive(Default)]
pub struct Recorder {
    /// Latency of every request, successful or not, in microseconds.
    pub latencies_us: Vec<u32>,
    /// Requests that failed (non-2xx status or a transport error).
    pub errors: u64,
    /// Count per HTTP status (0 = transport error).
    pub statuses: BTreeMap<u16, u64>,
    /// The first failure, for the report.
    pub first_error: Option<String>,
}

impl Recorder {
    /// Records one request.
    pub fn record(&mut self, elapsed: Duration, outcome: Result<u16, String>) {
        self.latencies_us
            .push(elapsed.as_micros().min(u128::from(u32::MAX)) as u32);
        match outcome {
            Ok(status) => {
                *self.statuses.entry(status).or_default() += 1;
                if !(200..300).contains(&status) {
                    self.errors += 1;
                    self.first_error
                        .get_or_insert_with(|| format!("HTTP {status}"));
                }
            }
            Err(err) => {
                *self.statuses.entry(0).or_default() += 1;
                self.errors += 1;
                self.first_error.get_or_insert(err);
            }
        }
    }

    /// Folds another worker's record into this one.
    pub fn merge(&mut self, other: Recorder) {
        self.latencies_us.extend(other.latencies_us);
        self.errors += other.errors;
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    /// Throughput (successful requests per second), percentiles and errors as JSON fields.
    pub fn summary(mut self, elapsed: Duration) -> Map<String, Value> {
        let requests = self.latencies_us.len() as u64;
        let ok = requests - self.errors;
        let mut out = Map::new();
        out.insert("requests".into(), json!(requests));
        out.insert("errors".into(), json!(self.errors));
        out.insert("duration_s".into(), json!(round3(elapsed.as_secs_f64())));
        out.insert(
            "throughput".into(),
            json!(round1(ok as f64 / elapsed.as_secs_f64().max(1e-9))),
        );
        percentiles_into(&mut out, "", &mut self.latencies_us);
        if self.errors > 0 {
            let statuses: Map<String, Value> = self
                .statuses
                .iter()
                .map(|(s, n)| (s.to_string(), json!(n)))
                .collect();
            out.insert("statuses".into(), Value::Object(statuses));
            out.insert("first_error".into(), json!(self.first_error));
        }
        out
    }
}

/// Inserts `{prefix}p50_ms`, `p99_ms`, `max_ms` computed from microsecond samples.
pub fn percentiles_into(out: &mut Map<String, Value>, prefix: &str, samples: &mut [u32]) {
    samples.sort_unstable();
    let at = |p: f64| -> Value {
        if samples.is_empty() {
            return Value::Null;
        }
        let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
        json!(round3(f64::from(samples[index]) / 1000.0))
    };
    out.insert(format!("{prefix}p50_ms"), at(0.50));
    out.insert(format!("{prefix}p99_ms"), at(0.99));
    out.insert(format!("{prefix}max_ms"), at(1.0));
}

/// CPU time (user + system, all threads) a process has used, in microseconds, from
/// `/proc/PID/stat` (fields 14 and 15, in clock ticks).
pub fn proc_cpu_us(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; count fields after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf reads a constant of the C library; no pointers.
    #[allow(unsafe_code)]
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks = u64::try_from(ticks).ok().filter(|t| *t > 0)?;
    Some((utime + stime) * 1_000_000 / ticks)
}

/// Adds `server_cpu_us_per_req`: the server's CPU time between two readings per request.
pub fn cpu_per_request_into(
    out: &mut Map<String, Value>,
    before: Option<u64>,
    after: Option<u64>,
    requests: u64,
) {
    if let (Some(before), Some(after)) = (before, after) {
        if requests > 0 {
            let per = after.saturating_sub(before) as f64 / requests as f64;
            out.insert("server_cpu_us_per_req".into(), json!(round1(per)));
        }
    }
}

/// `(VmHWM, VmRSS)` of a process in KiB, from `/proc/PID/status`.
pub fn proc_memory_kb(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find(|line| line.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// Adds the server's peak and current memory (MiB) when its pid is known.
pub fn memory_into(out: &mut Map<String, Value>, pid: Option<u32>) {
    if let Some((hwm, rss)) = pid.and_then(proc_memory_kb) {
        out.insert("server_vmhwm_mb".into(), json!(round1(hwm as f64 / 1024.0)));
        out.insert("server_vmrss_mb".into(), json!(round1(rss as f64 / 1024.0)));
    }
}

pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_of_this_process_grows_with_work() {
        let pid = std::process::id();
        let before = proc_cpu_us(pid).expect("own /proc stat");
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < Duration::from_millis(60) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let after = proc_cpu_us(pid).expect("own /proc stat");
        assert!(after > before, "{before} → {after}");
        let mut out = Map::new();
        cpu_per_request_into(&mut out, Some(1_000), Some(3_000), 4);
        assert_eq!(out["server_cpu_us_per_req"], json!(500.0));
    }
}
