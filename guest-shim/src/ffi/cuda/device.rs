//! `cuInit`, the driver version and devices. Everything about a device is
//! immutable, so each device is asked about once ([`info`]) and answered
//! from the cache afterwards.

use std::ffi::{c_char, c_int, c_uint};

use protocol::cuda::{DeviceInfo, DeviceQuery, Init, InitInfo};
use protocol::session::FEATURE_CUDA;
use protocol::{Request, Response};

use super::types::*;
use super::{call, entry, out, state, unexpected, CuResult};

/// The driver API level this shim implements (`cuda.h` 12.8): the newest
/// version `cuDriverGetVersion` reports (and what it reports when no
/// daemon can be reached).
pub const SHIM_API_VERSION: c_int = 12080;

/// Asks the daemon for its driver and device count (once).
fn init_info() -> CuResult<InitInfo> {
    if let Some(i) = state::with(|s| s.init.clone()) {
        return Ok(i);
    }
    let client = crate::ffi::shared_client().ok_or(CUDA_ERROR_NO_DEVICE)?;
    if client.session().features & FEATURE_CUDA == 0 {
        crate::log::CALLS.log(format_args!(
            "the daemon does not serve the CUDA driver API (is it running --executor cuda?)"
        ));
        return Err(CUDA_ERROR_NO_DEVICE);
    }
    let info = match client.call(Request::CuInit(Init { flags: 0 }), &[], &mut []) {
        Ok(Response::CuInit(i)) => i,
        Ok(r) => return Err(unexpected(r)),
        Err(e) => return Err(super::cu_error(&e)),
    };
    state::with(|s| s.init = Some(info.clone()));
    Ok(info)
}

/// What `cuDriverGetVersion` reports: the daemon's driver, but never
/// newer than the API the shim implements (libraries ask for the entry
/// points of the version they are told, and cuBLASLt refuses to start
/// when a newer one is missing); the shim's own level when no daemon
/// answers.
pub(crate) fn driver_version() -> c_int {
    init_info().map_or(SHIM_API_VERSION, |i| advertised(i.driver_version))
}

/// The driver version told to programs for a daemon's `driver`.
fn advertised(driver: c_int) -> c_int {
    driver.min(SHIM_API_VERSION)
}

/// The device count, once `cuInit` has succeeded.
pub(crate) fn device_count() -> CuResult<u32> {
    state::with(|s| {
        s.init
            .as_ref()
            .filter(|_| state::initialized())
            .map(|i| i.device_count)
    })
    .ok_or(CUDA_ERROR_NOT_INITIALIZED)
}

/// The cached description of `dev`, asking the daemon on first use.
pub(crate) fn info(dev: CUdevice) -> CuResult<DeviceInfo> {
    let count = device_count()?;
    let ordinal = u32::try_from(dev)
        .ok()
        .filter(|&d| d < count)
        .ok_or(CUDA_ERROR_INVALID_DEVICE)?;
    if let Some(i) = state::with(|s| s.devices.get(&dev).cloned()) {
        return Ok(i);
    }
    let i = match call(
        Request::CuDeviceGetInfo(DeviceQuery { device: ordinal }),
        &[],
        &mut [],
    )? {
        Response::CuDeviceGetInfo(i) => i,
        r => return Err(unexpected(r)),
    };
    state::with(|s| s.devices.insert(dev, i.clone()));
    Ok(i)
}

/// Calls `$m!` with the device capabilities the shim does not forward
/// (mapped host memory, managed memory, cooperative launches, virtual
/// memory management, shareable handles, RDMA), as
/// `NAME = number;` of `CUdevice_attribute`.
macro_rules! unforwarded {
    ($m:ident) => {
        $m! {
            CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY = 19;
            CU_DEVICE_ATTRIBUTE_MANAGED_MEMORY = 83;
            CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS = 88;
            CU_DEVICE_ATTRIBUTE_CONCURRENT_MANAGED_ACCESS = 89;
            CU_DEVICE_ATTRIBUTE_CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM = 91;
            CU_DEVICE_ATTRIBUTE_COOPERATIVE_LAUNCH = 95;
            CU_DEVICE_ATTRIBUTE_COOPERATIVE_MULTI_DEVICE_LAUNCH = 96;
            CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS_USES_HOST_PAGE_TABLES = 100;
            CU_DEVICE_ATTRIBUTE_DIRECT_MANAGED_MEM_ACCESS_FROM_HOST = 101;
            CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED = 102;
            CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED = 103;
            CU_DEVICE_ATTRIBUTE_GPU_DIRECT_RDMA_SUPPORTED = 116;
        }
    };
}

macro_rules! numbers {
    ($( $name:ident = $num:literal; )*) => {
        /// Attributes of capabilities that are not forwarded: answered 0,
        /// whatever the host device has, so that programs take their plain
        /// paths (cudarc, for one, allocates with `cuMemAllocAsync` when
        /// memory pools are supported).
        const UNFORWARDED: &[c_int] = &[$( $num ),*];
    };
}
unforwarded!(numbers);

/// One attribute of `dev`.
pub(crate) fn attribute(dev: CUdevice, attrib: c_int) -> CuResult<c_int> {
    let v = info(dev)?
        .attributes
        .iter()
        .find(|a| a.attribute == attrib)
        .map(|a| a.value)
        .ok_or(CUDA_ERROR_INVALID_VALUE)?;
    Ok(if UNFORWARDED.contains(&attrib) { 0 } else { v })
}

/// `cuInit`
#[no_mangle]
pub extern "C" fn cuInit(flags: c_uint) -> CUresult {
    entry("cuInit", || {
        if flags != 0 {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        init_info()?;
        state::set_initialized();
        Ok(())
    })
}

/// `cuDriverGetVersion`: the daemon's driver version.
///
/// # Safety
/// `version` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuDriverGetVersion(version: *mut c_int) -> CUresult {
    entry("cuDriverGetVersion", || {
        // SAFETY: the caller's contract.
        unsafe { out(version, driver_version()) }
    })
}

/// `cuDeviceGetCount`
///
/// # Safety
/// `count` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetCount(count: *mut c_int) -> CUresult {
    entry("cuDeviceGetCount", || {
        let n = device_count()?;
        // SAFETY: the caller's contract.
        unsafe { out(count, c_int::try_from(n).unwrap_or(c_int::MAX)) }
    })
}

/// `cuDeviceGet`
///
/// # Safety
/// `device` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuDeviceGet(device: *mut CUdevice, ordinal: c_int) -> CUresult {
    entry("cuDeviceGet", || {
        let n = device_count()?;
        if u32::try_from(ordinal).map_or(true, |o| o >= n) {
            return Err(CUDA_ERROR_INVALID_DEVICE);
        }
        // SAFETY: the caller's contract.
        unsafe { out(device, ordinal) }
    })
}

/// `cuDeviceGetName`: truncated to `len` bytes, NUL included.
///
/// # Safety
/// `name` is NULL or holds `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetName(name: *mut c_char, len: c_int, dev: CUdevice) -> CUresult {
    entry("cuDeviceGetName", || {
        let i = info(dev)?;
        let len = usize::try_from(len).map_err(|_| CUDA_ERROR_INVALID_VALUE)?;
        // SAFETY: the caller's contract.
        let buf =
            unsafe { crate::ffi::bytes_out(name.cast(), len) }.ok_or(CUDA_ERROR_INVALID_VALUE)?;
        let n = i.name.len().min(buf.len() - 1);
        buf[..n].copy_from_slice(&i.name.as_bytes()[..n]);
        buf[n] = 0;
        Ok(())
    })
}

/// `cuDeviceGetUuid`
///
/// # Safety
/// `uuid` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetUuid(uuid: *mut CUuuid, dev: CUdevice) -> CUresult {
    entry("cuDeviceGetUuid", || {
        let bytes = info(dev)?.uuid;
        // SAFETY: the caller's contract.
        unsafe { out(uuid, CUuuid { bytes }) }
    })
}

/// `cuDeviceGetUuid_v2` (the same answer: the daemon reports the UUID the
/// driver's `_v2` gives).
///
/// # Safety
/// `uuid` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetUuid_v2(uuid: *mut CUuuid, dev: CUdevice) -> CUresult {
    // SAFETY: same contract.
    unsafe { cuDeviceGetUuid(uuid, dev) }
}

/// `cuDeviceTotalMem_v2`: capped at the session's memory limit.
///
/// # Safety
/// `bytes` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuDeviceTotalMem_v2(bytes: *mut usize, dev: CUdevice) -> CUresult {
    entry("cuDeviceTotalMem_v2", || {
        let total = info(dev)?.total_mem;
        // SAFETY: the caller's contract.
        unsafe { out(bytes, usize::try_from(total).unwrap_or(usize::MAX)) }
    })
}

/// `cuDeviceGetAttribute`
///
/// # Safety
/// `pi` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetAttribute(
    pi: *mut c_int,
    attrib: c_int,
    dev: CUdevice,
) -> CUresult {
    entry("cuDeviceGetAttribute", || {
        let v = attribute(dev, attrib)?;
        // SAFETY: the caller's contract.
        unsafe { out(pi, v) }
    })
}

/// `cuDeviceComputeCapability` (deprecated, still used).
///
/// # Safety
/// `major` and `minor` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuDeviceComputeCapability(
    major: *mut c_int,
    minor: *mut c_int,
    dev: CUdevice,
) -> CUresult {
    entry("cuDeviceComputeCapability", || {
        let ma = attribute(dev, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?;
        let mi = attribute(dev, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?;
        // SAFETY: the caller's contract.
        unsafe {
            out(major, ma)?;
            out(minor, mi)
        }
    })
}

/// `cuDeviceGetProperties` (deprecated), from the attributes.
///
/// # Safety
/// `prop` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetProperties(prop: *mut CUdevprop, dev: CUdevice) -> CUresult {
    entry("cuDeviceGetProperties", || {
        let a = |n| attribute(dev, n);
        let p = CUdevprop {
            max_threads_per_block: a(CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK)?,
            max_threads_dim: [
                a(CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X)?,
                a(CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X + 1)?,
                a(CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X + 2)?,
            ],
            max_grid_size: [
                a(CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X)?,
                a(CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X + 1)?,
                a(CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X + 2)?,
            ],
            shared_mem_per_block: a(CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK)?,
            total_constant_memory: a(CU_DEVICE_ATTRIBUTE_TOTAL_CONSTANT_MEMORY)?,
            simd_width: a(CU_DEVICE_ATTRIBUTE_WARP_SIZE)?,
            mem_pitch: a(CU_DEVICE_ATTRIBUTE_MAX_PITCH)?,
            regs_per_block: a(CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK)?,
            clock_rate: a(CU_DEVICE_ATTRIBUTE_CLOCK_RATE)?,
            texture_align: a(CU_DEVICE_ATTRIBUTE_TEXTURE_ALIGNMENT)?,
        };
        // SAFETY: the caller's contract.
        unsafe { out(prop, p) }
    })
}

/// `cuDeviceGetPCIBusId`: `domain:bus:device.0` from the attributes.
///
/// # Safety
/// `pci_bus_id` is NULL or holds `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetPCIBusId(
    pci_bus_id: *mut c_char,
    len: c_int,
    dev: CUdevice,
) -> CUresult {
    entry("cuDeviceGetPCIBusId", || {
        let id = format!(
            "{:08x}:{:02x}:{:02x}.0",
            attribute(dev, CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID)?,
            attribute(dev, CU_DEVICE_ATTRIBUTE_PCI_BUS_ID)?,
            attribute(dev, CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID)?,
        );
        let len = usize::try_from(len).map_err(|_| CUDA_ERROR_INVALID_VALUE)?;
        // SAFETY: the caller's contract.
        let buf = unsafe { crate::ffi::bytes_out(pci_bus_id.cast(), len) }
            .ok_or(CUDA_ERROR_INVALID_VALUE)?;
        let n = id.len().min(buf.len() - 1);
        buf[..n].copy_from_slice(&id.as_bytes()[..n]);
        buf[n] = 0;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    macro_rules! check_against_header {
        ($( $name:ident = $num:literal; )*) => {
            $(
                assert_eq!(
                    cudarc::driver::sys::CUdevice_attribute::$name as i32, $num,
                    concat!(stringify!($name), " differs from cuda.h")
                );
            )*
        };
    }

    #[test]
    fn the_advertised_version_is_the_older_of_the_driver_and_the_shim() {
        assert_eq!(super::advertised(12040), 12040);
        assert_eq!(super::advertised(13000), super::SHIM_API_VERSION);
    }

    #[test]
    fn unforwarded_attributes_match_the_header() {
        unforwarded!(check_against_header);
    }
}
