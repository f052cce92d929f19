//! `engine::admin::Projection`: a projection opened outside an engine applies commits with the
//! replay code (in batches or all at once, same content and digest as the live projection), and
//! one opened read-only reads its position and content but refuses to apply anything.

mod common;

use common::*;
use engine::admin::Projection;
use engine::SyncPolicy;

#[test]
fn applied_commits_equal_the_live_projection_and_read_only_refuses_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = open(dir.path(), SyncPolicy::None);
    create_notes(&engine);
    insert_many(&engine, 0, 40);
    let last = engine.last_seq();
    let commits = engine.log().read_from(1, last as usize).expect("read log");
    assert_eq!(commits.len() as u64, last);

    let scratch = tempfile::tempdir().expect("tempdir");
    let batched_path = scratch.path().join("batched.db");
    let mut batched = Projection::open(&batched_path).expect("open");
    assert_eq!(batched.last_applied().expect("seq"), 0);
    let (head, tail) = commits.split_at(7);
    assert_eq!(batched.apply(head).expect("apply head"), 7);
    assert_eq!(batched.apply(tail).expect("apply tail"), last);

    let mut replayed = Projection::open(&scratch.path().join("replayed.db")).expect("open");
    assert_eq!(
        replayed
            .replay(engine.log(), 1, last, |_| {})
            .expect("replay"),
        last
    );

    let live = live_dump(&engine);
    assert_eq!(batched.dump().expect("dump"), live);
    assert_eq!(replayed.dump().expect("dump"), live);
    assert_eq!(
        batched.digest().expect("digest"),
        replayed.digest().expect("digest")
    );
    drop(batched);

    // A different state has a different digest.
    let mut shorter = Projection::open(&scratch.path().join("shorter.db")).expect("open");
    shorter.apply(head).expect("apply");
    let mut read_only = Projection::open_read_only(&batched_path).expect("open read-only");
    assert_ne!(
        shorter.digest().expect("digest"),
        read_only.digest().expect("digest")
    );

    assert_eq!(read_only.last_applied().expect("seq"), last);
    assert_eq!(read_only.dump().expect("dump"), live);
    let refused = read_only
        .apply(tail)
        .expect_err("read-only refuses commits");
    assert!(refused.to_string().contains("read-only"), "{refused}");
    assert!(read_only.replay(engine.log(), 1, last, |_| {}).is_err());
    assert_eq!(read_only.last_applied().expect("seq"), last);
}
