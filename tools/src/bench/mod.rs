//! The `pl-bench` load generator (see `src/bin/pl-bench.rs`).

pub mod client;
pub mod compare;
pub mod files;
pub mod hooks;
pub mod scenarios;
pub mod sse;
pub mod stats;
