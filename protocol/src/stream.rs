//! Frames over a byte stream (unix socket, vsock): *records*.
//!
//! One record carries what one virtqueue chain carries: a batch of request
//! frames and their bulk data, or the responses to them. On a stream the
//! bulk bytes travel inline, right after the frame that names them.
//!
//! ```text
//! record header (16 bytes, little-endian)
//!  off size field
//!   0   4   magic     "VCSQ" (request record) or "VCSR" (response record)
//!   4   1   queue     0 = control queue, 1 = request queue (echoed)
//!   5   1   reserved  must be zero
//!   6   2   frames    number of frames in the record
//!   8   4   len       bytes of record body following this header
//!  12   4   reserved  must be zero
//!
//! request record body, `frames` times:
//!   frame header + body                          (see crate::header)
//!   in_bulk  times: u32 length, then that many bytes
//!   out_bulk times: u32 length the daemon is to fill
//!
//! response record body, `frames` times (one per answered request frame,
//! in order; frames after one that failed with a protocol error are not
//! answered, exactly as in a chain's response area):
//!   frame header + body, its out_bulk = the request's out_bulk
//!   out_bulk times: u32 length, then that many bytes (0 when the request failed)
//! ```
//!
//! Both peers process records strictly in order, so a guest may have
//! several request records in flight and match the responses by order.

use crate::error::DecodeError;
use crate::frame::{Frame, FrameIter};
use crate::header::{Header, HEADER_LEN};
use crate::limits::{
    MAX_BULK_PER_FRAME, MAX_FRAMES_PER_CHAIN, MAX_STREAM_BULK, MAX_STREAM_RECORD_LEN,
};
use crate::message::QueueClass;

/// Size of an encoded [`RecordHeader`].
pub const RECORD_HEADER_LEN: usize = 16;
/// Magic of a request record, `"VCSQ"` read as a little-endian u32.
pub const REQUEST_MAGIC: u32 = u32::from_le_bytes(*b"VCSQ");
/// Magic of a response record, `"VCSR"` read as a little-endian u32.
pub const RESPONSE_MAGIC: u32 = u32::from_le_bytes(*b"VCSR");
/// Bytes of a bulk length prefix.
const LEN_PREFIX: usize = 4;

/// Which way a record travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Guest → daemon.
    Request,
    /// Daemon → guest.
    Response,
}

impl Direction {
    fn magic(self) -> u32 {
        match self {
            Direction::Request => REQUEST_MAGIC,
            Direction::Response => RESPONSE_MAGIC,
        }
    }
}

/// A decoded, validated record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// The queue the record's frames belong on.
    pub queue: QueueClass,
    /// Number of frames in the record.
    pub frames: u16,
    /// Bytes of record body that follow the header.
    pub len: u32,
}

impl RecordHeader {
    /// Encodes the header for a record travelling in `dir`.
    pub fn encode(&self, dir: Direction) -> [u8; RECORD_HEADER_LEN] {
        let mut b = [0u8; RECORD_HEADER_LEN];
        b[0..4].copy_from_slice(&dir.magic().to_le_bytes());
        b[4] = match self.queue {
            QueueClass::Control => 0,
            QueueClass::Request => 1,
        };
        b[6..8].copy_from_slice(&self.frames.to_le_bytes());
        b[8..12].copy_from_slice(&self.len.to_le_bytes());
        b
    }

    /// Decodes and validates a header expected to travel in `dir`: magic,
    /// queue byte, reserved fields, the frame count against
    /// [`MAX_FRAMES_PER_CHAIN`] and the length against
    /// [`MAX_STREAM_RECORD_LEN`]. Nothing is allocated.
    pub fn decode(bytes: &[u8], dir: Direction) -> Result<Self, DecodeError> {
        let b: &[u8; RECORD_HEADER_LEN] = bytes
            .get(..RECORD_HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(DecodeError::Truncated)?;
        if u32::from_le_bytes([b[0], b[1], b[2], b[3]]) != dir.magic() {
            return Err(DecodeError::BadMagic);
        }
        let queue = match b[4] {
            0 => QueueClass::Control,
            1 => QueueClass::Request,
            _ => return Err(DecodeError::OutOfRange("record queue")),
        };
        if b[5] != 0 || b[12..16] != [0; 4] {
            return Err(DecodeError::ReservedNonZero);
        }
        let frames = u16::from_le_bytes([b[6], b[7]]);
        if usize::from(frames) > MAX_FRAMES_PER_CHAIN {
            return Err(DecodeError::TooManyFrames);
        }
        let len = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
        if len as usize > MAX_STREAM_RECORD_LEN {
            return Err(DecodeError::RecordTooLong(len));
        }
        Ok(RecordHeader { queue, frames, len })
    }
}

/// One request frame of a record with its inline bulk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamFrame<'a> {
    /// The frame (header and body).
    pub frame: Frame<'a>,
    /// The readable bulk segments it consumes, in order.
    pub input: Vec<&'a [u8]>,
    /// Lengths of the writable bulk segments it fills, in order.
    pub output: Vec<u32>,
}

/// A walk over a byte area: frames, length-prefixed segments.
struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn frame(&mut self) -> Result<Frame<'a>, DecodeError> {
        let frame = FrameIter::new(self.rest)
            .next()
            .ok_or(DecodeError::Truncated)??;
        let used = HEADER_LEN + frame.body.len();
        self.rest = self.rest.get(used..).ok_or(DecodeError::Truncated)?;
        Ok(frame)
    }

    fn len(&mut self) -> Result<u32, DecodeError> {
        let b = self.rest.get(..LEN_PREFIX).ok_or(DecodeError::Truncated)?;
        self.rest = self.rest.get(LEN_PREFIX..).ok_or(DecodeError::Truncated)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn bytes(&mut self, n: u32) -> Result<&'a [u8], DecodeError> {
        let n = n as usize;
        let b = self.rest.get(..n).ok_or(DecodeError::Truncated)?;
        self.rest = self.rest.get(n..).ok_or(DecodeError::Truncated)?;
        Ok(b)
    }
}

/// Adds `n` bulk bytes to `total`, failing past [`MAX_STREAM_BULK`].
fn add_bulk(total: &mut usize, n: u32) -> Result<(), DecodeError> {
    *total = total.saturating_add(n as usize);
    if *total > MAX_STREAM_BULK {
        return Err(DecodeError::OutOfRange(
            "record bulk exceeds MAX_STREAM_BULK",
        ));
    }
    Ok(())
}

/// Decodes a request record's body (`header.len` bytes) into its frames.
///
/// Every frame header must decode, the frame count must match the record
/// header, the bulk bytes (in and out together) must stay within
/// [`MAX_STREAM_BULK`], and the body must be consumed exactly. Frame bodies
/// are not decoded here; the session does that per frame, as for a chain.
pub fn decode_request_record<'a>(
    header: &RecordHeader,
    body: &'a [u8],
) -> Result<Vec<StreamFrame<'a>>, DecodeError> {
    if body.len() != header.len as usize {
        return Err(DecodeError::Truncated);
    }
    let mut cur = Cursor { rest: body };
    let mut frames = Vec::with_capacity(usize::from(header.frames));
    let mut bulk = 0usize;
    for _ in 0..header.frames {
        let frame = cur.frame()?;
        if frame.header.is_response() {
            return Err(DecodeError::OutOfRange("response flag on a request"));
        }
        let mut input = Vec::with_capacity(usize::from(frame.header.in_bulk));
        for _ in 0..frame.header.in_bulk {
            let n = cur.len()?;
            add_bulk(&mut bulk, n)?;
            input.push(cur.bytes(n)?);
        }
        let mut output = Vec::with_capacity(usize::from(frame.header.out_bulk));
        for _ in 0..frame.header.out_bulk {
            let n = cur.len()?;
            add_bulk(&mut bulk, n)?;
            output.push(n);
        }
        frames.push(StreamFrame {
            frame,
            input,
            output,
        });
    }
    if !cur.rest.is_empty() {
        return Err(DecodeError::Body(format!(
            "{} trailing bytes in record",
            cur.rest.len()
        )));
    }
    Ok(frames)
}

/// Why a chain could not be put into a request record.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// The concatenated frames do not decode.
    #[error("frames do not decode")]
    Frames(#[from] DecodeError),
    /// The frames name more or fewer bulk segments than were given.
    #[error("frames name {named} bulk segments, {given} given")]
    BulkCount {
        /// Segments the headers name.
        named: usize,
        /// Segments supplied.
        given: usize,
    },
    /// The record would exceed a stream limit.
    #[error("record too large for a stream: {0}")]
    TooLarge(&'static str),
}

fn seg_len(n: usize) -> Result<u32, EncodeError> {
    u32::try_from(n).map_err(|_| EncodeError::TooLarge("bulk segment over 4 GiB"))
}

/// Appends one request record to `out`: the concatenated request `frames`
/// (as for a chain's request area) with `bulk_in` and the `out_lens` of
/// the writable segments interleaved after the frames that name them.
/// Nothing is appended on error.
pub fn encode_request_record(
    out: &mut Vec<u8>,
    queue: QueueClass,
    frames: &[u8],
    bulk_in: &[&[u8]],
    out_lens: &[usize],
) -> Result<(), EncodeError> {
    let start = out.len();
    let r = encode_request_body(out, queue, frames, bulk_in, out_lens);
    if r.is_err() {
        out.truncate(start);
    }
    r
}

fn encode_request_body(
    out: &mut Vec<u8>,
    queue: QueueClass,
    frames: &[u8],
    bulk_in: &[&[u8]],
    out_lens: &[usize],
) -> Result<(), EncodeError> {
    let start = out.len();
    out.extend_from_slice(&[0u8; RECORD_HEADER_LEN]);
    let (mut ins, mut outs) = (bulk_in.iter(), out_lens.iter());
    let (mut n_frames, mut named_in, mut named_out, mut bulk) = (0usize, 0usize, 0usize, 0usize);
    for f in FrameIter::new(frames) {
        let f = f?;
        n_frames += 1;
        out.extend_from_slice(&f.header.encode());
        out.extend_from_slice(f.body);
        for _ in 0..f.header.in_bulk {
            named_in += 1;
            let b = ins.next().ok_or(EncodeError::BulkCount {
                named: named_in,
                given: bulk_in.len(),
            })?;
            bulk = bulk.saturating_add(b.len());
            out.extend_from_slice(&seg_len(b.len())?.to_le_bytes());
            out.extend_from_slice(b);
        }
        for _ in 0..f.header.out_bulk {
            named_out += 1;
            let n = *outs.next().ok_or(EncodeError::BulkCount {
                named: named_out,
                given: out_lens.len(),
            })?;
            bulk = bulk.saturating_add(n);
            out.extend_from_slice(&seg_len(n)?.to_le_bytes());
        }
    }
    if ins.next().is_some() || outs.next().is_some() {
        return Err(EncodeError::BulkCount {
            named: named_in + named_out,
            given: bulk_in.len() + out_lens.len(),
        });
    }
    if n_frames == 0 {
        return Err(EncodeError::TooLarge("a record needs at least one frame"));
    }
    if bulk > MAX_STREAM_BULK {
        return Err(EncodeError::TooLarge("bulk exceeds MAX_STREAM_BULK"));
    }
    finish_record(out, start, queue, n_frames, Direction::Request)
}

/// Writes the header of the record that starts at `start` in `out` (where
/// [`RECORD_HEADER_LEN`] placeholder bytes were reserved) now that its body
/// is complete.
fn finish_record(
    out: &mut [u8],
    start: usize,
    queue: QueueClass,
    frames: usize,
    dir: Direction,
) -> Result<(), EncodeError> {
    let len = out.len() - start - RECORD_HEADER_LEN;
    if len > MAX_STREAM_RECORD_LEN {
        return Err(EncodeError::TooLarge(
            "record exceeds MAX_STREAM_RECORD_LEN",
        ));
    }
    let frames = u16::try_from(frames)
        .ok()
        .filter(|&n| usize::from(n) <= MAX_FRAMES_PER_CHAIN)
        .ok_or(EncodeError::TooLarge("too many frames"))?;
    let h = RecordHeader {
        queue,
        frames,
        len: len as u32,
    };
    out[start..start + RECORD_HEADER_LEN].copy_from_slice(&h.encode(dir));
    Ok(())
}

/// Builds a response record frame by frame.
#[derive(Debug)]
pub struct ResponseRecord {
    start: usize,
    queue: QueueClass,
    frames: usize,
}

impl ResponseRecord {
    /// Starts a response record at the end of `out`.
    pub fn begin(out: &mut Vec<u8>, queue: QueueClass) -> Self {
        let start = out.len();
        out.extend_from_slice(&[0u8; RECORD_HEADER_LEN]);
        ResponseRecord {
            start,
            queue,
            frames: 0,
        }
    }

    /// Appends one encoded response frame (from
    /// [`crate::encode_response`]) and its writable segments. The frame's
    /// `out_bulk` is set to the number of segments. Frames beyond
    /// [`MAX_FRAMES_PER_CHAIN`] or more than [`MAX_BULK_PER_FRAME`]
    /// segments are refused (nothing appended).
    pub fn push(&mut self, out: &mut Vec<u8>, frame: &[u8], segments: &[&[u8]]) -> bool {
        let Ok(mut h) = Header::decode(frame) else {
            return false;
        };
        if self.frames >= MAX_FRAMES_PER_CHAIN
            || segments.len() > MAX_BULK_PER_FRAME
            || segments.iter().any(|s| u32::try_from(s.len()).is_err())
        {
            return false;
        }
        h.out_bulk = segments.len() as u16;
        out.extend_from_slice(&h.encode());
        out.extend_from_slice(frame.get(HEADER_LEN..).unwrap_or_default());
        for s in segments {
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s);
        }
        self.frames += 1;
        true
    }

    /// Frames appended so far.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Writes the record header. Fails (leaving `out` as it was before
    /// [`ResponseRecord::begin`]) if the record exceeds the stream limits.
    pub fn finish(self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let r = finish_record(
            out,
            self.start,
            self.queue,
            self.frames,
            Direction::Response,
        );
        if r.is_err() {
            out.truncate(self.start);
        }
        r
    }
}

/// A decoded response record: the response frames concatenated as in a
/// chain's response area, and every returned segment in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedResponse<'a> {
    /// Response frames, concatenated (decode with [`FrameIter`]).
    pub frames: Vec<u8>,
    /// Returned bulk segments, in frame order.
    pub segments: Vec<&'a [u8]>,
}

/// Decodes a response record's body (`header.len` bytes).
pub fn decode_response_record<'a>(
    header: &RecordHeader,
    body: &'a [u8],
) -> Result<DecodedResponse<'a>, DecodeError> {
    if body.len() != header.len as usize {
        return Err(DecodeError::Truncated);
    }
    let mut cur = Cursor { rest: body };
    let mut frames = Vec::new();
    let mut segments = Vec::new();
    for _ in 0..header.frames {
        let frame = cur.frame()?;
        if !frame.header.is_response() {
            return Err(DecodeError::OutOfRange("expected a response frame"));
        }
        frames.extend_from_slice(&frame.header.encode());
        frames.extend_from_slice(frame.body);
        for _ in 0..frame.header.out_bulk {
            let n = cur.len()?;
            segments.push(cur.bytes(n)?);
        }
    }
    if !cur.rest.is_empty() {
        return Err(DecodeError::Body(format!(
            "{} trailing bytes in record",
            cur.rest.len()
        )));
    }
    Ok(DecodedResponse { frames, segments })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::opencl::Empty;
    use crate::{encode_request, encode_response, Outcome, Request, Response};

    fn ping(out: &mut Vec<u8>, id: u64, ins: u16, outs: u16) {
        encode_request(out, id, 0, &Request::Ping(Empty {}), ins, outs).unwrap();
    }

    #[test]
    fn request_record_interleaves_bulk_after_its_frame() {
        let mut frames = Vec::new();
        ping(&mut frames, 1, 1, 0);
        ping(&mut frames, 2, 0, 1);
        let mut rec = Vec::new();
        encode_request_record(&mut rec, QueueClass::Request, &frames, &[b"abc"], &[7]).unwrap();
        let h = RecordHeader::decode(&rec, Direction::Request).unwrap();
        assert_eq!(h.frames, 2);
        assert_eq!(h.queue, QueueClass::Request);
        let got = decode_request_record(&h, &rec[RECORD_HEADER_LEN..]).unwrap();
        assert_eq!(got[0].input, vec![&b"abc"[..]]);
        assert!(got[0].output.is_empty());
        assert_eq!(got[1].output, vec![7]);
        assert_eq!(got[1].frame.header.request_id, 2);
        // A request record is not a response record.
        assert_eq!(
            RecordHeader::decode(&rec, Direction::Response),
            Err(DecodeError::BadMagic)
        );
    }

    #[test]
    fn bulk_counts_must_match() {
        let mut frames = Vec::new();
        ping(&mut frames, 1, 1, 0);
        let mut rec = vec![9];
        assert!(matches!(
            encode_request_record(&mut rec, QueueClass::Request, &frames, &[], &[]),
            Err(EncodeError::BulkCount { .. })
        ));
        assert!(matches!(
            encode_request_record(&mut rec, QueueClass::Request, &frames, &[b"a", b"b"], &[]),
            Err(EncodeError::BulkCount { .. })
        ));
        assert_eq!(rec, vec![9], "nothing appended on error");
    }

    #[test]
    fn response_record_round_trips() {
        let mut out = Vec::new();
        let mut rec = ResponseRecord::begin(&mut out, QueueClass::Control);
        let mut f = Vec::new();
        encode_response(&mut f, 5, 3, &Outcome::Ok(Response::Ping(Empty {})));
        assert!(rec.push(&mut out, &f, &[b"xy", b""]));
        f.clear();
        encode_response(&mut f, 6, 3, &Outcome::Native(-5));
        assert!(rec.push(&mut out, &f, &[]));
        rec.finish(&mut out).unwrap();
        let h = RecordHeader::decode(&out, Direction::Response).unwrap();
        let d = decode_response_record(&h, &out[RECORD_HEADER_LEN..]).unwrap();
        assert_eq!(d.segments, vec![&b"xy"[..], &b""[..]]);
        let ids: Vec<u64> = FrameIter::new(&d.frames)
            .map(|f| f.unwrap().header.request_id)
            .collect();
        assert_eq!(ids, vec![5, 6]);
    }

    #[test]
    fn oversized_declarations_are_refused_before_allocating() {
        let h = RecordHeader {
            queue: QueueClass::Request,
            frames: 1,
            len: u32::MAX,
        };
        assert_eq!(
            RecordHeader::decode(&h.encode(Direction::Request), Direction::Request),
            Err(DecodeError::RecordTooLong(u32::MAX))
        );
        let mut b = h.encode(Direction::Request);
        b[6..8].copy_from_slice(&u16::MAX.to_le_bytes());
        b[8..12].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(
            RecordHeader::decode(&b, Direction::Request),
            Err(DecodeError::TooManyFrames)
        );
        // An out-bulk length that alone exceeds the bulk bound.
        let mut frames = Vec::new();
        ping(&mut frames, 1, 0, 1);
        let mut body = frames.clone();
        body.extend_from_slice(&u32::MAX.to_le_bytes());
        let h = RecordHeader {
            queue: QueueClass::Request,
            frames: 1,
            len: body.len() as u32,
        };
        assert!(matches!(
            decode_request_record(&h, &body),
            Err(DecodeError::OutOfRange(_))
        ));
    }
}
