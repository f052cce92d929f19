//! Replication hooks (`replica.rs`): a follower fed the leader's frames holds the same log
//! (same positions, same frame bytes) and the same projection; it refuses local commands, gaps,
//! damaged frames and frames at the wrong seq, skips redeliveries, and publishes what it
//! applies to its subscribers under the leader's seqs.

mod common;

use common::*;
use engine::{Error, SyncPolicy};

fn leader_frames(engine: &engine::Engine, from: u64) -> Vec<Vec<u8>> {
    let last = engine.last_seq();
    engine
        .log()
        .read_from(from, (last + 1 - from) as usize)
        .expect("read log")
        .iter()
        .map(|commit| engine::encode_frame(commit).expect("encode"))
        .collect()
}

#[test]
fn a_follower_fed_the_leaders_frames_holds_the_same_log_and_projection() {
    let leader_dir = tempfile::tempdir().expect("tempdir");
    let follower_dir = tempfile::tempdir().expect("tempdir");
    let leader = open(leader_dir.path(), SyncPolicy::None);
    create_notes(&leader);
    insert_many(&leader, 0, 30);
    let follower = open(follower_dir.path(), SyncPolicy::None);
    follower.set_follower(true);
    assert!(follower.is_follower());
    let mut subscription = follower.subscribe(1).expect("subscribe");

    // Local commands are refused on a follower, and nothing is written.
    let refused = insert_note(&follower, "x", "local", 1).expect_err("follower refuses");
    assert!(refused.contains("NotLeader"), "{refused}");
    assert_eq!(follower.last_seq(), 0);

    let frames = leader_frames(&leader, 1);
    let commits: Vec<engine::Commit> = frames
        .iter()
        .enumerate()
        .map(|(i, frame)| engine::decode_frame(frame, Some(i as u64 + 1)).expect("decode"))
        .collect();
    // In two batches; the second overlaps the first (a redelivery is skipped).
    assert_eq!(
        follower
            .apply_replicated(commits[..10].to_vec())
            .expect("apply"),
        10
    );
    assert_eq!(
        follower
            .apply_replicated(commits[5..].to_vec())
            .expect("apply"),
        31
    );
    assert_eq!(follower.last_seq(), leader.last_seq());
    assert_eq!(live_dump(&follower), live_dump(&leader));
    assert_eq!(leader_frames(&follower, 1), frames, "the same frame bytes");

    // Subscribers see the replicated commits under the leader's seqs.
    let mut seen = Vec::new();
    while seen.len() < 31 {
        subscription.wait(std::time::Duration::from_secs(5));
        let batch = subscription.try_next_batch(100).expect("next");
        assert!(
            !batch.is_empty() || seen.len() == 31,
            "subscription stalled"
        );
        seen.extend(batch.iter().map(|commit| commit.seq));
    }
    assert_eq!(seen, (1..=31).collect::<Vec<_>>());

    // A gap is refused, nothing written.
    insert_many(&leader, 100, 3);
    let frames = leader_frames(&leader, 32);
    let skipping = engine::decode_frame(&frames[1], Some(33)).expect("decode");
    match follower.apply_replicated(vec![skipping]) {
        Err(Error::SeqUnavailable { seq: 32, .. }) => {}
        other => panic!("a gap must be refused: {other:?}"),
    }
    assert_eq!(follower.last_seq(), 31);

    // Damaged frames, trailing bytes and the wrong seq are refused before anything applies.
    let mut damaged = frames[0].clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 0x40;
    assert!(engine::decode_frame(&damaged, Some(32)).is_err());
    let mut trailing = frames[0].clone();
    trailing.push(0);
    assert!(engine::decode_frame(&trailing, Some(32)).is_err());
    assert!(engine::decode_frame(&frames[0][..10], Some(32)).is_err());
    assert!(engine::decode_frame(&frames[0], Some(40)).is_err());

    // Promoted, the follower takes local commands again and continues the same log.
    let rest: Vec<engine::Commit> = frames
        .iter()
        .enumerate()
        .map(|(i, frame)| engine::decode_frame(frame, Some(32 + i as u64)).expect("decode"))
        .collect();
    assert_eq!(follower.apply_replicated(rest).expect("apply"), 34);
    follower.set_follower(false);
    assert_eq!(
        insert_note(&follower, "y", "promoted", 2).expect("write"),
        35
    );
    assert_projection_matches_replay(&follower);
}
