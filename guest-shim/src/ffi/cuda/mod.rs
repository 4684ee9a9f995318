//! The CUDA driver API: the shim as a drop-in `libcuda.so.1`.
//!
//! | module | role |
//! |---|---|
//! | [`types`] | the C types and constants of `cuda.h` |
//! | [`errors`] | `cuGetErrorName`/`cuGetErrorString` (answered locally) |
//! | [`state`] | records of contexts, modules, streams, ranges; opaque values |
//! | [`device`] | `cuInit`, the driver version, devices (cached) |
//! | [`context`] | contexts, the per-thread stack, primary contexts |
//! | [`module`] | module loads (PTX, cubin, fatbin), functions, globals |
//! | [`memory`] | allocations, copies, memsets, host memory |
//! | [`pitched`] | pitched allocations, 2D and 3D copies (row by row) |
//! | [`pointer`] | pointer attributes |
//! | [`memop`] | stream memory operations (wait and write values, batches) |
//! | [`mempool`] | stream-ordered allocation through the device's pool |
//! | [`graph`] | stream capture and graphs (capture state answered locally) |
//! | [`stream`] | streams and events |
//! | [`launch`] | `cuLaunchKernel` marshaling, function attributes, occupancy |
//! | [`library`] | `cuLibrary*`/`cuKernel*`: images kept in the guest, loaded per context on first use |
//! | [`link`] | `cuLink*` for one image (passed through unchanged) |
//! | [`proc`] | `cuGetProcAddress[_v2]`: every export by name, version and stream mode |
//! | [`export`] | `cuGetExportTable`: the runtime's private tables, answered in the shim |
//! | [`integrity`] | the runtime's integrity answer (HMAC-MD2 of process facts) |
//! | [`cls`] | context-local storage for the runtime, with destructors |
//!
//! Every entry point is `#[no_mangle] extern "C"` with the exact name
//! `cuda.h` binds (`cuMemAlloc_v2`, …) and runs its body through
//! [`entry`], so that no panic crosses the C ABI. Calls that need no
//! answer (launches, async copies, memsets, event records, stream waits,
//! creations and destructions of streams and events) are posted
//! fire-and-forget; their errors are sticky and come back from the next
//! synchronizing call, as the driver's asynchronous errors do.

pub(crate) mod cls;
pub(crate) mod context;
pub(crate) mod device;
pub(crate) mod errors;
pub(crate) mod export;
pub(crate) mod graph;
pub(crate) mod integrity;
pub(crate) mod launch;
pub(crate) mod library;
pub(crate) mod link;
pub(crate) mod memop;
pub(crate) mod memory;
pub(crate) mod mempool;
pub(crate) mod module;
pub(crate) mod pitched;
pub(crate) mod pointer;
pub(crate) mod proc;
pub(crate) mod state;
pub(crate) mod stream;
pub(crate) mod types;

use std::ffi::c_void;

use protocol::cuda::StreamRef;
use protocol::opencl::Handle;
use protocol::{ProtocolError, Request, Response};

use crate::client::{CallError, Client, PostIn};
use crate::log::{Chain, CALLS};
use types::*;

/// The result of an entry point's body: `Err` carries the `CUresult`.
pub(crate) type CuResult<T = ()> = Result<T, CUresult>;

/// A `CUresult` as a [`CuResult`].
pub(crate) fn result(rc: CUresult) -> CuResult {
    if rc == CUDA_SUCCESS {
        Ok(())
    } else {
        Err(rc)
    }
}

/// Runs an entry point body; a panic becomes `CUDA_ERROR_UNKNOWN`.
pub(crate) fn entry(name: &'static str, body: impl FnOnce() -> CuResult) -> CUresult {
    match crate::ffi::guard(name, Err(CUDA_ERROR_UNKNOWN), body) {
        Ok(()) => CUDA_SUCCESS,
        Err(e) => e,
    }
}

/// Maps a failed call to the `CUresult` a program expects.
pub(crate) fn cu_error(e: &CallError) -> CUresult {
    match e {
        CallError::Native(c) => match CUresult::try_from(*c) {
            Ok(c) if c != CUDA_SUCCESS => c,
            _ => {
                CALLS.log(format_args!("the daemon sent native error {c}"));
                CUDA_ERROR_UNKNOWN
            }
        },
        CallError::Protocol(ProtocolError::LimitExceeded) => CUDA_ERROR_OUT_OF_MEMORY,
        CallError::Transport(_) => {
            CALLS.log(format_args!("CUDA call failed: {}", Chain(e)));
            CUDA_ERROR_DEVICE_UNAVAILABLE
        }
        CallError::Protocol(_) => {
            CALLS.log(format_args!("CUDA call failed: {}", Chain(e)));
            CUDA_ERROR_UNKNOWN
        }
    }
}

/// The session, once `cuInit` has succeeded.
pub(crate) fn client() -> CuResult<&'static Client> {
    if !state::initialized() {
        return Err(CUDA_ERROR_NOT_INITIALIZED);
    }
    crate::ffi::shared_client().ok_or(CUDA_ERROR_NOT_INITIALIZED)
}

/// A synchronous call; flushes pending calls and returns their sticky
/// error first.
pub(crate) fn call(
    req: Request,
    bulk_in: &[&[u8]],
    bulk_out: &mut [&mut [u8]],
) -> CuResult<Response> {
    client()?
        .call(req, bulk_in, bulk_out)
        .map_err(|e| cu_error(&e))
}

/// A fire-and-forget call (bulk copied at once).
pub(crate) fn post(req: Request, bulk_in: &[&[u8]]) -> CuResult {
    client()?.post(req, bulk_in).map_err(|e| cu_error(&e))
}

/// A fire-and-forget call whose segments may be read or written in place.
pub(crate) fn post_bulk(
    req: Request,
    bulk_in: &[PostIn<'_>],
    bulk_out: Vec<&'static mut [u8]>,
) -> CuResult {
    client()?
        .post_bulk(req, bulk_in, bulk_out)
        .map_err(|e| cu_error(&e))
}

/// A reply of the wrong type: the daemon is broken, not the program.
pub(crate) fn unexpected(_r: Response) -> CUresult {
    CALLS.log(format_args!("the daemon answered with the wrong message"));
    CUDA_ERROR_UNKNOWN
}

/// The calling thread's current context, or `CUDA_ERROR_INVALID_CONTEXT`.
pub(crate) fn current_ctx() -> CuResult<Handle> {
    let ctx = state::current().ok_or(CUDA_ERROR_INVALID_CONTEXT)?;
    if state::with(|s| s.contexts.contains_key(&ctx)) {
        Ok(ctx)
    } else {
        Err(CUDA_ERROR_INVALID_CONTEXT)
    }
}

/// How an entry point treats the NULL stream: `cuda.h`'s plain names use
/// the legacy default stream, the `_ptds`/`_ptsz` names the per-thread one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NullStream {
    Legacy,
    PerThread,
}

/// Resolves a `CUstream` argument.
pub(crate) fn stream_ref(s: Opaque, null: NullStream) -> CuResult<StreamRef> {
    match s as usize {
        0 => {
            let ctx = current_ctx()?;
            Ok(match null {
                NullStream::Legacy => StreamRef::Legacy { ctx },
                NullStream::PerThread => StreamRef::PerThread { ctx },
            })
        }
        CU_STREAM_LEGACY => Ok(StreamRef::Legacy {
            ctx: current_ctx()?,
        }),
        CU_STREAM_PER_THREAD => Ok(StreamRef::PerThread {
            ctx: current_ctx()?,
        }),
        _ => {
            let h = state::from_opaque(state::Kind::Stream, s).ok_or(CUDA_ERROR_INVALID_HANDLE)?;
            if state::with(|st| st.streams.contains_key(&h)) {
                Ok(StreamRef::Stream(h))
            } else {
                Err(CUDA_ERROR_INVALID_HANDLE)
            }
        }
    }
}

/// Writes `value` through a required out-pointer.
///
/// # Safety
/// `out` is NULL or valid for a write of one `T`.
pub(crate) unsafe fn out<T>(out: *mut T, value: T) -> CuResult {
    if out.is_null() {
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    // SAFETY: non-null, and the caller guarantees it is writable.
    unsafe { out.write_unaligned(value) };
    Ok(())
}

/// Reads a required in-pointer.
///
/// # Safety
/// `p` is NULL or valid for a read of one `T`.
pub(crate) unsafe fn read<T: Copy>(p: *const T) -> CuResult<T> {
    if p.is_null() {
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    // SAFETY: non-null, and the caller guarantees it is readable.
    Ok(unsafe { p.read_unaligned() })
}

/// Converts a host address to a pointer (for the `void*` outputs).
pub(crate) fn host_ptr(addr: usize) -> *mut c_void {
    addr as *mut c_void
}
