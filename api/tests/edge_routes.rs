//! Routing edges as PocketBase v0.40.6 answers them (measured on the reference binary):
//! wrong methods on known paths, static paths that hide a parameterised route, and CORS
//! (preflights and normal requests, any origin and an `--origins` list).

mod common;

use api::ServerOptions;
use common::{start, start_with, TestServer};
use serde_json::json;

const NOT_FOUND: &str = "The requested resource wasn't found.";
const FILE_NOT_FOUND: &str = "File not found.";

/// (method, path, message) of the reference's 404 for a method the path does not serve.
const WRONG_METHODS: &[(&str, &str, &str)] = &[
    ("POST", "/api/health", NOT_FOUND),
    ("PUT", "/api/health", NOT_FOUND),
    ("DELETE", "/api/settings", NOT_FOUND),
    ("POST", "/api/settings", NOT_FOUND),
    ("PUT", "/api/collections", NOT_FOUND),
    ("POST", "/api/collections/_superusers", NOT_FOUND),
    ("PUT", "/api/collections/x/records", NOT_FOUND),
    ("DELETE", "/api/collections/x/records", NOT_FOUND),
    ("POST", "/api/collections/x/records/abc", NOT_FOUND),
    ("POST", "/api/collections/import", NOT_FOUND),
    (
        "PUT",
        "/api/collections/_superusers/auth-with-password",
        NOT_FOUND,
    ),
    (
        "GET",
        "/api/collections/_superusers/auth-with-password",
        FILE_NOT_FOUND,
    ),
    ("GET", "/api/collections/x/truncate", FILE_NOT_FOUND),
    ("GET", "/api/batch", FILE_NOT_FOUND),
    ("PUT", "/api/batch", NOT_FOUND),
    ("DELETE", "/api/realtime", NOT_FOUND),
    ("GET", "/api/files/token", FILE_NOT_FOUND),
    ("PATCH", "/api/backups", NOT_FOUND),
    ("GET", "/api/backups/k/restore", FILE_NOT_FOUND),
    ("POST", "/api/logs", NOT_FOUND),
    ("POST", "/_/", NOT_FOUND),
];

#[tokio::test]
async fn a_wrong_method_gets_the_404_envelope_like_an_unknown_route() {
    let server = start().await;
    for token in [None, Some(server.admin.as_str())] {
        for (method, path, message) in WRONG_METHODS {
            let reply = server.send(method, path, Some("{}"), token).await;
            assert_eq!(reply.status, 404, "{method} {path}: {}", reply.text);
            assert_eq!(
                reply.json,
                json!({"data": {}, "message": message, "status": 404}),
                "{method} {path}"
            );
            assert!(reply.headers.get("allow").is_none(), "{method} {path}");
            assert_eq!(
                reply.headers.get("x-frame-options").map(|v| v.as_bytes()),
                Some(&b"SAMEORIGIN"[..]),
                "{method} {path}"
            );
        }
    }
    // HEAD on a path without GET: 404 without a body.
    let reply = server.send("HEAD", "/api/batch", None, None).await;
    assert_eq!(reply.status, 404);
    assert!(reply.headers.get("allow").is_none());
}

#[tokio::test]
async fn a_static_path_does_not_hide_the_parameterised_route_for_other_methods() {
    let server = start().await;
    let admin = Some(server.admin.as_str());
    // `/api/collections/import` is PUT-only; GET/PATCH/DELETE reach `/api/collections/{c}`.
    let reply = server
        .send("GET", "/api/collections/import", None, admin)
        .await;
    assert_eq!(reply.status, 404, "{}", reply.text);
    assert_eq!(reply.json["message"], NOT_FOUND);
    let guest = server
        .send("GET", "/api/collections/import", None, None)
        .await;
    assert_eq!(guest.status, 401, "{}", guest.text);
    server
        .json(
            "POST",
            "/api/collections",
            json!({"name": "import", "type": "base"}),
            admin,
            200,
        )
        .await;
    let viewed = server
        .json("GET", "/api/collections/import", json!({}), admin, 200)
        .await;
    assert_eq!(viewed["name"], "import");
    let deleted = server
        .send("DELETE", "/api/collections/import", None, admin)
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    // `/api/backups/upload` is POST-only; GET reaches `/api/backups/{key}` (a download,
    // which needs a file token).
    let download = server.send("GET", "/api/backups/upload", None, admin).await;
    assert_ne!(download.status, 405, "{}", download.text);
    assert_eq!(
        download.json["status"], download.status,
        "{}",
        download.text
    );
}

/// The headers of a raw request (reqwest, so that several header lines can be sent).
async fn headers_of(
    server: &TestServer,
    method: &str,
    path: &str,
    request_headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = server
        .client
        .request(method, format!("{}{}", server.base, path));
    for (name, value) in request_headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request");
    (response.status().as_u16(), response.headers().clone())
}

fn all(headers: &reqwest::header::HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn a_preflight_echoes_the_requested_headers() {
    let server = start().await;
    let (status, headers) = headers_of(
        &server,
        "OPTIONS",
        "/api/collections/posts/records?page=2",
        &[
            ("origin", "http://app.example"),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "authorization,content-type",
            ),
        ],
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(all(&headers, "access-control-allow-origin"), ["*"]);
    assert_eq!(
        all(&headers, "access-control-allow-methods"),
        ["GET,HEAD,PUT,PATCH,POST,DELETE"]
    );
    assert_eq!(
        all(&headers, "access-control-allow-headers"),
        ["authorization,content-type"]
    );
    assert_eq!(
        all(&headers, "vary"),
        [
            "Origin",
            "Access-Control-Request-Method",
            "Access-Control-Request-Headers"
        ]
    );
    // As the reference: no max-age, no credentials, no security headers, no `Allow`.
    for absent in [
        "access-control-max-age",
        "access-control-allow-credentials",
        "x-frame-options",
        "allow",
        "content-type",
    ] {
        assert!(headers.get(absent).is_none(), "{absent}: {headers:?}");
    }

    // Several request-header lines: the first is echoed, as the reference does.
    let (_, headers) = headers_of(
        &server,
        "OPTIONS",
        "/api/health",
        &[
            ("origin", "http://app.example"),
            ("access-control-request-headers", "X-Foo,Authorization"),
            ("access-control-request-headers", "b"),
        ],
    )
    .await;
    assert_eq!(
        all(&headers, "access-control-allow-headers"),
        ["X-Foo,Authorization"]
    );

    // Without `Origin`: 204 with `Vary: Origin` only.
    let (status, headers) = headers_of(
        &server,
        "OPTIONS",
        "/api/health",
        &[("access-control-request-method", "POST")],
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(all(&headers, "vary"), ["Origin"]);
    assert!(headers.get("access-control-allow-origin").is_none());
    assert!(headers.get("access-control-allow-methods").is_none());

    // A normal request: the origin and `Vary`, nothing preflight-only.
    let (status, headers) = headers_of(
        &server,
        "GET",
        "/api/health",
        &[("origin", "http://app.example")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(all(&headers, "access-control-allow-origin"), ["*"]);
    assert_eq!(all(&headers, "vary"), ["Origin"]);
    assert!(headers.get("access-control-allow-methods").is_none());
    assert!(headers.get("access-control-allow-headers").is_none());
    assert!(headers.get("x-frame-options").is_some());
}

#[tokio::test]
async fn an_origins_list_allows_only_its_origins_and_wildcards() {
    let server = start_with(ServerOptions {
        origins: vec!["http://a.example".into(), "https://*.example.com".into()],
        ..ServerOptions::default()
    })
    .await;
    for (origin, allowed) in [
        ("http://a.example", true),
        ("https://x.example.com", true),
        ("https://a.b.example.com", true),
        ("https://example.com", false),
        ("http://x.example.com", false),
        ("HTTP://A.EXAMPLE", false),
        ("http://a.example/", false),
        ("http://c.example", false),
    ] {
        let (status, headers) = headers_of(
            &server,
            "OPTIONS",
            "/api/health",
            &[
                ("origin", origin),
                ("access-control-request-method", "PATCH"),
                ("access-control-request-headers", "authorization"),
            ],
        )
        .await;
        assert_eq!(status, 204, "{origin}");
        if allowed {
            assert_eq!(all(&headers, "access-control-allow-origin"), [origin]);
            assert_eq!(
                all(&headers, "access-control-allow-headers"),
                ["authorization"]
            );
            assert_eq!(all(&headers, "vary").len(), 3, "{origin}");
        } else {
            assert_eq!(all(&headers, "vary"), ["Origin"], "{origin}");
            assert!(
                headers.get("access-control-allow-origin").is_none(),
                "{origin}"
            );
            assert!(
                headers.get("access-control-allow-headers").is_none(),
                "{origin}"
            );
        }
        let (_, headers) = headers_of(&server, "GET", "/api/health", &[("origin", origin)]).await;
        let expected: Vec<String> = if allowed { vec![origin.into()] } else { vec![] };
        assert_eq!(all(&headers, "access-control-allow-origin"), expected);
        assert_eq!(all(&headers, "vary"), ["Origin"], "{origin}");
    }
}
