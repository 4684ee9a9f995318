//! Stream memory operations (`cuStreamWaitValue*`, `cuStreamWriteValue*`,
//! `cuStreamBatchMemOp`): not forwarded. They are exported, unsuffixed
//! names included, because libraries look them up with `dlsym` when they
//! load (cuBLASLt does) and fail to load without them; a call answers
//! `CUDA_ERROR_NOT_SUPPORTED`, and the device attributes that advertise
//! them (`CAN_USE_STREAM_MEM_OPS_V1`, `CAN_USE_64_BIT_STREAM_MEM_OPS_V1`)
//! are reported as 0.

use std::ffi::{c_uint, c_void};

use super::types::*;

macro_rules! not_forwarded {
    ($( $name:ident ( $($arg:ident: $ty:ty),* ); )*) => { $(
        #[doc = concat!("`", stringify!($name), "`: not forwarded.")]
        #[no_mangle]
        pub extern "C" fn $name($($arg: $ty),*) -> CUresult {
            let _ = ($($arg),*);
            CUDA_ERROR_NOT_SUPPORTED
        }
    )* };
}

not_forwarded! {
    cuStreamWaitValue32(stream: Opaque, addr: CUdeviceptr, value: u32, flags: c_uint);
    cuStreamWaitValue32_v2(stream: Opaque, addr: CUdeviceptr, value: u32, flags: c_uint);
    cuStreamWaitValue32_v2_ptsz(stream: Opaque, addr: CUdeviceptr, value: u32, flags: c_uint);
    cuStreamWaitValue64(stream: Opaque, addr: CUdeviceptr, value: u64, flags: c_uint);
    cuStreamWaitValue64_v2(stream: Opaque, addr: CUdeviceptr, value: u64, flags: c_uint);
    cuStreamWaitValue64_v2_ptsz(stream: Opaque, addr: CUdeviceptr, value: u64, flags: c_uint);
    cuStreamWriteValue32(stream: Opaque, addr: CUdeviceptr, value: u32, flags: c_uint);
    cuStreamWriteValue32_v2(stream: Opaque, addr: CUdeviceptr, value: u32, flags: c_uint);
    cuStreamWriteValue32_v2_ptsz(stream: Opaque, addr: CUdeviceptr, value: u32, flags: c_uint);
    cuStreamWriteValue64(stream: Opaque, addr: CUdeviceptr, value: u64, flags: c_uint);
    cuStreamWriteValue64_v2(stream: Opaque, addr: CUdeviceptr, value: u64, flags: c_uint);
    cuStreamWriteValue64_v2_ptsz(stream: Opaque, addr: CUdeviceptr, value: u64, flags: c_uint);
    cuStreamBatchMemOp(stream: Opaque, count: c_uint, params: *mut c_void, flags: c_uint);
    cuStreamBatchMemOp_v2(stream: Opaque, count: c_uint, params: *mut c_void, flags: c_uint);
    cuStreamBatchMemOp_v2_ptsz(stream: Opaque, count: c_uint, params: *mut c_void, flags: c_uint);
}
