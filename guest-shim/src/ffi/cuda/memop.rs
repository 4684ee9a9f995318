//! Stream memory operations: `cuStreamWaitValue32/64`,
//! `cuStreamWriteValue32/64` and `cuStreamBatchMemOp`, under every name
//! (libraries such as cuBLASLt look the unsuffixed ones up with `dlsym`),
//! posted to the daemon's stream. The address must lie in a device range
//! the shim knows, aligned to the value's width. In a batch, the wait and
//! write operations are supported; a remote-write flush or a memory
//! barrier is `CUDA_ERROR_NOT_SUPPORTED` (and nothing of the batch is
//! sent).

use std::ffi::{c_uint, c_void};

use protocol::cuda::{MemOpKind, StreamMemOp, StreamRef};
use protocol::Request;

use super::state;
use super::types::*;
use super::{entry, post, stream_ref, CuResult, NullStream};

/// Most operations in one `cuStreamBatchMemOp`: the driver's own bound is
/// 256 (`CU_DEVICE_ATTRIBUTE_MAX_STREAM_MEM_OPS` is not smaller on any GPU).
const MAX_BATCH_OPS: usize = 256;
/// Bytes of one `CUstreamBatchMemOpParams`.
const BATCH_PARAM_LEN: usize = 48;

/// `CU_STREAM_MEM_OP_WAIT_VALUE_32`, `..._WRITE_VALUE_32`,
/// `..._WAIT_VALUE_64`, `..._WRITE_VALUE_64`.
fn batch_kind(op: u32) -> CuResult<MemOpKind> {
    Ok(match op {
        1 => MemOpKind::Wait32,
        2 => MemOpKind::Write32,
        4 => MemOpKind::Wait64,
        5 => MemOpKind::Write64,
        3 | 6 => return Err(CUDA_ERROR_NOT_SUPPORTED),
        _ => return Err(CUDA_ERROR_INVALID_VALUE),
    })
}

/// Checks one operation against the shim's records.
fn checked(
    stream: StreamRef,
    kind: MemOpKind,
    addr: CUdeviceptr,
    value: u64,
    flags: c_uint,
) -> CuResult<Request> {
    let width = kind.width();
    if !addr.is_multiple_of(width) || state::with(|s| s.dev_range(addr, width).is_none()) {
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    Ok(Request::CuStreamMemOp(StreamMemOp {
        stream,
        kind,
        addr,
        value,
        flags,
    }))
}

fn single(
    s: Opaque,
    kind: MemOpKind,
    addr: CUdeviceptr,
    value: u64,
    flags: c_uint,
    null: NullStream,
) -> CuResult {
    let stream = stream_ref(s, null)?;
    post(checked(stream, kind, addr, value, flags)?, &[])
}

/// The operations of a batch, all checked before any is sent.
///
/// # Safety
/// `params` holds `count` `CUstreamBatchMemOpParams`.
unsafe fn batch(
    s: Opaque,
    count: c_uint,
    params: *mut c_void,
    flags: c_uint,
    null: NullStream,
) -> CuResult {
    let n = count as usize;
    if flags != 0 || n > MAX_BATCH_OPS {
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    let len = n
        .checked_mul(BATCH_PARAM_LEN)
        .ok_or(CUDA_ERROR_INVALID_VALUE)?;
    // SAFETY: the caller's contract.
    let bytes = unsafe { crate::ffi::slice_in(params.cast::<u8>().cast_const(), len) }
        .ok_or(CUDA_ERROR_INVALID_VALUE)?;
    let stream = stream_ref(s, null)?;
    let field = |p: &[u8], at: usize, w: usize| -> u64 {
        let mut b = [0u8; 8];
        b[..w].copy_from_slice(&p[at..at + w]);
        u64::from_le_bytes(b)
    };
    let mut reqs = Vec::with_capacity(n);
    for p in bytes.chunks_exact(BATCH_PARAM_LEN) {
        // { u32 operation; CUdeviceptr address; u64 value; u32 flags; ... }
        let kind = batch_kind(field(p, 0, 4) as u32)?;
        let value = field(p, 16, kind.width() as usize);
        let op_flags = field(p, 24, 4) as c_uint;
        reqs.push(checked(stream, kind, field(p, 8, 8), value, op_flags)?);
    }
    reqs.into_iter().try_for_each(|r| post(r, &[]))
}

macro_rules! value_entries {
    ($( $name:ident, $kind:expr, $ty:ty, $null:expr; )*) => { $(
        #[doc = concat!("`", stringify!($name), "` (posted).")]
        #[no_mangle]
        pub extern "C" fn $name(s: Opaque, addr: CUdeviceptr, value: $ty, flags: c_uint) -> CUresult {
            entry(stringify!($name), || single(s, $kind, addr, u64::from(value), flags, $null))
        }
    )* };
}

value_entries! {
    cuStreamWaitValue32, MemOpKind::Wait32, u32, NullStream::Legacy;
    cuStreamWaitValue32_v2, MemOpKind::Wait32, u32, NullStream::Legacy;
    cuStreamWaitValue32_v2_ptsz, MemOpKind::Wait32, u32, NullStream::PerThread;
    cuStreamWaitValue64, MemOpKind::Wait64, u64, NullStream::Legacy;
    cuStreamWaitValue64_v2, MemOpKind::Wait64, u64, NullStream::Legacy;
    cuStreamWaitValue64_v2_ptsz, MemOpKind::Wait64, u64, NullStream::PerThread;
    cuStreamWriteValue32, MemOpKind::Write32, u32, NullStream::Legacy;
    cuStreamWriteValue32_v2, MemOpKind::Write32, u32, NullStream::Legacy;
    cuStreamWriteValue32_v2_ptsz, MemOpKind::Write32, u32, NullStream::PerThread;
    cuStreamWriteValue64, MemOpKind::Write64, u64, NullStream::Legacy;
    cuStreamWriteValue64_v2, MemOpKind::Write64, u64, NullStream::Legacy;
    cuStreamWriteValue64_v2_ptsz, MemOpKind::Write64, u64, NullStream::PerThread;
}

macro_rules! batch_entries {
    ($( $name:ident, $null:expr; )*) => { $(
        #[doc = concat!("`", stringify!($name), "` (posted, one call per operation).")]
        ///
        /// # Safety
        /// `params` holds `count` `CUstreamBatchMemOpParams`.
        #[no_mangle]
        pub unsafe extern "C" fn $name(s: Opaque, count: c_uint, params: *mut c_void, flags: c_uint) -> CUresult {
            // SAFETY: the caller's contract.
            entry(stringify!($name), || unsafe { batch(s, count, params, flags, $null) })
        }
    )* };
}

batch_entries! {
    cuStreamBatchMemOp, NullStream::Legacy;
    cuStreamBatchMemOp_v2, NullStream::Legacy;
    cuStreamBatchMemOp_v2_ptsz, NullStream::PerThread;
}
