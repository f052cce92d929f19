//! Backups taken while clients write never stall them and restore to a consistent state; bad
//! archives are refused and change nothing.
//!
//! Method: 4 writer threads commit notes (sync = always) while `write_backup` runs on the live
//! data dir; every commit's latency is recorded. The bound: no commit during the backup takes
//! longer than 500 ms (the backup only holds a SQLite read transaction, so in practice stalls
//! are those of the disk). The archive restores to a state that is exactly the notes whose
//! commits are at or before the manifest's seq. Damaged archives (flipped byte, truncation),
//! path-traversal names, links and unknown entries are refused with `BadArchive` and the
//! target is never created. The tar cases use the archive format of older builds (version 1),
//! which still restores; `backup_files.rs` has the zip cases.

mod common;

use common::{create_notes, insert_note, notes};
use engine::admin::{At, RestoreOptions};
use engine::{Error, SyncPolicy};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const STALL_BOUND: Duration = Duration::from_millis(500);

#[test]
fn backup_while_clients_write_does_not_stall_them_and_restores_consistently() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("live");
    let engine = common::open(&dir, SyncPolicy::Always);
    create_notes(&engine);
    common::insert_many(&engine, 0, 2000);
    let stop = Arc::new(AtomicBool::new(false));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let committed = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let (engine, stop, latencies, committed) = (
                engine.clone(),
                Arc::clone(&stop),
                Arc::clone(&latencies),
                Arc::clone(&committed),
            );
            std::thread::spawn(move || {
                let mut index = 0;
                while !stop.load(Ordering::SeqCst) {
                    let id = format!("w{writer}-{index:05}");
                    let started = Instant::now();
                    let seq = insert_note(&engine, &id, &id, index).expect("insert");
                    latencies.lock().expect("lock").push(started.elapsed());
                    committed.lock().expect("lock").push((seq, id));
                    index += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let archive = scratch.path().join("backup.zip");
    let report =
        engine::admin::write_backup(&dir, &archive, RestoreOptions::default(), &mut |_| {})
            .expect("backup");
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::SeqCst);
    for writer in writers {
        writer.join().expect("writer");
    }
    let mut latencies = latencies.lock().expect("lock").clone();
    latencies.sort();
    let worst = latencies.last().copied().unwrap_or_default();
    let p99 = latencies[latencies.len() * 99 / 100];
    eprintln!(
        "commits during the test: {}, p99 {p99:?}, worst {worst:?}",
        latencies.len()
    );
    assert!(worst <= STALL_BOUND, "a commit stalled {worst:?}");
    // The archive is a consistent state: exactly the commits up to its seq.
    let point = report.manifest.seq_last;
    assert!(point > 2001);
    let restored = scratch.path().join("restored");
    let restore =
        engine::admin::restore_archive(&archive, &restored, RestoreOptions::default(), &mut |_| {})
            .expect("restore");
    assert_eq!(restore.seq, point);
    let mut expected: Vec<String> = (0..2000).map(|index| format!("n{index:04}")).collect();
    expected.extend(
        committed
            .lock()
            .expect("lock")
            .iter()
            .filter(|(seq, _)| *seq <= point)
            .map(|(_, id)| id.clone()),
    );
    expected.sort();
    let engine_restored = common::open(&restored, SyncPolicy::None);
    let ids: Vec<String> = notes(&engine_restored)
        .into_iter()
        .map(|row| row.0)
        .collect();
    assert_eq!(ids, expected);
    common::assert_projection_matches_replay(&engine_restored);
    // An earlier point of the same archive.
    let earlier = scratch.path().join("earlier");
    engine::admin::restore_archive(
        &archive,
        &earlier,
        RestoreOptions {
            at: At::Seq(1001),
            ..RestoreOptions::default()
        },
        &mut |_| {},
    )
    .expect("restore earlier");
    let engine_earlier = common::open(&earlier, SyncPolicy::None);
    assert_eq!(notes(&engine_earlier).len(), 1000);
}

fn small_archive(scratch: &Path) -> std::path::PathBuf {
    let dir = scratch.join("src");
    let engine = common::open(&dir, SyncPolicy::None);
    create_notes(&engine);
    common::insert_many(&engine, 0, 20);
    engine.shutdown();
    drop(engine);
    // The tar format of older builds (archive version 1): still restored, with its checks.
    let archive = scratch.join("ok.tar");
    engine::testing::write_legacy_tar_backup(&dir, &archive).expect("backup");
    archive
}

fn tar_entry(name: &str, kind: u8, link: &str, body: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    header[..name.len()].copy_from_slice(name.as_bytes());
    header[100..108].copy_from_slice(b"0000644\0");
    header[108..116].copy_from_slice(b"0000000\0");
    header[116..124].copy_from_slice(b"0000000\0");
    header[124..136].copy_from_slice(format!("{:011o}\0", body.len()).as_bytes());
    header[136..148].copy_from_slice(b"00000000000\0");
    header[156] = kind;
    header[157..157 + link.len()].copy_from_slice(link.as_bytes());
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].copy_from_slice(b"        ");
    let sum: u32 = header.iter().map(|byte| u32::from(*byte)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut out = header.to_vec();
    out.extend_from_slice(body);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

fn first_entry(archive: &Path) -> Vec<u8> {
    let bytes = std::fs::read(archive).expect("read");
    let size = usize::from_str_radix(std::str::from_utf8(&bytes[124..135]).expect("octal"), 8)
        .expect("size");
    bytes[..512 + size.div_ceil(512) * 512].to_vec()
}

#[test]
fn bad_archives_are_refused_and_create_nothing() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let archive = small_archive(scratch.path());
    let manifest = first_entry(&archive);
    let target = scratch.path().join("target");
    let cases: Vec<(&str, Vec<u8>)> = {
        let good = std::fs::read(&archive).expect("read");
        let mut flipped = good.clone();
        let middle = good.len() / 2;
        flipped[middle] ^= 0x40;
        let truncated = good[..good.len() / 3].to_vec();
        let with = |entry: Vec<u8>| {
            let mut out = manifest.clone();
            out.extend(entry);
            out.extend([0u8; 1024]);
            out
        };
        vec![
            ("flipped byte", flipped),
            ("truncated", truncated),
            (
                "path traversal",
                with(tar_entry("../../evil", b'0', "", b"x")),
            ),
            (
                "absolute path",
                with(tar_entry("/tmp/evil", b'0', "", b"x")),
            ),
            (
                "symlink",
                with(tar_entry(
                    "log/seg-0000000000000001.log",
                    b'2',
                    "/etc/passwd",
                    b"",
                )),
            ),
            (
                "hard link",
                with(tar_entry(
                    "snapshots/snap-0000000000000001.db",
                    b'1',
                    "../x",
                    b"",
                )),
            ),
            ("unknown entry", with(tar_entry("data.db", b'0', "", b"x"))),
            ("not a tar", b"hello, this is not an archive".to_vec()),
            ("gzip", vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0]),
            ("empty", Vec::new()),
        ]
    };
    for (label, bytes) in cases {
        let bad = scratch
            .path()
            .join(format!("{}.tar", label.replace(' ', "_")));
        std::fs::write(&bad, &bytes).expect("write");
        let result =
            engine::admin::restore_archive(&bad, &target, RestoreOptions::default(), &mut |_| {});
        match result {
            Err(Error::BadArchive(reason)) => eprintln!("{label}: {reason}"),
            other => panic!("{label}: expected BadArchive, got {other:?}"),
        }
        assert!(!target.exists(), "{label}: the target was created");
        assert!(!scratch.path().join("evil").exists());
        let leftovers: Vec<_> = std::fs::read_dir(scratch.path())
            .expect("list")
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.file_name().to_string_lossy().starts_with(".target"))
            .collect();
        assert!(leftovers.is_empty(), "{label}: staging left behind");
    }
    // The good archive still restores.
    engine::admin::restore_archive(&archive, &target, RestoreOptions::default(), &mut |_| {})
        .expect("restore");
    let engine = common::open(&target, SyncPolicy::None);
    assert_eq!(notes(&engine).len(), 20);
}
