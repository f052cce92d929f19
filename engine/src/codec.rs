//! Commit payload encoding: a one-byte version tag followed by the versioned body.
//!
//! 1. Version 1 is bincode (fixed-int little-endian) of [`Commit`]. Version 2 is the same
//!    encoding, used exactly when the commit has a [`Change::FilesChanged`] (which version 1
//!    cannot express), so logs without files stay readable by older binaries. Version 3 is
//!    the same encoding again, used exactly when the commit has a [`Change::Redacted`].
//! 2. Decoding never allocates more than the payload length allows (bincode's limit).
//! 3. An unknown version is [`Error::FormatVersion`], not corruption.

use crate::commit::{Actor, Change, Commit};
use crate::error::{Error, Result};
use bincode::Options;

/// Current (highest) payload version.
pub(crate) const PAYLOAD_VERSION: u8 = 3;

/// Whether `version` is a payload version this build decodes (1, 2 and 3).
pub(crate) fn is_known_version(version: u8) -> bool {
    matches!(version, 1..=3)
}

/// The lowest payload version that expresses `commit` (2 for file changes, 3 for a
/// redaction).
fn version_of(commit: &Commit) -> u8 {
    commit
        .changes
        .iter()
        .map(|change| match change {
            Change::Redacted { .. } => 3,
            Change::FilesChanged { .. } => 2,
            _ => 1,
        })
        .max()
        .unwrap_or(1)
}

fn options(limit: u64) -> impl bincode::Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .with_limit(limit)
        .reject_trailing_bytes()
}

/// Encodes a commit into a payload.
pub fn encode_commit(commit: &Commit) -> Vec<u8> {
    let mut out = Vec::new();
    encode_commit_into(commit, &mut out);
    out
}

/// Appends a commit's payload to `out` (the same bytes [`encode_commit`] returns).
pub(crate) fn encode_commit_into(commit: &Commit, out: &mut Vec<u8>) {
    out.push(version_of(commit));
    options(u64::MAX)
        .serialize_into(&mut *out, commit)
        .expect("serializing into a Vec cannot fail");
}

/// The payload length [`encode_commit`] gives for a commit by `actor` with `changes` (seq and
/// timestamp are fixed-width, so their values do not matter), computed without encoding.
pub(crate) fn payload_len(actor: &Actor, changes: &[Change]) -> u64 {
    // version byte, seq, timestamp, actor, changes (a u64 length and the elements).
    let actor = options(u64::MAX)
        .serialized_size(actor)
        .unwrap_or(u64::MAX / 4);
    let changes = options(u64::MAX)
        .serialized_size(changes)
        .unwrap_or(u64::MAX / 4);
    1 + 8 + 8 + actor + changes
}

/// Payload bytes one change adds to its commit.
pub(crate) fn change_len(change: &Change) -> u64 {
    options(u64::MAX)
        .serialized_size(change)
        .unwrap_or(u64::MAX / 4)
}

/// Decodes a payload. `Err(reason)` for a malformed body.
pub fn decode_commit(payload: &[u8]) -> Result<Commit, DecodeError> {
    let (&version, body) = payload
        .split_first()
        .ok_or(DecodeError::Malformed("empty payload".to_string()))?;
    match version {
        1..=3 => options(body.len() as u64 + 64)
            .deserialize(body)
            .map_err(|err| DecodeError::Malformed(err.to_string())),
        other => Err(DecodeError::Version(other)),
    }
}

/// Why a payload did not decode.
#[derive(Debug)]
pub enum DecodeError {
    /// Unknown payload version.
    Version(u8),
    /// Bytes that are not a commit.
    Malformed(String),
}

impl DecodeError {
    pub(crate) fn into_error(self, segment: &std::path::Path, offset: u64) -> Error {
        match self {
            DecodeError::Version(found) => Error::FormatVersion {
                found: u32::from(found),
                supported: u32::from(PAYLOAD_VERSION),
            },
            DecodeError::Malformed(reason) => Error::Corrupt {
                segment: segment.to_path_buf(),
                offset,
                reason: format!("payload does not decode: {reason}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    #[test]
    fn payload_len_matches_the_encoding() {
        let changes = vec![
            Change::RecordCreated {
                collection_id: "c".into(),
                id: "r1".into(),
                values: vec![
                    ("title".into(), Value::from("hello")),
                    ("n".into(), Value::Int(3)),
                ],
            },
            Change::ParamSet {
                key: "k".into(),
                value: None,
            },
        ];
        for actor in [Actor::System, Actor::Superuser("abc".into())] {
            let commit = Commit {
                seq: 7,
                timestamp_ms: 1234,
                actor: actor.clone(),
                changes: changes.clone(),
            };
            let encoded = encode_commit(&commit).len() as u64;
            assert_eq!(payload_len(&actor, &changes), encoded);
            let empty = payload_len(&actor, &[]);
            let sum: u64 = changes.iter().map(change_len).sum();
            assert_eq!(empty + sum, encoded);
        }
    }

    #[test]
    fn file_changes_use_version_2_and_round_trip() {
        let plain = Commit {
            seq: 1,
            timestamp_ms: 5,
            actor: Actor::System,
            changes: vec![Change::ParamSet {
                key: "k".into(),
                value: Some("1".into()),
            }],
        };
        assert_eq!(encode_commit(&plain)[0], 1);
        let mut with_files = plain.clone();
        with_files.changes.push(Change::FilesChanged {
            collection_id: "c".into(),
            record_id: "r".into(),
            added: vec!["a_0123456789.png".into()],
            removed: vec!["b_0123456789.txt".into()],
        });
        let bytes = encode_commit(&with_files);
        assert_eq!(bytes[0], 2);
        assert_eq!(
            payload_len(&with_files.actor, &with_files.changes),
            bytes.len() as u64
        );
        let decoded = decode_commit(&bytes).expect("decodes");
        assert_eq!(decoded, with_files);
        assert_eq!(decode_commit(&encode_commit(&plain)).expect("v1"), plain);
        let mut unknown = bytes.clone();
        unknown[0] = 4;
        assert!(matches!(
            decode_commit(&unknown),
            Err(DecodeError::Version(4))
        ));
    }
}
