//! One frame on disk: `len: u32 LE | crc32(payload): u32 LE | payload`.
//!
//! Pure functions, no I/O.
//! 1. `len` counts payload bytes only and is at most [`FRAME_PAYLOAD_MAX`].
//! 2. The checksum is CRC-32 (IEEE) over the payload.
//! 3. A zero length is never written, so zero-filled space is recognisable.

/// Bytes before the payload.
pub(crate) const FRAME_HEADER_LEN: usize = 8;
/// Largest payload a frame may carry (64 MiB: a 32 MiB body plus generous overhead).
pub const FRAME_PAYLOAD_MAX: usize = 64 * 1024 * 1024;

/// Appends one frame holding `payload` to `out`.
pub(crate) fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    assert!(
        !payload.is_empty() && payload.len() <= FRAME_PAYLOAD_MAX,
        "payload length {} out of range",
        payload.len()
    );
    encode_frame_with(out, |out| out.extend_from_slice(payload)).expect("length checked above");
}

/// Appends one frame to `out` whose payload `write_payload` appends in place (no separate
/// payload buffer): a header slot first, then the payload, then the header filled in.
/// `Err(payload length)` when the payload is empty or larger than [`FRAME_PAYLOAD_MAX`]; `out`
/// then holds the partial frame and the caller discards it.
pub(crate) fn encode_frame_with(
    out: &mut Vec<u8>,
    write_payload: impl FnOnce(&mut Vec<u8>),
) -> Result<(), usize> {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER_LEN]);
    write_payload(out);
    let payload = &out[start + FRAME_HEADER_LEN..];
    if payload.is_empty() || payload.len() > FRAME_PAYLOAD_MAX {
        return Err(payload.len());
    }
    let len = u32::try_from(payload.len()).expect("FRAME_PAYLOAD_MAX fits in u32");
    let crc = crc32fast::hash(payload);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// What sits at the start of a byte slice.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameRead<'a> {
    /// A whole, checksum-valid frame and its total encoded length.
    Frame {
        /// The payload.
        payload: &'a [u8],
        /// Header plus payload length.
        frame_len: usize,
    },
    /// The slice ends inside the frame (or is empty): a possibly torn tail.
    Incomplete,
    /// The header is impossible (zero or oversized length).
    BadLength(u32),
    /// The checksum does not match; `frame_len` is the length the header claimed.
    BadChecksum {
        /// Header plus claimed payload length.
        frame_len: usize,
    },
}

/// Reads the frame at the start of `bytes`.
pub fn decode_frame(bytes: &[u8]) -> FrameRead<'_> {
    if bytes.len() < FRAME_HEADER_LEN {
        return FrameRead::Incomplete;
    }
    let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let crc = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    let len_usize = len as usize;
    if len == 0 || len_usize > FRAME_PAYLOAD_MAX {
        return FrameRead::BadLength(len);
    }
    let frame_len = FRAME_HEADER_LEN + len_usize;
    if bytes.len() < frame_len {
        return FrameRead::Incomplete;
    }
    let payload = &bytes[FRAME_HEADER_LEN..frame_len];
    if crc32fast::hash(payload) != crc {
        return FrameRead::BadChecksum { frame_len };
    }
    FrameRead::Frame { payload, frame_len }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip() {
        let mut buf = Vec::new();
        encode_frame(b"hello", &mut buf);
        encode_frame(b"world!", &mut buf);
        let FrameRead::Frame { payload, frame_len } = decode_frame(&buf) else {
            panic!("first frame");
        };
        assert_eq!(payload, b"hello");
        assert_eq!(
            decode_frame(&buf[frame_len..]),
            FrameRead::Frame {
                payload: b"world!",
                frame_len: 14
            }
        );
    }

    #[test]
    fn every_truncation_is_incomplete() {
        let mut buf = Vec::new();
        encode_frame(b"some payload", &mut buf);
        for cut in 0..buf.len() {
            assert_eq!(
                decode_frame(&buf[..cut]),
                FrameRead::Incomplete,
                "cut {cut}"
            );
        }
    }

    #[test]
    fn flipped_bit_is_detected() {
        let mut buf = Vec::new();
        encode_frame(b"some payload", &mut buf);
        for byte in FRAME_HEADER_LEN..buf.len() {
            let mut damaged = buf.clone();
            damaged[byte] ^= 0x10;
            assert!(
                matches!(decode_frame(&damaged), FrameRead::BadChecksum { .. }),
                "byte {byte}"
            );
        }
    }

    proptest! {
        #[test]
        fn decoding_random_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_frame(&bytes);
            let _ = crate::codec::decode_commit(&bytes);
        }

        #[test]
        fn round_trip_any_payload(payload in proptest::collection::vec(any::<u8>(), 1..512)) {
            let mut buf = Vec::new();
            encode_frame(&payload, &mut buf);
            prop_assert_eq!(decode_frame(&buf), FrameRead::Frame { payload: &payload, frame_len: payload.len() + 8 });
        }
    }
}
