//! `pocketlog install-service` writes a hardened systemd unit for `serve` on the data dir (no
//! systemd here: the unit's text is checked), and `serve --http` on a port below 1024 works
//! as root (checked only when the test runs as root; otherwise the error names the cause).

mod support;

use std::collections::BTreeMap;
use std::process::Command;

fn install(args: &[&str], dir: &std::path::Path) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_pocketlog"))
        .arg("install-service")
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("run install-service");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

/// The `[Service]` keys of a unit (a key given twice keeps the last value).
fn service_keys(unit: &str) -> BTreeMap<String, String> {
    let mut section = "";
    let mut keys = BTreeMap::new();
    for line in unit.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            section = line;
        } else if section == "[Service]" && !line.starts_with('#') {
            if let Some((key, value)) = line.split_once('=') {
                keys.insert(key.to_string(), value.to_string());
            }
        }
    }
    keys
}

#[test]
fn the_unit_is_hardened_and_runs_serve_on_the_data_dir() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("pb_data");
    let unit_path = root.path().join("pocketlog.service");
    let (code, stdout, stderr) = install(
        &[
            "--user",
            "pocketlog",
            "--http",
            "0.0.0.0:80",
            "--encryptionEnv",
            "PB_KEY",
            "--output",
            unit_path.to_str().expect("utf-8"),
            "example.com",
        ],
        &dir,
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("sudo systemctl daemon-reload"), "{stdout}");
    assert!(
        stdout.contains("sudo systemctl enable --now pocketlog.service"),
        "{stdout}"
    );
    assert!(stdout.contains("chown -R pocketlog:"), "{stdout}");
    assert!(stdout.contains("/etc/pocketlog.env"), "{stdout}");
    let unit = std::fs::read_to_string(&unit_path).expect("unit written");
    let keys = service_keys(&unit);
    let dir_text = dir.display().to_string();
    let exec = &keys["ExecStart"];
    let exe = std::fs::canonicalize(env!("CARGO_BIN_EXE_pocketlog")).expect("exe");
    assert!(
        exec.starts_with(&format!("{} serve --dir {dir_text} ", exe.display())),
        "{exec}"
    );
    assert!(exec.contains(" --http 0.0.0.0:80 "), "{exec}");
    assert!(exec.contains(" --encryptionEnv PB_KEY "), "{exec}");
    assert!(exec.ends_with(" example.com"), "{exec}");
    for (key, value) in [
        ("User", "pocketlog"),
        ("Group", "pocketlog"),
        ("Restart", "on-failure"),
        ("NoNewPrivileges", "true"),
        ("ProtectSystem", "strict"),
        ("ReadWritePaths", dir_text.as_str()),
        ("AmbientCapabilities", "CAP_NET_BIND_SERVICE"),
        ("CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"),
        ("LimitNOFILE", "65536"),
        ("EnvironmentFile", "/etc/pocketlog.env"),
        ("PrivateTmp", "true"),
    ] {
        assert_eq!(
            keys.get(key).map(String::as_str),
            Some(value),
            "{key}:\n{unit}"
        );
    }
    // The stop timeout outlasts serve's 30 s shutdown drain.
    let stop: u64 = keys["TimeoutStopSec"]
        .trim_end_matches('s')
        .parse()
        .expect("seconds");
    assert!(stop > 30, "{unit}");
    assert!(
        unit.contains("[Install]\nWantedBy=multi-user.target"),
        "{unit}"
    );
}

#[test]
fn the_unit_can_be_printed_and_quotes_paths_with_spaces() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("my data");
    let (code, stdout, stderr) = install(&["--output", "-"], &dir);
    assert_eq!(code, 0, "{stderr}");
    let keys = service_keys(&stdout);
    assert!(!keys.contains_key("User"), "{stdout}");
    assert!(
        keys["ExecStart"].contains(&format!(" --dir \"{}\"", dir.display())),
        "{stdout}"
    );
    assert_eq!(keys["ReadWritePaths"], format!("\"{}\"", dir.display()));
    // Nothing was written or created.
    assert!(!dir.exists());
    // An unwritable destination is a clear error.
    let (code, _, stderr) = install(&["--output", "/nonexistent-dir/x.service"], &dir);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("Error: cannot write /nonexistent-dir/x.service"),
        "{stderr}"
    );
}

/// A free port below 1024 on loopback (None when none is found).
fn free_privileged_port() -> Option<u16> {
    (900..1000).find(|port| {
        std::net::TcpStream::connect(("127.0.0.1", *port)).is_err()
            && std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok()
    })
}

#[test]
fn serve_binds_a_privileged_port_as_root() {
    #[allow(unsafe_code)]
    // SAFETY: geteuid has no preconditions.
    let root_user = unsafe { libc::geteuid() } == 0;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("pb_data");
    if !root_user {
        // Not root: binding a low port fails with a clear error naming the address.
        let output = Command::new(env!("CARGO_BIN_EXE_pocketlog"))
            .args(["serve", "--sync", "none", "--http", "127.0.0.1:80", "--dir"])
            .arg(&dir)
            .output()
            .expect("run serve");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("cannot listen on 127.0.0.1:80"), "{stderr}");
        return;
    }
    let port = free_privileged_port().expect("a free port below 1024");
    let mut child = Command::new(env!("CARGO_BIN_EXE_pocketlog"))
        .args([
            "serve",
            "--sync",
            "none",
            "--http",
            &format!("127.0.0.1:{port}"),
            "--dir",
        ])
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn serve");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let healthy = loop {
        let answer = support::runtime().block_on(async {
            reqwest::get(format!("http://127.0.0.1:{port}/api/health"))
                .await
                .map(|response| response.status().as_u16())
        });
        if matches!(answer, Ok(200)) {
            break true;
        }
        if std::time::Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(healthy, "serve did not answer on 127.0.0.1:{port}");
}
