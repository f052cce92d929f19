//! The OAuth2 user's avatar for a `mappedFields.avatarURL` that names a file field: the image
//! is downloaded (bounded by the caller's limit and [`super::client::HTTP_TIMEOUT`]) into the
//! storage's temp dir and bound to the field as an upload named `avatar.<ext>`, so the
//! create validates and stores it like a multipart upload (a refused create stores nothing).
//!
//! Invariant: a failed download is not an error of the sign-in (the reference logs a
//! warning and creates the record without the avatar).

use crate::files::multipart::{TempFile, Upload};
use crate::files::sniff;
use crate::model::Collection;
use crate::state::AppState;
use serde_json::{Map, Value};

/// The downloaded image (its bytes; the temp file is written by [`bind`]).
pub struct Downloaded {
    bytes: Vec<u8>,
}

/// Downloads `url` (at most `max` bytes).
pub async fn download(url: &str, max: usize) -> Result<Downloaded, String> {
    let client = reqwest::Client::builder()
        .timeout(super::client::HTTP_TIMEOUT)
        .build()
        .map_err(|e| e.to_string())?;
    let mut response = client.get(url).send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("avatar answered {}", response.status()));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if bytes.len() + chunk.len() > max {
            return Err("avatar too large".into());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Downloaded { bytes })
}

/// Writes the image to a temp upload and binds it to `field` of the create body.
pub fn bind(
    state: &AppState,
    collection: &Collection,
    payload: Map<String, Value>,
    field: &str,
    image: Downloaded,
) -> (Map<String, Value>, crate::files::write::PendingUploads) {
    let storage = crate::files::storage::LocalStorage::new(state.engine.dir());
    let path = storage
        .tmp_dir()
        .join(format!("upload-{}", crate::files::names::random_part(20)));
    let written = std::fs::create_dir_all(storage.tmp_dir())
        .and_then(|()| std::fs::write(&path, &image.bytes));
    if let Err(err) = written {
        tracing::warn!(error = %err, "failed to store the OAuth2 avatar");
        return (payload, Default::default());
    }
    let mime = sniff::sniff(&image.bytes[..image.bytes.len().min(sniff::SNIFF_LEN)]);
    let ext = sniff::extension_for(&mime).unwrap_or_default();
    let upload = Upload {
        key: field.to_string(),
        original_name: format!("avatar{ext}"),
        size: image.bytes.len() as u64,
        mime,
        temp: TempFile::new(path),
    };
    crate::records::bind_uploads(
        state,
        collection,
        crate::files::body::RecordBody {
            body: payload,
            uploads: vec![upload],
        },
    )
}
