//! A real full file system (a small tmpfs; needs root, skipped with a message otherwise):
//! fill it through the engine until writes fail, then restart on the still-full disk. The
//! engine must open and serve reads, keep "error ⇒ not committed", and write again once
//! space is freed, without another restart.
#![allow(
    clippy::disallowed_methods,
    reason = "the test manages a mount and a ballast file directly"
)]

mod common;

use common::*;
use engine::{Engine, EngineConfig, SyncPolicy};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then_some(Tmpfs { dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn config() -> EngineConfig {
    EngineConfig {
        sync: SyncPolicy::Always,
        ..EngineConfig::default()
    }
}

fn ids(engine: &Engine) -> BTreeSet<String> {
    notes(engine).into_iter().map(|(id, _, _)| id).collect()
}

/// Inserts 20 KB notes until `stop_after` inserts failed; returns (acked, refused).
fn fill(engine: &Engine, prefix: &str, stop_after: usize) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut acked, mut refused) = (BTreeSet::new(), BTreeSet::new());
    for index in 0..5000 {
        let id = format!("{prefix}{index:05}");
        let title = format!("{id}{}", "x".repeat(20_000));
        match insert_note(engine, &id, &title, index) {
            Ok(_) => {
                acked.insert(id);
            }
            Err(text) => {
                assert!(
                    text.contains("StorageFull") || text.contains("full"),
                    "{text}"
                );
                refused.insert(id);
                if refused.len() >= stop_after {
                    break;
                }
            }
        }
    }
    (acked, refused)
}

#[test]
fn a_restart_on_a_really_full_disk_serves_reads_and_recovers() {
    let Some(mount) = Tmpfs::mount("6m") else {
        eprintln!("SKIPPED: cannot mount a tmpfs (not root?); disk_full.rs covers this with fault injection");
        return;
    };
    let dir = mount.dir.path().join("pb_data");
    let ballast = mount.dir.path().join("ballast");
    std::fs::write(&ballast, vec![1u8; 1 << 20]).expect("ballast");
    let (engine, _) = Engine::open(&dir, config()).expect("open");
    create_notes(&engine);
    let (mut acked, mut refused) = fill(&engine, "a", 10);
    assert!(!refused.is_empty() && !acked.is_empty());
    assert!(engine.poisoned().is_none());
    engine.shutdown();
    drop(engine);
    // Restart on the still-full disk: it opens and serves reads.
    let (engine, _) = Engine::open(&dir, config()).expect("open on a full disk");
    let visible = ids(&engine);
    assert!(visible.is_subset(&acked), "a refused write is visible");
    let (more_acked, more_refused) = fill(&engine, "b", 3);
    acked.extend(more_acked);
    refused.extend(more_refused);
    // Free space: writes work again in the same process.
    std::fs::remove_file(&ballast).expect("free space");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let id = format!("after{}", refused.len());
        match insert_note(&engine, &id, "", 0) {
            Ok(_) => {
                acked.insert(id);
                break;
            }
            Err(_) => {
                refused.insert(id);
            }
        }
        assert!(Instant::now() < deadline, "writes never resumed");
        std::thread::sleep(Duration::from_millis(100));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while engine.published_seq() < engine.last_seq() {
        assert!(Instant::now() < deadline, "the projection never caught up");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(ids(&engine), acked, "exactly the acknowledged writes");
    engine.shutdown();
    drop(engine);
    check_reopen(&dir, &acked);
}

fn check_reopen(dir: &Path, acked: &BTreeSet<String>) {
    let (engine, _) = Engine::open(dir, config()).expect("reopen");
    assert_eq!(&ids(&engine), acked);
    engine.shutdown();
}
