//! `pocketlog superuser ips [IP/CIDR ...]` against the built binary, and its effect on a real
//! `serve` (real sockets, so the peer address comes from the accept loop): a list without
//! 127.0.0.1 refuses the superuser's sign-in from loopback with 403, a list holding it (or an
//! empty list) lets it in. Output and exit codes as PocketBase's command.

mod support;

use std::path::Path;
use std::process::Command;
use support::{create_superuser, runtime, Server, EMAIL, PASSWORD};

fn ips(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_pocketlog"))
        .args(["superuser", "ips"])
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .expect("run superuser ips");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn sign_in_status(server: &Server) -> u16 {
    let (status, _) = server
        .call(
            "POST",
            "/api/collections/_superusers/auth-with-password",
            None,
            Some(serde_json::json!({"identity": EMAIL, "password": PASSWORD})),
        )
        .await;
    status
}

#[test]
fn superuser_ips_command_sets_and_clears_the_allow_list() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("pb_data");
    create_superuser(&dir);

    let (code, stdout, _) = ips(&dir, &["10.0.0.1", "10.1.0.0/16"]);
    assert_eq!(code, 0);
    assert_eq!(
        stdout,
        "Successfully updated SuperuserIPs setting:\n├─ 10.0.0.1\n└─ 10.1.0.0/16\n"
    );
    let (code, _, stderr) = ips(&dir, &["bad"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("superuserIPs: (0: Invalid IP or CIDR subnet.)."),
        "{stderr}"
    );

    runtime().block_on(async {
        let mut server = Server::start(&dir, &["--sync", "none"]).await;
        assert_eq!(
            sign_in_status(&server).await,
            403,
            "loopback is not in the list"
        );
        assert!(server.terminate());
    });

    let (code, stdout, _) = ips(&dir, &["127.0.0.1"]);
    assert_eq!(
        (code, stdout.as_str()),
        (
            0,
            "Successfully updated SuperuserIPs setting:\n└─ 127.0.0.1\n"
        )
    );
    runtime().block_on(async {
        let mut server = Server::start(&dir, &["--sync", "none"]).await;
        assert_eq!(sign_in_status(&server).await, 200);
        let token = server.login().await;
        let (status, settings) = server
            .call("GET", "/api/settings", Some(&token), None)
            .await;
        assert_eq!(status, 200);
        assert_eq!(settings["superuserIPs"], serde_json::json!(["127.0.0.1"]));
        assert!(server.terminate());
    });

    let (code, stdout, _) = ips(&dir, &[]);
    assert_eq!(
        (code, stdout.as_str()),
        (0, "Successfully cleared SuperuserIPs setting!\n")
    );
}
