//! `$http.send`: a small blocking HTTP/1.1 client for hooks, `http://` and `https://`
//! (rustls, the Mozilla roots of `webpki-roots`, plus the PEM certificates of the file named
//! by [`EXTRA_CA_ENV`] when set: a private CA, or a test's).
//!
//! Invariants: bounded by time (the request's `timeout`, at most
//! [`super::native::HTTP_MAX_TIMEOUT`] and never past the invocation's deadline) and by size
//! (a response body past [`super::native::HTTP_MAX_BODY_BYTES`] is an error); one connection
//! per call, closed after it. Certificates are always verified (no opt-out).

use super::native::{HTTP_MAX_BODY_BYTES, HTTP_MAX_TIMEOUT};
use serde_json::{json, Map, Value};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

type OpResult = Result<Value, (Option<u16>, String)>;

/// The environment variable naming a PEM file of extra trusted CA certificates.
pub const EXTRA_CA_ENV: &str = "POCKETLOG_HOOKS_HTTP_CA";

/// A connection: plain TCP or TLS over it (the TCP socket carries the timeouts).
trait Conn: Read + Write {
    fn tcp(&self) -> &TcpStream;
}

impl Conn for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Conn for rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    fn tcp(&self) -> &TcpStream {
        &self.sock
    }
}

/// The TLS client configuration: the webpki roots and the extra CA file's certificates.
fn tls_config() -> Result<rustls::ClientConfig, (Option<u16>, String)> {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = std::env::var_os(EXTRA_CA_ENV).filter(|p| !p.is_empty()) {
        let certificates = rustls::pki_types::CertificateDer::pem_file_iter(&path)
            .map_err(|e| fail(format!("{EXTRA_CA_ENV}: {e}")))?;
        for certificate in certificates {
            let certificate = certificate.map_err(|e| fail(format!("{EXTRA_CA_ENV}: {e}")))?;
            roots
                .add(certificate)
                .map_err(|e| fail(format!("{EXTRA_CA_ENV}: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(fail)?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The host of an authority (`host`, `host:port`, `[v6]:port`).
fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    authority.split(':').next().unwrap_or(authority)
}

fn fail(message: impl std::fmt::Display) -> (Option<u16>, String) {
    (None, format!("$http.send: {message}"))
}

/// Sends the request described by `config` (`url`, `method`, `body`, `headers`, `timeout` in
/// seconds); answers `{statusCode, headers, body, json}`.
pub fn send(config: &Value, remaining: Option<Duration>) -> OpResult {
    let url = config.get("url").and_then(Value::as_str).unwrap_or("");
    let method = config
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or("GET")
        .to_ascii_uppercase();
    if !method.chars().all(|c| c.is_ascii_uppercase()) || method.is_empty() {
        return Err(fail("invalid method"));
    }
    let body = match config.get("body") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    let mut timeout = config
        .get("timeout")
        .and_then(Value::as_f64)
        .filter(|t| *t > 0.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(HTTP_MAX_TIMEOUT)
        .min(HTTP_MAX_TIMEOUT);
    if let Some(left) = remaining {
        timeout = timeout.min(left);
    }
    let (tls, rest) = if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else {
        return Err(fail("only http:// and https:// URLs are supported"));
    };
    let (authority, path) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, "/"),
    };
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
    let host_port = if has_port {
        authority.to_string()
    } else if tls {
        format!("{authority}:443")
    } else {
        format!("{authority}:80")
    };
    let address = host_port
        .to_socket_addrs()
        .map_err(fail)?
        .next()
        .ok_or_else(|| fail("unknown host"))?;
    let started = Instant::now();
    let tcp = TcpStream::connect_timeout(&address, timeout.max(Duration::from_millis(1)))
        .map_err(fail)?;
    let mut stream: Box<dyn Conn> = if tls {
        let name = rustls::pki_types::ServerName::try_from(host_of(authority).to_string())
            .map_err(|_| fail("invalid host name"))?;
        let connection =
            rustls::ClientConnection::new(Arc::new(tls_config()?), name).map_err(fail)?;
        Box::new(rustls::StreamOwned::new(connection, tcp))
    } else {
        Box::new(tcp)
    };
    let left = || {
        timeout
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(1))
    };
    stream.tcp().set_write_timeout(Some(left())).map_err(fail)?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(Value::Object(headers)) = config.get("headers") {
        for (name, value) in headers {
            let value = value
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| value.to_string());
            if name.contains(['\r', '\n', ':']) || value.contains(['\r', '\n']) {
                return Err(fail("invalid header"));
            }
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).map_err(fail)?;
    stream.write_all(body.as_bytes()).map_err(fail)?;
    let mut raw = Vec::new();
    let mut chunk = [0_u8; 16 * 1024];
    loop {
        stream.tcp().set_read_timeout(Some(left())).map_err(fail)?;
        if started.elapsed() > timeout {
            return Err(fail("timeout"));
        }
        let read = match stream.read(&mut chunk) {
            Ok(read) => read,
            // A TLS peer that closes without close_notify after a `Connection: close`
            // answer: what was read is the answer.
            Err(err) if tls && err.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(err) => return Err(fail(err)),
        };
        if read == 0 {
            break;
        }
        raw.extend_from_slice(&chunk[..read]);
        if raw.len() > HTTP_MAX_BODY_BYTES + 64 * 1024 {
            return Err(fail("the response is too large"));
        }
    }
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> OpResult {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| fail("malformed response"))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| fail("malformed status line"))?;
    let mut headers = Map::new();
    let mut chunked = false;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("transfer-encoding")
                && value.eq_ignore_ascii_case("chunked")
            {
                chunked = true;
            }
            headers.insert(name.trim().to_string(), json!([value]));
        }
    }
    if chunked {
        body = dechunk(&body)?;
    }
    if body.len() > HTTP_MAX_BODY_BYTES {
        return Err(fail("the response is too large"));
    }
    let text = String::from_utf8_lossy(&body).to_string();
    let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(json!({"statusCode": status, "headers": headers, "body": text, "json": parsed}))
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, (Option<u16>, String)> {
    let mut out = Vec::new();
    loop {
        let end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| fail("malformed chunk"))?;
        let size_text = String::from_utf8_lossy(&data[..end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| fail("malformed chunk size"))?;
        data = &data[end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size {
            return Err(fail("truncated chunk"));
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or(&[]);
    }
}
