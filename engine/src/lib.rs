//! pocketlog's storage engine: an append-only checksummed log projected into SQLite.
//!
//! The log (`log/seg-*.log`) is the source of truth; `data.db` is a projection rebuilt from it
//! at will. Writes are commands run by one writer thread that group-commits: stage in SQLite,
//! append frames, fsync once, commit SQLite, answer, publish. See `docs/design.md` and `FORMAT.md`.
//!
//! The engine knows nothing of HTTP, tokens or async runtimes.
//!
//! Surface: the crate root holds what a server uses at run time; [`admin`] holds offline
//! operations (backups, restores, compaction, projection rebuilds, log inspection); `testing`
//! exists only with the `testing` feature. No public item names a SQLite (rusqlite) type.

#![warn(missing_docs)]

pub mod admin;
mod backup;
mod backup_zip;
mod codec;
mod commit;
mod compact;
mod engine;
mod error;
mod files;
mod frame;
mod log;
mod metrics;
mod projection;
mod redact;
mod replica;
mod scrub;
mod snapshot;
mod storage;
mod subscribe;
#[cfg(feature = "testing")]
pub mod testing;
mod value;
mod writer;

// The run-time surface: what a server uses while it serves. Offline operations (replay,
// compaction, backups and restores, log and projection inspection) are in [`admin`].
pub use commit::{Actor, Change, CollectionDef, ColumnDef, Commit, Seq};
pub use compact::{CompactReport, Retention};
pub use engine::{Console, Engine, EngineConfig, Failure, Outcome, ReadConn, SyncPolicy};
pub use error::{ConstraintKind, ConstraintViolation, Error, Result};
pub use frame::FRAME_PAYLOAD_MAX;
pub use log::{LogReader, RecoveryReport, TornTail};
pub use metrics::{EngineMetrics, Histogram, HistogramSnapshot, LATENCY_BUCKETS_SECONDS};
pub use projection::{quote_ident, SqlFunction, ROW_COUNTER_FN, SQL_FUNCTIONS};
pub use redact::{
    default_fields, erased_value, RedactReport, RedactStep, REDACT_FIELDS_MAX, REDACT_JOURNAL,
};
pub use replica::{decode_frame, encode_frame};
pub use scrub::ScrubReport;
pub use storage::{AppendFile, FsStorage, Storage};
pub use subscribe::Subscription;
pub use value::{Rows, Value};
pub use writer::Tx;
