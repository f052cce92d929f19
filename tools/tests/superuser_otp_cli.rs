//! `pocketlog superuser otp EMAIL` against the built binary, with PocketBase's output and exit
//! codes (measured on v0.40.6): OTP off for `_superusers` → exit 1 `OTP auth is not enabled
//! for the _superusers collection`; unknown e-mail → exit 1 `superuser with email "…" doesn't
//! exist`; otherwise exit 0 and the id, code and validity as a tree, and the code signs the
//! superuser in through `auth-with-otp` (here while a server runs on the data dir, so the
//! command goes through its control socket).

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::json;
use std::path::Path;
use std::process::Command;
use support::{create_superuser, runtime, Server, EMAIL};

fn otp(dir: &Path, email: &str) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_pocketlog"))
        .args(["superuser", "otp", email])
        .arg("--dir")
        .arg(dir)
        .output()
        .expect("run superuser otp");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn superuser_otp_command_issues_a_code_that_signs_in() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("pb_data");
    create_superuser(&dir);

    let (code, stdout, stderr) = otp(&dir, EMAIL);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stderr.contains("OTP auth is not enabled for the _superusers collection"),
        "{stderr}"
    );

    runtime().block_on(async {
        let mut server = Server::start(&dir, &["--sync", "none"]).await;
        let token = server.login().await;
        let (status, _) = server
            .call(
                "PATCH",
                "/api/collections/_superusers",
                Some(&token),
                Some(json!({"otp": {"enabled": true}})),
            )
            .await;
        assert_eq!(status, 200);

        let (code, _, stderr) = otp(&dir, "nobody@example.com");
        assert_eq!(code, 1);
        assert!(
            stderr.contains("superuser with email \"nobody@example.com\" doesn't exist"),
            "{stderr}"
        );

        let (code, stdout, stderr) = otp(&dir, EMAIL);
        assert_eq!(code, 0, "{stderr}");
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(
            lines[0],
            format!("Successfully created OTP for superuser \"{EMAIL}\":")
        );
        let id = lines[1].strip_prefix("├─ Id:    ").expect("id line");
        let pass = lines[2].strip_prefix("├─ Pass:  ").expect("pass line");
        assert_eq!(lines[3], "└─ Valid: 180s");
        assert_eq!((id.len(), pass.len()), (15, 8));
        assert!(pass.bytes().all(|b| b.is_ascii_digit()));

        let (status, body) = server
            .call(
                "POST",
                "/api/collections/_superusers/auth-with-otp",
                None,
                Some(json!({"otpId": id, "password": pass})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["record"]["email"], EMAIL);
        // Used once.
        let (status, _) = server
            .call(
                "POST",
                "/api/collections/_superusers/auth-with-otp",
                None,
                Some(json!({"otpId": id, "password": pass})),
            )
            .await;
        assert_eq!(status, 400);
        assert!(server.terminate());
    });
}
