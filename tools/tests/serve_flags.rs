//! PocketBase's `serve` flags against the built binary: every flag of the reference's
//! `pocketbase serve --help` (v0.40.6, listed in [`REFERENCE_FLAGS`]) is accepted in its Go
//! forms (`--flag value`, `--flag=value`, bare booleans, `--bool=false`), `serve --help` lists
//! them, the ones pocketlog does not implement print one warning line each, `--publicDir` and
//! `--indexFallback` change what `/` serves (`--https` and `serve <domain>`: `serve_tls.rs`).

mod support;

use std::process::Command;
use support::{runtime, Server};

/// The flags of `pocketbase serve --help` (serve's own and the global ones).
const REFERENCE_FLAGS: &[&str] = &[
    "--http",
    "--https",
    "--origins",
    "--automigrate",
    "--dev",
    "--dir",
    "--encryptionEnv",
    "--hooksDir",
    "--hooksPool",
    "--hooksWatch",
    "--indexFallback",
    "--migrationsDir",
    "--publicDir",
    "--queryTimeout",
];

#[test]
fn serve_help_lists_every_reference_flag() {
    let output = Command::new(env!("CARGO_BIN_EXE_pocketlog"))
        .args(["serve", "--help"])
        .output()
        .expect("run serve --help");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in REFERENCE_FLAGS {
        assert!(help.contains(flag), "serve --help lacks {flag}:\n{help}");
    }
    assert!(help.contains("[DOMAIN]"), "{help}");
}

#[test]
fn every_reference_flag_is_accepted_and_unimplemented_ones_warn_once() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("pb_data");
    let public = root.path().join("site");
    std::fs::create_dir_all(&public).expect("public dir");
    std::fs::write(public.join("index.html"), "<h1>site</h1>").expect("index");
    let public_arg = format!("--publicDir={}", public.display());
    runtime().block_on(async {
        let mut server = Server::start(
            &dir,
            &[
                "--sync",
                "none",
                "--origins",
                "https://a.example,https://b.example",
                "--dev",
                "--automigrate=false",
                "--encryptionEnv",
                "PB_KEY",
                "--hooksDir",
                "/nonexistent/pb_hooks",
                "--hooksPool=4",
                "--hooksWatch=false",
                "--indexFallback=false",
                "--migrationsDir",
                "/nonexistent/pb_migrations",
                &public_arg,
                "--queryTimeout",
                "5",
            ],
        )
        .await;
        let response = server
            .http
            .get(server.url("/"))
            .send()
            .await
            .expect("GET /");
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.expect("body"), "<h1>site</h1>");
        // --indexFallback=false: a missing path is 404.
        let response = server
            .http
            .get(server.url("/missing"))
            .send()
            .await
            .expect("GET /missing");
        assert_eq!(response.status(), 404);
        let stderr = server.stderr();
        for (topic, expected) in [
            // An empty key variable: settings stay in clear, with one warning.
            ("--encryptionEnv", 1),
            // Hooks and migration dirs are implemented: no warning (missing dirs are empty).
            ("--hooksDir", 0),
            ("--migrationsDir", 0),
            ("--automigrate", 0),
        ] {
            assert_eq!(
                stderr
                    .lines()
                    .filter(|line| line.contains("WARN") && line.contains(topic))
                    .count(),
                expected,
                "{topic}:\n{stderr}"
            );
        }
        assert!(server.terminate());
    });
}

#[test]
fn defaults_warn_about_nothing_and_serve_the_index_fallback() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("pb_data");
    let public = root.path().join("pb_public");
    std::fs::create_dir_all(&public).expect("public dir");
    std::fs::write(public.join("index.html"), "<h1>spa</h1>").expect("index");
    let public_arg = format!("--publicDir={}", public.display());
    runtime().block_on(async {
        let mut server =
            Server::start(&dir, &["--sync", "none", &public_arg, "--indexFallback"]).await;
        let response = server
            .http
            .get(server.url("/some/route"))
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.expect("body"), "<h1>spa</h1>");
        assert!(!server.stderr().contains("WARN"), "{}", server.stderr());
        assert!(server.terminate());
    });
}

#[test]
fn bad_flag_values_are_refused_with_exit_2() {
    for args in [
        vec!["serve", "--indexFallback=maybe"],
        vec!["serve", "--queryTimeout", "soon"],
        vec!["serve", "--hooksPool=many"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_pocketlog"))
            .args(&args)
            .output()
            .expect("run");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("invalid value"), "{args:?}: {stderr}");
    }
}
