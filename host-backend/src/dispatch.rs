//! Per-frame dispatch, shared by every transport: a virtqueue chain
//! ([`crate::chain`]) and a stream record ([`crate::stream`]) both end here
//! once their frames are split out and their bulk segments lent.
//!
//! The rules are the chain rules of [`protocol::frame`]: frames run in
//! order, one response each; the first frame that fails with a protocol
//! error is the last one answered; a native error does not stop the batch.

use protocol::{encode_response, Frame, Outcome, ProtocolError, QueueClass, HEADER_LEN};
use tracing::debug;

use crate::executor::Bulk;
use crate::limited_warn;
use crate::session::Session;

/// Where a transport puts response frames.
pub(crate) trait Responses {
    /// Bytes still free for response frames.
    fn room(&self) -> usize;
    /// Stores the encoded response `frame` (one complete response frame)
    /// for the request at position `index` of the batch, whose outcome was
    /// `ok` or not. Returns false when it did not fit (nothing stored).
    fn put(&mut self, index: usize, frame: &[u8], ok: bool) -> bool;
}

/// Encodes `outcome` and stores it; if it does not fit, stores a
/// header-only `BadDescriptor` error instead. Returns false when nothing fit.
fn respond<R: Responses>(
    out: &mut R,
    buf: &mut Vec<u8>,
    index: usize,
    request_id: u64,
    opcode: u16,
    outcome: &Outcome,
) -> bool {
    buf.clear();
    encode_response(buf, request_id, opcode, outcome);
    if buf.len() <= out.room() && out.put(index, buf, matches!(outcome, Outcome::Ok(_))) {
        return true;
    }
    buf.clear();
    let err = Outcome::Protocol(ProtocolError::BadDescriptor);
    encode_response(buf, request_id, opcode, &err);
    buf.len() <= out.room() && out.put(index, buf, false)
}

/// Runs `frames` (each with its bulk) through `session` in order, storing
/// one response per frame in `out`; stops after the first protocol error.
/// `buf` is scratch space for encoding.
pub(crate) fn run_frames<'f, 'b, R: Responses>(
    session: &mut Session,
    class: QueueClass,
    frames: impl Iterator<Item = (Frame<'f>, Bulk<'b>)>,
    out: &mut R,
    buf: &mut Vec<u8>,
) {
    for (index, (frame, bulk)) in frames.enumerate() {
        if out.room() < HEADER_LEN {
            debug!("response space full; remaining frames not executed");
            break;
        }
        let h = frame.header;
        let outcome = session.handle_frame(class, &frame, &bulk);
        session.counters_mut().frames += 1;
        if !respond(out, buf, index, h.request_id, h.opcode, &outcome) {
            break;
        }
        if let Outcome::Protocol(e) = outcome {
            session.counters_mut().protocol_errors += 1;
            limited_warn!(session.warn_limiter(), opcode = h.opcode, request_id = h.request_id, error = %e, "request failed; rest of batch skipped");
            break;
        }
    }
}

/// Answers a whole batch that cannot run (its frames do not decode, its
/// bulk does not add up) with one protocol-error response carrying the
/// first frame's request id and opcode when known.
pub(crate) fn reject<R: Responses>(
    session: &mut Session,
    first: Option<(u64, u16)>,
    e: ProtocolError,
    out: &mut R,
    buf: &mut Vec<u8>,
) {
    let (id, op) = first.unwrap_or((0, 0));
    limited_warn!(session.warn_limiter(), error = %e, request_id = id, "rejecting batch");
    session.counters_mut().protocol_errors += 1;
    respond(out, buf, 0, id, op, &Outcome::Protocol(e));
}
