//! The log: an ordered set of segment files holding checksummed commit frames.
//!
//! Segment file `log/seg-<seq_first:016x>.log` = 16-byte header (`PLOG`, u16 format version,
//! u16 reserved, u64 LE first seq) followed by frames (see `frame.rs`). See `engine/FORMAT.md`.
//!
//! Invariants:
//! 1. Seqs are gap-free across segments; the first frame of a segment has the seq in its name.
//! 2. Only the last segment is ever appended to; earlier segments are immutable.
//! 3. `durable_seq` only moves after the bytes of that commit are synced (policy `always`).
//! 4. Readers never read past `durable_seq`, so they never see a half-written frame.
//! 5. The append state lives behind one mutex ([`LogShared::active`]): the writer holds it for
//!    a group, compaction for a roll, so a roll never lands inside a group.
//!
//! Recovery on open (case table, implemented in [`Log::open`]):
//!
//! | what is found                                              | verdict    | action                      |
//! |------------------------------------------------------------|------------|-----------------------------|
//! | frame ends exactly at EOF of the last segment              | fine       | –                           |
//! | damage in the last segment (it ends inside a frame, a zero or oversized length, a checksum mismatch) with no valid later frame after it | torn tail | cut at the damaged frame, keep bytes in `.broken` |
//! | the same damage, but a checksum-valid frame holding a later seq starts at some byte after it | corruption | refuse to open |
//! | last segment shorter than its header                       | torn tail  | remove the file, keep bytes |
//! | any damage in a segment that is not the last               | corruption | refuse to open              |
//! | a segment whose successor starts at a seq it also holds (an interrupted compaction split) | fine | read it up to the successor's first seq, check the rest |
//! | a frame whose seq is not the next one                      | corruption | refuse to open              |
//! | a payload with an unknown version                          | error      | refuse (`FormatVersion`)    |

use crate::codec::{decode_commit, encode_commit, encode_commit_into};
use crate::commit::{Commit, Seq};
use crate::error::{Error, Result};
use crate::frame::{
    decode_frame, encode_frame, encode_frame_with, FrameRead, FRAME_HEADER_LEN, FRAME_PAYLOAD_MAX,
};
use crate::storage::{join, AppendFile, Storage};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Magic bytes at the start of every segment.
pub(crate) const SEGMENT_MAGIC: &[u8; 4] = b"PLOG";
/// Segment format version.
pub(crate) const SEGMENT_VERSION: u16 = 1;
/// Segment header length.
pub const SEGMENT_HEADER_LEN: usize = 16;
/// Default segment size at which a new segment is started.
pub(crate) const SEGMENT_BYTES_MAX_DEFAULT: u64 = 64 * 1024 * 1024;
/// One sparse index entry every this many frames.
pub(crate) const INDEX_EVERY: u64 = 256;
/// Read chunk used by log readers.
const READ_CHUNK_BYTES: usize = 4 * 1024 * 1024;

const _: () = assert!(SEGMENT_HEADER_LEN == 4 + 2 + 2 + 8);
const _: () = assert!(FRAME_PAYLOAD_MAX < u32::MAX as usize);

/// Name of the segment whose first commit is `seq_first`.
pub fn segment_name(seq_first: Seq) -> String {
    format!("seg-{seq_first:016x}.log")
}

/// Parses a segment file name back into its first seq.
pub fn parse_segment_name(name: &str) -> Option<Seq> {
    let hex = name.strip_prefix("seg-")?.strip_suffix(".log")?;
    if hex.len() != 16 {
        return None;
    }
    Seq::from_str_radix(hex, 16).ok()
}

fn segment_header(seq_first: Seq) -> [u8; SEGMENT_HEADER_LEN] {
    let mut header = [0u8; SEGMENT_HEADER_LEN];
    header[..4].copy_from_slice(SEGMENT_MAGIC);
    header[4..6].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    header[8..16].copy_from_slice(&seq_first.to_le_bytes());
    header
}

/// What recovery found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Number of segments.
    pub segments: usize,
    /// Commits in the log after recovery.
    pub commits: u64,
    /// Bytes of log after recovery.
    pub bytes: u64,
    /// A torn tail that was cut off: the segment, offset and where the bytes were kept.
    pub torn_tail: Option<TornTail>,
    /// Commits replayed into the projection because it was behind the log.
    pub replayed: u64,
    /// True when the projection was rebuilt from scratch.
    pub rebuilt_projection: bool,
}

/// A cut-off partial frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// Segment file.
    pub segment: PathBuf,
    /// Offset where the valid log ends.
    pub offset: u64,
    /// Bytes removed.
    pub bytes: u64,
    /// The side file holding them.
    pub kept_in: PathBuf,
}

#[derive(Debug, Clone)]
pub(crate) struct SegmentInfo {
    pub(crate) seq_first: Seq,
    pub(crate) path: PathBuf,
    /// (seq, byte offset of its frame), every `INDEX_EVERY` frames, first frame included.
    pub(crate) sparse: Vec<(Seq, u64)>,
}

/// Shared knowledge about the log for readers.
pub(crate) struct LogShared {
    pub(crate) segments: RwLock<Vec<SegmentInfo>>,
    /// Highest seq whose frame is completely written (and synced per policy).
    pub(crate) durable_seq: AtomicU64,
    /// The log directory.
    pub(crate) dir: PathBuf,
    /// The segment being appended to; `None` for a read-only reader. Lock order: `active`
    /// before `segments`, never the reverse.
    pub(crate) active: Mutex<Option<ActiveSegment>>,
    /// Held shared by every [`LogReader::read_from`], exclusively by a redaction while it
    /// swaps a rewritten segment in (`redact.rs`): a read never mixes the bytes or offsets
    /// of an old and a new version of a segment.
    pub(crate) rewrite_gate: RwLock<()>,
    /// Duration of each group's fsync of the active segment (policy `always`).
    pub(crate) fsync_seconds: crate::metrics::Histogram,
}

impl std::fmt::Debug for LogShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogShared")
            .field("dir", &self.dir)
            .field("durable_seq", &self.durable_seq)
            .finish_non_exhaustive()
    }
}

/// The writable end of the log: the last segment's append handle and position. The writer
/// thread appends through it; compaction rolls it (see [`LogReader::roll_active`]).
pub(crate) struct ActiveSegment {
    file: Box<dyn AppendFile>,
    path: PathBuf,
    len: u64,
    next_seq: Seq,
    frames: u64,
    /// Why the segment may hold bytes that are not durable frames (a failed append, fsync or
    /// roll): no more appends and no roll until the log is reopened.
    broken: Option<String>,
}

/// Scan of one segment's bytes.
pub(crate) struct SegmentScan {
    pub(crate) valid_len: u64,
    pub(crate) torn_at: Option<u64>,
}

/// Scans a segment. `is_last` allows a torn tail. `expect_seq` is the seq of its first frame.
/// Frames from seq `superseded_from` on (the first seq of the next segment) are checked but
/// not passed to `on_commit`: they exist only while an interrupted compaction split left the
/// next segment holding a copy of them (see FORMAT.md "Compaction").
pub(crate) fn scan_segment(
    path: &Path,
    bytes: &[u8],
    expect_seq: Seq,
    is_last: bool,
    superseded_from: Option<Seq>,
    mut on_commit: impl FnMut(&Commit, u64),
) -> Result<SegmentScan> {
    let corrupt = |offset: u64, reason: String| Error::Corrupt {
        segment: path.to_path_buf(),
        offset,
        reason,
    };
    if bytes.len() < SEGMENT_HEADER_LEN {
        if is_last {
            return Ok(SegmentScan {
                valid_len: 0,
                torn_at: Some(0),
            });
        }
        return Err(corrupt(0, "segment shorter than its header".into()));
    }
    if &bytes[..4] != SEGMENT_MAGIC {
        return Err(corrupt(0, "bad magic".into()));
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version != SEGMENT_VERSION {
        return Err(Error::FormatVersion {
            found: u32::from(version),
            supported: u32::from(SEGMENT_VERSION),
        });
    }
    let mut first = [0u8; 8];
    first.copy_from_slice(&bytes[8..16]);
    if u64::from_le_bytes(first) != expect_seq {
        return Err(corrupt(
            8,
            format!(
                "header says first seq {}, expected {expect_seq}",
                u64::from_le_bytes(first)
            ),
        ));
    }
    let mut offset = SEGMENT_HEADER_LEN;
    let mut seq = expect_seq;
    let total = bytes.len();
    loop {
        if offset == total {
            return Ok(SegmentScan {
                valid_len: offset as u64,
                torn_at: None,
            });
        }
        let rest = &bytes[offset..];
        let reason = match decode_frame(rest) {
            FrameRead::Frame { payload, frame_len } => {
                let commit =
                    decode_commit(payload).map_err(|err| err.into_error(path, offset as u64))?;
                if commit.seq != seq {
                    return Err(corrupt(
                        offset as u64,
                        format!("frame has seq {}, expected {seq}", commit.seq),
                    ));
                }
                if superseded_from.is_none_or(|from| commit.seq < from) {
                    on_commit(&commit, offset as u64);
                }
                seq += 1;
                offset += frame_len;
                continue;
            }
            FrameRead::Incomplete => "segment ends inside a frame".to_string(),
            FrameRead::BadChecksum { .. } => "checksum mismatch".to_string(),
            FrameRead::BadLength(len) => format!("impossible frame length {len}"),
        };
        if !is_last {
            // A segment is synced before the next one is created, so its bytes were durable:
            // damage here is never a torn write.
            return Err(corrupt(
                offset as u64,
                format!("{reason} (in a segment that is not the last, so not a torn tail)"),
            ));
        }
        // Damage in the last segment: a torn tail unless a valid later frame follows it (a
        // torn write leaves nothing valid after the damage; damage in the middle does).
        return match later_valid_frame(bytes, offset + 1, seq) {
            LaterFrame::None => Ok(SegmentScan {
                valid_len: offset as u64,
                torn_at: Some(offset as u64),
            }),
            LaterFrame::Found {
                offset: at,
                seq: found,
            } => Err(corrupt(
                offset as u64,
                format!(
                    "{reason}, and a valid frame holding seq {found} follows at offset {at}: \
                     damage inside the log, not a torn tail"
                ),
            )),
            LaterFrame::TooCostly => Err(corrupt(
                offset as u64,
                format!(
                    "{reason}; too many candidate frames after it to rule out a valid later \
                     frame (refusing rather than risking a cut of durable commits)"
                ),
            )),
        };
    }
}

/// What [`later_valid_frame`] found.
#[derive(Debug, PartialEq, Eq)]
enum LaterFrame {
    /// No checksum-valid frame with a later seq starts after the damage.
    None,
    /// One does.
    Found { offset: usize, seq: Seq },
    /// The search hashed more than [`LATER_FRAME_HASH_BUDGET`] bytes without an answer.
    TooCostly,
}

/// Most payload bytes [`later_valid_frame`] checksums in one search. Candidates need eight
/// bytes that spell a plausible seq at the right place, so real tails hash almost nothing;
/// the budget only bounds planted look-alike headers.
const LATER_FRAME_HASH_BUDGET: usize = 1 << 30;

/// Looks for a checksum-valid frame holding a seq after `damaged_seq` (the seq the damaged
/// frame should hold) starting at any byte offset in `bytes[from..]`.
///
/// A frame's payload starts with the payload version and then the commit's seq (bincode
/// encodes the struct's first field first), so a candidate offset is only checksummed when
/// those bytes spell a seq in `damaged_seq + 1 ..= damaged_seq + (frames that could still
/// fit)`. Linear in the tail length plus the bytes of the few candidates; capped by
/// [`LATER_FRAME_HASH_BUDGET`].
fn later_valid_frame(bytes: &[u8], from: usize, damaged_seq: Seq) -> LaterFrame {
    const SEQ_AT: usize = FRAME_HEADER_LEN + 1;
    const MIN_FRAME: usize = SEQ_AT + 8;
    if bytes.len() < from.saturating_add(MIN_FRAME) {
        return LaterFrame::None;
    }
    let max_later = ((bytes.len() - from) / MIN_FRAME + 1) as u64;
    let mut hashed = 0usize;
    for start in from..=bytes.len() - MIN_FRAME {
        let candidate = &bytes[start..];
        if !crate::codec::is_known_version(candidate[FRAME_HEADER_LEN]) {
            continue;
        }
        let mut seq_bytes = [0u8; 8];
        seq_bytes.copy_from_slice(&candidate[SEQ_AT..MIN_FRAME]);
        let found = u64::from_le_bytes(seq_bytes);
        if found <= damaged_seq || found - damaged_seq > max_later {
            continue;
        }
        let claimed = u32::from_le_bytes([candidate[0], candidate[1], candidate[2], candidate[3]]);
        let claimed = claimed as usize;
        if claimed == 0 || claimed > FRAME_PAYLOAD_MAX || claimed > candidate.len() - 8 {
            continue;
        }
        hashed += claimed;
        if hashed > LATER_FRAME_HASH_BUDGET {
            return LaterFrame::TooCostly;
        }
        if let FrameRead::Frame { payload, .. } = decode_frame(candidate) {
            if decode_commit(payload).is_ok_and(|commit| commit.seq == found) {
                return LaterFrame::Found {
                    offset: start,
                    seq: found,
                };
            }
        }
    }
    LaterFrame::None
}

/// Lists segments of a log directory, sorted by first seq.
pub(crate) fn list_segments(storage: &dyn Storage, dir: &Path) -> Result<Vec<(Seq, PathBuf)>> {
    let names = storage
        .list(dir)
        .map_err(|err| Error::io("list", dir, err))?;
    let mut segments: Vec<(Seq, PathBuf)> = names
        .iter()
        .filter_map(|name| parse_segment_name(name).map(|seq| (seq, join(dir, name))))
        .collect();
    segments.sort_by_key(|(seq, _)| *seq);
    Ok(segments)
}

/// The writable log (owned by the writer thread; the append state itself lives in
/// [`LogShared::active`] so that compaction can roll the segment between two groups).
pub(crate) struct Log {
    storage: Arc<dyn Storage>,
    segment_bytes_max: u64,
    shared: Arc<LogShared>,
    /// The frame buffer of `append`, reused from group to group.
    append_buf: Vec<u8>,
}

/// Largest append buffer kept for reuse.
const APPEND_BUF_KEEP_MAX: usize = 1 << 20;

impl Log {
    /// Opens (creating if needed) the log in `dir`, recovering a torn tail.
    /// `on_commit` sees every commit in order (used to catch the projection up).
    pub(crate) fn open(
        storage: Arc<dyn Storage>,
        dir: &Path,
        segment_bytes_max: u64,
        mut on_commit: impl FnMut(&Commit) -> Result<()>,
    ) -> Result<(Log, RecoveryReport)> {
        storage
            .create_dir_all(dir)
            .map_err(|err| Error::io("create dir", dir, err))?;
        let mut segments = list_segments(storage.as_ref(), dir)?;
        let mut report = RecoveryReport::default();
        if segments.is_empty() {
            let path = join(dir, &segment_name(1));
            create_segment(storage.as_ref(), dir, &path, 1)?;
            segments.push((1, path));
        }
        let mut infos = Vec::new();
        let mut expect = segments[0].0;
        let mut last_len = 0;
        let mut frames_in_last = 0;
        let count = segments.len();
        let mut callback_error = None;
        for (index, (seq_first, path)) in segments.iter().enumerate() {
            let is_last = index + 1 == count;
            if *seq_first != expect {
                return Err(Error::Corrupt {
                    segment: path.clone(),
                    offset: 0,
                    reason: format!("segment starts at seq {seq_first}, expected {expect}"),
                });
            }
            let len = storage
                .len(path)
                .map_err(|err| Error::io("stat", path, err))?;
            let bytes = storage
                .read_at(path, 0, len as usize)
                .map_err(|err| Error::io("read", path, err))?;
            let mut sparse = Vec::new();
            let mut frames = 0u64;
            let superseded_from = segments.get(index + 1).map(|(seq, _)| *seq);
            let scan = scan_segment(
                path,
                &bytes,
                *seq_first,
                is_last,
                superseded_from,
                |commit, offset| {
                    if frames.is_multiple_of(INDEX_EVERY) {
                        sparse.push((commit.seq, offset));
                    }
                    frames += 1;
                    if callback_error.is_none() {
                        if let Err(err) = on_commit(commit) {
                            callback_error = Some(err);
                        }
                    }
                },
            )?;
            if let Some(err) = callback_error.take() {
                return Err(err);
            }
            if let Some(torn_at) = scan.torn_at {
                // Never overwrite bytes kept by an earlier recovery at the same offset.
                let base = format!("{}.broken-{torn_at}", path.display());
                let existing = storage
                    .list(dir)
                    .map_err(|err| Error::io("list", dir, err))?;
                let mut kept_in = PathBuf::from(&base);
                let mut attempt = 0;
                while existing
                    .iter()
                    .any(|name| Some(name.as_str()) == kept_in.file_name().and_then(|n| n.to_str()))
                {
                    attempt += 1;
                    kept_in = PathBuf::from(format!("{base}.{attempt}"));
                }
                storage
                    .write_new(&kept_in, &bytes[torn_at as usize..])
                    .map_err(|err| Error::io("keep torn tail", &kept_in, err))?;
                storage
                    .sync_dir(dir)
                    .map_err(|err| Error::io("fsync dir", dir, err))?;
                tracing::warn!(
                    segment = %path.display(),
                    offset = torn_at,
                    bytes = bytes.len() as u64 - torn_at,
                    kept_in = %kept_in.display(),
                    "cut a torn tail off the log"
                );
                report.torn_tail = Some(TornTail {
                    segment: path.clone(),
                    offset: torn_at,
                    bytes: bytes.len() as u64 - torn_at,
                    kept_in,
                });
                if torn_at == 0 {
                    // The header itself is torn: rewrite the segment from scratch.
                    storage
                        .remove(path)
                        .map_err(|err| Error::io("remove", path, err))?;
                    create_segment(storage.as_ref(), dir, path, *seq_first)?;
                } else {
                    let mut file = storage
                        .open_append(path, false)
                        .map_err(|err| Error::io("open", path, err))?;
                    file.truncate(torn_at)
                        .map_err(|err| Error::io("truncate", path, err))?;
                }
            }
            let valid_len = scan.valid_len.max(SEGMENT_HEADER_LEN as u64);
            report.bytes += valid_len;
            report.commits += frames;
            expect = seq_first + frames;
            last_len = valid_len;
            frames_in_last = frames;
            infos.push(SegmentInfo {
                seq_first: *seq_first,
                path: path.clone(),
                sparse,
            });
        }
        report.segments = infos.len();
        let active_path = infos
            .last()
            .expect("there is at least one segment")
            .path
            .clone();
        let file = storage
            .open_append(&active_path, false)
            .map_err(|err| Error::io("open", &active_path, err))?;
        let shared = Arc::new(LogShared {
            segments: RwLock::new(infos),
            durable_seq: AtomicU64::new(expect - 1),
            dir: dir.to_path_buf(),
            rewrite_gate: RwLock::new(()),
            fsync_seconds: crate::metrics::Histogram::latency(),
            active: Mutex::new(Some(ActiveSegment {
                file,
                path: active_path,
                len: last_len,
                next_seq: expect,
                frames: frames_in_last,
                broken: None,
            })),
        });
        Ok((
            Log {
                storage,
                segment_bytes_max,
                shared,
                append_buf: Vec::new(),
            },
            report,
        ))
    }

    pub(crate) fn shared(&self) -> Arc<LogShared> {
        Arc::clone(&self.shared)
    }

    /// The seq the next commit gets.
    pub(crate) fn next_seq(&self) -> Seq {
        self.shared
            .active
            .lock()
            .expect("active segment lock")
            .as_ref()
            .map_or(1, |active| active.next_seq)
    }

    /// True when the active segment holds exactly the durable frames (after a failed append,
    /// the partial bytes were cut back), so appending may go on.
    pub(crate) fn tail_is_clean(&self) -> bool {
        let guard = self.shared.active.lock().expect("active segment lock");
        guard.as_ref().is_some_and(|active| {
            active.broken.is_none()
                && self
                    .storage
                    .len(&active.path)
                    .is_ok_and(|len| len == active.len)
        })
    }

    /// Appends commits (their seqs must continue the log) and syncs when `sync` is set.
    /// On error, the active segment is cut back to where it was; the caller poisons the engine.
    pub(crate) fn append(&mut self, commits: &[Commit], sync: bool) -> Result<()> {
        if commits.is_empty() {
            return Ok(());
        }
        let mut guard = self.shared.active.lock().expect("active segment lock");
        let active = guard
            .as_mut()
            .expect("a writable log has an active segment");
        if let Some(reason) = &active.broken {
            return Err(Error::Poisoned(reason.clone()));
        }
        if active.len >= self.segment_bytes_max && active.frames > 0 {
            roll(self.storage.as_ref(), &self.shared, active)?;
        }
        // The frames are encoded in place: the same bytes as `encode_frame(&encode_commit(…))`,
        // without a payload copy.
        let mut buf = std::mem::take(&mut self.append_buf);
        buf.clear();
        let mut offsets = Vec::with_capacity(commits.len());
        for (index, commit) in commits.iter().enumerate() {
            assert_eq!(
                commit.seq,
                active.next_seq + index as u64,
                "commit seqs are gap-free"
            );
            offsets.push(active.len + buf.len() as u64);
            if let Err(payload_len) =
                encode_frame_with(&mut buf, |out| encode_commit_into(commit, out))
            {
                return Err(Error::InvalidChange(format!(
                    "commit of {payload_len} bytes exceeds the frame limit"
                )));
            }
        }
        let result = write_frames(&self.shared, active, &buf, commits, &offsets, sync);
        drop(guard);
        // Keep the buffer for the next group unless one huge commit made it large.
        if buf.capacity() <= APPEND_BUF_KEEP_MAX {
            self.append_buf = buf;
        }
        result
    }
}

fn write_frames(
    shared: &LogShared,
    active: &mut ActiveSegment,
    buf: &[u8],
    commits: &[Commit],
    offsets: &[u64],
    sync: bool,
) -> Result<()> {
    let written = active.file.append(buf).and_then(|()| {
        if sync {
            let started = std::time::Instant::now();
            let synced = active.file.sync();
            shared.fsync_seconds.observe_duration(started.elapsed());
            synced
        } else {
            Ok(())
        }
    });
    if let Err(err) = written {
        // Best effort: remove the partial bytes so a later open does not see them.
        if active.file.truncate(active.len).is_err() {
            active.broken = Some(format!("append to {} failed", active.path.display()));
        }
        return Err(Error::io(
            if sync { "append+fsync" } else { "append" },
            active.path.clone(),
            err,
        ));
    }
    {
        let mut segments = shared.segments.write().expect("log index lock");
        let info = segments.last_mut().expect("there is an active segment");
        for (index, commit) in commits.iter().enumerate() {
            if (active.frames + index as u64).is_multiple_of(INDEX_EVERY) {
                info.sparse.push((commit.seq, offsets[index]));
            }
        }
    }
    active.len += buf.len() as u64;
    active.frames += commits.len() as u64;
    active.next_seq += commits.len() as u64;
    shared
        .durable_seq
        .store(active.next_seq - 1, Ordering::Release);
    Ok(())
}

/// Ends the active segment and starts a new one at its next seq: fsync the old one (so only
/// the last segment can ever be torn), create the new one (tmp, fsync, rename, fsync dir),
/// switch. A failure after the new name may exist marks the log broken (the writer then
/// refuses appends): appending to the old segment could contradict the new one.
fn roll(storage: &dyn Storage, shared: &LogShared, active: &mut ActiveSegment) -> Result<()> {
    let path = join(&shared.dir, &segment_name(active.next_seq));
    if let Err(err) = active.file.sync() {
        active.broken = Some(format!("fsync of {} failed", active.path.display()));
        return Err(Error::io("fsync", active.path.clone(), err));
    }
    let created = create_segment(storage, &shared.dir, &path, active.next_seq).and_then(|()| {
        storage
            .open_append(&path, false)
            .map_err(|err| Error::io("open", &path, err))
    });
    let file = match created {
        Ok(file) => file,
        Err(err) => {
            if storage.len(&path).is_ok() {
                active.broken = Some(format!("creating segment {} failed", path.display()));
            }
            return Err(err);
        }
    };
    active.file = file;
    active.path = path.clone();
    active.len = SEGMENT_HEADER_LEN as u64;
    active.frames = 0;
    shared
        .segments
        .write()
        .expect("log index lock")
        .push(SegmentInfo {
            seq_first: active.next_seq,
            path,
            sparse: Vec::new(),
        });
    Ok(())
}

fn create_segment(storage: &dyn Storage, dir: &Path, path: &Path, seq_first: Seq) -> Result<()> {
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    storage
        .write_new(&tmp, &segment_header(seq_first))
        .map_err(|err| Error::io("create segment", &tmp, err))?;
    storage
        .rename(&tmp, path)
        .map_err(|err| Error::io("rename", path, err))?;
    storage
        .sync_dir(dir)
        .map_err(|err| Error::io("fsync dir", dir, err))?;
    Ok(())
}

/// Reads committed commits from the log; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct LogReader {
    storage: Arc<dyn Storage>,
    shared: Arc<LogShared>,
}

impl LogReader {
    pub(crate) fn new(storage: Arc<dyn Storage>, shared: Arc<LogShared>) -> Self {
        LogReader { storage, shared }
    }

    /// Highest durable seq.
    pub fn last_seq(&self) -> Seq {
        self.shared.durable_seq.load(Ordering::Acquire)
    }

    /// The latency histogram of the active segment's fsyncs (one per write group).
    pub fn fsync_seconds(&self) -> crate::metrics::HistogramSnapshot {
        self.shared.fsync_seconds.snapshot()
    }

    /// Number of segment files of the log.
    pub fn segment_count(&self) -> usize {
        self.shared.segments.read().expect("log index lock").len()
    }

    /// First seq still held by the log.
    pub fn first_seq(&self) -> Seq {
        self.shared
            .segments
            .read()
            .expect("log index lock")
            .first()
            .map(|info| info.seq_first)
            .unwrap_or(1)
    }

    /// Reads up to `limit` commits with seq >= `from` (never past the durable seq).
    pub fn read_from(&self, from: Seq, limit: usize) -> Result<Vec<Commit>> {
        let from = from.max(1);
        let last = self.last_seq();
        if from > last || limit == 0 {
            return Ok(Vec::new());
        }
        let first = self.first_seq();
        if from < first {
            return Err(Error::SeqUnavailable {
                seq: from,
                reason: format!("the log starts at {first} (older history was compacted)"),
            });
        }
        // A redaction swapping a rewritten segment in waits for this read to finish.
        let _gate = self.shared.rewrite_gate.read().expect("log rewrite gate");
        // A compaction may remove the segment a read resolved a moment ago; a split moved
        // the seqs it still keeps to a new segment, so re-resolving finds them.
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.read_from_inner(from, last, limit) {
                Err(Error::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound && from < self.first_seq() =>
                {
                    return Err(Error::SeqUnavailable {
                        seq: from,
                        reason: format!(
                            "the log starts at {} (older history was compacted)",
                            self.first_seq()
                        ),
                    })
                }
                Err(Error::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound && attempts < 3 => {}
                other => return other,
            }
        }
    }

    fn read_from_inner(&self, from: Seq, last: Seq, limit: usize) -> Result<Vec<Commit>> {
        let mut out = Vec::new();
        let mut next = from;
        while out.len() < limit && next <= last {
            let (path, start_offset, start_seq) = {
                let segments = self.shared.segments.read().expect("log index lock");
                let position = segments.partition_point(|info| info.seq_first <= next);
                if position == 0 {
                    // Compaction dropped the segment holding `next` since `read_from` checked.
                    return Err(Error::SeqUnavailable {
                        seq: next,
                        reason: "older history was compacted".into(),
                    });
                }
                let info = &segments[position - 1];
                let point = info.sparse.partition_point(|(seq, _)| *seq <= next);
                match point.checked_sub(1).map(|index| info.sparse[index]) {
                    Some((seq, offset)) => (info.path.clone(), offset, seq),
                    None => (info.path.clone(), SEGMENT_HEADER_LEN as u64, info.seq_first),
                }
            };
            let before = out.len();
            self.read_segment(&path, start_offset, start_seq, next, last, limit, &mut out)?;
            if out.len() == before {
                // Nothing more in this segment: the next one starts at `next`.
                let segments = self.shared.segments.read().expect("log index lock");
                if !segments.iter().any(|info| info.seq_first == next) {
                    return Err(Error::Corrupt {
                        segment: path,
                        offset: start_offset,
                        reason: format!("seq {next} not found"),
                    });
                }
                drop(segments);
                let path = {
                    let segments = self.shared.segments.read().expect("log index lock");
                    segments
                        .iter()
                        .find(|info| info.seq_first == next)
                        .map(|info| info.path.clone())
                        .expect("checked above")
                };
                self.read_segment(
                    &path,
                    SEGMENT_HEADER_LEN as u64,
                    next,
                    next,
                    last,
                    limit,
                    &mut out,
                )?;
                if out.len() == before {
                    break;
                }
            }
            next = out.last().map(|commit| commit.seq + 1).unwrap_or(next);
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn read_segment(
        &self,
        path: &Path,
        mut offset: u64,
        mut seq: Seq,
        from: Seq,
        last: Seq,
        limit: usize,
        out: &mut Vec<Commit>,
    ) -> Result<()> {
        let mut carry: Vec<u8> = Vec::new();
        loop {
            let chunk = self
                .storage
                .read_at(path, offset + carry.len() as u64, READ_CHUNK_BYTES)
                .map_err(|err| Error::io("read", path, err))?;
            let eof = chunk.is_empty();
            carry.extend_from_slice(&chunk);
            let mut consumed = 0;
            loop {
                if seq > last || out.len() >= limit {
                    return Ok(());
                }
                match decode_frame(&carry[consumed..]) {
                    FrameRead::Frame { payload, frame_len } => {
                        if seq >= from {
                            let commit = decode_commit(payload)
                                .map_err(|err| err.into_error(path, offset + consumed as u64))?;
                            out.push(commit);
                        }
                        seq += 1;
                        consumed += frame_len;
                    }
                    FrameRead::Incomplete => break,
                    FrameRead::BadChecksum { .. } | FrameRead::BadLength(_) => {
                        return Err(Error::Corrupt {
                            segment: path.to_path_buf(),
                            offset: offset + consumed as u64,
                            reason: "bad frame while reading".into(),
                        })
                    }
                }
            }
            carry.drain(..consumed);
            offset += consumed as u64;
            if eof {
                return Ok(());
            }
        }
    }
}

impl LogReader {
    /// Runs `swap` (which replaces segment files in place) while no read is in flight, then
    /// replaces the sparse index of each segment named in its answer (`redact.rs`).
    pub(crate) fn swap_segments(
        &self,
        swap: impl FnOnce() -> Result<Vec<(Seq, Vec<(Seq, u64)>)>>,
    ) -> Result<()> {
        let _gate = self.shared.rewrite_gate.write().expect("log rewrite gate");
        let indexes = swap()?;
        let mut segments = self.shared.segments.write().expect("log index lock");
        for (seq_first, sparse) in indexes {
            if let Some(info) = segments.iter_mut().find(|info| info.seq_first == seq_first) {
                info.sparse = sparse;
            }
        }
        Ok(())
    }

    /// The directory holding the segments (None for a log with no segment yet).
    pub fn log_dir(&self) -> Option<PathBuf> {
        let segments = self.shared.segments.read().expect("log index lock");
        segments
            .first()
            .and_then(|info| info.path.parent().map(Path::to_path_buf))
    }

    /// First seq and path of every segment in the index, in order.
    pub(crate) fn segment_list(&self) -> Vec<(Seq, PathBuf)> {
        let segments = self.shared.segments.read().expect("log index lock");
        segments
            .iter()
            .map(|info| (info.seq_first, info.path.clone()))
            .collect()
    }

    /// Ends the last segment so that every seq written so far is in an immutable segment
    /// (compaction, before it splits the segment holding its cut). With a live writer the
    /// roll happens between two groups, under the append lock; for a read-only reader (the
    /// caller holds the data dir exclusively) the same roll is done on disk, and a last
    /// segment with a torn tail is refused (open the data dir once to cut it first). A last
    /// segment that holds no frame stays as it is.
    pub(crate) fn roll_active(&self) -> Result<()> {
        let mut guard = self.shared.active.lock().expect("active segment lock");
        if let Some(active) = guard.as_mut() {
            if let Some(reason) = &active.broken {
                return Err(Error::Poisoned(reason.clone()));
            }
            if active.frames == 0 {
                return Ok(());
            }
            return roll(self.storage.as_ref(), &self.shared, active);
        }
        let Some((seq_first, path)) = self.segment_list().pop() else {
            return Ok(());
        };
        let len = self
            .storage
            .len(&path)
            .map_err(|err| Error::io("stat", &path, err))?;
        let bytes = self
            .storage
            .read_at(&path, 0, len as usize)
            .map_err(|err| Error::io("read", &path, err))?;
        let mut frames = 0u64;
        let scan = scan_segment(&path, &bytes, seq_first, true, None, |_, _| frames += 1)?;
        if let Some(offset) = scan.torn_at {
            return Err(Error::Corrupt {
                segment: path,
                offset,
                reason: "the last segment has a torn tail; open the data dir once (it cuts the \
                         tail) before compacting"
                    .into(),
            });
        }
        if frames == 0 {
            return Ok(());
        }
        let next = seq_first + frames;
        let new_path = join(&self.shared.dir, &segment_name(next));
        create_segment(self.storage.as_ref(), &self.shared.dir, &new_path, next)?;
        self.shared
            .segments
            .write()
            .expect("log index lock")
            .push(SegmentInfo {
                seq_first: next,
                path: new_path,
                sparse: Vec::new(),
            });
        Ok(())
    }

    /// Copies the frames from seq `at` to the end of the immutable segment starting at
    /// `seq_first` into a new segment `seg-<at>.log` (byte-identical frames behind a new
    /// header): written to `.tmp` and fsynced (`on_copied` runs then), renamed, `log/`
    /// fsynced, then added to the index. Until the old segment is removed the two overlap,
    /// which recovery reads as the old one ending at `at - 1` (FORMAT.md "Compaction").
    /// Returns the new segment's path and size.
    pub(crate) fn split_segment(
        &self,
        seq_first: Seq,
        at: Seq,
        on_copied: &mut dyn FnMut(&Path) -> Result<()>,
    ) -> Result<(PathBuf, u64)> {
        let list = self.segment_list();
        let Some(position) = list.iter().position(|(seq, _)| *seq == seq_first) else {
            return Err(Error::InvalidTarget(format!(
                "no segment starts at seq {seq_first}"
            )));
        };
        // The last segment in the index is the active one: never split it.
        let Some((next_first, _)) = list.get(position + 1) else {
            return Err(Error::InvalidTarget(format!(
                "the segment starting at seq {seq_first} is still being written"
            )));
        };
        let next_first = *next_first;
        if at <= seq_first || at >= next_first {
            return Err(Error::InvalidTarget(format!(
                "seq {at} is not inside the segment holding seqs {seq_first}..{next_first}"
            )));
        }
        let path = &list[position].1;
        let len = self
            .storage
            .len(path)
            .map_err(|err| Error::io("stat", path, err))?;
        let bytes = self
            .storage
            .read_at(path, 0, len as usize)
            .map_err(|err| Error::io("read", path, err))?;
        let mut copy_from = None;
        let mut copy_to = 0usize;
        let mut sparse = Vec::new();
        let mut copied_frames = 0u64;
        scan_segment(
            path,
            &bytes,
            seq_first,
            false,
            Some(next_first),
            |commit, offset| {
                if commit.seq >= at {
                    let start = *copy_from.get_or_insert(offset as usize);
                    if copied_frames.is_multiple_of(INDEX_EVERY) {
                        let new_offset = offset - start as u64 + SEGMENT_HEADER_LEN as u64;
                        sparse.push((commit.seq, new_offset));
                    }
                    copied_frames += 1;
                }
            },
        )?;
        // The copy ends where the next segment's seqs begin (the end of the frame before).
        if let Some(start) = copy_from {
            let mut offset = start;
            for _ in 0..copied_frames {
                match decode_frame(&bytes[offset..]) {
                    FrameRead::Frame { frame_len, .. } => offset += frame_len,
                    _ => {
                        return Err(Error::Corrupt {
                            segment: path.clone(),
                            offset: offset as u64,
                            reason: "frame changed while splitting".into(),
                        })
                    }
                }
            }
            copy_to = offset;
        }
        let Some(copy_from) = copy_from else {
            return Err(Error::InvalidTarget(format!(
                "seq {at} not found in {}",
                path.display()
            )));
        };
        let mut out = Vec::with_capacity(SEGMENT_HEADER_LEN + copy_to - copy_from);
        out.extend_from_slice(&segment_header(at));
        out.extend_from_slice(&bytes[copy_from..copy_to]);
        let new_path = join(&self.shared.dir, &segment_name(at));
        let tmp = PathBuf::from(format!("{}.tmp", new_path.display()));
        self.storage
            .write_new(&tmp, &out)
            .map_err(|err| Error::io("write segment", &tmp, err))?;
        on_copied(&tmp)?;
        self.storage
            .rename(&tmp, &new_path)
            .map_err(|err| Error::io("rename", &new_path, err))?;
        self.storage
            .sync_dir(&self.shared.dir)
            .map_err(|err| Error::io("fsync dir", &self.shared.dir, err))?;
        let mut segments = self.shared.segments.write().expect("log index lock");
        let index = segments.partition_point(|info| info.seq_first < at);
        segments.insert(
            index,
            SegmentInfo {
                seq_first: at,
                path: new_path.clone(),
                sparse,
            },
        );
        Ok((new_path, out.len() as u64))
    }

    /// Drops the segments before `cut` from the index (compaction, before their files go):
    /// later reads of older seqs get [`Error::SeqUnavailable`].
    pub(crate) fn forget_before(&self, cut: Seq) {
        let mut segments = self.shared.segments.write().expect("log index lock");
        let keep_from = segments
            .iter()
            .rposition(|info| info.seq_first <= cut)
            .unwrap_or(0);
        segments.drain(..keep_from);
    }
}

/// Writes commits `[from, to]` of `reader` as fresh segments into the empty directory
/// `log_dir` (rolling at `segment_bytes_max`), byte-identical frames with the same seqs. When
/// the range is empty, writes one empty segment starting at `from`, so a log copied "up to
/// seq N" continues at N + 1. Every file is fsynced, then the directory.
pub(crate) fn write_log_range(
    storage: &dyn Storage,
    reader: &LogReader,
    from: Seq,
    to: Seq,
    log_dir: &Path,
    segment_bytes_max: u64,
    mut progress: impl FnMut(u64),
) -> Result<()> {
    storage
        .create_dir_all(log_dir)
        .map_err(|err| Error::io("create dir", log_dir, err))?;
    let write_segment = |seq_first: Seq, bytes: &[u8]| -> Result<()> {
        let path = join(log_dir, &segment_name(seq_first));
        let tmp = PathBuf::from(format!("{}.tmp", path.display()));
        storage
            .write_new(&tmp, bytes)
            .map_err(|err| Error::io("write segment", &tmp, err))?;
        storage
            .rename(&tmp, &path)
            .map_err(|err| Error::io("rename", &path, err))
    };
    let mut buf: Vec<u8> = segment_header(from).to_vec();
    let mut seq_first = from;
    let mut next = from;
    while next <= to {
        let limit = ((to - next + 1) as usize).min(4096);
        let commits = reader.read_from(next, limit)?;
        if commits.is_empty() {
            return Err(Error::SeqUnavailable {
                seq: next,
                reason: format!("the log ends at seq {}", reader.last_seq()),
            });
        }
        for commit in &commits {
            if buf.len() as u64 >= segment_bytes_max && buf.len() > SEGMENT_HEADER_LEN {
                write_segment(seq_first, &buf)?;
                seq_first = commit.seq;
                buf = segment_header(seq_first).to_vec();
            }
            encode_frame(&encode_commit(commit), &mut buf);
        }
        next = commits.last().map_or(next, |commit| commit.seq + 1);
        progress(commits.len() as u64);
    }
    write_segment(seq_first, &buf)?;
    storage
        .sync_dir(log_dir)
        .map_err(|err| Error::io("fsync dir", log_dir, err))
}

/// Verifies a log directory without opening it for writing (no torn-tail repair).
/// Calls `on_commit` for every valid commit; returns the report or the first problem.
pub fn scan_log_dir(
    storage: &dyn Storage,
    dir: &Path,
    mut on_commit: impl FnMut(&Commit),
) -> Result<RecoveryReport> {
    scan_log_dir_with_offsets(storage, dir, |commit, _| on_commit(commit))
}

impl LogReader {
    /// Opens a log directory for reading only (no lock, no repair): the valid prefix of the
    /// log is readable, a torn tail is ignored, corruption is an error.
    pub fn open_dir(storage: Arc<dyn Storage>, dir: &Path) -> Result<(LogReader, RecoveryReport)> {
        let segments = list_segments(storage.as_ref(), dir)?;
        let mut infos: Vec<SegmentInfo> = segments
            .iter()
            .map(|(seq_first, path)| SegmentInfo {
                seq_first: *seq_first,
                path: path.clone(),
                sparse: Vec::new(),
            })
            .collect();
        let mut last = segments.first().map(|(seq, _)| seq - 1).unwrap_or(0);
        let mut frame_index = 0u64;
        let mut current_segment = 0usize;
        let report = {
            let mut offsets: Vec<(Seq, u64)> = Vec::new();
            let report = scan_log_dir_with_offsets(storage.as_ref(), dir, |commit, offset| {
                offsets.push((commit.seq, offset));
            })?;
            for (seq, offset) in offsets {
                while current_segment + 1 < infos.len()
                    && infos[current_segment + 1].seq_first <= seq
                {
                    current_segment += 1;
                    frame_index = 0;
                }
                if frame_index.is_multiple_of(INDEX_EVERY) {
                    infos[current_segment].sparse.push((seq, offset));
                }
                frame_index += 1;
                last = seq;
            }
            report
        };
        let shared = Arc::new(LogShared {
            segments: RwLock::new(infos),
            durable_seq: AtomicU64::new(last),
            dir: dir.to_path_buf(),
            active: Mutex::new(None),
            rewrite_gate: RwLock::new(()),
            fsync_seconds: crate::metrics::Histogram::latency(),
        });
        Ok((LogReader { storage, shared }, report))
    }
}

pub(crate) fn scan_log_dir_with_offsets(
    storage: &dyn Storage,
    dir: &Path,
    mut on_commit: impl FnMut(&Commit, u64),
) -> Result<RecoveryReport> {
    let segments = list_segments(storage, dir)?;
    let mut report = RecoveryReport {
        segments: segments.len(),
        ..RecoveryReport::default()
    };
    let Some((first, _)) = segments.first() else {
        return Ok(report);
    };
    let mut expect = *first;
    let count = segments.len();
    for (index, (seq_first, path)) in segments.iter().enumerate() {
        if *seq_first != expect {
            return Err(Error::Corrupt {
                segment: path.clone(),
                offset: 0,
                reason: format!("segment starts at seq {seq_first}, expected {expect}"),
            });
        }
        let len = storage
            .len(path)
            .map_err(|err| Error::io("stat", path, err))?;
        let bytes = storage
            .read_at(path, 0, len as usize)
            .map_err(|err| Error::io("read", path, err))?;
        let mut frames = 0;
        let scan = scan_segment(
            path,
            &bytes,
            *seq_first,
            index + 1 == count,
            segments.get(index + 1).map(|(seq, _)| *seq),
            |commit, offset| {
                frames += 1;
                on_commit(commit, offset);
            },
        )?;
        if let Some(offset) = scan.torn_at {
            report.torn_tail = Some(TornTail {
                segment: path.clone(),
                offset,
                bytes: bytes.len() as u64 - offset,
                kept_in: PathBuf::new(),
            });
        }
        report.bytes += scan.valid_len;
        report.commits += frames;
        expect = seq_first + frames;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_sort_and_parse() {
        assert_eq!(segment_name(1), "seg-0000000000000001.log");
        assert_eq!(parse_segment_name(&segment_name(0xabc)), Some(0xabc));
        assert_eq!(parse_segment_name("seg-1.log"), None);
        assert!(segment_name(9) < segment_name(10));
    }
}
