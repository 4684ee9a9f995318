//! CUDA driver API message bodies.
//!
//! # Names
//! - **Devices** are ordinals `0..device_count`, as in the driver API.
//! - **Contexts, modules, functions, streams and events** are session-local
//!   [`Handle`]s chosen by the guest when it creates them, so that creations
//!   can be batched without a round trip. The daemon rejects a zero or
//!   duplicate new handle, and a missing or wrong-kind handle, with the
//!   native `CUresult` ([`result::INVALID_CONTEXT`] for contexts,
//!   [`result::INVALID_HANDLE`] otherwise).
//! - **Device pointers** are the real `CUdeviceptr` values of the session's
//!   own CUDA context. Kernels embed pointers in their parameters and in
//!   structures in device memory, so pointers cannot be translated; instead
//!   each session has a context of its own (GPU virtual address spaces are
//!   per context: this is the isolation boundary), and every range a request
//!   names (copies, memsets) is checked against the session's allocation
//!   table before use. Launches are exempt: what a kernel dereferences is
//!   confined by its context's address space.
//!
//! # Contexts
//! Guest contexts are handles over the session's real context for their
//! device (one real context per device the session uses, created on first
//! use and never shared with another session). Destroying a guest context
//! frees every module, allocation, stream and event created under it. The
//! context stack (`cuCtxPush`/`Pop`/`GetCurrent`/`SetCurrent`) and the
//! primary context's reference count and state live in the shim: a retained
//! primary context is an ordinary guest context to the daemon. Messages that
//! use a default stream carry the guest's current context in [`StreamRef`].
//!
//! # Errors
//! Each session starts uninitialized: every CUDA request before
//! [`Init`] (`CuInit`) fails with [`result::NOT_INITIALIZED`], so the shim
//! sends it first in every session it opens. A failed request's frame
//! status carries the native `CUresult`
//! ([`result`] lists the codes the daemon produces itself); the shim keeps
//! the failure of a fire-and-forget call sticky, as the driver does for
//! asynchronous errors. [`ModuleLoaded`] is the one reply that carries a
//! `CUresult` in its body, because a failed JIT compilation still returns
//! its logs.
//!
//! # Bulk data
//! Host-to-device copies and module images travel as in-bulk segments (one
//! or more, concatenated in order, adding up to the request's size); the
//! daemon copies them out before it answers, so the guest may reuse its
//! memory at once. Device-to-host copies fill out-bulk segments the same way
//! and are complete when the daemon answers, whatever the stream.
//!
//! # Answered by the shim alone
//! `cuGetErrorName`/`String`, `cuDriverGetVersion` and `cuDeviceGetCount`
//! (from [`InitInfo`]), `cuDeviceGet`, `cuDeviceGetName`/`Uuid`/`Attribute`,
//! `cuDeviceTotalMem` and `cuDeviceComputeCapability` (from [`DeviceInfo`],
//! cached), the context stack, primary-context bookkeeping, host
//! allocations (`cuMemAllocHost`, `cuMemHostAlloc`, `cuMemFreeHost`,
//! `cuMemHostRegister`: shared-arena memory, whose copies are zero-copy bulk
//! segments), `cuFuncGetParamInfo` (from [`FunctionInfo`]) and
//! `cuGetProcAddress`.

use bincode::{Decode, Encode};

use crate::error::DecodeError;
use crate::limits::*;
use crate::opencl::{check_list, check_string, Validate};

pub use crate::cuda_graph::*;
pub use crate::opencl::{Empty, Handle};

/// Native `CUresult` codes the daemon itself returns (the driver's own
/// codes pass through unchanged). Numbers are those of `cuda.h`.
pub mod result {
    /// `CUDA_SUCCESS`
    pub const SUCCESS: i32 = 0;
    /// `CUDA_ERROR_INVALID_VALUE`: a bad size, range, flag or option.
    pub const INVALID_VALUE: i32 = 1;
    /// `CUDA_ERROR_OUT_OF_MEMORY`: also the per-session memory limit.
    pub const OUT_OF_MEMORY: i32 = 2;
    /// `CUDA_ERROR_NOT_INITIALIZED`
    pub const NOT_INITIALIZED: i32 = 3;
    /// `CUDA_ERROR_NO_DEVICE`
    pub const NO_DEVICE: i32 = 100;
    /// `CUDA_ERROR_INVALID_DEVICE`: an ordinal past the device count.
    pub const INVALID_DEVICE: i32 = 101;
    /// `CUDA_ERROR_INVALID_IMAGE`: a module image that is not what it claims.
    pub const INVALID_IMAGE: i32 = 200;
    /// `CUDA_ERROR_INVALID_CONTEXT`: a missing or wrong-kind context handle.
    pub const INVALID_CONTEXT: i32 = 201;
    /// `CUDA_ERROR_INVALID_PTX`
    pub const INVALID_PTX: i32 = 218;
    /// `CUDA_ERROR_INVALID_HANDLE`: a missing, wrong-kind, zero or
    /// duplicate handle.
    pub const INVALID_HANDLE: i32 = 400;
    /// `CUDA_ERROR_UNSUPPORTED_LIMIT`: a `CUlimit` the device lacks.
    pub const UNSUPPORTED_LIMIT: i32 = 215;
    /// `CUDA_ERROR_NOT_FOUND`: no such kernel or global in a module.
    pub const NOT_FOUND: i32 = 500;
    /// `CUDA_ERROR_NOT_READY`: a stream or event query found work pending.
    pub const NOT_READY: i32 = 600;
    /// `CUDA_ERROR_LAUNCH_FAILED`
    pub const LAUNCH_FAILED: i32 = 719;
    /// `CUDA_ERROR_NOT_SUPPORTED`: a feature the daemon does not forward.
    pub const NOT_SUPPORTED: i32 = 801;
    /// `CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED`: not allowed on a stream
    /// that captures.
    pub const STREAM_CAPTURE_UNSUPPORTED: i32 = 900;
    /// `CUDA_ERROR_STREAM_CAPTURE_UNMATCHED`: an end without a begin.
    pub const STREAM_CAPTURE_UNMATCHED: i32 = 903;
    /// `CUDA_ERROR_UNKNOWN`
    pub const UNKNOWN: i32 = 999;
}

/// The kinds of guest-named CUDA object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode)]
pub enum CuObjectKind {
    /// `CUcontext`
    Context,
    /// `CUmodule`
    Module,
    /// `CUfunction`
    Function,
    /// `CUstream`
    Stream,
    /// `CUevent`
    Event,
    /// `CUgraph` or `CUgraphExec`
    Graph,
}

impl CuObjectKind {
    /// The native error for a missing or wrong-kind handle of this kind.
    pub fn invalid(self) -> i32 {
        match self {
            CuObjectKind::Context => result::INVALID_CONTEXT,
            _ => result::INVALID_HANDLE,
        }
    }
}

/// The stream a command goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode)]
pub enum StreamRef {
    /// The NULL stream (`0` or `CU_STREAM_LEGACY`) of the given guest
    /// context (the caller's current one), with legacy synchronization.
    Legacy {
        /// The caller's current context.
        ctx: Handle,
    },
    /// `CU_STREAM_PER_THREAD`, or the NULL stream of a `_ptsz` entry point.
    PerThread {
        /// The caller's current context.
        ctx: Handle,
    },
    /// A stream the guest created.
    Stream(Handle),
}

// ---- initialization and devices ----

/// `cuInit`
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Init {
    /// `Flags` (must be 0 for the driver).
    pub flags: u32,
}

/// The daemon's driver, answered once and cached by the shim.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct InitInfo {
    /// `cuDriverGetVersion` of the host driver (e.g. 12040).
    pub driver_version: i32,
    /// `cuDeviceGetCount`
    pub device_count: u32,
}

/// Everything immutable about one device.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct DeviceQuery {
    /// Device ordinal.
    pub device: u32,
}

/// One `CUdevice_attribute` and its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct DeviceAttribute {
    /// The `CUdevice_attribute` number.
    pub attribute: i32,
    /// Its value.
    pub value: i32,
}

/// A device's name, UUID, memory and attributes, cached by the shim.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct DeviceInfo {
    /// `cuDeviceGetName`
    pub name: String,
    /// `cuDeviceGetUuid`
    pub uuid: [u8; 16],
    /// `cuDeviceTotalMem`, capped at the session's memory limit.
    pub total_mem: u64,
    /// Every attribute the host driver answers, in attribute order; the
    /// shim answers any other with `CUDA_ERROR_INVALID_VALUE`.
    pub attributes: Vec<DeviceAttribute>,
}

// ---- contexts ----

/// `cuCtxCreate` (and the first `cuDevicePrimaryCtxRetain` of a device).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct CtxCreate {
    /// Guest-chosen handle.
    pub id: Handle,
    /// Device ordinal.
    pub device: u32,
    /// `CUctx_flags`; checked for unknown bits, otherwise advisory (the
    /// session's real context has its own).
    pub flags: u32,
}

/// `cuCtxDestroy` (and the last primary-context release): frees every
/// module, allocation, stream and event created under the context.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct CtxDestroy {
    /// Context handle.
    pub ctx: Handle,
}

/// `cuCtxSynchronize`
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct CtxSynchronize {
    /// The caller's current context.
    pub ctx: Handle,
}

/// `cuCtxGetLimit` (`value` none) / `cuCtxSetLimit` (`value` some): one
/// `CUlimit` of the caller's current context. The answer is the limit's
/// value after the call.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct CtxLimit {
    /// The caller's current context.
    pub ctx: Handle,
    /// The `CUlimit` number.
    pub limit: u32,
    /// The value to set, if setting.
    pub value: Option<u64>,
}

/// `cuCtxGetStreamPriorityRange` of the caller's current context.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct CtxPriorityRange {
    /// The caller's current context.
    pub ctx: Handle,
}

/// Stream priorities a device offers (numerically lower is higher).
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct PriorityRange {
    /// The least (lowest) priority.
    pub least: i32,
    /// The greatest (highest) priority.
    pub greatest: i32,
}

// ---- modules and functions ----

/// What a module image is; the daemon checks it against the image's magic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode)]
pub enum ImageKind {
    /// NUL-free PTX text (the shim strips the terminating NUL).
    Ptx,
    /// An ELF cubin.
    Cubin,
    /// A fat binary (`__nv_fatbin` contents).
    Fatbin,
}

/// One `CUjit_option` with a plain value. Options whose value is a pointer
/// (log buffers) are expressed by [`ModuleLoad`]'s log sizes instead; the
/// daemon refuses any option it does not know to carry a plain value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct JitOption {
    /// The `CUjit_option` number.
    pub option: u32,
    /// Its value, widened (an `unsigned int`, `int` or enum).
    pub value: u64,
}

/// `cuModuleLoadData`/`LoadDataEx`/`LoadFatBinary`; the image is the
/// frame's in-bulk segments, `image_len` bytes in all, or, when `upload`
/// names a complete staged upload of that length ([`ModuleStage`]), that
/// upload (and the frame has no bulk).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ModuleLoad {
    /// Guest-chosen handle.
    pub id: Handle,
    /// The caller's current context.
    pub ctx: Handle,
    /// What the image is.
    pub kind: ImageKind,
    /// Image length in bytes.
    pub image_len: u64,
    /// Plain-valued JIT options.
    pub options: Vec<JitOption>,
    /// `CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES` (0: no info log wanted).
    pub info_log_len: u32,
    /// `CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES` (0: no error log wanted).
    pub error_log_len: u32,
    /// The staged upload holding the image, if it was staged.
    pub upload: Option<Handle>,
}

/// The outcome of a load that reached the driver. `result` is the load's
/// `CUresult` (the module exists only when it is 0); the logs are returned
/// either way, each at most the size asked for, without the NUL.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct ModuleLoaded {
    /// The load's `CUresult`.
    pub result: i32,
    /// The JIT info log.
    pub info_log: Vec<u8>,
    /// The JIT error log.
    pub error_log: Vec<u8>,
}

/// `cuModuleUnload`: its functions and globals go with it.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ModuleUnload {
    /// Module handle.
    pub module: Handle,
}

/// `cuModuleGetFunction`
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct GetFunction {
    /// Guest-chosen handle of the function.
    pub id: Handle,
    /// Module handle.
    pub module: Handle,
    /// Kernel (entry) name, mangled as in the image.
    pub name: String,
}

/// Where one kernel parameter lives in the packed parameter buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ParamInfo {
    /// Byte offset in the buffer.
    pub offset: u32,
    /// Size in bytes.
    pub size: u32,
}

/// What the shim needs to marshal `cuLaunchKernel`'s `kernelParams`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct FunctionInfo {
    /// The parameter layout (from `cuFuncGetParamInfo`, the PTX `.entry`
    /// signature or the cubin's `.nv.info`), or `None` when the image does
    /// not say; then only the `extra` launch form can be used.
    pub params: Option<Vec<ParamInfo>>,
}

impl FunctionInfo {
    /// Size of the packed parameter buffer the layout describes.
    pub fn params_len(&self) -> Option<u64> {
        self.params.as_ref().map(|p| {
            p.iter()
                .map(|i| u64::from(i.offset) + u64::from(i.size))
                .max()
                .unwrap_or(0)
        })
    }
}

/// `cuModuleGetGlobal`
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct GetGlobal {
    /// Module handle.
    pub module: Handle,
    /// The global's name.
    pub name: String,
}

/// A module global: a device range copies may name until the module goes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct Global {
    /// Its device address.
    pub ptr: u64,
    /// Its size in bytes.
    pub size: u64,
}

/// `cuFuncGetAttribute`
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct FuncGetAttribute {
    /// Function handle.
    pub function: Handle,
    /// The `CUfunction_attribute` number.
    pub attribute: i32,
}

/// `cuFuncSetAttribute`
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct FuncSetAttribute {
    /// Function handle.
    pub function: Handle,
    /// The `CUfunction_attribute` number.
    pub attribute: i32,
    /// The new value.
    pub value: i32,
}

/// `cuFuncSetCacheConfig`
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct FuncSetCacheConfig {
    /// Function handle.
    pub function: Handle,
    /// The `CUfunc_cache` value.
    pub config: u32,
}

/// A single `int` answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct IntValue {
    /// The value.
    pub value: i32,
}

/// A single size answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct SizeValue {
    /// The value.
    pub value: u64,
}

// ---- memory ----

/// `cuMemAlloc`
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct MemAlloc {
    /// The caller's current context.
    pub ctx: Handle,
    /// Bytes (0 is `CUDA_ERROR_INVALID_VALUE`, as native).
    pub size: u64,
}

/// A device address.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct DevicePtr {
    /// The `CUdeviceptr`.
    pub ptr: u64,
}

/// `cuMemFree`: `ptr` must be the start of a live allocation.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct MemFree {
    /// The allocation's address.
    pub ptr: u64,
}

/// `cuMemGetInfo`
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct MemGetInfo {
    /// The caller's current context.
    pub ctx: Handle,
}

/// Free and total device memory as this session sees it: both capped by
/// the session's memory limit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct MemInfo {
    /// Bytes the session could still allocate.
    pub free: u64,
    /// The device's memory, or the limit if lower.
    pub total: u64,
}

/// `cuMemcpyHtoD[Async]`; the source is the frame's in-bulk segments,
/// `size` bytes in all.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct MemcpyHtoD {
    /// Destination device address.
    pub dst: u64,
    /// Bytes.
    pub size: u64,
    /// Stream.
    pub stream: StreamRef,
}

/// `cuMemcpyDtoH[Async]`; the destination is the frame's out-bulk
/// segments. Complete when the daemon answers.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct MemcpyDtoH {
    /// Source device address.
    pub src: u64,
    /// Bytes.
    pub size: u64,
    /// Stream.
    pub stream: StreamRef,
}

/// `cuMemcpyDtoD[Async]` (and `cuMemcpy` between device addresses).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct MemcpyDtoD {
    /// Destination device address.
    pub dst: u64,
    /// Source device address.
    pub src: u64,
    /// Bytes.
    pub size: u64,
    /// Stream.
    pub stream: StreamRef,
}

/// Element width of a memset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode)]
pub enum MemsetWidth {
    /// `cuMemsetD8`
    D8,
    /// `cuMemsetD16`
    D16,
    /// `cuMemsetD32`
    D32,
}

impl MemsetWidth {
    /// Bytes per element.
    pub fn bytes(self) -> u64 {
        match self {
            MemsetWidth::D8 => 1,
            MemsetWidth::D16 => 2,
            MemsetWidth::D32 => 4,
        }
    }
}

/// `cuMemsetD8/D16/D32[Async]`
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Memset {
    /// Destination device address (aligned to the element width).
    pub dst: u64,
    /// The element value (only the low `width` bytes are used).
    pub value: u32,
    /// Element width.
    pub width: MemsetWidth,
    /// Number of elements.
    pub count: u64,
    /// Stream.
    pub stream: StreamRef,
}

/// `cuPointerGetAttribute` for a device address (host-arena addresses are
/// answered by the shim).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct PointerGetAttribute {
    /// The address.
    pub ptr: u64,
    /// The `CUpointer_attribute` number.
    pub attribute: u32,
}

/// A pointer attribute's value, widened; for `CU_POINTER_ATTRIBUTE_CONTEXT`
/// it is the owning context's guest handle.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct PointerAttribute {
    /// The value.
    pub value: u64,
}

// ---- streams and events ----

/// `cuStreamCreate[WithPriority]`
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct StreamCreate {
    /// Guest-chosen handle.
    pub id: Handle,
    /// The caller's current context.
    pub ctx: Handle,
    /// `CUstream_flags`.
    pub flags: u32,
    /// Priority (clamped by the driver to the device's range).
    pub priority: i32,
}

/// `cuStreamDestroy`
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct StreamDestroy {
    /// Stream handle.
    pub stream: Handle,
}

/// `cuStreamSynchronize` / `cuStreamQuery` (which answers
/// [`result::NOT_READY`] while work is pending).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct StreamOp {
    /// The stream.
    pub stream: StreamRef,
}

/// `cuStreamWaitEvent`
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct StreamWaitEvent {
    /// The stream that waits.
    pub stream: StreamRef,
    /// Event handle.
    pub event: Handle,
    /// `CUevent_wait_flags`.
    pub flags: u32,
}

/// `cuEventCreate`
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct EventCreate {
    /// Guest-chosen handle.
    pub id: Handle,
    /// The caller's current context.
    pub ctx: Handle,
    /// `CUevent_flags` (`CU_EVENT_INTERPROCESS` is refused).
    pub flags: u32,
}

/// `cuEventRecord[WithFlags]`
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct EventRecord {
    /// Event handle.
    pub event: Handle,
    /// The stream to record on.
    pub stream: StreamRef,
    /// `CUevent_record_flags`.
    pub flags: u32,
}

/// `cuEventSynchronize` / `cuEventQuery` / `cuEventDestroy`.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct EventOp {
    /// Event handle.
    pub event: Handle,
}

/// `cuEventElapsedTime`
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct EventElapsedTime {
    /// Start event handle.
    pub start: Handle,
    /// End event handle.
    pub end: Handle,
}

/// Milliseconds between two events, as the bits of an `f32` (so that the
/// message types stay `Eq`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct Elapsed {
    /// `f32::to_bits` of the milliseconds.
    pub millis_bits: u32,
}

impl Elapsed {
    /// Wraps a value in milliseconds.
    pub fn from_millis(ms: f32) -> Self {
        Elapsed {
            millis_bits: ms.to_bits(),
        }
    }

    /// The value in milliseconds.
    pub fn millis(&self) -> f32 {
        f32::from_bits(self.millis_bits)
    }
}

// ---- launches and occupancy ----

/// `cuLaunchKernel`. `params` is the packed parameter buffer: each
/// parameter at its [`ParamInfo`] offset (the shim packs `kernelParams`
/// from the layout; the `extra` form's `CU_LAUNCH_PARAM_BUFFER_POINTER`
/// buffer already is one). Device pointers inside are not translated.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct LaunchKernel {
    /// Function handle.
    pub function: Handle,
    /// Grid dimensions in blocks.
    pub grid: [u32; 3],
    /// Block dimensions in threads.
    pub block: [u32; 3],
    /// Dynamic shared memory per block, in bytes.
    pub shared_mem_bytes: u32,
    /// Stream.
    pub stream: StreamRef,
    /// The packed parameter buffer.
    pub params: Vec<u8>,
}

/// `cuOccupancyMaxActiveBlocksPerMultiprocessor[WithFlags]`
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct OccupancyMaxActiveBlocks {
    /// Function handle.
    pub function: Handle,
    /// Threads per block.
    pub block_size: i32,
    /// Dynamic shared memory per block.
    pub dynamic_smem: u64,
    /// `CUoccupancy_flags`.
    pub flags: u32,
}

/// The dynamic shared memory a kernel needs, as a function of block size.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum DynamicSmem {
    /// The same for every block size (`blockSizeToDynamicSMemSize == NULL`).
    Fixed(u64),
    /// The guest's callback, tabulated by the shim: entry `i` is its value
    /// for a block of `32 * (i + 1)` threads. At most
    /// [`MAX_OCCUPANCY_TABLE`] entries; block sizes past the table use the
    /// last entry.
    PerBlockSize(Vec<u64>),
}

/// `cuOccupancyMaxPotentialBlockSize[WithFlags]`
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct OccupancyMaxPotentialBlockSize {
    /// Function handle.
    pub function: Handle,
    /// Dynamic shared memory per block.
    pub dynamic_smem: DynamicSmem,
    /// Largest block size to consider (0: no limit).
    pub block_size_limit: i32,
    /// `CUoccupancy_flags`.
    pub flags: u32,
}

/// The answer to [`OccupancyMaxPotentialBlockSize`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct PotentialBlockSize {
    /// Smallest grid that reaches full occupancy.
    pub min_grid_size: i32,
    /// The block size that does.
    pub block_size: i32,
}

/// `cuOccupancyAvailableDynamicSMemPerBlock`
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct OccupancyAvailableDynamicSmem {
    /// Function handle.
    pub function: Handle,
    /// Blocks per multiprocessor.
    pub num_blocks: i32,
    /// Threads per block.
    pub block_size: i32,
}

// ---- validation ----

impl Validate for Init {}
impl Validate for DeviceQuery {}
impl Validate for CtxCreate {}
impl Validate for CtxDestroy {}
impl Validate for CtxSynchronize {}
impl Validate for CtxLimit {}
impl Validate for CtxPriorityRange {}
impl Validate for ModuleUnload {}
impl Validate for FuncGetAttribute {}
impl Validate for FuncSetAttribute {}
impl Validate for FuncSetCacheConfig {}
impl Validate for MemAlloc {}
impl Validate for MemFree {}
impl Validate for MemGetInfo {}
impl Validate for MemcpyDtoD {}
impl Validate for Memset {}
impl Validate for PointerGetAttribute {}
impl Validate for StreamCreate {}
impl Validate for StreamDestroy {}
impl Validate for StreamOp {}
impl Validate for StreamWaitEvent {}
impl Validate for EventCreate {}
impl Validate for EventRecord {}
impl Validate for EventOp {}
impl Validate for EventElapsedTime {}
impl Validate for OccupancyMaxActiveBlocks {}
impl Validate for OccupancyAvailableDynamicSmem {}

impl Validate for ModuleLoad {
    fn validate(&self) -> Result<(), DecodeError> {
        if self.image_len > MAX_MODULE_IMAGE_LEN {
            return Err(DecodeError::OutOfRange("module image length"));
        }
        check_list(self.options.len(), MAX_JIT_OPTIONS, "JIT options")?;
        if u64::from(self.info_log_len.max(self.error_log_len)) > MAX_JIT_LOG_LEN {
            return Err(DecodeError::OutOfRange("JIT log size"));
        }
        Ok(())
    }
}

impl Validate for GetFunction {
    fn validate(&self) -> Result<(), DecodeError> {
        check_string(&self.name, "kernel name")
    }
}

impl Validate for GetGlobal {
    fn validate(&self) -> Result<(), DecodeError> {
        check_string(&self.name, "global name")
    }
}

impl Validate for MemcpyHtoD {
    fn validate(&self) -> Result<(), DecodeError> {
        check_transfer(self.size)
    }
}

impl Validate for MemcpyDtoH {
    fn validate(&self) -> Result<(), DecodeError> {
        check_transfer(self.size)
    }
}

impl Validate for LaunchKernel {
    fn validate(&self) -> Result<(), DecodeError> {
        check_list(
            self.params.len(),
            MAX_KERNEL_PARAM_BYTES,
            "kernel parameter buffer",
        )
    }
}

impl Validate for OccupancyMaxPotentialBlockSize {
    fn validate(&self) -> Result<(), DecodeError> {
        match &self.dynamic_smem {
            DynamicSmem::Fixed(_) => Ok(()),
            DynamicSmem::PerBlockSize(t) if t.is_empty() => {
                Err(DecodeError::OutOfRange("empty shared memory table"))
            }
            DynamicSmem::PerBlockSize(t) => {
                check_list(t.len(), MAX_OCCUPANCY_TABLE, "shared memory table")
            }
        }
    }
}

fn check_transfer(size: u64) -> Result<(), DecodeError> {
    if size > MAX_TRANSFER_LEN {
        return Err(DecodeError::OutOfRange("transfer size"));
    }
    Ok(())
}
