//! Protocol-level errors: what the decoder reports, and the codes a response
//! carries when a frame could not be executed at all.

use thiserror::Error;

/// Why bytes could not be decoded into a frame or message.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the header or declared body.
    #[error("frame truncated")]
    Truncated,
    /// The magic number is wrong.
    #[error("bad frame magic")]
    BadMagic,
    /// The reserved header field is not zero.
    #[error("reserved header field is not zero")]
    ReservedNonZero,
    /// Flag bits this version does not define.
    #[error("unknown header flags {0:#x}")]
    UnknownFlags(u16),
    /// Body longer than [`crate::limits::MAX_BODY_LEN`].
    #[error("body length {0} exceeds the limit")]
    BodyTooLong(u32),
    /// A stream record longer than [`crate::limits::MAX_STREAM_RECORD_LEN`].
    #[error("stream record length {0} exceeds the limit")]
    RecordTooLong(u32),
    /// More bulk segments than [`crate::limits::MAX_BULK_PER_FRAME`].
    #[error("too many bulk segments in one frame")]
    TooManyBulk,
    /// More frames than [`crate::limits::MAX_FRAMES_PER_CHAIN`].
    #[error("too many frames in one chain")]
    TooManyFrames,
    /// Opcode number not defined by this version.
    #[error("unknown opcode {0:#06x}")]
    UnknownOpcode(u16),
    /// The bincode body did not decode, or had trailing bytes.
    #[error("malformed body: {0}")]
    Body(String),
    /// A decoded value breaks a semantic limit (list too long, bad dimension).
    #[error("value out of range: {0}")]
    OutOfRange(&'static str),
    /// A device header with an unknown op, a ragged or oversized table, or
    /// descriptor counts that cannot describe a chain.
    #[error("bad device header")]
    BadDeviceHeader,
}

/// The code carried in a response's status field when
/// [`crate::FLAG_PROTOCOL_ERROR`] is set. Numbers are stable.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum ProtocolError {
    /// The frame or its body could not be decoded.
    #[error("malformed message")]
    Malformed = 1,
    /// The header's version is not the one negotiated.
    #[error("protocol version mismatch")]
    VersionMismatch = 2,
    /// The opcode is unknown or not allowed on this queue.
    #[error("unsupported opcode")]
    UnsupportedOpcode = 3,
    /// The request names bulk segments the chain does not carry, or a segment
    /// lies outside guest memory.
    #[error("bad bulk descriptor")]
    BadDescriptor = 4,
    /// A per-session limit (objects, memory, in-flight bytes) was hit.
    #[error("session limit exceeded")]
    LimitExceeded = 5,
    /// An API request arrived before a session was opened.
    #[error("no session open")]
    NoSession = 6,
    /// The request's API family has no executor in this daemon.
    #[error("API not available on this daemon")]
    ApiUnavailable = 7,
    /// The daemon failed internally; the session may continue.
    #[error("internal daemon error")]
    Internal = 8,
}

impl ProtocolError {
    /// Maps a wire code back to the enum; unknown codes become `Internal`.
    pub fn from_code(code: i32) -> Self {
        match code {
            1 => Self::Malformed,
            2 => Self::VersionMismatch,
            3 => Self::UnsupportedOpcode,
            4 => Self::BadDescriptor,
            5 => Self::LimitExceeded,
            6 => Self::NoSession,
            7 => Self::ApiUnavailable,
            _ => Self::Internal,
        }
    }

    /// The stable wire code.
    pub fn code(self) -> i32 {
        self as i32
    }
}
