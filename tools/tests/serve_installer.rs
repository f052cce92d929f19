//! The first-run installer against the built binary: `serve` on a data dir without a superuser
//! prints a `/_/#/pbinstall/<token>` link; `POST /api/installer` refuses a forged or altered token
//! (401) and invalid input (400 with field errors), creates the first superuser with the printed
//! token (who can then log in), and refuses any further use once a superuser exists (400). With a
//! superuser in place no link is printed.

mod support;

use serde_json::json;
use std::time::{Duration, Instant};
use support::{create_superuser, runtime, Server, EMAIL, PASSWORD};

/// The token of the installer link in the server's stderr.
async fn printed_token(server: &Server) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stderr = server.stderr();
        if let Some(token) = stderr
            .split("/_/#/pbinstall/")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
        {
            return token.to_string();
        }
        assert!(Instant::now() < deadline, "no installer link: {stderr}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn installer_link_creates_the_first_superuser_once() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("pb_data");
    runtime().block_on(async {
        let mut server = Server::start(&dir, &["--sync", "none"]).await;
        let token = printed_token(&server).await;
        assert!(
            server
                .stderr()
                .contains("pocketlog superuser upsert EMAIL PASS"),
            "{}",
            server.stderr()
        );
        let install = |token: String, email: &str, password: &str, confirm: &str| {
            json!({"token": token, "email": email, "password": password,
                   "passwordConfirm": confirm})
        };

        // Forged, altered and missing tokens.
        let altered = format!("{}x", &token[..token.len() - 1]);
        for bad in ["", "pbinstall.99999999999.AAAA", altered.as_str()] {
            let (status, body) = server
                .call(
                    "POST",
                    "/api/installer",
                    None,
                    Some(install(bad.into(), EMAIL, PASSWORD, PASSWORD)),
                )
                .await;
            assert_eq!(status, 401, "token {bad:?}: {body}");
        }
        // Validation errors come back as field errors.
        let (status, body) = server
            .call(
                "POST",
                "/api/installer",
                None,
                Some(install(token.clone(), EMAIL, PASSWORD, "different-pass")),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        assert!(body["data"]["passwordConfirm"].is_object(), "{body}");

        // The printed token creates the superuser; nothing secret comes back.
        let (status, body) = server
            .call(
                "POST",
                "/api/installer",
                None,
                Some(install(token.clone(), EMAIL, PASSWORD, PASSWORD)),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["email"], json!(EMAIL));
        assert!(body.get("password").is_none() && body.get("tokenKey").is_none());
        let admin = server.login().await;
        let (status, list) = server
            .call(
                "GET",
                "/api/collections/_superusers/records",
                Some(&admin),
                None,
            )
            .await;
        assert_eq!((status, &list["totalItems"]), (200, &json!(1)), "{list}");

        // The link is spent: a superuser exists.
        let (status, body) = server
            .call(
                "POST",
                "/api/installer",
                None,
                Some(install(token, "second@example.com", PASSWORD, PASSWORD)),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        assert!(server.terminate(), "unclean exit: {}", server.stderr());
    });

    // With a superuser, no link is printed.
    create_superuser(&dir);
    runtime().block_on(async {
        let mut server = Server::start(&dir, &["--sync", "none"]).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !server.stderr().contains("pbinstall"),
            "{}",
            server.stderr()
        );
        assert!(server.terminate());
    });
}
