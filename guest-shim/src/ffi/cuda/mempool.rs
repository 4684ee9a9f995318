//! Stream-ordered allocation (`cuMemAllocAsync`, `cuMemFreeAsync`),
//! through the device's default memory pool on the daemon. An allocation
//! is a round trip (the program needs the address at once) and enters
//! the shim's device ranges like `cuMemAlloc`'s; a free is posted.

use protocol::cuda::{MemAllocAsync, MemFreeAsync};
use protocol::{Request, Response};

use super::state::{self, DevRange};
use super::types::*;
use super::{call, current_ctx, entry, out, post, stream_ref, unexpected, CuResult, NullStream};

fn alloc(dptr: *mut CUdeviceptr, size: usize, s: Opaque, null: NullStream) -> CuResult {
    if dptr.is_null() || size == 0 {
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    let ctx = current_ctx()?;
    let stream = stream_ref(s, null)?;
    let size = size as u64;
    let ptr = match call(
        Request::CuMemAllocAsync(MemAllocAsync { size, stream }),
        &[],
        &mut [],
    )? {
        Response::CuMemAllocAsync(p) => p.ptr,
        r => return Err(unexpected(r)),
    };
    state::with(|st| {
        st.dev.insert(
            ptr,
            DevRange {
                len: size,
                ctx,
                module: None,
            },
        )
    });
    // SAFETY: checked non-null; the caller's contract.
    unsafe { out(dptr, ptr) }
}

fn free(ptr: CUdeviceptr, s: Opaque, null: NullStream) -> CuResult {
    let stream = stream_ref(s, null)?;
    let known = state::with(|st| {
        let alloc = st.dev.get(&ptr).is_some_and(|r| r.module.is_none());
        if alloc {
            st.dev.remove(&ptr);
        }
        alloc
    });
    if !known {
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    post(Request::CuMemFreeAsync(MemFreeAsync { ptr, stream }), &[])
}

/// `cuMemAllocAsync`
///
/// # Safety
/// `dptr` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuMemAllocAsync(
    dptr: *mut CUdeviceptr,
    size: usize,
    s: Opaque,
) -> CUresult {
    entry("cuMemAllocAsync", || {
        alloc(dptr, size, s, NullStream::Legacy)
    })
}

/// `cuMemAllocAsync_ptsz`
///
/// # Safety
/// `dptr` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuMemAllocAsync_ptsz(
    dptr: *mut CUdeviceptr,
    size: usize,
    s: Opaque,
) -> CUresult {
    entry("cuMemAllocAsync_ptsz", || {
        alloc(dptr, size, s, NullStream::PerThread)
    })
}

/// `cuMemFreeAsync` (posted).
#[no_mangle]
pub extern "C" fn cuMemFreeAsync(ptr: CUdeviceptr, s: Opaque) -> CUresult {
    entry("cuMemFreeAsync", || free(ptr, s, NullStream::Legacy))
}

/// `cuMemFreeAsync_ptsz` (posted).
#[no_mangle]
pub extern "C" fn cuMemFreeAsync_ptsz(ptr: CUdeviceptr, s: Opaque) -> CUresult {
    entry("cuMemFreeAsync_ptsz", || {
        free(ptr, s, NullStream::PerThread)
    })
}
