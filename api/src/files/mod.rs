//! Files (issue #15): multipart bodies, file fields, local storage and serving.
//!
//! - [`multipart`]: streaming `multipart/form-data` decoding to temp files, with caps;
//! - [`names`]: PocketBase's stored names (sanitized, random suffix);
//! - [`sniff`]: content types from the bytes, never from the client;
//! - [`fields`]: file field modifiers, validation, and which files a write adds/removes;
//! - [`storage`]: `<data dir>/storage/<collectionId>/<recordId>/<name>` or an S3 bucket
//!   (`settings.s3`), immutable files made durable before the commit that references them;
//! - [`s3`]: the S3 client (`object_store`), bounded calls on a dedicated runtime;
//! - [`serve_s3`]: serving files and thumbnails from S3;
//! - [`serve`]: the download response (ranges, conditional requests, PocketBase's headers);
//! - [`body`]: the record write body extractor (JSON, urlencoded or multipart + uploads);
//! - [`write`]: file fields inside the write command (persist, `FilesChanged`);
//! - [`retention`]: files released by schema changes;
//! - [`gc`]: the background start-up orphan sweep and compaction's sweep of the S3 bucket;
//! - [`thumbs`]: `?thumb=` thumbnails, generated once and cached;
//! - [`access`]: who may download a file (protected files, file tokens, the view rule).
//!
//! The log records which files each commit adds and removes (`engine::Change::FilesChanged`).

pub mod access;
pub mod body;
pub mod fields;
pub mod gc;
pub mod multipart;
pub mod names;
pub mod retention;
pub mod s3;
pub mod serve;
pub mod serve_s3;
pub mod sniff;
pub mod storage;
pub mod thumbs;
pub mod write;
