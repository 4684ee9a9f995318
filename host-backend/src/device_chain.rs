//! Walking one device-mode descriptor chain (the layout of
//! [`protocol::device`]): the driver-written device header, the request
//! area, bulk segments of one or several descriptors each, the status
//! descriptor and the response area.
//!
//! [`parse`] checks the chain against its header before anything runs:
//! directions, counts and the status descriptor's size. [`run`] then checks
//! every area against guest memory and the limits, lends each bulk segment
//! of one descriptor in place and copies one of several through daemon
//! memory, runs the frames with `chain::run_batch` (the same frame
//! rules as direct mode), and scatters what was written back to the
//! descriptors. Any mismatch is a [`LayoutError`]: the caller answers
//! `BadChain` and nothing has run.

use std::ops::Range;

use protocol::device::{
    DeviceHeader, DeviceOp, StatusRecord, MAX_COPIED_BULK_LEN, MAX_DEVICE_HEADER_LEN, STATUS_LEN,
};
use protocol::limits::{
    MAX_DESCRIPTORS_PER_CHAIN, MAX_REQUEST_AREA_LEN, MAX_TRANSFER_LEN, RESPONSE_AREA_LEN,
};
use protocol::{DecodeError, QueueClass};
use virtio_queue::desc::split::Descriptor;
use vm_memory::{Bytes, GuestMemoryBackend, GuestMemoryMmap, VolatileSlice};

use crate::chain::run_batch;
use crate::dispatch::Responses;
use crate::segment::{InSeg, OutSeg};
use crate::session::Session;

/// Why a device-mode chain does not match its header (status `BadChain`).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum LayoutError {
    /// The chain has more than `MAX_DESCRIPTORS_PER_CHAIN` descriptors.
    #[error("chain has more than {MAX_DESCRIPTORS_PER_CHAIN} descriptors")]
    TooManyDescriptors,
    /// The chain is empty or starts with a device-writable descriptor.
    #[error("chain has no readable device header")]
    NoHeader,
    /// The header descriptor is longer than `MAX_DEVICE_HEADER_LEN`.
    #[error("device header of {0} bytes exceeds the limit")]
    HeaderTooLong(u32),
    /// The header did not decode.
    #[error("device header does not decode: {0}")]
    BadHeader(DecodeError),
    /// The descriptors do not follow the header's counts and directions.
    #[error("chain does not match its header: {0}")]
    Mismatch(&'static str),
    /// The status descriptor is not `STATUS_LEN` bytes.
    #[error("status descriptor of {0} bytes")]
    StatusSize(u32),
    /// A descriptor lies outside guest memory.
    #[error("a descriptor lies outside guest memory")]
    Outside,
    /// The request area exceeds `MAX_REQUEST_AREA_LEN`.
    #[error("request area of {0} bytes exceeds the limit")]
    RequestAreaTooLong(u64),
    /// A bulk segment exceeds `MAX_TRANSFER_LEN`.
    #[error("bulk segment of {0} bytes exceeds the limit")]
    SegmentTooLong(u64),
    /// Segments of several descriptors exceed `MAX_COPIED_BULK_LEN` in all.
    #[error("copied bulk segments exceed {MAX_COPIED_BULK_LEN} bytes")]
    CopiedTooLong,
}

/// Buffers reused from chain to chain (one set per queue).
#[derive(Debug, Default)]
pub struct DeviceScratch {
    descs: Vec<Descriptor>,
    header: Vec<u8>,
    request: Vec<u8>,
    response: Vec<u8>,
    encode: Vec<u8>,
    gathered: Vec<Vec<u8>>,
    scattered: Vec<Vec<u8>>,
}

/// Capacity a scratch buffer may keep between chains.
const SCRATCH_KEEP: usize = 1 << 20;

impl DeviceScratch {
    fn trim(&mut self) {
        self.gathered.clear();
        self.scattered.clear();
        for v in [&mut self.request, &mut self.response] {
            if v.capacity() > SCRATCH_KEEP {
                v.clear();
                v.shrink_to(SCRATCH_KEEP);
            }
        }
    }

    /// Where a chain that could not be parsed gets its `BadChain` status:
    /// its first device-writable descriptor, if that is `STATUS_LEN` long.
    pub fn status_candidate(&self) -> Option<Descriptor> {
        self.descs
            .iter()
            .find(|d| d.is_write_only())
            .filter(|d| d.len() as usize == STATUS_LEN)
            .copied()
    }
}

/// A chain split as its header says; the ranges index the descriptors
/// kept in the scratch it was parsed into.
#[derive(Debug)]
pub struct Parsed {
    /// The decoded header.
    pub header: DeviceHeader,
    /// The status descriptor.
    pub status: Descriptor,
    request: Range<usize>,
    in_segs: Vec<Range<usize>>,
    response: Range<usize>,
    out_segs: Vec<Range<usize>>,
}

/// Collects the chain's descriptors into `scratch`, reads and decodes its
/// header, and splits the rest as the header says.
pub fn parse(
    mem: &GuestMemoryMmap,
    chain: impl Iterator<Item = Descriptor>,
    scratch: &mut DeviceScratch,
) -> Result<Parsed, LayoutError> {
    scratch.descs.clear();
    for d in chain {
        if scratch.descs.len() == MAX_DESCRIPTORS_PER_CHAIN {
            return Err(LayoutError::TooManyDescriptors);
        }
        scratch.descs.push(d);
    }
    let descs = &scratch.descs;
    let head = descs
        .first()
        .filter(|d| !d.is_write_only())
        .ok_or(LayoutError::NoHeader)?;
    if head.len() as usize > MAX_DEVICE_HEADER_LEN {
        return Err(LayoutError::HeaderTooLong(head.len()));
    }
    // Copied out once; the decoded copy is the one used.
    scratch.header.clear();
    scratch.header.resize(head.len() as usize, 0);
    mem.read_slice(&mut scratch.header, head.addr())
        .map_err(|_| LayoutError::Outside)?;
    let header = DeviceHeader::decode(&scratch.header).map_err(LayoutError::BadHeader)?;

    let mut at = 1;
    let mut take = |n: usize, writable: bool| -> Result<Range<usize>, LayoutError> {
        let r = at..at + n;
        let ds = descs.get(r.clone()).ok_or(LayoutError::Mismatch(
            "fewer descriptors than the header names",
        ))?;
        if ds.iter().any(|d| d.is_write_only() != writable) {
            return Err(LayoutError::Mismatch(
                "a descriptor's direction does not match the header",
            ));
        }
        at += n;
        Ok(r)
    };
    let request = take(usize::from(header.req_descs), false)?;
    // In-bulk segments: table entries while readable descriptors remain.
    let mut in_segs = Vec::new();
    let mut table = header.table.iter();
    while descs
        .get(request.end + in_segs_len(&in_segs))
        .is_some_and(|d| !d.is_write_only())
    {
        let n = table.next().ok_or(LayoutError::Mismatch(
            "more readable descriptors than the header names",
        ))?;
        in_segs.push(take(usize::from(*n), false)?);
    }
    let status_at = take(1, true)?;
    let status = descs[status_at.start];
    if status.len() as usize != STATUS_LEN {
        return Err(LayoutError::StatusSize(status.len()));
    }
    let response = take(usize::from(header.resp_descs), true)?;
    let out_segs = table
        .map(|&n| take(usize::from(n), true))
        .collect::<Result<Vec<_>, _>>()?;
    if at != descs.len() {
        return Err(LayoutError::Mismatch(
            "more descriptors than the header names",
        ));
    }
    Ok(Parsed {
        header,
        status,
        request,
        in_segs,
        response,
        out_segs,
    })
}

fn in_segs_len(segs: &[Range<usize>]) -> usize {
    segs.iter().map(Range::len).sum()
}

/// Total length of some descriptors.
fn total(descs: &[Descriptor]) -> u64 {
    descs.iter().map(|d| u64::from(d.len())).sum()
}

fn in_memory(mem: &GuestMemoryMmap, descs: &[Descriptor]) -> bool {
    descs
        .iter()
        .all(|d| GuestMemoryBackend::check_range(mem, d.addr(), d.len() as usize))
}

/// Copies `descs` in order into `into` (cleared first).
fn gather(
    mem: &GuestMemoryMmap,
    descs: &[Descriptor],
    into: &mut Vec<u8>,
) -> Result<(), LayoutError> {
    into.clear();
    into.resize(total(descs) as usize, 0);
    let mut off = 0;
    for d in descs {
        let n = d.len() as usize;
        let dst = into.get_mut(off..off + n).ok_or(LayoutError::Outside)?;
        mem.read_slice(dst, d.addr())
            .map_err(|_| LayoutError::Outside)?;
        off += n;
    }
    Ok(())
}

/// Writes `bytes` across `descs` in order, as far as it reaches.
fn scatter(mem: &GuestMemoryMmap, descs: &[Descriptor], bytes: &[u8]) {
    let mut rest = bytes;
    for d in descs {
        if rest.is_empty() {
            break;
        }
        let n = rest.len().min(d.len() as usize);
        let (now, later) = rest.split_at(n);
        // Checked to lie in guest memory before anything ran.
        let _ = mem.write_slice(now, d.addr());
        rest = later;
    }
}

/// Response frames collected in daemon memory, at most `cap` bytes.
struct ResponseBuffer<'a> {
    buf: &'a mut Vec<u8>,
    cap: usize,
}

impl Responses for ResponseBuffer<'_> {
    fn room(&self) -> usize {
        self.cap - self.buf.len()
    }

    fn put(&mut self, _index: usize, frame: &[u8], _ok: bool) -> bool {
        if frame.len() > self.room() {
            return false;
        }
        self.buf.extend_from_slice(frame);
        true
    }
}

/// Checks one bulk segment (descriptors `ds`): `Some` slice to lend in
/// place when it is one descriptor within one memory region, `None` when
/// it must be copied (its bytes counted in `copied`).
fn place<'m>(
    mem: &'m GuestMemoryMmap,
    ds: &[Descriptor],
    copied: &mut u64,
) -> Result<Option<VolatileSlice<'m>>, LayoutError> {
    let len = total(ds);
    if len > MAX_TRANSFER_LEN {
        return Err(LayoutError::SegmentTooLong(len));
    }
    if let [d] = ds {
        if let Ok(s) = mem.get_slice(d.addr(), d.len() as usize) {
            return Ok(Some(s));
        }
    }
    // Several descriptors, or one that spans memory regions.
    if !in_memory(mem, ds) {
        return Err(LayoutError::Outside);
    }
    *copied += len;
    if *copied > MAX_COPIED_BULK_LEN {
        return Err(LayoutError::CopiedTooLong);
    }
    Ok(None)
}

/// The segments among `segs` that are copied.
fn copies<'r>(
    segs: &'r [Range<usize>],
    places: &[Option<VolatileSlice<'_>>],
) -> Vec<&'r Range<usize>> {
    segs.iter()
        .zip(places)
        .filter(|(_, p)| p.is_none())
        .map(|(r, _)| r)
        .collect()
}

/// Checks every area of a parsed Submit chain, runs its frames in
/// `session` and writes the responses back; returns the bytes of response
/// frames written. On an error nothing has run.
pub fn run(
    mem: &GuestMemoryMmap,
    parsed: &Parsed,
    class: QueueClass,
    session: &mut Session,
    scratch: &mut DeviceScratch,
) -> Result<u32, LayoutError> {
    debug_assert_eq!(parsed.header.op, DeviceOp::Submit);
    let result = run_checked(mem, parsed, class, session, scratch);
    scratch.trim();
    result
}

fn run_checked(
    mem: &GuestMemoryMmap,
    parsed: &Parsed,
    class: QueueClass,
    session: &mut Session,
    scratch: &mut DeviceScratch,
) -> Result<u32, LayoutError> {
    let DeviceScratch {
        descs,
        request,
        response,
        encode,
        gathered,
        scattered,
        ..
    } = scratch;
    let descs: &[Descriptor] = descs;
    let slice = |r: &Range<usize>| descs.get(r.clone()).unwrap_or_default();

    let req = slice(&parsed.request);
    let req_len = total(req);
    if req_len > MAX_REQUEST_AREA_LEN as u64 {
        return Err(LayoutError::RequestAreaTooLong(req_len));
    }
    gather(mem, req, request)?;
    let resp = slice(&parsed.response);
    if !in_memory(mem, resp) {
        return Err(LayoutError::Outside);
    }

    // Every segment is checked (and an in-segment of several descriptors
    // copied) before anything runs.
    let mut copied = 0u64;
    let in_places = parsed
        .in_segs
        .iter()
        .map(|r| place(mem, slice(r), &mut copied))
        .collect::<Result<Vec<_>, _>>()?;
    let out_places = parsed
        .out_segs
        .iter()
        .map(|r| place(mem, slice(r), &mut copied))
        .collect::<Result<Vec<_>, _>>()?;
    let in_copies: Vec<&Range<usize>> = copies(&parsed.in_segs, &in_places);
    let out_copies: Vec<&Range<usize>> = copies(&parsed.out_segs, &out_places);
    gathered.resize_with(in_copies.len(), Vec::new);
    for (r, buf) in in_copies.iter().zip(gathered.iter_mut()) {
        gather(mem, slice(r), buf)?;
    }
    scattered.resize_with(out_copies.len(), Vec::new);
    for (r, buf) in out_copies.iter().zip(scattered.iter_mut()) {
        // Zeroed: bytes the runtime does not write must not carry an
        // earlier chain's data back to this guest.
        buf.clear();
        buf.resize(total(slice(r)) as usize, 0);
    }

    session.counters_mut().chains += 1;
    response.clear();
    let mut out = ResponseBuffer {
        buf: response,
        cap: usize::try_from(total(resp))
            .unwrap_or(usize::MAX)
            .min(RESPONSE_AREA_LEN),
    };
    {
        let mut copies_in = gathered.iter();
        let ins: Vec<InSeg<'_>> = in_places
            .into_iter()
            .map(|p| match p {
                Some(s) => InSeg::guest(s),
                None => InSeg::bytes(copies_in.next().map_or(&[][..], |v| &v[..])),
            })
            .collect();
        let mut copies_out = scattered.iter_mut();
        let outs: Vec<OutSeg<'_>> = out_places
            .into_iter()
            .map(|p| match p {
                Some(s) => OutSeg::guest(s),
                None => OutSeg::bytes(copies_out.next().map_or(&mut [][..], |v| &mut v[..])),
            })
            .collect();
        let counts = (ins.len(), outs.len());
        run_batch(
            session,
            class,
            request,
            counts,
            || Ok((ins, outs)),
            &mut out,
            encode,
        );
    }
    // The copies of out-segments go back to their descriptors.
    for (r, buf) in out_copies.iter().zip(scattered.iter()) {
        scatter(mem, slice(r), buf);
    }
    scatter(mem, resp, response);
    Ok(response.len() as u32)
}

/// Writes `record` to the status descriptor `d`; returns the chain's used
/// length (`STATUS_LEN` plus the response bytes), or 0 if the status could
/// not be written.
pub fn complete(mem: &GuestMemoryMmap, d: &Descriptor, record: StatusRecord) -> u32 {
    if d.len() as usize != STATUS_LEN || mem.write_slice(&record.encode(), d.addr()).is_err() {
        return 0;
    }
    (STATUS_LEN as u32).saturating_add(record.response_len)
}
