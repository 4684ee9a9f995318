//! A minimal in-process vhost-user backend for the shim's transport
//! tests (see `transport.rs` for what it answers).
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use protocol::opencl::{
    Empty, EnqueueCommon, EnqueueReadBuffer, EnqueueWriteBuffer, ObjectKind, Release,
};
use protocol::session::{SessionOpened, FEATURE_BATCH, FEATURE_OPENCL};
use protocol::{
    decode_request, encode_response, FrameIter, Outcome, ProtocolError, Request, Response,
    FLAG_ASYNC, PROTOCOL_VERSION,
};
use vhost::vhost_user::message::VhostUserProtocolFeatures;
use vhost::vhost_user::Listener;
use vhost_user_backend::{ShutdownHandle, VhostUserBackend, VhostUserDaemon, VringRwLock, VringT};
use virtio_queue::{DescriptorChain, QueueT};
use vm_memory::{Bytes, GuestAddressSpace, GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::event::{
    new_event_consumer_and_notifier, EventConsumer, EventFlag, EventNotifier,
};

pub const CL_INVALID_MEM_OBJECT: i32 = -38;
pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;
pub const VIRTIO_RING_F_EVENT_IDX: u64 = 1 << 29;
pub const VHOST_USER_F_PROTOCOL_FEATURES: u64 = 1 << 30;

pub type Mem = GuestMemoryAtomic<GuestMemoryMmap>;

/// One chain as the backend saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenChain {
    pub queue: u16,
    pub frames: usize,
    pub async_frames: usize,
}

#[derive(Default)]
pub struct State {
    pub mem: Mutex<Option<Mem>>,
    pub buffers: Mutex<HashMap<u64, Vec<u8>>>,
    pub chains: Mutex<Vec<SeenChain>>,
    pub kicks: [AtomicUsize; 2],
    pub closes: AtomicUsize,
    pub refuse_version: AtomicBool,
    /// Discard written bulk data unread (bandwidth benchmark).
    pub sink: AtomicBool,
    /// Serve the request queue from a busy-polling thread, no kicks.
    pub poll: AtomicBool,
    pub poller_started: AtomicBool,
    pub stop: Arc<AtomicBool>,
    pub shutdown: Mutex<Option<ShutdownHandle>>,
}

#[derive(Clone, Default)]
pub struct TestBackend(pub Arc<State>);

impl TestBackend {
    /// Executes one frame; `None` means "never answer".
    pub fn execute(&self, req: Request, ins: &[Vec<u8>], outs: &mut [Vec<u8>]) -> Option<Outcome> {
        let st = &self.0;
        let ok = Outcome::Ok;
        Some(match req {
            Request::SessionOpen(o) => {
                if st.refuse_version.load(Ordering::Relaxed) {
                    Outcome::Protocol(ProtocolError::VersionMismatch)
                } else {
                    ok(Response::SessionOpen(SessionOpened {
                        version: PROTOCOL_VERSION,
                        features: o.features & (FEATURE_OPENCL | FEATURE_BATCH),
                        max_body_len: protocol::limits::MAX_BODY_LEN as u32,
                        max_transfer_len: protocol::limits::MAX_TRANSFER_LEN,
                        max_frames_per_chain: protocol::limits::MAX_FRAMES_PER_CHAIN as u32,
                    }))
                }
            }
            Request::SessionClose(_) => {
                st.closes.fetch_add(1, Ordering::Relaxed);
                ok(Response::SessionClose(Empty {}))
            }
            Request::Ping(_) => ok(Response::Ping(Empty {})),
            Request::ClEnqueueWriteBuffer(_) if st.sink.load(Ordering::Relaxed) => {
                ok(Response::ClEnqueueWriteBuffer(Empty {}))
            }
            Request::ClEnqueueWriteBuffer(w) => {
                let Some(data) = ins.first() else {
                    return Some(Outcome::Protocol(ProtocolError::BadDescriptor));
                };
                let mut bufs = st.buffers.lock().unwrap();
                let b = bufs.entry(w.buffer).or_default();
                let end = w.offset as usize + data.len();
                if b.len() < end {
                    b.resize(end, 0);
                }
                b[w.offset as usize..end].copy_from_slice(data);
                ok(Response::ClEnqueueWriteBuffer(Empty {}))
            }
            Request::ClEnqueueReadBuffer(r) => {
                let bufs = st.buffers.lock().unwrap();
                let (Some(b), Some(out)) = (bufs.get(&r.buffer), outs.first_mut()) else {
                    return Some(Outcome::Native(CL_INVALID_MEM_OBJECT));
                };
                let start = r.offset as usize;
                let n = out.len();
                out.copy_from_slice(&b[start..start + n]);
                ok(Response::ClEnqueueReadBuffer(Empty {}))
            }
            Request::ClRelease(r) => match st.buffers.lock().unwrap().remove(&r.object) {
                Some(_) => ok(Response::ClRelease(Empty {})),
                None => Outcome::Native(CL_INVALID_MEM_OBJECT),
            },
            Request::ClFinish(_) => return None,
            _ => Outcome::Protocol(ProtocolError::UnsupportedOpcode),
        })
    }

    /// Walks one chain per the protocol layout; returns the used length, or
    /// `None` to leave the chain unanswered.
    pub fn process(
        &self,
        queue: u16,
        chain: DescriptorChain<&GuestMemoryMmap>,
        mem: &GuestMemoryMmap,
    ) -> Option<u32> {
        let descs: Vec<_> = chain.collect();
        let nr = descs.iter().take_while(|d| !d.is_write_only()).count();
        let (readable, writable) = descs.split_at(nr);
        let (req_d, in_d) = readable.split_first().expect("request area");
        let (resp_d, out_d) = writable.split_first().expect("response area");
        assert!(writable.iter().all(|d| d.is_write_only()), "R after W");
        let mut area = vec![0u8; req_d.len() as usize];
        mem.read_slice(&mut area, req_d.addr())
            .expect("read request area");

        let (mut in_i, mut out_i) = (0, 0);
        let mut resp = Vec::new();
        let mut seen = SeenChain {
            queue,
            frames: 0,
            async_frames: 0,
        };
        for f in FrameIter::new(&area) {
            let f = f.expect("well-formed frame");
            seen.frames += 1;
            if f.header.flags & FLAG_ASYNC != 0 {
                seen.async_frames += 1;
            }
            let sink = self.0.sink.load(Ordering::Relaxed);
            let ins: Vec<Vec<u8>> = in_d[in_i..in_i + f.header.in_bulk as usize]
                .iter()
                .filter(|_| !sink)
                .map(|d| {
                    let mut v = vec![0u8; d.len() as usize];
                    mem.read_slice(&mut v, d.addr()).expect("read in-bulk");
                    v
                })
                .collect();
            in_i += f.header.in_bulk as usize;
            let out_ds = &out_d[out_i..out_i + f.header.out_bulk as usize];
            out_i += f.header.out_bulk as usize;
            let mut outs: Vec<Vec<u8>> =
                out_ds.iter().map(|d| vec![0u8; d.len() as usize]).collect();
            let outcome = match decode_request(&f, PROTOCOL_VERSION) {
                Ok(req) => self.execute(req, &ins, &mut outs)?,
                Err((e, _)) => Outcome::Protocol(e),
            };
            for (d, v) in out_ds.iter().zip(&outs) {
                mem.write_slice(v, d.addr()).expect("write out-bulk");
            }
            encode_response(&mut resp, f.header.request_id, f.header.opcode, &outcome);
        }
        assert_eq!(
            (in_i, out_i),
            (in_d.len(), out_d.len()),
            "bulk count mismatch"
        );
        assert!(resp.len() <= resp_d.len() as usize);
        mem.write_slice(&resp, resp_d.addr())
            .expect("write response");
        self.0.chains.lock().unwrap().push(seen);
        Some(resp.len() as u32)
    }
}

impl TestBackend {
    /// Serves `vring` by busy-polling with notifications disabled, as a
    /// polling daemon does; stops when the server is dropped.
    pub fn spawn_poller(&self, vring: VringRwLock, atomic: Mem) {
        let this = self.clone();
        let stop = self.0.stop.clone();
        thread::spawn(move || {
            let mem = atomic.memory();
            while !stop.load(Ordering::Relaxed) {
                let mut state = vring.get_mut();
                let q = state.get_queue_mut();
                if q.disable_notification(&*mem).is_err() {
                    break;
                }
                if let Some(chain) = q.pop_descriptor_chain(&*mem) {
                    let head = chain.head_index();
                    if let Some(len) = this.process(1, chain, &mem) {
                        let _ = q.add_used(&*mem, head, len);
                        let _ = state.signal_used_queue();
                    }
                }
                drop(state);
                std::hint::spin_loop();
            }
        });
    }
}

impl VhostUserBackend for TestBackend {
    type Bitmap = ();
    type Vring = VringRwLock;

    fn num_queues(&self) -> usize {
        protocol::NUM_QUEUES
    }
    fn max_queue_size(&self) -> usize {
        protocol::QUEUE_SIZE as usize
    }
    fn features(&self) -> u64 {
        VIRTIO_F_VERSION_1 | VIRTIO_RING_F_EVENT_IDX | VHOST_USER_F_PROTOCOL_FEATURES
    }
    fn protocol_features(&self) -> VhostUserProtocolFeatures {
        VhostUserProtocolFeatures::MQ | VhostUserProtocolFeatures::REPLY_ACK
    }
    fn set_event_idx(&self, _enabled: bool) {}
    fn update_memory(&self, mem: Mem) -> std::io::Result<()> {
        *self.0.mem.lock().unwrap() = Some(mem);
        Ok(())
    }
    fn exit_event(&self, _thread_index: usize) -> Option<(EventConsumer, EventNotifier)> {
        new_event_consumer_and_notifier(EventFlag::NONBLOCK).ok()
    }
    fn handle_event(
        &self,
        device_event: u16,
        _evset: EventSet,
        vrings: &[VringRwLock],
        _thread_id: usize,
    ) -> std::io::Result<()> {
        let Some(vring) = vrings.get(device_event as usize) else {
            return Ok(());
        };
        self.0.kicks[device_event as usize].fetch_add(1, Ordering::Relaxed);
        let atomic = self.0.mem.lock().unwrap().clone().expect("memory table");
        if device_event == 1
            && self.0.poll.load(Ordering::Relaxed)
            && !self.0.poller_started.swap(true, Ordering::Relaxed)
        {
            self.spawn_poller(vring.clone(), atomic.clone());
        }
        let mem = atomic.memory();
        let mut state = vring.get_mut();
        loop {
            state
                .get_queue_mut()
                .disable_notification(&*mem)
                .map_err(std::io::Error::other)?;
            while let Some(chain) = state.get_queue_mut().pop_descriptor_chain(&*mem) {
                let head = chain.head_index();
                if let Some(len) = self.process(device_event, chain, &mem) {
                    state
                        .get_queue_mut()
                        .add_used(&*mem, head, len)
                        .map_err(std::io::Error::other)?;
                }
            }
            if !state
                .get_queue_mut()
                .enable_notification(&*mem)
                .map_err(std::io::Error::other)?
            {
                break;
            }
        }
        if state
            .get_queue_mut()
            .needs_notification(&*mem)
            .map_err(std::io::Error::other)?
        {
            state.signal_used_queue()?;
        }
        Ok(())
    }
}

/// A test backend serving one connection on a fresh socket.
pub struct Server {
    pub path: PathBuf,
    pub backend: TestBackend,
    pub thread: Option<thread::JoinHandle<()>>,
}

static SOCKETS: AtomicUsize = AtomicUsize::new(0);

pub fn socket_path() -> PathBuf {
    let n = SOCKETS.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("vcompute-shim-{}-{n}.sock", std::process::id()))
}

impl Server {
    pub fn start() -> Server {
        Self::start_with(TestBackend::default())
    }

    pub fn start_with(backend: TestBackend) -> Server {
        let path = socket_path();
        let mut listener = Listener::new(&path, true).expect("listen");
        let b = backend.clone();
        let thread = thread::spawn(move || {
            let mem = GuestMemoryAtomic::new(GuestMemoryMmap::new());
            let mut daemon =
                VhostUserDaemon::new("test-backend".into(), b.clone(), mem).expect("daemon");
            daemon.start(&mut listener).expect("accept");
            *b.0.shutdown.lock().unwrap() = daemon.shutdown_handle();
            let _ = daemon.wait();
        });
        Server {
            path,
            backend,
            thread: Some(thread),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("vhost-user:{}", self.path.display())
    }

    pub fn state(&self) -> &State {
        &self.backend.0
    }

    /// Closes the backend's end of the connection, as a crashed daemon would.
    pub fn kill(&self) {
        if let Some(h) = self.state().shutdown.lock().unwrap().as_ref() {
            h.shutdown();
        }
    }

    pub fn chains(&self) -> Vec<SeenChain> {
        self.state().chains.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.state().stop.store(true, Ordering::Relaxed);
        self.kill();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

pub fn release(object: u64) -> Request {
    Request::ClRelease(Release {
        kind: ObjectKind::MemObject,
        object,
    })
}

pub fn write(buffer: u64, offset: u64, size: usize) -> Request {
    Request::ClEnqueueWriteBuffer(EnqueueWriteBuffer {
        common: EnqueueCommon::default(),
        buffer,
        offset,
        size: size as u64,
    })
}

pub fn read(buffer: u64, offset: u64, size: usize) -> Request {
    Request::ClEnqueueReadBuffer(EnqueueReadBuffer {
        common: EnqueueCommon::default(),
        buffer,
        offset,
        size: size as u64,
    })
}

pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 12) as u8)
        .collect()
}
