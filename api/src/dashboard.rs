//! The admin dashboard at `/_/`: static ES-module files embedded in the binary (no build step,
//! no external requests). It talks only to the public HTTP API, like the SDK does.
//!
//! `/_/` and any client route under it (`/_/anything`) serve `index.html`; the named assets
//! (`/_/app.js`, …) are served with their content types and a strict same-origin CSP.
//! `/_` redirects to `/_/`.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

const INDEX_HTML: &str = include_str!("../dashboard/index.html");

/// (file name, content type, bytes) of every embedded asset besides index.html.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../dashboard/app.js"),
    ),
    (
        "boot.js",
        "text/javascript; charset=utf-8",
        include_str!("../dashboard/boot.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("../dashboard/api.js"),
    ),
    (
        "ui.js",
        "text/javascript; charset=utf-8",
        include_str!("../dashboard/ui.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../dashboard/style.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("../dashboard/favicon.svg"),
    ),
];

/// Only our own origin: scripts, styles, images and API calls. Nothing external can load.
const CSP: &str =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'self'";

fn with_headers(content_type: &str, body: &'static str, cache: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).expect("static content type"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    response
}

/// `GET /_/`: the dashboard page.
pub async fn index() -> Response {
    with_headers("text/html; charset=utf-8", INDEX_HTML, "no-cache")
}

/// `GET /_/{*path}`: an asset, or the page for a client route.
pub async fn asset_or_index(Path(path): Path<String>) -> Response {
    if let Some((_, content_type, body)) = ASSETS.iter().find(|(n, _, _)| *n == path) {
        return with_headers(content_type, body, "no-cache");
    }
    // A missing file (a name with an extension) is a 404; anything else is a client route.
    let last = path.rsplit('/').next().unwrap_or_default();
    if last.contains('.') {
        return crate::error::ApiError::new(StatusCode::NOT_FOUND, "File not found.")
            .into_response();
    }
    index().await
}

/// `GET /_`: redirects to `/_/`.
pub async fn redirect_to_dashboard() -> Redirect {
    Redirect::permanent("/_/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_have_no_external_urls() {
        for (name, _, body) in ASSETS
            .iter()
            .chain(std::iter::once(&("index.html", "", INDEX_HTML)))
        {
            for needle in ["http://", "https://", "//cdn", "@import url("] {
                let hits: Vec<&str> = body
                    .lines()
                    .filter(|l| l.contains(needle) && !l.contains("www.w3.org/2000/svg"))
                    .collect();
                assert!(hits.is_empty(), "{name} references {needle}: {hits:?}");
            }
        }
    }
}
