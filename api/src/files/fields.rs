//! File fields on a record write: naming the uploads, putting their names into the body (so
//! `field`, `field+`, `+field`, `field-` and `null` go through the same modifier code as every
//! other multi-value field), then checking the result and saying which files the commit adds
//! and removes. Pure functions: no I/O, no engine.
//!
//! PocketBase's rules (measured on v0.40.6):
//! - a file part named `field` replaces the value, but existing names sent in the same body
//!   are kept (`field=<existing name>` text part + a file part ⇒ both); `field+` appends,
//!   `+field` prepends; a single-file field keeps the last upload;
//! - a name in the final value that is neither stored on the record nor uploaded now ⇒
//!   `validation_invalid_file` `Invalid new files: [a b].` `{"invalidFiles":[…]}`;
//! - more names than `maxSelect` ⇒ `validation_too_many_files`;
//! - an upload larger than `maxSize` (0 ⇒ 5 MiB) ⇒ `validation_file_size_limit` naming the
//!   client's file name; a sniffed type not in `mimeTypes` (when set) ⇒
//!   `validation_invalid_mime_type` naming the stored name;
//! - `field-` with a name that is not stored is ignored.
//!
//! Invariant: every upload either ends up in exactly one field's `added` list (to be persisted
//! before the commit) or is dropped (its temp file removed); a name in `removed` was in the
//! old value and is not in the new one.

use crate::files::multipart::Upload;
use crate::files::{names, sniff};
use serde_json::{json, Map, Value};

/// Default `maxSize` (5 MiB) when the field says 0.
pub const DEFAULT_MAX_SIZE: u64 = 5 * 1024 * 1024;

/// The options of one file field.
#[derive(Debug, Clone, PartialEq)]
pub struct FileFieldSpec {
    /// Field name.
    pub name: String,
    /// Most files (≤ 1 ⇒ single).
    pub max_select: usize,
    /// Largest file in bytes (0 in the JSON ⇒ [`DEFAULT_MAX_SIZE`]).
    pub max_size: u64,
    /// Allowed sniffed types (empty ⇒ any).
    pub mime_types: Vec<String>,
    /// Served only with a file token that passes the view rule.
    pub protected: bool,
    /// Thumbnail sizes (`100x100`, …).
    pub thumbs: Vec<String>,
}

impl FileFieldSpec {
    /// Reads a field's JSON object (`{"type":"file","name":…,"maxSelect":…}`); `None` when it
    /// is not a file field.
    pub fn from_json(field: &Map<String, Value>) -> Option<Self> {
        if field.get("type").and_then(Value::as_str) != Some("file") {
            return None;
        }
        let strings = |key: &str| -> Vec<String> {
            field
                .get(key)
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        let max_size = field.get("maxSize").and_then(Value::as_u64).unwrap_or(0);
        Some(FileFieldSpec {
            name: field.get("name").and_then(Value::as_str)?.to_string(),
            max_select: field
                .get("maxSelect")
                .and_then(Value::as_u64)
                .unwrap_or(1)
                .max(1) as usize,
            max_size: if max_size == 0 {
                DEFAULT_MAX_SIZE
            } else {
                max_size
            },
            mime_types: strings("mimeTypes"),
            protected: field
                .get("protected")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            thumbs: strings("thumbs"),
        })
    }

    /// Whether the field holds several files.
    pub fn is_multi(&self) -> bool {
        self.max_select > 1
    }
}

/// The largest body a write to a collection with these file fields may send: the server's
/// JSON limit plus every file field at its fullest (measured: a collection with ~21 MB of
/// file capacity accepted a 40 MB body and refused 60 MB).
pub fn body_limit(base: u64, fields: &[FileFieldSpec]) -> u64 {
    fields.iter().fold(base, |total, field| {
        total.saturating_add(field.max_size.saturating_mul(field.max_select as u64))
    })
}

/// An upload with its stored name, bound to a file field.
#[derive(Debug)]
pub struct NamedUpload {
    /// The file field.
    pub field: String,
    /// The body key it was sent as (`field`, `field+`, `+field`).
    pub key: String,
    /// The stored name (sanitized, random suffix).
    pub stored_name: String,
    /// The bytes.
    pub upload: Upload,
}

/// The file field a part key names (`field`, `field+`, `+field`), after `prefix`
/// (batch sub-requests send `requests.<i>.field`).
fn field_of<'a>(key: &'a str, prefix: &str) -> Option<&'a str> {
    let key = key.strip_prefix(prefix)?;
    Some(
        key.strip_suffix('+')
            .or_else(|| key.strip_prefix('+'))
            .unwrap_or(key),
    )
}

/// Names the uploads that target one of `fields` (part key after `prefix`); the others are
/// dropped (temp files removed), as the reference ignores unknown keys.
pub fn name_uploads(
    uploads: Vec<Upload>,
    fields: &[FileFieldSpec],
    prefix: &str,
) -> Vec<NamedUpload> {
    uploads
        .into_iter()
        .filter_map(|upload| {
            let field = field_of(&upload.key, prefix)?;
            fields.iter().find(|spec| spec.name == field)?;
            let stored_name = names::stored_name(
                &upload.original_name,
                sniff::extension_for(&upload.mime).as_deref(),
            );
            Some(NamedUpload {
                field: field.to_string(),
                key: upload.key[prefix.len()..].to_string(),
                stored_name,
                upload,
            })
        })
        .collect()
}

/// Puts the uploads' stored names into `body` under the keys they were sent as, after any
/// names the body already gives for that key (kept existing files).
pub fn inject(body: &mut Map<String, Value>, uploads: &[NamedUpload]) {
    for upload in uploads {
        let name = Value::String(upload.stored_name.clone());
        match body.get_mut(&upload.key) {
            Some(Value::Array(items)) => items.push(name),
            Some(Value::String(text)) if !text.is_empty() => {
                let first = Value::String(std::mem::take(text));
                body.insert(upload.key.clone(), Value::Array(vec![first, name]));
            }
            _ => {
                body.insert(upload.key.clone(), Value::Array(vec![name]));
            }
        }
    }
}

/// The names a file field's value holds (`"a"`, `["a","b"]`, `""`, `null`).
pub fn names_of(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(text)) if !text.is_empty() => vec![text.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .filter(|text| !text.is_empty())
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// A field's validation error (PocketBase's code, message and params).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// Code, e.g. `validation_invalid_file`.
    pub code: &'static str,
    /// Message.
    pub message: String,
    /// Params, if the code has any.
    pub params: Option<Value>,
}

/// What a write does to one file field's files.
#[derive(Debug, Default)]
pub struct FieldFiles {
    /// Uploads now referenced by the record (persist before the commit).
    pub added: Vec<NamedUpload>,
    /// Names the record no longer references.
    pub removed: Vec<String>,
}

/// Checks a file field's final value (`new`, after modifiers) against its old names and this
/// request's uploads for it, and says which files are added and removed. Uploads not in the
/// final value are dropped.
pub fn resolve(
    spec: &FileFieldSpec,
    old: &[String],
    new: &[String],
    uploads: Vec<NamedUpload>,
) -> Result<FieldFiles, FieldError> {
    let invalid: Vec<&String> = new
        .iter()
        .filter(|name| {
            !old.contains(name) && !uploads.iter().any(|upload| &upload.stored_name == *name)
        })
        .collect();
    if !invalid.is_empty() {
        let list: Vec<&str> = invalid.iter().map(|name| name.as_str()).collect();
        return Err(FieldError {
            code: "validation_invalid_file",
            message: format!("Invalid new files: [{}].", list.join(" ")),
            params: Some(json!({ "invalidFiles": list })),
        });
    }
    if new.len() > spec.max_select {
        return Err(FieldError {
            code: "validation_too_many_files",
            message: format!("The maximum allowed files is {}.", spec.max_select),
            params: Some(json!({ "maxSelect": spec.max_select })),
        });
    }
    let added: Vec<NamedUpload> = uploads
        .into_iter()
        .filter(|upload| new.contains(&upload.stored_name))
        .collect();
    for upload in &added {
        if upload.upload.size > spec.max_size {
            return Err(FieldError {
                code: "validation_file_size_limit",
                message: format!(
                    "Failed to upload {} - the maximum allowed file size is {} bytes.",
                    upload.upload.original_name, spec.max_size
                ),
                params: Some(
                    json!({ "file": upload.upload.original_name, "maxSize": spec.max_size }),
                ),
            });
        }
        if !spec.mime_types.is_empty() && !sniff::allowed(&upload.upload.mime, &spec.mime_types) {
            return Err(FieldError {
                code: "validation_invalid_mime_type",
                message: format!(
                    "\"{}\" mime type must be one of: {}.",
                    upload.stored_name,
                    spec.mime_types.join(", ")
                ),
                params: None,
            });
        }
    }
    let removed = old
        .iter()
        .filter(|name| !new.contains(name))
        .cloned()
        .collect();
    Ok(FieldFiles { added, removed })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::multipart::TempFile;

    fn spec(max_select: usize) -> FileFieldSpec {
        FileFieldSpec::from_json(
            json!({"type":"file","name":"docs","maxSelect":max_select,"maxSize":100,
                   "mimeTypes":["image/png"],"protected":false,"thumbs":[]})
            .as_object()
            .expect("object"),
        )
        .expect("file field")
    }

    fn upload(dir: &std::path::Path, key: &str, name: &str, size: u64, mime: &str) -> Upload {
        let path = dir.join(names::random_part(12));
        std::fs::write(&path, b"x").expect("write");
        Upload {
            key: key.into(),
            original_name: name.into(),
            size,
            mime: mime.into(),
            temp: TempFile::new(path),
        }
    }

    #[test]
    fn spec_defaults() {
        let spec = FileFieldSpec::from_json(
            json!({"type":"file","name":"f","maxSelect":0,"maxSize":0})
                .as_object()
                .expect("o"),
        )
        .expect("file");
        assert_eq!(spec.max_select, 1);
        assert_eq!(spec.max_size, DEFAULT_MAX_SIZE);
        assert!(!spec.is_multi());
        assert!(FileFieldSpec::from_json(
            json!({"type":"text","name":"t"}).as_object().expect("o")
        )
        .is_none());
        assert_eq!(
            body_limit(1000, &[spec.clone(), spec]),
            1000 + 2 * DEFAULT_MAX_SIZE
        );
    }

    #[test]
    fn uploads_are_named_and_injected_after_kept_names() {
        let dir = tempfile::tempdir().expect("dir");
        let specs = [spec(3)];
        let uploads = vec![
            upload(dir.path(), "docs", "Red Dot.png", 10, "image/png"),
            upload(dir.path(), "docs+", "b.png", 10, "image/png"),
            upload(dir.path(), "other", "c.png", 10, "image/png"),
        ];
        let named = name_uploads(uploads, &specs, "");
        assert_eq!(named.len(), 2, "a part for no file field is dropped");
        assert!(named[0].stored_name.starts_with("red_dot_"));
        assert_eq!(named[1].key, "docs+");
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 2);
        let mut body = Map::new();
        body.insert("docs".into(), json!("kept_0123456789.png"));
        inject(&mut body, &named);
        assert_eq!(
            body["docs"],
            json!(["kept_0123456789.png", named[0].stored_name])
        );
        assert_eq!(body["docs+"], json!([named[1].stored_name]));
        // Batch sub-request keys.
        let named = name_uploads(
            vec![upload(
                dir.path(),
                "requests.1.docs",
                "z.png",
                1,
                "image/png",
            )],
            &specs,
            "requests.1.",
        );
        assert_eq!(named[0].key, "docs");
    }

    #[test]
    fn resolve_checks_as_the_reference() {
        let dir = tempfile::tempdir().expect("dir");
        let specs = [spec(2)];
        let old = vec!["old_0123456789.png".to_string()];
        // A name neither stored nor uploaded.
        let err = resolve(
            &specs[0],
            &old,
            &["nope.txt".into(), "x.txt".into()],
            Vec::new(),
        )
        .expect_err("invalid");
        assert_eq!(err.code, "validation_invalid_file");
        assert_eq!(err.message, "Invalid new files: [nope.txt x.txt].");
        assert_eq!(
            err.params,
            Some(json!({"invalidFiles":["nope.txt","x.txt"]}))
        );
        // Too many.
        let named = name_uploads(
            vec![
                upload(dir.path(), "docs", "a.png", 10, "image/png"),
                upload(dir.path(), "docs", "b.png", 10, "image/png"),
            ],
            &specs,
            "",
        );
        let mut new = old.clone();
        new.extend(named.iter().map(|u| u.stored_name.clone()));
        let err = resolve(&specs[0], &old, &new, named).expect_err("too many");
        assert_eq!(err.code, "validation_too_many_files");
        assert_eq!(err.params, Some(json!({"maxSelect":2})));
        // Too big: the client's name in the message.
        let named = name_uploads(
            vec![upload(dir.path(), "docs", "big.png", 101, "image/png")],
            &specs,
            "",
        );
        let new = vec![named[0].stored_name.clone()];
        let err = resolve(&specs[0], &old, &new, named).expect_err("size");
        assert_eq!(err.code, "validation_file_size_limit");
        assert_eq!(
            err.message,
            "Failed to upload big.png - the maximum allowed file size is 100 bytes."
        );
        // Sniffed type not allowed: the stored name in the message.
        let named = name_uploads(
            vec![upload(
                dir.path(),
                "docs",
                "fake.png",
                5,
                "text/plain; charset=utf-8",
            )],
            &specs,
            "",
        );
        let stored = named[0].stored_name.clone();
        let err = resolve(&specs[0], &old, std::slice::from_ref(&stored), named).expect_err("mime");
        assert_eq!(err.code, "validation_invalid_mime_type");
        assert_eq!(
            err.message,
            format!("\"{stored}\" mime type must be one of: image/png.")
        );
        // Replace: the old file removed, the new one added; an upload left out is dropped.
        let named = name_uploads(
            vec![
                upload(dir.path(), "docs", "a.png", 10, "image/png"),
                upload(dir.path(), "docs", "b.png", 10, "image/png"),
            ],
            &specs,
            "",
        );
        let keep = named[1].stored_name.clone();
        let files = resolve(&specs[0], &old, std::slice::from_ref(&keep), named).expect("ok");
        assert_eq!(files.added.len(), 1);
        assert_eq!(files.added[0].stored_name, keep);
        assert_eq!(files.removed, old);
        drop(files);
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("dir").count(),
            0,
            "every temp file dropped"
        );
    }
}
