//! Content type detection from a file's first bytes (never from the client's claim), used for
//! `mimeTypes` checks at upload and for `Content-Type` when serving.
//!
//! Binary formats come from the `infer` crate's signatures; otherwise valid UTF-8 text without
//! control bytes is `application/json` when it parses as the start of a JSON object or array,
//! HTML/SVG/XML by their opening tag, else `text/plain; charset=utf-8`; anything else is
//! `application/octet-stream` (the reference's answers for these cases, measured).
//!
//! Invariant: the result depends only on the first [`SNIFF_LEN`] bytes, so a stored (immutable)
//! file always gets the same type.

/// How many leading bytes decide the type.
pub const SNIFF_LEN: usize = 8192;

/// The content type of a file starting with `head` (at most [`SNIFF_LEN`] bytes are looked at).
pub fn sniff(head: &[u8]) -> String {
    let head = &head[..head.len().min(SNIFF_LEN)];
    if head.is_empty() {
        return "text/plain; charset=utf-8".to_string();
    }
    if let Some(kind) = infer::get(head) {
        return kind.mime_type().to_string();
    }
    let text = match std::str::from_utf8(head) {
        Ok(text) => text,
        // A multi-byte character cut at the end of the head is still text.
        Err(err) if err.error_len().is_none() && head.len() == SNIFF_LEN => {
            std::str::from_utf8(&head[..err.valid_up_to()]).unwrap_or("")
        }
        Err(_) => return "application/octet-stream".to_string(),
    };
    if text
        .bytes()
        .any(|b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c) || b == 0x7f)
    {
        return "application/octet-stream".to_string();
    }
    let trimmed = text.trim_start_matches(['\u{feff}', ' ', '\t', '\n', '\r']);
    let lower: String = trimmed
        .chars()
        .take(64)
        .collect::<String>()
        .to_ascii_lowercase();
    if (trimmed.starts_with('{') || trimmed.starts_with('[')) && looks_like_json(trimmed) {
        return "application/json".to_string();
    }
    if lower.starts_with("<!doctype html") || lower.starts_with("<html") {
        return "text/html; charset=utf-8".to_string();
    }
    if lower.starts_with("<svg") || (lower.starts_with("<?xml") && text.contains("<svg")) {
        return "image/svg+xml".to_string();
    }
    if lower.starts_with("<?xml") {
        return "text/xml; charset=utf-8".to_string();
    }
    "text/plain; charset=utf-8".to_string()
}

/// Whether `text` is JSON, or (when it fills the whole sniff window) a prefix of JSON.
fn looks_like_json(text: &str) -> bool {
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>();
    match stream.next() {
        Some(Ok(_)) => stream.next().is_none(),
        Some(Err(err)) => err.is_eof() && text.len() + 4 >= SNIFF_LEN,
        None => false,
    }
}

/// The type without parameters, lower case (`text/plain; charset=utf-8` → `text/plain`).
pub fn essence(mime: &str) -> String {
    mime.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Whether `mime` is one of `allowed` (compared without parameters, case-insensitively).
pub fn allowed(mime: &str, allowed: &[String]) -> bool {
    let mime = essence(mime);
    allowed.iter().any(|candidate| essence(candidate) == mime)
}

/// The usual extension (with its dot) of a content type, for uploads whose name has none.
pub fn extension_for(mime: &str) -> Option<String> {
    let essence = essence(mime);
    let known = match essence.as_str() {
        "text/plain" => Some("txt"),
        "application/json" => Some("json"),
        "text/html" => Some("html"),
        "text/xml" => Some("xml"),
        "image/svg+xml" => Some("svg"),
        "image/jpeg" => Some("jpg"),
        _ => None,
    };
    if let Some(ext) = known {
        return Some(format!(".{ext}"));
    }
    EXTENSIONS
        .iter()
        .find(|(candidate, _)| *candidate == essence)
        .map(|(_, ext)| format!(".{ext}"))
}

/// Binary types and their usual extensions.
const EXTENSIONS: &[(&str, &str)] = &[
    ("image/png", "png"),
    ("image/gif", "gif"),
    ("image/webp", "webp"),
    ("image/bmp", "bmp"),
    ("image/x-icon", "ico"),
    ("image/vnd.microsoft.icon", "ico"),
    ("image/tiff", "tif"),
    ("image/avif", "avif"),
    ("image/heif", "heif"),
    ("application/pdf", "pdf"),
    ("application/zip", "zip"),
    ("application/gzip", "gz"),
    ("application/x-tar", "tar"),
    ("application/x-7z-compressed", "7z"),
    ("audio/mpeg", "mp3"),
    ("audio/ogg", "ogg"),
    ("audio/x-wav", "wav"),
    ("audio/x-flac", "flac"),
    ("video/mp4", "mp4"),
    ("video/webm", "webm"),
    ("video/quicktime", "mov"),
    ("application/wasm", "wasm"),
];

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0";

    #[test]
    fn content_decides_not_the_name() {
        assert_eq!(sniff(PNG), "image/png");
        assert_eq!(sniff(b"\xff\xd8\xff\xe0\0\x10JFIF\0"), "image/jpeg");
        assert_eq!(sniff(b"GIF89a\x01\0\x01\0"), "image/gif");
        assert_eq!(sniff(b"hello world\n"), "text/plain; charset=utf-8");
        assert_eq!(sniff(b"{\"a\":1}"), "application/json");
        assert_eq!(sniff(b"{bad"), "text/plain; charset=utf-8");
        assert_eq!(sniff(b"\x00\x01\x02\xff\xfe"), "application/octet-stream");
        assert_eq!(sniff(b"%PDF-1.7\n"), "application/pdf");
    }

    #[test]
    fn mime_lists_compare_without_parameters() {
        let list = vec!["image/png".to_string(), "text/plain".to_string()];
        assert!(allowed("image/png", &list));
        assert!(allowed("text/plain; charset=utf-8", &list));
        assert!(!allowed("image/jpeg", &list));
    }

    #[test]
    fn extensions_for_nameless_uploads() {
        assert_eq!(extension_for("image/png").as_deref(), Some(".png"));
        assert_eq!(
            extension_for("text/plain; charset=utf-8").as_deref(),
            Some(".txt")
        );
        assert_eq!(extension_for("application/json").as_deref(), Some(".json"));
        assert_eq!(extension_for("application/octet-stream"), None);
    }
}
