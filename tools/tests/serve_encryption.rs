//! `--encryptionEnv VAR`: the settings are stored AES-256-GCM-sealed under the variable's 32
//! characters, in the log and in `data.db` (no file of the data dir holds an SMTP password in
//! clear), a missing or wrong key at start is a clear error (exit 1), the right key serves
//! them, turning the flag on over clear settings seals them, and settings PocketBase sealed
//! with the same key are imported by `import-pocketbase --encryptionEnv VAR` (the reference
//! binary, `$POCKETBASE_BIN` or `/tmp/pocketbase`, makes them in the test).

mod support;

use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{runtime, Server, EMAIL, PASSWORD};

/// The variable every test of this file uses (set once, the same value: tests run in
/// parallel threads of one process and children inherit it).
const ENV: &str = "PL_TEST_SETTINGS_KEY";
const KEY: &str = "abcdefghijklmnopqrstuvwxyz012345";

fn set_key() {
    std::env::set_var(ENV, KEY);
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).expect("read dir") {
                stack.push(entry.expect("entry").path());
            }
        } else if let Ok(bytes) = std::fs::read(&path) {
            if bytes.windows(needle.len()).any(|window| window == needle) {
                found.push(path);
            }
        }
    }
    found
}

fn pocketlog(args: &[&str], dir: &Path) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_pocketlog"))
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .expect("run pocketlog");
    (
        output.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

/// `serve` that must fail at start: its exit code and stderr.
fn serve_fails(dir: &Path, args: &[&str], env: Option<&str>) -> (i32, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pocketlog"));
    command
        .args(["serve", "--http", "127.0.0.1:0", "--dir"])
        .arg(dir)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(value) = env {
        command.env(ENV, value);
    } else {
        command.env_remove(ENV);
    }
    let child = command.spawn().expect("spawn");
    let output = child.wait_with_output().expect("wait");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

#[test]
fn settings_are_sealed_in_the_log_and_the_projection_and_need_the_key() {
    set_key();
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("pb_data");
    let flag = ["--encryptionEnv", ENV];
    let (code, out) = pocketlog(
        &[
            "superuser",
            "upsert",
            EMAIL,
            PASSWORD,
            "--encryptionEnv",
            ENV,
        ],
        &dir,
    );
    assert_eq!(code, 0, "{out}");
    let secret = "SMTP-SECRET-pw-31337";
    let host = "smtp.sealed-host.example";
    runtime().block_on(async {
        let mut server = Server::start(&dir, &["--sync", "none", flag[0], flag[1]]).await;
        let token = server.login().await;
        let (status, body) = server
            .call(
                "PATCH",
                "/api/settings",
                Some(&token),
                Some(json!({"smtp": {"enabled": true, "host": host, "port": 587,
                    "username": "u", "password": secret}})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert!(server.terminate());
    });
    assert_eq!(
        files_containing(&dir, secret.as_bytes()),
        Vec::<PathBuf>::new()
    );
    assert_eq!(
        files_containing(&dir, host.as_bytes()),
        Vec::<PathBuf>::new()
    );
    // Without the key, with an empty variable, with a wrong key: a clear error at start.
    let (code, err) = serve_fails(&dir, &[], None);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("Error:") && err.contains("encrypted"), "{err}");
    let (code, err) = serve_fails(&dir, &flag, Some(""));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(ENV) && err.contains("encrypted"), "{err}");
    let (code, err) = serve_fails(&dir, &flag, Some("wrongwrongwrongwrongwrongwrong12"));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("wrong key"), "{err}");
    let (code, err) = serve_fails(&dir, &flag, Some("too-short"));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("32 characters"), "{err}");
    // The right key: the settings are back (the secret stays hidden from the API).
    runtime().block_on(async {
        let mut server = Server::start(&dir, &["--sync", "none", flag[0], flag[1]]).await;
        let token = server.login().await;
        let (status, body) = server
            .call("GET", "/api/settings", Some(&token), None)
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["smtp"]["host"], host);
        assert!(body["smtp"].get("password").is_none());
        assert!(server.terminate());
    });
    let (code, out) = Command::new(env!("CARGO_BIN_EXE_pb-tools"))
        .args(["verify", "--dir"])
        .arg(&dir)
        .output()
        .map(|o| {
            (
                o.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&o.stdout).to_string(),
            )
        })
        .expect("pb-tools verify");
    assert_eq!(code, 0, "{out}");
}

#[test]
fn turning_encryption_on_seals_the_stored_settings() {
    set_key();
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("pb_data");
    support::create_superuser(&dir);
    let host = "smtp.was-in-clear.example";
    runtime().block_on(async {
        let mut server = Server::start(&dir, &["--sync", "none"]).await;
        let token = server.login().await;
        let (status, body) = server
            .call(
                "PATCH",
                "/api/settings",
                Some(&token),
                Some(json!({"smtp": {"host": host}})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert!(server.terminate());
    });
    runtime().block_on(async {
        let mut server = Server::start(&dir, &["--sync", "none", "--encryptionEnv", ENV]).await;
        let token = server.login().await;
        let (_, body) = server
            .call("GET", "/api/settings", Some(&token), None)
            .await;
        assert_eq!(body["smtp"]["host"], host);
        assert!(server.terminate());
    });
    // The projection now holds the sealed value (older log commits keep what they held).
    let db = rusqlite::Connection::open_with_flags(
        dir.join("data.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open data.db");
    let stored: String = db
        .query_row(
            "SELECT value FROM _params WHERE key = 'settings'",
            [],
            |row| row.get(0),
        )
        .expect("settings row");
    assert!(!stored.contains(host), "{stored}");
    assert!(serde_json::from_str::<serde_json::Value>(&stored).is_err());
    let (code, err) = serve_fails(&dir, &[], None);
    assert_eq!(code, 1, "{err}");
}

/// PocketBase with `--encryptionEnv` seals its settings; the import opens them with the same
/// key and keeps them sealed.
#[test]
fn settings_pocketbase_sealed_are_imported_with_the_key() {
    set_key();
    let bin = PathBuf::from(
        std::env::var("POCKETBASE_BIN").unwrap_or_else(|_| "/tmp/pocketbase".to_string()),
    );
    assert!(
        bin.is_file(),
        "the reference binary is missing at {}",
        bin.display()
    );
    let root = tempfile::tempdir().expect("tempdir");
    let pb_dir = root.path().join("pb_old");
    let status = Command::new(&bin)
        .args([
            "superuser",
            "upsert",
            "a@b.c",
            "1234567890",
            "--encryptionEnv",
            ENV,
            // No migration files beside the data dir (pocketlog servers in other tests would
            // apply them: PocketBase's default pb_migrations is the data dir's sibling).
            "--automigrate=false",
            "--dir",
        ])
        .arg(&pb_dir)
        .stdout(Stdio::null())
        .status()
        .expect("pocketbase superuser");
    assert!(status.success());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = Command::new(&bin)
        .args([
            "serve",
            "--http",
            &format!("127.0.0.1:{port}"),
            "--encryptionEnv",
            ENV,
            // No migration files beside the data dir (pocketlog servers in other tests would
            // apply them: PocketBase's default pb_migrations is the data dir's sibling).
            "--automigrate=false",
            "--dir",
        ])
        .arg(&pb_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn pocketbase");
    let host = "smtp.from-pocketbase.example";
    let secret = "PB-SEALED-SECRET-4242";
    runtime().block_on(async {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while http
            .get(format!("{base}/api/health"))
            .send()
            .await
            .map(|r| !r.status().is_success())
            .unwrap_or(true)
        {
            assert!(Instant::now() < deadline, "pocketbase did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let auth: serde_json::Value = http
            .post(format!(
                "{base}/api/collections/_superusers/auth-with-password"
            ))
            .json(&json!({"identity": "a@b.c", "password": "1234567890"}))
            .send()
            .await
            .expect("login")
            .json()
            .await
            .expect("json");
        let token = auth["token"].as_str().expect("token").to_string();
        let response = http
            .patch(format!("{base}/api/settings"))
            .header("Authorization", &token)
            .json(
                &json!({"smtp": {"enabled": true, "host": host, "port": 2525,
                "username": "u", "password": secret}}),
            )
            .send()
            .await
            .expect("patch settings");
        assert_eq!(response.status(), 200);
    });
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    // SAFETY: a signal to our own, not yet reaped, child.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let _ = child.wait();
    let dir = root.path().join("pb_data");
    let from = pb_dir.to_str().expect("utf-8 path").to_string();
    let (code, out) = pocketlog(
        &["import-pocketbase", "--from", &from, "--encryptionEnv", ENV],
        &dir,
    );
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("warning"), "{out}");
    assert_eq!(
        files_containing(&dir, secret.as_bytes()),
        Vec::<PathBuf>::new()
    );
    let (code, out) = pocketlog(
        &[
            "superuser",
            "upsert",
            EMAIL,
            PASSWORD,
            "--encryptionEnv",
            ENV,
        ],
        &dir,
    );
    assert_eq!(code, 0, "{out}");
    runtime().block_on(async {
        let mut server = Server::start(&dir, &["--sync", "none", "--encryptionEnv", ENV]).await;
        let token = server.login().await;
        let (_, body) = server
            .call("GET", "/api/settings", Some(&token), None)
            .await;
        assert_eq!(body["smtp"]["host"], host, "{body}");
        assert_eq!(body["smtp"]["port"], 2525);
        assert!(server.terminate());
    });
}
