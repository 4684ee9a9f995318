//! Platforms and devices. Both come from the daemon; their objects are
//! cached per handle, never refcounted, and their info is immutable.

use std::ffi::c_void;
use std::sync::Arc;

use opencl_sys::{
    cl_device_id, cl_device_info, cl_device_type, cl_int, cl_platform_id, cl_platform_info,
    cl_uint, CL_INVALID_DEVICE, CL_INVALID_PLATFORM, CL_INVALID_VALUE, CL_PLATFORM_EXTENSIONS,
};
use protocol::opencl::{GetDeviceIds, Handle, InfoKind, ObjectKind};
use protocol::{Request, Response};

use super::info::{answer, cached_value, object_info, query};
use super::objects::{self, Data, Record};
use super::{call, session, status, unexpected, CL_PLATFORM_NOT_FOUND_KHR};
use crate::ffi::write_opt;

/// `CL_PLATFORM_ICD_SUFFIX_KHR`
const CL_PLATFORM_ICD_SUFFIX_KHR: u32 = 0x0920;
/// The suffix the loader appends to extension function names.
const ICD_SUFFIX: &[u8] = b"VCOMPUTE\0";
/// Private cache key of a platform's device list (`extra` = device type).
const DEVICE_LIST_KEY: u32 = 0xffff_ff01;

/// The platform a possibly-NULL `cl_platform_id` names (NULL = the first).
pub(crate) fn resolve_platform(p: cl_platform_id) -> Result<Arc<Record>, cl_int> {
    if p.is_null() {
        return session()
            .and_then(|s| s.platforms.first().cloned())
            .ok_or(CL_INVALID_PLATFORM);
    }
    objects::get(p, ObjectKind::Platform).ok_or(CL_INVALID_PLATFORM)
}

/// Adds `cl_khr_icd` to an extension string if the runtime left it out.
pub(crate) fn with_icd_extension(raw: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(raw);
    let text = text.trim_end_matches('\0');
    let mut exts: Vec<&str> = text.split_whitespace().collect();
    if !exts.contains(&"cl_khr_icd") {
        exts.push("cl_khr_icd");
    }
    let mut out = exts.join(" ").into_bytes();
    out.push(0);
    out
}

/// # Safety
/// `platforms` is NULL or holds `num_entries` writable entries;
/// `num_platforms` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn clGetPlatformIDs(
    num_entries: cl_uint,
    platforms: *mut cl_platform_id,
    num_platforms: *mut cl_uint,
) -> cl_int {
    status("clGetPlatformIDs", || {
        if (platforms.is_null() && num_platforms.is_null())
            || (num_entries == 0 && !platforms.is_null())
        {
            return Err(CL_INVALID_VALUE);
        }
        let list: &[Arc<Record>] = session().map_or(&[], |s| &s.platforms);
        let n = cl_uint::try_from(list.len()).unwrap_or(cl_uint::MAX);
        // SAFETY: NULL or writable, the caller's contract.
        unsafe { write_opt(num_platforms, n) };
        if list.is_empty() {
            return Err(CL_PLATFORM_NOT_FOUND_KHR);
        }
        if !platforms.is_null() {
            for (i, p) in list.iter().take(num_entries as usize).enumerate() {
                // SAFETY: `i < num_entries`, within the caller's array.
                unsafe { platforms.add(i).write(p.cl_ptr()) };
            }
        }
        Ok(())
    })
}

/// # Safety
/// `param_value` is NULL or holds `param_value_size` writable bytes;
/// `param_value_size_ret` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn clGetPlatformInfo(
    platform: cl_platform_id,
    param_name: cl_platform_info,
    param_value_size: usize,
    param_value: *mut c_void,
    param_value_size_ret: *mut usize,
) -> cl_int {
    status("clGetPlatformInfo", || {
        let rec = resolve_platform(platform)?;
        let Data::Platform { cache } = &rec.data else {
            return Err(CL_INVALID_PLATFORM);
        };
        let (size, value, ret) = (param_value_size, param_value, param_value_size_ret);
        match param_name {
            CL_PLATFORM_ICD_SUFFIX_KHR => {
                // The runtime's own suffix, so the platform reads as it does
                // natively; ours only if the runtime has none.
                let raw = cached_value(cache, InfoKind::Platform, rec.handle, 0, param_name)
                    .unwrap_or_else(|_| ICD_SUFFIX.to_vec());
                // SAFETY: the caller's contract on the out-pointers.
                unsafe { answer(&raw, size, value, ret) }
            }
            CL_PLATFORM_EXTENSIONS => {
                let raw = cached_value(cache, InfoKind::Platform, rec.handle, 0, param_name)?;
                // SAFETY: the caller's contract on the out-pointers.
                unsafe { answer(&with_icd_extension(&raw), size, value, ret) }
            }
            // SAFETY: the caller's contract on the out-pointers.
            _ => unsafe { query(&rec, InfoKind::Platform, 0, param_name, size, value, ret) },
        }
    })
}

/// The device handles of a platform for a type, cached.
fn device_handles(platform: &Record, device_type: cl_device_type) -> Result<Vec<Handle>, cl_int> {
    let Data::Platform { cache } = &platform.data else {
        return Err(CL_INVALID_PLATFORM);
    };
    if let Some(v) = cache.get(DEVICE_LIST_KEY, device_type) {
        return v.map(|b| {
            b.chunks_exact(8)
                .map(|c| u64::from_ne_bytes(c.try_into().unwrap_or_default()))
                .collect()
        });
    }
    let req = Request::ClGetDeviceIds(GetDeviceIds {
        platform: platform.handle,
        device_type,
    });
    let handles = match call(req, &[], &mut []) {
        Ok(Response::ClGetDeviceIds(l)) => l.handles,
        Ok(other) => return Err(unexpected(&other)),
        Err(e) => {
            if e == opencl_sys::CL_DEVICE_NOT_FOUND || e == opencl_sys::CL_INVALID_DEVICE_TYPE {
                cache.put(DEVICE_LIST_KEY, device_type, Err(e));
            }
            return Err(e);
        }
    };
    let bytes = handles.iter().flat_map(|h| h.to_ne_bytes()).collect();
    cache.put(DEVICE_LIST_KEY, device_type, Ok(bytes));
    Ok(handles)
}

/// # Safety
/// `devices` is NULL or holds `num_entries` writable entries;
/// `num_devices` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn clGetDeviceIDs(
    platform: cl_platform_id,
    device_type: cl_device_type,
    num_entries: cl_uint,
    devices: *mut cl_device_id,
    num_devices: *mut cl_uint,
) -> cl_int {
    status("clGetDeviceIDs", || {
        let plat = resolve_platform(platform)?;
        if (devices.is_null() && num_devices.is_null()) || (num_entries == 0 && !devices.is_null())
        {
            return Err(CL_INVALID_VALUE);
        }
        let handles = device_handles(&plat, device_type)?;
        if handles.is_empty() {
            return Err(opencl_sys::CL_DEVICE_NOT_FOUND);
        }
        let n = cl_uint::try_from(handles.len()).unwrap_or(cl_uint::MAX);
        // SAFETY: NULL or writable, the caller's contract.
        unsafe { write_opt(num_devices, n) };
        if !devices.is_null() {
            for (i, h) in handles.iter().take(num_entries as usize).enumerate() {
                let d = objects::device(*h, &plat);
                // SAFETY: `i < num_entries`, within the caller's array.
                unsafe { devices.add(i).write(d.cl_ptr()) };
            }
        }
        Ok(())
    })
}

/// # Safety
/// As [`clGetPlatformInfo`].
#[no_mangle]
pub unsafe extern "C" fn clGetDeviceInfo(
    device: cl_device_id,
    param_name: cl_device_info,
    param_value_size: usize,
    param_value: *mut c_void,
    param_value_size_ret: *mut usize,
) -> cl_int {
    // SAFETY: the caller's contract, forwarded.
    unsafe {
        object_info(
            "clGetDeviceInfo",
            device,
            ObjectKind::Device,
            CL_INVALID_DEVICE,
            InfoKind::Device,
            0,
            param_name,
            param_value_size,
            param_value,
            param_value_size_ret,
        )
    }
}

/// A hint; nothing to do.
#[no_mangle]
pub extern "C" fn clUnloadCompiler() -> cl_int {
    opencl_sys::CL_SUCCESS
}

/// A hint; nothing to do beyond checking the platform.
#[no_mangle]
pub extern "C" fn clUnloadPlatformCompiler(platform: cl_platform_id) -> cl_int {
    status("clUnloadPlatformCompiler", || {
        resolve_platform(platform).map(|_| ())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icd_extension_is_added_once() {
        assert_eq!(
            with_icd_extension(b"cl_khr_fp64\0"),
            b"cl_khr_fp64 cl_khr_icd\0"
        );
        assert_eq!(
            with_icd_extension(b"cl_khr_icd cl_khr_fp64 \0"),
            b"cl_khr_icd cl_khr_fp64\0"
        );
        assert_eq!(with_icd_extension(b""), b"cl_khr_icd\0");
    }
}
