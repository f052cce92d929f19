//! `POST /api/settings/test/s3` (superusers): checks that the S3 storage of record files
//! (`{"filesystem":"storage"}`) or of backups (`{"filesystem":"backups"}`) works, as the
//! reference does: upload a small object under a random prefix, then delete it.
//!
//! Answers (measured on PocketBase v0.40.6): 204 on success; 400
//! `Failed to test the S3 filesystem.` with `validation_required` / `validation_in_invalid` on
//! `filesystem`; 400 `Failed to test the S3 filesystem. Raw error: \n<cause>.` when that
//! storage is not enabled or the test fails (unreachable endpoint, missing bucket, bad keys).
//!
//! Invariant: the test is bounded in time (`files::s3::OP_TIMEOUT`), never a hang; the secret
//! never appears in an answer.

use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::files::s3::{S3Config, S3Store, BACKUPS_POINTER, FILES_POINTER};
use crate::state::AppState;
use serde_json::{Map, Value};

/// The message of every failed test.
pub const TEST_FAILED: &str = "Failed to test the S3 filesystem.";

fn raw(cause: &str) -> ApiError {
    ApiError::bad_request(&format!(
        "{TEST_FAILED} Raw error: \n{}.",
        cause.trim_end_matches('.')
    ))
}

/// Runs the test the body asks for.
pub async fn test(state: &AppState, body: &Map<String, Value>) -> ApiResult<()> {
    let filesystem = body.get("filesystem").and_then(Value::as_str).unwrap_or("");
    let pointer = match filesystem {
        "storage" => FILES_POINTER,
        "backups" => BACKUPS_POINTER,
        other => {
            let mut errors = FieldErrors::default();
            if other.is_empty() {
                errors.add(
                    "filesystem",
                    "validation_required",
                    "Cannot be blank.",
                    None,
                );
            } else {
                errors.add(
                    "filesystem",
                    "validation_in_invalid",
                    "Must be a valid value.",
                    None,
                );
            }
            return Err(errors.into_error(TEST_FAILED));
        }
    };
    let Some(config) = S3Config::enabled(&state.settings(), pointer) else {
        return Err(raw("S3 storage filesystem is not enabled"));
    };
    let bucket = S3Store::open(&config).map_err(|err| raw(&err.to_string()))?;
    bucket.test().await.map_err(|cause| raw(&cause))
}
