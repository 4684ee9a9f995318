//! The client pipeline every API family uses: session open, handle
//! allocation, batching of fire-and-forget calls, and sticky errors.
//!
//! A [`Client`] owns one transport behind a mutex, so calls from many
//! threads are serialized into chains. Fire-and-forget calls ([`Client::post`])
//! are encoded at once into a pending batch (their bulk bytes copied, so the
//! caller may reuse its memory) and travel, flagged [`FLAG_ASYNC`], in front
//! of the next synchronous call's frame in the same chain. A failure of any
//! of them becomes the *sticky error*, returned (once) by the next
//! synchronizing call in preference to that call's own result.
//!
//! Segments in the transport's shared host memory ([`Client::host_alloc`])
//! are never copied: a fire-and-forget call may name them
//! ([`PostIn::InPlace`], and as writable segments), and the daemon reads or
//! writes them in place when the batch is sent.
//!
//! Large transfers go through [`Client::call_pipelined`]: a sequence of
//! synchronous calls, each carrying one chunk, with a few chains in flight
//! at once so that copying the next chunk into shared memory overlaps the
//! daemon's work on the previous one.
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use protocol::opencl::{Empty, Handle};
use protocol::session::{FEATURE_BATCH, FEATURE_CUDA, FEATURE_OPENCL};
use protocol::{
    decode_response, encode_request, FrameIter, Outcome, ProtocolError, QueueClass, Request,
    Response, SessionOpen, SessionOpened, FLAG_ASYNC, PROTOCOL_VERSION,
};

use crate::transport::{Chain, ChainError, Endpoint, Limits, PipeChain, Transport, TransportError};

/// A batch is flushed on its own once it holds this many frames.
pub const BATCH_MAX_FRAMES: usize = 256;
/// A batch is flushed on its own once it holds this many bulk bytes.
pub const BATCH_MAX_BULK: usize = 1 << 20;

/// Bulk bytes per chunk of a pipelined transfer (at most; the transport's
/// pipelined chains may hold less). Smaller chunks overlap better (the first
/// and last chunk are not overlapped) but cost one chain, and one blocking
/// runtime call in the daemon, each. In the `micro` benchmark (64 MiB, two
/// cores) 512 KiB to 2 MiB were equally fast, 4 MiB slightly and 8 MiB
/// clearly slower; 1 MiB chunks of a few chains in flight stay within a
/// core's L2 cache, so the other side finds them still cached.
pub const PIPELINE_CHUNK: usize = 1 << 20;

/// Synchronous transfers at least this long are pipelined. Below it the
/// copies are short enough that one chain (which may also carry pending
/// fire-and-forget calls) costs less than several.
pub const PIPELINE_MIN: usize = 256 << 10;

/// Smallest piece of a pipelined transfer: below this, the cost of a chain
/// outweighs the copy it overlaps.
const PIPELINE_MIN_PIECE: usize = 64 << 10;

/// One call of a pipelined transfer: a request with at most one readable
/// and one writable bulk segment.
#[derive(Debug)]
pub struct Piece<'a> {
    /// The request (a synchronous call on the request queue).
    pub req: Request,
    /// Bytes the request consumes, if any.
    pub bulk_in: Option<&'a [u8]>,
    /// Where the bytes it returns go, if any.
    pub bulk_out: Option<&'a mut [u8]>,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The runtime's native error code.
    #[error("native error {0}")]
    Native(i32),
    /// The daemon refused the request.
    #[error("the daemon refused the request")]
    Protocol(#[source] ProtocolError),
    /// The transport failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// A readable bulk segment of [`Client::post_bulk`].
#[derive(Clone, Copy, Debug)]
pub enum PostIn<'a> {
    /// Copied into the pending batch at once; the caller may reuse the
    /// memory as soon as the call returns.
    Copy(&'a [u8]),
    /// Read in place when the batch is sent, if it lies in the transport's
    /// shared host memory ([`Client::is_shared`]); copied at once otherwise.
    /// The caller keeps it valid until the next synchronizing call.
    InPlace(&'static [u8]),
}

/// Where a pending readable segment is.
#[derive(Debug)]
enum Seg {
    /// A range of [`Batch::bulk`].
    Staged(Range<usize>),
    /// Shared host memory, read in place.
    InPlace(&'static [u8]),
}

/// Fire-and-forget frames waiting for the next chain.
#[derive(Debug, Default)]
struct Batch {
    frames: Vec<u8>,
    ids: Vec<u64>,
    /// Copied in-bulk bytes.
    bulk: Vec<u8>,
    segments: Vec<Seg>,
    /// Writable segments (all in shared host memory), in frame order.
    outs: Vec<&'static mut [u8]>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    fn clear(&mut self) {
        self.frames.clear();
        self.ids.clear();
        self.bulk.clear();
        self.segments.clear();
        self.outs.clear();
    }
}

struct Inner {
    transport: Box<dyn Transport>,
    limits: Limits,
    batching: bool,
    next_id: u64,
    batch: Batch,
    sticky: Option<CallError>,
    closed: bool,
    /// A full batch started without waiting for it (the ids of its
    /// frames), completed before the transport is used again.
    posted: Option<Vec<u64>>,
}

/// A connected session with the daemon.
pub struct Client {
    inner: Mutex<Inner>,
    next_handle: AtomicU64,
    session: SessionOpened,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("session", &self.session)
            .field("next_handle", &self.next_handle)
            .finish_non_exhaustive()
    }
}

fn client_name() -> String {
    std::fs::read_to_string("/proc/self/comm")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// A call that cannot go on the transport.
fn too_large(e: ChainError) -> CallError {
    CallError::Transport(TransportError::Chain(e))
}

fn outcome_to_result(o: Outcome) -> Result<Response, CallError> {
    match o {
        Outcome::Ok(r) => Ok(r),
        Outcome::Native(c) => Err(CallError::Native(c)),
        Outcome::Protocol(e) => Err(CallError::Protocol(e)),
    }
}

impl Client {
    /// Connects to the endpoint named by `VCOMPUTE_ENDPOINT` and opens a
    /// session.
    pub fn connect_from_env() -> Result<Client, CallError> {
        Self::connect_endpoint(&Endpoint::from_env()?)
    }

    /// Connects to `endpoint` (same syntax as `VCOMPUTE_ENDPOINT`, e.g.
    /// `vhost-user:/run/vcompute.sock`) and opens a session.
    pub fn connect(endpoint: &str) -> Result<Client, CallError> {
        Self::connect_endpoint(&Endpoint::parse(endpoint)?)
    }

    /// Connects to a parsed endpoint and opens a session.
    pub fn connect_endpoint(endpoint: &Endpoint) -> Result<Client, CallError> {
        Self::with_transport(endpoint.connect()?)
    }

    /// Opens a session over an already connected transport.
    pub fn with_transport(transport: Box<dyn Transport>) -> Result<Client, CallError> {
        let limits = transport.limits();
        let mut inner = Inner {
            transport,
            limits,
            batching: false,
            next_id: 1,
            batch: Batch::default(),
            sticky: None,
            closed: false,
            posted: None,
        };
        let open = Request::SessionOpen(SessionOpen {
            min_version: PROTOCOL_VERSION,
            max_version: PROTOCOL_VERSION,
            features: FEATURE_OPENCL | FEATURE_CUDA | FEATURE_BATCH,
            client: client_name(),
        });
        let session = match inner.call(open, &[], &mut []) {
            Ok(Response::SessionOpen(s)) => s,
            Ok(_) => return Err(CallError::Protocol(ProtocolError::Malformed)),
            Err(e) => return Err(e),
        };
        if session.version != PROTOCOL_VERSION {
            return Err(CallError::Protocol(ProtocolError::VersionMismatch));
        }
        inner.batching = session.features & FEATURE_BATCH != 0;
        Ok(Client {
            inner: Mutex::new(inner),
            next_handle: AtomicU64::new(1),
            session,
        })
    }

    /// The negotiated session parameters.
    pub fn session(&self) -> &SessionOpened {
        &self.session
    }

    /// Largest number of bulk bytes (in and out together) one call may move;
    /// larger transfers must be split into several calls.
    pub fn max_chunk(&self) -> usize {
        let limits = self.lock().limits;
        limits
            .max_bulk
            .min(usize::try_from(self.session.max_transfer_len).unwrap_or(usize::MAX))
    }

    /// Largest number of bulk bytes one [`Piece`] of
    /// [`Client::call_pipelined`] should move, or `None` if the transport
    /// does not pipeline (pieces then go one call at a time, and should be
    /// [`Client::max_chunk`] long).
    pub fn pipeline_chunk(&self) -> Option<usize> {
        let pipe = self.lock().transport.pipe_limits()?;
        Some(
            PIPELINE_CHUNK
                .min(pipe.max_bulk)
                .min(usize::try_from(self.session.max_transfer_len).unwrap_or(usize::MAX)),
        )
        .filter(|&n| n > 0)
    }

    /// How a synchronous transfer of `len` bytes is split: the piece
    /// length, and whether the pieces go through
    /// [`Client::call_pipelined`]. A pipelined transfer is cut into at least
    /// four pieces (so even a short one overlaps), of at most
    /// [`Client::pipeline_chunk`]; otherwise pieces are
    /// [`Client::max_chunk`] long and go one call at a time.
    pub fn split_transfer(&self, len: usize) -> (usize, bool) {
        self.split_transfer_from(len, PIPELINE_MIN, PIPELINE_MIN_PIECE)
    }

    /// [`Client::split_transfer`] with the caller's thresholds: transfers
    /// of at least `min` bytes are pipelined, in pieces of at least
    /// `min_piece` (an API family whose daemon-side calls cost more per
    /// piece wants fewer, larger ones).
    pub fn split_transfer_from(&self, len: usize, min: usize, min_piece: usize) -> (usize, bool) {
        let pipe = if len >= min {
            self.pipeline_chunk()
        } else {
            None
        };
        match pipe {
            Some(chunk) => {
                let piece = len.div_ceil(4).next_multiple_of(4096);
                (piece.clamp(min_piece, chunk).max(1), true)
            }
            None => (self.max_chunk().max(1), false),
        }
    }

    /// A sequence of synchronous calls on the request queue, pipelined:
    /// pending fire-and-forget calls are sent first (in order), then each
    /// piece's in-bulk is copied into shared memory while the daemon works
    /// on the pieces before it. The daemon executes the pieces in order;
    /// each piece's out-bulk is filled when it completes.
    ///
    /// Stops sending pieces at the first failure and returns it, once the
    /// pieces already sent have completed. As with [`Client::call`], a
    /// sticky error from the pending calls is returned in preference.
    /// Pieces that do not fit a pipelined chain (or a transport that does
    /// not pipeline) are sent as plain calls, still in order.
    pub fn call_pipelined<'a>(
        &self,
        pieces: impl IntoIterator<Item = Piece<'a>>,
    ) -> Result<(), CallError> {
        self.lock().call_pipelined(pieces.into_iter())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the batch in a state
        // worse than "some frames lost", which the next call reports.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Synchronous call: flushes pending fire-and-forget calls, sends `req`
    /// in the same chain and waits for its answer. A sticky error from the
    /// flushed calls is returned in preference to `req`'s own result.
    pub fn call(
        &self,
        req: Request,
        bulk_in: &[&[u8]],
        bulk_out: &mut [&mut [u8]],
    ) -> Result<Response, CallError> {
        self.lock().call(req, bulk_in, bulk_out)
    }

    /// Fire-and-forget: queues `req` (copying `bulk_in` now) and returns at
    /// once. A failure surfaces at the next synchronizing call.
    pub fn post(&self, req: Request, bulk_in: &[&[u8]]) -> Result<(), CallError> {
        let ins: Vec<PostIn<'_>> = bulk_in.iter().map(|b| PostIn::Copy(b)).collect();
        self.lock().post(req, &ins, Vec::new())
    }

    /// Fire-and-forget with segments read (and written) in place: as
    /// [`Client::post`], but [`PostIn::InPlace`] segments and every
    /// writable segment in `bulk_out` are handed to the daemon where they
    /// are, when the batch is sent. Every segment of `bulk_out` must lie in
    /// shared host memory ([`Client::is_shared`]); the daemon has filled
    /// them once the next synchronizing call returns.
    pub fn post_bulk(
        &self,
        req: Request,
        bulk_in: &[PostIn<'_>],
        bulk_out: Vec<&'static mut [u8]>,
    ) -> Result<(), CallError> {
        self.lock().post(req, bulk_in, bulk_out)
    }

    /// Allocates `len` bytes of host memory shared with the daemon, so that
    /// transfers from and to it are not copied; `None` if the transport has
    /// no shared memory or it is exhausted.
    pub fn host_alloc(&self, len: usize) -> Option<*mut u8> {
        self.lock().transport.host_alloc(len)
    }

    /// Frees a block of [`Client::host_alloc`] by its start address, once
    /// every pending call (which may name it) has been sent and answered.
    /// Returns its length, or `None` if no block starts at `addr`.
    pub fn host_free(&self, addr: usize) -> Option<usize> {
        let mut inner = self.lock();
        inner.flush_batch();
        inner.transport.host_free(addr)
    }

    /// The address range of the live shared host block containing `addr`.
    pub fn host_block(&self, addr: usize) -> Option<Range<usize>> {
        self.lock().transport.host_block(addr)
    }

    /// Whether `len` bytes at `addr` lie in shared host memory (and so
    /// travel without a copy).
    pub fn is_shared(&self, addr: usize, len: usize) -> bool {
        self.lock().transport.is_shared(addr, len)
    }

    /// Sends every queued call and waits; returns the sticky error, if any.
    pub fn flush(&self) -> Result<(), CallError> {
        let mut inner = self.lock();
        inner.flush_batch();
        inner.sticky.take().map_or(Ok(()), Err)
    }

    /// A fresh, never-reused object handle.
    pub fn new_handle(&self) -> Handle {
        self.next_handle.fetch_add(1, Ordering::Relaxed)
    }

    /// The null round trip: a synchronous `Ping`.
    pub fn ping(&self) -> Result<(), CallError> {
        self.call(Request::Ping(Empty {}), &[], &mut []).map(drop)
    }

    /// Flushes pending calls and closes the session. Dropping the client
    /// does the same on a best-effort basis.
    pub fn close(self) -> Result<(), CallError> {
        self.lock().close()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let inner = self.inner.get_mut().unwrap_or_else(|p| p.into_inner());
        let _ = inner.close();
    }
}

impl Inner {
    fn alloc_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn close(&mut self) -> Result<(), CallError> {
        if std::mem::replace(&mut self.closed, true) {
            return Ok(());
        }
        let sticky = {
            self.flush_batch();
            self.sticky.take()
        };
        self.call(Request::SessionClose(Empty {}), &[], &mut [])?;
        sticky.map_or(Ok(()), Err)
    }

    fn set_sticky(&mut self, e: CallError) {
        if self.sticky.is_none() {
            self.sticky = Some(e);
        }
    }

    /// Whether the batch plus one more frame with these sizes still fits
    /// one chain.
    fn fits(&self, frame_len: usize, segments: usize, bulk: usize) -> bool {
        let b = &self.batch;
        b.frames.len() + frame_len <= self.limits.max_frames_len
            && b.segments.len() + b.outs.len() + segments <= self.limits.max_segments
            && b.bulk.len() + bulk <= self.limits.max_bulk
            && b.ids.len() < protocol::limits::MAX_FRAMES_PER_CHAIN
    }

    /// Bytes of `b` that a chain must stage (0 for shared memory).
    fn staged_len(&self, b: &[u8]) -> usize {
        if self.transport.is_shared(b.as_ptr() as usize, b.len()) {
            0
        } else {
            b.len()
        }
    }

    fn post(
        &mut self,
        req: Request,
        bulk_in: &[PostIn<'_>],
        bulk_out: Vec<&'static mut [u8]>,
    ) -> Result<(), CallError> {
        // Resolve each segment: in place only if it really is shared.
        let ins: Vec<PostIn<'_>> = bulk_in
            .iter()
            .map(|&p| match p {
                PostIn::InPlace(b) if self.staged_len(b) == 0 && !b.is_empty() => p,
                PostIn::InPlace(b) | PostIn::Copy(b) => PostIn::Copy(b),
            })
            .collect();
        let bulk: usize = ins
            .iter()
            .map(|p| match p {
                PostIn::Copy(b) => b.len(),
                PostIn::InPlace(_) => 0,
            })
            .sum();
        let segments = ins.len() + bulk_out.len();
        if bulk > self.limits.max_bulk {
            return Err(too_large(ChainError::BulkTooLarge {
                len: bulk,
                max: self.limits.max_bulk,
            }));
        }
        if segments > protocol::limits::MAX_BULK_PER_FRAME {
            return Err(too_large(ChainError::TooManySegments {
                count: segments,
                max: protocol::limits::MAX_BULK_PER_FRAME,
            }));
        }
        if bulk_out
            .iter()
            .any(|b| self.staged_len(b) != 0 || b.is_empty())
        {
            return Err(too_large(ChainError::OutNotShared));
        }
        if req.opcode().queue_class() == QueueClass::Control {
            // Control requests are never batched.
            let copies: Vec<&[u8]> = ins
                .iter()
                .map(|p| match p {
                    PostIn::Copy(b) => *b,
                    PostIn::InPlace(b) => *b,
                })
                .collect();
            let mut outs: Vec<&mut [u8]> = bulk_out.into_iter().map(|b| &mut *b).collect();
            self.call(req, &copies, &mut outs)?;
            return Ok(());
        }
        let id = self.alloc_id();
        let mark = self.batch.frames.len();
        encode_request(
            &mut self.batch.frames,
            id,
            FLAG_ASYNC,
            &req,
            ins.len() as u16,
            bulk_out.len() as u16,
        )
        .ok_or_else(|| too_large(ChainError::BodyTooLarge))?;
        if !self.batch.is_empty() && !self.fits(0, segments, bulk) {
            // The new frame does not fit with the others: send them first.
            let frame = self.batch.frames.split_off(mark);
            self.flush_batch();
            self.batch.frames = frame;
        }
        self.batch.ids.push(id);
        for p in ins {
            let seg = match p {
                PostIn::Copy(b) => {
                    let start = self.batch.bulk.len();
                    self.batch.bulk.extend_from_slice(b);
                    Seg::Staged(start..self.batch.bulk.len())
                }
                PostIn::InPlace(b) => Seg::InPlace(b),
            };
            self.batch.segments.push(seg);
        }
        self.batch.outs.extend(bulk_out);
        if !self.batching
            || self.batch.ids.len() >= BATCH_MAX_FRAMES
            || self.batch.bulk.len() >= BATCH_MAX_BULK
        {
            if self.batching {
                self.start_batch();
            } else {
                self.flush_batch();
            }
        }
        Ok(())
    }

    /// Starts a full batch without waiting for it, when the transport
    /// pipelines and the batch fits a pipelined chain (it writes nothing
    /// back in place); sends it and waits otherwise. The program goes on
    /// filling the next batch while the daemon works on this one; failures
    /// become sticky when it completes.
    fn start_batch(&mut self) {
        self.reap_posted();
        let Some(pipe) = self.transport.pipe_limits() else {
            return self.flush_batch();
        };
        let b = &self.batch;
        let bulk: usize = b
            .segments
            .iter()
            .map(|s| match s {
                Seg::Staged(r) => r.len(),
                Seg::InPlace(p) => p.len(),
            })
            .sum();
        if pipe.depth == 0
            || !b.outs.is_empty()
            || b.frames.len() > pipe.max_frames_len
            || b.segments.len() > pipe.max_segments
            || bulk > pipe.max_bulk
        {
            return self.flush_batch();
        }
        let ins: Vec<&[u8]> = b
            .segments
            .iter()
            .map(|s| match s {
                Seg::Staged(r) => b.bulk.get(r.clone()).unwrap_or_default(),
                Seg::InPlace(p) => *p,
            })
            .collect();
        let chain = PipeChain {
            frames: &b.frames,
            bulk_in: &ins,
            out_lens: &[],
        };
        match self.transport.start(chain) {
            Err(TransportError::Chain(_)) => self.flush_batch(),
            r => {
                let ids = std::mem::take(&mut self.batch.ids);
                self.batch.clear();
                match r {
                    Ok(()) => self.posted = Some(ids),
                    Err(e) => self.set_sticky(e.into()),
                }
            }
        }
    }

    /// Completes the batch [`Inner::start_batch`] left in flight, if any;
    /// its failures become sticky.
    fn reap_posted(&mut self) {
        let Some(ids) = self.posted.take() else {
            return;
        };
        match self.transport.finish(&mut []) {
            Ok(resp) => {
                if let Some(e) = self.settle(&mut FrameIter::new(&resp), &ids) {
                    self.set_sticky(e);
                }
            }
            Err(e) => self.set_sticky(e.into()),
        }
    }

    /// Records the outcomes of posted frames `ids` from their responses;
    /// returns the error of a daemon that answered out of step (the rest
    /// of the responses are then lost).
    fn settle(&mut self, frames: &mut FrameIter<'_>, ids: &[u64]) -> Option<CallError> {
        for &aid in ids {
            match frames.next() {
                Some(Ok(f)) if f.header.request_id == aid => match decode_response(&f) {
                    Ok(Outcome::Ok(_)) => {}
                    Ok(Outcome::Native(c)) => self.set_sticky(CallError::Native(c)),
                    Ok(Outcome::Protocol(e)) => self.set_sticky(CallError::Protocol(e)),
                    Err(_) => self.set_sticky(CallError::Protocol(ProtocolError::Malformed)),
                },
                Some(Ok(f)) => {
                    // The daemon answered out of step (e.g. it rejected the
                    // whole chain with one response): report its error.
                    let e = match decode_response(&f) {
                        Ok(o @ (Outcome::Native(_) | Outcome::Protocol(_))) => {
                            outcome_to_result(o).err()
                        }
                        _ => None,
                    };
                    return Some(e.unwrap_or(CallError::Protocol(ProtocolError::Malformed)));
                }
                _ => return Some(CallError::Protocol(ProtocolError::Malformed)),
            }
        }
        None
    }

    /// Sends the pending batch on its own; failures become sticky.
    fn flush_batch(&mut self) {
        self.reap_posted();
        if self.batch.is_empty() {
            return;
        }
        if let Err(e) = self.send(None, &[], &mut []) {
            self.set_sticky(e);
        }
    }

    fn call(
        &mut self,
        req: Request,
        bulk_in: &[&[u8]],
        bulk_out: &mut [&mut [u8]],
    ) -> Result<Response, CallError> {
        let control = req.opcode().queue_class() == QueueClass::Control;
        let id = self.alloc_id();
        let mut frame = Vec::new();
        encode_request(
            &mut frame,
            id,
            0,
            &req,
            bulk_in.len() as u16,
            bulk_out.len() as u16,
        )
        .ok_or_else(|| too_large(ChainError::BodyTooLarge))?;
        let bulk: usize = bulk_in
            .iter()
            .map(|b| self.staged_len(b))
            .chain(bulk_out.iter().map(|b| self.staged_len(b)))
            .sum();
        if control || !self.fits(frame.len(), bulk_in.len() + bulk_out.len(), bulk) {
            self.flush_batch();
        }
        let queue = if control {
            QueueClass::Control
        } else {
            QueueClass::Request
        };
        let outcome = self.send(Some((queue, id, &frame)), bulk_in, bulk_out);
        match self.sticky.take() {
            Some(e) => Err(e),
            None => outcome_to_result(outcome?),
        }
    }

    fn call_pipelined<'a>(
        &mut self,
        pieces: impl Iterator<Item = Piece<'a>>,
    ) -> Result<(), CallError> {
        self.flush_batch();
        let result = self.run_pipeline(pieces);
        match self.sticky.take() {
            Some(e) => Err(e),
            None => result,
        }
    }

    /// Sends `pieces` with up to the transport's depth in flight; returns
    /// the first failure. The batch is empty on entry and stays empty.
    fn run_pipeline<'a>(
        &mut self,
        pieces: impl Iterator<Item = Piece<'a>>,
    ) -> Result<(), CallError> {
        let pipe = self.transport.pipe_limits();
        let depth = pipe.map_or(0, |p| p.depth);
        let mut in_flight: VecDeque<(u64, Option<&'a mut [u8]>)> = VecDeque::with_capacity(depth);
        let mut frame = Vec::new();
        let mut failed = None;
        for piece in pieces {
            let control = piece.req.opcode().queue_class() == QueueClass::Control;
            let id = self.alloc_id();
            frame.clear();
            let (n_in, n_out) = (
                u16::from(piece.bulk_in.is_some()),
                u16::from(piece.bulk_out.is_some()),
            );
            if encode_request(&mut frame, id, 0, &piece.req, n_in, n_out).is_none() {
                failed = Some(too_large(ChainError::BodyTooLarge));
                break;
            }
            let bulk = piece.bulk_in.map_or(0, <[u8]>::len)
                + piece.bulk_out.as_deref().map_or(0, <[u8]>::len);
            let fits = pipe.is_some_and(|p| {
                frame.len() <= p.max_frames_len
                    && usize::from(n_in + n_out) <= p.max_segments
                    && bulk <= p.max_bulk
            });
            if control || !fits {
                // Not pipelinable: a plain call, after the pieces before it.
                if let Err(e) = self.reap_all(&mut in_flight) {
                    failed = Some(e);
                    break;
                }
                let ins: Vec<&[u8]> = piece.bulk_in.into_iter().collect();
                let mut outs: Vec<&mut [u8]> = piece.bulk_out.into_iter().collect();
                let queue = if control {
                    QueueClass::Control
                } else {
                    QueueClass::Request
                };
                match self
                    .send(Some((queue, id, &frame)), &ins, &mut outs)
                    .and_then(outcome_to_result)
                {
                    Ok(_) => continue,
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            if in_flight.len() >= depth {
                if let Err(e) = self.reap(&mut in_flight) {
                    failed = Some(e);
                    break;
                }
            }
            let ins: Vec<&[u8]> = piece.bulk_in.into_iter().collect();
            let out_lens: Vec<usize> = piece
                .bulk_out
                .as_deref()
                .map(<[u8]>::len)
                .into_iter()
                .collect();
            let chain = PipeChain {
                frames: &frame,
                bulk_in: &ins,
                out_lens: &out_lens,
            };
            if let Err(e) = self.transport.start(chain) {
                failed = Some(e.into());
                break;
            }
            in_flight.push_back((id, piece.bulk_out));
        }
        // Whatever happened, the chains already sent complete before the
        // caller's memory is released (and before the next chain).
        let rest = self.reap_all(&mut in_flight);
        match failed {
            Some(e) => Err(e),
            None => rest,
        }
    }

    /// Completes every chain in `in_flight`; returns the first failure.
    fn reap_all(
        &mut self,
        in_flight: &mut VecDeque<(u64, Option<&mut [u8]>)>,
    ) -> Result<(), CallError> {
        let mut first = Ok(());
        while !in_flight.is_empty() {
            let r = self.reap(in_flight);
            if first.is_ok() {
                first = r;
            }
        }
        first
    }

    /// Completes the oldest chain in `in_flight` and decodes its answer.
    /// After a transport failure no chain is left in flight.
    fn reap(
        &mut self,
        in_flight: &mut VecDeque<(u64, Option<&mut [u8]>)>,
    ) -> Result<(), CallError> {
        let Some((id, out)) = in_flight.pop_front() else {
            return Ok(());
        };
        let mut outs: Vec<&mut [u8]> = out.into_iter().collect();
        let resp = match self.transport.finish(&mut outs) {
            Ok(r) => r,
            Err(e) => {
                // The transport gave up on every chain it had in flight.
                in_flight.clear();
                return Err(e.into());
            }
        };
        let outcome = match FrameIter::new(&resp).next() {
            Some(Ok(f)) if f.header.request_id == id => decode_response(&f).ok(),
            // The daemon rejected the chain as a whole: report its error.
            Some(Ok(f)) => decode_response(&f)
                .ok()
                .filter(|o| !matches!(o, Outcome::Ok(_))),
            _ => None,
        };
        outcome
            .map_or(
                Err(CallError::Protocol(ProtocolError::Malformed)),
                outcome_to_result,
            )
            .map(drop)
    }

    /// Sends the pending batch, followed by `sync` (queue, id, encoded
    /// frame) if given, in one chain. Async failures become sticky; returns
    /// the outcome of `sync` (or `Empty` when there is none).
    fn send(
        &mut self,
        sync: Option<(QueueClass, u64, &[u8])>,
        bulk_in: &[&[u8]],
        bulk_out: &mut [&mut [u8]],
    ) -> Result<Outcome, CallError> {
        // Chains complete in order: the one left in flight first.
        self.reap_posted();
        let queue = sync.map_or(QueueClass::Request, |s| s.0);
        let pending = self.batch.ids.len();
        let mark = self.batch.frames.len();
        if let Some((_, _, f)) = sync {
            self.batch.frames.extend_from_slice(f);
        }
        let mut ins: Vec<&[u8]> = Vec::with_capacity(self.batch.segments.len() + bulk_in.len());
        ins.extend(self.batch.segments.iter().map(|s| match s {
            Seg::Staged(r) => self.batch.bulk.get(r.clone()).unwrap_or_default(),
            Seg::InPlace(b) => *b,
        }));
        ins.extend_from_slice(bulk_in);
        let mut outs: Vec<&mut [u8]> = self
            .batch
            .outs
            .iter_mut()
            .map(|b| &mut **b)
            .chain(bulk_out.iter_mut().map(|b| &mut **b))
            .collect();
        let chain = Chain {
            frames: &self.batch.frames,
            bulk_in: &ins,
            bulk_out: &mut outs,
        };
        let result = self.transport.submit_on(queue, chain);
        drop(ins);
        let ids = std::mem::take(&mut self.batch.ids);
        self.batch.frames.truncate(mark);
        self.batch.clear();
        let resp = result?;

        let mut frames = FrameIter::new(&resp);
        let last_err = self.settle(&mut frames, ids.get(..pending).unwrap_or_default());
        if let Some(e) = last_err {
            self.set_sticky(e);
            // The synchronous frame's answer is lost with the batch's.
            return Err(CallError::Protocol(ProtocolError::Malformed));
        }
        let Some((_, id, _)) = sync else {
            return Ok(Outcome::Ok(Response::Ping(Empty {})));
        };
        match frames.next() {
            Some(Ok(f)) if f.header.request_id == id => {
                decode_response(&f).map_err(|_| CallError::Protocol(ProtocolError::Malformed))
            }
            Some(Ok(f)) => match decode_response(&f) {
                Ok(o @ (Outcome::Native(_) | Outcome::Protocol(_))) => Ok(o),
                _ => Err(CallError::Protocol(ProtocolError::Malformed)),
            },
            _ => Err(CallError::Protocol(ProtocolError::Malformed)),
        }
    }
}
