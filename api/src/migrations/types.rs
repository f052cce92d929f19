//! `pb_data/types.d.ts`: the TypeScript declarations of the JSVM API pocketlog implements
//! (its own text, `types.d.ts` beside this file), written into the data dir at start-up as
//! the reference does, so editors type-check `pb_hooks` and `pb_migrations` files that
//! reference it (`/// <reference path="../pb_data/types.d.ts" />`).
//!
//! Invariants:
//! 1. The file is (re)written only when it is missing or its first line differs from
//!    [`HEADER`] (another version wrote it, or someone edited it); otherwise it is left alone.
//! 2. It is written to a temporary file and renamed into place: a reader never sees half.

use std::path::Path;

/// The file's name in the data dir.
pub const FILE_NAME: &str = "types.d.ts";
/// The declarations (pocketlog's own).
pub const TEXT: &str = include_str!("types.d.ts");
/// The first line: names the version of the declarations.
pub const HEADER: &str = concat!("// pocketlog JSVM typings ", env!("CARGO_PKG_VERSION"));

/// Writes `<data_dir>/types.d.ts` when it is missing or outdated; whether it wrote.
pub fn write(data_dir: &Path) -> std::io::Result<bool> {
    let path = data_dir.join(FILE_NAME);
    if let Ok(current) = std::fs::read_to_string(&path) {
        if current.lines().next() == Some(HEADER) {
            return Ok(false);
        }
    }
    std::fs::create_dir_all(data_dir)?;
    let body = TEXT.split_once('\n').map_or(TEXT, |(_, rest)| rest);
    let staging = data_dir.join(format!(".{FILE_NAME}.{}", std::process::id()));
    std::fs::write(&staging, format!("{HEADER}\n{body}"))?;
    std::fs::rename(&staging, &path)?;
    Ok(true)
}
