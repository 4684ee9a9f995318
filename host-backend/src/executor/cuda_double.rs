//! A recording test double of the CUDA executor, for tests without a GPU.
//!
//! [`RecordingCudaDouble`] is **not** a CUDA implementation. It runs every
//! request through the same session layer as the real executor
//! ([`super::cuda::CudaSession`]: handle tables, the allocation table with
//! its range checks and memory limit, flag and attribute checks), over an
//! emulated device ([`EmulatedGpu`]) that keeps device memory in host RAM,
//! and it records every call. It never runs a kernel: a launch is checked
//! and recorded, nothing more. What it is for:
//! - tests of marshaling: every request as decoded, with its in-bulk bytes
//!   (launch parameter bytes, grid and block, stream order);
//! - tests of the asynchronous pipeline and sticky errors: any call can be
//!   made to fail with a chosen `CUresult` ([`Recorder::fail`]), or to
//!   poison the session from then on ([`Recorder::fail_sticky`]) as a
//!   faulting kernel poisons a real context;
//! - the CUDA conformance checks, which run against it always and against
//!   the real executor when a GPU is present.
//!
//! Module images are parsed with the same parser the real executor uses
//! for parameter layouts: a PTX image's `.entry` kernels can be fetched,
//! with their layouts, and its globals get emulated storage.
//!
//! [`RecordingServer`] is the daemon's server over the double, in the
//! test's own process: what the CUDA end-to-end tests of every crate start.
//!
//! **Why always built, never selectable.** The double is a public module of
//! the daemon's library rather than something behind a cargo feature, so
//! that tests in other crates (the shim's and the benchmark harness's
//! end-to-end tests start a [`RecordingServer`]) reach it without feature
//! plumbing, and so that every build compiles and lints it against the
//! real `Executor` trait. The command line cannot pick it:
//! [`super::ExecutorKind`] has no variant for it and [`super::factory`]
//! never returns it; only a program that builds a `Server` itself can use
//! it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use protocol::cuda::result::{INVALID_IMAGE, INVALID_PTX, INVALID_VALUE, NOT_FOUND, OUT_OF_MEMORY};
use protocol::cuda::{DeviceAttribute, DeviceInfo, DynamicSmem, MemsetWidth, ParamInfo};
use protocol::session::FEATURE_CUDA;
use protocol::{Opcode, Request, Response};

use super::cuda::backend::{Backend, CuResult, Lane, LaunchDims, Loaded, ModuleImage};
use super::cuda::CudaSession;
use super::{Bulk, ExecError, Executor, ExecutorError, ExecutorFactory, GuestBuf, SessionLimits};
use crate::limits::session_limits;
use crate::server::{Server, ServerConfig, ServerError, StopHandle};

/// The emulated driver version (CUDA 12.4).
pub const DOUBLE_DRIVER_VERSION: i32 = 12040;
/// The emulated device's name.
pub const DOUBLE_DEVICE_NAME: &str = "virtio-compute recording test double (emulated, no GPU)";
/// Device memory the emulated device reports, by default.
pub const DOUBLE_TOTAL_MEM: u64 = 16 << 30;
/// Where emulated device addresses start. One counter for the process, so
/// that sessions get disjoint addresses as they do under unified
/// addressing on a real GPU.
static NEXT_ADDRESS: AtomicU64 = AtomicU64::new(0x7f00_0000_0000);
/// Session numbers, for telling recorded calls apart.
static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// A few `CUdevice_attribute`s of an H100-class device, enough for
/// programs that size launches from them.
const ATTRIBUTES: &[(i32, i32)] = &[
    (1, 1024),       // MAX_THREADS_PER_BLOCK
    (2, 1024),       // MAX_BLOCK_DIM_X
    (3, 1024),       // MAX_BLOCK_DIM_Y
    (4, 64),         // MAX_BLOCK_DIM_Z
    (5, i32::MAX),   // MAX_GRID_DIM_X
    (6, 65535),      // MAX_GRID_DIM_Y
    (7, 65535),      // MAX_GRID_DIM_Z
    (8, 49152),      // MAX_SHARED_MEMORY_PER_BLOCK
    (10, 32),        // WARP_SIZE
    (13, 1_755_000), // CLOCK_RATE (kHz)
    (16, 132),       // MULTIPROCESSOR_COUNT
    (39, 2048),      // MAX_THREADS_PER_MULTIPROCESSOR
    (41, 1),         // UNIFIED_ADDRESSING
    (75, 9),         // COMPUTE_CAPABILITY_MAJOR
    (76, 0),         // COMPUTE_CAPABILITY_MINOR
    (81, 233_472),   // MAX_SHARED_MEMORY_PER_MULTIPROCESSOR
    (97, 232_448),   // MAX_SHARED_MEMORY_PER_BLOCK_OPTIN
];

/// Emulated device memory: blocks (allocations and module globals) over
/// sparse zero-filled pages, made on first write, so that large
/// allocations cost host memory only where they are written.
#[derive(Debug, Default)]
struct Memory {
    blocks: BTreeMap<u64, u64>,
    pages: HashMap<u64, Box<[u8]>>,
}

/// Bytes per emulated page.
const PAGE: u64 = 64 << 10;

impl Memory {
    fn alloc(&mut self, size: u64) -> u64 {
        // Whole pages plus a guard page: blocks never share a page, and
        // their addresses are aligned as the driver's (at least 256 bytes).
        let span = size.div_ceil(PAGE).saturating_add(1).saturating_mul(PAGE);
        let base = NEXT_ADDRESS.fetch_add(span, Ordering::Relaxed);
        self.blocks.insert(base, size);
        base
    }

    fn free(&mut self, base: u64) -> CuResult<()> {
        let size = self.blocks.remove(&base).ok_or(INVALID_VALUE)?;
        let end = base.saturating_add(size);
        self.pages
            .retain(|&p, _| p.saturating_add(PAGE) <= base || p >= end);
        Ok(())
    }

    fn bytes_in_use(&self) -> u64 {
        self.blocks.values().sum()
    }

    /// Checks that `ptr..ptr+len` lies in one block.
    fn check(&self, ptr: u64, len: u64) -> CuResult<()> {
        let (base, size) = self.blocks.range(..=ptr).next_back().ok_or(INVALID_VALUE)?;
        match ptr.checked_add(len) {
            Some(end) if end <= base.saturating_add(*size) => Ok(()),
            _ => Err(INVALID_VALUE),
        }
    }

    /// Calls `f(page, offset in page, range in the caller's buffer)` for
    /// each page piece of `ptr..ptr+len`.
    fn pieces(ptr: u64, len: usize, mut f: impl FnMut(u64, usize, std::ops::Range<usize>)) {
        let mut done = 0usize;
        while done < len {
            let at = ptr + done as u64;
            let page = at - at % PAGE;
            let off = (at - page) as usize;
            let n = (PAGE as usize - off).min(len - done);
            f(page, off, done..done + n);
            done += n;
        }
    }

    fn write(&mut self, ptr: u64, data: &[u8]) -> CuResult<()> {
        self.check(ptr, data.len() as u64)?;
        let pages = &mut self.pages;
        Self::pieces(ptr, data.len(), |page, off, r| {
            let p = pages
                .entry(page)
                .or_insert_with(|| vec![0; PAGE as usize].into_boxed_slice());
            p[off..off + r.len()].copy_from_slice(&data[r]);
        });
        Ok(())
    }

    fn read(&self, ptr: u64, out: &mut [u8]) -> CuResult<()> {
        self.check(ptr, out.len() as u64)?;
        Self::pieces(ptr, out.len(), |page, off, r| {
            let n = r.len();
            match self.pages.get(&page) {
                Some(p) => out[r].copy_from_slice(&p[off..off + n]),
                None => out[r].fill(0),
            }
        });
        Ok(())
    }

    /// Copies `size` bytes between blocks, a page-sized piece at a time.
    fn copy(&mut self, dst: u64, src: u64, size: u64) -> CuResult<()> {
        self.check(src, size)?;
        self.check(dst, size)?;
        let mut buf = vec![0u8; PAGE as usize];
        let mut done = 0u64;
        while done < size {
            let n = (size - done).min(PAGE) as usize;
            self.read(src + done, &mut buf[..n])?;
            self.write(dst + done, &buf[..n])?;
            done += n as u64;
        }
        Ok(())
    }
}

/// An emulated module: what its image declares, and storage for globals.
#[derive(Debug)]
pub struct EmuModule {
    id: u64,
    kernels: BTreeMap<String, Option<Vec<ParamInfo>>>,
    globals: HashMap<String, (u64, u64)>,
}

/// An emulated kernel.
#[derive(Debug)]
pub struct EmuFunction {
    key: (u64, String),
}

/// An emulated stream.
#[derive(Debug)]
pub struct EmuStream {
    id: u64,
}

impl EmuStream {
    /// The stream's number within its emulated device.
    pub fn id(&self) -> u64 {
        self.id
    }
}

/// An emulated event.
#[derive(Debug)]
pub struct EmuEvent {
    id: u64,
}

/// The emulated device behind the double: device memory in host RAM,
/// modules from the image parser, streams and events that are always
/// complete. Kernels are never run.
#[derive(Debug)]
pub struct EmulatedGpu {
    devices: u32,
    total_mem: u64,
    memory: Memory,
    open: Vec<u32>,
    next_id: u64,
    func_attrs: HashMap<(u64, String, i32), i32>,
    recorded: HashMap<u64, Instant>,
}

impl EmulatedGpu {
    /// An emulated machine with `devices` devices of `total_mem` bytes.
    pub fn new(devices: u32, total_mem: u64) -> Self {
        EmulatedGpu {
            devices,
            total_mem,
            memory: Memory::default(),
            open: Vec::new(),
            next_id: 1,
            func_attrs: HashMap::new(),
            recorded: HashMap::new(),
        }
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Bytes of emulated device memory in use (allocations and globals).
    pub fn bytes_in_use(&self) -> u64 {
        self.memory.bytes_in_use()
    }

    /// Host bytes backing the emulated memory (the pages written so far).
    pub fn resident_bytes(&self) -> u64 {
        self.memory.pages.len() as u64 * PAGE
    }
}

/// Copies between emulated memory and guest segments.
fn gather(src: &[GuestBuf]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in src {
        out.extend_from_slice(&s.to_vec());
    }
    out
}

fn scatter(bytes: &[u8], dst: &[GuestBuf]) -> CuResult<()> {
    let mut rest = bytes;
    for d in dst {
        let (head, tail) = rest.split_at(d.len().min(rest.len()));
        if !d.write(head) {
            return Err(INVALID_VALUE);
        }
        rest = tail;
    }
    Ok(())
}

impl Backend for EmulatedGpu {
    type Module = EmuModule;
    type Function = EmuFunction;
    type Stream = EmuStream;
    type Event = EmuEvent;

    fn driver_version(&self) -> i32 {
        DOUBLE_DRIVER_VERSION
    }

    fn device_count(&self) -> u32 {
        self.devices
    }

    fn device_info(&mut self, device: u32) -> CuResult<DeviceInfo> {
        let mut uuid = *b"vcompute-double\0";
        uuid[15] = device as u8;
        Ok(DeviceInfo {
            name: DOUBLE_DEVICE_NAME.into(),
            uuid,
            total_mem: self.total_mem,
            attributes: ATTRIBUTES
                .iter()
                .map(|&(attribute, value)| DeviceAttribute { attribute, value })
                .collect(),
        })
    }

    fn open_device(&mut self, device: u32) -> CuResult<()> {
        if !self.open.contains(&device) {
            self.open.push(device);
        }
        Ok(())
    }

    fn synchronize(&mut self, _device: u32) -> CuResult<()> {
        Ok(())
    }

    fn mem_get_info(&mut self, _device: u32) -> CuResult<(u64, u64)> {
        let free = self.total_mem.saturating_sub(self.bytes_in_use());
        Ok((free, self.total_mem))
    }

    fn mem_alloc(&mut self, _device: u32, size: u64) -> CuResult<u64> {
        if size > self.total_mem.saturating_sub(self.bytes_in_use()) {
            return Err(OUT_OF_MEMORY);
        }
        Ok(self.memory.alloc(size))
    }

    fn mem_free(&mut self, _device: u32, ptr: u64) -> CuResult<()> {
        self.memory.free(ptr)
    }

    fn memcpy_htod(
        &mut self,
        _device: u32,
        _lane: Lane<'_, EmuStream>,
        dst: u64,
        src: &[GuestBuf],
    ) -> CuResult<()> {
        self.memory.write(dst, &gather(src))
    }

    fn memcpy_dtoh(
        &mut self,
        _device: u32,
        _lane: Lane<'_, EmuStream>,
        src: u64,
        dst: &[GuestBuf],
    ) -> CuResult<()> {
        let len: usize = dst.iter().map(GuestBuf::len).sum();
        let mut bytes = vec![0; len];
        self.memory.read(src, &mut bytes)?;
        scatter(&bytes, dst)
    }

    fn memcpy_dtod(
        &mut self,
        _device: u32,
        _lane: Lane<'_, EmuStream>,
        dst: u64,
        src: u64,
        size: u64,
    ) -> CuResult<()> {
        self.memory.copy(dst, src, size)
    }

    fn memset(
        &mut self,
        _device: u32,
        _lane: Lane<'_, EmuStream>,
        dst: u64,
        width: MemsetWidth,
        value: u32,
        count: u64,
    ) -> CuResult<()> {
        let w = width.bytes() as usize;
        let bytes = count.checked_mul(w as u64).ok_or(INVALID_VALUE)?;
        self.memory.check(dst, bytes)?;
        // A page-sized run of the pattern, written piece by piece.
        let pattern = value.to_le_bytes();
        let run: Vec<u8> = pattern[..w]
            .iter()
            .copied()
            .cycle()
            .take(PAGE as usize)
            .collect();
        let mut done = 0u64;
        while done < bytes {
            let n = (bytes - done).min(PAGE);
            self.memory.write(dst + done, &run[..n as usize])?;
            done += n;
        }
        Ok(())
    }

    fn module_load(&mut self, _device: u32, image: &ModuleImage<'_>) -> Loaded<EmuModule> {
        let info = image.info;
        if info.kernels.is_empty() && info.globals.is_empty() {
            let log = b"emulated load: the image declares no kernel or global".to_vec();
            let ptx = image.bytes.last() == Some(&0) && !image.bytes.starts_with(b"\x7fELF");
            return Loaded {
                module: Err(if ptx { INVALID_PTX } else { INVALID_IMAGE }),
                info_log: Vec::new(),
                error_log: log,
            };
        }
        let id = self.id();
        let globals = info
            .globals
            .iter()
            .map(|(name, &size)| (name.clone(), (self.memory.alloc(size), size)))
            .collect();
        Loaded {
            module: Ok(EmuModule {
                id,
                kernels: info.kernels.clone(),
                globals,
            }),
            info_log: format!("emulated load: {} kernels", info.kernels.len()).into_bytes(),
            error_log: Vec::new(),
        }
    }

    fn module_unload(&mut self, _device: u32, module: EmuModule) -> CuResult<()> {
        for (ptr, _) in module.globals.values() {
            self.memory.free(*ptr)?;
        }
        self.func_attrs.retain(|(m, ..), _| *m != module.id);
        Ok(())
    }

    fn get_function(
        &mut self,
        _device: u32,
        module: &EmuModule,
        name: &str,
    ) -> CuResult<(EmuFunction, Option<Vec<ParamInfo>>)> {
        if !module.kernels.contains_key(name) {
            return Err(NOT_FOUND);
        }
        // The driver-side layout query is what the double does not have:
        // layouts come from the image parser, as on a driver without
        // `cuFuncGetParamInfo`.
        Ok((
            EmuFunction {
                key: (module.id, name.to_owned()),
            },
            None,
        ))
    }

    fn get_global(&mut self, _device: u32, module: &EmuModule, name: &str) -> CuResult<(u64, u64)> {
        module.globals.get(name).copied().ok_or(NOT_FOUND)
    }

    fn func_get_attribute(&mut self, _device: u32, f: &EmuFunction, attr: i32) -> CuResult<i32> {
        let key = (f.key.0, f.key.1.clone(), attr);
        Ok(self.func_attrs.get(&key).copied().unwrap_or(match attr {
            0 => 1024,   // MAX_THREADS_PER_BLOCK
            4 => 16,     // NUM_REGS
            5 | 6 => 90, // PTX_VERSION, BINARY_VERSION
            _ => 0,
        }))
    }

    fn func_set_attribute(
        &mut self,
        _device: u32,
        f: &EmuFunction,
        attr: i32,
        value: i32,
    ) -> CuResult<()> {
        if value < 0 {
            return Err(INVALID_VALUE);
        }
        self.func_attrs
            .insert((f.key.0, f.key.1.clone(), attr), value);
        Ok(())
    }

    fn func_set_cache_config(
        &mut self,
        _device: u32,
        _f: &EmuFunction,
        _config: u32,
    ) -> CuResult<()> {
        Ok(())
    }

    fn launch(
        &mut self,
        _device: u32,
        _f: &EmuFunction,
        _dims: &LaunchDims,
        _lane: Lane<'_, EmuStream>,
        _params: &[u8],
        _layout: Option<&[ParamInfo]>,
    ) -> CuResult<()> {
        // Checked by the session layer and recorded by the double; an
        // emulated device runs no code.
        Ok(())
    }

    fn occupancy_max_active_blocks(
        &mut self,
        _device: u32,
        _f: &EmuFunction,
        block_size: i32,
        dynamic_smem: u64,
        _flags: u32,
    ) -> CuResult<i32> {
        Ok(emulated_occupancy(block_size, dynamic_smem))
    }

    fn occupancy_max_potential_block_size(
        &mut self,
        _device: u32,
        _f: &EmuFunction,
        dynamic_smem: &DynamicSmem,
        block_size_limit: i32,
        _flags: u32,
    ) -> CuResult<(i32, i32)> {
        let limit = if block_size_limit == 0 {
            1024
        } else {
            block_size_limit.min(1024)
        };
        let mut best = (0, 0);
        for warps in 1..=limit / 32 {
            let bs = warps * 32;
            let smem = match dynamic_smem {
                DynamicSmem::Fixed(s) => *s,
                DynamicSmem::PerBlockSize(t) => {
                    t.get(warps as usize - 1).or(t.last()).copied().unwrap_or(0)
                }
            };
            let blocks = emulated_occupancy(bs, smem);
            if blocks * bs >= best.0 * best.1 && blocks > 0 {
                best = (blocks, bs);
            }
        }
        Ok((best.0 * 132, best.1))
    }

    fn occupancy_available_dynamic_smem(
        &mut self,
        _device: u32,
        _f: &EmuFunction,
        num_blocks: i32,
        _block_size: i32,
    ) -> CuResult<u64> {
        Ok(233_472 / num_blocks as u64)
    }

    fn stream_create(&mut self, _device: u32, _flags: u32, _priority: i32) -> CuResult<EmuStream> {
        Ok(EmuStream { id: self.id() })
    }

    fn stream_destroy(&mut self, _device: u32, _stream: EmuStream) -> CuResult<()> {
        Ok(())
    }

    fn stream_synchronize(&mut self, _device: u32, _lane: Lane<'_, EmuStream>) -> CuResult<()> {
        Ok(())
    }

    fn stream_query(&mut self, _device: u32, _lane: Lane<'_, EmuStream>) -> CuResult<()> {
        Ok(())
    }

    fn stream_wait_event(
        &mut self,
        _device: u32,
        _lane: Lane<'_, EmuStream>,
        _event: &EmuEvent,
        _flags: u32,
    ) -> CuResult<()> {
        Ok(())
    }

    fn event_create(&mut self, _device: u32, _flags: u32) -> CuResult<EmuEvent> {
        Ok(EmuEvent { id: self.id() })
    }

    fn event_destroy(&mut self, _device: u32, event: EmuEvent) -> CuResult<()> {
        self.recorded.remove(&event.id);
        Ok(())
    }

    fn event_record(
        &mut self,
        _device: u32,
        event: &EmuEvent,
        _lane: Lane<'_, EmuStream>,
        _flags: u32,
    ) -> CuResult<()> {
        self.recorded.insert(event.id, Instant::now());
        Ok(())
    }

    fn event_synchronize(&mut self, _device: u32, _event: &EmuEvent) -> CuResult<()> {
        Ok(())
    }

    fn event_query(&mut self, _device: u32, _event: &EmuEvent) -> CuResult<()> {
        Ok(())
    }

    fn event_elapsed(&mut self, _device: u32, start: &EmuEvent, end: &EmuEvent) -> CuResult<f32> {
        // As native: both must have been recorded.
        let (Some(s), Some(e)) = (self.recorded.get(&start.id), self.recorded.get(&end.id)) else {
            return Err(protocol::cuda::result::INVALID_HANDLE);
        };
        let ms = e.saturating_duration_since(*s).as_secs_f32() * 1000.0;
        Ok(ms)
    }
}

/// Blocks of `block_size` threads that fit one emulated multiprocessor
/// (2048 threads, 228 KiB of shared memory, 32 blocks).
fn emulated_occupancy(block_size: i32, dynamic_smem: u64) -> i32 {
    let by_threads = 2048 / block_size.max(1);
    let by_smem = 233_472u64
        .checked_div(dynamic_smem)
        .map_or(32, |n| n.min(32) as i32);
    by_threads.min(by_smem).min(32)
}

/// One call the double received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// The session that made it (numbered from 1 per process).
    pub session: u64,
    /// The request, as decoded.
    pub request: Request,
    /// Its in-bulk bytes, concatenated (copy sources, module images).
    pub input: Vec<u8>,
    /// What the double answered.
    pub outcome: Result<Response, ExecError>,
}

#[derive(Debug)]
struct FailRule {
    opcode: Opcode,
    skip: usize,
    code: i32,
    sticky: bool,
}

#[derive(Debug, Default)]
struct RecorderState {
    calls: Vec<Call>,
    rules: Vec<FailRule>,
}

/// What every session of a [`RecordingCudaFactory`] shares with the test:
/// the recorded calls and the failures to inject.
#[derive(Debug, Default)]
pub struct Recorder {
    state: Mutex<RecorderState>,
    live: AtomicUsize,
    opened: AtomicUsize,
}

impl Recorder {
    fn state(&self) -> MutexGuard<'_, RecorderState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every call so far, in order, across sessions.
    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// The requests so far whose opcode is `op`.
    pub fn requests(&self, op: Opcode) -> Vec<Request> {
        self.state()
            .calls
            .iter()
            .filter(|c| c.request.opcode() == op)
            .map(|c| c.request.clone())
            .collect()
    }

    /// Forgets the calls recorded so far.
    pub fn clear(&self) {
        self.state().calls.clear();
    }

    /// Makes the `nth` (0-based) next call of `opcode`, in any session,
    /// fail with `code` without running.
    pub fn fail(&self, opcode: Opcode, nth: usize, code: i32) {
        self.state().rules.push(FailRule {
            opcode,
            skip: nth,
            code,
            sticky: false,
        });
    }

    /// Like [`Recorder::fail`], and every later call of that session fails
    /// with `code` too, as after a kernel fault in a real context.
    pub fn fail_sticky(&self, opcode: Opcode, nth: usize, code: i32) {
        self.state().rules.push(FailRule {
            opcode,
            skip: nth,
            code,
            sticky: true,
        });
    }

    /// Sessions open now.
    pub fn live_sessions(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// Sessions opened so far.
    pub fn sessions_opened(&self) -> usize {
        self.opened.load(Ordering::SeqCst)
    }

    /// The injected failure for a call of `op`, if one is due.
    fn injected(&self, op: Opcode) -> Option<(i32, bool)> {
        let mut st = self.state();
        let i = st.rules.iter().position(|r| r.opcode == op)?;
        let rule = st.rules.get_mut(i)?;
        if rule.skip > 0 {
            rule.skip -= 1;
            return None;
        }
        let rule = st.rules.remove(i);
        Some((rule.code, rule.sticky))
    }
}

/// The recording CUDA test double: the real session layer over an
/// [`EmulatedGpu`], recording every call into its [`Recorder`].
pub struct RecordingCudaDouble {
    session: u64,
    inner: CudaSession<EmulatedGpu>,
    recorder: Arc<Recorder>,
    poisoned: Option<i32>,
}

impl fmt::Debug for RecordingCudaDouble {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordingCudaDouble")
            .field("session", &self.session)
            .field("inner", &self.inner)
            .finish()
    }
}

impl RecordingCudaDouble {
    /// A session with one emulated device of [`DOUBLE_TOTAL_MEM`] bytes.
    pub fn new(limits: SessionLimits, recorder: Arc<Recorder>) -> Self {
        Self::with_gpu(EmulatedGpu::new(1, DOUBLE_TOTAL_MEM), limits, recorder)
    }

    /// A session over a given emulated machine.
    pub fn with_gpu(gpu: EmulatedGpu, limits: SessionLimits, recorder: Arc<Recorder>) -> Self {
        recorder.live.fetch_add(1, Ordering::SeqCst);
        recorder.opened.fetch_add(1, Ordering::SeqCst);
        RecordingCudaDouble {
            session: NEXT_SESSION.fetch_add(1, Ordering::Relaxed),
            inner: CudaSession::new(gpu, limits),
            recorder,
            poisoned: None,
        }
    }

    /// The session layer, for tests that inspect its state.
    pub fn session(&self) -> &CudaSession<EmulatedGpu> {
        &self.inner
    }

    /// This session's number in [`Call::session`].
    pub fn id(&self) -> u64 {
        self.session
    }
}

impl Drop for RecordingCudaDouble {
    fn drop(&mut self) {
        self.recorder.live.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Executor for RecordingCudaDouble {
    fn execute(&mut self, req: Request, bulk: &Bulk<'_>) -> Result<Response, ExecError> {
        let input = gather(bulk.input);
        let outcome = match (self.poisoned, self.recorder.injected(req.opcode())) {
            (Some(code), _) => Err(ExecError::Native(code)),
            (None, Some((code, sticky))) => {
                if sticky {
                    self.poisoned = Some(code);
                }
                Err(ExecError::Native(code))
            }
            (None, None) => self.inner.execute(req.clone(), bulk),
        };
        self.recorder.state().calls.push(Call {
            session: self.session,
            request: req,
            input,
            outcome: outcome.clone(),
        });
        outcome
    }
}

/// Opens [`RecordingCudaDouble`] sessions that share one [`Recorder`].
#[derive(Debug)]
pub struct RecordingCudaFactory {
    recorder: Arc<Recorder>,
    devices: u32,
    total_mem: u64,
}

impl Default for RecordingCudaFactory {
    fn default() -> Self {
        Self::with_devices(1, DOUBLE_TOTAL_MEM)
    }
}

impl RecordingCudaFactory {
    /// A factory with a fresh recorder and one emulated device of
    /// [`DOUBLE_TOTAL_MEM`] bytes.
    pub fn new() -> Self {
        Self::default()
    }

    /// A factory whose sessions see `devices` emulated devices of
    /// `total_mem` bytes each.
    pub fn with_devices(devices: u32, total_mem: u64) -> Self {
        RecordingCudaFactory {
            recorder: Arc::default(),
            devices,
            total_mem,
        }
    }

    /// The recorder its sessions share.
    pub fn recorder(&self) -> Arc<Recorder> {
        Arc::clone(&self.recorder)
    }
}

impl ExecutorFactory for RecordingCudaFactory {
    fn name(&self) -> &'static str {
        "cuda-recording-double"
    }
    fn features(&self) -> u64 {
        FEATURE_CUDA
    }
    fn open(&self, limits: SessionLimits) -> Result<Box<dyn Executor>, ExecutorError> {
        Ok(Box::new(RecordingCudaDouble::with_gpu(
            EmulatedGpu::new(self.devices, self.total_mem),
            limits,
            Arc::clone(&self.recorder),
        )))
    }
}

/// The daemon's server over a [`RecordingCudaFactory`], serving in this
/// process on a thread of its own: what the CUDA end-to-end tests of every
/// crate drive (through the shim, or as a vhost-user frontend). It serves
/// up to 4 sessions, each limited to 1000 objects and 1 GiB of device
/// memory, polling 50 µs after a queue drains. Dropping it stops it.
#[derive(Debug)]
pub struct RecordingServer {
    recorder: Arc<Recorder>,
    socket: PathBuf,
    stop: StopHandle,
    thread: Option<JoinHandle<Result<(), ServerError>>>,
}

impl RecordingServer {
    /// Binds the vhost-user socket `socket` (in a directory that exists)
    /// and starts serving.
    pub fn start(socket: PathBuf) -> Result<RecordingServer, ServerError> {
        let factory = Arc::new(RecordingCudaFactory::new());
        let recorder = factory.recorder();
        let server = Server::bind(
            ServerConfig {
                socket: Some(socket.clone()),
                listen: None,
                vsock: None,
                max_sessions: 4,
                limits: session_limits(1000, 1 << 30),
                poll: Duration::from_micros(50),
            },
            factory,
        )?;
        let stop = server.stop_handle();
        let thread = std::thread::spawn(move || server.run());
        Ok(RecordingServer {
            recorder,
            socket,
            stop,
            thread: Some(thread),
        })
    }

    /// What the server's sessions received.
    pub fn recorder(&self) -> &Arc<Recorder> {
        &self.recorder
    }

    /// The vhost-user socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The `VCOMPUTE_ENDPOINT` that points the shim at this server.
    pub fn endpoint(&self) -> String {
        format!("vhost-user:{}", self.socket.display())
    }

    /// Stops the server and waits for its thread; returns how the server
    /// ended. A panic of the server's thread is resumed here, unless this
    /// thread is already unwinding from a panic of its own.
    pub fn stop(&mut self) -> Result<(), ServerError> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        self.stop.stop();
        match thread.join() {
            Ok(ended) => ended,
            Err(panic) if !std::thread::panicking() => std::panic::resume_unwind(panic),
            Err(_) => Ok(()),
        }
    }
}

impl Drop for RecordingServer {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.stop.stop();
            let _ = thread.join();
        }
    }
}
