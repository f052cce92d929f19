//! Property: with tiny segments (many rolls), `LogReader::read_from` returns exactly the
//! commits `seq..seq+limit` in order from any starting seq, both on the live engine and through
//! the read-only `LogReader::open_dir` after reopen; subscriptions from arbitrary seqs (including
//! a subscriber much slower than the hub's in-memory ring) get every commit once, in order.
//!
//! Guards against: off-by-one at segment boundaries and sparse-index entries, and a slow
//! subscriber silently losing commits that left the ring.
#![allow(
    clippy::disallowed_methods,
    reason = "tests damage and inspect log files directly"
)]

mod common;

use common::*;
use engine::{Engine, EngineConfig, FsStorage, LogReader, SyncPolicy};
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::time::{Duration, Instant};

const NOTES: usize = 700;

fn small_segments() -> EngineConfig {
    EngineConfig {
        sync: SyncPolicy::None,
        segment_bytes_max: 2048,
        hub_ring_commits: 8,
        ..EngineConfig::default()
    }
}

fn check_reads(reader: &LogReader, last: u64, rng: &mut impl Rng, seed: u64) {
    assert_eq!(reader.last_seq(), last, "seed {seed}");
    // Every single seq, then random ranges.
    for seq in 1..=last {
        let got = reader.read_from(seq, 1).expect("read");
        assert_eq!(got.len(), 1, "seed {seed}: seq {seq}");
        assert_eq!(got[0].seq, seq, "seed {seed}");
    }
    for _ in 0..200 {
        let from = rng.gen_range(0..=last + 2);
        let limit = rng.gen_range(0..600);
        let got: Vec<u64> = reader
            .read_from(from, limit)
            .expect("read")
            .iter()
            .map(|commit| commit.seq)
            .collect();
        let start = from.max(1);
        let expected: Vec<u64> = (start..=last).take(limit).collect();
        assert_eq!(got, expected, "seed {seed}: read_from({from}, {limit})");
    }
}

#[test]
fn read_from_any_seq_across_many_segments() {
    let seed: u64 = rand::random();
    println!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = open_with(dir.path(), small_segments());
    create_notes(&engine);
    insert_many(&engine, 0, NOTES);
    let last = NOTES as u64 + 1;
    let segment_count = segments(dir.path()).len();
    assert!(segment_count > 20, "only {segment_count} segments");
    check_reads(engine.log(), last, &mut rng, seed);
    engine.shutdown();
    drop(engine);
    let (reader, report) = LogReader::open_dir(
        Arc::new(FsStorage),
        &dir.path().join(engine::admin::LOG_DIR),
    )
    .expect("open_dir");
    assert_eq!((report.segments, report.commits), (segment_count, last));
    check_reads(&reader, last, &mut rng, seed);
    // Reopened engine: same reads, and writing continues in the right segment.
    let (engine, report) = Engine::open(dir.path(), small_segments()).expect("reopen");
    assert_eq!(report.commits, last);
    check_reads(engine.log(), last, &mut rng, seed);
    let seq = insert_note(&engine, "more", "more", 0).expect("insert");
    assert_eq!(seq, last + 1);
    assert_projection_matches_replay(&engine);
}

#[test]
fn subscribers_from_any_seq_get_every_commit_in_order_even_when_slow() {
    let seed: u64 = rand::random();
    println!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = open_with(dir.path(), small_segments());
    create_notes(&engine);
    insert_many(&engine, 0, 100);
    let total = 1 + 100 + 300;
    let starts: Vec<u64> = (0..6)
        .map(|_| rng.gen_range(0..=total as u64))
        .chain([0, 1])
        .collect();
    let subscribers: Vec<_> = starts
        .iter()
        .enumerate()
        .map(|(index, &from)| {
            let mut subscription = engine.subscribe(from).expect("subscribe");
            let slow = index % 2 == 0;
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(60);
                let want = total as u64 - from.max(1) + 1;
                while (seen.len() as u64) < want && Instant::now() < deadline {
                    subscription.wait(Duration::from_millis(50));
                    let batch = subscription.try_next_batch(3).expect("batch");
                    seen.extend(batch.iter().map(|commit| commit.seq));
                    if slow {
                        // Far slower than the writer: commits leave the 8-entry ring.
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
                (from, seen)
            })
        })
        .collect();
    // Concurrent writers while subscribers read.
    insert_many(&engine, 100, 300);
    for subscriber in subscribers {
        let (from, seen) = subscriber.join().expect("subscriber");
        let expected: Vec<u64> = (from.max(1)..=total as u64).collect();
        assert_eq!(seen, expected, "seed {seed}: subscriber from {from}");
    }
}
