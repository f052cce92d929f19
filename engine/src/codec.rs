//! Commit payload encoding: a one-byte version tag followed by the versioned body.
//!
//! 1. Version 1 is bincode (fixed-int little-endian) of [`Commit`].
//! 2. Decoding never allocates more than the payload length allows (bincode's limit).
//! 3. An unknown version is [`Error::FormatVersion`], not corruption.

use crate::commit::{Actor, Change, Commit};
use crate::error::{Error, Result};
use bincode::Options;

/// Current payload version.
pub(crate) const PAYLOAD_VERSION: u8 = 1;

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
    out.push(PAYLOAD_VERSION);
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
        1 => options(body.len() as u64 + 64)
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
}
