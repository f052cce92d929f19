//! Backup archives as zip files (archive version 2; see "Backup archives" in
//! `engine/FORMAT.md`): writing one from a built data dir, and reading one back with every
//! check of `backup.rs`'s invariant 2 over zip entries.
//!
//! Invariants:
//! 1. An entry is unpacked only when its raw name is on the allow-list (`manifest.json`,
//!    `log/seg-<16 hex>.log`, `snapshots/snap-<16 hex>.db`, `storage/<c>/<r>/<name>` with safe
//!    components), it is a regular file (no directory, no symlink), its name appears once in
//!    the central directory, it is listed in the manifest, and its size and CRC-32 match.
//! 2. No entry is ever inflated past the size the manifest lists for it, and the manifest's
//!    total is bounded by the archive size ([`UNPACKED_RATIO_MAX`]): a zip bomb fails early.
//! 3. Nothing is written outside the unpack directory (names are checked, never joined raw).

use crate::backup::{
    allowed_entry, bad, check_manifest_header, Manifest, ManifestFile, Progress, MANIFEST_NAME,
};
use crate::error::{Error, Result};
use crate::files::STORAGE_DIR;
use std::collections::{HashMap, HashSet};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use zip::write::SimpleFileOptions;
use zip::CompressionMethod;

/// The most unpacked bytes accepted per archive byte (plus [`UNPACKED_SLACK`]): far above
/// what deflate achieves on logs and snapshots, far below a zip bomb's ratio.
pub(crate) const UNPACKED_RATIO_MAX: u64 = 200;
/// Unpacked bytes always accepted whatever the archive size.
const UNPACKED_SLACK: u64 = 64 * 1024 * 1024;
/// Deflate level for log segments and snapshots (fast; files are stored as they are).
const DEFLATE_LEVEL: i64 = 1;
/// The zip local file header signature (`PK\x03\x04`), how a zip archive starts.
pub(crate) const ZIP_MAGIC: [u8; 4] = *b"PK\x03\x04";
/// Copy buffer size.
const BUF_BYTES: usize = 1 << 20;

fn zip_err(context: &str) -> impl Fn(zip::result::ZipError) -> Error + '_ {
    move |err| bad(format!("{context}: {err}"))
}

fn zip_time(now_ms: i64) -> zip::DateTime {
    use chrono::{Datelike, Timelike};
    chrono::DateTime::from_timestamp_millis(now_ms)
        .and_then(|time| {
            zip::DateTime::from_date_and_time(
                u16::try_from(time.year()).ok()?,
                time.month() as u8,
                time.day() as u8,
                time.hour() as u8,
                time.minute() as u8,
                time.second() as u8,
            )
            .ok()
        })
        .unwrap_or_default()
}

/// Writes the zip archive `tmp` (created): the manifest, then every listed file of `staging`.
pub(crate) fn write_zip(
    staging: &Path,
    tmp: &Path,
    manifest: &Manifest,
    manifest_bytes: &[u8],
    progress: &mut dyn FnMut(Progress),
) -> Result<()> {
    let io = |err: std::io::Error| Error::io("write", tmp, err);
    let file = std::fs::File::create(tmp).map_err(|err| Error::io("create", tmp, err))?;
    let mut writer = zip::ZipWriter::new(std::io::BufWriter::with_capacity(BUF_BYTES, file));
    let time = zip_time(manifest.created_ms);
    let options = |size: u64, compress: bool| {
        let options = SimpleFileOptions::default()
            .last_modified_time(time)
            .unix_permissions(0o644)
            .large_file(size >= u64::from(u32::MAX));
        if compress {
            options
                .compression_method(CompressionMethod::Deflated)
                .compression_level(Some(DEFLATE_LEVEL))
        } else {
            options.compression_method(CompressionMethod::Stored)
        }
    };
    writer
        .start_file(MANIFEST_NAME, options(manifest_bytes.len() as u64, true))
        .map_err(zip_err("zip"))?;
    writer.write_all(manifest_bytes).map_err(io)?;
    let total: u64 = manifest.files.iter().map(|file| file.size).sum();
    let mut done = 0;
    for entry in &manifest.files {
        let path = staging.join(&entry.path);
        let compress = !entry.path.starts_with(&format!("{STORAGE_DIR}/"));
        writer
            .start_file(entry.path.as_str(), options(entry.size, compress))
            .map_err(zip_err("zip"))?;
        let source = std::fs::File::open(&path).map_err(|err| Error::io("open", &path, err))?;
        let copied = std::io::copy(&mut source.take(entry.size), &mut writer).map_err(io)?;
        if copied != entry.size {
            return Err(Error::io(
                "read",
                &path,
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "file shrank while packing",
                ),
            ));
        }
        done += entry.size;
        progress(Progress {
            phase: "pack",
            done,
            total,
        });
    }
    let buffered = writer.finish().map_err(zip_err("zip"))?;
    let file = buffered
        .into_inner()
        .map_err(|err| Error::io("write", tmp, err.into_error()))?;
    file.sync_all().map_err(|err| Error::io("fsync", tmp, err))
}

/// The entry count the end-of-central-directory record declares (zip64 aware), or `None`
/// when it cannot be found. The zip reader keeps one entry per name, so a smaller count
/// there means duplicate names.
fn declared_entries(file: &mut std::fs::File) -> std::io::Result<Option<u64>> {
    const EOCD: [u8; 4] = *b"PK\x05\x06";
    const LOCATOR: [u8; 4] = *b"PK\x06\x07";
    const EOCD64: [u8; 4] = *b"PK\x06\x06";
    let len = file.metadata()?.len();
    let tail_len = len.min(22 + 65_535);
    file.seek(SeekFrom::Start(len - tail_len))?;
    let mut tail = vec![0u8; tail_len as usize];
    file.read_exact(&mut tail)?;
    let Some(at) = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|at| tail[*at..*at + 4] == EOCD)
    else {
        return Ok(None);
    };
    let count = u16::from_le_bytes([tail[at + 10], tail[at + 11]]);
    if count != u16::MAX {
        return Ok(Some(u64::from(count)));
    }
    // Zip64: the locator (20 bytes) right before the record points at the zip64 record.
    if at < 20 || tail[at - 20..at - 16] != LOCATOR {
        return Ok(None);
    }
    let mut offset = [0u8; 8];
    offset.copy_from_slice(&tail[at - 12..at - 4]);
    file.seek(SeekFrom::Start(u64::from_le_bytes(offset)))?;
    let mut record = [0u8; 56];
    file.read_exact(&mut record)?;
    if record[..4] != EOCD64 {
        return Ok(None);
    }
    let mut total = [0u8; 8];
    total.copy_from_slice(&record[32..40]);
    Ok(Some(u64::from_le_bytes(total)))
}

/// Reads and checks the zip archive `archive`, unpacking it into the empty directory `out`
/// (invariants 1-3). Returns its manifest.
pub(crate) fn unpack_zip(
    archive: &Path,
    out: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<Manifest> {
    let mut file = std::fs::File::open(archive).map_err(|err| Error::io("open", archive, err))?;
    let total = file
        .metadata()
        .map_err(|err| Error::io("stat", archive, err))?
        .len();
    let declared = declared_entries(&mut file).map_err(|err| Error::io("read", archive, err))?;
    file.seek(SeekFrom::Start(0))
        .map_err(|err| Error::io("seek", archive, err))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::with_capacity(BUF_BYTES, file))
        .map_err(zip_err("not a readable zip archive"))?;
    if zip.len() > crate::backup::ARCHIVE_ENTRIES_MAX {
        return Err(bad("too many entries"));
    }
    if declared.is_some_and(|declared| declared != zip.len() as u64) {
        return Err(bad("an entry name appears twice"));
    }
    if zip.is_empty() {
        return Err(bad("the archive is empty"));
    }
    let manifest: Manifest = {
        let entry = zip.by_index(0).map_err(zip_err("the manifest"))?;
        if entry.name() != MANIFEST_NAME || !entry.is_file() {
            return Err(bad(format!(
                "the first entry is {:?}, not {MANIFEST_NAME}",
                entry.name()
            )));
        }
        let mut bytes = Vec::new();
        entry
            .take(crate::backup::MANIFEST_BYTES_MAX + 1)
            .read_to_end(&mut bytes)
            .map_err(|err| bad(format!("the manifest cannot be read: {err}")))?;
        if bytes.len() as u64 > crate::backup::MANIFEST_BYTES_MAX {
            return Err(bad("the manifest is too large"));
        }
        check_manifest_header(&bytes)?
    };
    let unpacked_total: u64 = manifest
        .files
        .iter()
        .fold(0u64, |sum, file| sum.saturating_add(file.size));
    if unpacked_total > total.saturating_mul(UNPACKED_RATIO_MAX) + UNPACKED_SLACK {
        return Err(bad(format!(
            "the manifest lists {unpacked_total} bytes for a {total}-byte archive \
             (more than {UNPACKED_RATIO_MAX}x: refused as a zip bomb)"
        )));
    }
    let listed: HashMap<&str, &ManifestFile> = manifest
        .files
        .iter()
        .map(|file| (file.path.as_str(), file))
        .collect();
    let mut seen: HashSet<String> = HashSet::new();
    let mut buf = vec![0u8; BUF_BYTES];
    let mut done = 0u64;
    for index in 1..zip.len() {
        let mut entry = zip.by_index(index).map_err(zip_err("an entry"))?;
        let name = std::str::from_utf8(entry.name_raw())
            .map_err(|_| bad("an entry name is not UTF-8"))?
            .to_string();
        if entry.is_dir() || entry.is_symlink() || !entry.is_file() {
            return Err(bad(format!(
                "entry {name:?} is not a regular file; only regular files are allowed"
            )));
        }
        if name == MANIFEST_NAME || !allowed_entry(&name) {
            return Err(bad(format!(
                "unexpected entry {name:?} (only {MANIFEST_NAME}, log/seg-*.log, \
                 snapshots/snap-*.db and {STORAGE_DIR}/<collection>/<record>/<file> are allowed)"
            )));
        }
        if !seen.insert(name.clone()) {
            return Err(bad(format!("entry {name:?} appears twice")));
        }
        let want = listed
            .get(name.as_str())
            .copied()
            .ok_or_else(|| bad(format!("entry {name:?} is not in the manifest")))?;
        if entry.size() != want.size {
            return Err(bad(format!(
                "entry {name:?} has {} bytes, the manifest says {}",
                entry.size(),
                want.size
            )));
        }
        let path = out.join(&name);
        let dir = path.parent().unwrap_or(out).to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|err| Error::io("create dir", &dir, err))?;
        let mut target =
            std::fs::File::create(&path).map_err(|err| Error::io("create", &path, err))?;
        let mut hasher = crc32fast::Hasher::new();
        let mut written = 0u64;
        let mut limited = (&mut entry).take(want.size + 1);
        loop {
            let read = limited
                .read(&mut buf)
                .map_err(|err| bad(format!("entry {name:?} cannot be read: {err}")))?;
            if read == 0 {
                break;
            }
            written += read as u64;
            if written > want.size {
                return Err(bad(format!("entry {name:?} inflates past its listed size")));
            }
            hasher.update(&buf[..read]);
            target
                .write_all(&buf[..read])
                .map_err(|err| Error::io("write", &path, err))?;
        }
        if written != want.size {
            return Err(bad(format!("entry {name:?} is truncated")));
        }
        if hasher.finalize() != want.crc32 {
            return Err(bad(format!("entry {name:?} fails its checksum (damaged)")));
        }
        target
            .sync_all()
            .map_err(|err| Error::io("fsync", &path, err))?;
        done += want.size;
        progress(Progress {
            phase: "unpack",
            done,
            total: unpacked_total,
        });
    }
    for file in &manifest.files {
        if !seen.contains(&file.path) {
            return Err(bad(format!("entry {:?} is missing", file.path)));
        }
    }
    Ok(manifest)
}
