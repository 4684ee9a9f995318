//! CUDA message bodies for what the runtime API builds on beyond plain
//! launches and copies: stream capture and graphs, stream-ordered
//! allocation, stream memory operations, and staged module images.
//! Re-exported by [`crate::cuda`].
//!
//! # Capture and graphs
//! A capture runs on the daemon's real stream: between
//! [`StreamBeginCapture`] and [`StreamEndCapture`] the driver records the
//! launches, memsets, device-to-device copies and event operations posted
//! on it instead of running them, and the graph it ends with is the
//! guest-named handle the shim chose at the start. Copies between guest and
//! device memory on a capturing stream are refused with
//! [`STREAM_CAPTURE_UNSUPPORTED`](crate::cuda::result::STREAM_CAPTURE_UNSUPPORTED): their host side is a staging
//! buffer of the daemon, which a graph replayed later must not read. A
//! graph is instantiated into an executable graph ([`GraphInstantiate`])
//! that [`GraphLaunch`] replays on any stream of its context. The capture
//! state (status, id, mode) is known to the shim, which answers the
//! queries (`cuStreamIsCapturing`, `cuStreamGetCaptureInfo`) itself.
//!
//! # Stream-ordered allocation
//! [`MemAllocAsync`] allocates from the device's default memory pool in
//! stream order and answers the address (a round trip: the guest needs it
//! at once); [`MemFreeAsync`] is posted. Both allocations and frees enter
//! the session's allocation table and memory limit like `cuMemAlloc`.
//!
//! # Staged module images
//! A stream transport carries at most
//! [`MAX_STREAM_BULK`](crate::limits::MAX_STREAM_BULK) bytes per call,
//! while fat binaries of large libraries are hundreds of MiB. The shim then
//! sends the image in pieces ([`ModuleStage`], each a byte range of one
//! guest-named upload) and names the upload in the [`ModuleLoad`] that
//! follows, instead of sending the image inline. The daemon holds one
//! upload per session at a time, of at most
//! [`MAX_MODULE_IMAGE_LEN`] bytes,
//! and frees it with the load (whatever its outcome) or when a new upload
//! starts.
//!
//! [`ModuleLoad`]: crate::cuda::ModuleLoad

use bincode::{Decode, Encode};

use crate::cuda::{Handle, StreamRef};
use crate::error::DecodeError;
use crate::limits::MAX_MODULE_IMAGE_LEN;
use crate::opencl::Validate;

/// `cuStreamBeginCapture`: the stream records instead of running, until
/// [`StreamEndCapture`].
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct StreamBeginCapture {
    /// The stream (one the guest created).
    pub stream: StreamRef,
    /// `CUstreamCaptureMode`.
    pub mode: u32,
}

/// `cuStreamEndCapture`: the captured work becomes graph `graph`.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct StreamEndCapture {
    /// The capturing stream.
    pub stream: StreamRef,
    /// Guest-chosen handle of the graph.
    pub graph: Handle,
}

/// `cuGraphInstantiateWithFlags`
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct GraphInstantiate {
    /// Guest-chosen handle of the executable graph.
    pub exec: Handle,
    /// The graph.
    pub graph: Handle,
    /// `CUgraphInstantiate_flags`.
    pub flags: u64,
}

/// `cuGraphLaunch`
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct GraphLaunch {
    /// The executable graph.
    pub exec: Handle,
    /// Stream to launch on.
    pub stream: StreamRef,
}

/// `cuGraphDestroy` / `cuGraphExecDestroy`.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct GraphOp {
    /// The graph or executable graph.
    pub graph: Handle,
}

/// `cuMemAllocAsync`
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct MemAllocAsync {
    /// Bytes (0 is `CUDA_ERROR_INVALID_VALUE`).
    pub size: u64,
    /// Stream the allocation is ordered on.
    pub stream: StreamRef,
}

/// `cuMemFreeAsync`
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct MemFreeAsync {
    /// An allocation's address.
    pub ptr: u64,
    /// Stream the free is ordered on.
    pub stream: StreamRef,
}

/// What a stream memory operation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode)]
pub enum MemOpKind {
    /// `cuStreamWaitValue32`
    Wait32,
    /// `cuStreamWriteValue32`
    Write32,
    /// `cuStreamWaitValue64`
    Wait64,
    /// `cuStreamWriteValue64`
    Write64,
}

impl MemOpKind {
    /// Bytes of the value it waits on or writes.
    pub fn width(self) -> u64 {
        match self {
            MemOpKind::Wait32 | MemOpKind::Write32 => 4,
            MemOpKind::Wait64 | MemOpKind::Write64 => 8,
        }
    }

    /// Whether it waits (rather than writes).
    pub fn waits(self) -> bool {
        matches!(self, MemOpKind::Wait32 | MemOpKind::Wait64)
    }
}

/// A stream memory operation (`cuStreamWaitValue*`, `cuStreamWriteValue*`,
/// or one operation of `cuStreamBatchMemOp`): it waits, on the stream,
/// until the value at `addr` meets `flags`' condition, or writes `value`
/// there. Posted. `addr` must lie in the session's allocations, aligned to
/// the value's width.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct StreamMemOp {
    /// The stream.
    pub stream: StreamRef,
    /// The operation.
    pub kind: MemOpKind,
    /// The device address.
    pub addr: u64,
    /// The value (the low 32 bits for the 32-bit operations).
    pub value: u64,
    /// `CUstreamWaitValue_flags` or `CUstreamWriteValue_flags`.
    pub flags: u32,
}

/// One piece of a staged module image: `offset..offset + bulk length` of
/// upload `upload`, `total` bytes in all. The first piece (offset 0)
/// starts the upload; pieces arrive in order.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ModuleStage {
    /// Guest-chosen handle of the upload.
    pub upload: Handle,
    /// Where this piece goes.
    pub offset: u64,
    /// The whole image's length.
    pub total: u64,
}

impl Validate for StreamBeginCapture {}
impl Validate for StreamEndCapture {}
impl Validate for GraphInstantiate {}
impl Validate for GraphLaunch {}
impl Validate for GraphOp {}
impl Validate for MemAllocAsync {}
impl Validate for MemFreeAsync {}
impl Validate for StreamMemOp {}

impl Validate for ModuleStage {
    fn validate(&self) -> Result<(), DecodeError> {
        if self.total > MAX_MODULE_IMAGE_LEN || self.offset > self.total {
            return Err(DecodeError::OutOfRange("staged image range"));
        }
        Ok(())
    }
}
