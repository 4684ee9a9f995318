//! Walking one direct-mode descriptor chain: split it into its areas, check
//! the request frames, hand them to `dispatch` with their bulk segments lent
//! in place, and write the responses back. The frame-running part
//! (`run_batch`) is shared with device mode ([`crate::device_chain`]).
//!
//! The layout (see [`protocol::frame`]):
//!
//! ```text
//! [R] request area      exactly one descriptor, <= MAX_REQUEST_AREA_LEN, copied out
//! [R] in-bulk segments  lent to the executor in place, never copied
//! [W] response area     exactly one descriptor
//! [W] out-bulk segments lent to the executor in place
//! ```
//!
//! Outcomes, from worst to best:
//! - The chain is *unusable* (no request or response area, areas outside
//!   guest memory, oversized request area, too many descriptors): nothing is
//!   executed and the chain completes with used length 0.
//! - The chain is *rejected* (a frame header does not decode, the bulk
//!   counts do not add up, a bulk segment lies outside guest memory): nothing
//!   is executed and the response area holds one protocol-error response,
//!   carrying the first frame's request id when its header decoded.
//! - Otherwise frames run in order, one response each. The first frame that
//!   fails with a protocol error ends the chain: its error response is the
//!   last one written, and later frames are neither executed nor answered.
//!   A native error (the runtime's own code) does not stop the chain.
//!
//! The used length is the number of bytes written to the response area.

use std::ops::Deref;

use protocol::limits::{MAX_DESCRIPTORS_PER_CHAIN, MAX_REQUEST_AREA_LEN, MAX_TRANSFER_LEN};
use protocol::{FrameIter, Header, ProtocolError, QueueClass, CONTROL_QUEUE};
use tracing::debug;
use virtio_queue::desc::split::Descriptor;
use virtio_queue::DescriptorChain;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, VolatileSlice};

use crate::dispatch::{self, Responses};
use crate::executor::Bulk;
use crate::limited_warn;
use crate::segment::{InSeg, OutSeg};
use crate::session::Session;

/// Why a chain could not be used at all (completed with used length 0).
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
pub enum ChainError {
    /// The chain has more than `MAX_DESCRIPTORS_PER_CHAIN` descriptors.
    #[error("chain has more than {MAX_DESCRIPTORS_PER_CHAIN} descriptors")]
    TooManyDescriptors,
    /// The chain is empty or starts with a writable descriptor.
    #[error("chain has no readable request area")]
    NoRequestArea,
    /// The request area exceeds `MAX_REQUEST_AREA_LEN`.
    #[error("request area of {0} bytes exceeds the limit")]
    RequestAreaTooLong(u32),
    /// The request area does not lie in guest memory.
    #[error("request area lies outside guest memory")]
    RequestAreaOutside,
    /// The chain has no writable descriptor for responses.
    #[error("chain has no writable response area")]
    NoResponseArea,
    /// The response area does not lie in guest memory.
    #[error("response area lies outside guest memory")]
    ResponseAreaOutside,
    /// A readable descriptor follows a writable one.
    #[error("readable descriptor after a writable one")]
    ReadableAfterWritable,
}

/// Buffers reused from chain to chain so that the hot path does not allocate.
#[derive(Debug, Default)]
pub struct Scratch {
    request: Vec<u8>,
    response: Vec<u8>,
    in_desc: Vec<Descriptor>,
    out_desc: Vec<Descriptor>,
}

/// Capacity a scratch buffer may keep between chains; a rare large request
/// must not pin its memory for the rest of the session.
const SCRATCH_KEEP: usize = 1 << 20;

impl Scratch {
    fn trim(&mut self) {
        for v in [&mut self.request, &mut self.response] {
            if v.capacity() > SCRATCH_KEEP {
                v.clear();
                v.shrink_to(SCRATCH_KEEP);
            }
        }
    }
}

/// The queue class a queue index accepts.
pub fn queue_class(queue_index: usize) -> QueueClass {
    if queue_index == CONTROL_QUEUE {
        QueueClass::Control
    } else {
        QueueClass::Request
    }
}

struct Areas {
    request: Descriptor,
    response: Descriptor,
}

/// Splits the chain into its areas; the bulk descriptors land in `scratch`.
fn split<I: Iterator<Item = Descriptor>>(
    descs: I,
    scratch: &mut Scratch,
) -> Result<Areas, ChainError> {
    scratch.in_desc.clear();
    scratch.out_desc.clear();
    let mut request = None;
    let mut response = None;
    for (i, d) in descs.enumerate() {
        if i >= MAX_DESCRIPTORS_PER_CHAIN {
            return Err(ChainError::TooManyDescriptors);
        }
        match (d.is_write_only(), request.is_some(), response.is_some()) {
            (false, false, _) => request = Some(d),
            (true, false, _) => return Err(ChainError::NoRequestArea),
            (false, true, false) => scratch.in_desc.push(d),
            (false, true, true) => return Err(ChainError::ReadableAfterWritable),
            (true, true, false) => response = Some(d),
            (true, true, true) => scratch.out_desc.push(d),
        }
    }
    Ok(Areas {
        request: request.ok_or(ChainError::NoRequestArea)?,
        response: response.ok_or(ChainError::NoResponseArea)?,
    })
}

/// Lends each bulk descriptor as a segment of `mem` (made by `wrap`), or
/// fails if one lies outside guest memory, spans regions, or exceeds
/// `MAX_TRANSFER_LEN`.
fn lend<'m, S>(
    mem: &'m GuestMemoryMmap,
    descs: &[Descriptor],
    wrap: impl Fn(VolatileSlice<'m>) -> S,
) -> Result<Vec<S>, ProtocolError> {
    descs
        .iter()
        .map(|d| {
            if u64::from(d.len()) > MAX_TRANSFER_LEN {
                return Err(ProtocolError::BadDescriptor);
            }
            mem.get_slice(d.addr(), d.len() as usize)
                .map(&wrap)
                .map_err(|_| ProtocolError::BadDescriptor)
        })
        .collect()
}

fn in_memory(mem: &GuestMemoryMmap, d: &Descriptor) -> bool {
    GuestMemoryBackend::check_range(mem, d.addr(), d.len() as usize)
}

/// Writes response frames into the response area, never past its end.
struct ResponseWriter<'m> {
    mem: &'m GuestMemoryMmap,
    addr: GuestAddress,
    cap: usize,
    written: usize,
}

impl Responses for ResponseWriter<'_> {
    fn room(&self) -> usize {
        self.cap - self.written
    }

    fn put(&mut self, _index: usize, frame: &[u8], _ok: bool) -> bool {
        if frame.len() > self.room() {
            return false;
        }
        let Some(at) = self.addr.0.checked_add(self.written as u64) else {
            return false;
        };
        if self.mem.write_slice(frame, GuestAddress(at)).is_err() {
            return false;
        }
        self.written += frame.len();
        true
    }
}

/// Processes one chain popped from queue `queue_index`; returns the used
/// length (bytes written to the response area).
pub fn process_chain<M>(
    chain: DescriptorChain<M>,
    queue_index: usize,
    session: &mut Session,
    scratch: &mut Scratch,
) -> u32
where
    M: Deref<Target = GuestMemoryMmap> + Clone,
{
    session.counters_mut().chains += 1;
    let mem: &GuestMemoryMmap = chain.memory();
    // `chain` is cloned for iteration so that `mem` stays borrowed from it.
    let areas = match split(chain.clone(), scratch) {
        Ok(a) => a,
        Err(e) => return unusable(session, queue_index, e),
    };
    let used = run(mem, &areas, queue_class(queue_index), session, scratch);
    scratch.trim();
    match used {
        Ok(n) => n,
        Err(e) => unusable(session, queue_index, e),
    }
}

fn unusable(session: &mut Session, queue_index: usize, e: ChainError) -> u32 {
    session.counters_mut().protocol_errors += 1;
    limited_warn!(session.warn_limiter(), queue = queue_index, error = %e, "dropping unusable chain");
    0
}

fn run(
    mem: &GuestMemoryMmap,
    areas: &Areas,
    class: QueueClass,
    session: &mut Session,
    scratch: &mut Scratch,
) -> Result<u32, ChainError> {
    let req = &areas.request;
    if req.len() as usize > MAX_REQUEST_AREA_LEN {
        return Err(ChainError::RequestAreaTooLong(req.len()));
    }
    if !in_memory(mem, &areas.response) {
        return Err(ChainError::ResponseAreaOutside);
    }
    scratch.request.clear();
    scratch.request.resize(req.len() as usize, 0);
    mem.read_slice(&mut scratch.request, req.addr())
        .map_err(|_| ChainError::RequestAreaOutside)?;

    let mut out = ResponseWriter {
        mem,
        addr: areas.response.addr(),
        cap: areas.response.len() as usize,
        written: 0,
    };
    let Scratch {
        request,
        response: buf,
        in_desc,
        out_desc,
    } = scratch;

    run_batch(
        session,
        class,
        request,
        (in_desc.len(), out_desc.len()),
        || {
            let ins = lend(mem, in_desc, InSeg::guest)?;
            Ok((ins, lend(mem, out_desc, OutSeg::guest)?))
        },
        &mut out,
        buf,
    );
    Ok(out.written as u32)
}

/// The bulk segments a batch's frames are given, in chain order.
pub(crate) type Segments<'m> = (Vec<InSeg<'m>>, Vec<OutSeg<'m>>);

/// Runs the frames of `request` (a chain's concatenated request frames) in
/// `session`, each with its share of the chain's bulk segments, storing
/// their responses in `out`; what every virtqueue transport shares (direct
/// mode here, device mode in [`crate::device_chain`]).
///
/// Pass 1: every frame header must decode (else the batch is answered with
/// one `Malformed` error) and the frames' bulk counts must add up to
/// `counts` (the chain's in- and out-segments; else one `BadDescriptor`
/// error). Only then does `lend` hand out the segments (its error answers
/// the batch as well), and pass 2 runs the frames in order. `buf` is
/// scratch space for encoding. A request area without frames runs nothing
/// and answers nothing.
pub(crate) fn run_batch<'m, R: Responses>(
    session: &mut Session,
    class: QueueClass,
    request: &[u8],
    counts: (usize, usize),
    lend: impl FnOnce() -> Result<Segments<'m>, ProtocolError>,
    out: &mut R,
    buf: &mut Vec<u8>,
) {
    let mut first: Option<Header> = None;
    let (mut frames, mut in_sum, mut out_sum) = (0usize, 0usize, 0usize);
    let mut reject = None;
    for f in FrameIter::new(request) {
        match f {
            Ok(f) => {
                first.get_or_insert(f.header);
                frames += 1;
                in_sum += usize::from(f.header.in_bulk);
                out_sum += usize::from(f.header.out_bulk);
            }
            Err(e) => {
                debug!(frame = frames, cause = %e, "frame header did not decode");
                reject = Some(ProtocolError::Malformed);
            }
        }
    }
    if frames == 0 && reject.is_none() {
        return;
    }
    if reject.is_none() && (in_sum, out_sum) != counts {
        debug!(
            in_sum,
            out_sum,
            in_segments = counts.0,
            out_segments = counts.1,
            "bulk counts do not match the chain"
        );
        reject = Some(ProtocolError::BadDescriptor);
    }
    let bufs = match reject {
        Some(e) => Err(e),
        None => lend(),
    };
    let (in_bufs, out_bufs) = match bufs {
        Ok(b) => b,
        Err(e) => {
            let first = first.map(|h| (h.request_id, h.opcode));
            dispatch::reject(session, first, e, out, buf);
            return;
        }
    };

    // Pass 2: run the frames in order.
    let (mut in_off, mut out_off) = (0usize, 0usize);
    let frames = FrameIter::new(request).map_while(Result::ok).map(|frame| {
        let (ni, no) = (
            usize::from(frame.header.in_bulk),
            usize::from(frame.header.out_bulk),
        );
        let bulk = Bulk {
            input: in_bufs.get(in_off..in_off + ni).unwrap_or_default(),
            output: out_bufs.get(out_off..out_off + no).unwrap_or_default(),
        };
        in_off += ni;
        out_off += no;
        (frame, bulk)
    });
    dispatch::run_frames(session, class, frames, out, buf);
}

#[cfg(test)]
#[path = "chain_tests.rs"]
mod tests;
