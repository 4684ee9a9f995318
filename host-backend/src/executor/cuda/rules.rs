//! What the driver API allows in the numbers a guest sends: flag masks,
//! attribute ranges, the JIT options that carry plain values, and the
//! answers to pointer-attribute queries. Checked before any backend sees a
//! request, so that both backends refuse the same things with the same
//! `CUresult`.

use protocol::cuda::result::{INVALID_VALUE, NOT_SUPPORTED};
use protocol::cuda::JitOption;

use super::memory::Region;

/// `CUctx_flags`: scheduling (0x7), `MAP_HOST`, `LMEM_RESIZE_TO_MAX`,
/// `COREDUMP_ENABLE`, `USER_COREDUMP_ENABLE`, `SYNC_MEMOPS`.
pub const CTX_FLAGS: u32 = 0xff;
/// `CUstream_flags`: `CU_STREAM_NON_BLOCKING`.
pub const STREAM_FLAGS: u32 = 0x1;
/// `CUevent_flags`: `BLOCKING_SYNC`, `DISABLE_TIMING`, `INTERPROCESS`.
pub const EVENT_FLAGS: u32 = 0x7;
/// `CU_EVENT_INTERPROCESS`: IPC handles cannot leave the host.
pub const EVENT_INTERPROCESS: u32 = 0x4;
/// `CUevent_record_flags`: `CU_EVENT_RECORD_EXTERNAL`.
pub const EVENT_RECORD_FLAGS: u32 = 0x1;
/// `CUevent_wait_flags`: `CU_EVENT_WAIT_EXTERNAL`.
pub const EVENT_WAIT_FLAGS: u32 = 0x1;
/// `CUoccupancy_flags`: `CU_OCCUPANCY_DISABLE_CACHING_OVERRIDE`.
pub const OCCUPANCY_FLAGS: u32 = 0x1;
/// Largest `CUfunc_cache` value (`CU_FUNC_CACHE_PREFER_EQUAL`).
pub const MAX_CACHE_CONFIG: u32 = 3;
/// Largest `CUfunction_attribute` in CUDA 12
/// (`CU_FUNC_ATTRIBUTE_CLUSTER_SCHEDULING_POLICY_PREFERENCE`).
pub const MAX_FUNC_ATTRIBUTE: i32 = 15;

/// `CUfunction_attribute`s that `cuFuncSetAttribute` accepts: dynamic
/// shared memory, carveout, and the cluster settings.
pub fn func_attribute_settable(attr: i32) -> bool {
    matches!(attr, 8 | 9 | 11..=15)
}

/// Fails with `CUDA_ERROR_INVALID_VALUE` if `flags` has bits outside `mask`.
pub fn check_flags(flags: u32, mask: u32) -> Result<(), i32> {
    if flags & !mask == 0 {
        Ok(())
    } else {
        Err(INVALID_VALUE)
    }
}

/// `CUjit_option`s whose value is a plain number, safe to pass on. Log
/// buffers travel as log sizes; symbol tables, LTO and the in/out
/// `THREADS_PER_BLOCK`/`WALL_TIME` are refused.
pub fn jit_option_plain(option: u32) -> bool {
    matches!(
        option,
        0           // CU_JIT_MAX_REGISTERS
        | 7         // CU_JIT_OPTIMIZATION_LEVEL
        | 8         // CU_JIT_TARGET_FROM_CUCONTEXT
        | 9         // CU_JIT_TARGET
        | 10        // CU_JIT_FALLBACK_STRATEGY
        | 11        // CU_JIT_GENERATE_DEBUG_INFO
        | 12        // CU_JIT_LOG_VERBOSE
        | 13        // CU_JIT_GENERATE_LINE_INFO
        | 14        // CU_JIT_CACHE_MODE
        | 16 // CU_JIT_FAST_COMPILE
    )
}

/// Checks a JIT option list: every option plain-valued, none twice.
pub fn check_jit_options(options: &[JitOption]) -> Result<(), i32> {
    for (i, o) in options.iter().enumerate() {
        if !jit_option_plain(o.option) || options[..i].iter().any(|p| p.option == o.option) {
            return Err(INVALID_VALUE);
        }
        // Every plain option's value is an `unsigned int` or an enum.
        if o.value > u64::from(u32::MAX) {
            return Err(INVALID_VALUE);
        }
    }
    Ok(())
}

/// `CU_MEMORYTYPE_DEVICE`
const MEMORYTYPE_DEVICE: u64 = 2;
/// `CU_POINTER_ATTRIBUTE_ACCESS_FLAG_READWRITE`
const ACCESS_FLAG_READWRITE: u64 = 3;

/// The answer to `cuPointerGetAttribute(attribute, ptr)` for an address in
/// `region`, from the session's own records.
pub fn pointer_attribute(region: &Region, ptr: u64, attribute: u32) -> Result<u64, i32> {
    Ok(match attribute {
        1 => region.ctx,                // CONTEXT (the guest handle)
        2 => MEMORYTYPE_DEVICE,         // MEMORY_TYPE
        3 => ptr,                       // DEVICE_POINTER
        7 => region.id,                 // BUFFER_ID
        8 => 0,                         // IS_MANAGED
        9 => u64::from(region.device),  // DEVICE_ORDINAL
        11 => region.base,              // RANGE_START_ADDR
        12 => region.size,              // RANGE_SIZE
        13 => 1,                        // MAPPED
        16 => ACCESS_FLAG_READWRITE,    // ACCESS_FLAGS
        4 => return Err(INVALID_VALUE), // HOST_POINTER: device memory has none
        // P2P tokens, sync memops, IPC, handle types, RDMA, mempools.
        5 | 6 | 10 | 14 | 15 | 17 => return Err(NOT_SUPPORTED),
        _ => return Err(INVALID_VALUE),
    })
}

/// `CU_LIMIT_PERSISTING_L2_CACHE_SIZE`, the largest `CUlimit`.
pub(super) const MAX_LIMIT: u32 = 6;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::cuda::memory::Owner;

    #[test]
    fn jit_options() {
        let o = |option, value| JitOption { option, value };
        assert_eq!(check_jit_options(&[o(0, 32), o(12, 1)]), Ok(()));
        assert_eq!(check_jit_options(&[o(3, 0)]), Err(INVALID_VALUE));
        assert_eq!(check_jit_options(&[o(17, 0)]), Err(INVALID_VALUE));
        assert_eq!(check_jit_options(&[o(0, 1), o(0, 2)]), Err(INVALID_VALUE));
        assert_eq!(check_jit_options(&[o(0, 1 << 40)]), Err(INVALID_VALUE));
        assert_eq!(check_jit_options(&[o(999, 0)]), Err(INVALID_VALUE));
    }

    #[test]
    fn pointer_attributes_come_from_the_region() {
        let r = Region {
            base: 0x1000,
            size: 0x100,
            device: 1,
            ctx: 7,
            owner: Owner::Alloc,
            id: 3,
        };
        assert_eq!(pointer_attribute(&r, 0x1010, 1), Ok(7));
        assert_eq!(pointer_attribute(&r, 0x1010, 3), Ok(0x1010));
        assert_eq!(pointer_attribute(&r, 0x1010, 9), Ok(1));
        assert_eq!(pointer_attribute(&r, 0x1010, 11), Ok(0x1000));
        assert_eq!(pointer_attribute(&r, 0x1010, 12), Ok(0x100));
        assert_eq!(pointer_attribute(&r, 0x1010, 4), Err(INVALID_VALUE));
        assert_eq!(pointer_attribute(&r, 0x1010, 5), Err(NOT_SUPPORTED));
        assert_eq!(pointer_attribute(&r, 0x1010, 99), Err(INVALID_VALUE));
    }

    #[test]
    fn flags() {
        assert_eq!(check_flags(0x1, STREAM_FLAGS), Ok(()));
        assert_eq!(check_flags(0x2, STREAM_FLAGS), Err(INVALID_VALUE));
        assert!(func_attribute_settable(8));
        assert!(!func_attribute_settable(0));
    }
}
