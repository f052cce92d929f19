//! pocketlog's storage engine: an append-only checksummed log projected into SQLite.
//!
//! The log (`log/seg-*.log`) is the source of truth; `data.db` is a projection rebuilt from it
//! at will. Writes are commands run by one writer thread that group-commits: stage in SQLite,
//! append frames, fsync once, commit SQLite, answer, publish. See `DESIGN.md` and `FORMAT.md`.
//!
//! The engine knows nothing of HTTP, tokens or async runtimes.

#![warn(missing_docs)]

mod codec;
mod commit;
mod engine;
mod error;
mod frame;
mod log;
mod projection;
mod storage;
mod subscribe;
pub mod testing;
mod value;
mod writer;

pub use codec::{decode_commit, encode_commit, DecodeError, PAYLOAD_VERSION};
pub use commit::{Actor, Change, CollectionDef, ColumnDef, Commit, Seq};
pub use engine::{
    apply_commits, open_projection, replay_into, Engine, EngineConfig, Failure, Outcome, ReadConn,
    SyncPolicy, DATA_DB, LOCK_FILE, LOG_DIR, REPLAY_BATCH_COMMITS,
};
pub use error::{Error, Result};
pub use frame::{decode_frame, encode_frame, FrameRead, FRAME_HEADER_LEN, FRAME_PAYLOAD_MAX};
pub use log::{
    parse_segment_name, scan_log_dir, segment_name, LogReader, RecoveryReport, TornTail,
    SEGMENT_HEADER_LEN,
};
pub use projection::{
    apply_commit, dump, last_applied, load_catalog, quote_ident, register_functions, Catalog,
};
pub use storage::{AppendFile, FsStorage, Storage};
pub use subscribe::Subscription;
pub use value::{Rows, Value};
pub use writer::Tx;
