//! Direct mode: the shim is the vhost-user frontend.
//!
//! Connects to the daemon's socket, shares a memfd [`Arena`] through
//! `SET_MEM_TABLE`, lays out one [`SplitRing`] per queue in it and kicks and
//! waits through eventfds. A synchronous chain is alone in flight (the
//! client serializes calls) and uses the whole request, response and staging
//! areas. A pipelined transfer keeps up to [`PIPELINE_DEPTH`] chains in
//! flight on the request queue, each in its own arena [`Slot`] and its own
//! range of descriptors; a synchronous chain first waits for them all.
//!
//! Bulk segments that lie in the arena's host heap (host allocations from
//! [`Transport::host_alloc`]) are not staged: their descriptors point at
//! them in place.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::ops::Range;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use protocol::limits::MAX_TRANSFER_LEN;
use protocol::{QueueClass, CONTROL_QUEUE, NUM_QUEUES, REQUEST_QUEUE};
use vhost::vhost_user::message::{VhostUserHeaderFlag, VhostUserProtocolFeatures};
use vhost::vhost_user::{Frontend, VhostUserFrontend};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::arena::{
    align_up, Arena, Layout, Slot, DEFAULT_ARENA_MB, DEFAULT_HOST_MB, SEGMENT_ALIGN,
};
use super::heap::HostHeap;
use super::ring::{Desc, SplitRing, WaitPolicy};
use super::settings::{ARENA_MB, HOST_MB, POLL_US, TIMEOUT_MS};
use super::{
    Chain, ChainError, Limits, LinkError, PipeChain, PipeLimits, SetupError, Transport,
    TransportError,
};

const VIRTIO_F_VERSION_1: u64 = 1 << 32;
const VIRTIO_RING_F_EVENT_IDX: u64 = 1 << 29;
const VHOST_USER_F_PROTOCOL_FEATURES: u64 = 1 << 30;

/// Default busy-poll time before sleeping, in microseconds.
pub const DEFAULT_POLL_US: u64 = 100;
/// Default time after which a daemon that does not answer is given up on.
/// Long enough for a slow synchronizing call (a long kernel under
/// `clFinish`), short enough that a wedged daemon does not hang the guest.
pub const DEFAULT_TIMEOUT_MS: u64 = 300_000;
/// Pipelined chains in flight at once. Two already let the guest's copy of
/// one chunk overlap the daemon's copy of the previous one (and measured as
/// fast as three or four in the `micro` benchmark); four absorb jitter on
/// either side (a wake-up, a page fault) without stalling the other.
pub const PIPELINE_DEPTH: usize = 4;

/// Tunables of direct mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Arena size in bytes without the host heap (`VCOMPUTE_ARENA_MB`).
    pub arena_len: usize,
    /// Host-heap size in bytes (`VCOMPUTE_HOST_MB`; 0 disables it).
    pub host_len: usize,
    /// Busy-poll time before sleeping (`VCOMPUTE_POLL_US`).
    pub poll: Duration,
    /// Longest wait for one completion (`VCOMPUTE_TIMEOUT_MS`).
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            arena_len: DEFAULT_ARENA_MB << 20,
            host_len: DEFAULT_HOST_MB << 20,
            poll: Duration::from_micros(DEFAULT_POLL_US),
            timeout: Duration::from_millis(DEFAULT_TIMEOUT_MS),
        }
    }
}

impl Options {
    /// Defaults overridden by `VCOMPUTE_ARENA_MB`, `VCOMPUTE_HOST_MB`,
    /// `VCOMPUTE_POLL_US` and `VCOMPUTE_TIMEOUT_MS` (see
    /// [`super::settings`]: a bad value keeps the default, with one log
    /// line).
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var_os(name))
    }

    /// As [`Options::from_env`], with `var` giving each variable's value.
    pub fn from_vars(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Self {
        let value = |s: &super::settings::Setting| s.value(var(s.name).as_deref().map(OsStr::new));
        // The settings' bounds keep these far from overflowing.
        let mib = |mb: u64| usize::try_from(mb).map_or(usize::MAX, |mb| mb.saturating_mul(1 << 20));
        Options {
            arena_len: mib(value(&ARENA_MB)),
            host_len: mib(value(&HOST_MB)),
            poll: Duration::from_micros(value(&POLL_US)),
            timeout: Duration::from_millis(value(&TIMEOUT_MS)),
        }
    }
}

struct Queue {
    ring: SplitRing,
    kick: EventFd,
    call: EventFd,
}

/// A pipelined chain the device has not completed yet.
#[derive(Debug)]
struct InFlight {
    /// Its arena slot.
    slot: usize,
    /// Its first descriptor (the id of its used element).
    head: u16,
    /// Arena offset and length of each writable bulk segment.
    outs: Vec<(usize, usize)>,
}

/// The vhost-user frontend transport.
pub struct VhostUserTransport {
    // Field order matters for drop: the frontend (socket) goes first so the
    // daemon stops using the rings before the arena is unmapped.
    _frontend: Frontend,
    sock: UnixStream,
    queues: Vec<Queue>,
    arena: Arena,
    layout: Layout,
    /// Host allocations, over `layout.host`.
    heap: HostHeap,
    policy: WaitPolicy,
    /// Descriptor scratch space, reused by every chain.
    descs: Vec<Desc>,
    /// Arena slots of pipelined chains (empty if the arena is too small).
    slots: Vec<Slot>,
    /// Pipelined chains in flight, oldest first.
    in_flight: VecDeque<InFlight>,
    /// The slot the next pipelined chain uses.
    next_slot: usize,
    /// Set once a chain could not complete; the arena may still be in use
    /// by the device, so no further chain is sent.
    broken: Option<Arc<LinkError>>,
}

impl std::fmt::Debug for VhostUserTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VhostUserTransport")
            .field("arena", &self.arena)
            .field("layout", &self.layout)
            .field("policy", &self.policy)
            .field("broken", &self.broken)
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

/// A failed vhost-user request of the handshake.
fn request(request: &'static str) -> impl FnOnce(vhost::Error) -> SetupError {
    move |source| SetupError::Request { request, source }
}

/// A local resource of direct mode that could not be created.
fn resource(what: &'static str) -> impl FnOnce(std::io::Error) -> SetupError {
    move |source| SetupError::Resource { what, source }
}

impl VhostUserTransport {
    /// Connects to the daemon's socket and performs the vhost-user setup.
    pub fn connect(path: &Path, opts: &Options) -> Result<Self, TransportError> {
        let sock = UnixStream::connect(path).map_err(|source| TransportError::Connect {
            peer: format!("vhost-user:{}", path.display()),
            source,
        })?;
        Self::handshake(sock, opts).map_err(|source| TransportError::Setup {
            socket: path.to_owned(),
            source,
        })
    }

    fn handshake(sock: UnixStream, opts: &Options) -> Result<Self, SetupError> {
        let watch = sock.try_clone().map_err(resource("socket's duplicate"))?;
        let mut frontend = Frontend::from_stream(sock, NUM_QUEUES as u64);

        frontend.set_owner().map_err(request("SET_OWNER"))?;
        let offered = frontend.get_features().map_err(request("GET_FEATURES"))?;
        if offered & VIRTIO_F_VERSION_1 == 0 {
            return Err(SetupError::MissingFeature {
                feature: "VIRTIO_F_VERSION_1",
            });
        }
        let acked = offered
            & (VIRTIO_F_VERSION_1 | VIRTIO_RING_F_EVENT_IDX | VHOST_USER_F_PROTOCOL_FEATURES);
        frontend
            .set_features(acked)
            .map_err(request("SET_FEATURES"))?;
        let event_idx = acked & VIRTIO_RING_F_EVENT_IDX != 0;
        let protocol = acked & VHOST_USER_F_PROTOCOL_FEATURES != 0;

        if protocol {
            let pf = frontend
                .get_protocol_features()
                .map_err(request("GET_PROTOCOL_FEATURES"))?;
            let want = pf & (VhostUserProtocolFeatures::MQ | VhostUserProtocolFeatures::REPLY_ACK);
            frontend
                .set_protocol_features(want)
                .map_err(request("SET_PROTOCOL_FEATURES"))?;
            if want.contains(VhostUserProtocolFeatures::REPLY_ACK) {
                frontend.set_hdr_flags(VhostUserHeaderFlag::NEED_REPLY);
            }
            if want.contains(VhostUserProtocolFeatures::MQ) {
                let n = frontend.get_queue_num().map_err(request("GET_QUEUE_NUM"))?;
                if n < NUM_QUEUES as u64 {
                    return Err(SetupError::TooFewQueues {
                        offered: n,
                        needed: NUM_QUEUES,
                    });
                }
            }
        }

        let bad_layout = || SetupError::ArenaLayout {
            arena_len: opts.arena_len,
            host_len: opts.host_len,
        };
        let total = opts
            .arena_len
            .checked_add(opts.host_len)
            .ok_or_else(bad_layout)?;
        let layout = Layout::new(total, NUM_QUEUES, opts.host_len).ok_or_else(bad_layout)?;
        let arena = Arena::new(total).map_err(resource("memfd arena"))?;
        let region = VhostUserMemoryRegionInfo {
            guest_phys_addr: arena.gpa(0),
            memory_size: arena.len() as u64,
            userspace_addr: arena.base() as u64,
            mmap_offset: 0,
            mmap_handle: arena.fd(),
        };
        frontend
            .set_mem_table(&[region])
            .map_err(request("SET_MEM_TABLE"))?;

        let mut queues = Vec::with_capacity(NUM_QUEUES);
        for q in 0..NUM_QUEUES {
            // SAFETY: the ring memory for queue `q` is a page-aligned,
            // RING_STRIDE-long slice of the arena's ring area (the layout
            // reserves NUM_QUEUES strides), fresh from ftruncate and so
            // zeroed; the arena outlives the ring (same owner), and only the
            // device touches it besides this ring.
            let ring = unsafe {
                SplitRing::new(
                    arena
                        .base()
                        .add(layout.rings.start + q * super::ring::RING_STRIDE),
                    event_idx,
                )
            };
            let kick = EventFd::new(EFD_NONBLOCK).map_err(resource("eventfd"))?;
            let call = EventFd::new(EFD_NONBLOCK).map_err(resource("eventfd"))?;
            let (desc, avail, used) = ring.addresses();
            frontend
                .set_vring_num(q, ring.size())
                .map_err(request("SET_VRING_NUM"))?;
            let cfg = VringConfigData {
                queue_max_size: ring.size(),
                queue_size: ring.size(),
                flags: 0,
                desc_table_addr: desc,
                used_ring_addr: used,
                avail_ring_addr: avail,
                log_addr: None,
            };
            frontend
                .set_vring_addr(q, &cfg)
                .map_err(request("SET_VRING_ADDR"))?;
            frontend
                .set_vring_base(q, 0)
                .map_err(request("SET_VRING_BASE"))?;
            frontend
                .set_vring_call(q, &call)
                .map_err(request("SET_VRING_CALL"))?;
            frontend
                .set_vring_kick(q, &kick)
                .map_err(request("SET_VRING_KICK"))?;
            if protocol {
                frontend
                    .set_vring_enable(q, true)
                    .map_err(request("SET_VRING_ENABLE"))?;
            }
            queues.push(Queue { ring, kick, call });
        }

        Ok(VhostUserTransport {
            _frontend: frontend,
            sock: watch,
            queues,
            arena,
            policy: WaitPolicy {
                spin: opts.poll,
                timeout: opts.timeout,
            },
            descs: Vec::with_capacity(protocol::QUEUE_SIZE as usize),
            slots: layout.slots(PIPELINE_DEPTH),
            in_flight: VecDeque::with_capacity(PIPELINE_DEPTH),
            next_slot: 0,
            heap: HostHeap::new(layout.host.clone()),
            layout,
            broken: None,
        })
    }

    /// Descriptors each pipelined chain owns: an equal share of the table.
    fn slot_descs(&self) -> usize {
        protocol::QUEUE_SIZE as usize / self.slots.len().max(1)
    }

    /// Marks the connection lost for good and returns the error saying why.
    fn fail(&mut self, why: LinkError) -> TransportError {
        let why = Arc::new(why);
        self.broken = Some(Arc::clone(&why));
        // The device may still own the in-flight chains' memory; no
        // further chain is sent, so their slots are never reused.
        self.in_flight.clear();
        TransportError::Disconnected(why)
    }

    fn check_usable(&self) -> Result<(), TransportError> {
        match &self.broken {
            Some(why) => Err(TransportError::Disconnected(Arc::clone(why))),
            None => Ok(()),
        }
    }

    /// Checks a chain against the areas it is to use, copies its frames and
    /// in-bulk into them and builds its descriptors in `self.descs`.
    /// Each writable segment is given as its length and, if it lies in the
    /// host heap, its arena offset. Returns the arena offset of each staged
    /// writable segment (in order), from which the caller copies it back.
    fn stage(
        &mut self,
        areas: &Slot,
        max_segments: usize,
        frames: &[u8],
        bulk_in: &[&[u8]],
        out_lens: impl Iterator<Item = (usize, Option<usize>)> + Clone,
    ) -> Result<Vec<usize>, TransportError> {
        if frames.is_empty() {
            return Err(ChainError::Empty.into());
        }
        if frames.len() > areas.request.len() {
            return Err(ChainError::FramesTooLong {
                len: frames.len(),
                max: areas.request.len(),
            }
            .into());
        }
        let segments = bulk_in.len() + out_lens.clone().count();
        if segments > max_segments {
            return Err(ChainError::TooManySegments {
                count: segments,
                max: max_segments,
            }
            .into());
        }
        let bulk: usize = bulk_in
            .iter()
            .filter(|b| self.shared_offset(b).is_none())
            .map(|b| align_up(b.len()))
            .chain(
                out_lens
                    .clone()
                    .map(|(n, shared)| if shared.is_some() { 0 } else { align_up(n) }),
            )
            .sum();
        if bulk > areas.staging.len() {
            return Err(ChainError::BulkTooLarge {
                len: bulk,
                max: areas.staging.len(),
            }
            .into());
        }

        self.descs.clear();
        self.arena.write(areas.request.start, frames);
        self.descs.push(Desc {
            addr: self.arena.gpa(areas.request.start),
            len: frames.len() as u32,
            write: false,
        });
        let mut at = areas.staging.start;
        for b in bulk_in {
            let addr = match self.shared_offset(b) {
                Some(off) => self.arena.gpa(off),
                None => {
                    let off = at;
                    self.arena.write(off, b);
                    at += align_up(b.len());
                    self.arena.gpa(off)
                }
            };
            self.descs.push(Desc {
                addr,
                len: b.len() as u32,
                write: false,
            });
        }
        self.descs.push(Desc {
            addr: self.arena.gpa(areas.response.start),
            len: areas.response.len() as u32,
            write: true,
        });
        let mut outs = Vec::with_capacity(segments - bulk_in.len());
        for (n, shared) in out_lens {
            let off = match shared {
                Some(off) => off,
                None => {
                    let off = at;
                    outs.push(off);
                    at += align_up(n);
                    off
                }
            };
            self.descs.push(Desc {
                addr: self.arena.gpa(off),
                len: n as u32,
                write: true,
            });
        }
        Ok(outs)
    }

    /// The arena offset of `b` if it lies in the host heap (then it is not
    /// staged). Empty segments are always staged (their address may dangle).
    fn shared_offset(&self, b: &[u8]) -> Option<usize> {
        if b.is_empty() {
            return None;
        }
        self.arena
            .offset_in(&self.layout.host, b.as_ptr() as usize, b.len())
    }

    /// Publishes the chain in `self.descs` at descriptor `head` of queue
    /// `qi` and kicks the device if it asked for it.
    fn publish(&mut self, qi: usize, head: u16) -> Result<(), TransportError> {
        let q = &mut self.queues[qi];
        if q.ring.publish_at(head, &self.descs) {
            if let Err(e) = q.kick.write(1) {
                return Err(self.fail(LinkError::Kick(e)));
            }
        }
        Ok(())
    }

    /// Waits for the next used element of queue `qi`, which must be the
    /// chain at descriptor `head` with a response that fits `response`.
    fn wait(
        &mut self,
        qi: usize,
        head: u16,
        response: &Range<usize>,
        policy: WaitPolicy,
    ) -> Result<Vec<u8>, TransportError> {
        let q = &mut self.queues[qi];
        let used = q
            .ring
            .wait_used(&q.call, std::os::fd::AsRawFd::as_raw_fd(&self.sock), policy);
        let (id, len) = match used {
            Ok(u) => u,
            Err(e) => return Err(self.fail(e)),
        };
        if id != u32::from(head) || len as usize > response.len() {
            return Err(self.fail(LinkError::BadCompletion { id, len, head }));
        }
        let mut resp = vec![0u8; len as usize];
        self.arena.read(response.start, &mut resp);
        Ok(resp)
    }

    /// Completes every pipelined chain still in flight, discarding their
    /// results, so that a lone chain may use the whole arena again.
    fn drain(&mut self) -> Result<(), TransportError> {
        while !self.in_flight.is_empty() {
            self.finish(&mut [])?;
        }
        Ok(())
    }
}

impl Transport for VhostUserTransport {
    fn limits(&self) -> Limits {
        Limits {
            max_frames_len: self.layout.request.len(),
            // One descriptor each for the request and response areas.
            max_segments: protocol::QUEUE_SIZE as usize - 2,
            max_bulk: self.layout.staging.len().min(MAX_TRANSFER_LEN as usize),
        }
    }

    fn pipe_limits(&self) -> Option<PipeLimits> {
        let slot = self.slots.first()?;
        let max_segments = self.slot_descs().checked_sub(2).filter(|&n| n > 0)?;
        // Leave room for aligning every segment, so that any chain within
        // these limits fits its slot.
        let max_bulk = slot
            .staging
            .len()
            .checked_sub(max_segments * SEGMENT_ALIGN)
            .filter(|&n| n > 0)?;
        Some(PipeLimits {
            depth: self.slots.len(),
            max_frames_len: slot.request.len(),
            max_segments,
            max_bulk: max_bulk.min(MAX_TRANSFER_LEN as usize),
        })
    }

    fn submit_on(
        &mut self,
        queue: QueueClass,
        chain: Chain<'_>,
    ) -> Result<Vec<u8>, TransportError> {
        self.check_usable()?;
        // A lone chain uses descriptors 0.. and the whole arena.
        self.drain()?;
        let areas = Slot {
            request: self.layout.request.clone(),
            response: self.layout.response.clone(),
            staging: self.layout.staging.clone(),
        };
        let max_segments = self.limits().max_segments;
        let shared_outs: Vec<Option<usize>> = chain
            .bulk_out
            .iter()
            .map(|b| self.shared_offset(b))
            .collect();
        let outs = self.stage(
            &areas,
            max_segments,
            chain.frames,
            chain.bulk_in,
            chain
                .bulk_out
                .iter()
                .map(|b| b.len())
                .zip(shared_outs.iter().copied()),
        )?;
        let qi = match queue {
            QueueClass::Control => CONTROL_QUEUE,
            QueueClass::Request => REQUEST_QUEUE,
        };
        self.publish(qi, 0)?;
        let resp = self.wait(qi, 0, &areas.response, self.policy)?;
        let staged = chain
            .bulk_out
            .iter_mut()
            .zip(&shared_outs)
            .filter(|(_, shared)| shared.is_none());
        for ((b, _), at) in staged.zip(outs) {
            self.arena.read(at, b);
        }
        Ok(resp)
    }

    fn start(&mut self, chain: PipeChain<'_>) -> Result<(), TransportError> {
        self.check_usable()?;
        let Some(limits) = self.pipe_limits() else {
            return Err(ChainError::NotPipelined.into());
        };
        if self.in_flight.len() >= limits.depth {
            return Err(ChainError::PipelineFull {
                depth: self.in_flight.len(),
            }
            .into());
        }
        // Chains complete in order and slots are taken round-robin, so the
        // next slot is the one whose chain completed longest ago.
        let slot = self.next_slot;
        let areas = self.slots[slot].clone();
        let outs = self.stage(
            &areas,
            limits.max_segments,
            chain.frames,
            chain.bulk_in,
            chain.out_lens.iter().map(|&n| (n, None)),
        )?;
        let head = (slot * self.slot_descs()) as u16;
        self.publish(REQUEST_QUEUE, head)?;
        self.in_flight.push_back(InFlight {
            slot,
            head,
            outs: outs
                .into_iter()
                .zip(chain.out_lens.iter().copied())
                .collect(),
        });
        self.next_slot = (slot + 1) % limits.depth;
        Ok(())
    }

    fn host_alloc(&mut self, len: usize) -> Option<*mut u8> {
        let r = self.heap.alloc(len)?;
        Some(self.arena.addr(r.start))
    }

    fn host_free(&mut self, addr: usize) -> Option<usize> {
        let off = self.arena.offset_in(&self.layout.host, addr, 0)?;
        let r = self.heap.free(off)?;
        self.arena.discard(&r);
        Some(r.len())
    }

    fn host_block(&self, addr: usize) -> Option<std::ops::Range<usize>> {
        let off = self.arena.offset_in(&self.layout.host, addr, 0)?;
        let r = self.heap.block_of(off)?;
        let base = self.arena.addr(0) as usize;
        Some(base + r.start..base + r.end)
    }

    fn is_shared(&self, addr: usize, len: usize) -> bool {
        len > 0 && self.arena.offset_in(&self.layout.host, addr, len).is_some()
    }

    fn finish(&mut self, bulk_out: &mut [&mut [u8]]) -> Result<Vec<u8>, TransportError> {
        self.check_usable()?;
        let Some(oldest) = self.in_flight.pop_front() else {
            return Err(ChainError::NothingInFlight.into());
        };
        let response = self.slots[oldest.slot].response.clone();
        let resp = self.wait(REQUEST_QUEUE, oldest.head, &response, self.policy)?;
        for (b, &(at, n)) in bulk_out.iter_mut().zip(&oldest.outs) {
            let n = n.min(b.len());
            self.arena.read(at, &mut b[..n]);
        }
        Ok(resp)
    }
}
