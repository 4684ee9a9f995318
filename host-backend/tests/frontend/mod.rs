//! A minimal vhost-user frontend and guest driver for driving the daemon in
//! tests: a file-backed memory region shared through `SET_MEM_TABLE`, two
//! split virtqueues laid out in it, and a synchronous submit-and-poll loop.
//! `device.rs` beside it adds a device-mode driver: device headers,
//! sessions, segments of several descriptors. Also a fake executor factory
//! that counts live executors.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod device;

use std::path::Path;
use std::sync::atomic::{fence, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use protocol::opencl::{Empty, HandleList};
use protocol::session::{FEATURE_BATCH, FEATURE_OPENCL, PROTOCOL_VERSION};
use protocol::{encode_request, FrameIter, Outcome, Request, Response, SessionOpen};
use vhost::vhost_user::message::{VhostUserProtocolFeatures, VhostUserVirtioFeatures};
use vhost::vhost_user::{Frontend, VhostUserFrontend};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use vhost_device_compute::executor::{Bulk, ExecError, Executor, ExecutorError, ExecutorFactory};
use vhost_device_compute::limits::SessionLimits;
use virtio_bindings::virtio_ring::VIRTIO_RING_F_INDIRECT_DESC;
use vm_memory::{Bytes, FileOffset, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

/// Size of the shared guest memory.
pub const MEM_SIZE: u64 = 4 << 20;
/// Queue size the driver uses.
pub const QSIZE: u16 = 256;
/// Where request and response areas live.
pub const REQ_AREA: u64 = 0x10_0000;
pub const RESP_AREA: u64 = 0x20_0000;
pub const RESP_LEN: u32 = 0x10_0000;
/// Where bulk segments of [`TestGuest::call_frames`] live (to `MEM_SIZE`).
pub const BULK_AREA: u64 = 0x30_0000;

/// What [`TestGuest::call_frames`] returns: each answered frame's request
/// id and outcome, and the bytes of every writable segment.
pub type Answered = (Vec<(u64, Outcome)>, Vec<Vec<u8>>);

/// One frame of [`TestGuest::call_frames`]: a request, its header flags,
/// its readable segments and the lengths of its writable ones.
#[derive(Debug, Clone)]
pub struct FrameSpec {
    pub req: Request,
    pub flags: u16,
    pub input: Vec<Vec<u8>>,
    pub output: Vec<u32>,
}

impl FrameSpec {
    /// A frame without bulk.
    pub fn plain(req: Request) -> Self {
        FrameSpec {
            req,
            flags: 0,
            input: vec![],
            output: vec![],
        }
    }
}

fn ring_base(q: usize) -> u64 {
    q as u64 * 0x1_0000
}

/// Where [`TestGuest::post`] puts an indirect table, in a queue's ring area.
const INDIRECT_TABLE: u64 = 0x4000;

/// A fake executor factory; counts executors opened and still alive.
#[derive(Default)]
pub struct FakeFactory {
    pub opened: AtomicUsize,
    pub live: Arc<AtomicUsize>,
    pub requests: Arc<Mutex<Vec<Request>>>,
}

struct FakeExecutor {
    live: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Drop for FakeExecutor {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Executor for FakeExecutor {
    fn execute(&mut self, req: Request, _bulk: &Bulk<'_>) -> Result<Response, ExecError> {
        self.requests.lock().unwrap().push(req.clone());
        match req {
            Request::ClGetPlatformIds(_) => {
                Ok(Response::ClGetPlatformIds(HandleList { handles: vec![7] }))
            }
            Request::ClFinish(_) => Err(ExecError::Native(-36)),
            _ => Err(ExecError::Native(-30)),
        }
    }
}

impl ExecutorFactory for FakeFactory {
    fn name(&self) -> &'static str {
        "fake"
    }
    fn features(&self) -> u64 {
        FEATURE_OPENCL
    }
    fn open(&self, _limits: SessionLimits) -> Result<Box<dyn Executor>, ExecutorError> {
        self.opened.fetch_add(1, Ordering::SeqCst);
        self.live.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(FakeExecutor {
            live: self.live.clone(),
            requests: self.requests.clone(),
        }))
    }
}

/// One guest: a vhost-user frontend plus the driver side of both queues.
pub struct TestGuest {
    pub frontend: Frontend,
    pub mem: GuestMemoryMmap,
    kicks: Vec<EventFd>,
    calls: Vec<EventFd>,
    avail_idx: [u16; 2],
    used_seen: [u16; 2],
    next_id: u64,
    features: u64,
}

impl TestGuest {
    /// Connects and runs the vhost-user setup for both queues.
    pub fn connect(path: &Path) -> std::io::Result<Self> {
        Self::connect_with(path, 0)
    }

    /// Connects as a VMM would to a daemon in device mode: also acks
    /// INDIRECT_DESC (not the device's F_CONFIG, which a carrier device
    /// filters out).
    pub fn connect_device(path: &Path) -> std::io::Result<Self> {
        Self::connect_with(path, 1 << VIRTIO_RING_F_INDIRECT_DESC)
    }

    fn connect_with(path: &Path, extra: u64) -> std::io::Result<Self> {
        let err = |e: vhost::Error| std::io::Error::other(e.to_string());
        let mut frontend = Frontend::connect(path, 2).map_err(err)?;
        frontend.set_owner().map_err(err)?;
        let want = Self::features(&mut frontend, extra).map_err(err)?;
        let file = tempfile::tempfile()?;
        file.set_len(MEM_SIZE)?;
        let mem = GuestMemoryMmap::<()>::from_ranges_with_files(&[(
            GuestAddress(0),
            MEM_SIZE as usize,
            Some(FileOffset::new(file, 0)),
        )])
        .unwrap();
        let region = mem.find_region(GuestAddress(0)).unwrap();
        let info = VhostUserMemoryRegionInfo::from_guest_region(region).unwrap();
        frontend.set_mem_table(&[info]).map_err(err)?;
        let mut guest = TestGuest {
            frontend,
            mem,
            kicks: Vec::new(),
            calls: Vec::new(),
            avail_idx: [0; 2],
            used_seen: [0; 2],
            next_id: 1,
            features: want,
        };
        for q in 0..2 {
            guest.setup_queue(q).map_err(err)?;
        }
        Ok(guest)
    }

    /// Negotiates the features (the base set plus `extra`); returns them.
    fn features(fe: &mut Frontend, extra: u64) -> vhost::Result<u64> {
        let features = fe.get_features()?;
        let want =
            (1u64 << 32) | (1 << 29) | VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits() | extra;
        assert_eq!(features & want, want, "daemon lacks a required feature");
        fe.set_features(want)?;
        let proto = fe.get_protocol_features()?;
        assert!(
            proto.contains(VhostUserProtocolFeatures::MQ | VhostUserProtocolFeatures::REPLY_ACK)
        );
        fe.set_protocol_features(proto)?;
        assert_eq!(fe.get_queue_num()?, 2);
        Ok(want)
    }

    /// After a `RESET_DEVICE`: negotiates the features again and sets up
    /// both queues afresh, as a driver re-probing the device does.
    pub fn reinit(&mut self) -> vhost::Result<()> {
        let extra = self.features & (1 << VIRTIO_RING_F_INDIRECT_DESC);
        self.features = Self::features(&mut self.frontend, extra)?;
        self.kicks.clear();
        self.calls.clear();
        for q in 0..2 {
            let zeros = vec![0u8; 0x1_0000];
            self.mem
                .write_slice(&zeros, GuestAddress(ring_base(q)))
                .unwrap();
            self.avail_idx[q] = 0;
            self.used_seen[q] = 0;
            self.setup_queue(q)?;
        }
        Ok(())
    }

    fn host(&self, gpa: u64) -> u64 {
        self.mem.get_host_address(GuestAddress(gpa)).unwrap() as u64
    }

    fn setup_queue(&mut self, q: usize) -> vhost::Result<()> {
        let base = ring_base(q);
        self.frontend.set_vring_num(q, QSIZE)?;
        let cfg = VringConfigData {
            queue_max_size: QSIZE,
            queue_size: QSIZE,
            flags: 0,
            desc_table_addr: self.host(base),
            used_ring_addr: self.host(base + 0x2000),
            avail_ring_addr: self.host(base + 0x1000),
            log_addr: None,
        };
        self.frontend.set_vring_addr(q, &cfg)?;
        self.frontend.set_vring_base(q, 0)?;
        let call = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let kick = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        self.frontend.set_vring_call(q, &call)?;
        self.frontend.set_vring_kick(q, &kick)?;
        self.frontend.set_vring_enable(q, true)?;
        self.calls.push(call);
        self.kicks.push(kick);
        Ok(())
    }

    /// Puts one chain of `(gpa, len, writable)` descriptors on queue `q`,
    /// kicks, and waits for it to be used; returns the used length.
    pub fn submit(&mut self, q: usize, descs: &[(u64, u32, bool)]) -> Option<u32> {
        self.post(q, descs, false);
        self.wait_used(q, Duration::from_secs(5))
    }

    /// Puts one chain on queue `q` and kicks, without waiting; with
    /// `indirect` the descriptors go in an indirect table that one ring
    /// descriptor points to. One chain per queue may be outstanding.
    pub fn post(&mut self, q: usize, descs: &[(u64, u32, bool)], indirect: bool) {
        let base = ring_base(q);
        let table = if indirect {
            base + INDIRECT_TABLE
        } else {
            base
        };
        assert!(
            !indirect || INDIRECT_TABLE + 16 * descs.len() as u64 <= 0x1_0000,
            "indirect table too long for the test ring area"
        );
        for (i, &(addr, len, write)) in descs.iter().enumerate() {
            let last = i + 1 == descs.len();
            let flags: u16 = (if last { 0 } else { 1 }) | (if write { 2 } else { 0 });
            let d = table + 16 * i as u64;
            self.mem.write_obj(addr, GuestAddress(d)).unwrap();
            self.mem.write_obj(len, GuestAddress(d + 8)).unwrap();
            self.mem.write_obj(flags, GuestAddress(d + 12)).unwrap();
            self.mem
                .write_obj(if last { 0u16 } else { i as u16 + 1 }, GuestAddress(d + 14))
                .unwrap();
        }
        if indirect {
            // One ring descriptor with VIRTQ_DESC_F_INDIRECT.
            self.mem.write_obj(table, GuestAddress(base)).unwrap();
            self.mem
                .write_obj(16 * descs.len() as u32, GuestAddress(base + 8))
                .unwrap();
            self.mem.write_obj(4u16, GuestAddress(base + 12)).unwrap();
            self.mem.write_obj(0u16, GuestAddress(base + 14)).unwrap();
        }
        let avail = base + 0x1000;
        let idx = self.avail_idx[q];
        self.mem
            .write_obj(0u16, GuestAddress(avail + 4 + 2 * u64::from(idx % QSIZE)))
            .unwrap();
        fence(Ordering::SeqCst);
        self.avail_idx[q] = idx.wrapping_add(1);
        self.mem
            .write_obj(self.avail_idx[q], GuestAddress(avail + 2))
            .unwrap();
        fence(Ordering::SeqCst);
        self.kicks[q].write(1).unwrap();
    }

    /// Waits up to `timeout` for the next used entry of queue `q`; returns
    /// its used length.
    pub fn wait_used(&mut self, q: usize, timeout: Duration) -> Option<u32> {
        let used = ring_base(q) + 0x2000;
        let deadline = Instant::now() + timeout;
        loop {
            let used_idx: u16 = self.mem.read_obj(GuestAddress(used + 2)).unwrap();
            if used_idx != self.used_seen[q] {
                fence(Ordering::SeqCst);
                let slot = u64::from(self.used_seen[q] % QSIZE);
                let len: u32 = self
                    .mem
                    .read_obj(GuestAddress(used + 4 + 8 * slot + 4))
                    .unwrap();
                self.used_seen[q] = self.used_seen[q].wrapping_add(1);
                return Some(len);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_micros(20));
        }
    }

    /// Sends `reqs` as one chain with no bulk; returns the decoded outcomes.
    pub fn call(&mut self, q: usize, reqs: &[Request]) -> Option<Vec<(u64, Outcome)>> {
        let mut area = Vec::new();
        for r in reqs {
            let id = self.next_id;
            self.next_id += 1;
            encode_request(&mut area, id, 0, r, 0, 0).unwrap();
        }
        self.mem.write_slice(&area, GuestAddress(REQ_AREA)).unwrap();
        let used = self.submit(
            q,
            &[
                (REQ_AREA, area.len() as u32, false),
                (RESP_AREA, RESP_LEN, true),
            ],
        )?;
        let mut resp = vec![0u8; used as usize];
        self.mem
            .read_slice(&mut resp, GuestAddress(RESP_AREA))
            .unwrap();
        Some(
            FrameIter::new(&resp)
                .map(|f| {
                    let f = f.unwrap();
                    (f.header.request_id, protocol::decode_response(&f).unwrap())
                })
                .collect(),
        )
    }

    /// Sends `frames` as one chain with their bulk segments; returns each
    /// answered frame's outcome and every writable segment's bytes.
    pub fn call_frames(&mut self, q: usize, frames: &[FrameSpec]) -> Option<Answered> {
        let mut area = Vec::new();
        let mut descs = Vec::new();
        let mut at = BULK_AREA;
        for f in frames {
            let id = self.next_id;
            self.next_id += 1;
            encode_request(
                &mut area,
                id,
                f.flags,
                &f.req,
                f.input.len() as u16,
                f.output.len() as u16,
            )
            .unwrap();
        }
        descs.push((REQ_AREA, area.len() as u32, false));
        for seg in frames.iter().flat_map(|f| &f.input) {
            self.mem.write_slice(seg, GuestAddress(at)).unwrap();
            descs.push((at, seg.len() as u32, false));
            at += seg.len() as u64;
        }
        descs.push((RESP_AREA, RESP_LEN, true));
        let mut outs = Vec::new();
        for &len in frames.iter().flat_map(|f| &f.output) {
            descs.push((at, len, true));
            outs.push((at, len));
            at += u64::from(len);
        }
        assert!(at <= MEM_SIZE, "bulk does not fit the test guest's memory");
        self.mem.write_slice(&area, GuestAddress(REQ_AREA)).unwrap();
        let used = self.submit(q, &descs)?;
        let mut resp = vec![0u8; used as usize];
        self.mem
            .read_slice(&mut resp, GuestAddress(RESP_AREA))
            .unwrap();
        let outcomes = FrameIter::new(&resp)
            .map(|f| {
                let f = f.unwrap();
                (f.header.request_id, protocol::decode_response(&f).unwrap())
            })
            .collect();
        let data = outs
            .into_iter()
            .map(|(addr, len)| {
                let mut v = vec![0u8; len as usize];
                self.mem.read_slice(&mut v, GuestAddress(addr)).unwrap();
                v
            })
            .collect();
        Some((outcomes, data))
    }

    /// Opens a session asking for `features`; returns the granted ones.
    pub fn open_session_with(&mut self, features: u64) -> u64 {
        let out = self
            .call(
                0,
                &[Request::SessionOpen(SessionOpen {
                    min_version: 1,
                    max_version: PROTOCOL_VERSION,
                    features,
                    client: "test".into(),
                })],
            )
            .expect("no answer to SessionOpen");
        match &out[..] {
            [(_, Outcome::Ok(Response::SessionOpen(o)))] => o.features,
            other => panic!("unexpected SessionOpen reply {other:?}"),
        }
    }

    /// Opens a session and checks the reply.
    pub fn open_session(&mut self) {
        let out = self
            .call(
                0,
                &[Request::SessionOpen(SessionOpen {
                    min_version: 1,
                    max_version: PROTOCOL_VERSION,
                    features: FEATURE_OPENCL | FEATURE_BATCH,
                    client: "test".into(),
                })],
            )
            .expect("no answer to SessionOpen");
        match &out[..] {
            [(_, Outcome::Ok(Response::SessionOpen(o)))] => {
                assert_eq!(o.version, PROTOCOL_VERSION);
                assert_eq!(o.features, FEATURE_OPENCL | FEATURE_BATCH);
            }
            other => panic!("unexpected SessionOpen reply {other:?}"),
        }
    }

    /// A Ping round trip.
    pub fn ping(&mut self) -> Outcome {
        let out = self
            .call(1, &[Request::Ping(Empty {})])
            .expect("no answer to Ping");
        assert_eq!(out.len(), 1);
        out.into_iter().next().unwrap().1
    }
}

/// Polls `f` until it is true or 5 s pass.
pub fn wait_until(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    f()
}
