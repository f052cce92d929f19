//! `engine::admin::discard_log_tail`: a deposed leader's unreplicated tail is cut off the log
//! of a closed data dir and kept byte for byte in `.broken-cluster-*` files; the next open
//! rebuilds the projection (now ahead of the log) and the engine continues from the cut; a
//! second cut never overwrites the first one's files. Across segments: whole segments past the
//! cut are kept aside, the one holding it is truncated.

mod common;

use common::*;
use engine::SyncPolicy;

fn log_files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir.join(engine::admin::LOG_DIR))
        .expect("log dir")
        .flatten()
        .map(|entry| {
            (
                entry.file_name().to_string_lossy().into_owned(),
                std::fs::read(entry.path()).expect("read"),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn the_tail_is_kept_aside_and_the_log_continues_from_the_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = open(dir.path(), SyncPolicy::Always);
    create_notes(&engine);
    insert_many(&engine, 0, 10);
    let keep = engine.last_seq();
    let kept_dump = live_dump(&engine);
    insert_many(&engine, 100, 5);
    let last = engine.last_seq();
    let tail_frames: Vec<u8> = engine
        .log()
        .read_from(keep + 1, 100)
        .expect("read")
        .iter()
        .flat_map(|commit| engine::encode_frame(commit).expect("encode"))
        .collect();
    engine.shutdown();
    drop(engine);

    // Nothing to cut at or past the end.
    assert_eq!(
        engine::admin::discard_log_tail(dir.path(), last).expect("noop"),
        None
    );
    let discarded = engine::admin::discard_log_tail(dir.path(), keep)
        .expect("discard")
        .expect("a tail");
    assert_eq!((discarded.from, discarded.to), (keep + 1, last));
    let kept: Vec<u8> = discarded
        .kept_in
        .iter()
        .flat_map(|path| {
            assert!(path
                .to_string_lossy()
                .contains(engine::admin::DISCARDED_TAIL_SUFFIX));
            std::fs::read(path).expect("kept file")
        })
        .collect();
    assert_eq!(kept, tail_frames, "the cut frames are kept byte for byte");

    let engine = open(dir.path(), SyncPolicy::Always);
    assert_eq!(engine.last_seq(), keep);
    assert_eq!(
        live_dump(&engine),
        kept_dump,
        "the projection is the log's again"
    );
    insert_many(&engine, 200, 2);
    assert_eq!(engine.last_seq(), keep + 2);
    engine.shutdown();
    drop(engine);
    // A second cut keeps its own files next to the first ones.
    let again = engine::admin::discard_log_tail(dir.path(), keep)
        .expect("discard")
        .expect("a tail");
    assert_eq!((again.from, again.to), (keep + 1, keep + 2));
    for path in &discarded.kept_in {
        assert!(!again.kept_in.contains(path), "{again:?}");
        let bytes = std::fs::read(path).expect("the first cut's file is still there");
        assert!(!bytes.is_empty());
    }
    assert!(log_files(dir.path())
        .iter()
        .any(|(name, _)| name.ends_with(".log")));
}

#[test]
fn whole_segments_past_the_cut_are_kept_aside() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = || engine::EngineConfig {
        sync: SyncPolicy::None,
        segment_bytes_max: 512,
        ..engine::EngineConfig::default()
    };
    let engine = open_with(dir.path(), config());
    create_notes(&engine);
    insert_many(&engine, 0, 5);
    let keep = engine.last_seq();
    insert_many(&engine, 100, 20);
    let last = engine.last_seq();
    engine.shutdown();
    drop(engine);
    let before = segments(dir.path()).len();
    assert!(before > 2, "small segments: {before}");
    let discarded = engine::admin::discard_log_tail(dir.path(), keep)
        .expect("discard")
        .expect("a tail");
    assert_eq!((discarded.from, discarded.to), (keep + 1, last));
    assert!(discarded.kept_in.len() > 1, "{discarded:?}");
    assert!(segments(dir.path()).len() < before);
    let engine = open_with(dir.path(), config());
    assert_eq!(engine.last_seq(), keep);
    insert_many(&engine, 200, 1);
    assert_eq!(engine.last_seq(), keep + 1);
}
