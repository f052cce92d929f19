//! The admin dashboard at `/_/`: static ES-module files embedded in the binary (no build step,
//! no external requests). It talks only to the public HTTP API, like the SDK does.
//!
//! `/_/` and any client route under it (`/_/anything`) serve `index.html`; the named assets
//! (`/_/app.js`, …) are served with their content types and a strict same-origin CSP.
//! `/_` redirects to `/_/`.
//!
//! The app is split into ES modules: `app.js` (router and layout), `core.js` (shared state),
//! `present.js` (display fields, file URLs) and one module per screen under `screens/`. Every file
//! must be listed in [`ASSETS`] (a unit test checks the directory against the list). Debug builds
//! serve the files from `POCKETLOG_DASHBOARD_DIR` when it is set (a development aid).

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

const INDEX_HTML: &str = include_str!("../dashboard/index.html");

const JS: &str = "text/javascript; charset=utf-8";

/// One embedded asset: its path under `/_/` and `api/dashboard/`, content type and bytes.
macro_rules! asset {
    ($path:literal, $type:expr) => {
        ($path, $type, include_str!(concat!("../dashboard/", $path)))
    };
}

/// (file name, content type, bytes) of every embedded asset besides index.html. Every module
/// under `screens/` is listed here: a module missing from this list is a 404 in the browser.
const ASSETS: &[(&str, &str, &str)] = &[
    asset!("app.js", JS),
    asset!("boot.js", JS),
    asset!("api.js", JS),
    asset!("ui.js", JS),
    asset!("core.js", JS),
    asset!("screens/login.js", JS),
    asset!("screens/records.js", JS),
    asset!("screens/record-panel.js", JS),
    asset!("screens/realtime.js", JS),
    asset!("screens/collection-editor.js", JS),
    asset!("screens/settings.js", JS),
    asset!("screens/backups.js", JS),
    asset!("present.js", JS),
    asset!("screens/file-input.js", JS),
    asset!("screens/auth-options.js", JS),
    asset!("screens/rule-input.js", JS),
    asset!("screens/logs.js", JS),
    asset!("screens/sql.js", JS),
    asset!("screens/cluster.js", JS),
    asset!("screens/settings-form.js", JS),
    asset!("screens/settings-mail.js", JS),
    asset!("screens/settings-storage.js", JS),
    asset!("screens/settings-crons.js", JS),
    asset!("screens/webhooks.js", JS),
    asset!("screens/settings-collections.js", JS),
    asset!("screens/trash.js", JS),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
];

/// Development aid, debug builds only: when set, the assets are read from this directory (an
/// `api/dashboard` checkout) on every request, so editing a screen needs no rebuild. Only the
/// names in [`ASSETS`] are served from it; release builds ignore the variable.
const DEV_DIR_ENV: &str = "POCKETLOG_DASHBOARD_DIR";

/// The asset's bytes from the dev directory, when the override applies and the file reads.
fn dev_override(name: &str) -> Option<String> {
    if !cfg!(debug_assertions) {
        return None;
    }
    let dir = std::env::var_os(DEV_DIR_ENV)?;
    match std::fs::read_to_string(std::path::Path::new(&dir).join(name)) {
        Ok(body) => Some(body),
        Err(e) => {
            tracing::warn!(asset = name, error = %e, "dashboard dev dir: falling back to the embedded asset");
            None
        }
    }
}

/// Only our own origin: scripts, styles, images and API calls. Nothing external can load.
const CSP: &str =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'self'";

/// Serves `body` (or, in a debug build with [`DEV_DIR_ENV`] set, the file `name` from that dir).
fn with_headers(name: &str, content_type: &str, body: &'static str) -> Response {
    let mut response = match dev_override(name) {
        Some(owned) => (StatusCode::OK, owned).into_response(),
        None => (StatusCode::OK, body).into_response(),
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).expect("static content type"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    response
}

/// `GET /_/`: the dashboard page.
pub async fn index() -> Response {
    with_headers("index.html", "text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /_/{*path}`: an asset, or the page for a client route.
pub async fn asset_or_index(Path(path): Path<String>) -> Response {
    if let Some((name, content_type, body)) = ASSETS.iter().find(|(n, _, _)| *n == path) {
        return with_headers(name, content_type, body);
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

    /// Every file under `api/dashboard/` is embedded: an unlisted screen module would be a 404.
    #[test]
    fn every_dashboard_file_is_listed() {
        fn walk(dir: &std::path::Path, base: &std::path::Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).expect("read dashboard dir") {
                let path = entry.expect("dir entry").path();
                if path.is_dir() {
                    walk(&path, base, out);
                } else {
                    let rel = path.strip_prefix(base).expect("under base");
                    out.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboard");
        let mut files = Vec::new();
        walk(&base, &base, &mut files);
        for file in files {
            let listed = file == "index.html" || ASSETS.iter().any(|(n, _, _)| *n == file);
            assert!(listed, "api/dashboard/{file} is not listed in ASSETS");
        }
    }
}
