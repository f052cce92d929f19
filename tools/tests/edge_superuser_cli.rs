//! `pocketlog superuser …` while `serve` runs on the same data dir: the CLI finds the data dir
//! locked, sends the operation over `<dir>/pocketlog.sock` and the server performs it through
//! its normal write path. Output and exit codes are the offline ones. A socket file left by a
//! dead server is stale: the CLI then works offline, and the next `serve` replaces it.

mod support;

use serde_json::json;
use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::path::Path;
use std::process::Command;
use support::{runtime, Server};

/// Runs `pocketlog superuser <args> --dir <dir>`; returns (exit code, stdout, the `Error:`
/// lines of stderr; tracing lines such as `initialized a fresh data dir` are left out).
fn cli(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_pocketlog"))
        .arg("superuser")
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .expect("run pocketlog superuser");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr)
            .lines()
            .filter(|line| line.starts_with("Error:"))
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

async fn login(server: &Server, email: &str, password: &str) -> u16 {
    server
        .call(
            "POST",
            "/api/collections/_superusers/auth-with-password",
            None,
            Some(json!({"identity": email, "password": password})),
        )
        .await
        .0
}

/// The same sequence of CLI calls, offline or against a running server; returns what each
/// printed (exit code, stdout, stderr).
fn sequence(dir: &Path) -> Vec<(i32, String, String)> {
    vec![
        cli(dir, &["upsert", "cli@example.com", "first-password"]),
        cli(dir, &["create", "cli@example.com", "first-password"]),
        cli(dir, &["create", "not-an-email", "short"]),
        cli(dir, &["update", "cli@example.com", "second-password"]),
        cli(dir, &["create", "other@example.com", "other-password"]),
        cli(dir, &["delete", "other@example.com"]),
        cli(dir, &["delete", "nobody@example.com"]),
        cli(dir, &["update", "nobody@example.com", "whatever-password"]),
    ]
}

#[test]
fn the_cli_works_through_a_running_server_with_the_offline_output() {
    let root = tempfile::tempdir().expect("tempdir");
    let offline_dir = root.path().join("offline");
    let offline = sequence(&offline_dir);
    assert_eq!(offline[0].0, 0, "{offline:?}");

    let dir = root.path().join("pb_data");
    runtime().block_on(async {
        let server = Server::start(&dir, &["--sync", "none"]).await;
        let socket = dir.join("pocketlog.sock");
        let meta = std::fs::symlink_metadata(&socket).expect("control socket");
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);

        let online = sequence(&dir);
        assert_eq!(online, offline, "online vs offline output");
        assert_eq!(
            login(&server, "cli@example.com", "second-password").await,
            200
        );
        assert_eq!(
            login(&server, "cli@example.com", "first-password").await,
            400
        );
        assert_eq!(
            login(&server, "other@example.com", "other-password").await,
            400
        );
        // The upsert right after `serve` started is the third-party SDK suites' pattern.
        let (code, stdout, _) = cli(&dir, &["upsert", "sdk@example.com", "sdk-password"]);
        assert_eq!(
            (code, stdout.trim()),
            (0, "Successfully saved superuser \"sdk@example.com\"!")
        );
        assert_eq!(login(&server, "sdk@example.com", "sdk-password").await, 200);
    });
}

#[test]
fn a_stale_socket_is_no_obstacle() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("pb_data");
    std::fs::create_dir_all(&dir).expect("dir");
    // A socket file nobody listens on, as a killed server leaves it.
    let stale = std::os::unix::net::UnixListener::bind(dir.join("pocketlog.sock")).expect("bind");
    drop(stale);
    assert!(dir.join("pocketlog.sock").exists());

    // Offline (no server holds the lock): the CLI opens the data dir itself.
    let (code, stdout, stderr) = cli(&dir, &["upsert", "stale@example.com", "stale-password"]);
    assert_eq!(code, 0, "{stdout}{stderr}");

    runtime().block_on(async {
        // `serve` replaces the stale file with its own socket.
        let mut server = Server::start(&dir, &["--sync", "none"]).await;
        let (code, stdout, stderr) = cli(&dir, &["update", "stale@example.com", "fresh-password"]);
        assert_eq!(code, 0, "{stdout}{stderr}");
        assert_eq!(
            stdout.trim(),
            "Successfully changed superuser \"stale@example.com\" password!"
        );
        assert_eq!(
            login(&server, "stale@example.com", "fresh-password").await,
            200
        );
        // A clean shutdown removes it.
        assert!(server.terminate());
        assert!(!dir.join("pocketlog.sock").exists());
    });
    // After the server stopped: offline again.
    let (code, stdout, stderr) = cli(&dir, &["update", "stale@example.com", "third-password"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}
