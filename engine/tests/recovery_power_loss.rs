//! Power loss in the middle of the last, never-acknowledged frame: any byte split and any
//! subset of its 4 KiB pages may have reached the disk (FORMAT.md, disk assumption 2), e.g.
//! `[synced frames][zeros][the rest of a frame]`. Every such state must open as a torn tail:
//! the synced frames kept, the damaged bytes moved to `.broken-*`, the seq continued.
//!
//! The same damage followed by a valid later frame (damage inside the log), and the same damage
//! in the last frame of a segment that is not the last one, must stay `Error::Corrupt`.
//!
//! The exhaustive product (every split point × every page pattern) runs against the pure
//! recovery scan (`testing::recover_segment_bytes`); the engine itself opens every page pattern
//! at full length and at every page-boundary split, plus a stride of other split points.
//!
//! Guards against: a log that refuses to open after a power loss (`impossible frame length 0`),
//! a cut that keeps part of the torn frame, and a torn-tail verdict that hides mid-log damage.
#![allow(
    clippy::disallowed_methods,
    reason = "tests damage and inspect log files directly"
)]

mod common;

use common::*;
use engine::testing::recover_segment_bytes;
use engine::{Engine, EngineConfig, Error, SyncPolicy};
use std::path::{Path, PathBuf};

const PAGE: usize = 4096;
const NOTES: usize = 6;

/// A data dir with the collection, `NOTES` small notes and one last note of about 10 KiB (so
/// its frame straddles several pages). Returns the segment path, its bytes and the start of the
/// last frame.
fn build(dir: &Path) -> (PathBuf, Vec<u8>, usize) {
    let engine = open(dir, SyncPolicy::None);
    create_notes(&engine);
    insert_many(&engine, 0, NOTES);
    let big: String = (0..10_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    insert_note(&engine, "big", &big, 7).expect("insert the big note");
    engine.shutdown();
    drop(engine);
    let segs = segments(dir);
    assert_eq!(segs.len(), 1);
    let bytes = std::fs::read(&segs[0]).expect("read");
    let offsets = frame_offsets(&segs[0]);
    assert_eq!(offsets.len(), NOTES + 2);
    let start = *offsets.last().expect("frames") as usize;
    assert!(
        !start.is_multiple_of(PAGE) && bytes.len() - start > 2 * PAGE,
        "the last frame must start inside a page and span several"
    );
    (segs[0].clone(), bytes, start)
}

/// Pages (absolute index) that hold bytes of `[start, end)`.
fn pages(start: usize, end: usize) -> std::ops::Range<usize> {
    if end <= start {
        return start / PAGE..start / PAGE;
    }
    start / PAGE..(end - 1) / PAGE + 1
}

/// The file after a power loss: the synced prefix `bytes[..start]`, then the unsynced bytes up
/// to `cut`, where a page whose bit in `mask` (relative to the first page of the tail) is clear
/// never reached the disk and reads back as zeros.
fn materialize(bytes: &[u8], start: usize, cut: usize, mask: u32) -> Vec<u8> {
    let first_page = start / PAGE;
    let mut out = bytes[..cut].to_vec();
    for (at, byte) in out.iter_mut().enumerate().skip(start) {
        if mask & (1 << (at / PAGE - first_page)) == 0 {
            *byte = 0;
        }
    }
    out
}

/// Every split point × every page pattern of the last frame, against the pure recovery scan:
/// intact only when the bytes are exactly the written ones, otherwise a torn tail at the start
/// of the last frame that keeps every earlier commit.
#[test]
fn every_split_and_page_pattern_of_the_last_frame_is_a_torn_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, bytes, start) = build(dir.path());
    let all_seqs: Vec<u64> = (1..=NOTES as u64 + 2).collect();
    let kept_seqs = &all_seqs[..all_seqs.len() - 1];
    let mut states = 0u64;
    for cut in start..=bytes.len() {
        let relevant = pages(start, cut).len() as u32;
        for mask in 0..(1u32 << relevant) {
            let state = materialize(&bytes, start, cut, mask);
            let context = format!("cut {cut}, page mask {mask:b}");
            let verdict = recover_segment_bytes(&state, 1, true)
                .unwrap_or_else(|err| panic!("{context}: refused: {err}"));
            if state == bytes {
                assert_eq!(verdict, (all_seqs.clone(), None), "{context}");
            } else if cut == start {
                assert_eq!(verdict, (kept_seqs.to_vec(), None), "{context}");
            } else {
                assert_eq!(
                    verdict,
                    (kept_seqs.to_vec(), Some(start as u64)),
                    "{context}"
                );
            }
            states += 1;
        }
    }
    println!("{states} power-loss states of the last frame, all torn tails");
    assert!(states > 20_000, "{states}");
}

/// The engine opens the state and every page pattern (full length and cut at every page
/// boundary, and a stride of other splits): keeps the synced commits, moves the damaged bytes
/// to `.broken-*`, projection equal to a replay, the next commit continues the seq.
#[test]
fn the_engine_opens_every_page_pattern_of_a_torn_last_frame() {
    let template = tempfile::tempdir().expect("tempdir");
    let (segment, bytes, start) = build(template.path());
    let name = segment.file_name().expect("name").to_owned();
    let end = bytes.len();
    let mut cuts: Vec<usize> = (start + 1..=end).step_by(509).collect();
    for page in pages(start, end) {
        for boundary in [page * PAGE, (page + 1) * PAGE] {
            for cut in [boundary.saturating_sub(1), boundary, boundary + 1] {
                if cut > start && cut <= end {
                    cuts.push(cut);
                }
            }
        }
    }
    cuts.push(end);
    cuts.sort_unstable();
    cuts.dedup();
    let mut opened = 0;
    for &cut in &cuts {
        let relevant = pages(start, cut).len() as u32;
        for mask in 0..(1u32 << relevant) {
            let state = materialize(&bytes, start, cut, mask);
            if state == bytes {
                continue;
            }
            let context = format!("cut {cut}, page mask {mask:b}");
            let work = tempfile::tempdir().expect("tempdir");
            copy_dir(template.path(), work.path());
            let seg = work.path().join("log").join(&name);
            std::fs::write(&seg, &state).expect("write state");
            let (engine, report) = Engine::open(work.path(), EngineConfig::default())
                .unwrap_or_else(|err| panic!("{context}: open refused: {err}"));
            let kept = NOTES as u64 + 1;
            assert_eq!(engine.last_seq(), kept, "{context}");
            let torn = report
                .torn_tail
                .clone()
                .unwrap_or_else(|| panic!("{context}: no torn tail reported"));
            assert_eq!(
                (torn.offset, torn.bytes),
                (start as u64, (cut - start) as u64),
                "{context}"
            );
            assert_eq!(
                std::fs::read(&torn.kept_in).expect("side file"),
                state[start..],
                "{context}"
            );
            assert_eq!(
                std::fs::metadata(&seg).expect("stat").len(),
                start as u64,
                "{context}"
            );
            assert_eq!(notes(&engine).len(), NOTES, "{context}");
            assert_projection_matches_replay(&engine);
            let next = insert_note(&engine, "after", "after", -1).expect("insert after the cut");
            assert_eq!(next, kept + 1, "{context}");
            engine.shutdown();
            opened += 1;
        }
    }
    println!("the engine opened {opened} torn states");
    assert!(opened > 100, "{opened}");
}

/// `[synced frames][zeros][the rest of a frame]` exactly as the issue words it, through the
/// read-only paths too: `LogReader::open_dir` (what `verify` uses) reports a torn tail and
/// reads every synced commit instead of failing with `impossible frame length 0`.
#[test]
fn a_lost_first_page_of_the_last_frame_is_a_torn_tail_for_readers_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (segment, bytes, start) = build(dir.path());
    let state = materialize(&bytes, start, bytes.len(), !1);
    assert_eq!(&state[start..start + 4], &[0, 0, 0, 0]);
    std::fs::write(&segment, &state).expect("write");
    let (reader, report) = engine::LogReader::open_dir(
        std::sync::Arc::new(engine::FsStorage),
        &dir.path().join("log"),
    )
    .expect("open_dir");
    assert_eq!(reader.last_seq(), NOTES as u64 + 1);
    assert_eq!(report.torn_tail.map(|torn| torn.offset), Some(start as u64));
    assert_eq!(
        reader.read_from(1, 100).expect("read").len(),
        NOTES + 1,
        "every synced commit is readable"
    );
}

/// The same page patterns of a frame that is followed by a valid later frame are damage inside
/// the log: `Corrupt` at the damaged frame, never a cut of the frames after it.
#[test]
fn damage_followed_by_a_valid_later_frame_stays_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (segment, _, _) = build(dir.path());
    // Damage the big frame and append one more valid frame after it: the big frame is now in
    // the middle.
    let engine = open(dir.path(), SyncPolicy::None);
    insert_note(&engine, "later", "later", 8).expect("insert");
    engine.shutdown();
    drop(engine);
    let bytes = std::fs::read(&segment).expect("read");
    let offsets = frame_offsets(&segment);
    let damaged = offsets[offsets.len() - 2] as usize;
    let later = offsets[offsets.len() - 1] as usize;
    let damaged_pages = pages(damaged, later).len() as u32;
    let mut cases = 0;
    for mask in 0..(1u32 << damaged_pages) {
        let mut state = bytes.clone();
        let first_page = damaged / PAGE;
        for (at, byte) in state.iter_mut().enumerate().take(later).skip(damaged) {
            if mask & (1 << (at / PAGE - first_page)) == 0 {
                *byte = 0;
            }
        }
        if state == bytes {
            continue;
        }
        let context = format!("page mask {mask:b}");
        match recover_segment_bytes(&state, 1, true) {
            Err(Error::Corrupt { offset, reason, .. }) => {
                assert_eq!(offset, damaged as u64, "{context}");
                assert!(reason.contains("follows at offset"), "{context}: {reason}");
            }
            other => panic!("{context}: expected Corrupt, got {other:?}"),
        }
        cases += 1;
    }
    // A damaged length field that claims the frame runs past the end of the file.
    let mut state = bytes.clone();
    state[damaged..damaged + 4].copy_from_slice(&u32::MAX.to_le_bytes()[..4]);
    assert!(matches!(
        recover_segment_bytes(&state, 1, true),
        Err(Error::Corrupt { .. })
    ));
    let mut state = bytes.clone();
    let huge = (bytes.len() as u32).to_le_bytes();
    state[damaged..damaged + 4].copy_from_slice(&huge);
    assert!(matches!(
        recover_segment_bytes(&state, 1, true),
        Err(Error::Corrupt { .. })
    ));
    // Through the engine: refuses, and the files are untouched.
    let mut state = bytes.clone();
    for byte in &mut state[damaged..damaged + 8] {
        *byte = 0;
    }
    std::fs::write(&segment, &state).expect("write");
    match Engine::open(dir.path(), EngineConfig::default()) {
        Err(Error::Corrupt { offset, .. }) => assert_eq!(offset, damaged as u64),
        Err(other) => panic!("expected Corrupt, got {other}"),
        Ok(_) => panic!("opened a log with damage in the middle"),
    }
    assert_eq!(std::fs::read(&segment).expect("read"), state);
    assert!(broken_files(dir.path()).is_empty());
    assert!(cases >= 3, "{cases}");
}

/// A segment that is not the last was synced before its successor was created: the same page
/// patterns in its last frame are corruption, even when the next segment holds no frame yet.
#[test]
fn page_damage_in_the_last_frame_of_an_earlier_segment_is_corruption() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (segment, bytes, start) = build(dir.path());
    for successor_frames in [false, true] {
        let work = tempfile::tempdir().expect("tempdir");
        copy_dir(dir.path(), work.path());
        // Roll: a small segment size makes the next commit start a new segment.
        let engine = open_with(
            work.path(),
            EngineConfig {
                segment_bytes_max: 1,
                ..EngineConfig::default()
            },
        );
        insert_note(&engine, "next", "next", 9).expect("insert");
        if !successor_frames {
            // An empty successor segment, as a crash right after a roll leaves it.
            let successor = segments(work.path()).pop().expect("successor");
            truncate_to(&successor, engine::admin::SEGMENT_HEADER_LEN as u64);
        }
        engine.shutdown();
        drop(engine);
        let first = work
            .path()
            .join("log")
            .join(segment.file_name().expect("name"));
        assert_eq!(segments(work.path()).len(), 2);
        for mask in [0b0u32, 0b1, 0b10, 0b110, 0b101] {
            let state = materialize(&bytes, start, bytes.len(), mask);
            std::fs::write(&first, &state).expect("write");
            let context = format!("successor frames {successor_frames}, mask {mask:b}");
            match Engine::open(work.path(), EngineConfig::default()) {
                Err(Error::Corrupt {
                    segment, offset, ..
                }) => {
                    assert_eq!(
                        (segment, offset),
                        (first.clone(), start as u64),
                        "{context}"
                    )
                }
                Err(other) => panic!("{context}: expected Corrupt, got {other}"),
                Ok(_) => panic!("{context}: opened"),
            }
            assert!(broken_files(work.path()).is_empty(), "{context}");
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != ".lock" {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}
