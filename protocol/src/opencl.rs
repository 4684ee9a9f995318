//! OpenCL message bodies.
//!
//! Objects are named by session-local [`Handle`]s, never by host pointers.
//! Platforms and devices get handles from the daemon; every other object's
//! handle is chosen by the guest when it creates the object, so creation can
//! be batched without a round trip. The daemon rejects a handle that is zero,
//! already in use, or of the wrong kind.

use bincode::{Decode, Encode};

use crate::error::DecodeError;
use crate::limits::*;

pub mod devices;
pub mod images;
pub mod layout;
pub mod programs;
pub mod transfers;

pub use devices::*;
pub use images::*;
pub use programs::*;
pub use transfers::*;

/// A session-local object name. Zero is never a valid handle.
pub type Handle = u64;

/// The kinds of object a session can own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode)]
pub enum ObjectKind {
    /// `cl_platform_id`
    Platform,
    /// `cl_device_id`
    Device,
    /// `cl_context`
    Context,
    /// `cl_command_queue`
    CommandQueue,
    /// `cl_mem`
    MemObject,
    /// `cl_program`
    Program,
    /// `cl_kernel`
    Kernel,
    /// `cl_event`
    Event,
    /// `cl_sampler`
    Sampler,
}

/// Which `clGet*Info` entry point an info query stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode)]
pub enum InfoKind {
    /// `clGetPlatformInfo`
    Platform,
    /// `clGetDeviceInfo`
    Device,
    /// `clGetContextInfo`
    Context,
    /// `clGetCommandQueueInfo`
    CommandQueue,
    /// `clGetMemObjectInfo`
    MemObject,
    /// `clGetProgramInfo`
    Program,
    /// `clGetProgramBuildInfo` (`extra` = device handle)
    ProgramBuild,
    /// `clGetKernelInfo`
    Kernel,
    /// `clGetKernelWorkGroupInfo` (`extra` = device handle, 0 for none)
    KernelWorkGroup,
    /// `clGetKernelArgInfo` (`extra` = argument index)
    KernelArg,
    /// `clGetEventInfo`
    Event,
    /// `clGetEventProfilingInfo`
    EventProfiling,
    /// `clGetImageInfo`
    Image,
    /// `clGetSamplerInfo`
    Sampler,
}

impl InfoKind {
    /// The kind of object the query's `object` handle must name.
    pub fn object_kind(self) -> ObjectKind {
        match self {
            InfoKind::Platform => ObjectKind::Platform,
            InfoKind::Device => ObjectKind::Device,
            InfoKind::Context => ObjectKind::Context,
            InfoKind::CommandQueue => ObjectKind::CommandQueue,
            InfoKind::MemObject => ObjectKind::MemObject,
            InfoKind::Program | InfoKind::ProgramBuild => ObjectKind::Program,
            InfoKind::Kernel | InfoKind::KernelWorkGroup | InfoKind::KernelArg => {
                ObjectKind::Kernel
            }
            InfoKind::Event | InfoKind::EventProfiling => ObjectKind::Event,
            InfoKind::Image => ObjectKind::MemObject,
            InfoKind::Sampler => ObjectKind::Sampler,
        }
    }
}

/// Info parameters whose values are host pointers or object handles.
///
/// The daemon never answers these (a host address must not reach a guest);
/// the shim answers them from its own object records. One list, used by both.
pub fn is_handle_valued(kind: InfoKind, param: u32) -> bool {
    matches!(
        (kind, param),
        (InfoKind::Device, 0x1031)              // CL_DEVICE_PLATFORM
            | (InfoKind::Device, 0x1042)        // CL_DEVICE_PARENT_DEVICE
            | (InfoKind::Context, 0x1081)       // CL_CONTEXT_DEVICES
            | (InfoKind::Context, 0x1082)       // CL_CONTEXT_PROPERTIES
            | (InfoKind::CommandQueue, 0x1090)  // CL_QUEUE_CONTEXT
            | (InfoKind::CommandQueue, 0x1091)  // CL_QUEUE_DEVICE
            | (InfoKind::CommandQueue, 0x1095)  // CL_QUEUE_DEVICE_DEFAULT
            | (InfoKind::MemObject, 0x1103)     // CL_MEM_HOST_PTR
            | (InfoKind::MemObject, 0x1106)     // CL_MEM_CONTEXT
            | (InfoKind::MemObject, 0x1107)     // CL_MEM_ASSOCIATED_MEMOBJECT
            | (InfoKind::Program, 0x1161)       // CL_PROGRAM_CONTEXT
            | (InfoKind::Program, 0x1163)       // CL_PROGRAM_DEVICES
            | (InfoKind::Program, 0x1166)       // CL_PROGRAM_BINARIES
            | (InfoKind::Kernel, 0x1193)        // CL_KERNEL_CONTEXT
            | (InfoKind::Kernel, 0x1194)        // CL_KERNEL_PROGRAM
            | (InfoKind::Event, 0x11D0)         // CL_EVENT_COMMAND_QUEUE
            | (InfoKind::Event, 0x11D4)         // CL_EVENT_CONTEXT
            | (InfoKind::Image, 0x1118)         // CL_IMAGE_BUFFER
            | (InfoKind::Sampler, 0x1151) // CL_SAMPLER_CONTEXT
    )
}

/// An empty body, for requests with no arguments and replies with no data.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct Empty {}

/// A list of handles (platforms, devices).
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct HandleList {
    /// The handles, in the runtime's order.
    pub handles: Vec<Handle>,
}

/// `clGetDeviceIDs`
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct GetDeviceIds {
    /// Platform handle.
    pub platform: Handle,
    /// `cl_device_type` bits.
    pub device_type: u64,
}

/// Any `clGet*Info` query.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct GetInfo {
    /// Which entry point.
    pub kind: InfoKind,
    /// The object queried.
    pub object: Handle,
    /// Device handle (build and work-group info) or argument index.
    pub extra: u64,
    /// The `param_name`.
    pub param: u32,
    /// The caller's `param_value_size`; 0 asks for the size only.
    pub size: u64,
}

/// The answer to an info query.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct InfoValue {
    /// The full size of the value (`param_value_size_ret`).
    pub size: u64,
    /// The value, empty when only the size was asked for.
    pub value: Vec<u8>,
}

/// `clCreateContext`
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct CreateContext {
    /// Guest-chosen handle of the new context.
    pub id: Handle,
    /// Properties, zero-terminated; a `CL_CONTEXT_PLATFORM` value is a
    /// platform handle.
    pub properties: Vec<u64>,
    /// Device handles.
    pub devices: Vec<Handle>,
}

/// `clCreateContextFromType`; the reply is the context's devices.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct CreateContextFromType {
    /// Guest-chosen handle of the new context.
    pub id: Handle,
    /// As in [`CreateContext`].
    pub properties: Vec<u64>,
    /// `cl_device_type` bits.
    pub device_type: u64,
}

/// `clCreateCommandQueueWithProperties` (and the 1.2 form).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct CreateCommandQueue {
    /// Guest-chosen handle.
    pub id: Handle,
    /// Context handle.
    pub context: Handle,
    /// Device handle.
    pub device: Handle,
    /// Zero-terminated `cl_queue_properties` list (may be empty).
    pub properties: Vec<u64>,
}

/// `clCreateBuffer`; one in-bulk segment carries initial data when
/// `CL_MEM_COPY_HOST_PTR` or `CL_MEM_USE_HOST_PTR` is set.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct CreateBuffer {
    /// Guest-chosen handle.
    pub id: Handle,
    /// Context handle.
    pub context: Handle,
    /// `cl_mem_flags`.
    pub flags: u64,
    /// Size in bytes.
    pub size: u64,
}

/// `clCreateSubBuffer` with `CL_BUFFER_CREATE_TYPE_REGION`.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct CreateSubBuffer {
    /// Guest-chosen handle.
    pub id: Handle,
    /// Parent buffer handle.
    pub buffer: Handle,
    /// `cl_mem_flags`.
    pub flags: u64,
    /// Region origin.
    pub origin: u64,
    /// Region size.
    pub size: u64,
}

/// `clCreateProgramWithSource`, the strings already joined.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct CreateProgramWithSource {
    /// Guest-chosen handle.
    pub id: Handle,
    /// Context handle.
    pub context: Handle,
    /// The source text.
    pub source: String,
}

/// `clCreateProgramWithBinary`; the reply is [`BinaryStatus`].
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct CreateProgramWithBinary {
    /// Guest-chosen handle.
    pub id: Handle,
    /// Context handle.
    pub context: Handle,
    /// Device handles, one per binary.
    pub devices: Vec<Handle>,
    /// The binaries.
    pub binaries: Vec<Vec<u8>>,
}

/// Per-device load status of [`CreateProgramWithBinary`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct BinaryStatus {
    /// One `cl_int` per device.
    pub status: Vec<i32>,
}

/// `clBuildProgram` (also `clCompileProgram` without headers).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct BuildProgram {
    /// Program handle.
    pub program: Handle,
    /// Device handles; empty means all of the context's devices.
    pub devices: Vec<Handle>,
    /// Build options, without `-I` (see [`GuestHeaders`]).
    pub options: String,
    /// The guest's header files the build can include.
    pub headers: GuestHeaders,
}

/// The header files of a build, found in the guest: the compiler runs in
/// the daemon and must see the program's own headers, nothing of the host.
/// The daemon lays `files` out under a directory of its own, mirroring the
/// guest's paths, and searches `cwd` then `dirs` there, as the compiler
/// searches the working directory and the `-I` directories natively.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct GuestHeaders {
    /// The program's working directory (absolute).
    pub cwd: String,
    /// The `-I` directories, absolute, in order.
    pub dirs: Vec<String>,
    /// `(absolute path, contents)` of each file a source can include.
    pub files: Vec<(String, Vec<u8>)>,
}

impl GuestHeaders {
    fn check(&self) -> Result<(), DecodeError> {
        check_string(&self.cwd, "working directory")?;
        check_list(self.dirs.len(), MAX_LIST_LEN, "include directories")?;
        check_list(self.files.len(), MAX_HEADER_FILES, "header files")?;
        self.dirs
            .iter()
            .try_for_each(|d| check_string(d, "include directory"))?;
        let total = self.files.iter().try_fold(0usize, |sum, (path, bytes)| {
            check_string(path, "header path")?;
            Ok::<_, DecodeError>(sum.saturating_add(bytes.len()))
        })?;
        check_list(total, MAX_HEADER_BYTES, "header bytes")
    }
}

/// `clGetProgramInfo(CL_PROGRAM_BINARIES)`, whose native form is an array of
/// caller pointers and so cannot travel as an [`InfoValue`].
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct GetProgramBinaries {
    /// Program handle.
    pub program: Handle,
}

/// The program's binaries, one per device.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct Binaries {
    /// One binary per device (empty where none was built).
    pub binaries: Vec<Vec<u8>>,
}

/// `clCreateKernel`
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct CreateKernel {
    /// Guest-chosen handle.
    pub id: Handle,
    /// Program handle.
    pub program: Handle,
    /// Kernel function name.
    pub name: String,
}

/// A kernel argument value, as the shim classified it.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum KernelArg {
    /// Plain bytes passed by value.
    Bytes(Vec<u8>),
    /// A `__local` allocation of this many bytes (`arg_value == NULL`).
    Local(u64),
    /// A memory object, by handle.
    Mem(Handle),
    /// A NULL memory object.
    NullMem,
    /// A sampler, by handle.
    Sampler(Handle),
}

/// `clSetKernelArg` (fire-and-forget).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct SetKernelArg {
    /// Kernel handle.
    pub kernel: Handle,
    /// Argument index.
    pub index: u32,
    /// The value.
    pub arg: KernelArg,
}

/// Fields every enqueue carries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct EnqueueCommon {
    /// Command queue handle.
    pub queue: Handle,
    /// Events to wait for.
    pub wait: Vec<Handle>,
    /// Guest-chosen handle for the command's event, if the caller wants one.
    pub event: Option<Handle>,
}

/// `clEnqueueWriteBuffer`; the data is the frame's single in-bulk segment.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct EnqueueWriteBuffer {
    /// Queue, waits, event.
    pub common: EnqueueCommon,
    /// Buffer handle.
    pub buffer: Handle,
    /// Byte offset in the buffer.
    pub offset: u64,
    /// Bytes to write; equals the bulk segment's length.
    pub size: u64,
}

/// `clEnqueueReadBuffer`; the data lands in the frame's out-bulk segment.
/// The daemon completes the read before it answers.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct EnqueueReadBuffer {
    /// Queue, waits, event.
    pub common: EnqueueCommon,
    /// Buffer handle.
    pub buffer: Handle,
    /// Byte offset in the buffer.
    pub offset: u64,
    /// Bytes to read; equals the bulk segment's length.
    pub size: u64,
}

/// `clEnqueueCopyBuffer`
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct EnqueueCopyBuffer {
    /// Queue, waits, event.
    pub common: EnqueueCommon,
    /// Source buffer handle.
    pub src: Handle,
    /// Destination buffer handle.
    pub dst: Handle,
    /// Source offset.
    pub src_offset: u64,
    /// Destination offset.
    pub dst_offset: u64,
    /// Bytes to copy.
    pub size: u64,
}

/// `clEnqueueFillBuffer`
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct EnqueueFillBuffer {
    /// Queue, waits, event.
    pub common: EnqueueCommon,
    /// Buffer handle.
    pub buffer: Handle,
    /// The pattern (1 to 128 bytes).
    pub pattern: Vec<u8>,
    /// Byte offset.
    pub offset: u64,
    /// Bytes to fill.
    pub size: u64,
}

/// `clEnqueueNDRangeKernel`. Empty `offset`/`local` stand for NULL.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct EnqueueNdRange {
    /// Queue, waits, event.
    pub common: EnqueueCommon,
    /// Kernel handle.
    pub kernel: Handle,
    /// Global work offset (empty = NULL).
    pub offset: Vec<u64>,
    /// Global work size; its length is `work_dim`.
    pub global: Vec<u64>,
    /// Local work size (empty = NULL).
    pub local: Vec<u64>,
}

/// `clEnqueueMarkerWithWaitList` / `clEnqueueBarrierWithWaitList`.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct EnqueueMarker {
    /// Queue, waits, event.
    pub common: EnqueueCommon,
    /// True for a barrier.
    pub barrier: bool,
}

/// `clFinish` / `clFlush`.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct QueueOp {
    /// Command queue handle.
    pub queue: Handle,
}

/// `clWaitForEvents`
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct WaitForEvents {
    /// Event handles.
    pub events: Vec<Handle>,
}

/// A wait of at most `timeout_us` for events to complete, so that a
/// guest thread waiting on an event another of its threads completes
/// (a user event) does not hold up that other thread's calls: the shim
/// repeats it until the events are done.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct WaitForEventsFor {
    /// Event handles.
    pub events: Vec<Handle>,
    /// Longest wait in microseconds (at most [`MAX_WAIT_SLICE_US`]).
    pub timeout_us: u32,
}

/// Whether every event of a [`WaitForEventsFor`] completed in time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct WaitOutcome {
    /// All complete (a failed event fails the call instead).
    pub done: bool,
}

/// `clCreateUserEvent`
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct CreateUserEvent {
    /// Guest-chosen handle.
    pub id: Handle,
    /// Context handle.
    pub context: Handle,
}

/// `clSetUserEventStatus`
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct SetUserEventStatus {
    /// Event handle.
    pub event: Handle,
    /// `CL_COMPLETE` or a negative error.
    pub status: i32,
}

/// `clGetSupportedImageFormats`
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct GetImageFormats {
    /// Context handle.
    pub context: Handle,
    /// `cl_mem_flags`.
    pub flags: u64,
    /// `cl_mem_object_type`.
    pub image_type: u32,
}

/// Supported image formats as (`channel_order`, `channel_data_type`) pairs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct ImageFormats {
    /// The formats.
    pub formats: Vec<(u32, u32)>,
}

/// The last `clRelease*` of an object (the shim counts references itself).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Release {
    /// Kind of the object.
    pub kind: ObjectKind,
    /// Its handle.
    pub object: Handle,
}

pub(crate) fn check_list(len: usize, max: usize, what: &'static str) -> Result<(), DecodeError> {
    if len > max {
        return Err(DecodeError::OutOfRange(what));
    }
    Ok(())
}

pub(crate) fn check_string(s: &str, what: &'static str) -> Result<(), DecodeError> {
    check_list(s.len(), MAX_STRING_LEN, what)
}

impl EnqueueCommon {
    fn validate(&self) -> Result<(), DecodeError> {
        check_list(self.wait.len(), MAX_LIST_LEN, "event wait list")
    }
}

/// Semantic checks applied after a body decodes, before any executor sees it.
pub(crate) trait Validate {
    fn validate(&self) -> Result<(), DecodeError> {
        Ok(())
    }
}

impl Validate for Empty {}
impl Validate for GetDeviceIds {}
impl Validate for QueueOp {}
impl Validate for GetProgramBinaries {}
impl Validate for SetUserEventStatus {}
impl Validate for GetImageFormats {}
impl Validate for Release {}
impl Validate for CreateBuffer {}
impl Validate for CreateSubBuffer {}
impl Validate for CreateUserEvent {}
impl Validate for crate::session::SessionOpen {
    fn validate(&self) -> Result<(), DecodeError> {
        check_string(&self.client, "client name")
    }
}
impl Validate for GetInfo {
    fn validate(&self) -> Result<(), DecodeError> {
        if self.size > MAX_INFO_LEN {
            return Err(DecodeError::OutOfRange("info size"));
        }
        Ok(())
    }
}
impl Validate for CreateContext {
    fn validate(&self) -> Result<(), DecodeError> {
        check_list(self.properties.len(), MAX_PROPERTIES, "context properties")?;
        check_list(self.devices.len(), MAX_DEVICES, "device list")
    }
}
impl Validate for CreateContextFromType {
    fn validate(&self) -> Result<(), DecodeError> {
        check_list(self.properties.len(), MAX_PROPERTIES, "context properties")
    }
}
impl Validate for CreateCommandQueue {
    fn validate(&self) -> Result<(), DecodeError> {
        check_list(self.properties.len(), MAX_PROPERTIES, "queue properties")
    }
}
impl Validate for CreateProgramWithSource {}
impl Validate for CreateProgramWithBinary {
    fn validate(&self) -> Result<(), DecodeError> {
        check_list(self.devices.len(), MAX_DEVICES, "device list")?;
        if self.binaries.len() != self.devices.len() {
            return Err(DecodeError::OutOfRange("one binary per device"));
        }
        Ok(())
    }
}
impl Validate for BuildProgram {
    fn validate(&self) -> Result<(), DecodeError> {
        check_list(self.devices.len(), MAX_DEVICES, "device list")?;
        check_string(&self.options, "build options")?;
        self.headers.check()
    }
}
impl Validate for CreateKernel {
    fn validate(&self) -> Result<(), DecodeError> {
        check_string(&self.name, "kernel name")
    }
}
impl Validate for SetKernelArg {
    fn validate(&self) -> Result<(), DecodeError> {
        match &self.arg {
            KernelArg::Bytes(b) => check_list(b.len(), MAX_KERNEL_ARG_LEN, "kernel argument"),
            KernelArg::Local(n) if *n == 0 || *n > MAX_TRANSFER_LEN => {
                Err(DecodeError::OutOfRange("local argument size"))
            }
            _ => Ok(()),
        }
    }
}
impl Validate for EnqueueWriteBuffer {
    fn validate(&self) -> Result<(), DecodeError> {
        self.common.validate()
    }
}
impl Validate for EnqueueReadBuffer {
    fn validate(&self) -> Result<(), DecodeError> {
        self.common.validate()
    }
}
impl Validate for EnqueueCopyBuffer {
    fn validate(&self) -> Result<(), DecodeError> {
        self.common.validate()
    }
}
impl Validate for EnqueueFillBuffer {
    fn validate(&self) -> Result<(), DecodeError> {
        self.common.validate()?;
        check_list(self.pattern.len(), MAX_FILL_PATTERN_LEN, "fill pattern")
    }
}
impl Validate for EnqueueNdRange {
    fn validate(&self) -> Result<(), DecodeError> {
        self.common.validate()?;
        let dim = self.global.len();
        if dim == 0 || dim > MAX_WORK_DIM {
            return Err(DecodeError::OutOfRange("work dimension"));
        }
        if (!self.offset.is_empty() && self.offset.len() != dim)
            || (!self.local.is_empty() && self.local.len() != dim)
        {
            return Err(DecodeError::OutOfRange("work size dimensions differ"));
        }
        Ok(())
    }
}
impl Validate for EnqueueMarker {
    fn validate(&self) -> Result<(), DecodeError> {
        self.common.validate()
    }
}
impl Validate for WaitForEventsFor {
    fn validate(&self) -> Result<(), DecodeError> {
        check_list(self.events.len(), MAX_LIST_LEN, "event list")?;
        if u64::from(self.timeout_us) > MAX_WAIT_SLICE_US {
            return Err(DecodeError::OutOfRange("wait timeout"));
        }
        Ok(())
    }
}
impl Validate for WaitForEvents {
    fn validate(&self) -> Result<(), DecodeError> {
        check_list(self.events.len(), MAX_LIST_LEN, "event list")
    }
}
