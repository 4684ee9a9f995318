//! Opcodes and the request/response enums, generated from one table so that
//! an opcode's number, its request body and its reply body are declared once.

use crate::codec;
use crate::cuda::*;
use crate::error::DecodeError;
use crate::opencl::Validate;
use crate::opencl::*;
use crate::session::{SessionOpen, SessionOpened};
use crate::session::{FEATURE_CUDA, FEATURE_OPENCL};

/// Which queue an opcode belongs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueClass {
    /// Session management, queue 0.
    Control,
    /// API calls, queues 1 and up.
    Request,
}

macro_rules! messages {
    ($( $(#[$doc:meta])* $name:ident = $num:literal, $class:ident, $req:ty => $resp:ty; )*) => {
        /// Every message type, with its stable wire number.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u16)]
        pub enum Opcode {
            $( $(#[$doc])* $name = $num, )*
        }

        impl Opcode {
            /// Maps a wire number to an opcode.
            pub fn from_u16(n: u16) -> Option<Self> {
                match n {
                    $( $num => Some(Opcode::$name), )*
                    _ => None,
                }
            }

            /// The queue this opcode is allowed on.
            pub fn queue_class(self) -> QueueClass {
                match self {
                    $( Opcode::$name => QueueClass::$class, )*
                }
            }

            /// Every opcode, in table order.
            pub const ALL: &'static [Opcode] = &[$( Opcode::$name, )*];
        }

        impl Opcode {
            /// The `FEATURE_*` bit a session must have been granted to use
            /// this opcode (0 for session control and `Ping`). The family
            /// is the opcode's high byte: `0x01xx` OpenCL, `0x02xx` CUDA.
            pub fn feature(self) -> u64 {
                match (self as u16) >> 8 {
                    0x01 => FEATURE_OPENCL,
                    0x02 => FEATURE_CUDA,
                    _ => 0,
                }
            }
        }

        /// A decoded request body.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum Request {
            $( $(#[$doc])* $name($req), )*
        }

        impl Request {
            /// The request's opcode.
            pub fn opcode(&self) -> Opcode {
                match self {
                    $( Request::$name(_) => Opcode::$name, )*
                }
            }

            /// Encodes the body (without the frame header).
            pub fn encode_body(&self, out: &mut Vec<u8>) {
                match self {
                    $( Request::$name(b) => codec::encode_into(b, out), )*
                }
            }

            /// Decodes and validates a body for the given wire opcode.
            pub fn decode(opcode: u16, body: &[u8]) -> Result<Self, DecodeError> {
                let op = Opcode::from_u16(opcode).ok_or(DecodeError::UnknownOpcode(opcode))?;
                match op {
                    $( Opcode::$name => {
                        let b: $req = codec::decode(body)?;
                        b.validate()?;
                        Ok(Request::$name(b))
                    } )*
                }
            }
        }

        /// A decoded response body.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum Response {
            $( $(#[$doc])* $name($resp), )*
        }

        impl Response {
            /// The opcode of the request this answers.
            pub fn opcode(&self) -> Opcode {
                match self {
                    $( Response::$name(_) => Opcode::$name, )*
                }
            }

            /// Encodes the body (without the frame header).
            pub fn encode_body(&self, out: &mut Vec<u8>) {
                match self {
                    $( Response::$name(b) => codec::encode_into(b, out), )*
                }
            }

            /// Decodes a successful response body for the given wire opcode.
            pub fn decode(opcode: u16, body: &[u8]) -> Result<Self, DecodeError> {
                let op = Opcode::from_u16(opcode).ok_or(DecodeError::UnknownOpcode(opcode))?;
                match op {
                    $( Opcode::$name => Ok(Response::$name(codec::decode(body)?)), )*
                }
            }
        }
    };
}

messages! {
    /// Open a session: version and feature negotiation.
    SessionOpen = 0x0001, Control, SessionOpen => SessionOpened;
    /// Close the session and free everything it owns.
    SessionClose = 0x0002, Control, Empty => Empty;
    /// Liveness probe; also the null round trip of the benchmarks.
    Ping = 0x0003, Request, Empty => Empty;

    /// `clGetPlatformIDs`
    ClGetPlatformIds = 0x0100, Request, Empty => HandleList;
    /// `clGetDeviceIDs`
    ClGetDeviceIds = 0x0101, Request, GetDeviceIds => HandleList;
    /// Any `clGet*Info`
    ClGetInfo = 0x0102, Request, GetInfo => InfoValue;
    /// `clGetSupportedImageFormats`
    ClGetImageFormats = 0x0103, Request, GetImageFormats => ImageFormats;
    /// `clGetDeviceAndHostTimer` / `clGetHostTimer`
    ClGetDeviceTimer = 0x0104, Request, GetDeviceTimer => Timer;
    /// `clCreateSubDevices`
    ClCreateSubDevices = 0x0105, Request, CreateSubDevices => SubDevices;
    /// `clCreateContext`
    ClCreateContext = 0x0110, Request, CreateContext => Empty;
    /// `clCreateContextFromType`
    ClCreateContextFromType = 0x0111, Request, CreateContextFromType => HandleList;
    /// `clCreateCommandQueue(WithProperties)`
    ClCreateCommandQueue = 0x0112, Request, CreateCommandQueue => Empty;
    /// `clCreateBuffer`
    ClCreateBuffer = 0x0113, Request, CreateBuffer => Empty;
    /// `clCreateSubBuffer`
    ClCreateSubBuffer = 0x0114, Request, CreateSubBuffer => Empty;
    /// `clCreateProgramWithSource`
    ClCreateProgramWithSource = 0x0115, Request, CreateProgramWithSource => Empty;
    /// `clCreateProgramWithBinary`
    ClCreateProgramWithBinary = 0x0116, Request, CreateProgramWithBinary => BinaryStatus;
    /// `clBuildProgram`
    ClBuildProgram = 0x0117, Request, BuildProgram => Empty;
    /// `clGetProgramInfo(CL_PROGRAM_BINARIES)`
    ClGetProgramBinaries = 0x0118, Request, GetProgramBinaries => Binaries;
    /// `clCreateKernel`
    ClCreateKernel = 0x0119, Request, CreateKernel => Empty;
    /// `clSetKernelArg`
    ClSetKernelArg = 0x011a, Request, SetKernelArg => Empty;
    /// `clCreateUserEvent`
    ClCreateUserEvent = 0x011b, Request, CreateUserEvent => Empty;
    /// `clSetUserEventStatus`
    ClSetUserEventStatus = 0x011c, Request, SetUserEventStatus => Empty;
    /// `clSet{MemObjectDestructor,ProgramRelease,ContextDestructor}Callback`
    ClSetDestructorCallback = 0x011d, Request, SetDestructorCallback => Empty;
    /// Last `clRelease*` of an object
    ClRelease = 0x011f, Request, Release => Empty;
    /// `clEnqueueWriteBuffer`
    ClEnqueueWriteBuffer = 0x0120, Request, EnqueueWriteBuffer => Empty;
    /// `clEnqueueReadBuffer`
    ClEnqueueReadBuffer = 0x0121, Request, EnqueueReadBuffer => Empty;
    /// `clEnqueueCopyBuffer`
    ClEnqueueCopyBuffer = 0x0122, Request, EnqueueCopyBuffer => Empty;
    /// `clEnqueueFillBuffer`
    ClEnqueueFillBuffer = 0x0123, Request, EnqueueFillBuffer => Empty;
    /// `clEnqueueNDRangeKernel`
    ClEnqueueNdRange = 0x0124, Request, EnqueueNdRange => Empty;
    /// `clEnqueueMarkerWithWaitList` / `clEnqueueBarrierWithWaitList`
    ClEnqueueMarker = 0x0125, Request, EnqueueMarker => Empty;
    /// `clFinish`
    ClFinish = 0x0130, Request, QueueOp => Empty;
    /// `clFlush`
    ClFlush = 0x0131, Request, QueueOp => Empty;
    /// `clWaitForEvents`
    ClWaitForEvents = 0x0132, Request, WaitForEvents => Empty;
    /// A bounded `clWaitForEvents`, repeated by the shim
    ClWaitForEventsFor = 0x0133, Request, WaitForEventsFor => WaitOutcome;
    /// `clCreateImage` (and the 1.1 and `WithProperties` forms)
    ClCreateImage = 0x0140, Request, CreateImage => ImageCreated;
    /// `clCreateSampler` / `clCreateSamplerWithProperties`
    ClCreateSampler = 0x0141, Request, CreateSampler => Empty;
    /// `clEnqueueReadImage`
    ClEnqueueReadImage = 0x0142, Request, ImageTransfer => Empty;
    /// `clEnqueueWriteImage`
    ClEnqueueWriteImage = 0x0143, Request, ImageTransfer => Empty;
    /// `clEnqueueCopyImage`
    ClEnqueueCopyImage = 0x0144, Request, EnqueueCopyImage => Empty;
    /// `clEnqueueFillImage`
    ClEnqueueFillImage = 0x0145, Request, EnqueueFillImage => Empty;
    /// `clEnqueueCopyImageToBuffer`
    ClEnqueueCopyImageToBuffer = 0x0146, Request, EnqueueCopyImageBuffer => Empty;
    /// `clEnqueueCopyBufferToImage`
    ClEnqueueCopyBufferToImage = 0x0147, Request, EnqueueCopyImageBuffer => Empty;
    /// `clEnqueueReadBufferRect`
    ClEnqueueReadBufferRect = 0x0148, Request, EnqueueBufferRect => Empty;
    /// `clEnqueueWriteBufferRect`
    ClEnqueueWriteBufferRect = 0x0149, Request, EnqueueBufferRect => Empty;
    /// `clEnqueueCopyBufferRect`
    ClEnqueueCopyBufferRect = 0x014a, Request, EnqueueCopyBufferRect => Empty;
    /// `clEnqueueMigrateMemObjects`
    ClEnqueueMigrate = 0x014b, Request, EnqueueMigrate => Empty;
    /// `clCompileProgram`
    ClCompileProgram = 0x0150, Request, CompileProgram => Empty;
    /// `clLinkProgram`
    ClLinkProgram = 0x0151, Request, LinkProgram => Linked;
    /// `clCreateProgramWithIL`
    ClCreateProgramWithIl = 0x0152, Request, CreateProgramWithIl => Empty;
    /// `clCreateProgramWithBuiltInKernels`
    ClCreateProgramWithBuiltIns = 0x0153, Request, CreateProgramWithBuiltIns => Empty;
    /// `clSetProgramSpecializationConstant`
    ClSetSpecConstant = 0x0154, Request, SetSpecConstant => Empty;
    /// `clCloneKernel`
    ClCloneKernel = 0x0155, Request, CloneKernel => Empty;

    /// `cuInit`; also answers the driver version and device count.
    CuInit = 0x0200, Request, Init => InitInfo;
    /// A device's name, UUID, total memory and attributes.
    CuDeviceGetInfo = 0x0201, Request, DeviceQuery => DeviceInfo;
    /// `cuCtxCreate`, or the first retain of a primary context
    CuCtxCreate = 0x0210, Request, CtxCreate => Empty;
    /// `cuCtxDestroy`, or the last release of a primary context
    CuCtxDestroy = 0x0211, Request, CtxDestroy => Empty;
    /// `cuCtxSynchronize`
    CuCtxSynchronize = 0x0212, Request, CtxSynchronize => Empty;
    /// `cuCtxGetLimit` / `cuCtxSetLimit`
    CuCtxLimit = 0x0213, Request, CtxLimit => SizeValue;
    /// `cuCtxGetStreamPriorityRange`
    CuCtxStreamPriorityRange = 0x0214, Request, CtxPriorityRange => PriorityRange;
    /// `cuModuleLoadData[Ex]` / `cuModuleLoadFatBinary`
    CuModuleLoad = 0x0220, Request, ModuleLoad => ModuleLoaded;
    /// `cuModuleGetFunction`
    CuModuleGetFunction = 0x0221, Request, GetFunction => FunctionInfo;
    /// `cuModuleGetGlobal`
    CuModuleGetGlobal = 0x0222, Request, GetGlobal => Global;
    /// `cuModuleUnload`
    CuModuleUnload = 0x0223, Request, ModuleUnload => Empty;
    /// A piece of a module image too large for one call
    CuModuleStage = 0x0224, Request, ModuleStage => Empty;
    /// `cuMemAlloc`
    CuMemAlloc = 0x0230, Request, MemAlloc => DevicePtr;
    /// `cuMemFree`
    CuMemFree = 0x0231, Request, MemFree => Empty;
    /// `cuMemGetInfo`
    CuMemGetInfo = 0x0232, Request, MemGetInfo => MemInfo;
    /// `cuMemcpyHtoD[Async]`
    CuMemcpyHtoD = 0x0233, Request, MemcpyHtoD => Empty;
    /// `cuMemcpyDtoH[Async]`
    CuMemcpyDtoH = 0x0234, Request, MemcpyDtoH => Empty;
    /// `cuMemcpyDtoD[Async]`
    CuMemcpyDtoD = 0x0235, Request, MemcpyDtoD => Empty;
    /// `cuMemsetD8/D16/D32[Async]`
    CuMemset = 0x0236, Request, Memset => Empty;
    /// `cuPointerGetAttribute` on a device address
    CuPointerGetAttribute = 0x0237, Request, PointerGetAttribute => PointerAttribute;
    /// `cuMemAllocAsync`
    CuMemAllocAsync = 0x0238, Request, MemAllocAsync => DevicePtr;
    /// `cuMemFreeAsync`
    CuMemFreeAsync = 0x0239, Request, MemFreeAsync => Empty;
    /// `cuStreamCreate[WithPriority]`
    CuStreamCreate = 0x0240, Request, StreamCreate => Empty;
    /// `cuStreamDestroy`
    CuStreamDestroy = 0x0241, Request, StreamDestroy => Empty;
    /// `cuStreamSynchronize`
    CuStreamSynchronize = 0x0242, Request, StreamOp => Empty;
    /// `cuStreamQuery`
    CuStreamQuery = 0x0243, Request, StreamOp => Empty;
    /// `cuStreamWaitEvent`
    CuStreamWaitEvent = 0x0244, Request, StreamWaitEvent => Empty;
    /// `cuStreamWaitValue*` / `cuStreamWriteValue*` / `cuStreamBatchMemOp`
    CuStreamMemOp = 0x0245, Request, StreamMemOp => Empty;
    /// `cuEventCreate`
    CuEventCreate = 0x0250, Request, EventCreate => Empty;
    /// `cuEventRecord[WithFlags]`
    CuEventRecord = 0x0251, Request, EventRecord => Empty;
    /// `cuEventSynchronize`
    CuEventSynchronize = 0x0252, Request, EventOp => Empty;
    /// `cuEventQuery`
    CuEventQuery = 0x0253, Request, EventOp => Empty;
    /// `cuEventElapsedTime`
    CuEventElapsedTime = 0x0254, Request, EventElapsedTime => Elapsed;
    /// `cuEventDestroy`
    CuEventDestroy = 0x0255, Request, EventOp => Empty;
    /// `cuLaunchKernel`
    CuLaunchKernel = 0x0260, Request, LaunchKernel => Empty;
    /// `cuFuncGetAttribute`
    CuFuncGetAttribute = 0x0261, Request, FuncGetAttribute => IntValue;
    /// `cuFuncSetAttribute`
    CuFuncSetAttribute = 0x0262, Request, FuncSetAttribute => Empty;
    /// `cuFuncSetCacheConfig`
    CuFuncSetCacheConfig = 0x0263, Request, FuncSetCacheConfig => Empty;
    /// `cuOccupancyMaxActiveBlocksPerMultiprocessor[WithFlags]`
    CuOccupancyMaxActiveBlocks = 0x0270, Request, OccupancyMaxActiveBlocks => IntValue;
    /// `cuOccupancyMaxPotentialBlockSize[WithFlags]`
    CuOccupancyMaxPotentialBlockSize = 0x0271, Request, OccupancyMaxPotentialBlockSize => PotentialBlockSize;
    /// `cuOccupancyAvailableDynamicSMemPerBlock`
    CuOccupancyAvailableDynamicSmem = 0x0272, Request, OccupancyAvailableDynamicSmem => SizeValue;
    /// `cuStreamBeginCapture`
    CuStreamBeginCapture = 0x0280, Request, StreamBeginCapture => Empty;
    /// `cuStreamEndCapture`
    CuStreamEndCapture = 0x0281, Request, StreamEndCapture => Empty;
    /// `cuGraphInstantiateWithFlags`
    CuGraphInstantiate = 0x0282, Request, GraphInstantiate => Empty;
    /// `cuGraphLaunch`
    CuGraphLaunch = 0x0283, Request, GraphLaunch => Empty;
    /// `cuGraphDestroy`
    CuGraphDestroy = 0x0284, Request, GraphOp => Empty;
    /// `cuGraphExecDestroy`
    CuGraphExecDestroy = 0x0285, Request, GraphOp => Empty;
}
