//! [`EmulatedGpu`]: the CUDA backend of the recording double, over
//! emulated memory. Kernels are never run.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use protocol::cuda::result::{INVALID_IMAGE, INVALID_PTX, INVALID_VALUE, NOT_FOUND, OUT_OF_MEMORY};
use protocol::cuda::{DeviceAttribute, DeviceInfo, DynamicSmem, MemOpKind, MemsetWidth, ParamInfo};

use super::capture::{Captures, EmuGraph, EmuGraphExec, Op};
use super::memory::{Memory, PAGE};
use super::{DOUBLE_DEVICE_NAME, DOUBLE_DRIVER_VERSION};
use crate::executor::cuda::backend::{Backend, CuResult, Lane, LaunchDims, Loaded, ModuleImage};
use crate::segment::{total_len, Cursor, InSeg, OutSeg};

/// The `CUdevice_attribute`s the emulated device answers: every number
/// `cuda.h` 12.9 defines (a real driver answers all of them, and the CUDA
/// runtime reads all of them at start-up), 0 unless [`ATTRIBUTES`] says.
pub const DOUBLE_ATTRIBUTE_MAX: i32 = 143;

/// The nonzero `CUdevice_attribute`s of the emulated device, those of an
/// H100-class device, enough for programs that size launches from them.
const ATTRIBUTES: &[(i32, i32)] = &[
    (1, 1024),        // MAX_THREADS_PER_BLOCK
    (2, 1024),        // MAX_BLOCK_DIM_X
    (3, 1024),        // MAX_BLOCK_DIM_Y
    (4, 64),          // MAX_BLOCK_DIM_Z
    (5, i32::MAX),    // MAX_GRID_DIM_X
    (6, 65535),       // MAX_GRID_DIM_Y
    (7, 65535),       // MAX_GRID_DIM_Z
    (8, 49152),       // MAX_SHARED_MEMORY_PER_BLOCK
    (9, 65536),       // TOTAL_CONSTANT_MEMORY
    (10, 32),         // WARP_SIZE
    (11, i32::MAX),   // MAX_PITCH
    (12, 65536),      // MAX_REGISTERS_PER_BLOCK
    (13, 1_755_000),  // CLOCK_RATE (kHz)
    (14, 512),        // TEXTURE_ALIGNMENT
    (16, 132),        // MULTIPROCESSOR_COUNT
    (31, 1),          // CONCURRENT_KERNELS
    (33, 0x41),       // PCI_BUS_ID
    (36, 2_619_000),  // MEMORY_CLOCK_RATE (kHz)
    (37, 5120),       // GLOBAL_MEMORY_BUS_WIDTH
    (38, 52_428_800), // L2_CACHE_SIZE
    (39, 2048),       // MAX_THREADS_PER_MULTIPROCESSOR
    (40, 2),          // ASYNC_ENGINE_COUNT
    (41, 1),          // UNIFIED_ADDRESSING
    (75, 9),          // COMPUTE_CAPABILITY_MAJOR
    (76, 0),          // COMPUTE_CAPABILITY_MINOR
    (81, 233_472),    // MAX_SHARED_MEMORY_PER_MULTIPROCESSOR
    (82, 65536),      // MAX_REGISTERS_PER_MULTIPROCESSOR
    (92, 1),          // CAN_USE_STREAM_MEM_OPS_V1
    (93, 1),          // CAN_USE_64_BIT_STREAM_MEM_OPS_V1
    (106, 32),        // MAX_BLOCKS_PER_MULTIPROCESSOR
    (115, 1),         // MEMORY_POOLS_SUPPORTED
    (97, 232_448),    // MAX_SHARED_MEMORY_PER_BLOCK_OPTIN
];

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
    /// Streams that capture, with what they captured so far.
    captures: Captures,
    /// Kernel launches run by executable graphs.
    replayed_launches: u64,
    /// Context limits set, by `CUlimit`.
    limits: HashMap<u32, u64>,
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
            captures: Captures::default(),
            replayed_launches: 0,
            limits: HashMap::new(),
        }
    }

    /// Kernel launches that executable graphs ran (each replay counts
    /// each launch it holds).
    pub fn replayed_launches(&self) -> u64 {
        self.replayed_launches
    }

    /// Keeps `op` for the graph if `lane` is a capturing stream; returns
    /// whether it did (then the operation must not run now).
    fn captured(&mut self, lane: &Lane<'_, EmuStream>, op: impl FnOnce() -> Op) -> bool {
        self.captures.keep(stream_id(lane), || vec![op()])
    }

    /// Runs an executable graph's operations, in order.
    fn replay(&mut self, exec: &EmuGraphExec) -> CuResult<()> {
        for op in &exec.ops {
            match *op {
                Op::Memset {
                    dst,
                    width,
                    value,
                    count,
                } => self.fill(dst, width, value, count)?,
                Op::Copy { dst, src, size } => self.memory.copy(dst, src, size)?,
                Op::Launch => self.replayed_launches += 1,
                Op::Write { addr, ref bytes } => self.memory.write(addr, bytes)?,
                Op::EventRecord { event } => {
                    self.recorded.insert(event, Instant::now());
                }
            }
        }
        Ok(())
    }

    /// Sets `count` elements of `width` at `dst` to `value`.
    fn fill(&mut self, dst: u64, width: MemsetWidth, value: u32, count: u64) -> CuResult<()> {
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
        self.memory.resident_bytes()
    }
}

impl Backend for EmulatedGpu {
    type Module = EmuModule;
    type Function = EmuFunction;
    type Stream = EmuStream;
    type Event = EmuEvent;
    type Graph = EmuGraph;
    type GraphExec = EmuGraphExec;

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
            attributes: (1..=DOUBLE_ATTRIBUTE_MAX)
                .map(|attribute| DeviceAttribute {
                    attribute,
                    value: ATTRIBUTES
                        .iter()
                        .find(|a| a.0 == attribute)
                        .map_or(0, |a| a.1),
                })
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

    fn ctx_limit(&mut self, _device: u32, limit: u32, value: Option<u64>) -> CuResult<u64> {
        // The defaults of an H100's context: stack, printf FIFO, malloc
        // heap, sync depth, pending launches, L2 fetch, persisting L2.
        const DEFAULTS: [u64; 7] = [1024, 1 << 20, 8 << 20, 2, 2048, 64, 0];
        let default = *DEFAULTS.get(limit as usize).ok_or(INVALID_VALUE)?;
        if let Some(v) = value {
            self.limits.insert(limit, v);
        }
        Ok(self.limits.get(&limit).copied().unwrap_or(default))
    }

    fn stream_priority_range(&mut self, _device: u32) -> CuResult<(i32, i32)> {
        Ok((0, -5))
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
        src: &[InSeg<'_>],
    ) -> CuResult<()> {
        self.memory.write(dst, &Cursor::new(src).gather(0))
    }

    fn memcpy_dtoh(
        &mut self,
        _device: u32,
        _lane: Lane<'_, EmuStream>,
        src: u64,
        dst: &[OutSeg<'_>],
    ) -> CuResult<()> {
        let len = usize::try_from(total_len(dst)).map_err(|_| INVALID_VALUE)?;
        let mut bytes = vec![0; len];
        self.memory.read(src, &mut bytes)?;
        if Cursor::new(dst).write(&bytes) {
            Ok(())
        } else {
            Err(INVALID_VALUE)
        }
    }

    fn memcpy_dtod(
        &mut self,
        _device: u32,
        lane: Lane<'_, EmuStream>,
        dst: u64,
        src: u64,
        size: u64,
    ) -> CuResult<()> {
        if self.captured(&lane, || Op::Copy { dst, src, size }) {
            return Ok(());
        }
        self.memory.copy(dst, src, size)
    }

    fn memset(
        &mut self,
        _device: u32,
        lane: Lane<'_, EmuStream>,
        dst: u64,
        width: MemsetWidth,
        value: u32,
        count: u64,
    ) -> CuResult<()> {
        let op = || Op::Memset {
            dst,
            width,
            value,
            count,
        };
        if self.captured(&lane, op) {
            return Ok(());
        }
        self.fill(dst, width, value, count)
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
        lane: Lane<'_, EmuStream>,
        _params: &[u8],
        _layout: Option<&[ParamInfo]>,
    ) -> CuResult<()> {
        // Checked by the session layer and recorded by the double; an
        // emulated device runs no code (a capture keeps the launch).
        self.captured(&lane, || Op::Launch);
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
        lane: Lane<'_, EmuStream>,
        _flags: u32,
    ) -> CuResult<()> {
        if !self.captured(&lane, || Op::EventRecord { event: event.id }) {
            self.recorded.insert(event.id, Instant::now());
        }
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

    fn mem_alloc_async(
        &mut self,
        device: u32,
        _lane: Lane<'_, EmuStream>,
        size: u64,
    ) -> CuResult<u64> {
        // Streams are always complete: stream order is program order.
        self.mem_alloc(device, size)
    }

    fn mem_free_async(
        &mut self,
        device: u32,
        _lane: Lane<'_, EmuStream>,
        ptr: u64,
    ) -> CuResult<()> {
        self.mem_free(device, ptr)
    }

    fn stream_mem_op(
        &mut self,
        _device: u32,
        lane: Lane<'_, EmuStream>,
        kind: MemOpKind,
        addr: u64,
        value: u64,
        _flags: u32,
    ) -> CuResult<()> {
        // A write lands in emulated memory (or in a capture); a wait
        // returns at once: the double's streams are always complete, so
        // it behaves as if the value had been written.
        let width = kind.width() as usize;
        if kind.waits() {
            return Ok(());
        }
        let bytes = value.to_le_bytes();
        let op = || Op::Write {
            addr,
            bytes: bytes[..width].to_vec(),
        };
        if self.captured(&lane, op) {
            return Ok(());
        }
        self.memory.write(addr, &bytes[..width])
    }

    fn stream_begin_capture(
        &mut self,
        _device: u32,
        stream: &EmuStream,
        _mode: u32,
    ) -> CuResult<()> {
        self.captures.begin(stream.id)
    }

    fn stream_end_capture(&mut self, _device: u32, stream: &EmuStream) -> CuResult<EmuGraph> {
        self.captures.end(stream.id)
    }

    fn graph_instantiate(
        &mut self,
        _device: u32,
        graph: &EmuGraph,
        _flags: u64,
    ) -> CuResult<EmuGraphExec> {
        Ok(EmuGraphExec {
            ops: graph.ops.clone(),
        })
    }

    fn graph_launch(
        &mut self,
        _device: u32,
        exec: &EmuGraphExec,
        lane: Lane<'_, EmuStream>,
    ) -> CuResult<()> {
        // A graph launched into a capture becomes part of it.
        if self.captures.keep(stream_id(&lane), || exec.ops.clone()) {
            return Ok(());
        }
        self.replay(exec)
    }

    fn graph_destroy(&mut self, _device: u32, _graph: EmuGraph) -> CuResult<()> {
        Ok(())
    }

    fn graph_exec_destroy(&mut self, _device: u32, _exec: EmuGraphExec) -> CuResult<()> {
        Ok(())
    }
}

/// The number of the stream a lane names, if it names one.
fn stream_id(lane: &Lane<'_, EmuStream>) -> Option<u64> {
    match lane {
        Lane::Stream(s) => Some(s.id),
        _ => None,
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
