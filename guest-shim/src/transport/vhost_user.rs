//! Direct mode: the shim is the vhost-user frontend.
//!
//! Connects to the daemon's socket, shares a memfd [`Arena`] through
//! `SET_MEM_TABLE`, lays out one [`SplitRing`] per queue in it and kicks and
//! waits through eventfds. One chain is in flight at a time (the client
//! serializes calls), so the request, response and staging areas are reused
//! by every chain.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use protocol::limits::MAX_TRANSFER_LEN;
use protocol::{QueueClass, CONTROL_QUEUE, NUM_QUEUES, REQUEST_QUEUE};
use vhost::vhost_user::message::{VhostUserHeaderFlag, VhostUserProtocolFeatures};
use vhost::vhost_user::{Frontend, VhostUserFrontend};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::arena::{align_up, Arena, Layout, DEFAULT_ARENA_MB};
use super::ring::{Desc, SplitRing, WaitPolicy};
use super::{Chain, Limits, Transport, TransportError};

const VIRTIO_F_VERSION_1: u64 = 1 << 32;
const VIRTIO_RING_F_EVENT_IDX: u64 = 1 << 29;
const VHOST_USER_F_PROTOCOL_FEATURES: u64 = 1 << 30;

/// Default busy-poll time before sleeping, in microseconds.
pub const DEFAULT_POLL_US: u64 = 100;
/// Default time after which a daemon that does not answer is given up on.
/// Long enough for a slow synchronizing call (a long kernel under
/// `clFinish`), short enough that a wedged daemon does not hang the guest.
pub const DEFAULT_TIMEOUT_MS: u64 = 300_000;

/// Tunables of direct mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Arena size in bytes (`VCOMPUTE_ARENA_MB`).
    pub arena_len: usize,
    /// Busy-poll time before sleeping (`VCOMPUTE_POLL_US`).
    pub poll: Duration,
    /// Longest wait for one completion (`VCOMPUTE_TIMEOUT_MS`).
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            arena_len: DEFAULT_ARENA_MB << 20,
            poll: Duration::from_micros(DEFAULT_POLL_US),
            timeout: Duration::from_millis(DEFAULT_TIMEOUT_MS),
        }
    }
}

impl Options {
    /// Defaults overridden by `VCOMPUTE_ARENA_MB`, `VCOMPUTE_POLL_US` and
    /// `VCOMPUTE_TIMEOUT_MS`; unparsable values keep the default.
    pub fn from_env() -> Self {
        fn num(name: &str) -> Option<u64> {
            std::env::var(name).ok()?.trim().parse().ok()
        }
        let d = Options::default();
        Options {
            arena_len: num("VCOMPUTE_ARENA_MB")
                .and_then(|mb| usize::try_from(mb).ok()?.checked_mul(1 << 20))
                .unwrap_or(d.arena_len),
            poll: num("VCOMPUTE_POLL_US")
                .map(Duration::from_micros)
                .unwrap_or(d.poll),
            timeout: num("VCOMPUTE_TIMEOUT_MS")
                .filter(|&ms| ms > 0)
                .map(Duration::from_millis)
                .unwrap_or(d.timeout),
        }
    }
}

struct Queue {
    ring: SplitRing,
    kick: EventFd,
    call: EventFd,
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
    policy: WaitPolicy,
    /// Descriptor scratch space, reused by every chain.
    descs: Vec<Desc>,
    /// Set once a chain could not complete; the arena may still be in use
    /// by the device, so no further chain is sent.
    broken: Option<String>,
}

impl std::fmt::Debug for VhostUserTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VhostUserTransport")
            .field("arena", &self.arena)
            .field("layout", &self.layout)
            .field("policy", &self.policy)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

fn setup<E: std::fmt::Display>(step: &'static str) -> impl FnOnce(E) -> TransportError {
    move |e| TransportError::Setup(format!("{step}: {e}"))
}

impl VhostUserTransport {
    /// Connects to the daemon's socket and performs the vhost-user setup.
    pub fn connect(path: &Path, opts: &Options) -> Result<Self, TransportError> {
        let sock = UnixStream::connect(path).map_err(|source| TransportError::Connect {
            path: path.display().to_string(),
            source,
        })?;
        let watch = sock.try_clone().map_err(setup("dup socket"))?;
        let mut frontend = Frontend::from_stream(sock, NUM_QUEUES as u64);

        frontend.set_owner().map_err(setup("SET_OWNER"))?;
        let offered = frontend.get_features().map_err(setup("GET_FEATURES"))?;
        if offered & VIRTIO_F_VERSION_1 == 0 {
            return Err(TransportError::Setup(
                "the daemon does not offer VIRTIO_F_VERSION_1".into(),
            ));
        }
        let acked = offered
            & (VIRTIO_F_VERSION_1 | VIRTIO_RING_F_EVENT_IDX | VHOST_USER_F_PROTOCOL_FEATURES);
        frontend
            .set_features(acked)
            .map_err(setup("SET_FEATURES"))?;
        let event_idx = acked & VIRTIO_RING_F_EVENT_IDX != 0;
        let protocol = acked & VHOST_USER_F_PROTOCOL_FEATURES != 0;

        if protocol {
            let pf = frontend
                .get_protocol_features()
                .map_err(setup("GET_PROTOCOL_FEATURES"))?;
            let want = pf & (VhostUserProtocolFeatures::MQ | VhostUserProtocolFeatures::REPLY_ACK);
            frontend
                .set_protocol_features(want)
                .map_err(setup("SET_PROTOCOL_FEATURES"))?;
            if want.contains(VhostUserProtocolFeatures::REPLY_ACK) {
                frontend.set_hdr_flags(VhostUserHeaderFlag::NEED_REPLY);
            }
            if want.contains(VhostUserProtocolFeatures::MQ) {
                let n = frontend.get_queue_num().map_err(setup("GET_QUEUE_NUM"))?;
                if n < NUM_QUEUES as u64 {
                    return Err(TransportError::Setup(format!(
                        "the daemon has {n} queues, {NUM_QUEUES} needed"
                    )));
                }
            }
        }

        let layout = Layout::new(opts.arena_len, NUM_QUEUES).ok_or_else(|| {
            TransportError::Setup(format!(
                "arena of {} MiB leaves no room for bulk staging",
                opts.arena_len >> 20
            ))
        })?;
        let arena = Arena::new(opts.arena_len).map_err(setup("memfd arena"))?;
        let region = VhostUserMemoryRegionInfo {
            guest_phys_addr: arena.gpa(0),
            memory_size: arena.len() as u64,
            userspace_addr: arena.base() as u64,
            mmap_offset: 0,
            mmap_handle: arena.fd(),
        };
        frontend
            .set_mem_table(&[region])
            .map_err(setup("SET_MEM_TABLE"))?;

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
            let kick = EventFd::new(EFD_NONBLOCK).map_err(setup("eventfd"))?;
            let call = EventFd::new(EFD_NONBLOCK).map_err(setup("eventfd"))?;
            let (desc, avail, used) = ring.addresses();
            frontend
                .set_vring_num(q, ring.size())
                .map_err(setup("SET_VRING_NUM"))?;
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
                .map_err(setup("SET_VRING_ADDR"))?;
            frontend
                .set_vring_base(q, 0)
                .map_err(setup("SET_VRING_BASE"))?;
            frontend
                .set_vring_call(q, &call)
                .map_err(setup("SET_VRING_CALL"))?;
            frontend
                .set_vring_kick(q, &kick)
                .map_err(setup("SET_VRING_KICK"))?;
            if protocol {
                frontend
                    .set_vring_enable(q, true)
                    .map_err(setup("SET_VRING_ENABLE"))?;
            }
            queues.push(Queue { ring, kick, call });
        }

        Ok(VhostUserTransport {
            _frontend: frontend,
            sock: watch,
            queues,
            arena,
            layout,
            policy: WaitPolicy {
                spin: opts.poll,
                timeout: opts.timeout,
            },
            descs: Vec::with_capacity(protocol::QUEUE_SIZE as usize),
            broken: None,
        })
    }

    fn fail(&mut self, e: TransportError) -> TransportError {
        if let TransportError::Disconnected(why) = &e {
            self.broken = Some(why.clone());
        }
        e
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

    fn submit_on(
        &mut self,
        queue: QueueClass,
        chain: Chain<'_>,
    ) -> Result<Vec<u8>, TransportError> {
        if let Some(why) = &self.broken {
            return Err(TransportError::Disconnected(why.clone()));
        }
        let limits = self.limits();
        if chain.frames.is_empty() {
            return Err(TransportError::TooLarge(
                "a chain needs at least one frame".into(),
            ));
        }
        if chain.frames.len() > limits.max_frames_len {
            return Err(TransportError::TooLarge(format!(
                "{} bytes of frames, request area holds {}",
                chain.frames.len(),
                limits.max_frames_len
            )));
        }
        let segments = chain.bulk_in.len() + chain.bulk_out.len();
        if segments > limits.max_segments {
            return Err(TransportError::TooLarge(format!(
                "{segments} bulk segments, a chain holds {}",
                limits.max_segments
            )));
        }
        let bulk: usize = chain
            .bulk_in
            .iter()
            .map(|b| align_up(b.len()))
            .chain(chain.bulk_out.iter().map(|b| align_up(b.len())))
            .sum();
        if bulk > self.layout.staging.len() {
            return Err(TransportError::TooLarge(format!(
                "{bulk} bytes of bulk data, staging holds {} (split with Client::max_chunk)",
                self.layout.staging.len()
            )));
        }

        let mut descs = std::mem::take(&mut self.descs);
        descs.clear();
        self.arena.write(self.layout.request.start, chain.frames);
        descs.push(Desc {
            addr: self.arena.gpa(self.layout.request.start),
            len: chain.frames.len() as u32,
            write: false,
        });
        let mut at = self.layout.staging.start;
        for b in chain.bulk_in {
            self.arena.write(at, b);
            descs.push(Desc {
                addr: self.arena.gpa(at),
                len: b.len() as u32,
                write: false,
            });
            at += align_up(b.len());
        }
        descs.push(Desc {
            addr: self.arena.gpa(self.layout.response.start),
            len: self.layout.response.len() as u32,
            write: true,
        });
        let out_start = at;
        for b in chain.bulk_out.iter() {
            descs.push(Desc {
                addr: self.arena.gpa(at),
                len: b.len() as u32,
                write: true,
            });
            at += align_up(b.len());
        }

        let qi = match queue {
            QueueClass::Control => CONTROL_QUEUE,
            QueueClass::Request => REQUEST_QUEUE,
        };
        let q = &mut self.queues[qi];
        let published = q.ring.publish(&descs);
        self.descs = descs;
        if published {
            if let Err(e) = q.kick.write(1) {
                let e = TransportError::Disconnected(format!("kick: {e}"));
                return Err(self.fail(e));
            }
        }
        let used = q.ring.wait_used(
            &q.call,
            std::os::fd::AsRawFd::as_raw_fd(&self.sock),
            self.policy,
        );
        let (id, len) = match used {
            Ok(u) => u,
            Err(e) => return Err(self.fail(e)),
        };
        if id != 0 || len as usize > self.layout.response.len() {
            let e = TransportError::Disconnected(format!(
                "the daemon returned used element ({id}, {len}) for chain 0"
            ));
            return Err(self.fail(e));
        }
        let mut resp = vec![0u8; len as usize];
        self.arena.read(self.layout.response.start, &mut resp);
        let mut at = out_start;
        for b in chain.bulk_out.iter_mut() {
            let n = b.len();
            self.arena.read(at, b);
            at += align_up(n);
        }
        Ok(resp)
    }
}
