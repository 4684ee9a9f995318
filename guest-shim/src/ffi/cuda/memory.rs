//! Device memory, copies, memsets, host memory and pointer attributes.
//!
//! Every device range a copy or memset names is checked against the shim's
//! records first, so a bad pointer fails at once with
//! `CUDA_ERROR_INVALID_VALUE` even for calls that are then posted
//! fire-and-forget (the daemon checks again).
//!
//! Host allocations come from the transport's shared memory when it has
//! some: copies from and to them travel without a copy, and their async
//! copies stay asynchronous (posted with the segment named in place).
//! Copies from ordinary (pageable) memory capture the bytes before
//! returning: small async ones are posted with a copy, large ones are
//! pipelined synchronous calls.

use std::alloc::Layout;
use std::ffi::{c_uint, c_void};

use protocol::cuda::{
    MemAlloc, MemFree, MemGetInfo, MemcpyDtoD, MemcpyDtoH, MemcpyHtoD, Memset, MemsetWidth,
    StreamRef,
};
use protocol::opencl::Handle;
use protocol::{Request, Response};

use super::state::{self, DevRange, HostKind, HostRange};
use super::types::*;
use super::{
    call, client, cu_error, current_ctx, entry, out, post, post_bulk, stream_ref, unexpected,
    CuResult, NullStream,
};
use crate::client::{Piece, PostIn, PIPELINE_CHUNK};
use crate::ffi::{bytes_out, slice_in};

/// Alignment of host allocations made without shared memory: a page, like
/// the driver's.
const HOST_ALIGN: usize = 4096;

/// Checks that `ptr..ptr+len` lies in one device range; returns its context.
fn dev_checked(ptr: CUdeviceptr, len: usize) -> CuResult<Handle> {
    let len = u64::try_from(len).map_err(|_| CUDA_ERROR_INVALID_VALUE)?;
    state::with(|s| s.dev_range(ptr, len).map(|(_, r)| r.ctx)).ok_or(CUDA_ERROR_INVALID_VALUE)
}

// ---- allocation ----

/// `cuMemAlloc_v2`
///
/// # Safety
/// `dptr` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuMemAlloc_v2(dptr: *mut CUdeviceptr, bytesize: usize) -> CUresult {
    entry("cuMemAlloc_v2", || {
        if dptr.is_null() || bytesize == 0 {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let ctx = current_ctx()?;
        let size = bytesize as u64;
        let ptr = match call(Request::CuMemAlloc(MemAlloc { ctx, size }), &[], &mut [])? {
            Response::CuMemAlloc(p) => p.ptr,
            r => return Err(unexpected(r)),
        };
        state::with(|s| {
            s.dev.insert(
                ptr,
                DevRange {
                    len: size,
                    ctx,
                    module: None,
                },
            )
        });
        // SAFETY: the caller's contract.
        unsafe { out(dptr, ptr) }
    })
}

/// `cuMemFree_v2` (posted; `dptr` must start a live allocation). NULL is
/// freed without a call, as by the driver (the runtime's `cudaFree(0)`,
/// the customary way to initialize it, relies on it).
#[no_mangle]
pub extern "C" fn cuMemFree_v2(dptr: CUdeviceptr) -> CUresult {
    entry("cuMemFree_v2", || {
        if dptr == 0 {
            current_ctx()?;
            return Ok(());
        }
        let known = state::with(|s| {
            let alloc = s.dev.get(&dptr).is_some_and(|r| r.module.is_none());
            if alloc {
                s.dev.remove(&dptr);
            }
            alloc
        });
        if !known {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        post(Request::CuMemFree(MemFree { ptr: dptr }), &[])
    })
}

/// `cuMemGetInfo_v2`: as the session sees it (capped by its limit).
///
/// # Safety
/// `free` and `total` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuMemGetInfo_v2(free: *mut usize, total: *mut usize) -> CUresult {
    entry("cuMemGetInfo_v2", || {
        let ctx = current_ctx()?;
        let i = match call(Request::CuMemGetInfo(MemGetInfo { ctx }), &[], &mut [])? {
            Response::CuMemGetInfo(i) => i,
            r => return Err(unexpected(r)),
        };
        let size = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        // SAFETY: the caller's contract.
        unsafe {
            out(free, size(i.free))?;
            out(total, size(i.total))
        }
    })
}

/// `cuMemGetAddressRange_v2`, from the shim's records.
///
/// # Safety
/// `pbase` and `psize` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuMemGetAddressRange_v2(
    pbase: *mut CUdeviceptr,
    psize: *mut usize,
    dptr: CUdeviceptr,
) -> CUresult {
    entry("cuMemGetAddressRange_v2", || {
        client()?;
        let (base, len) = state::with(|s| s.dev_range(dptr, 1).map(|(b, r)| (b, r.len)))
            .ok_or(CUDA_ERROR_NOT_FOUND)?;
        // SAFETY: the caller's contract.
        unsafe {
            crate::ffi::write_opt(pbase, base);
            crate::ffi::write_opt(psize, usize::try_from(len).unwrap_or(usize::MAX));
        }
        Ok(())
    })
}

// ---- copies ----

/// Host to device, synchronous: shared sources go in place (in pieces of
/// the largest transfer), others are pipelined or chunked.
pub(crate) fn htod_sync(dst: CUdeviceptr, src: &[u8], stream: StreamRef) -> CuResult {
    dev_checked(dst, src.len())?;
    let c = client()?;
    let req = |off: usize, piece: &[u8]| {
        Request::CuMemcpyHtoD(MemcpyHtoD {
            dst: dst + off as u64,
            size: piece.len() as u64,
            stream,
        })
    };
    if src.is_empty() {
        return Ok(());
    }
    let (chunk, pipelined) = if c.is_shared(src.as_ptr() as usize, src.len()) {
        let max = usize::try_from(c.session().max_transfer_len).unwrap_or(usize::MAX);
        (max.max(1), false)
    } else {
        c.split_transfer(src.len())
    };
    let pieces = src
        .chunks(chunk)
        .enumerate()
        .map(|(i, p)| (req(i * chunk, p), p));
    if pipelined {
        c.call_pipelined(pieces.map(|(req, p)| Piece {
            req,
            bulk_in: Some(p),
            bulk_out: None,
        }))
        .map_err(|e| cu_error(&e))
    } else {
        for (r, p) in pieces {
            call(r, &[p], &mut [])?;
        }
        Ok(())
    }
}

/// Device to host, synchronous (complete on return).
pub(crate) fn dtoh_sync(dst: &mut [u8], src: CUdeviceptr, stream: StreamRef) -> CuResult {
    dev_checked(src, dst.len())?;
    let c = client()?;
    if dst.is_empty() {
        return Ok(());
    }
    let (chunk, pipelined) = if c.is_shared(dst.as_ptr() as usize, dst.len()) {
        let max = usize::try_from(c.session().max_transfer_len).unwrap_or(usize::MAX);
        (max.max(1), false)
    } else {
        c.split_transfer(dst.len())
    };
    let pieces = dst.chunks_mut(chunk).enumerate().map(|(i, p)| {
        let r = Request::CuMemcpyDtoH(MemcpyDtoH {
            src: src + (i * chunk) as u64,
            size: p.len() as u64,
            stream,
        });
        (r, p)
    });
    if pipelined {
        c.call_pipelined(pieces.map(|(req, p)| Piece {
            req,
            bulk_in: None,
            bulk_out: Some(p),
        }))
        .map_err(|e| cu_error(&e))
    } else {
        for (r, p) in pieces {
            call(r, &[], &mut [p])?;
        }
        Ok(())
    }
}

/// Host to device, asynchronous. Shared sources are posted in place (read
/// when the batch goes, as the device would read pinned memory); small
/// pageable ones are posted with a copy; large pageable ones are copied
/// synchronously, so the bytes are captured before returning either way.
pub(crate) fn htod_async(dst: CUdeviceptr, src: &'static [u8], stream: StreamRef) -> CuResult {
    dev_checked(dst, src.len())?;
    if src.is_empty() {
        return Ok(());
    }
    let c = client()?;
    if c.is_shared(src.as_ptr() as usize, src.len()) {
        let chunk = c.max_chunk().max(1);
        for (i, p) in src.chunks(chunk).enumerate() {
            let req = Request::CuMemcpyHtoD(MemcpyHtoD {
                dst: dst + (i * chunk) as u64,
                size: p.len() as u64,
                stream,
            });
            post_bulk(req, &[PostIn::InPlace(p)], Vec::new())?;
        }
        return Ok(());
    }
    if src.len() <= PIPELINE_CHUNK {
        let req = Request::CuMemcpyHtoD(MemcpyHtoD {
            dst,
            size: src.len() as u64,
            stream,
        });
        return post(req, &[src]);
    }
    htod_sync(dst, src, stream)
}

/// Device to host, asynchronous: into shared memory it is posted with the
/// destination named in place (filled by the next synchronizing call);
/// into pageable memory it completes before returning.
pub(crate) fn dtoh_async(dst: &'static mut [u8], src: CUdeviceptr, stream: StreamRef) -> CuResult {
    dev_checked(src, dst.len())?;
    if dst.is_empty() {
        return Ok(());
    }
    let c = client()?;
    if !c.is_shared(dst.as_ptr() as usize, dst.len()) {
        return dtoh_sync(dst, src, stream);
    }
    let chunk = c.max_chunk().max(1);
    let mut rest = dst;
    let mut off = 0u64;
    while !rest.is_empty() {
        let (piece, tail) = rest.split_at_mut(chunk.min(rest.len()));
        let req = Request::CuMemcpyDtoH(MemcpyDtoH {
            src: src + off,
            size: piece.len() as u64,
            stream,
        });
        off += piece.len() as u64;
        post_bulk(req, &[], vec![piece])?;
        rest = tail;
    }
    Ok(())
}

/// Device to device (posted: no host synchronization, as native).
pub(crate) fn dtod(dst: CUdeviceptr, src: CUdeviceptr, n: usize, stream: StreamRef) -> CuResult {
    dev_checked(dst, n)?;
    dev_checked(src, n)?;
    if n == 0 {
        return Ok(());
    }
    post(
        Request::CuMemcpyDtoD(MemcpyDtoD {
            dst,
            src,
            size: n as u64,
            stream,
        }),
        &[],
    )
}

/// Borrows the program's source buffer for the life of the process.
///
/// # Safety
/// `src` is NULL or holds `n` readable bytes. When the bytes are shared
/// host memory they stay mapped for the life of the process (the arena is
/// never unmapped while the session lives), and the program keeps them
/// unchanged until the copy's stream is synchronized, as the driver
/// requires for pinned memory; otherwise they are copied before the call
/// returns.
pub(crate) unsafe fn src_bytes(src: *const c_void, n: usize) -> CuResult<&'static [u8]> {
    // SAFETY: the caller's contract.
    unsafe { slice_in(src.cast::<u8>(), n) }.ok_or(CUDA_ERROR_INVALID_VALUE)
}

/// Borrows the program's destination buffer for the life of the process.
///
/// # Safety
/// As [`src_bytes`], for `n` writable bytes.
pub(crate) unsafe fn dst_bytes(dst: *mut c_void, n: usize) -> CuResult<&'static mut [u8]> {
    if n == 0 {
        return Ok(&mut []);
    }
    // SAFETY: the caller's contract.
    unsafe { bytes_out(dst.cast::<u8>(), n) }.ok_or(CUDA_ERROR_INVALID_VALUE)
}

macro_rules! memcpy_entries {
    ($( $htod:ident, $dtoh:ident, $dtod:ident, $null:expr; )*) => { $(
        /// `cuMemcpyHtoD_v2` (synchronous).
        ///
        /// # Safety
        /// `src` holds `n` readable bytes.
        #[no_mangle]
        pub unsafe extern "C" fn $htod(dst: CUdeviceptr, src: *const c_void, n: usize) -> CUresult {
            entry(stringify!($htod), || {
                let s = stream_ref(std::ptr::null_mut(), $null)?;
                // SAFETY: the caller's contract.
                htod_sync(dst, unsafe { src_bytes(src, n) }?, s)
            })
        }

        /// `cuMemcpyDtoH_v2` (synchronous).
        ///
        /// # Safety
        /// `dst` holds `n` writable bytes.
        #[no_mangle]
        pub unsafe extern "C" fn $dtoh(dst: *mut c_void, src: CUdeviceptr, n: usize) -> CUresult {
            entry(stringify!($dtoh), || {
                let s = stream_ref(std::ptr::null_mut(), $null)?;
                // SAFETY: the caller's contract.
                dtoh_sync(unsafe { dst_bytes(dst, n) }?, src, s)
            })
        }

        /// `cuMemcpyDtoD_v2`
        #[no_mangle]
        pub extern "C" fn $dtod(dst: CUdeviceptr, src: CUdeviceptr, n: usize) -> CUresult {
            entry(stringify!($dtod), || {
                dtod(dst, src, n, stream_ref(std::ptr::null_mut(), $null)?)
            })
        }
    )* };
}

memcpy_entries! {
    cuMemcpyHtoD_v2, cuMemcpyDtoH_v2, cuMemcpyDtoD_v2, NullStream::Legacy;
    cuMemcpyHtoD_v2_ptds, cuMemcpyDtoH_v2_ptds, cuMemcpyDtoD_v2_ptds, NullStream::PerThread;
}

macro_rules! memcpy_async_entries {
    ($( $htod:ident, $dtoh:ident, $dtod:ident, $null:expr; )*) => { $(
        /// `cuMemcpyHtoDAsync_v2`
        ///
        /// # Safety
        /// `src` holds `n` readable bytes (see [`src_bytes`]).
        #[no_mangle]
        pub unsafe extern "C" fn $htod(
            dst: CUdeviceptr,
            src: *const c_void,
            n: usize,
            stream: Opaque,
        ) -> CUresult {
            entry(stringify!($htod), || {
                let s = stream_ref(stream, $null)?;
                // SAFETY: the caller's contract.
                htod_async(dst, unsafe { src_bytes(src, n) }?, s)
            })
        }

        /// `cuMemcpyDtoHAsync_v2`
        ///
        /// # Safety
        /// `dst` holds `n` writable bytes (see [`dst_bytes`]).
        #[no_mangle]
        pub unsafe extern "C" fn $dtoh(
            dst: *mut c_void,
            src: CUdeviceptr,
            n: usize,
            stream: Opaque,
        ) -> CUresult {
            entry(stringify!($dtoh), || {
                let s = stream_ref(stream, $null)?;
                // SAFETY: the caller's contract.
                dtoh_async(unsafe { dst_bytes(dst, n) }?, src, s)
            })
        }

        /// `cuMemcpyDtoDAsync_v2`
        #[no_mangle]
        pub extern "C" fn $dtod(
            dst: CUdeviceptr,
            src: CUdeviceptr,
            n: usize,
            stream: Opaque,
        ) -> CUresult {
            entry(stringify!($dtod), || dtod(dst, src, n, stream_ref(stream, $null)?))
        }
    )* };
}

memcpy_async_entries! {
    cuMemcpyHtoDAsync_v2, cuMemcpyDtoHAsync_v2, cuMemcpyDtoDAsync_v2, NullStream::Legacy;
    cuMemcpyHtoDAsync_v2_ptsz, cuMemcpyDtoHAsync_v2_ptsz, cuMemcpyDtoDAsync_v2_ptsz, NullStream::PerThread;
}

/// `cuMemcpy`/`cuMemcpyAsync` with unified addressing: each side is device
/// memory if the shim knows it as a device range, host memory otherwise.
///
/// # Safety
/// Host sides hold `n` readable (source) or writable (destination) bytes.
unsafe fn unified(dst: u64, src: u64, n: usize, stream: StreamRef, sync: bool) -> CuResult {
    let is_dev = |p: u64| state::with(|s| s.dev_range(p, 1).is_some());
    match (is_dev(dst), is_dev(src)) {
        (true, true) => dtod(dst, src, n, stream),
        (true, false) => {
            // SAFETY: a host source, by the caller's contract.
            let b = unsafe { src_bytes(src as usize as *const c_void, n) }?;
            if sync {
                htod_sync(dst, b, stream)
            } else {
                htod_async(dst, b, stream)
            }
        }
        (false, true) => {
            // SAFETY: a host destination, by the caller's contract.
            let b = unsafe { dst_bytes(dst as usize as *mut c_void, n) }?;
            if sync {
                dtoh_sync(b, src, stream)
            } else {
                dtoh_async(b, src, stream)
            }
        }
        // SAFETY: host ranges, by the caller's contract.
        (false, false) => unsafe { host_to_host(dst as usize, src as usize, n) },
    }
}

/// Host to host: a plain copy, after the pending work.
///
/// # Safety
/// `src` holds `n` readable and `dst` `n` writable bytes.
pub(crate) unsafe fn host_to_host(dst: usize, src: usize, n: usize) -> CuResult {
    let host_ok = crate::ffi::host_range_ok;
    if !host_ok(dst, n) || !host_ok(src, n) {
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    client()?.flush().map_err(|e| cu_error(&e))?;
    // SAFETY: both host ranges hold `n` bytes by the contract; `copy`
    // tolerates overlap.
    unsafe { std::ptr::copy(src as *const u8, dst as *mut u8, n) };
    Ok(())
}

/// `cuMemcpy`
///
/// # Safety
/// See [`unified`].
#[no_mangle]
pub unsafe extern "C" fn cuMemcpy(dst: CUdeviceptr, src: CUdeviceptr, n: usize) -> CUresult {
    entry("cuMemcpy", || {
        let s = stream_ref(std::ptr::null_mut(), NullStream::Legacy)?;
        // SAFETY: the caller's contract.
        unsafe { unified(dst, src, n, s, true) }
    })
}

/// `cuMemcpy_ptds`
///
/// # Safety
/// See [`unified`].
#[no_mangle]
pub unsafe extern "C" fn cuMemcpy_ptds(dst: CUdeviceptr, src: CUdeviceptr, n: usize) -> CUresult {
    entry("cuMemcpy_ptds", || {
        let s = stream_ref(std::ptr::null_mut(), NullStream::PerThread)?;
        // SAFETY: the caller's contract.
        unsafe { unified(dst, src, n, s, true) }
    })
}

/// `cuMemcpyAsync`
///
/// # Safety
/// See [`unified`].
#[no_mangle]
pub unsafe extern "C" fn cuMemcpyAsync(
    dst: CUdeviceptr,
    src: CUdeviceptr,
    n: usize,
    stream: Opaque,
) -> CUresult {
    entry("cuMemcpyAsync", || {
        let s = stream_ref(stream, NullStream::Legacy)?;
        // SAFETY: the caller's contract.
        unsafe { unified(dst, src, n, s, false) }
    })
}

/// `cuMemcpyAsync_ptsz`
///
/// # Safety
/// See [`unified`].
#[no_mangle]
pub unsafe extern "C" fn cuMemcpyAsync_ptsz(
    dst: CUdeviceptr,
    src: CUdeviceptr,
    n: usize,
    stream: Opaque,
) -> CUresult {
    entry("cuMemcpyAsync_ptsz", || {
        let s = stream_ref(stream, NullStream::PerThread)?;
        // SAFETY: the caller's contract.
        unsafe { unified(dst, src, n, s, false) }
    })
}

// ---- memsets ----

/// A memset (posted: asynchronous with respect to the host for device
/// memory, as native).
fn memset(
    dst: CUdeviceptr,
    value: u32,
    width: MemsetWidth,
    count: usize,
    stream: StreamRef,
) -> CuResult {
    let bytes = count
        .checked_mul(width.bytes() as usize)
        .ok_or(CUDA_ERROR_INVALID_VALUE)?;
    if !dst.is_multiple_of(width.bytes()) {
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    dev_checked(dst, bytes)?;
    if count == 0 {
        return Ok(());
    }
    post(
        Request::CuMemset(Memset {
            dst,
            value,
            width,
            count: count as u64,
            stream,
        }),
        &[],
    )
}

macro_rules! memset_entries {
    ($( $name:ident, $ty:ty, $width:expr, $null:expr; )*) => { $(
        #[doc = concat!("`", stringify!($name), "`")]
        #[no_mangle]
        pub extern "C" fn $name(dst: CUdeviceptr, value: $ty, n: usize) -> CUresult {
            entry(stringify!($name), || {
                memset(dst, u32::from(value), $width, n, stream_ref(std::ptr::null_mut(), $null)?)
            })
        }
    )* };
}

memset_entries! {
    cuMemsetD8_v2, u8, MemsetWidth::D8, NullStream::Legacy;
    cuMemsetD16_v2, u16, MemsetWidth::D16, NullStream::Legacy;
    cuMemsetD32_v2, u32, MemsetWidth::D32, NullStream::Legacy;
    cuMemsetD8_v2_ptds, u8, MemsetWidth::D8, NullStream::PerThread;
    cuMemsetD16_v2_ptds, u16, MemsetWidth::D16, NullStream::PerThread;
    cuMemsetD32_v2_ptds, u32, MemsetWidth::D32, NullStream::PerThread;
}

macro_rules! memset_async_entries {
    ($( $name:ident, $ty:ty, $width:expr, $null:expr; )*) => { $(
        #[doc = concat!("`", stringify!($name), "`")]
        #[no_mangle]
        pub extern "C" fn $name(dst: CUdeviceptr, value: $ty, n: usize, stream: Opaque) -> CUresult {
            entry(stringify!($name), || {
                memset(dst, u32::from(value), $width, n, stream_ref(stream, $null)?)
            })
        }
    )* };
}

memset_async_entries! {
    cuMemsetD8Async, u8, MemsetWidth::D8, NullStream::Legacy;
    cuMemsetD16Async, u16, MemsetWidth::D16, NullStream::Legacy;
    cuMemsetD32Async, u32, MemsetWidth::D32, NullStream::Legacy;
    cuMemsetD8Async_ptsz, u8, MemsetWidth::D8, NullStream::PerThread;
    cuMemsetD16Async_ptsz, u16, MemsetWidth::D16, NullStream::PerThread;
    cuMemsetD32Async_ptsz, u32, MemsetWidth::D32, NullStream::PerThread;
}

// ---- host memory ----

/// Allocates host memory: a shared block when the transport has one,
/// ordinary page-aligned memory otherwise.
fn host_alloc(pp: *mut *mut c_void, bytesize: usize, flags: c_uint) -> CuResult {
    if pp.is_null() || bytesize == 0 || flags & !CU_MEMHOSTALLOC_MASK != 0 {
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    let ctx = current_ctx()?;
    let c = client()?;
    let (addr, kind) = match c.host_alloc(bytesize) {
        Some(p) => (p as usize, HostKind::Shared),
        None => {
            let layout = Layout::from_size_align(bytesize, HOST_ALIGN)
                .map_err(|_| CUDA_ERROR_OUT_OF_MEMORY)?;
            // SAFETY: `layout` has a non-zero size (checked above).
            let p = unsafe { std::alloc::alloc(layout) };
            if p.is_null() {
                return Err(CUDA_ERROR_OUT_OF_MEMORY);
            }
            (p as usize, HostKind::Owned)
        }
    };
    state::with(|s| {
        s.host.insert(
            addr,
            HostRange {
                len: bytesize,
                ctx,
                flags,
                kind,
            },
        )
    });
    // SAFETY: checked non-null; the caller's contract.
    unsafe { out(pp, super::host_ptr(addr)) }
}

/// `cuMemAllocHost_v2`
///
/// # Safety
/// `pp` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuMemAllocHost_v2(pp: *mut *mut c_void, bytesize: usize) -> CUresult {
    entry("cuMemAllocHost_v2", || host_alloc(pp, bytesize, 0))
}

/// `cuMemHostAlloc`: every flag is accepted; `DEVICEMAP` memory has no
/// device address (see `cuMemHostGetDevicePointer_v2`).
///
/// # Safety
/// `pp` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuMemHostAlloc(
    pp: *mut *mut c_void,
    bytesize: usize,
    flags: c_uint,
) -> CUresult {
    entry("cuMemHostAlloc", || host_alloc(pp, bytesize, flags))
}

/// `cuMemFreeHost`: pending calls that may name the block go first.
#[no_mangle]
pub extern "C" fn cuMemFreeHost(p: *mut c_void) -> CUresult {
    entry("cuMemFreeHost", || {
        let addr = p as usize;
        let r = state::with(|s| match s.host.get(&addr) {
            Some(r) if r.kind != HostKind::Registered => s.host.remove(&addr),
            _ => None,
        })
        .ok_or(CUDA_ERROR_INVALID_VALUE)?;
        let c = client()?;
        match r.kind {
            HostKind::Shared => {
                c.host_free(addr).ok_or(CUDA_ERROR_INVALID_VALUE)?;
            }
            HostKind::Owned => {
                c.flush().map_err(|e| cu_error(&e))?;
                let layout = Layout::from_size_align(r.len, HOST_ALIGN)
                    .map_err(|_| CUDA_ERROR_INVALID_VALUE)?;
                // SAFETY: allocated by `host_alloc` with this very layout
                // and removed from the records, so freed exactly once.
                unsafe { std::alloc::dealloc(p.cast(), layout) };
            }
            HostKind::Registered => {}
        }
        Ok(())
    })
}

/// `cuMemHostRegister_v2`: recorded, so that pointer queries and
/// `cuMemHostUnregister` answer as native; copies from it are ordinary
/// (copied) transfers.
#[no_mangle]
pub extern "C" fn cuMemHostRegister_v2(p: *mut c_void, bytesize: usize, flags: c_uint) -> CUresult {
    entry("cuMemHostRegister_v2", || {
        if p.is_null() || bytesize == 0 || flags & !CU_MEMHOSTREGISTER_MASK != 0 {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let ctx = current_ctx()?;
        let addr = p as usize;
        let end = addr.checked_add(bytesize).ok_or(CUDA_ERROR_INVALID_VALUE)?;
        state::with(|s| {
            let overlaps = s
                .host
                .range(..end)
                .next_back()
                .is_some_and(|(&start, r)| start + r.len > addr);
            if overlaps {
                return Err(CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED);
            }
            s.host.insert(
                addr,
                HostRange {
                    len: bytesize,
                    ctx,
                    flags,
                    kind: HostKind::Registered,
                },
            );
            Ok(())
        })
    })
}

/// `cuMemHostUnregister`
#[no_mangle]
pub extern "C" fn cuMemHostUnregister(p: *mut c_void) -> CUresult {
    entry("cuMemHostUnregister", || {
        client()?;
        let addr = p as usize;
        state::with(|s| match s.host.get(&addr) {
            Some(r) if r.kind == HostKind::Registered => {
                s.host.remove(&addr);
                Ok(())
            }
            _ => Err(CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED),
        })
    })
}

/// `cuMemHostGetFlags`
///
/// # Safety
/// `pflags` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuMemHostGetFlags(pflags: *mut c_uint, p: *mut c_void) -> CUresult {
    entry("cuMemHostGetFlags", || {
        let f = state::with(|s| s.host_range(p as usize, 1).map(|(_, r)| r.flags))
            .ok_or(CUDA_ERROR_INVALID_VALUE)?;
        // SAFETY: the caller's contract.
        unsafe { out(pflags, f) }
    })
}

/// `cuMemHostGetDevicePointer_v2`: host memory is not mapped into the
/// device's address space through the daemon, so there is no such pointer.
#[no_mangle]
pub extern "C" fn cuMemHostGetDevicePointer_v2(
    pdptr: *mut CUdeviceptr,
    p: *mut c_void,
    flags: c_uint,
) -> CUresult {
    let _ = (pdptr, p, flags);
    CUDA_ERROR_NOT_SUPPORTED
}
