//! Pointer attributes: answered from the shim's records of device and
//! host ranges, except a device allocation's buffer ID (the daemon's).

use std::ffi::{c_int, c_uint, c_void};

use protocol::cuda::PointerGetAttribute;
use protocol::{Request, Response};

use super::state::{self, Kind};
use super::types::*;
use super::{call, client, entry, out, unexpected, CuResult};

/// `cuPointerGetAttribute`: host ranges and most device attributes are
/// answered from the shim's records, the buffer ID by the daemon.
///
/// # Safety
/// `data` is writable for the attribute's type.
#[no_mangle]
pub unsafe extern "C" fn cuPointerGetAttribute(
    data: *mut c_void,
    attribute: c_int,
    ptr: CUdeviceptr,
) -> CUresult {
    entry("cuPointerGetAttribute", || {
        client()?;
        // SAFETY: the caller's contract.
        unsafe { attribute_of(data, attribute, ptr) }
    })
}

/// One attribute of `ptr` into `data`.
///
/// # Safety
/// `data` is writable for the attribute's type.
unsafe fn attribute_of(data: *mut c_void, attribute: c_int, ptr: CUdeviceptr) -> CuResult {
    {
        let host = state::with(|s| {
            s.host_range(ptr as usize, 1)
                .map(|(b, r)| (b as u64, r.len as u64, r.ctx))
        });
        let dev = state::with(|s| s.dev_range(ptr, 1).map(|(b, r)| (b, r.len, r.ctx)));
        let (base, len, ctx, mem_type) = match (host, dev) {
            (Some((b, l, c)), _) => (b, l, c, CU_MEMORYTYPE_HOST),
            (None, Some((b, l, c))) => (b, l, c, CU_MEMORYTYPE_DEVICE),
            (None, None) => return Err(CUDA_ERROR_INVALID_VALUE),
        };
        let device = state::with(|s| s.contexts.get(&ctx).map(|c| c.device)).unwrap_or(0);
        let d = data;
        // SAFETY: the caller's contract: `data` fits the attribute's type.
        unsafe {
            match attribute {
                CU_POINTER_ATTRIBUTE_CONTEXT => out(d.cast(), state::to_opaque(Kind::Context, ctx)),
                CU_POINTER_ATTRIBUTE_MEMORY_TYPE => out(d.cast(), mem_type),
                CU_POINTER_ATTRIBUTE_DEVICE_POINTER if mem_type == CU_MEMORYTYPE_DEVICE => {
                    out(d.cast(), ptr)
                }
                CU_POINTER_ATTRIBUTE_HOST_POINTER if mem_type == CU_MEMORYTYPE_HOST => {
                    out(d.cast(), super::host_ptr(ptr as usize))
                }
                CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL => out(d.cast(), device),
                CU_POINTER_ATTRIBUTE_RANGE_START_ADDR => out(d.cast(), base),
                CU_POINTER_ATTRIBUTE_RANGE_SIZE => {
                    out(d.cast(), usize::try_from(len).unwrap_or(usize::MAX))
                }
                CU_POINTER_ATTRIBUTE_BUFFER_ID if mem_type == CU_MEMORYTYPE_DEVICE => {
                    let req = Request::CuPointerGetAttribute(PointerGetAttribute {
                        ptr,
                        attribute: attribute as u32,
                    });
                    match call(req, &[], &mut [])? {
                        Response::CuPointerGetAttribute(v) => out(d.cast(), v.value),
                        r => Err(unexpected(r)),
                    }
                }
                CU_POINTER_ATTRIBUTE_DEVICE_POINTER | CU_POINTER_ATTRIBUTE_HOST_POINTER => {
                    Err(CUDA_ERROR_INVALID_VALUE)
                }
                _ => Err(CUDA_ERROR_NOT_SUPPORTED),
            }
        }
    }
}

/// Bytes of each `CUpointer_attribute`'s value, as `cuda.h` types it.
fn attribute_size(attribute: c_int) -> Option<usize> {
    match attribute {
        // CUcontext, CUdeviceptr, void*, buffer id, range start and size,
        // handle types, mempool, mapping size and base, block id.
        1 | 3 | 4 | 7 | 11 | 12 | 14 | 17 | 18 | 19 | 20 => Some(8),
        // CUDA_POINTER_ATTRIBUTE_P2P_TOKENS
        5 => Some(16),
        // memory type, sync memops, managed, ordinal, IPC, mapped, RDMA,
        // access flags, decompression.
        2 | 6 | 8 | 9 | 10 | 13 | 15 | 16 | 21 => Some(4),
        _ => None,
    }
}

/// `cuPointerGetAttributes`: each attribute as `cuPointerGetAttribute`
/// answers it; unlike that call, a pointer the shim does not know (host
/// memory the driver never saw), or an attribute it does not track, gets
/// zeroed values and `CUDA_SUCCESS`, as the driver documents.
///
/// # Safety
/// `attributes` and `data` hold `num` entries; each `data[i]` is writable
/// for its attribute's type.
#[no_mangle]
pub unsafe extern "C" fn cuPointerGetAttributes(
    num: c_uint,
    attributes: *mut c_int,
    data: *mut *mut c_void,
    ptr: CUdeviceptr,
) -> CUresult {
    entry("cuPointerGetAttributes", || {
        client()?;
        let n = num as usize;
        // SAFETY: the caller's contract.
        let (attrs, outs) = unsafe {
            (
                crate::ffi::slice_in(attributes.cast_const(), n).ok_or(CUDA_ERROR_INVALID_VALUE)?,
                crate::ffi::slice_in(data.cast_const(), n).ok_or(CUDA_ERROR_INVALID_VALUE)?,
            )
        };
        for (&a, &d) in attrs.iter().zip(outs) {
            let size = attribute_size(a).ok_or(CUDA_ERROR_INVALID_VALUE)?;
            if d.is_null() {
                return Err(CUDA_ERROR_INVALID_VALUE);
            }
            // SAFETY: `d` is writable for the attribute's type.
            match unsafe { attribute_of(d, a, ptr) } {
                Ok(()) => {}
                // SAFETY: as above; `size` is the attribute's type's size.
                Err(CUDA_ERROR_INVALID_VALUE | CUDA_ERROR_NOT_SUPPORTED) => unsafe {
                    std::ptr::write_bytes(d.cast::<u8>(), 0, size)
                },
                Err(e) => return Err(e),
            }
        }
        Ok(())
    })
}
