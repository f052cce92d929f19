//! Property: damage before the tail of the log is corruption, never a torn tail. Flipping a bit
//! in any byte of an earlier frame (header or payload) makes `Engine::open` fail with
//! `Error::Corrupt` naming the segment file and the exact byte offset of the damaged frame;
//! the read-only `LogReader::open_dir` and `scan_log_dir` report the same; nothing is skipped.
//!
//! Guards against: a damaged length field that makes a middle frame look as if it ran past the
//! end of the file (which a naive recovery cuts off as a torn tail, silently losing every later
//! commit), and against corruption in an earlier, already rolled segment going unnoticed.

#![allow(
    clippy::disallowed_methods,
    reason = "tests damage and inspect log files directly"
)]

mod common;

use common::*;
use engine::{Engine, EngineConfig, Error, FsStorage, LogReader, SyncPolicy};
use std::path::Path;
use std::sync::Arc;

fn assert_corrupt_at(dir: &Path, segment: &Path, offset: u64, context: &str) {
    match Engine::open(dir, EngineConfig::default()) {
        Err(Error::Corrupt {
            segment: found,
            offset: found_offset,
            reason,
        }) => {
            assert_eq!(found, segment, "{context}: {reason}");
            assert_eq!(found_offset, offset, "{context}: {reason}");
        }
        Err(other) => panic!("{context}: expected Corrupt, got {other}"),
        Ok((engine, report)) => panic!(
            "{context}: opened with {} commits, report {report:?}",
            engine.last_seq()
        ),
    }
    match LogReader::open_dir(Arc::new(FsStorage), &dir.join(engine::admin::LOG_DIR)) {
        Err(Error::Corrupt {
            segment: found,
            offset: found_offset,
            ..
        }) => assert_eq!(
            (found, found_offset),
            (segment.to_path_buf(), offset),
            "{context}"
        ),
        Err(other) => panic!("{context}: open_dir: expected Corrupt, got {other}"),
        Ok(_) => panic!("{context}: open_dir accepted a corrupt log"),
    }
}

fn build(dir: &Path, segment_bytes_max: u64, notes_count: usize) {
    let engine = open_with(
        dir,
        EngineConfig {
            sync: SyncPolicy::None,
            segment_bytes_max,
            ..EngineConfig::default()
        },
    );
    create_notes(&engine);
    insert_many(&engine, 0, notes_count);
    engine.shutdown();
}

/// Every byte of frames 2 and 5 (of 10) in the only segment, with two different masks.
#[test]
fn a_flipped_bit_in_an_earlier_frame_is_corruption_at_its_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    build(dir.path(), u64::MAX, 9);
    let segment = segments(dir.path()).remove(0);
    let pristine = std::fs::read(&segment).expect("read");
    let offsets = frame_offsets(&segment);
    assert_eq!(offsets.len(), 10);
    let mut cases = 0;
    for frame in [2usize, 5] {
        for byte in offsets[frame]..offsets[frame + 1] {
            for mask in [0x01u8, 0x80] {
                flip_byte(&segment, byte, mask);
                let context = format!("frame {frame} byte {byte} mask {mask:#x}");
                assert_corrupt_at(dir.path(), &segment, offsets[frame], &context);
                std::fs::write(&segment, &pristine).expect("restore");
                cases += 1;
            }
        }
    }
    assert!(cases > 200, "{cases}");
    // And the pristine log still opens with every commit.
    let (engine, report) = Engine::open(dir.path(), EngineConfig::default()).expect("open");
    assert_eq!((engine.last_seq(), report.torn_tail), (10, None));
}

/// Corruption in a rolled (not the last) segment, including in its last frame, and a
/// truncated earlier segment, are corruption too: only the last segment can be torn.
#[test]
fn damage_in_an_earlier_segment_is_corruption() {
    let dir = tempfile::tempdir().expect("tempdir");
    build(dir.path(), 400, 12);
    let segs = segments(dir.path());
    assert!(segs.len() >= 3, "{segs:?}");
    let first = &segs[0];
    let pristine = std::fs::read(first).expect("read");
    let offsets = frame_offsets(first);
    let last_frame = *offsets.last().expect("frames");
    for byte in last_frame..pristine.len() as u64 {
        flip_byte(first, byte, 0x04);
        assert_corrupt_at(dir.path(), first, last_frame, &format!("byte {byte}"));
        std::fs::write(first, &pristine).expect("restore");
    }
    truncate_to(first, pristine.len() as u64 - 1);
    assert_corrupt_at(dir.path(), first, last_frame, "truncated earlier segment");
    std::fs::write(first, &pristine).expect("restore");
    // A missing middle segment is a seq gap at offset 0 of the one after it.
    let middle = std::fs::read(&segs[1]).expect("read");
    std::fs::remove_file(&segs[1]).expect("remove");
    assert_corrupt_at(dir.path(), &segs[2], 0, "missing middle segment");
    std::fs::write(&segs[1], middle).expect("restore");
    let (engine, _) = Engine::open(dir.path(), EngineConfig::default()).expect("open");
    assert_eq!(engine.last_seq(), 13);
    assert_projection_matches_replay(&engine);
}

/// A frame whose checksum is valid but whose seq is wrong (e.g. a duplicated frame) is
/// corruption, reported at that frame.
#[test]
fn a_duplicated_frame_is_corruption() {
    let dir = tempfile::tempdir().expect("tempdir");
    build(dir.path(), u64::MAX, 3);
    let segment = segments(dir.path()).remove(0);
    let bytes = std::fs::read(&segment).expect("read");
    let offsets = frame_offsets(&segment);
    let mut damaged = bytes[..offsets[2] as usize].to_vec();
    damaged.extend_from_slice(&bytes[offsets[1] as usize..]);
    std::fs::write(&segment, damaged).expect("write");
    assert_corrupt_at(dir.path(), &segment, offsets[2], "duplicated frame");
}
