//! Tidy checks over the workspace's own source: every Rust file opens with a `//!` doc comment,
//! no debugging macro, stub macro or ignored test is left behind, no trailing whitespace, and the
//! engine's manifest names no HTTP or async-runtime crate (the engine knows nothing of them).

use std::fs;
use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits inside the workspace")
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if path.is_dir() {
            if ["target", "node_modules", "corpus", "artifacts"].contains(&name.as_str())
                || name.starts_with('.')
            {
                continue;
            }
            rust_files(&path, out);
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

fn sources() -> Vec<PathBuf> {
    let root = workspace_root();
    let mut files = Vec::new();
    for dir in ["engine", "rules", "api", "tools", "tests", "fuzz"] {
        rust_files(&root.join(dir), &mut files);
    }
    files.sort();
    files
}

#[test]
fn every_rust_file_starts_with_module_docs() {
    let missing: Vec<String> = sources()
        .into_iter()
        .filter(|path| {
            let text = fs::read_to_string(path).unwrap_or_default();
            let first = text
                .lines()
                .find(|line| !line.trim().is_empty())
                .unwrap_or("");
            !first.starts_with("//!")
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a leading //! doc comment:\n{}",
        missing.join("\n")
    );
}

#[test]
fn no_leftover_debugging_or_stubs() {
    let banned = [
        concat!("db", "g!("),
        concat!("to", "do!("),
        concat!("unimple", "mented!("),
        concat!("#[ig", "nore"),
    ];
    let mut found = Vec::new();
    for path in sources() {
        let text = fs::read_to_string(&path).unwrap_or_default();
        for (number, line) in text.lines().enumerate() {
            if banned.iter().any(|needle| line.contains(needle)) {
                found.push(format!(
                    "{}:{}: {}",
                    path.display(),
                    number + 1,
                    line.trim()
                ));
            }
            if line.ends_with(' ') || line.ends_with('\t') {
                found.push(format!(
                    "{}:{}: trailing whitespace",
                    path.display(),
                    number + 1
                ));
            }
        }
    }
    assert!(found.is_empty(), "tidy violations:\n{}", found.join("\n"));
}

#[test]
fn the_engine_depends_on_no_http_or_runtime_crate() {
    let manifest =
        fs::read_to_string(workspace_root().join("engine/Cargo.toml")).expect("engine manifest");
    let dependencies = manifest.split("[dev-dependencies]").next().unwrap_or("");
    for banned in ["axum", "tokio", "hyper", "tower", "argon2"] {
        assert!(
            !dependencies
                .lines()
                .any(|line| line.trim_start().starts_with(banned)),
            "engine/Cargo.toml must not depend on {banned}"
        );
    }
}
