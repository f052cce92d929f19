//! Replication hooks: the frame bytes a commit ships as, and appending a replicated commit.
//!
//! A cluster (the API's `cluster/` module) ships the log's own frames: [`encode_frame`] gives
//! exactly the bytes the log writes for a commit (`len | crc32 | payload`, FORMAT.md), and
//! [`decode_frame`] checks a received frame (one whole frame, valid checksum, known payload
//! version, the expected seq) before anything is applied.
//!
//! A follower's engine is in *follower* mode ([`Engine::set_follower`]): the writer refuses
//! every local command with [`Error::NotLeader`] and only appends replicated commits
//! ([`Engine::apply_replicated`]). Invariants:
//! 1. A replicated commit keeps its seq, timestamp, actor and changes: the follower's log holds
//!    the same frames at the same positions as the leader's.
//! 2. Continuity: the first new commit must be the log's next seq and the batch gap-free;
//!    commits the log already holds are skipped (a redelivery), anything else is refused and
//!    nothing is written.
//! 3. Same write path as a local group: applied to the projection in one transaction, appended
//!    and fsynced, `COMMIT`, then published to subscribers (realtime, change feed) in order.
//!
//! [`discard_log_tail`] (offline, engine closed) cuts a log back to a position, keeping the
//! cut commits in `.broken-cluster-*` files: a deposed leader's unreplicated tail. Crash-safe:
//! the bytes are kept (fsynced) before anything is cut, and the cut goes from the last segment
//! backwards, so every intermediate state is a valid, shorter log; the projection, now ahead
//! of the log, is rebuilt by the next open.

use crate::commit::{Commit, Seq};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::frame::{decode_frame as read_frame, encode_frame_with, FrameRead};
use crate::projection;
use crate::storage::{FsStorage, Storage};
use crate::writer::{Message, Writer};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The suffix of the files that keep a discarded tail (`<segment>.broken-cluster-<ms>`).
pub const DISCARDED_TAIL_SUFFIX: &str = "broken-cluster";

/// What [`discard_log_tail`] cut off.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscardedTail {
    /// The first discarded position.
    pub from: Seq,
    /// The last discarded position.
    pub to: Seq,
    /// The files that keep the discarded frames (and snapshots past the cut).
    pub kept_in: Vec<PathBuf>,
}

/// Cuts the log of the (closed) data dir `dir` after position `keep`, keeping every cut byte
/// in `.broken-cluster-<ms>` files next to the segments (see the module docs). `None` when
/// the log does not go past `keep`. Refuses to cut into the compacted part of the log.
pub fn discard_log_tail(dir: &Path, keep: Seq) -> Result<Option<DiscardedTail>> {
    let storage = FsStorage;
    let log_dir = dir.join(crate::engine::LOG_DIR);
    let segments = crate::log::list_segments(&storage, &log_dir)?;
    let mut offsets: Vec<(Seq, u64)> = Vec::new();
    crate::log::scan_log_dir_with_offsets(&storage, &log_dir, |commit, offset| {
        offsets.push((commit.seq, offset));
    })?;
    let Some(&(last, _)) = offsets.last() else {
        return Ok(None);
    };
    if last <= keep {
        return Ok(None);
    }
    let first = offsets.first().map_or(1, |(seq, _)| *seq);
    if keep + 1 < first {
        return Err(Error::SeqUnavailable {
            seq: keep + 1,
            reason: format!(
                "the log starts at {first} (compacted): it cannot be cut back to {keep}"
            ),
        });
    }
    let stamp = chrono::Utc::now().timestamp_millis();
    // Never over an earlier cut's file (two cuts in the same millisecond).
    let aside = |path: &Path| {
        let base = format!("{}.{DISCARDED_TAIL_SUFFIX}-{stamp}", path.display());
        let mut target = PathBuf::from(&base);
        let mut attempt = 0;
        while target.exists() {
            attempt += 1;
            target = PathBuf::from(format!("{base}.{attempt}"));
        }
        target
    };
    let mut kept_in = Vec::new();
    for (seq_first, path) in segments.iter().rev() {
        if *seq_first > keep {
            // Wholly past the cut: the segment itself is kept aside.
            let target = aside(path);
            storage
                .rename(path, &target)
                .map_err(|err| Error::io("keep a discarded segment", path, err))?;
            storage
                .sync_dir(&log_dir)
                .map_err(|err| Error::io("fsync dir", &log_dir, err))?;
            kept_in.push(target);
            continue;
        }
        if segments.iter().any(|(first, _)| *first == keep + 1) {
            // The cut falls on a segment boundary: nothing of this one goes.
            break;
        }
        // The segment holding the cut: keep its bytes past `keep`, then truncate.
        let Some(&(_, offset)) = offsets.iter().find(|(seq, _)| *seq == keep + 1) else {
            break;
        };
        let len = storage
            .len(path)
            .map_err(|err| Error::io("stat", path, err))?;
        let bytes = storage
            .read_at(path, offset, (len - offset) as usize)
            .map_err(|err| Error::io("read", path, err))?;
        let target = aside(path);
        storage
            .write_new(&target, &bytes)
            .map_err(|err| Error::io("keep a discarded tail", &target, err))?;
        storage
            .sync_dir(&log_dir)
            .map_err(|err| Error::io("fsync dir", &log_dir, err))?;
        let mut file = storage
            .open_append(path, false)
            .map_err(|err| Error::io("open", path, err))?;
        file.truncate(offset)
            .map_err(|err| Error::io("truncate", path, err))?;
        file.sync().map_err(|err| Error::io("fsync", path, err))?;
        kept_in.push(target);
        break;
    }
    // Snapshots past the cut hold the discarded state: kept aside too.
    let snapshots = crate::snapshot::snapshots_dir(dir);
    for (seq, path) in crate::snapshot::list_snapshots(&snapshots)? {
        if seq > keep {
            let target = aside(&path);
            storage
                .rename(&path, &target)
                .map_err(|err| Error::io("keep a discarded snapshot", &path, err))?;
            storage
                .sync_dir(&snapshots)
                .map_err(|err| Error::io("fsync dir", &snapshots, err))?;
            kept_in.push(target);
        }
    }
    kept_in.reverse();
    tracing::warn!(from = keep + 1, to = last, files = ?kept_in, "discarded the log's tail (kept aside)");
    Ok(Some(DiscardedTail {
        from: keep + 1,
        to: last,
        kept_in,
    }))
}

/// The frame bytes the log writes for `commit` (header and payload).
pub fn encode_frame(commit: &Commit) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    encode_frame_with(&mut out, |out| {
        crate::codec::encode_commit_into(commit, out)
    })
    .map_err(|len| {
        Error::InvalidChange(format!("commit of {len} bytes exceeds the frame limit"))
    })?;
    Ok(out)
}

/// Decodes one received frame: exactly one whole frame, a valid checksum, a payload this build
/// reads, and (when given) the seq it must carry.
pub fn decode_frame(bytes: &[u8], expected_seq: Option<Seq>) -> Result<Commit> {
    let bad = |reason: String| Error::InvalidChange(format!("replicated frame: {reason}"));
    let payload = match read_frame(bytes) {
        FrameRead::Frame { payload, frame_len } if frame_len == bytes.len() => payload,
        FrameRead::Frame { frame_len, .. } => {
            return Err(bad(format!(
                "{} trailing bytes after the frame",
                bytes.len() - frame_len
            )))
        }
        FrameRead::Incomplete => return Err(bad("truncated".into())),
        FrameRead::BadLength(len) => return Err(bad(format!("impossible length {len}"))),
        FrameRead::BadChecksum { .. } => return Err(bad("checksum mismatch".into())),
    };
    let commit = crate::codec::decode_commit(payload).map_err(|err| match err {
        crate::codec::DecodeError::Version(found) => Error::FormatVersion {
            found: u32::from(found),
            supported: 2,
        },
        crate::codec::DecodeError::Malformed(reason) => bad(reason),
    })?;
    if let Some(seq) = expected_seq {
        if commit.seq != seq {
            return Err(bad(format!(
                "carries seq {} where seq {seq} was expected",
                commit.seq
            )));
        }
    }
    Ok(commit)
}

/// The role flag shared by the engine handle and its writer.
#[derive(Default)]
pub(crate) struct Role {
    follower: AtomicBool,
}

impl Role {
    pub(crate) fn is_follower(&self) -> bool {
        self.follower.load(Ordering::SeqCst)
    }
}

impl Engine {
    /// Switches follower mode: a follower refuses local commands ([`Error::NotLeader`]) and
    /// appends only replicated commits. Takes effect for the next group the writer runs.
    pub fn set_follower(&self, follower: bool) {
        self.role().follower.store(follower, Ordering::SeqCst);
    }

    /// Whether the engine is in follower mode.
    pub fn is_follower(&self) -> bool {
        self.role().is_follower()
    }

    /// Appends replicated commits (in seq order) to the log and the projection, on the writer
    /// thread, and waits until they are durable, applied and published. Returns the last seq
    /// of the log afterwards. Commits the log already holds are skipped.
    pub fn apply_replicated(&self, commits: Vec<Commit>) -> Result<Seq> {
        let (done, result) = std::sync::mpsc::sync_channel(1);
        self.send(Message::Replicate { commits, done })?;
        result.recv().map_err(|_| Error::Closed)?
    }
}

impl Writer {
    /// Runs one [`Message::Replicate`] (see the module invariants).
    pub(crate) fn apply_replicated(&mut self, commits: Vec<Commit>) -> Result<Seq> {
        if let Some(reason) = self.poisoned.lock().expect("poison lock").clone() {
            return Err(Error::Poisoned(reason));
        }
        if self.behind {
            self.catch_up()?;
        }
        let next = self.log.next_seq();
        let commits: Vec<Commit> = commits.into_iter().filter(|c| c.seq >= next).collect();
        let Some(first) = commits.first() else {
            return Ok(next - 1);
        };
        if first.seq != next {
            return Err(Error::SeqUnavailable {
                seq: next,
                reason: format!(
                    "a replicated commit at seq {} does not continue the log (next is {next})",
                    first.seq
                ),
            });
        }
        if let Some(gap) = commits
            .windows(2)
            .find(|pair| pair[1].seq != pair[0].seq + 1)
        {
            return Err(Error::SeqUnavailable {
                seq: gap[0].seq + 1,
                reason: format!(
                    "replicated commits jump from {} to {}",
                    gap[0].seq, gap[1].seq
                ),
            });
        }
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        for commit in &commits {
            if let Err(err) = projection::apply_commit(&self.conn, &mut self.catalog, commit) {
                let _ = self.conn.execute_batch("ROLLBACK");
                self.catalog = projection::load_catalog(&self.conn)?;
                return Err(err);
            }
        }
        if let Err(err) = self.log.append(&commits, self.sync) {
            let _ = self.conn.execute_batch("ROLLBACK");
            self.catalog = projection::load_catalog(&self.conn)?;
            if !(err.is_storage_full() && self.log.tail_is_clean()) {
                tracing::error!(error = %err, "replicated append failed; the engine is now poisoned");
                *self.poisoned.lock().expect("poison lock") = Some(err.to_string());
            }
            return Err(err);
        }
        if let Some(last) = commits.last() {
            // Local timestamps (after a promotion) never go behind the replicated ones.
            self.last_timestamp_ms = self.last_timestamp_ms.max(last.timestamp_ms);
        }
        let last = self.log.next_seq() - 1;
        let committed = self
            .storage
            .before_projection_commit()
            .map_err(|err| Error::io("commit projection", "data.db", err))
            .and_then(|()| self.conn.execute_batch("COMMIT").map_err(Error::from));
        if let Err(err) = committed {
            tracing::error!(error = %err, seq = last, "the projection could not take replicated commits; catching up from the log");
            let _ = self.conn.execute_batch("ROLLBACK");
            self.catalog = projection::load_catalog(&self.conn)?;
            self.behind = true;
            let _ = self.catch_up();
            return Ok(last);
        }
        self.hub
            .publish(commits.into_iter().map(Arc::new).collect());
        Ok(last)
    }
}
