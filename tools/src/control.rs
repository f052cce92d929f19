//! The control socket: how `pocketlog superuser …` and `pocketlog migrate …` reach a server
//! that runs on the data dir.
//!
//! `serve` holds the data dir lock, so the CLI cannot open the engine next to it, and must
//! never write the data dir behind the server's back. Instead `serve` listens on a Unix socket
//! `<data dir>/pocketlog.sock` and performs the CLI's operation itself, through the normal
//! write path (same validation, hashing and log commit as offline).
//!
//! Invariants:
//! - Only the owner can use it: the socket file is created under a temporary name, set to mode
//!   0600, then renamed into place (never reachable with looser permissions), and every
//!   connection's peer uid (`SO_PEERCRED`) must be the server's effective uid.
//! - A socket file left by a server that died is stale: a client gets `ECONNREFUSED` (or no
//!   file) and is told so; `serve` replaces it at start (it holds the lock, so no live server
//!   can own it) and removes its own at shutdown.
//! - Protocol: one JSON request line (at most [`REQUEST_MAX`] bytes, within
//!   [`IO_TIMEOUT`]), one JSON reply line `{"ok":bool,"message":string}`, then close. Requests
//!   are served one at a time.

use anyhow::{Context, Result};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};

/// The socket's file name inside the data dir.
pub const SOCKET_NAME: &str = "pocketlog.sock";

/// Largest request line accepted.
pub const REQUEST_MAX: u64 = 64 * 1024;

/// How long a client may take to send its request.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the CLI waits for the server's reply (an operation hashes a password and commits).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(120);

/// The server's answer: the line the CLI prints on success, or its error message.
#[derive(Debug, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    pub message: String,
}

/// The socket path for a data dir.
pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join(SOCKET_NAME)
}

/// A listening control socket; stops and removes its file when dropped.
pub struct ControlSocket {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Listens on `<dir>/pocketlog.sock` (on the current tokio runtime) and answers each request
/// with `handler`. The caller must hold the data dir lock.
pub fn listen<T, F, Fut>(dir: &Path, handler: F) -> Result<ControlSocket>
where
    T: DeserializeOwned + Send + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<String>> + Send,
{
    use std::os::unix::fs::PermissionsExt as _;
    let path = socket_path(dir);
    let staging = dir.join(format!(".{SOCKET_NAME}.{}", std::process::id()));
    // Stale files: a server that died, or this one's previous incarnation (restore re-exec).
    for stale in [&path, &staging] {
        match std::fs::remove_file(stale) {
            Ok(()) => tracing::info!(path = %stale.display(), "removed a stale control socket"),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(err).with_context(|| format!("removing {}", stale.display()));
            }
        }
    }
    let listener = tokio::net::UnixListener::bind(&staging)
        .with_context(|| format!("binding the control socket {}", staging.display()))?;
    let placed = std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::rename(&staging, &path));
    if let Err(err) = placed {
        let _ = std::fs::remove_file(&staging);
        return Err(err).with_context(|| format!("placing the control socket {}", path.display()));
    }
    // SAFETY: geteuid has no preconditions.
    #[allow(unsafe_code)]
    let owner = unsafe { libc::geteuid() };
    let task = tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::warn!(error = %err, "control socket accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            match stream.peer_cred() {
                Ok(cred) if cred.uid() == owner => {}
                Ok(cred) => {
                    tracing::warn!(uid = cred.uid(), "control socket: refused a foreign user");
                    continue;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "control socket: no peer credentials");
                    continue;
                }
            }
            serve_one(stream, &handler).await;
        }
    });
    Ok(ControlSocket { path, task })
}

/// Reads one request, runs it, writes the reply. Errors only end this connection.
async fn serve_one<T, F, Fut>(stream: tokio::net::UnixStream, handler: &F)
where
    T: DeserializeOwned,
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = Result<String>>,
{
    let (read, mut write) = stream.into_split();
    let mut line = Vec::new();
    let mut reader = tokio::io::BufReader::new(read).take(REQUEST_MAX + 1);
    let read = tokio::time::timeout(IO_TIMEOUT, reader.read_until(b'\n', &mut line)).await;
    let reply = match read {
        Err(_) => return,
        Ok(Err(err)) => {
            tracing::debug!(error = %err, "control socket read failed");
            return;
        }
        Ok(Ok(_)) if line.len() as u64 > REQUEST_MAX => Reply {
            ok: false,
            message: "control request too large".into(),
        },
        Ok(Ok(_)) => match serde_json::from_slice::<T>(&line) {
            Err(err) => Reply {
                ok: false,
                message: format!("invalid control request: {err}"),
            },
            Ok(request) => match handler(request).await {
                Ok(message) => Reply { ok: true, message },
                Err(err) => Reply {
                    ok: false,
                    message: format!("{err:#}"),
                },
            },
        },
    };
    let Ok(mut bytes) = serde_json::to_vec(&reply) else {
        return;
    };
    bytes.push(b'\n');
    let _ = tokio::time::timeout(IO_TIMEOUT, write.write_all(&bytes)).await;
}

/// Why a call did not reach a server.
#[derive(Debug)]
pub enum Unreachable {
    /// No socket file: the server was started without one (or by an older version).
    Missing,
    /// A socket file nobody listens on (a server that died).
    Stale,
}

/// Sends `request` to the server on `dir` and waits for its reply (blocking).
pub fn call<T: Serialize>(
    dir: &Path,
    request: &T,
) -> Result<std::result::Result<Reply, Unreachable>> {
    use std::io::{BufRead as _, Read as _, Write as _};
    let path = socket_path(dir);
    let mut stream = match std::os::unix::net::UnixStream::connect(&path) {
        Ok(stream) => stream,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Err(Unreachable::Missing))
        }
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Ok(Err(Unreachable::Stale))
        }
        Err(err) => {
            return Err(err).with_context(|| format!("connecting to {}", path.display()));
        }
    };
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    stream
        .write_all(&line)
        .context("sending to the running server")?;
    let mut reply = String::new();
    std::io::BufReader::new(stream)
        .take(REQUEST_MAX)
        .read_line(&mut reply)
        .context("waiting for the running server's reply")?;
    let reply: Reply = serde_json::from_str(&reply)
        .context("the running server closed the control connection without a reply")?;
    Ok(Ok(reply))
}
