//! Property: a damaged end of the last segment is a torn tail, never corruption. For every byte
//! offset inside the last three frames, cutting the segment there (and, separately, zero-filling
//! from there to the end, as a file system does for unwritten extended blocks) and reopening
//! leaves exactly the commits before the damaged frame, keeps the cut bytes in a `.broken-*`
//! side file, reports the cut in the `RecoveryReport`, and the engine continues the seq.
//!
//! Guards against: recovery that treats a torn write as corruption (refusing to start after a
//! power loss), that loses or keeps half a frame, or that reuses a seq after the cut.
#![allow(
    clippy::disallowed_methods,
    reason = "tests damage and inspect log files directly"
)]

mod common;

use common::*;
use engine::{Engine, EngineConfig, SyncPolicy};
use std::path::Path;

const NOTES: usize = 12;

/// Builds a data dir with the collection plus `NOTES` notes (seqs 1..=NOTES+1) and returns the
/// pristine segment bytes and the frame offsets.
fn build(dir: &Path) -> (std::path::PathBuf, Vec<u8>, Vec<u64>) {
    let engine = open(dir, SyncPolicy::None);
    create_notes(&engine);
    insert_many(&engine, 0, NOTES);
    engine.shutdown();
    drop(engine);
    let segs = segments(dir);
    assert_eq!(segs.len(), 1);
    let bytes = std::fs::read(&segs[0]).expect("read");
    let offsets = frame_offsets(&segs[0]);
    assert_eq!(offsets.len(), NOTES + 1);
    (segs[0].clone(), bytes, offsets)
}

#[derive(Clone, Copy, Debug)]
enum Damage {
    Truncate,
    ZeroFill,
}

fn check_damage(damage: Damage) {
    let template = tempfile::tempdir().expect("tempdir");
    let (segment, pristine, offsets) = build(template.path());
    let end = pristine.len() as u64;
    let first_damaged_frame = offsets.len() - 3;
    let mut cases = 0;
    for frame in first_damaged_frame..offsets.len() {
        let frame_start = offsets[frame];
        let frame_end = offsets.get(frame + 1).copied().unwrap_or(end);
        for cut in frame_start..frame_end {
            let work = tempfile::tempdir().expect("tempdir");
            copy_dir(template.path(), work.path());
            let seg = work
                .path()
                .join("log")
                .join(segment.file_name().expect("name"));
            match damage {
                Damage::Truncate => truncate_to(&seg, cut),
                Damage::ZeroFill => zero_from(&seg, cut),
            }
            let context = format!("{damage:?} at byte {cut} (frame {frame} at {frame_start})");
            // The frame actually damaged: zero-filling bytes that already are zero changes
            // nothing, and a cut exactly at a frame boundary leaves a shorter, valid log.
            let changed_at = match damage {
                Damage::Truncate => (cut > frame_start).then_some(cut),
                Damage::ZeroFill => (cut..end).find(|&at| pristine[at as usize] != 0),
            };
            let damaged =
                changed_at.map(|at| offsets.iter().rposition(|&o| o <= at).expect("frame"));
            let (engine, report) = Engine::open(
                work.path(),
                EngineConfig {
                    sync: SyncPolicy::None,
                    ..EngineConfig::default()
                },
            )
            .unwrap_or_else(|err| panic!("{context}: open failed: {err}"));
            // Frames before the damaged one survive: seq 1 (the collection) plus the notes.
            let kept_frames = damaged.unwrap_or(match damage {
                Damage::Truncate => frame,
                Damage::ZeroFill => offsets.len(),
            });
            let kept = kept_frames as u64;
            assert_eq!(engine.last_seq(), kept, "{context}");
            assert_eq!(report.commits, kept, "{context}");
            let valid_end = offsets.get(kept_frames).copied().unwrap_or(end);
            match damaged {
                None => {
                    assert_eq!(report.torn_tail, None, "{context}");
                    assert!(broken_files(work.path()).is_empty(), "{context}");
                }
                Some(_) => {
                    let torn = report
                        .torn_tail
                        .clone()
                        .unwrap_or_else(|| panic!("{context}: no torn tail reported"));
                    assert_eq!(torn.offset, valid_end, "{context}");
                    assert_eq!(torn.segment, seg, "{context}");
                    let damaged_end = match damage {
                        Damage::Truncate => cut,
                        Damage::ZeroFill => end,
                    };
                    assert_eq!(torn.bytes, damaged_end - valid_end, "{context}");
                    assert_eq!(
                        broken_files(work.path()),
                        vec![torn.kept_in.clone()],
                        "{context}"
                    );
                    let kept_bytes = std::fs::read(&torn.kept_in).expect("read broken");
                    let mut expected = pristine[valid_end as usize..damaged_end as usize].to_vec();
                    if let Damage::ZeroFill = damage {
                        for byte in &mut expected[(cut.max(valid_end) - valid_end) as usize..] {
                            *byte = 0;
                        }
                    }
                    assert_eq!(kept_bytes, expected, "{context}: side file content");
                }
            }
            assert_eq!(
                std::fs::metadata(&seg).expect("stat").len(),
                valid_end,
                "{context}"
            );
            let expected_notes: Vec<(String, String, i64)> = (0..kept_frames - 1)
                .map(|index| {
                    (
                        format!("n{index:04}"),
                        format!("title {index}"),
                        index as i64,
                    )
                })
                .collect();
            assert_eq!(notes(&engine), expected_notes, "{context}");
            // The engine continues the seq right after the cut.
            let next =
                insert_note(&engine, "after", "after the cut", -1).expect("insert after cut");
            assert_eq!(next, kept + 1, "{context}");
            assert_projection_matches_replay(&engine);
            engine.shutdown();
            drop(engine);
            // A second open finds a clean log.
            let (engine, report) =
                Engine::open(work.path(), EngineConfig::default()).expect("reopen");
            assert_eq!(report.torn_tail, None, "{context}");
            assert_eq!(engine.last_seq(), kept + 1, "{context}");
            cases += 1;
        }
    }
    assert!(cases > 30, "only {cases} cases");
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

#[test]
fn truncation_anywhere_in_the_last_frames_is_a_torn_tail() {
    check_damage(Damage::Truncate);
}

#[test]
fn zero_fill_from_anywhere_in_the_last_frames_is_a_torn_tail() {
    check_damage(Damage::ZeroFill);
}

#[test]
fn a_torn_tail_twice_at_the_same_offset_keeps_both_side_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (segment, _, offsets) = build(dir.path());
    let last = *offsets.last().expect("frames");
    for round in 0..2 {
        let len = std::fs::metadata(&segment).expect("stat").len();
        if round == 1 {
            // Rewrite a partial frame at the same place.
            let engine = open(dir.path(), SyncPolicy::None);
            insert_note(&engine, "again", "again", 0).expect("insert");
            engine.shutdown();
        }
        let len_now = std::fs::metadata(&segment).expect("stat").len();
        truncate_to(&segment, if round == 0 { len - 3 } else { len_now - 3 });
        let (engine, report) = Engine::open(dir.path(), EngineConfig::default()).expect("open");
        assert_eq!(report.torn_tail.expect("torn").offset, last);
        engine.shutdown();
    }
    assert_eq!(
        broken_files(dir.path()).len(),
        2,
        "the first side file was overwritten"
    );
}
