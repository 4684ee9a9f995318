//! The device half of a CUDA executor: what runs once the session layer
//! ([`super::session::CudaSession`]) has checked and resolved a request.
//!
//! Every argument a [`Backend`] receives is already validated: handles are
//! resolved to the backend's own objects, device ranges lie inside the
//! session's allocation table, flags and attribute numbers are ones the
//! driver API defines, and sizes are within the wire limits. A backend
//! reports failures as native `CUresult` codes. Two backends exist: the real
//! one over the driver ([`super::driver::Driver`]) and the emulated device of
//! the recording test double (`crate::testing`, feature `testing`).

use protocol::cuda::{DeviceInfo, DynamicSmem, JitOption, MemOpKind, MemsetWidth, ParamInfo};

use super::image::ImageInfo;
use crate::segment::{InSeg, OutSeg};

/// A `CUresult` failure.
pub type CuResult<T> = Result<T, i32>;

/// The stream a command runs on, resolved.
#[derive(Debug)]
pub enum Lane<'a, S> {
    /// The legacy NULL stream of the device's context.
    Legacy,
    /// The per-thread default stream of the device's context.
    PerThread,
    /// A stream the guest created.
    Stream(&'a S),
}

/// A module image ready to load: the bytes (PTX with its terminating NUL
/// added), what the parser found in them, and the checked JIT options.
#[derive(Debug)]
pub struct ModuleImage<'a> {
    /// The image, NUL-terminated when it is PTX.
    pub bytes: &'a [u8],
    /// Kernels and globals the image declares.
    pub info: &'a ImageInfo,
    /// Plain-valued JIT options, each known to the driver API and unique.
    pub options: &'a [JitOption],
    /// Bytes of info log wanted (0: none).
    pub info_log_len: u32,
    /// Bytes of error log wanted (0: none).
    pub error_log_len: u32,
}

/// The outcome of a module load: the module or the load's `CUresult`, and
/// the JIT logs either way.
#[derive(Debug)]
pub struct Loaded<M> {
    /// The module, or why it did not load.
    pub module: CuResult<M>,
    /// The info log, at most the size asked for.
    pub info_log: Vec<u8>,
    /// The error log, at most the size asked for.
    pub error_log: Vec<u8>,
}

/// Grid, block and shared memory of a launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchDims {
    /// Blocks per grid dimension (each at least 1).
    pub grid: [u32; 3],
    /// Threads per block dimension (each at least 1).
    pub block: [u32; 3],
    /// Dynamic shared memory per block.
    pub shared_mem_bytes: u32,
}

/// The device operations a CUDA session needs. Methods that name a
/// `device` run in the session's context for that device, which
/// [`Backend::open_device`] created.
pub trait Backend: Send {
    /// A loaded module.
    type Module: Send;
    /// A kernel of a module.
    type Function: Send;
    /// A stream.
    type Stream: Send;
    /// An event.
    type Event: Send;
    /// A graph a capture produced.
    type Graph: Send;
    /// An instantiated (executable) graph.
    type GraphExec: Send;

    /// The driver's version (`cuDriverGetVersion`).
    fn driver_version(&self) -> i32;
    /// How many devices there are.
    fn device_count(&self) -> u32;
    /// A device's name, UUID, total memory and attributes (uncapped).
    fn device_info(&mut self, device: u32) -> CuResult<DeviceInfo>;
    /// Makes sure the session's context on `device` exists (idempotent).
    fn open_device(&mut self, device: u32) -> CuResult<()>;
    /// `cuCtxSynchronize` on the device's context.
    fn synchronize(&mut self, device: u32) -> CuResult<()>;
    /// `cuCtxGetLimit`, after `cuCtxSetLimit` when `value` is given
    /// (`limit` checked to be a `CUlimit`).
    fn ctx_limit(&mut self, device: u32, limit: u32, value: Option<u64>) -> CuResult<u64>;
    /// `cuCtxGetStreamPriorityRange`: `(least, greatest)`.
    fn stream_priority_range(&mut self, device: u32) -> CuResult<(i32, i32)>;

    /// The device's `(free, total)` memory.
    fn mem_get_info(&mut self, device: u32) -> CuResult<(u64, u64)>;
    /// Allocates `size` (> 0) bytes.
    fn mem_alloc(&mut self, device: u32, size: u64) -> CuResult<u64>;
    /// Frees an allocation this backend made.
    fn mem_free(&mut self, device: u32, ptr: u64) -> CuResult<()>;
    /// Copies the concatenated `src` segments to `dst`. The bytes are
    /// captured before this returns; the copy itself is ordered on `lane`.
    fn memcpy_htod(
        &mut self,
        device: u32,
        lane: Lane<'_, Self::Stream>,
        dst: u64,
        src: &[InSeg<'_>],
    ) -> CuResult<()>;
    /// Copies from `src` into the concatenated `dst` segments, ordered on
    /// `lane`, and waits for it: the segments are valid only until return.
    fn memcpy_dtoh(
        &mut self,
        device: u32,
        lane: Lane<'_, Self::Stream>,
        src: u64,
        dst: &[OutSeg<'_>],
    ) -> CuResult<()>;
    /// Copies `size` bytes between device ranges, ordered on `lane`.
    fn memcpy_dtod(
        &mut self,
        device: u32,
        lane: Lane<'_, Self::Stream>,
        dst: u64,
        src: u64,
        size: u64,
    ) -> CuResult<()>;
    /// Sets `count` elements of `width` at `dst` to `value`.
    fn memset(
        &mut self,
        device: u32,
        lane: Lane<'_, Self::Stream>,
        dst: u64,
        width: MemsetWidth,
        value: u32,
        count: u64,
    ) -> CuResult<()>;

    /// Loads a module image.
    fn module_load(&mut self, device: u32, image: &ModuleImage<'_>) -> Loaded<Self::Module>;
    /// Unloads a module.
    fn module_unload(&mut self, device: u32, module: Self::Module) -> CuResult<()>;
    /// A kernel of a module, with its parameter layout when the driver can
    /// tell it (`cuFuncGetParamInfo`); `None` leaves it to the image parser.
    fn get_function(
        &mut self,
        device: u32,
        module: &Self::Module,
        name: &str,
    ) -> CuResult<(Self::Function, Option<Vec<ParamInfo>>)>;
    /// A module global's address and size.
    fn get_global(
        &mut self,
        device: u32,
        module: &Self::Module,
        name: &str,
    ) -> CuResult<(u64, u64)>;
    /// `cuFuncGetAttribute` (attribute number checked against the API).
    fn func_get_attribute(&mut self, device: u32, f: &Self::Function, attr: i32) -> CuResult<i32>;
    /// `cuFuncSetAttribute` (attribute number checked against the API).
    fn func_set_attribute(
        &mut self,
        device: u32,
        f: &Self::Function,
        attr: i32,
        value: i32,
    ) -> CuResult<()>;
    /// `cuFuncSetCacheConfig` (config checked to be a `CUfunc_cache`).
    fn func_set_cache_config(
        &mut self,
        device: u32,
        f: &Self::Function,
        config: u32,
    ) -> CuResult<()>;
    /// Launches a kernel. `params` is the packed buffer; `layout`, when
    /// known, says where each parameter is in it (and matches its length).
    fn launch(
        &mut self,
        device: u32,
        f: &Self::Function,
        dims: &LaunchDims,
        lane: Lane<'_, Self::Stream>,
        params: &[u8],
        layout: Option<&[ParamInfo]>,
    ) -> CuResult<()>;
    /// `cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags`
    fn occupancy_max_active_blocks(
        &mut self,
        device: u32,
        f: &Self::Function,
        block_size: i32,
        dynamic_smem: u64,
        flags: u32,
    ) -> CuResult<i32>;
    /// `cuOccupancyMaxPotentialBlockSizeWithFlags`; returns
    /// `(min_grid_size, block_size)`.
    fn occupancy_max_potential_block_size(
        &mut self,
        device: u32,
        f: &Self::Function,
        dynamic_smem: &DynamicSmem,
        block_size_limit: i32,
        flags: u32,
    ) -> CuResult<(i32, i32)>;
    /// `cuOccupancyAvailableDynamicSMemPerBlock`
    fn occupancy_available_dynamic_smem(
        &mut self,
        device: u32,
        f: &Self::Function,
        num_blocks: i32,
        block_size: i32,
    ) -> CuResult<u64>;

    /// Creates a stream.
    fn stream_create(&mut self, device: u32, flags: u32, priority: i32) -> CuResult<Self::Stream>;
    /// Destroys a stream (work already queued on it still completes).
    fn stream_destroy(&mut self, device: u32, stream: Self::Stream) -> CuResult<()>;
    /// Waits for a stream's work.
    fn stream_synchronize(&mut self, device: u32, lane: Lane<'_, Self::Stream>) -> CuResult<()>;
    /// `CUDA_ERROR_NOT_READY` while a stream has work pending.
    fn stream_query(&mut self, device: u32, lane: Lane<'_, Self::Stream>) -> CuResult<()>;
    /// Makes a stream wait for an event (possibly of another device).
    fn stream_wait_event(
        &mut self,
        device: u32,
        lane: Lane<'_, Self::Stream>,
        event: &Self::Event,
        flags: u32,
    ) -> CuResult<()>;

    /// Creates an event.
    fn event_create(&mut self, device: u32, flags: u32) -> CuResult<Self::Event>;
    /// Destroys an event.
    fn event_destroy(&mut self, device: u32, event: Self::Event) -> CuResult<()>;
    /// Records an event on a stream of the same device.
    fn event_record(
        &mut self,
        device: u32,
        event: &Self::Event,
        lane: Lane<'_, Self::Stream>,
        flags: u32,
    ) -> CuResult<()>;
    /// Waits for an event.
    fn event_synchronize(&mut self, device: u32, event: &Self::Event) -> CuResult<()>;
    /// `CUDA_ERROR_NOT_READY` while an event is pending.
    fn event_query(&mut self, device: u32, event: &Self::Event) -> CuResult<()>;
    /// Milliseconds between two events of the same device.
    fn event_elapsed(
        &mut self,
        device: u32,
        start: &Self::Event,
        end: &Self::Event,
    ) -> CuResult<f32>;

    /// Allocates `size` (> 0) bytes from the device's default memory pool,
    /// ordered on `lane`.
    fn mem_alloc_async(
        &mut self,
        device: u32,
        lane: Lane<'_, Self::Stream>,
        size: u64,
    ) -> CuResult<u64>;
    /// Frees a stream-ordered allocation, ordered on `lane`.
    fn mem_free_async(
        &mut self,
        device: u32,
        lane: Lane<'_, Self::Stream>,
        ptr: u64,
    ) -> CuResult<()>;
    /// A stream memory operation on `lane` (`addr` checked to lie in the
    /// session's memory, aligned; `flags` checked for `kind`).
    fn stream_mem_op(
        &mut self,
        device: u32,
        lane: Lane<'_, Self::Stream>,
        kind: MemOpKind,
        addr: u64,
        value: u64,
        flags: u32,
    ) -> CuResult<()>;
    /// Starts capturing the work posted on `stream` (`CUstreamCaptureMode`
    /// `mode`, checked).
    fn stream_begin_capture(
        &mut self,
        device: u32,
        stream: &Self::Stream,
        mode: u32,
    ) -> CuResult<()>;
    /// Ends the capture on `stream`, giving its graph.
    fn stream_end_capture(&mut self, device: u32, stream: &Self::Stream) -> CuResult<Self::Graph>;
    /// Instantiates a graph.
    fn graph_instantiate(
        &mut self,
        device: u32,
        graph: &Self::Graph,
        flags: u64,
    ) -> CuResult<Self::GraphExec>;
    /// Launches an executable graph on `lane`.
    fn graph_launch(
        &mut self,
        device: u32,
        exec: &Self::GraphExec,
        lane: Lane<'_, Self::Stream>,
    ) -> CuResult<()>;
    /// Destroys a graph.
    fn graph_destroy(&mut self, device: u32, graph: Self::Graph) -> CuResult<()>;
    /// Destroys an executable graph.
    fn graph_exec_destroy(&mut self, device: u32, exec: Self::GraphExec) -> CuResult<()>;
}
