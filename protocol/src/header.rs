//! The fixed 32-byte little-endian frame header.
//!
//! ```text
//! off  size  field
//!  0    4    magic       "VCMP" (0x504d4356 LE)
//!  4    2    version     protocol version of the sender
//!  6    2    flags       FLAG_* bits
//!  8    2    opcode      Opcode number (the request's, echoed in its response)
//! 10    2    in_bulk     readable bulk segments this request consumes
//! 12    2    out_bulk    writable bulk segments this request fills
//! 14    2    reserved    must be zero
//! 16    8    request_id  chosen by the guest, echoed in the response
//! 24    4    body_len    bytes of bincode body following the header
//! 28    4    status      response: native error code (cl_int / CUresult) or
//!                        ProtocolError code when FLAG_PROTOCOL_ERROR is set
//! ```

use crate::error::DecodeError;
use crate::limits::{MAX_BODY_LEN, MAX_BULK_PER_FRAME};

/// Size of an encoded [`Header`].
pub const HEADER_LEN: usize = 32;
/// Frame magic, `"VCMP"` read as a little-endian u32.
pub const MAGIC: u32 = u32::from_le_bytes(*b"VCMP");

/// The frame is a response.
pub const FLAG_RESPONSE: u16 = 1 << 0;
/// The status field holds a [`crate::ProtocolError`] code, not a native one.
pub const FLAG_PROTOCOL_ERROR: u16 = 1 << 1;
/// The request is fire-and-forget: the guest does not wait on its result
/// and takes a failure as a sticky error at its next synchronizing call.
pub const FLAG_ASYNC: u16 = 1 << 2;
const KNOWN_FLAGS: u16 = FLAG_RESPONSE | FLAG_PROTOCOL_ERROR | FLAG_ASYNC;

/// A decoded frame header. Fields are validated by [`Header::decode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Protocol version of the sender.
    pub version: u16,
    /// `FLAG_*` bits.
    pub flags: u16,
    /// Raw opcode number; see [`crate::Opcode`].
    pub opcode: u16,
    /// Readable bulk segments consumed by this request.
    pub in_bulk: u16,
    /// Writable bulk segments filled by this request.
    pub out_bulk: u16,
    /// Guest-chosen id, echoed in the response.
    pub request_id: u64,
    /// Length of the body that follows.
    pub body_len: u32,
    /// Response status; zero in requests.
    pub status: i32,
}

impl Header {
    /// Encodes the header into its fixed 32-byte form.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        b[4..6].copy_from_slice(&self.version.to_le_bytes());
        b[6..8].copy_from_slice(&self.flags.to_le_bytes());
        b[8..10].copy_from_slice(&self.opcode.to_le_bytes());
        b[10..12].copy_from_slice(&self.in_bulk.to_le_bytes());
        b[12..14].copy_from_slice(&self.out_bulk.to_le_bytes());
        b[16..24].copy_from_slice(&self.request_id.to_le_bytes());
        b[24..28].copy_from_slice(&self.body_len.to_le_bytes());
        b[28..32].copy_from_slice(&self.status.to_le_bytes());
        b
    }

    /// Decodes and validates a header from the first [`HEADER_LEN`] bytes.
    ///
    /// Checks the magic, the reserved field, unknown flags, the body length
    /// against [`MAX_BODY_LEN`] and the bulk counts against
    /// [`MAX_BULK_PER_FRAME`]. The version is checked by the session, which
    /// knows what was negotiated.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let b: &[u8; HEADER_LEN] = bytes
            .get(..HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(DecodeError::Truncated)?;
        let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        if u32_at(0) != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        if u16_at(14) != 0 {
            return Err(DecodeError::ReservedNonZero);
        }
        let flags = u16_at(6);
        if flags & !KNOWN_FLAGS != 0 {
            return Err(DecodeError::UnknownFlags(flags));
        }
        let body_len = u32_at(24);
        if body_len as usize > MAX_BODY_LEN {
            return Err(DecodeError::BodyTooLong(body_len));
        }
        let (in_bulk, out_bulk) = (u16_at(10), u16_at(12));
        if in_bulk as usize > MAX_BULK_PER_FRAME || out_bulk as usize > MAX_BULK_PER_FRAME {
            return Err(DecodeError::TooManyBulk);
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&b[16..24]);
        Ok(Header {
            version: u16_at(4),
            flags,
            opcode: u16_at(8),
            in_bulk,
            out_bulk,
            request_id: u64::from_le_bytes(id),
            body_len,
            status: u32_at(28) as i32,
        })
    }

    /// True if this frame is a response.
    pub fn is_response(&self) -> bool {
        self.flags & FLAG_RESPONSE != 0
    }
}
