//! Serving one stream connection (a unix socket, or a guest's vsock
//! connection): request records in, response records out, one session.
//!
//! Each record is read whole (its header is checked first, so a declared
//! length beyond [`protocol::limits::MAX_STREAM_RECORD_LEN`] is refused
//! before anything is allocated, and the body buffer grows only as bytes
//! arrive), checked like a chain, and its frames run through the shared
//! `dispatch`. In-bulk segments are lent to the executor in place
//! in the record buffer; out-bulk segments in one buffer per record, sent
//! back inline after their response frames.
//!
//! A record whose header does not decode cannot be skipped (its length is
//! unknown): it is answered with one protocol error and the connection is
//! closed. A record whose body does not decode is answered with one
//! protocol error and the connection carries on.

use std::io::{self, Read, Write};

use protocol::limits::RESPONSE_AREA_LEN;
use protocol::stream::{
    decode_request_record, Direction, RecordHeader, ResponseRecord, StreamFrame, RECORD_HEADER_LEN,
};
use protocol::{DecodeError, FrameIter, ProtocolError, QueueClass};
use tracing::debug;

use crate::dispatch::{self, Responses};
use crate::executor::Bulk;
use crate::limited_warn;
use crate::segment::{InSeg, OutSeg};
use crate::session::Session;

/// Why a stream connection ended.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// Reading or writing the connection failed.
    #[error("connection I/O failed")]
    Io(#[from] io::Error),
    /// The peer sent a record header that does not decode.
    #[error("bad record header")]
    BadRecord(#[source] DecodeError),
}

/// Reusable buffers of one connection.
#[derive(Debug, Default)]
struct Buffers {
    body: Vec<u8>,
    out_bulk: Vec<u8>,
    reply: Vec<u8>,
    frame: Vec<u8>,
}

/// Capacity a buffer may keep between records.
const KEEP: usize = 1 << 20;

impl Buffers {
    fn trim(&mut self) {
        for v in [&mut self.body, &mut self.out_bulk, &mut self.reply] {
            if v.capacity() > KEEP {
                *v = Vec::new();
            }
        }
    }
}

/// Serves `conn` with `session` until the peer closes it (a clean end,
/// `Ok`) or it fails. The session is left to the caller, which drops it
/// (freeing everything the guest made) when this returns.
pub fn serve<S: Read + Write>(conn: &mut S, session: &mut Session) -> Result<(), StreamError> {
    let mut bufs = Buffers::default();
    loop {
        let mut head = [0u8; RECORD_HEADER_LEN];
        if !read_header(conn, &mut head)? {
            return Ok(());
        }
        let header = match RecordHeader::decode(&head, Direction::Request) {
            Ok(h) => h,
            Err(e) => {
                bufs.reply.clear();
                reject_record(
                    session,
                    QueueClass::Request,
                    None,
                    &mut bufs.reply,
                    &mut bufs.frame,
                );
                conn.write_all(&bufs.reply)?;
                return Err(StreamError::BadRecord(e));
            }
        };
        bufs.body.clear();
        let got = Read::take(&mut *conn, u64::from(header.len)).read_to_end(&mut bufs.body)?;
        if got != header.len as usize {
            return Err(StreamError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        bufs.reply.clear();
        handle_record(session, &header, &mut bufs);
        conn.write_all(&bufs.reply)?;
        conn.flush()?;
        bufs.trim();
    }
}

/// Reads a record header; false on a clean end of stream before its first
/// byte.
fn read_header<S: Read>(conn: &mut S, head: &mut [u8]) -> Result<bool, StreamError> {
    let mut at = 0;
    while at < head.len() {
        match conn.read(&mut head[at..]) {
            Ok(0) if at == 0 => return Ok(false),
            Ok(0) => return Err(StreamError::Io(io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => at += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

/// Collects response frames for a record; the record is assembled once
/// every frame has run and no out-bulk segment is lent any more.
struct Collected {
    frames: Vec<u8>,
    /// (request index, end of its frame in `frames`, succeeded)
    marks: Vec<(usize, usize, bool)>,
}

impl Responses for Collected {
    fn room(&self) -> usize {
        RESPONSE_AREA_LEN.saturating_sub(self.frames.len())
    }

    fn put(&mut self, index: usize, frame: &[u8], ok: bool) -> bool {
        if frame.len() > self.room() {
            return false;
        }
        self.frames.extend_from_slice(frame);
        self.marks.push((index, self.frames.len(), ok));
        true
    }
}

/// Builds the one-error response record for a record that cannot run.
fn reject_record(
    session: &mut Session,
    queue: QueueClass,
    first: Option<(u64, u16)>,
    reply: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
) {
    let mut c = Collected {
        frames: Vec::new(),
        marks: Vec::new(),
    };
    dispatch::reject(session, first, ProtocolError::Malformed, &mut c, scratch);
    let mut rec = ResponseRecord::begin(reply, queue);
    rec.push(reply, &c.frames, &[]);
    // One header-only frame always fits a record.
    let _ = rec.finish(reply);
}

fn handle_record(session: &mut Session, header: &RecordHeader, bufs: &mut Buffers) {
    session.counters_mut().chains += 1;
    let Buffers {
        body,
        out_bulk,
        reply,
        frame: scratch,
    } = bufs;
    let frames = match decode_request_record(header, body) {
        Ok(f) => f,
        Err(e) => {
            debug!(cause = %e, "request record did not decode");
            // The first frame's id, when its header decoded.
            let first = FrameIter::new(body)
                .next()
                .and_then(Result::ok)
                .map(|f| (f.header.request_id, f.header.opcode));
            reject_record(session, header.queue, first, reply, scratch);
            return;
        }
    };
    if frames.is_empty() {
        // An empty record gets an empty answer, as an empty chain does.
        let rec = ResponseRecord::begin(reply, header.queue);
        let _ = rec.finish(reply);
        return;
    }

    // Out-bulk storage: one zeroed buffer, split in frame order.
    let total: usize = frames
        .iter()
        .flat_map(|f| f.output.iter())
        .map(|&n| n as usize)
        .sum();
    out_bulk.clear();
    out_bulk.resize(total, 0);
    let mut lent: Vec<(Vec<InSeg<'_>>, Vec<OutSeg<'_>>)> = Vec::with_capacity(frames.len());
    let mut spans: Vec<Vec<(usize, usize)>> = Vec::with_capacity(frames.len());
    let mut rest: &mut [u8] = out_bulk;
    let mut off = 0usize;
    for f in &frames {
        let input = f.input.iter().map(|s| InSeg::bytes(s)).collect();
        let mut output = Vec::with_capacity(f.output.len());
        let mut span = Vec::with_capacity(f.output.len());
        for &n in &f.output {
            let n = n as usize;
            // `total` is the sum of these lengths, so each fits.
            let k = n.min(rest.len());
            let (seg, tail) = std::mem::take(&mut rest).split_at_mut(k);
            rest = tail;
            output.push(OutSeg::bytes(seg));
            span.push((off, n));
            off += n;
        }
        lent.push((input, output));
        spans.push(span);
    }

    let mut c = Collected {
        frames: Vec::new(),
        marks: Vec::new(),
    };
    let work = frames.iter().zip(&lent).map(|(f, (i, o))| {
        (
            f.frame,
            Bulk {
                input: i,
                output: o,
            },
        )
    });
    dispatch::run_frames(session, header.queue, work, &mut c, scratch);
    drop(lent);
    assemble(header.queue, &frames, &spans, &c, out_bulk, reply);
}

/// Writes the response record: each answered frame followed by its
/// out-bulk segments (empty ones when the request failed).
fn assemble(
    queue: QueueClass,
    frames: &[StreamFrame<'_>],
    spans: &[Vec<(usize, usize)>],
    c: &Collected,
    out_bulk: &[u8],
    reply: &mut Vec<u8>,
) {
    let mut rec = ResponseRecord::begin(reply, queue);
    let mut start = 0;
    for &(index, end, ok) in &c.marks {
        let frame = c.frames.get(start..end).unwrap_or_default();
        start = end;
        let n = frames.get(index).map_or(0, |f| f.output.len());
        let segs: Vec<&[u8]> = match spans.get(index) {
            Some(span) if ok => span
                .iter()
                .map(|&(o, n)| out_bulk.get(o..o + n).unwrap_or_default())
                .collect(),
            _ => vec![&[][..]; n],
        };
        if !rec.push(reply, frame, &segs) {
            break;
        }
    }
    if let Err(e) = rec.finish(reply) {
        // Cannot happen within the protocol limits; answer rather than hang.
        limited_warn!(crate::log::daemon_limiter(), error = %e, "response record too large");
        let rec = ResponseRecord::begin(reply, queue);
        let _ = rec.finish(reply);
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
