//! A guest for the device with no VM: guest memory in a shared tmpfs file
//! (as a VMM's memfd), a host that records interrupts, and a driver that
//! plays the Linux virtio-mmio driver's register sequence and runs split
//! rings. Also the daemon binary, found or built.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{fence, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use protocol::device::{DeviceHeader, DeviceOp, DeviceStatus, StatusRecord, STATUS_LEN};
use protocol::{encode_request, FrameIter, Outcome, Request};
use vm_memory::{Bytes, FileOffset, GuestAddress, GuestMemoryMmap};
use vmm_plugin::spec::{
    interrupt, reg, status, FEATURE_CONFIG, FEATURE_EVENT_IDX, FEATURE_VERSION_1, NUM_QUEUES,
};
use vmm_plugin::{ComputeDevice, DeviceOptions, InterruptCause, VmmHost};
use vmm_sys_util::eventfd::EventFd;

/// Guest memory size.
pub const MEM_SIZE: u64 = 8 << 20;
/// Where the request and response areas and bulk segments live.
pub const REQ_AREA: u64 = 0x10_0000;
pub const RESP_AREA: u64 = 0x20_0000;
pub const RESP_LEN: u32 = 0x10_0000;
pub const BULK_AREA: u64 = 0x30_0000;
/// Queue size the driver uses.
pub const QSIZE: u16 = 256;

/// A name no other test of this process uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// One frame of a chain: the request, its readable segments, the lengths
/// of its writable ones.
pub type Frame = (Request, Vec<Vec<u8>>, Vec<u32>);
/// A chain's answer: each frame's request id and outcome, and the bytes of
/// every writable segment.
pub type Answered = (Vec<(u64, Outcome)>, Vec<Vec<u8>>);

/// Device mode: where queue `q`'s device header and status live.
pub fn dev_header_at(q: usize) -> u64 {
    0x4_0000 + 0x1000 * q as u64
}

/// Device mode: queue `q`'s status descriptor.
pub fn status_desc(q: usize) -> (u64, u32, bool) {
    (0x5_0000 + 0x1000 * q as u64, STATUS_LEN as u32, true)
}

/// A chain posted and not yet answered.
#[derive(Debug)]
pub struct Pending {
    outs: Vec<(u64, u32, bool)>,
    device: bool,
}

/// Where queue `q`'s rings live.
pub fn ring_base(q: usize) -> u64 {
    q as u64 * 0x1_0000
}

/// Guest memory backed by an unlinked file on tmpfs, shared with the
/// daemon through its fd as a VMM's memfd would be.
pub fn shared_memory(size: u64) -> GuestMemoryMmap {
    let dir = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let path = dir.join(unique("vmm-plugin-mem"));
    let file: File = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    file.set_len(size).unwrap();
    GuestMemoryMmap::from_ranges_with_files(&[(
        GuestAddress(0),
        size as usize,
        Some(FileOffset::new(file, 0)),
    )])
    .unwrap()
}

/// The VMM side for tests: memory, and every interrupt raised.
pub struct TestHost {
    pub mem: GuestMemoryMmap,
    irqs: Mutex<Vec<InterruptCause>>,
    cv: Condvar,
    /// When set, the host takes the kick eventfds as ioeventfds (as KVM
    /// would) and the driver's notify goes to them, not to the device.
    ioevents: Option<Mutex<Vec<EventFd>>>,
}

impl TestHost {
    pub fn new(mem: GuestMemoryMmap, ioeventfd: bool) -> Arc<Self> {
        Arc::new(TestHost {
            mem,
            irqs: Mutex::new(Vec::new()),
            cv: Condvar::new(),
            ioevents: ioeventfd.then(|| Mutex::new(Vec::new())),
        })
    }

    /// A 4-byte write of `queue` to `QueueNotify`, as the bus delivers it:
    /// to the ioeventfd when one is registered, else to the device.
    pub fn notify(&self, dev: &ComputeDevice, queue: u16) {
        match &self.ioevents {
            Some(fds) => fds.lock().unwrap()[usize::from(queue)].write(1).unwrap(),
            None => dev.write(reg::QUEUE_NOTIFY, &u32::from(queue).to_le_bytes()),
        }
    }

    /// How many interrupts of `cause` were raised so far.
    pub fn count(&self, cause: InterruptCause) -> usize {
        self.irqs
            .lock()
            .unwrap()
            .iter()
            .filter(|c| **c == cause)
            .count()
    }

    /// Waits until more than `seen` interrupts of `cause` were raised.
    pub fn wait_for(&self, cause: InterruptCause, seen: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut g = self.irqs.lock().unwrap();
        loop {
            if g.iter().filter(|c| **c == cause).count() > seen {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            g = self.cv.wait_timeout(g, left).unwrap().0;
        }
    }
}

impl VmmHost for TestHost {
    fn memory(&self) -> GuestMemoryMmap {
        self.mem.clone()
    }
    fn signal(&self, cause: InterruptCause) {
        self.irqs.lock().unwrap().push(cause);
        self.cv.notify_all();
    }
    fn register_notify(&self, queue: u16, kick: &EventFd) -> std::io::Result<bool> {
        let Some(fds) = &self.ioevents else {
            return Ok(false);
        };
        let mut fds = fds.lock().unwrap();
        assert_eq!(
            usize::from(queue),
            fds.len(),
            "queues registered out of order"
        );
        fds.push(kick.try_clone()?);
        Ok(true)
    }
}

/// Polls `f` until it is true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    f()
}

/// The guest driver.
pub struct Driver {
    pub dev: ComputeDevice,
    pub host: Arc<TestHost>,
    avail_idx: [u16; NUM_QUEUES],
    used_seen: [u16; NUM_QUEUES],
    next_id: u64,
    /// Features the driver accepted at the last init.
    pub features: u64,
    /// The device session chains carry (device mode), if one is open.
    pub session: Option<u32>,
}

impl Driver {
    /// A device on `socket` with fresh guest memory.
    pub fn new(socket: &Path) -> Self {
        Self::with_host(socket, TestHost::new(shared_memory(MEM_SIZE), false))
    }

    /// A device on `socket` whose host registers ioeventfds.
    pub fn with_ioeventfd(socket: &Path) -> Self {
        Self::with_host(socket, TestHost::new(shared_memory(MEM_SIZE), true))
    }

    fn with_host(socket: &Path, host: Arc<TestHost>) -> Self {
        let dev = ComputeDevice::new(socket, host.clone(), DeviceOptions::default()).unwrap();
        Driver {
            dev,
            host,
            avail_idx: [0; NUM_QUEUES],
            used_seen: [0; NUM_QUEUES],
            next_id: 1,
            features: 0,
            session: None,
        }
    }

    pub fn read32(&self, off: u64) -> u32 {
        let mut b = [0u8; 4];
        self.dev.read(off, &mut b);
        u32::from_le_bytes(b)
    }

    pub fn write32(&self, off: u64, v: u32) {
        self.dev.write(off, &v.to_le_bytes());
    }

    pub fn status(&self) -> u32 {
        self.read32(reg::STATUS)
    }

    fn set_status(&self, bits: u32) {
        self.write32(reg::STATUS, self.status() | bits);
    }

    /// The device's offered features.
    pub fn device_features(&self) -> u64 {
        self.write32(reg::DEVICE_FEATURES_SEL, 1);
        let hi = u64::from(self.read32(reg::DEVICE_FEATURES));
        self.write32(reg::DEVICE_FEATURES_SEL, 0);
        (hi << 32) | u64::from(self.read32(reg::DEVICE_FEATURES))
    }

    /// The config space bytes, read as Linux does (generation before and
    /// after, 4-byte reads).
    pub fn config(&self) -> Vec<u8> {
        loop {
            let gen = self.read32(reg::CONFIG_GENERATION);
            let mut out = Vec::new();
            for i in 0..(vmm_plugin::spec::CONFIG_LEN as u64 / 4) {
                out.extend_from_slice(&self.read32(reg::CONFIG + 4 * i).to_le_bytes());
            }
            if self.read32(reg::CONFIG_GENERATION) == gen {
                return out;
            }
        }
    }

    /// Linux's `virtio_mmio` probe plus `virtio_dev_probe`: reset,
    /// ACKNOWLEDGE, DRIVER, features, FEATURES_OK (re-read), queues,
    /// DRIVER_OK. Returns the final status.
    pub fn init(&mut self) -> u32 {
        assert_eq!(self.read32(reg::MAGIC_VALUE), 0x7472_6976);
        assert_eq!(self.read32(reg::VERSION), 2);
        assert_eq!(self.read32(reg::DEVICE_ID), 56);
        self.write32(reg::STATUS, 0);
        assert_eq!(self.status(), 0);
        self.set_status(status::ACKNOWLEDGE);
        self.set_status(status::DRIVER);
        let offered = self.device_features();
        let want = offered & (FEATURE_VERSION_1 | FEATURE_CONFIG | FEATURE_EVENT_IDX);
        self.write32(reg::DRIVER_FEATURES_SEL, 1);
        self.write32(reg::DRIVER_FEATURES, (want >> 32) as u32);
        self.write32(reg::DRIVER_FEATURES_SEL, 0);
        self.write32(reg::DRIVER_FEATURES, want as u32);
        self.set_status(status::FEATURES_OK);
        if self.status() & status::FEATURES_OK == 0 {
            return self.status();
        }
        self.features = want;
        for q in 0..NUM_QUEUES {
            self.setup_queue(q);
        }
        self.avail_idx = [0; NUM_QUEUES];
        self.used_seen = [0; NUM_QUEUES];
        self.session = None;
        // Fresh rings: zeroed as a new allocation would be.
        self.host
            .mem
            .write_slice(&vec![0u8; 0x2_0000], GuestAddress(0))
            .unwrap();
        self.set_status(status::DRIVER_OK);
        self.status()
    }

    fn setup_queue(&self, q: usize) {
        let base = ring_base(q);
        self.write32(reg::QUEUE_SEL, q as u32);
        assert_eq!(self.read32(reg::QUEUE_READY), 0);
        let max = self.read32(reg::QUEUE_NUM_MAX);
        assert!(max >= u32::from(QSIZE));
        self.write32(reg::QUEUE_NUM, u32::from(QSIZE));
        for (lo, addr) in [
            (reg::QUEUE_DESC_LOW, base),
            (reg::QUEUE_DRIVER_LOW, base + 0x1000),
            (reg::QUEUE_DEVICE_LOW, base + 0x2000),
        ] {
            self.write32(lo, addr as u32);
            self.write32(lo + 4, (addr >> 32) as u32);
        }
        self.write32(reg::QUEUE_READY, 1);
        assert_eq!(self.read32(reg::QUEUE_READY), 1, "queue {q} refused");
    }

    /// The rings' indices, for failure messages.
    pub fn ring_state(&self) -> String {
        let mem = &self.host.mem;
        (0..NUM_QUEUES)
            .map(|q| {
                let avail: u16 = mem.read_obj(GuestAddress(ring_base(q) + 0x1002)).unwrap();
                let used: u16 = mem.read_obj(GuestAddress(ring_base(q) + 0x2002)).unwrap();
                format!(
                    "q{q}: avail {avail} used {used} (driver: avail {} seen {})",
                    self.avail_idx[q], self.used_seen[q]
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Whether the driver is up and the device does not need a reset.
    pub fn live(&self) -> bool {
        let s = self.status();
        s & status::DRIVER_OK != 0 && s & status::DEVICE_NEEDS_RESET == 0
    }

    /// Acknowledges every pending interrupt; returns what was pending.
    pub fn ack(&self) -> u32 {
        let s = self.read32(reg::INTERRUPT_STATUS);
        self.write32(reg::INTERRUPT_ACK, s);
        s
    }

    /// Puts one chain of `(gpa, len, writable)` descriptors on queue `q`
    /// and notifies through `QueueNotify`.
    pub fn post(&mut self, q: usize, descs: &[(u64, u32, bool)]) {
        let mem = &self.host.mem;
        let base = ring_base(q);
        for (i, &(addr, len, write)) in descs.iter().enumerate() {
            let last = i + 1 == descs.len();
            let flags: u16 = (if last { 0 } else { 1 }) | (if write { 2 } else { 0 });
            let d = base + 16 * i as u64;
            mem.write_obj(addr, GuestAddress(d)).unwrap();
            mem.write_obj(len, GuestAddress(d + 8)).unwrap();
            mem.write_obj(flags, GuestAddress(d + 12)).unwrap();
            mem.write_obj(if last { 0u16 } else { i as u16 + 1 }, GuestAddress(d + 14))
                .unwrap();
        }
        let avail = base + 0x1000;
        let idx = self.avail_idx[q];
        mem.write_obj(0u16, GuestAddress(avail + 4 + 2 * u64::from(idx % QSIZE)))
            .unwrap();
        fence(Ordering::SeqCst);
        self.avail_idx[q] = idx.wrapping_add(1);
        mem.write_obj(self.avail_idx[q], GuestAddress(avail + 2))
            .unwrap();
        fence(Ordering::SeqCst);
        self.host.notify(&self.dev, q as u16);
    }

    /// Waits for the next used element of queue `q`, by used-buffer
    /// interrupt as Linux does (the ring is checked after each); returns
    /// its length.
    pub fn wait_used(&mut self, q: usize, timeout: Duration) -> Option<u32> {
        let mem = &self.host.mem;
        let used = ring_base(q) + 0x2000;
        let deadline = Instant::now() + timeout;
        loop {
            let seen = self.host.count(InterruptCause::UsedBuffer);
            let used_idx: u16 = mem.read_obj(GuestAddress(used + 2)).unwrap();
            if used_idx != self.used_seen[q] {
                fence(Ordering::SeqCst);
                let slot = u64::from(self.used_seen[q] % QSIZE);
                let len: u32 = mem.read_obj(GuestAddress(used + 4 + 8 * slot + 4)).unwrap();
                self.used_seen[q] = self.used_seen[q].wrapping_add(1);
                if self.features & FEATURE_EVENT_IDX != 0 {
                    // used_event: interrupt me at the next used buffer.
                    let at = ring_base(q) + 0x1000 + 4 + 2 * u64::from(QSIZE);
                    mem.write_obj(self.used_seen[q], GuestAddress(at)).unwrap();
                    fence(Ordering::SeqCst);
                }
                self.ack();
                return Some(len);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !self.live() {
                return None;
            }
            self.host.wait_for(
                InterruptCause::UsedBuffer,
                seen,
                left.min(Duration::from_millis(50)),
            );
        }
    }

    /// One chain of `frames`. Direct mode (no device session):
    /// `[R request area][R bulk..][W response area][W bulk..]`. Device mode
    /// (after [`Driver::dev_open`]): `[R device header][R request area]
    /// [R in-bulk..][W status][W response area][W out-bulk..]`. Returns the
    /// outcomes and the writable segments; `None` if no answer came or the
    /// device's status was not Ok.
    pub fn call_frames(&mut self, q: usize, frames: &[Frame]) -> Option<Answered> {
        let pending = self.post_frames(q, frames);
        self.complete(q, pending)
    }

    /// Puts the chain of `frames` on queue `q` and notifies, without
    /// waiting; [`Driver::complete`] collects the answer.
    pub fn post_frames(&mut self, q: usize, frames: &[Frame]) -> Pending {
        let mut area = Vec::new();
        let mut ins = Vec::new();
        let mut at = BULK_AREA;
        for (req, input, output) in frames {
            let id = self.next_id;
            self.next_id += 1;
            encode_request(
                &mut area,
                id,
                0,
                req,
                input.len() as u16,
                output.len() as u16,
            )
            .unwrap();
        }
        for seg in frames.iter().flat_map(|f| &f.1) {
            self.host.mem.write_slice(seg, GuestAddress(at)).unwrap();
            ins.push((at, seg.len() as u32, false));
            at += seg.len() as u64;
        }
        let mut outs = Vec::new();
        for &len in frames.iter().flat_map(|f| &f.2) {
            outs.push((at, len, true));
            at += u64::from(len);
        }
        assert!(at <= MEM_SIZE);
        self.host
            .mem
            .write_slice(&area, GuestAddress(REQ_AREA))
            .unwrap();
        let req = (REQ_AREA, area.len() as u32, false);
        let resp = (RESP_AREA, RESP_LEN, true);
        let device = self.session.is_some();
        let mut descs = vec![req];
        descs.extend(&ins);
        match self.session {
            None => {
                descs.push(resp);
                descs.extend(&outs);
                self.post(q, &descs);
            }
            Some(session) => {
                let header = DeviceHeader {
                    op: DeviceOp::Submit,
                    session,
                    req_descs: 1,
                    resp_descs: 1,
                    table: vec![1; ins.len() + outs.len()],
                };
                descs.push(status_desc(q));
                descs.push(resp);
                descs.extend(&outs);
                self.dev_post(q, &header, &descs);
            }
        }
        Pending { outs, device }
    }

    /// Waits for the answer to [`Driver::post_frames`]: the outcomes and
    /// the writable segments; `None` if no answer came or the device's
    /// status was not Ok.
    pub fn complete(&mut self, q: usize, pending: Pending) -> Option<Answered> {
        let used = self.wait_used(q, Duration::from_secs(30))?;
        let resp_len = if pending.device {
            let st = self.dev_status(q)?;
            if st.status != DeviceStatus::Ok {
                return None;
            }
            st.response_len
        } else {
            used
        };
        let mut resp = vec![0u8; resp_len as usize];
        self.host
            .mem
            .read_slice(&mut resp, GuestAddress(RESP_AREA))
            .unwrap();
        let outcomes = FrameIter::new(&resp)
            .map(|f| {
                let f = f.unwrap();
                (f.header.request_id, protocol::decode_response(&f).unwrap())
            })
            .collect();
        let data = pending
            .outs
            .into_iter()
            .map(|(addr, len, _)| {
                let mut v = vec![0u8; len as usize];
                self.host
                    .mem
                    .read_slice(&mut v, GuestAddress(addr))
                    .unwrap();
                v
            })
            .collect();
        Some((outcomes, data))
    }

    /// Posts a device-mode chain: `header` in its own descriptor, then
    /// `rest` (which holds [`status_desc`]).
    fn dev_post(&mut self, q: usize, header: &DeviceHeader, rest: &[(u64, u32, bool)]) {
        let h = header.encode();
        let hdr_at = dev_header_at(q);
        self.host.mem.write_slice(&h, GuestAddress(hdr_at)).unwrap();
        self.host
            .mem
            .write_slice(&[0xff; STATUS_LEN], GuestAddress(status_desc(q).0))
            .unwrap();
        let mut descs = vec![(hdr_at, h.len() as u32, false)];
        descs.extend_from_slice(rest);
        self.post(q, &descs);
    }

    /// Queue `q`'s status descriptor, decoded.
    fn dev_status(&self, q: usize) -> Option<StatusRecord> {
        let mut st = [0u8; STATUS_LEN];
        self.host
            .mem
            .read_slice(&mut st, GuestAddress(status_desc(q).0))
            .unwrap();
        StatusRecord::decode(&st).ok()
    }

    /// A device-mode chain: `header` in its own descriptor, then `rest`
    /// (which holds [`status_desc`]); waits and returns the status.
    pub fn dev_chain(
        &mut self,
        q: usize,
        header: &DeviceHeader,
        rest: &[(u64, u32, bool)],
    ) -> Option<StatusRecord> {
        self.dev_post(q, header, rest);
        self.wait_used(q, Duration::from_secs(30))?;
        self.dev_status(q)
    }

    /// Closes device session `id` on the control queue; returns the status.
    pub fn dev_close(&mut self, id: u32) -> Option<StatusRecord> {
        let header = DeviceHeader {
            op: DeviceOp::Close,
            session: id,
            req_descs: 0,
            resp_descs: 0,
            table: vec![],
        };
        self.dev_chain(0, &header, &[status_desc(0)])
    }

    /// Opens a device session on the control queue (device mode); later
    /// chains carry it. Returns the status.
    pub fn dev_open(&mut self) -> Option<StatusRecord> {
        let header = DeviceHeader {
            op: DeviceOp::Open,
            session: 0,
            req_descs: 0,
            resp_descs: 0,
            table: vec![],
        };
        let st = self.dev_chain(0, &header, &[status_desc(0)])?;
        if st.status == DeviceStatus::Ok {
            self.session = Some(st.session);
        }
        Some(st)
    }

    /// One request without bulk; its outcome.
    pub fn call(&mut self, q: usize, req: Request) -> Option<Outcome> {
        let (mut out, _) = self.call_frames(q, &[(req, vec![], vec![])])?;
        assert_eq!(out.len(), 1);
        Some(out.remove(0).1)
    }

    /// Whether the device raised a config-change interrupt with
    /// `DEVICE_NEEDS_RESET` set, within `timeout`.
    pub fn sees_needs_reset(&self, seen: usize, timeout: Duration) -> bool {
        self.host
            .wait_for(InterruptCause::ConfigChange, seen, timeout)
            && self.read32(reg::INTERRUPT_STATUS) & interrupt::CONFIG_CHANGE != 0
            && self.status() & status::DEVICE_NEEDS_RESET != 0
    }
}

/// The daemon binary of this workspace: brought up to date with
/// `cargo build -p vhost-device-compute` (a no-op when it is, so a test
/// never runs a stale daemon), then taken from the target directory.
/// `Err` says why there is none.
pub fn daemon_binary() -> Result<PathBuf, String> {
    static BUILT: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    BUILT.get_or_init(build_daemon).clone()
}

fn build_daemon() -> Result<PathBuf, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let found = ["debug", "release"]
        .iter()
        .map(|p| target.join(p).join("vhost-device-compute"))
        .find(|p| p.is_file());
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let build = Command::new(cargo)
        .args(["build", "-p", "vhost-device-compute"])
        .current_dir(&root)
        .output();
    let debug = target.join("debug").join("vhost-device-compute");
    match build {
        Ok(out) if out.status.success() && debug.is_file() => Ok(debug),
        Ok(out) => match found {
            Some(p) => {
                println!(
                    "note: cargo build -p vhost-device-compute failed; using {}",
                    p.display()
                );
                Ok(p)
            }
            None => Err(format!(
                "cargo build -p vhost-device-compute failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )),
        },
        Err(e) => found.ok_or_else(|| {
            format!(
                "no daemon binary under {}, and cannot run cargo: {e}",
                target.display()
            )
        }),
    }
}

/// The daemon, on a socket in its own directory.
pub struct Daemon {
    child: Child,
    pub socket: PathBuf,
    bin: PathBuf,
    args: Vec<String>,
    _dir: tempdir::Dir,
}

mod tempdir {
    /// A directory removed when dropped.
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Daemon {
    /// Starts the daemon with `args` after `--socket PATH`, or says why it
    /// cannot.
    pub fn start(args: &[&str]) -> Result<Daemon, String> {
        let bin = daemon_binary()?;
        let dir = std::env::temp_dir().join(unique("vmm-plugin-daemon"));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("compute.sock");
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let child = Self::spawn(&bin, &socket, &args);
        Ok(Daemon {
            child,
            socket,
            bin,
            args,
            _dir: tempdir::Dir(dir),
        })
    }

    fn spawn(bin: &Path, socket: &Path, args: &[String]) -> Child {
        let _ = std::fs::remove_file(socket);
        let mut child = Command::new(bin)
            .arg("--socket")
            .arg(socket)
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn daemon");
        let up = wait_until(Duration::from_secs(20), || {
            socket.exists() || child.try_wait().unwrap().is_some()
        });
        assert!(
            up && socket.exists(),
            "daemon socket never appeared (daemon: {:?})",
            child.try_wait()
        );
        child
    }

    /// Kills the daemon (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts a new daemon on the same socket with the same arguments.
    pub fn restart(&mut self) {
        self.kill();
        self.child = Self::spawn(&self.bin, &self.socket, &self.args);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}
