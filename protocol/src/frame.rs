//! Frames: a header plus its body, and the concatenation of frames that one
//! virtqueue chain (or one stream write) carries.
//!
//! A request chain is laid out as
//!
//! ```text
//! [R] request area: frames, concatenated (exactly one descriptor, at most
//!                                         MAX_REQUEST_AREA_LEN bytes)
//! [R] in-bulk segments, in frame order  (frame i consumes its in_bulk of them)
//! [W] response area                     (exactly one descriptor; one
//!                                         response frame per request frame)
//! [W] out-bulk segments, in frame order (frame i fills its out_bulk of them)
//! ```
//!
//! The number of in-bulk descriptors must equal the sum of the frames'
//! `in_bulk`, and likewise for out-bulk; otherwise the chain is rejected. The
//! used length reported for a chain is the number of bytes written to the
//! response area. Over a byte stream (unix socket, vsock) the same frames
//! travel with the bulk bytes inline after each frame, grouped in records
//! (see [`crate::stream`]).

use crate::error::{DecodeError, ProtocolError};
use crate::header::*;
use crate::limits::{MAX_BODY_LEN, MAX_FRAMES_PER_CHAIN};
use crate::message::{Opcode, Request, Response};
use crate::session::PROTOCOL_VERSION;

/// One frame borrowed from a larger byte area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The validated header.
    pub header: Header,
    /// Exactly `header.body_len` bytes.
    pub body: &'a [u8],
}

/// Appends a request frame to `out`. `flags` may include [`FLAG_ASYNC`].
///
/// Returns the encoded body length, or `None` (nothing appended) if the body
/// exceeds [`MAX_BODY_LEN`].
pub fn encode_request(
    out: &mut Vec<u8>,
    request_id: u64,
    flags: u16,
    req: &Request,
    in_bulk: u16,
    out_bulk: u16,
) -> Option<usize> {
    let start = out.len();
    out.extend_from_slice(&[0u8; HEADER_LEN]);
    req.encode_body(out);
    let body_len = out.len() - start - HEADER_LEN;
    if body_len > MAX_BODY_LEN {
        out.truncate(start);
        return None;
    }
    let h = Header {
        version: PROTOCOL_VERSION,
        flags: flags & !FLAG_RESPONSE,
        opcode: req.opcode() as u16,
        in_bulk,
        out_bulk,
        request_id,
        body_len: body_len as u32,
        status: 0,
    };
    out[start..start + HEADER_LEN].copy_from_slice(&h.encode());
    Some(body_len)
}

/// What a response frame reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Success, with the decoded body.
    Ok(Response),
    /// The executor returned this native error code.
    Native(i32),
    /// The daemon could not execute the request at all.
    Protocol(ProtocolError),
}

/// Builds a response frame for `request`.
pub fn encode_response(out: &mut Vec<u8>, request_id: u64, opcode: u16, outcome: &Outcome) {
    let start = out.len();
    out.extend_from_slice(&[0u8; HEADER_LEN]);
    let (flags, status) = match outcome {
        Outcome::Ok(resp) => {
            resp.encode_body(out);
            (FLAG_RESPONSE, 0)
        }
        Outcome::Native(code) => (FLAG_RESPONSE, *code),
        Outcome::Protocol(e) => (FLAG_RESPONSE | FLAG_PROTOCOL_ERROR, e.code()),
    };
    let h = Header {
        version: PROTOCOL_VERSION,
        flags,
        opcode,
        in_bulk: 0,
        out_bulk: 0,
        request_id,
        body_len: (out.len() - start - HEADER_LEN) as u32,
        status,
    };
    out[start..start + HEADER_LEN].copy_from_slice(&h.encode());
}

/// Decodes a response frame into its [`Outcome`].
pub fn decode_response(frame: &Frame<'_>) -> Result<Outcome, DecodeError> {
    let h = &frame.header;
    if !h.is_response() {
        return Err(DecodeError::OutOfRange("expected a response frame"));
    }
    if h.flags & FLAG_PROTOCOL_ERROR != 0 {
        return Ok(Outcome::Protocol(ProtocolError::from_code(h.status)));
    }
    if h.status != 0 {
        return Ok(Outcome::Native(h.status));
    }
    Ok(Outcome::Ok(Response::decode(h.opcode, frame.body)?))
}

/// Iterates over the frames concatenated in `bytes`.
///
/// Yields at most [`MAX_FRAMES_PER_CHAIN`] frames; the next call after an
/// error returns `None`, so a malformed frame ends the walk.
#[derive(Debug)]
pub struct FrameIter<'a> {
    rest: &'a [u8],
    count: usize,
    failed: bool,
}

impl<'a> FrameIter<'a> {
    /// Starts walking `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        FrameIter {
            rest: bytes,
            count: 0,
            failed: false,
        }
    }
}

impl<'a> Iterator for FrameIter<'a> {
    type Item = Result<Frame<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let r = self.next_frame();
        self.failed = r.is_err();
        Some(r)
    }
}

impl<'a> FrameIter<'a> {
    fn next_frame(&mut self) -> Result<Frame<'a>, DecodeError> {
        if self.count >= MAX_FRAMES_PER_CHAIN {
            return Err(DecodeError::TooManyFrames);
        }
        let header = Header::decode(self.rest)?;
        let end = HEADER_LEN
            .checked_add(header.body_len as usize)
            .ok_or(DecodeError::Truncated)?;
        let body = self
            .rest
            .get(HEADER_LEN..end)
            .ok_or(DecodeError::Truncated)?;
        self.rest = self.rest.get(end..).unwrap_or_default();
        self.count += 1;
        Ok(Frame { header, body })
    }
}

/// Decodes a request frame's body, checking version and opcode.
pub fn decode_request(
    frame: &Frame<'_>,
    version: u16,
) -> Result<Request, (ProtocolError, DecodeError)> {
    let h = &frame.header;
    if h.is_response() {
        return Err((
            ProtocolError::Malformed,
            DecodeError::OutOfRange("response flag on a request"),
        ));
    }
    if h.version != version {
        return Err((
            ProtocolError::VersionMismatch,
            DecodeError::OutOfRange("version"),
        ));
    }
    if Opcode::from_u16(h.opcode).is_none() {
        return Err((
            ProtocolError::UnsupportedOpcode,
            DecodeError::UnknownOpcode(h.opcode),
        ));
    }
    Request::decode(h.opcode, frame.body).map_err(|e| (ProtocolError::Malformed, e))
}
