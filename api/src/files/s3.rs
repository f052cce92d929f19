//! S3-compatible object storage (`settings.s3` for record files, `settings.backups.s3` for
//! backups) on the `object_store` crate: the configuration read from the settings, a cached
//! client per configuration, and the few operations the API needs (put a file or bytes, head,
//! ranged get, list, delete, the connection test of `POST /api/settings/test/s3`).
//!
//! Invariants:
//! 1. Every S3 call runs on one dedicated runtime ([`on_runtime`], [`blocking`]): the clients'
//!    pooled connections never belong to a request's runtime (tests run many runtimes; the
//!    writer thread has none), and a caller on any thread can wait for a result.
//! 2. Nothing hangs: connections time out after [`CONNECT_TIMEOUT`], each HTTP request after
//!    [`REQUEST_TIMEOUT`], retries stop after [`RETRY_TIMEOUT`], and the small operations
//!    (head, delete, list, test) are bounded as a whole by [`OP_TIMEOUT`]. Large objects move
//!    in parts ([`PART_SIZE`] up, [`READ_CHUNK`] ranges down), so no single request carries
//!    a whole large file.
//! 3. A put returns only once S3 acknowledged the whole object (durable in the bucket); a
//!    failed multipart upload is aborted (best effort).
//! 4. Secrets are never logged or shown: [`S3Config`]'s `Debug` leaves the secret out.

use axum::body::Bytes;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectStore, PutPayload, RetryConfig,
    WriteMultipart,
};
use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, SystemTime};
use tokio::io::AsyncReadExt;

/// Time to establish a connection to the S3 endpoint.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for one HTTP request (one part, one ranged read) to complete.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Total time spent retrying one request.
pub const RETRY_TIMEOUT: Duration = Duration::from_secs(10);
/// Retries of one request (transient errors only).
pub const MAX_RETRIES: usize = 2;
/// Bound on a whole small operation (head, delete, list, the connection test).
pub const OP_TIMEOUT: Duration = Duration::from_secs(15);
/// Objects up to this size are sent with one `PUT`; larger ones as a multipart upload.
pub const SINGLE_PUT_MAX: u64 = 8 * 1024 * 1024;
/// Size of one part of a multipart upload (S3's minimum is 5 MiB).
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts of one multipart upload in flight at once.
pub const PARTS_IN_FLIGHT: usize = 2;
/// Size of one ranged read when streaming an object out.
pub const READ_CHUNK: u64 = 2 * 1024 * 1024;
/// Worker threads of the S3 runtime.
const S3_THREADS: usize = 2;
/// Distinct configurations whose clients are kept (settings rarely change).
const MAX_CACHED_CLIENTS: usize = 8;

/// An S3 error: a missing object, a timeout, or anything else (the message is shown to
/// superusers as the reference does: `Raw error: ...`).
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// The object (or bucket) does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The operation did not finish in time.
    #[error("the S3 request timed out after {0:?}")]
    Timeout(Duration),
    /// Any other failure (connection refused, bad credentials, ...).
    #[error("{0}")]
    Other(String),
}

impl S3Error {
    fn other(err: impl std::fmt::Display) -> Self {
        S3Error::Other(err.to_string())
    }
}

impl From<object_store::Error> for S3Error {
    fn from(err: object_store::Error) -> Self {
        match err {
            object_store::Error::NotFound { .. } => S3Error::NotFound(err.to_string()),
            other => S3Error::Other(other.to_string()),
        }
    }
}

impl From<std::io::Error> for S3Error {
    fn from(err: std::io::Error) -> Self {
        S3Error::Other(err.to_string())
    }
}

/// One S3 configuration (`settings.s3` or `settings.backups.s3`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct S3Config {
    pub bucket: String,
    pub region: String,
    pub endpoint: String,
    pub access_key: String,
    pub secret: String,
    pub force_path_style: bool,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key", &self.access_key)
            .field("force_path_style", &self.force_path_style)
            .finish_non_exhaustive()
    }
}

/// Where record files are configured (`settings.s3`).
pub const FILES_POINTER: &str = "/s3";
/// Where backups are configured (`settings.backups.s3`).
pub const BACKUPS_POINTER: &str = "/backups/s3";

impl S3Config {
    /// The configuration at `pointer` in `settings` when it is enabled.
    pub fn enabled(settings: &Value, pointer: &str) -> Option<S3Config> {
        let block = settings.pointer(pointer)?;
        if !block
            .get("enabled")
            .and_then(Value::as_bool)
            .unwrap_or(false)
        {
            return None;
        }
        let text = |key: &str| {
            block
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        Some(S3Config {
            bucket: text("bucket"),
            region: text("region"),
            endpoint: text("endpoint"),
            access_key: text("accessKey"),
            secret: text("secret"),
            force_path_style: block
                .get("forcePathStyle")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }

    /// The endpoint the client talks to: path style as given; virtual-hosted style puts the
    /// bucket in front of the host (`https://<bucket>.<host>`), as S3 SDKs do.
    fn client_endpoint(&self) -> String {
        if self.force_path_style {
            return self.endpoint.trim_end_matches('/').to_string();
        }
        match self.endpoint.split_once("://") {
            Some((scheme, rest)) => {
                format!("{scheme}://{}.{}", self.bucket, rest.trim_end_matches('/'))
            }
            None => self.endpoint.clone(),
        }
    }

    fn build(&self) -> Result<AmazonS3, S3Error> {
        let options = ClientOptions::new()
            .with_allow_http(true)
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT);
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: MAX_RETRIES,
            retry_timeout: RETRY_TIMEOUT,
        };
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&self.bucket)
            .with_region(&self.region)
            .with_access_key_id(&self.access_key)
            .with_secret_access_key(&self.secret)
            .with_allow_http(true)
            .with_client_options(options)
            .with_retry(retry);
        if !self.endpoint.is_empty() {
            builder = builder
                .with_endpoint(self.client_endpoint())
                .with_virtual_hosted_style_request(!self.force_path_style);
        }
        builder.build().map_err(S3Error::other)
    }
}

static RUNTIME: LazyLock<Result<tokio::runtime::Runtime, String>> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(S3_THREADS)
        .thread_name("pocketlog-s3")
        .enable_all()
        .build()
        .map_err(|err| err.to_string())
});

static CLIENTS: LazyLock<Mutex<HashMap<S3Config, Arc<AmazonS3>>>> = LazyLock::new(Mutex::default);

/// Runs `work` on the S3 runtime and awaits it (from any async context).
pub async fn on_runtime<T, F>(work: F) -> Result<T, S3Error>
where
    T: Send + 'static,
    F: Future<Output = Result<T, S3Error>> + Send + 'static,
{
    let runtime = RUNTIME.as_ref().map_err(S3Error::other)?;
    runtime.spawn(work).await.map_err(S3Error::other)?
}

/// Runs `work` on the S3 runtime and waits for it on this (non-async) thread, e.g. the
/// engine's writer thread.
pub fn blocking<T, F>(work: F) -> Result<T, S3Error>
where
    T: Send + 'static,
    F: Future<Output = Result<T, S3Error>> + Send + 'static,
{
    let runtime = RUNTIME.as_ref().map_err(S3Error::other)?;
    let (sender, receiver) = std::sync::mpsc::sync_channel(1);
    runtime.spawn(async move {
        let _ = sender.send(work.await);
    });
    receiver
        .recv()
        .map_err(|_| S3Error::Other("the S3 task was lost".into()))?
}

async fn bounded<T>(
    work: impl Future<Output = Result<T, S3Error>>,
    limit: Duration,
) -> Result<T, S3Error> {
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| S3Error::Timeout(limit))?
}

/// What [`S3Store::head`] tells about an object.
#[derive(Debug, Clone)]
pub struct ObjectInfo {
    /// Key in the bucket.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification.
    pub modified: SystemTime,
}

impl From<object_store::ObjectMeta> for ObjectInfo {
    fn from(meta: object_store::ObjectMeta) -> Self {
        ObjectInfo {
            key: meta.location.to_string(),
            size: meta.size,
            modified: SystemTime::from(meta.last_modified),
        }
    }
}

/// A bucket (one configuration), cheap to clone.
#[derive(Clone)]
pub struct S3Store {
    store: Arc<AmazonS3>,
    config: S3Config,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("config", &self.config)
            .finish()
    }
}

impl S3Store {
    /// The (cached) client of `config`.
    pub fn open(config: &S3Config) -> Result<S3Store, S3Error> {
        let mut clients = CLIENTS.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(store) = clients.get(config) {
            return Ok(S3Store {
                store: Arc::clone(store),
                config: config.clone(),
            });
        }
        let store = Arc::new(config.build()?);
        if clients.len() >= MAX_CACHED_CLIENTS {
            clients.clear();
        }
        clients.insert(config.clone(), Arc::clone(&store));
        Ok(S3Store {
            store,
            config: config.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &S3Config {
        &self.config
    }

    /// Uploads the local file `path` as `key`; returns once S3 has the whole object.
    pub async fn put_file(&self, key: &str, path: &Path) -> Result<(), S3Error> {
        let (store, location, path) = (
            Arc::clone(&self.store),
            ObjectPath::from(key),
            path.to_path_buf(),
        );
        on_runtime(async move { put_file(&store, &location, &path).await }).await
    }

    /// [`S3Store::put_file`] from a thread outside any async runtime (the writer thread).
    pub fn put_file_blocking(&self, key: &str, path: &Path) -> Result<(), S3Error> {
        let (store, location, path) = (
            Arc::clone(&self.store),
            ObjectPath::from(key),
            path.to_path_buf(),
        );
        blocking(async move { put_file(&store, &location, &path).await })
    }

    /// Stores `bytes` as `key`.
    pub async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<(), S3Error> {
        let (store, location) = (Arc::clone(&self.store), ObjectPath::from(key));
        on_runtime(async move {
            store.put(&location, PutPayload::from(bytes)).await?;
            Ok(())
        })
        .await
    }

    /// The object's size and time, `None` when it does not exist.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, S3Error> {
        let (store, location) = (Arc::clone(&self.store), ObjectPath::from(key));
        on_runtime(bounded(
            async move {
                match store.head(&location).await {
                    Ok(meta) => Ok(Some(ObjectInfo::from(meta))),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(err) => Err(S3Error::from(err)),
                }
            },
            OP_TIMEOUT,
        ))
        .await
    }

    /// The bytes `range` of `key` (at most [`READ_CHUNK`] per call is what callers ask).
    pub async fn get_range(
        &self,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes, S3Error> {
        let (store, location) = (Arc::clone(&self.store), ObjectPath::from(key));
        on_runtime(async move {
            let options = GetOptions {
                range: Some(GetRange::Bounded(range)),
                ..GetOptions::default()
            };
            let result = store.get_opts(&location, options).await?;
            Ok(result.bytes().await?)
        })
        .await
    }

    /// Streams bytes `start..start + count` of `key` as ranged reads of [`READ_CHUNK`].
    pub fn stream(
        &self,
        key: &str,
        start: u64,
        count: u64,
    ) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        let store = self.clone();
        let key = key.to_string();
        let end = start + count;
        futures::stream::try_unfold(start, move |at| {
            let (store, key) = (store.clone(), key.clone());
            async move {
                if at >= end {
                    return Ok(None);
                }
                let upto = (at + READ_CHUNK).min(end);
                let bytes = store
                    .get_range(&key, at..upto)
                    .await
                    .map_err(std::io::Error::other)?;
                if bytes.is_empty() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "stored object shorter than its size",
                    ));
                }
                let next = at + bytes.len() as u64;
                Ok(Some((bytes, next)))
            }
        })
    }

    /// Downloads `key` into the local file `path` (created or truncated).
    pub async fn download_to(&self, key: &str, path: &Path) -> Result<u64, S3Error> {
        let size = self
            .head(key)
            .await?
            .ok_or_else(|| S3Error::NotFound(format!("{key} not found")))?
            .size;
        let mut file = tokio::fs::File::create(path).await?;
        let mut at = 0;
        while at < size {
            let upto = (at + READ_CHUNK).min(size);
            let bytes = self.get_range(key, at..upto).await?;
            if bytes.is_empty() {
                return Err(S3Error::Other(format!("{key} is shorter than its size")));
            }
            tokio::io::AsyncWriteExt::write_all(&mut file, &bytes).await?;
            at += bytes.len() as u64;
        }
        file.sync_all().await?;
        Ok(size)
    }

    /// Deletes `key` (deleting a missing object is no error, as in S3).
    pub async fn delete(&self, key: &str) -> Result<(), S3Error> {
        let (store, location) = (Arc::clone(&self.store), ObjectPath::from(key));
        on_runtime(bounded(
            async move {
                match store.delete(&location).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(err) => Err(S3Error::from(err)),
                }
            },
            OP_TIMEOUT,
        ))
        .await
    }

    /// Every object under `prefix` (a key prefix ending at a `/` boundary; `""`: the whole
    /// bucket), recursively.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, S3Error> {
        let store = Arc::clone(&self.store);
        let prefix = (!prefix.is_empty()).then(|| ObjectPath::from(prefix));
        on_runtime(async move {
            use futures::TryStreamExt;
            let items: Vec<object_store::ObjectMeta> =
                store.list(prefix.as_ref()).try_collect().await?;
            Ok(items.into_iter().map(ObjectInfo::from).collect())
        })
        .await
    }

    /// The objects directly at the bucket's root (no `/` in their key).
    pub async fn list_root(&self) -> Result<Vec<ObjectInfo>, S3Error> {
        let store = Arc::clone(&self.store);
        on_runtime(bounded(
            async move {
                let listing = store.list_with_delimiter(None).await?;
                Ok(listing.objects.into_iter().map(ObjectInfo::from).collect())
            },
            OP_TIMEOUT,
        ))
        .await
    }

    /// The connection test of `POST /api/settings/test/s3`, as the reference does it: upload a
    /// small object under a random prefix, then delete it. The error text is the reference's.
    pub async fn test(&self) -> Result<(), String> {
        let key = format!(
            "pb_settings_test_{}/test.txt",
            crate::files::names::random_part(5)
        );
        let (store, location) = (Arc::clone(&self.store), ObjectPath::from(key.as_str()));
        let result = on_runtime(bounded(
            async move {
                store
                    .put(&location, PutPayload::from_static(b"test"))
                    .await
                    .map_err(|err| {
                        S3Error::Other(format!(
                            "failed to upload a test file: [key: {location}] {err}"
                        ))
                    })?;
                store.delete(&location).await.map_err(|err| {
                    S3Error::Other(format!(
                        "failed to delete a test file: [key: {location}] {err}"
                    ))
                })?;
                Ok(())
            },
            OP_TIMEOUT,
        ))
        .await;
        result.map_err(|err| match err {
            S3Error::Timeout(_) => format!("failed to upload a test file: [key: {key}] {err}"),
            other => other.to_string(),
        })
    }
}

async fn put_file(store: &AmazonS3, location: &ObjectPath, path: &Path) -> Result<(), S3Error> {
    let len = tokio::fs::metadata(path).await?.len();
    if len <= SINGLE_PUT_MAX {
        let bytes = tokio::fs::read(path).await?;
        store.put(location, PutPayload::from(bytes)).await?;
        return Ok(());
    }
    let upload = store.put_multipart(location).await?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
    let copied = async {
        let mut file = tokio::fs::File::open(path).await?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
            let read = file.read(&mut buf).await?;
            if read == 0 {
                return Ok::<_, S3Error>(());
            }
            writer.write(&buf[..read]);
        }
    }
    .await;
    match copied {
        Ok(()) => {
            writer.finish().await?;
            Ok(())
        }
        Err(err) => {
            let _ = writer.abort().await;
            Err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn config_from_settings_only_when_enabled() {
        let settings = json!({"s3": {"enabled": false, "bucket": "b"}, "backups": {"s3": {
            "enabled": true, "bucket": "b", "region": "r", "endpoint": "http://h:9000/",
            "accessKey": "k", "secret": "s", "forcePathStyle": false}}});
        assert!(S3Config::enabled(&settings, FILES_POINTER).is_none());
        let config = S3Config::enabled(&settings, BACKUPS_POINTER).expect("enabled");
        assert_eq!(config.client_endpoint(), "http://b.h:9000");
        assert!(
            !format!("{config:?}").contains("\"s\""),
            "no secret in Debug"
        );
        let path_style = S3Config {
            force_path_style: true,
            ..config
        };
        assert_eq!(path_style.client_endpoint(), "http://h:9000");
    }
}
