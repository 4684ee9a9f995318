//! Contexts, and the image formats a context supports.

use std::ffi::c_void;
use std::sync::Arc;

use opencl_sys::{
    cl_context, cl_context_info, cl_context_properties, cl_device_id, cl_device_type,
    cl_image_format, cl_int, cl_mem_flags, cl_mem_object_type, cl_uint, CL_CONTEXT_PLATFORM,
    CL_INVALID_CONTEXT, CL_INVALID_DEVICE, CL_INVALID_PLATFORM, CL_INVALID_PROPERTY,
    CL_INVALID_VALUE,
};
use protocol::limits::{MAX_DEVICES, MAX_PROPERTIES};
use protocol::opencl::{
    CreateContext, CreateContextFromType, GetImageFormats, InfoKind, ObjectKind,
};
use protocol::{Request, Response};

use super::info::object_info;
use super::objects::{self, Data, Record};
use super::platform::resolve_platform;
use super::{call, client, creating, release_entry, retain_entry, status, unexpected};
use crate::ffi::{property_list, slice_in, write_opt};

/// Type of the context error callback.
type ContextNotify =
    Option<unsafe extern "C" fn(*const std::ffi::c_char, *const c_void, usize, *mut c_void)>;

/// The caller's property list, and its wire form with platform pointers
/// replaced by platform handles. Also returns the named platform, if any.
pub(crate) fn translate_properties(
    props: &[isize],
) -> Result<(Vec<u64>, Option<Arc<Record>>), cl_int> {
    let mut wire = Vec::with_capacity(props.len());
    let mut platform = None;
    let mut it = props.chunks(2);
    for pair in &mut it {
        match *pair {
            [0] | [0, _] => {
                wire.push(0);
                return Ok((wire, platform));
            }
            [name, value] if name == CL_CONTEXT_PLATFORM => {
                let p = objects::get(value as *const c_void, ObjectKind::Platform)
                    .ok_or(CL_INVALID_PLATFORM)?;
                wire.extend([name as u64, p.handle]);
                platform = Some(p);
            }
            [name, value] => wire.extend([name as u64, value as u64]),
            _ => return Err(CL_INVALID_PROPERTY),
        }
    }
    if props.is_empty() {
        return Ok((wire, platform));
    }
    Err(CL_INVALID_PROPERTY)
}

/// A caller's property list, its wire form, and the platform it names.
type Properties = (Vec<isize>, Vec<u64>, Option<Arc<Record>>);

/// Reads and translates a caller's property list.
///
/// # Safety
/// `properties` is NULL or a zero-terminated list.
unsafe fn read_properties(properties: *const cl_context_properties) -> Result<Properties, cl_int> {
    // SAFETY: the caller's contract.
    let raw =
        unsafe { property_list(properties, MAX_PROPERTIES / 2) }.ok_or(CL_INVALID_PROPERTY)?;
    let (wire, platform) = translate_properties(&raw)?;
    Ok((raw, wire, platform))
}

fn register_context(id: u64, devices: Vec<Arc<Record>>, properties: Vec<isize>) -> *mut c_void {
    objects::register(
        ObjectKind::Context,
        id,
        Data::Context {
            devices,
            properties,
            destructors: Default::default(),
        },
    )
    .cl_ptr()
}

/// # Safety
/// Pointer arguments follow the OpenCL contract for `clCreateContext`.
#[no_mangle]
pub unsafe extern "C" fn clCreateContext(
    properties: *const cl_context_properties,
    num_devices: cl_uint,
    devices: *const cl_device_id,
    pfn_notify: ContextNotify,
    user_data: *mut c_void,
    errcode_ret: *mut cl_int,
) -> cl_context {
    let body = || {
        if pfn_notify.is_none() && !user_data.is_null() {
            return Err(CL_INVALID_VALUE);
        }
        if num_devices == 0 || num_devices as usize > MAX_DEVICES {
            return Err(CL_INVALID_VALUE);
        }
        // SAFETY: the caller passes `num_devices` entries.
        let list = unsafe { slice_in(devices, num_devices as usize) }.ok_or(CL_INVALID_VALUE)?;
        let devs = list
            .iter()
            .map(|d| objects::get(*d, ObjectKind::Device).ok_or(CL_INVALID_DEVICE))
            .collect::<Result<Vec<_>, _>>()?;
        // SAFETY: the caller's contract.
        let (raw, wire, _) = unsafe { read_properties(properties) }?;
        let id = client()?.new_handle();
        let req = Request::ClCreateContext(CreateContext {
            id,
            properties: wire,
            devices: devs.iter().map(|d| d.handle).collect(),
        });
        match call(req, &[], &mut [])? {
            Response::ClCreateContext(_) => Ok(register_context(id, devs, raw)),
            other => Err(unexpected(&other)),
        }
    };
    // SAFETY: `errcode_ret` is NULL or writable, the caller's contract.
    unsafe { creating("clCreateContext", errcode_ret, body) }
}

/// # Safety
/// Pointer arguments follow the OpenCL contract for
/// `clCreateContextFromType`.
#[no_mangle]
pub unsafe extern "C" fn clCreateContextFromType(
    properties: *const cl_context_properties,
    device_type: cl_device_type,
    pfn_notify: ContextNotify,
    user_data: *mut c_void,
    errcode_ret: *mut cl_int,
) -> cl_context {
    let body = || {
        if pfn_notify.is_none() && !user_data.is_null() {
            return Err(CL_INVALID_VALUE);
        }
        // SAFETY: the caller's contract.
        let (raw, wire, platform) = unsafe { read_properties(properties) }?;
        let platform = match platform {
            Some(p) => p,
            None => resolve_platform(std::ptr::null_mut())?,
        };
        let id = client()?.new_handle();
        let req = Request::ClCreateContextFromType(CreateContextFromType {
            id,
            properties: wire,
            device_type,
        });
        let handles = match call(req, &[], &mut [])? {
            Response::ClCreateContextFromType(l) => l.handles,
            other => return Err(unexpected(&other)),
        };
        let devs = handles
            .into_iter()
            .map(|h| objects::device_by_handle(h).unwrap_or_else(|| objects::device(h, &platform)))
            .collect();
        Ok(register_context(id, devs, raw))
    };
    // SAFETY: `errcode_ret` is NULL or writable, the caller's contract.
    unsafe { creating("clCreateContextFromType", errcode_ret, body) }
}

#[no_mangle]
pub extern "C" fn clRetainContext(context: cl_context) -> cl_int {
    retain_entry(
        "clRetainContext",
        context,
        ObjectKind::Context,
        CL_INVALID_CONTEXT,
    )
}

#[no_mangle]
pub extern "C" fn clReleaseContext(context: cl_context) -> cl_int {
    release_entry(
        "clReleaseContext",
        context,
        ObjectKind::Context,
        CL_INVALID_CONTEXT,
    )
}

/// # Safety
/// `param_value` is NULL or holds `param_value_size` writable bytes;
/// `param_value_size_ret` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn clGetContextInfo(
    context: cl_context,
    param_name: cl_context_info,
    param_value_size: usize,
    param_value: *mut c_void,
    param_value_size_ret: *mut usize,
) -> cl_int {
    // SAFETY: the caller's contract, forwarded.
    unsafe {
        object_info(
            "clGetContextInfo",
            context,
            ObjectKind::Context,
            CL_INVALID_CONTEXT,
            InfoKind::Context,
            0,
            param_name,
            param_value_size,
            param_value,
            param_value_size_ret,
        )
    }
}

/// # Safety
/// `image_formats` is NULL or holds `num_entries` writable entries;
/// `num_image_formats` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn clGetSupportedImageFormats(
    context: cl_context,
    flags: cl_mem_flags,
    image_type: cl_mem_object_type,
    num_entries: cl_uint,
    image_formats: *mut cl_image_format,
    num_image_formats: *mut cl_uint,
) -> cl_int {
    status("clGetSupportedImageFormats", || {
        let ctx = objects::get(context, ObjectKind::Context).ok_or(CL_INVALID_CONTEXT)?;
        if num_entries == 0 && !image_formats.is_null() {
            return Err(CL_INVALID_VALUE);
        }
        let req = Request::ClGetImageFormats(GetImageFormats {
            context: ctx.handle,
            flags,
            image_type,
        });
        let formats = match call(req, &[], &mut [])? {
            Response::ClGetImageFormats(f) => f.formats,
            other => return Err(unexpected(&other)),
        };
        let n = cl_uint::try_from(formats.len()).unwrap_or(cl_uint::MAX);
        // SAFETY: NULL or writable, the caller's contract.
        unsafe { write_opt(num_image_formats, n) };
        if !image_formats.is_null() {
            for (i, (order, ty)) in formats.iter().take(num_entries as usize).enumerate() {
                let f = cl_image_format {
                    image_channel_order: *order,
                    image_channel_data_type: *ty,
                };
                // SAFETY: `i < num_entries`, within the caller's array.
                unsafe { image_formats.add(i).write_unaligned(f) };
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_pointers_become_handles() {
        let p = objects::platform(0x6000_0001);
        let props = [CL_CONTEXT_PLATFORM, p.ptr as isize, 0x1085, 1, 0];
        let (wire, plat) = translate_properties(&props).unwrap_or_default();
        assert_eq!(
            wire,
            vec![CL_CONTEXT_PLATFORM as u64, 0x6000_0001, 0x1085, 1, 0]
        );
        assert_eq!(plat.map(|p| p.ptr), Some(p.ptr));
        let bad = [CL_CONTEXT_PLATFORM, 0x1234, 0];
        assert_eq!(translate_properties(&bad).err(), Some(CL_INVALID_PLATFORM));
        assert_eq!(translate_properties(&[]).map(|r| r.0), Ok(vec![]));
    }
}
