//! `clGet*Info` plumbing shared by every object kind.
//!
//! Handle-valued parameters ([`protocol::opencl::is_handle_valued`]) and
//! reference counts are answered from the shim's own records; everything
//! else is asked of the daemon with the caller's `param_value_size` (0 when
//! `param_value` is NULL). Platform and device info is immutable and cached.

use std::ffi::c_void;
use std::sync::Arc;

use opencl_sys::{cl_int, cl_uint, CL_INVALID_VALUE, CL_SUCCESS};
use protocol::limits::MAX_INFO_LEN;
use protocol::opencl::{is_handle_valued, GetInfo, Handle, InfoKind, ObjectKind};
use protocol::{Request, Response};

use super::objects::{self, Data, InfoCache, Record};
use super::{call, cl_error, client, unexpected};
use crate::client::CallError;
use crate::ffi::write_opt;

/// Turns a status code into a `Result`.
pub(crate) fn check(rc: cl_int) -> Result<(), cl_int> {
    if rc == CL_SUCCESS {
        Ok(())
    } else {
        Err(rc)
    }
}

/// Copies a complete value out as a `clGet*Info` answer.
///
/// # Safety
/// `value` is NULL or holds `size` writable bytes; `size_ret` is NULL or
/// writable.
pub(crate) unsafe fn answer(
    bytes: &[u8],
    size: usize,
    value: *mut c_void,
    size_ret: *mut usize,
) -> Result<(), cl_int> {
    if !value.is_null() {
        if size < bytes.len() {
            return Err(CL_INVALID_VALUE);
        }
        // SAFETY: `value` holds at least `size >= bytes.len()` writable
        // bytes (caller's contract) and cannot overlap our own buffer.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), value.cast::<u8>(), bytes.len()) };
    }
    // SAFETY: the caller's contract.
    unsafe { write_opt(size_ret, bytes.len()) };
    Ok(())
}

/// Asks the daemon, passing the caller's buffer size through.
///
/// # Safety
/// As [`answer`].
pub(crate) unsafe fn remote(
    kind: InfoKind,
    object: Handle,
    extra: u64,
    param: u32,
    size: usize,
    value: *mut c_void,
    size_ret: *mut usize,
) -> Result<(), cl_int> {
    let asked = if value.is_null() { 0 } else { size as u64 };
    let req = Request::ClGetInfo(GetInfo {
        kind,
        object,
        extra,
        param,
        size: asked.min(MAX_INFO_LEN),
    });
    let v = match call(req, &[], &mut [])? {
        Response::ClGetInfo(v) => v,
        other => return Err(unexpected(&other)),
    };
    if !value.is_null() {
        let n = v.value.len().min(size);
        // SAFETY: `value` holds `size >= n` writable bytes.
        unsafe { std::ptr::copy_nonoverlapping(v.value.as_ptr(), value.cast::<u8>(), n) };
    }
    // SAFETY: the caller's contract.
    unsafe { write_opt(size_ret, usize::try_from(v.size).unwrap_or(usize::MAX)) };
    Ok(())
}

/// Fetches a whole value (size first, then the value).
fn fetch_full(
    kind: InfoKind,
    object: Handle,
    extra: u64,
    param: u32,
) -> Result<Vec<u8>, CallError> {
    let client = client().map_err(CallError::Native)?;
    let ask = |size: u64| -> Result<protocol::opencl::InfoValue, CallError> {
        let req = Request::ClGetInfo(GetInfo {
            kind,
            object,
            extra,
            param,
            size,
        });
        match client.call(req, &[], &mut [])? {
            Response::ClGetInfo(v) => Ok(v),
            _ => Err(CallError::Protocol(protocol::ProtocolError::Malformed)),
        }
    };
    let first = ask(0)?;
    if first.size == 0 {
        return Ok(vec![]);
    }
    let mut v = ask(first.size.min(MAX_INFO_LEN))?.value;
    v.truncate(usize::try_from(first.size).unwrap_or(usize::MAX));
    Ok(v)
}

/// A whole value, fetched from the daemon (not cached).
pub(crate) fn remote_value(
    kind: InfoKind,
    object: Handle,
    extra: u64,
    param: u32,
) -> Result<Vec<u8>, cl_int> {
    fetch_full(kind, object, extra, param).map_err(|e| cl_error(&e))
}

/// A whole immutable value from `cache`, filling it from the daemon on a
/// miss. Native errors are cached; transport failures are not.
pub(crate) fn cached_value(
    cache: &InfoCache,
    kind: InfoKind,
    object: Handle,
    extra: u64,
    param: u32,
) -> Result<Vec<u8>, cl_int> {
    if let Some(v) = cache.get(param, extra) {
        return v;
    }
    match fetch_full(kind, object, extra, param) {
        Ok(v) => {
            cache.put(param, extra, Ok(v.clone()));
            Ok(v)
        }
        Err(CallError::Native(c)) if c < 0 => {
            cache.put(param, extra, Err(c));
            Err(c)
        }
        Err(e) => Err(cl_error(&e)),
    }
}

fn ptr_bytes(ptrs: &[usize]) -> Vec<u8> {
    ptrs.iter().flat_map(|p| p.to_ne_bytes()).collect()
}

fn one_ptr(r: Option<&Arc<Record>>) -> Vec<u8> {
    ptr_bytes(&[r.map_or(0, |r| r.ptr)])
}

/// Reference-count parameters, answered from the shim's counts.
fn is_ref_count(kind: InfoKind, param: u32) -> bool {
    matches!(
        (kind, param),
        (InfoKind::Context, 0x1080)
            | (InfoKind::CommandQueue, 0x1092)
            | (InfoKind::MemObject, 0x1105)
            | (InfoKind::Program, 0x1160)
            | (InfoKind::Kernel, 0x1192)
            | (InfoKind::Event, 0x11D2)
            | (InfoKind::Sampler, 0x1150)
    )
}

/// The value of a parameter the shim answers itself, if `param` is one.
pub(crate) fn local_info(rec: &Record, kind: InfoKind, param: u32, refs: u32) -> Option<Vec<u8>> {
    if is_ref_count(kind, param) {
        return Some((refs as cl_uint).to_ne_bytes().to_vec());
    }
    let v = match (&rec.data, param) {
        (Data::Device { platform, .. }, 0x1031) => one_ptr(Some(platform)),
        (Data::Device { parent, .. }, 0x1042) => one_ptr(parent.as_ref()),
        // A sub-device's count is the program's; a root device's is the
        // runtime's (always 1), asked below.
        (
            Data::Device {
                parent: Some(_), ..
            },
            0x1047,
        ) => (refs as cl_uint).to_ne_bytes().to_vec(),
        (Data::Context { devices, .. }, 0x1081) => {
            ptr_bytes(&devices.iter().map(|d| d.ptr).collect::<Vec<_>>())
        }
        (Data::Context { properties, .. }, 0x1082) => {
            properties.iter().flat_map(|p| p.to_ne_bytes()).collect()
        }
        (Data::Queue { context, .. }, 0x1090) => one_ptr(Some(context)),
        (Data::Queue { device, .. }, 0x1091) => one_ptr(Some(device)),
        (Data::Queue { .. }, 0x1095) => one_ptr(None),
        (Data::Mem { host_ptr, .. }, 0x1103) => ptr_bytes(&[*host_ptr]),
        (Data::Mem { context, .. }, 0x1106) => one_ptr(Some(context)),
        (Data::Mem { parent, .. }, 0x1107) => one_ptr(parent.as_ref()),
        // Mappings are the shim's own; the runtime never sees them.
        (Data::Mem { maps, .. }, 0x1104) if kind == InfoKind::MemObject => {
            (objects::lock(maps).len() as cl_uint)
                .to_ne_bytes()
                .to_vec()
        }
        (Data::Mem { parent, .. }, 0x1118) if kind == InfoKind::Image => {
            let buffer = parent
                .as_ref()
                .filter(|p| matches!(&p.data, Data::Mem { image: None, .. }));
            one_ptr(buffer)
        }
        (Data::Sampler { context }, 0x1151) => one_ptr(Some(context)),
        (Data::Program { context, .. }, 0x1161) => one_ptr(Some(context)),
        (Data::Program { devices, .. }, 0x1163) => {
            ptr_bytes(&devices.iter().map(|d| d.ptr).collect::<Vec<_>>())
        }
        (Data::Kernel { context, .. }, 0x1193) => one_ptr(Some(context)),
        (Data::Kernel { program, .. }, 0x1194) => one_ptr(Some(program)),
        (Data::Event { queue, .. }, 0x11D0) => one_ptr(queue.as_ref()),
        (Data::Event { context, .. }, 0x11D4) => one_ptr(Some(context)),
        _ => return None,
    };
    Some(v)
}

/// Answers one query on a live record: locally, from a cache, or remotely.
///
/// # Safety
/// As [`answer`].
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn query(
    rec: &Record,
    kind: InfoKind,
    extra: u64,
    param: u32,
    size: usize,
    value: *mut c_void,
    size_ret: *mut usize,
) -> Result<(), cl_int> {
    if let Some(bytes) = local_info(rec, kind, param, objects::ref_count(rec.ptr)) {
        // SAFETY: the caller's contract.
        return unsafe { answer(&bytes, size, value, size_ret) };
    }
    if is_handle_valued(kind, param) {
        return Err(CL_INVALID_VALUE);
    }
    match &rec.data {
        Data::Platform { cache } | Data::Device { cache, .. } if param != 0x1047 => {
            // 0x1047 is the device's reference count, its one mutable
            // parameter.
            let v = cached_value(cache, kind, rec.handle, extra, param)?;
            // SAFETY: the caller's contract.
            unsafe { answer(&v, size, value, size_ret) }
        }
        // SAFETY: the caller's contract.
        _ => unsafe { remote(kind, rec.handle, extra, param, size, value, size_ret) },
    }
}

/// A whole `clGet*Info` entry point for objects of one kind.
///
/// # Safety
/// As [`answer`].
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn object_info(
    entry: &'static str,
    ptr: *const c_void,
    obj: ObjectKind,
    invalid: cl_int,
    kind: InfoKind,
    extra: u64,
    param: u32,
    size: usize,
    value: *mut c_void,
    size_ret: *mut usize,
) -> cl_int {
    super::status(entry, || {
        let rec = objects::get(ptr, obj).ok_or(invalid)?;
        // SAFETY: the caller's contract.
        unsafe { query(&rec, kind, extra, param, size, value, size_ret) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::opencl::objects::tests::test_context;

    #[test]
    fn handle_valued_params_are_answered_from_records() {
        let ctx = test_context();
        let Data::Context { devices, .. } = &ctx.data else {
            panic!("not a context");
        };
        let dev = devices[0].clone();
        let q = objects::register(
            ObjectKind::CommandQueue,
            0x7200_0001,
            Data::Queue {
                context: ctx.clone(),
                device: dev.clone(),
                out_of_order: false,
            },
        );
        let got = local_info(&q, InfoKind::CommandQueue, 0x1090, 1);
        assert_eq!(got, Some(ctx.ptr.to_ne_bytes().to_vec()));
        let got = local_info(&q, InfoKind::CommandQueue, 0x1091, 1);
        assert_eq!(got, Some(dev.ptr.to_ne_bytes().to_vec()));
        let got = local_info(&ctx, InfoKind::Context, 0x1081, 1);
        assert_eq!(got, Some(dev.ptr.to_ne_bytes().to_vec()));
        let Data::Device { platform, .. } = &dev.data else {
            panic!("not a device");
        };
        let got = local_info(&dev, InfoKind::Device, 0x1031, 1);
        assert_eq!(got, Some(platform.ptr.to_ne_bytes().to_vec()));
        assert_eq!(
            local_info(&q, InfoKind::CommandQueue, 0x1092, 3),
            Some(3u32.to_ne_bytes().to_vec())
        );
        // Everything else goes to the daemon.
        assert_eq!(local_info(&q, InfoKind::CommandQueue, 0x1093, 1), None);
        assert_eq!(local_info(&dev, InfoKind::Device, 0x1000, 1), None);
        // Every handle-valued parameter of these kinds has a local answer.
        for p in [0x1090, 0x1091, 0x1095] {
            assert!(is_handle_valued(InfoKind::CommandQueue, p));
            assert!(local_info(&q, InfoKind::CommandQueue, p, 1).is_some());
        }
    }

    #[test]
    fn answers_check_the_callers_buffer() {
        let mut buf = [0u8; 4];
        let mut ret = 0usize;
        // SAFETY: `buf` and `ret` are live and writable.
        unsafe {
            assert_eq!(
                answer(b"abcdef", 4, buf.as_mut_ptr().cast(), &mut ret),
                Err(CL_INVALID_VALUE)
            );
            assert_eq!(answer(b"abc", 4, buf.as_mut_ptr().cast(), &mut ret), Ok(()));
            assert_eq!(&buf[..3], b"abc");
            assert_eq!(ret, 3);
            assert_eq!(answer(b"abcdef", 0, std::ptr::null_mut(), &mut ret), Ok(()));
            assert_eq!(ret, 6);
        }
    }
}
