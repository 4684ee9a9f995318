//! Sub-devices, device reference counts, and device timers.
//!
//! Sub-devices get handles from the daemon, as devices do; unlike root
//! devices they are reference counted, and their last release goes to
//! the daemon.

use opencl_sys::{
    cl_device_id, cl_device_partition_property, cl_int, cl_uint, cl_ulong, CL_INVALID_DEVICE,
    CL_INVALID_VALUE,
};
use protocol::limits::MAX_PROPERTIES;
use protocol::opencl::{CreateSubDevices, GetDeviceTimer, ObjectKind, Release};
use protocol::{Request, Response};

use super::objects;
use super::{call, post, release_entry, retain_entry, status, unexpected};
use crate::ffi::write_opt;

/// `CL_DEVICE_PARTITION_BY_COUNTS`
const BY_COUNTS: isize = 0x1087;

/// Reads a partition property list: one property and its value, or
/// `CL_DEVICE_PARTITION_BY_COUNTS` and counts up to the list's end marker
/// (0), then the terminating 0. `None` past [`MAX_PROPERTIES`] entries.
///
/// # Safety
/// `p` points to such a list.
unsafe fn partition_list(p: *const cl_device_partition_property) -> Option<Vec<isize>> {
    let mut out = Vec::new();
    let mut read = |i: usize| -> Option<isize> {
        if i >= MAX_PROPERTIES {
            return None;
        }
        // SAFETY: the list goes on to its terminator, and reading stops
        // there (the caller's contract).
        let v = unsafe { p.add(i).read_unaligned() };
        out.push(v);
        Some(v)
    };
    match read(0)? {
        0 => {}
        BY_COUNTS => {
            let mut i = 1;
            while read(i)? != 0 {
                i += 1;
            }
            read(i + 1)?;
        }
        _ => {
            read(1)?;
            read(2)?;
        }
    }
    Some(out)
}

/// # Safety
/// `properties` is a partition property list; `out_devices` is NULL or holds
/// `num_devices` writable entries; `num_devices_ret` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn clCreateSubDevices(
    in_device: cl_device_id,
    properties: *const cl_device_partition_property,
    num_devices: cl_uint,
    out_devices: *mut cl_device_id,
    num_devices_ret: *mut cl_uint,
) -> cl_int {
    status("clCreateSubDevices", || {
        let dev = objects::get(in_device, ObjectKind::Device).ok_or(CL_INVALID_DEVICE)?;
        if properties.is_null() {
            return Err(CL_INVALID_VALUE);
        }
        // SAFETY: the caller's contract.
        let props = unsafe { partition_list(properties) }.ok_or(CL_INVALID_VALUE)?;
        let count_only = out_devices.is_null();
        let req = Request::ClCreateSubDevices(CreateSubDevices {
            device: dev.handle,
            properties: props.iter().map(|&p| p as u64).collect(),
            count_only,
        });
        let made = match call(req, &[], &mut [])? {
            Response::ClCreateSubDevices(s) => s,
            other => return Err(unexpected(&other)),
        };
        if !count_only && (num_devices as usize) < made.handles.len() {
            // The runtime made them; the program asked for fewer.
            for h in made.handles {
                let _ = post(
                    Request::ClRelease(Release {
                        kind: ObjectKind::Device,
                        object: h,
                    }),
                    &[],
                );
            }
            return Err(CL_INVALID_VALUE);
        }
        for (i, h) in made.handles.iter().enumerate() {
            let sub = objects::sub_device(*h, &dev);
            // SAFETY: `i < num_devices`, within the caller's array.
            unsafe { out_devices.add(i).write(sub.cl_ptr()) };
        }
        // SAFETY: NULL or writable, the caller's contract.
        unsafe { write_opt(num_devices_ret, made.count) };
        Ok(())
    })
}

/// Counts references of a sub-device; a root device is always valid and
/// not counted.
#[no_mangle]
pub extern "C" fn clRetainDevice(device: cl_device_id) -> cl_int {
    retain_entry(
        "clRetainDevice",
        device,
        ObjectKind::Device,
        CL_INVALID_DEVICE,
    )
}

/// The last release of a sub-device goes to the daemon; a root device's
/// does nothing.
#[no_mangle]
pub extern "C" fn clReleaseDevice(device: cl_device_id) -> cl_int {
    release_entry(
        "clReleaseDevice",
        device,
        ObjectKind::Device,
        CL_INVALID_DEVICE,
    )
}

fn timer(device: cl_device_id, host_only: bool) -> Result<(cl_ulong, cl_ulong), cl_int> {
    let dev = objects::get(device, ObjectKind::Device).ok_or(CL_INVALID_DEVICE)?;
    let req = Request::ClGetDeviceTimer(GetDeviceTimer {
        device: dev.handle,
        host_only,
    });
    match call(req, &[], &mut [])? {
        Response::ClGetDeviceTimer(t) => Ok((t.device, t.host)),
        other => Err(unexpected(&other)),
    }
}

/// # Safety
/// `device_timestamp` and `host_timestamp` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn clGetDeviceAndHostTimer(
    device: cl_device_id,
    device_timestamp: *mut cl_ulong,
    host_timestamp: *mut cl_ulong,
) -> cl_int {
    status("clGetDeviceAndHostTimer", || {
        if device_timestamp.is_null() || host_timestamp.is_null() {
            objects::get(device, ObjectKind::Device).ok_or(CL_INVALID_DEVICE)?;
            return Err(CL_INVALID_VALUE);
        }
        let (d, h) = timer(device, false)?;
        // SAFETY: both non-NULL and writable, the caller's contract.
        unsafe {
            device_timestamp.write(d);
            host_timestamp.write(h);
        }
        Ok(())
    })
}

/// # Safety
/// `host_timestamp` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn clGetHostTimer(
    device: cl_device_id,
    host_timestamp: *mut cl_ulong,
) -> cl_int {
    status("clGetHostTimer", || {
        if host_timestamp.is_null() {
            objects::get(device, ObjectKind::Device).ok_or(CL_INVALID_DEVICE)?;
            return Err(CL_INVALID_VALUE);
        }
        let (_, h) = timer(device, true)?;
        // SAFETY: non-NULL and writable, the caller's contract.
        unsafe { host_timestamp.write(h) };
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_lists_read_to_their_end() {
        let equally = [0x1086isize, 1, 0, 99];
        // SAFETY: live, terminated lists.
        unsafe {
            assert_eq!(partition_list(equally.as_ptr()), Some(vec![0x1086, 1, 0]));
            let counts = [BY_COUNTS, 1, 0, 0, 99];
            assert_eq!(
                partition_list(counts.as_ptr()),
                Some(vec![BY_COUNTS, 1, 0, 0])
            );
            let counts = [BY_COUNTS, 1, 2, 3, 0, 0];
            assert_eq!(partition_list(counts.as_ptr()).map(|v| v.len()), Some(6));
            let endless = [BY_COUNTS; MAX_PROPERTIES + 1];
            assert_eq!(partition_list(endless.as_ptr()), None);
        }
    }
}
