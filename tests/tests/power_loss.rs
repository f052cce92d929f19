//! Power-loss crash harness, deterministic: a workload runs on a data dir whose log I/O goes
//! through `engine::testing::PowerLossStorage`, which records every write, sync, rename and
//! removal. Then, for every point of that journal, the harness builds the states a power loss
//! right after that operation may leave: only synced bytes are sure to survive, and the
//! unsynced tail is kept, dropped, torn at byte splits, zeroed or page-scattered (4 KiB pages,
//! each one reached the disk or reads back as zeros); directory entries not yet made durable by
//! a directory sync survive or not. The projection (`data.db`, never fsynced by us) is the copy
//! SQLite's files held at an earlier operation, or missing.
//!
//! Each state is opened with the real engine and checked: it opens (never refuses), every
//! acknowledged commit is present, no commit is half applied (each inserts three records and
//! bumps a counter: all or nothing), the projection equals a fresh replay of the log, and the
//! next commit continues the seq. Two online compactions (`Retention::Commits(3)`) in the
//! workload roll the active segment, split it and remove segments, so every step of a
//! compaction is a crash point too (snapshots are taken as they existed at that point).
//!
//! `harness = false`. Prints the number of states tried and of violations; exits 1 on any
//! violation. `POWER_LOSS_FULL=1` runs the large variant (more commits, every byte split of
//! tails up to 1 KiB and every 37th of longer ones, `POWER_LOSS_STRIDE=1` for every byte;
//! every page pattern; both projection variants everywhere). By default one thread commits
//! (each group holds one frame). `POWER_LOSS_SUBMITTERS=N` commits from N threads, so groups
//! hold several frames; a state where a later frame of the unsynced group survived while an
//! earlier one was lost is refused by the recovery rule (FORMAT.md "Recovery rules") and is
//! counted apart, not as a violation: only never-acknowledged frames are involved.
//!
//! Guards against: a log that refuses to open after a power loss, a lost acknowledged commit,
//! a half-applied commit, a projection that drifts from the log after recovery.
#![allow(
    clippy::disallowed_methods,
    reason = "the harness materialises crash states as files"
)]

use engine::testing::{DiskModel, NamesFate, PowerLossStorage, TailFate, POWER_LOSS_PAGE};
use engine::{Actor, Change, CollectionDef, ColumnDef, Engine, EngineConfig, SyncPolicy, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

fn def() -> CollectionDef {
    let column = |name: &str, decl: &str| ColumnDef {
        id: format!("f_{name}"),
        name: name.into(),
        decl: decl.into(),
    };
    CollectionDef {
        id: "c_crash".into(),
        name: "crash".into(),
        kind: "base".into(),
        columns: vec![
            column("id", "TEXT PRIMARY KEY NOT NULL"),
            column("grp", "TEXT DEFAULT '' NOT NULL"),
            column("n", "NUMERIC DEFAULT 0 NOT NULL"),
            column("body", "TEXT DEFAULT '' NOT NULL"),
        ],
        indexes: Vec::new(),
        view_query: None,
        meta: "{}".into(),
    }
}

fn row(id: &str, group: &str, n: i64, body: &str) -> Vec<(String, Value)> {
    vec![
        ("id".into(), Value::from(id)),
        ("grp".into(), Value::from(group)),
        ("n".into(), Value::Int(n)),
        ("body".into(), Value::from(body)),
    ]
}

/// One commit of the workload: three records of group `group` and the counter bumped.
fn commit(engine: &Engine, group: &str, index: i64, body_len: usize) -> Result<u64, String> {
    let group = group.to_string();
    let body: String = (0..body_len)
        .map(|i| char::from(b'a' + ((i * 7 + index as usize) % 26) as u8))
        .collect();
    let outcome = engine
        .execute(Actor::System, move |tx| {
            if tx.collection("c_crash").is_none() {
                tx.stage(Change::CollectionCreated(def()))?;
                tx.stage(Change::RecordCreated {
                    collection_id: "c_crash".into(),
                    id: "counter".into(),
                    values: row("counter", "", 0, ""),
                })?;
            }
            for part in ["a", "b", "c"] {
                let id = format!("{group}{part}");
                let text = if part == "b" { body.as_str() } else { "" };
                tx.stage(Change::RecordCreated {
                    collection_id: "c_crash".into(),
                    id: id.clone(),
                    values: row(&id, &group, index, text),
                })?;
            }
            let rows = tx.query("SELECT n FROM crash WHERE id = 'counter'", &[])?;
            let n = rows.rows[0][0].as_i64().unwrap_or_default();
            tx.stage(Change::RecordUpdated {
                collection_id: "c_crash".into(),
                id: "counter".into(),
                values: row("counter", "", n + 1, ""),
            })
        })
        .map_err(|failure| format!("{failure:?}"))?;
    Ok(outcome.commit.map_or(0, |commit| commit.seq))
}

struct Recording {
    ops: Vec<engine::testing::PowerOp>,
    /// (journal length when answered, seq, group) of every acknowledged commit.
    acks: Vec<(usize, u64, String)>,
    /// (journal length, dir holding `data.db` and `data.db-wal` as they were then).
    projections: Vec<(usize, PathBuf)>,
    /// (journal length, names of the snapshots that existed then); copies in `snapshot_copies`.
    snapshots: Vec<(usize, Vec<String>)>,
    snapshot_copies: PathBuf,
    source: PathBuf,
}

/// Runs the workload on `root/src`, recording the journal, the acknowledgements, copies of
/// the projection files every `capture_every` operations and the snapshots (immutable once
/// named) as they appear. Online compactions at a third and two thirds of the commits put
/// rolls, splits and segment removals into the journal.
fn record(root: &Path, commits: usize, capture_every: usize, submitters: usize) -> Recording {
    let source = root.join("src");
    let captures = root.join("captures");
    let snapshot_copies = root.join("snapshots");
    std::fs::create_dir_all(&captures).expect("mkdir");
    std::fs::create_dir_all(&snapshot_copies).expect("mkdir");
    let storage = PowerLossStorage::new();
    let projections = Arc::new(Mutex::new(Vec::new()));
    let snapshots = Arc::new(Mutex::new(Vec::new()));
    {
        let source = source.clone();
        let projections = Arc::clone(&projections);
        let snapshots = Arc::clone(&snapshots);
        let snapshot_copies = snapshot_copies.clone();
        storage.on_op(move |len| {
            let mut names: Vec<String> = std::fs::read_dir(engine::admin::snapshots_dir(&source))
                .map(|entries| {
                    entries
                        .flatten()
                        .filter_map(|entry| entry.file_name().to_str().map(str::to_string))
                        .filter(|name| engine::admin::parse_snapshot_name(name).is_some())
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            for name in &names {
                let copy = snapshot_copies.join(name);
                if !copy.exists() {
                    std::fs::copy(engine::admin::snapshots_dir(&source).join(name), &copy)
                        .expect("copy snapshot");
                }
            }
            snapshots.lock().expect("snapshots").push((len, names));
            if len % capture_every != 0 {
                return;
            }
            // The engine is inside this log operation, so SQLite's files are quiescent: a raw
            // copy is what a power loss keeps when the OS wrote everything SQLite handed it.
            let target = captures.join(format!("at-{len}"));
            std::fs::create_dir_all(&target).expect("mkdir capture");
            for name in [engine::admin::DATA_DB, "data.db-wal"] {
                let from = source.join(name);
                if from.exists() {
                    std::fs::copy(&from, target.join(name)).expect("capture projection");
                }
            }
            projections.lock().expect("captures").push((len, target));
        });
    }
    let config = EngineConfig {
        sync: SyncPolicy::Always,
        segment_bytes_max: 12 * 1024,
        storage: Arc::new(storage.clone()),
        ..EngineConfig::default()
    };
    let (engine, _) = Engine::open(&source, config).expect("open the source dir");
    let acks = Arc::new(Mutex::new(Vec::new()));
    // Three phases, an online compaction after the first two; in each, `submitters` threads
    // share the phase's commits (one thread: every group holds one frame).
    for phase in 0..3 {
        let range: Vec<usize> = (phase * commits / 3..(phase + 1) * commits / 3).collect();
        let threads: Vec<_> = (0..submitters)
            .map(|thread| {
                let engine = engine.clone();
                let storage = storage.clone();
                let acks = Arc::clone(&acks);
                let mine: Vec<usize> = range
                    .iter()
                    .copied()
                    .filter(|index| index % submitters == thread)
                    .collect();
                std::thread::spawn(move || {
                    for index in mine {
                        let group = format!("g{index:04}");
                        // Mostly small commits; every fourth one carries a body of 5..11 KiB,
                        // so its frame straddles two to four pages.
                        let body_len = if index % 4 == 3 {
                            5_000 + (index * 1_531) % 6_000
                        } else {
                            index % 200
                        };
                        let seq = commit(&engine, &group, index as i64, body_len).expect("commit");
                        // Read after the answer: at least the journal length of the group's
                        // fsync.
                        let at = storage.len();
                        acks.lock().expect("acks").push((at, seq, group));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("submitter");
        }
        if phase < 2 {
            engine
                .compact(engine::Retention::Commits(3))
                .expect("online compaction");
        }
    }
    let mut acks = acks.lock().expect("acks").clone();
    acks.sort();
    engine.shutdown();
    drop(engine);
    let projections = projections.lock().expect("captures").clone();
    let snapshots = snapshots.lock().expect("snapshots").clone();
    Recording {
        ops: storage.journal(),
        acks,
        projections,
        snapshots,
        snapshot_copies,
        source,
    }
}

/// The tail fates tried for `unsynced` bytes starting at file offset `synced_len`.
fn tail_fates(synced_len: usize, unsynced: usize, full: bool) -> Vec<TailFate> {
    let mut fates = vec![TailFate::Kept, TailFate::Dropped, TailFate::Zeroed];
    if unsynced == 0 {
        return vec![TailFate::Kept];
    }
    let mut splits: Vec<usize> = if full {
        // Every byte split of short tails; of long ones every `POWER_LOSS_STRIDE`th (37 unless
        // set; 1 = every byte) plus the page boundaries below.
        let stride = std::env::var("POWER_LOSS_STRIDE")
            .ok()
            .and_then(|text| text.parse::<usize>().ok())
            .filter(|stride| *stride > 0)
            .unwrap_or(if unsynced <= 1024 { 1 } else { 37 });
        let mut splits: Vec<usize> = (1..unsynced).step_by(stride).collect();
        let mut boundary = (synced_len / POWER_LOSS_PAGE + 1) * POWER_LOSS_PAGE;
        while boundary < synced_len + unsynced {
            let at = boundary - synced_len;
            splits.extend([at - 1, at, at + 1]);
            boundary += POWER_LOSS_PAGE;
        }
        splits
    } else {
        let mut splits = vec![1, 4, 7, 8, 9, 16, 17, unsynced / 2, unsynced - 1];
        // Every split at and around a page boundary inside the tail.
        let mut boundary = (synced_len / POWER_LOSS_PAGE + 1) * POWER_LOSS_PAGE;
        while boundary < synced_len + unsynced {
            let at = boundary - synced_len;
            splits.extend([at - 1, at, at + 1]);
            boundary += POWER_LOSS_PAGE;
        }
        splits
    };
    splits.retain(|split| *split > 0 && *split < unsynced);
    splits.sort_unstable();
    splits.dedup();
    fates.extend(splits.into_iter().map(TailFate::Torn));
    let pages = (synced_len + unsynced - 1) / POWER_LOSS_PAGE - synced_len / POWER_LOSS_PAGE + 1;
    if pages > 1 {
        let patterns = 1u64 << pages.min(if full { 12 } else { 6 });
        // All-ones is `Kept` and zero is `Zeroed`.
        fates.extend((1..patterns - 1).map(TailFate::Scattered));
    }
    fates
}

fn copy_file(from: &Path, to: &Path) {
    if from.exists() {
        std::fs::copy(from, to).expect("copy");
    }
}

/// Writes a crash state into the empty dir `work`: the log files, the snapshots that existed
/// at operation `point` and the projection.
fn materialize(
    work: &Path,
    recording: &Recording,
    point: usize,
    files: &[(PathBuf, Vec<u8>)],
    projection: Option<&Path>,
) {
    let snapshots = engine::admin::snapshots_dir(work);
    std::fs::create_dir_all(&snapshots).expect("mkdir snapshots");
    if let Some((_, names)) = recording
        .snapshots
        .iter()
        .rev()
        .find(|(at, _)| *at <= point)
    {
        for name in names {
            std::fs::copy(recording.snapshot_copies.join(name), snapshots.join(name))
                .expect("copy snapshot");
        }
    }
    let log = work.join(engine::admin::LOG_DIR);
    std::fs::create_dir_all(&log).expect("mkdir log");
    let source_log = recording.source.join(engine::admin::LOG_DIR);
    for (path, bytes) in files {
        let Ok(relative) = path.strip_prefix(&source_log) else {
            continue;
        };
        std::fs::write(log.join(relative), bytes).expect("write state");
    }
    if let Some(dir) = projection {
        copy_file(
            &dir.join(engine::admin::DATA_DB),
            &work.join(engine::admin::DATA_DB),
        );
        copy_file(&dir.join("data.db-wal"), &work.join("data.db-wal"));
    }
}

/// Opens a crash state and returns its violations.
fn check(work: &Path, acked: &[(usize, u64, String)]) -> Vec<String> {
    let mut problems = Vec::new();
    let config = EngineConfig {
        sync: SyncPolicy::None,
        ..EngineConfig::default()
    };
    let (engine, _) = match Engine::open(work, config) {
        Ok(opened) => opened,
        Err(err) => return vec![format!("open refused: {err}")],
    };
    let mut groups: BTreeMap<String, usize> = BTreeMap::new();
    let mut counter = 0;
    if let Ok(rows) = engine.read(|conn| conn.query("SELECT id, grp, n FROM crash", &[])) {
        for row in &rows.rows {
            if row[0].as_str() == Some("counter") {
                counter = row[2].as_i64().unwrap_or_default();
            } else {
                *groups
                    .entry(row[1].as_str().unwrap_or_default().to_string())
                    .or_default() += 1;
            }
        }
    }
    for (group, count) in &groups {
        if *count != 3 {
            problems.push(format!("commit {group} half applied: {count} of 3 records"));
        }
    }
    if counter != groups.len() as i64 {
        problems.push(format!(
            "counter {counter} but {} commits present",
            groups.len()
        ));
    }
    for (_, seq, group) in acked {
        if !groups.contains_key(group) {
            problems.push(format!("acknowledged commit {group} (seq {seq}) missing"));
        }
    }
    let last = engine.last_seq();
    if let Some((_, max, _)) = acked.last() {
        if last < *max {
            problems.push(format!("log ends at {last}, seq {max} was acknowledged"));
        }
    }
    let live = engine.read(|conn| conn.dump()).expect("dump");
    match engine::LogReader::open_dir(
        Arc::new(engine::FsStorage),
        &work.join(engine::admin::LOG_DIR),
    ) {
        Ok((reader, _)) => {
            // A replay from seq 1, or from the snapshot a compacted log starts after.
            let scratch = tempfile::tempdir().expect("tempdir");
            let out = scratch.path().join("r.db");
            let replayed = if reader.first_seq() == 1 {
                let mut replay = engine::admin::Projection::open(&out).expect("replay db");
                replay
                    .replay(&reader, 1, reader.last_seq(), |_| {})
                    .expect("replay");
                replay.dump().expect("dump")
            } else {
                engine::admin::build_projection_at(
                    &reader,
                    &engine::admin::snapshots_dir(work),
                    reader.last_seq(),
                    &out,
                    |_| {},
                )
                .expect("build from the snapshot");
                let built = engine::admin::Projection::open(&out).expect("built db");
                built.dump().expect("dump")
            };
            if replayed != live {
                problems.push("projection differs from a fresh replay".into());
            }
        }
        Err(err) => problems.push(format!("log unreadable after open: {err}")),
    }
    match commit(&engine, "after", 0, 10) {
        Ok(seq) if seq == last + 1 => {}
        Ok(seq) => problems.push(format!("next commit got seq {seq}, log ended at {last}")),
        Err(err) => problems.push(format!("next commit failed: {err}")),
    }
    engine.shutdown();
    problems
}

fn main() {
    let full = std::env::var("POWER_LOSS_FULL").is_ok_and(|value| value != "0");
    let (commits, capture_every) = if full { (60, 3) } else { (24, 8) };
    let submitters = std::env::var("POWER_LOSS_SUBMITTERS")
        .ok()
        .and_then(|text| text.parse::<usize>().ok())
        .unwrap_or(1)
        .clamp(1, 16);
    let started = Instant::now();
    // States are opened by the thousand: on tmpfs when there is one (fsync is free there; the
    // harness models durability itself).
    let shm = Path::new("/dev/shm");
    let root = if shm.is_dir() {
        tempfile::tempdir_in(shm).or_else(|_| tempfile::tempdir())
    } else {
        tempfile::tempdir()
    }
    .expect("tempdir");
    let recording = record(root.path(), commits, capture_every, submitters);
    println!(
        "power-loss harness{}: {commits} commits by {submitters} submitters, {} recorded log \
         operations, {} projection copies",
        if full { " (full)" } else { "" },
        recording.ops.len(),
        recording.projections.len()
    );
    let work_root = root.path().join("work");
    let (mut states, mut violations, mut torn_cuts, mut refused_ambiguous) =
        (0u64, 0u64, 0u64, 0u64);
    let mut model = DiskModel::new();
    for point in 0..=recording.ops.len() {
        if point > 0 {
            model.apply(&recording.ops[point - 1]);
        }
        let acked: Vec<(usize, u64, String)> = recording
            .acks
            .iter()
            .filter(|(at, _, _)| *at <= point)
            .cloned()
            .collect();
        let projection = recording
            .projections
            .iter()
            .rev()
            .find(|(at, _)| *at <= point)
            .map(|(_, dir)| dir.as_path());
        let names: &[NamesFate] = if model.names_unsynced() {
            &[NamesFate::Synced, NamesFate::Current]
        } else {
            &[NamesFate::Current]
        };
        for &names_fate in names {
            let tails = model.unsynced_tails(names_fate);
            let fates = match tails.first() {
                Some((_, synced_len, unsynced)) => tail_fates(*synced_len, *unsynced, full),
                None => vec![TailFate::Kept],
            };
            for (index, &fate) in fates.iter().enumerate() {
                let files = model.crash_state(names_fate, fate);
                // The projection as copied at an earlier operation; the "missing projection"
                // variant for the first fate (everywhere in the full run).
                let mut variants = vec![projection];
                if (full || index == 0) && projection.is_some() {
                    variants.push(None);
                }
                for variant in variants {
                    let work = work_root.join(format!("s{states}"));
                    materialize(&work, &recording, point, &files, variant);
                    let problems = check(&work, &acked);
                    if std::fs::read_dir(work.join(engine::admin::LOG_DIR))
                        .map(|entries| {
                            entries.flatten().any(|entry| {
                                entry.file_name().to_string_lossy().contains(".broken-")
                            })
                        })
                        .unwrap_or(false)
                    {
                        torn_cuts += 1;
                    }
                    // With several submitters a group holds several frames; a state where a
                    // later frame of the unsynced group survived whole while an earlier one
                    // was lost is refused by the recovery rule (it cannot be told from damage
                    // in the middle of the log). The damage is inside the unsynced tail by
                    // construction, so nothing acknowledged is at stake: counted apart.
                    let ambiguous = submitters > 1
                        && problems.len() == 1
                        && problems[0].starts_with("open refused")
                        && problems[0].contains("follows at offset");
                    if ambiguous {
                        refused_ambiguous += 1;
                    } else if !problems.is_empty() {
                        violations += 1;
                        println!(
                            "VIOLATION after op {point} ({:?}), names {names_fate:?}, tail \
                             {fate:?}, projection {}:",
                            recording.ops.get(point.wrapping_sub(1)).map(short_op),
                            if variant.is_some() {
                                "copied"
                            } else {
                                "missing"
                            }
                        );
                        for problem in problems.iter().take(5) {
                            println!("  {problem}");
                        }
                    }
                    let _ = std::fs::remove_dir_all(&work);
                    states += 1;
                }
            }
        }
    }
    println!(
        "power-loss harness: {states} states tried, {torn_cuts} with a torn tail cut, \
         {refused_ambiguous} refused as a multi-frame unsynced group with a lost earlier frame, \
         {violations} violations ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    if violations > 0 {
        std::process::exit(1);
    }
}

fn short_op(op: &engine::testing::PowerOp) -> String {
    use engine::testing::PowerOp;
    let name = |path: &PathBuf| {
        path.file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    match op {
        PowerOp::WriteNew(path, bytes) => format!("write_new {} ({} B)", name(path), bytes.len()),
        PowerOp::Append(path, bytes) => format!("append {} ({} B)", name(path), bytes.len()),
        PowerOp::Sync(path) => format!("sync {}", name(path)),
        PowerOp::Truncate(path, len) => format!("truncate {} to {len}", name(path)),
        PowerOp::Rename(from, to) => format!("rename {} -> {}", name(from), name(to)),
        PowerOp::Remove(path) => format!("remove {}", name(path)),
        PowerOp::SyncDir(_) => "sync_dir log".to_string(),
    }
}
