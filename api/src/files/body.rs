//! The request body of a record write (create/update): JSON, urlencoded or multipart, as one
//! object plus the uploaded files.
//!
//! Invariants:
//! 1. JSON and urlencoded bodies go through `request::parse_body` under the server's
//!    body limit, exactly as before (same answers).
//! 2. A multipart body is streamed ([`multipart::read`]): its text parts are coerced by
//!    `request::form_body` (so `@jsonPayload` and repeated keys match the other
//!    encodings), its files land in temp files. The limit is the server's body limit plus the
//!    collection's file capacity ([`fields::body_limit`]); a collection without file fields
//!    writes no temp files at all.

use crate::error::{ApiError, ApiResult};
use crate::files::fields::{self, FileFieldSpec};
use crate::files::multipart::{self, Upload};
use crate::files::storage::LocalStorage;
use crate::model::Collection;
use crate::state::AppState;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::StatusCode;
use serde_json::{Map, Value};
use std::sync::Arc;

/// A decoded record write body.
#[derive(Debug, Default)]
pub struct RecordBody {
    /// The fields (as a JSON body would give them).
    pub body: Map<String, Value>,
    /// Uploaded files (multipart only), not yet bound to fields.
    pub uploads: Vec<Upload>,
}

/// The file fields of a collection.
pub fn file_specs(collection: &Collection) -> Vec<FileFieldSpec> {
    collection
        .fields
        .iter()
        .filter_map(|field| FileFieldSpec::from_json(field.json()))
        .collect()
}

fn too_large() -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "Request entity too large.")
}

impl FromRequest<Arc<AppState>> for RecordBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &Arc<AppState>) -> ApiResult<Self> {
        let content_type = request
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_string();
        let base = state.options.body_limit_bytes;
        if !multipart::is_multipart(&content_type) {
            let headers = request.headers().clone();
            // The `Bytes` extractor applies the router's `DefaultBodyLimit`, as before.
            let bytes = axum::body::Bytes::from_request(request, state)
                .await
                .map_err(|rejection| {
                    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        too_large()
                    } else {
                        ApiError::bad_request_default()
                    }
                })?;
            let body = crate::request::parse_body(&headers, &bytes)?;
            return Ok(RecordBody {
                body,
                uploads: Vec::new(),
            });
        }
        let (mut parts, body) = request.into_parts();
        let collection = RawPathParams::from_request_parts(&mut parts, state)
            .await
            .ok()
            .and_then(|params| {
                params
                    .iter()
                    .find(|(key, _)| *key == "c")
                    .map(|(_, value)| value.to_string())
            })
            .and_then(|name| state.schema().find(&name).cloned());
        let specs = collection.as_deref().map(file_specs).unwrap_or_default();
        let limits = multipart::Limits {
            max_total_bytes: fields::body_limit(base as u64, &specs),
            max_text_bytes: base as u64,
            ..multipart::Limits::default()
        };
        let storage = LocalStorage::new(state.engine.dir());
        let tmp = (!specs.is_empty()).then(|| storage.tmp_dir());
        let form = multipart::read(body.into_data_stream(), &content_type, tmp, &limits).await?;
        let body = crate::request::form_body(form.pairs)?;
        Ok(RecordBody {
            body,
            uploads: form.files,
        })
    }
}
