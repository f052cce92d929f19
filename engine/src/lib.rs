//! pocketlog's storage engine: an append-only checksummed log projected into SQLite.
//!
//! The log (`log/seg-*.log`) is the source of truth; `data.db` is a projection rebuilt from it
//! at will. Writes are commands run by one writer thread that group-commits: stage in SQLite,
//! append frames, fsync once, commit SQLite, answer, publish. See `DESIGN.md` and `FORMAT.md`.
//!
//! The engine knows nothing of HTTP, tokens or async runtimes.

#![warn(missing_docs)]

mod backup;
mod codec;
mod commit;
mod compact;
mod engine;
mod error;
mod frame;
mod log;
mod projection;
mod scrub;
mod snapshot;
mod storage;
mod subscribe;
pub mod testing;
mod value;
mod writer;

pub use backup::{
    apply_staged_restore, read_manifest, resolve_target, restore_archive, restore_dir,
    stage_restore, unpack_archive, write_backup, At, BackupReport, Manifest, ManifestFile,
    Progress, RestoreOptions, RestoreReport, ARCHIVE_FORMAT, ARCHIVE_VERSION, MANIFEST_NAME,
    PENDING_RESTORE,
};
pub use codec::{decode_commit, encode_commit, payload_len, DecodeError, PAYLOAD_VERSION};
pub use commit::{Actor, Change, CollectionDef, ColumnDef, Commit, Seq};
pub use compact::{compact_dir, retained_from, CompactReport, CompactStep, Retention};
pub use engine::{
    apply_commits, open_projection, replay_into, Engine, EngineConfig, Failure, Outcome, ReadConn,
    SyncPolicy, DATA_DB, INTEGRITY_CHECK_MS_DEFAULT, LOCK_FILE, LOG_DIR, REPLAY_BATCH_COMMITS,
    SCRUB_EVERY_MS_DEFAULT,
};
pub use error::{Error, Result};
pub use frame::{decode_frame, encode_frame, FrameRead, FRAME_HEADER_LEN, FRAME_PAYLOAD_MAX};
pub use log::{
    parse_segment_name, scan_log_dir, segment_name, write_log_range, LogReader, RecoveryReport,
    TornTail, SEGMENT_BYTES_MAX_DEFAULT, SEGMENT_HEADER_LEN,
};
pub use projection::{
    apply_commit, dump, last_applied, load_catalog, quote_ident, register_functions, Catalog,
    ROW_COUNTER_FN,
};
pub use scrub::{digest, ScrubReport};
pub use snapshot::{
    base_snapshot, build_projection_at, copy_projection, list_snapshots, parse_snapshot_name,
    snapshot_name, snapshots_dir, write_snapshot, BuildReport, SNAPSHOT_DIR,
};
pub use storage::{AppendFile, FsStorage, Storage};
pub use subscribe::Subscription;
pub use value::{Rows, Value};
pub use writer::Tx;
