//! Executors: where decoded requests are replayed on a real compute runtime.
//!
//! Every executor sits behind [`Executor`]; the session layer neither knows
//! nor cares which runtime is underneath. An [`ExecutorFactory`] is created
//! once per daemon (it discovers the runtime) and opens one [`Executor`] per
//! guest session; dropping that executor frees everything the session made.
//!
//! | file | role |
//! |---|---|
//! | `mod.rs` | the trait, guest buffers, errors, selection |
//! | `opencl/` | the OpenCL executor over `opencl3` |

use std::fmt;

use protocol::{ProtocolError, Request, Response};

pub mod opencl;

/// A guest-memory segment lent to an executor for the duration of one request.
///
/// It points into guest memory mapped by the daemon. The guest may change the
/// bytes at any time (it only harms its own results), so the executor must
/// treat the contents as untrusted and must not keep the pointer after
/// `execute` returns.
pub struct GuestBuf {
    ptr: *mut u8,
    len: usize,
}

impl fmt::Debug for GuestBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuestBuf").field("len", &self.len).finish()
    }
}

impl GuestBuf {
    /// Wraps a mapped range.
    ///
    /// # Safety
    /// `ptr..ptr+len` must stay mapped and writable for as long as the
    /// `GuestBuf` lives.
    pub unsafe fn new(ptr: *mut u8, len: usize) -> Self {
        GuestBuf { ptr, len }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the segment is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Start of the segment, for handing to a runtime that copies from it.
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr
    }

    /// Start of the segment, for handing to a runtime that copies into it.
    pub fn as_mut_ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// Copies the segment out into an owned vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0u8; self.len];
        // SAFETY: the constructor's contract keeps `ptr..ptr+len` mapped; `v`
        // is a fresh allocation of `len` bytes and cannot overlap guest memory.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr, v.as_mut_ptr(), self.len) };
        v
    }

    /// Copies `src` into the start of the segment; returns false (and copies
    /// nothing) if it does not fit.
    pub fn write(&self, src: &[u8]) -> bool {
        if src.len() > self.len {
            return false;
        }
        // SAFETY: `src.len() <= len` and the constructor keeps the range mapped
        // and writable; `src` is daemon memory, so the ranges do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr, src.len()) };
        true
    }
}

/// The bulk segments of one request frame.
#[derive(Debug, Default)]
pub struct Bulk<'a> {
    /// Readable segments, in the order the request names them.
    pub input: &'a [GuestBuf],
    /// Writable segments, in the order the request names them.
    pub output: &'a [GuestBuf],
}

/// Why a request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecError {
    /// The runtime's own error code (`cl_int`, `CUresult`), passed through.
    Native(i32),
    /// The request could not be executed at all.
    Protocol(ProtocolError),
}

/// Per-session resource bounds an executor enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionLimits {
    /// Most live objects (of all kinds) one session may hold.
    pub max_objects: usize,
    /// Most device memory, in bytes, one session's buffers may total.
    pub max_device_memory: u64,
}

/// Replays one guest session's requests on a runtime.
pub trait Executor: Send {
    /// Executes one request. Bulk segments were already checked to lie in
    /// guest memory; their count matches the frame header.
    fn execute(&mut self, req: Request, bulk: &Bulk<'_>) -> Result<Response, ExecError>;

    /// Executes a request the guest posted (`FLAG_ASYNC`): it waits for
    /// neither the result nor the completion, so an executor may leave the
    /// work to finish in the runtime after returning, provided it keeps
    /// what the runtime still reads (guest segments are gone on return).
    /// By default, the same as [`Executor::execute`].
    fn execute_posted(&mut self, req: Request, bulk: &Bulk<'_>) -> Result<Response, ExecError> {
        self.execute(req, bulk)
    }
}

/// Opens executors of one kind, one per session.
pub trait ExecutorFactory: Send + Sync {
    /// Short name for logs (`"opencl"`).
    fn name(&self) -> &'static str;
    /// The `FEATURE_*` API bits the executors serve.
    fn features(&self) -> u64;
    /// Opens a fresh executor for a new session.
    fn open(&self, limits: SessionLimits) -> Result<Box<dyn Executor>, ExecutorError>;
}

/// Which executor the daemon should use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecutorKind {
    /// CUDA when a driver is present, otherwise OpenCL.
    Auto,
    /// OpenCL through the system ICD loader.
    OpenCl,
    /// CUDA through the driver API.
    Cuda,
}

/// Errors creating executors.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// The CUDA executor is not part of this build yet.
    #[error("the CUDA executor is not available in this build; use --executor opencl")]
    CudaUnavailable,
    /// No OpenCL platform could be found.
    #[error("no OpenCL platform found (is an ICD such as pocl-opencl-icd installed?)")]
    NoOpenClPlatform,
    /// The runtime reported an error while setting up.
    #[error("runtime error {0} while opening the executor")]
    Runtime(i32),
}

/// Creates the factory for `kind`.
pub fn factory(kind: ExecutorKind) -> Result<Box<dyn ExecutorFactory>, ExecutorError> {
    match kind {
        ExecutorKind::Cuda => Err(ExecutorError::CudaUnavailable),
        ExecutorKind::Auto | ExecutorKind::OpenCl => Ok(Box::new(opencl::OpenClFactory::new()?)),
    }
}
