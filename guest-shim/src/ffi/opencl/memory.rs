//! Buffers and sub-buffers. Initial data (`CL_MEM_COPY_HOST_PTR`,
//! `CL_MEM_USE_HOST_PTR`) travels as the request's one in-bulk segment.

use std::ffi::c_void;
use std::sync::{Arc, Mutex};

use opencl_sys::{
    cl_buffer_create_type, cl_buffer_region, cl_context, cl_int, cl_mem, cl_mem_flags, cl_mem_info,
    cl_mem_properties, CL_BUFFER_CREATE_TYPE_REGION, CL_INVALID_BUFFER_SIZE, CL_INVALID_CONTEXT,
    CL_INVALID_HOST_PTR, CL_INVALID_MEM_OBJECT, CL_INVALID_PROPERTY, CL_INVALID_VALUE,
    CL_MEM_ALLOC_HOST_PTR, CL_MEM_COPY_HOST_PTR, CL_MEM_USE_HOST_PTR,
};
use protocol::limits::MAX_TRANSFER_LEN;
use protocol::opencl::{
    CreateBuffer, CreateCommandQueue, CreateSubBuffer, EnqueueCommon, EnqueueWriteBuffer, Handle,
    InfoKind, ObjectKind, Release,
};
use protocol::{Request, Response};

use super::info::object_info;
use super::objects::{self, Data, Record};
use super::{call, chunk_size, client, creating, post, release_entry, retain_entry, unexpected};
use crate::ffi::slice_in;

/// Flags that say where a buffer's host memory comes from; a sub-buffer
/// inherits them.
const HOST_FLAGS: u64 = CL_MEM_USE_HOST_PTR | CL_MEM_ALLOC_HOST_PTR | CL_MEM_COPY_HOST_PTR;

/// The buffer a `cl_mem` names, with its size.
pub(crate) fn get_buffer(m: cl_mem) -> Result<(Arc<Record>, u64), cl_int> {
    let r = objects::get(m, ObjectKind::MemObject).ok_or(CL_INVALID_MEM_OBJECT)?;
    let size = match &r.data {
        Data::Mem {
            size, image: None, ..
        } => *size,
        _ => return Err(CL_INVALID_MEM_OBJECT),
    };
    Ok((r, size))
}

/// Checks that `[offset, offset + len)` lies inside a buffer of `size`.
pub(crate) fn in_bounds(offset: usize, len: usize, size: u64) -> Result<(), cl_int> {
    let end = (offset as u64)
        .checked_add(len as u64)
        .ok_or(CL_INVALID_VALUE)?;
    if end > size {
        return Err(CL_INVALID_VALUE);
    }
    Ok(())
}

/// Checks the host-pointer rules of `clCreateBuffer`.
pub(crate) fn check_host_ptr(flags: u64, host_ptr_is_null: bool) -> Result<bool, cl_int> {
    let wants_data = flags & (CL_MEM_COPY_HOST_PTR | CL_MEM_USE_HOST_PTR) != 0;
    if wants_data == host_ptr_is_null {
        return Err(CL_INVALID_HOST_PTR);
    }
    if flags & CL_MEM_USE_HOST_PTR != 0
        && flags & (CL_MEM_COPY_HOST_PTR | CL_MEM_ALLOC_HOST_PTR) != 0
    {
        return Err(CL_INVALID_VALUE);
    }
    Ok(wants_data)
}

/// Posts the `ClRelease` of an object the program never saw.
pub(crate) fn send_releases_of(kind: ObjectKind, object: Handle) {
    // A failure here leaves the object to the session's cleanup.
    let _ = post(Request::ClRelease(Release { kind, object }), &[]);
}

/// A queue the program never sees, on the context's first device, for
/// uploading a new object's initial contents; the caller releases it
/// with [`send_releases_of`].
pub(crate) fn private_queue(ctx: &Record) -> Result<Handle, cl_int> {
    let Data::Context { devices, .. } = &ctx.data else {
        return Err(CL_INVALID_CONTEXT);
    };
    let dev = devices.first().ok_or(CL_INVALID_CONTEXT)?;
    let queue = client()?.new_handle();
    let req = Request::ClCreateCommandQueue(CreateCommandQueue {
        id: queue,
        context: ctx.handle,
        device: dev.handle,
        properties: vec![],
    });
    call(req, &[], &mut [])?;
    Ok(queue)
}

/// Writes a new buffer's initial contents through a private queue, one
/// chunk per call.
fn upload(ctx: &Record, buffer: Handle, data: &[u8]) -> Result<(), cl_int> {
    let queue = private_queue(ctx)?;
    let chunk = chunk_size();
    let mut result = Ok(());
    for (i, piece) in data.chunks(chunk).enumerate() {
        let req = Request::ClEnqueueWriteBuffer(EnqueueWriteBuffer {
            common: EnqueueCommon {
                queue,
                wait: vec![],
                event: None,
            },
            buffer,
            offset: (i * chunk) as u64,
            size: piece.len() as u64,
        });
        if let Err(e) = call(req, &[piece], &mut []) {
            result = Err(e);
            break;
        }
    }
    send_releases_of(ObjectKind::CommandQueue, queue);
    result
}

/// Whether a new memory object's initial data (`len` bytes, when it has
/// any) travels with its creation, and the flags the daemon is sent: data
/// larger than one call carries is uploaded after creation instead, and
/// the object is then created without the host-pointer flags.
pub(super) fn initial_data(
    flags: cl_mem_flags,
    with_data: bool,
    len: usize,
) -> (bool, cl_mem_flags) {
    let inline = with_data && len <= chunk_size();
    let wire_flags = if with_data && !inline {
        flags & !(CL_MEM_COPY_HOST_PTR | CL_MEM_USE_HOST_PTR)
    } else {
        flags
    };
    (inline, wire_flags)
}

/// # Safety
/// When `flags` has `CL_MEM_COPY_HOST_PTR` or `CL_MEM_USE_HOST_PTR`,
/// `host_ptr` holds `size` readable bytes; `errcode_ret` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn clCreateBuffer(
    context: cl_context,
    flags: cl_mem_flags,
    size: usize,
    host_ptr: *mut c_void,
    errcode_ret: *mut cl_int,
) -> cl_mem {
    let body = || {
        let ctx = objects::get(context, ObjectKind::Context).ok_or(CL_INVALID_CONTEXT)?;
        if size == 0 || size as u64 > MAX_TRANSFER_LEN {
            return Err(CL_INVALID_BUFFER_SIZE);
        }
        let with_data = check_host_ptr(flags, host_ptr.is_null())?;
        let data: &[u8] = if with_data {
            // SAFETY: the caller guarantees `size` readable bytes.
            unsafe { slice_in(host_ptr.cast::<u8>().cast_const(), size) }
                .ok_or(CL_INVALID_HOST_PTR)?
        } else {
            &[]
        };
        // Initial data larger than one call can carry is uploaded after
        // creation instead.
        let (inline, wire_flags) = initial_data(flags, with_data, size);
        let id = client()?.new_handle();
        let req = Request::ClCreateBuffer(CreateBuffer {
            id,
            context: ctx.handle,
            flags: wire_flags,
            size: size as u64,
        });
        let bulk: &[&[u8]] = if inline { &[data] } else { &[] };
        match call(req, bulk, &mut [])? {
            Response::ClCreateBuffer(_) => {}
            other => return Err(unexpected(&other)),
        }
        if with_data && !inline {
            if let Err(e) = upload(&ctx, id, data) {
                send_releases_of(ObjectKind::MemObject, id);
                return Err(e);
            }
        }
        let host_ptr = if flags & CL_MEM_USE_HOST_PTR != 0 {
            host_ptr as usize
        } else {
            0
        };
        Ok(objects::register(
            ObjectKind::MemObject,
            id,
            Data::Mem {
                context: ctx,
                parent: None,
                flags,
                size: size as u64,
                host_ptr,
                maps: Mutex::new(Vec::new()),
                image: None,
                destructors: Default::default(),
            },
        )
        .cl_ptr())
    };
    // SAFETY: the caller's contract.
    unsafe { creating("clCreateBuffer", errcode_ret, body) }
}

/// `clCreateBuffer` with an (empty) property list.
///
/// # Safety
/// As [`clCreateBuffer`]; `properties` is NULL or zero-terminated.
#[no_mangle]
pub unsafe extern "C" fn clCreateBufferWithProperties(
    context: cl_context,
    properties: *const cl_mem_properties,
    flags: cl_mem_flags,
    size: usize,
    host_ptr: *mut c_void,
    errcode_ret: *mut cl_int,
) -> cl_mem {
    // SAFETY: a non-NULL list has at least its terminator.
    if !properties.is_null() && unsafe { properties.read_unaligned() } != 0 {
        // SAFETY: the caller's contract.
        unsafe { crate::ffi::write_opt(errcode_ret, CL_INVALID_PROPERTY) };
        return std::ptr::null_mut();
    }
    // SAFETY: the caller's contract, forwarded.
    unsafe { clCreateBuffer(context, flags, size, host_ptr, errcode_ret) }
}

/// # Safety
/// `buffer_create_info` points to a `cl_buffer_region`; `errcode_ret` is
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn clCreateSubBuffer(
    buffer: cl_mem,
    flags: cl_mem_flags,
    buffer_create_type: cl_buffer_create_type,
    buffer_create_info: *const c_void,
    errcode_ret: *mut cl_int,
) -> cl_mem {
    let body = || {
        let (parent, parent_size) = get_buffer(buffer)?;
        let Data::Mem {
            context,
            parent: grandparent,
            flags: parent_flags,
            host_ptr,
            ..
        } = &parent.data
        else {
            return Err(CL_INVALID_MEM_OBJECT);
        };
        if grandparent.is_some() {
            return Err(CL_INVALID_MEM_OBJECT);
        }
        if buffer_create_type != CL_BUFFER_CREATE_TYPE_REGION
            || buffer_create_info.is_null()
            || flags & HOST_FLAGS != 0
        {
            return Err(CL_INVALID_VALUE);
        }
        // SAFETY: non-null, and the caller passes a `cl_buffer_region`.
        let region = unsafe {
            buffer_create_info
                .cast::<cl_buffer_region>()
                .read_unaligned()
        };
        if region.size == 0 {
            return Err(CL_INVALID_BUFFER_SIZE);
        }
        in_bounds(region.origin, region.size, parent_size)?;
        let id = client()?.new_handle();
        let req = Request::ClCreateSubBuffer(CreateSubBuffer {
            id,
            buffer: parent.handle,
            flags,
            origin: region.origin as u64,
            size: region.size as u64,
        });
        match call(req, &[], &mut [])? {
            Response::ClCreateSubBuffer(_) => {}
            other => return Err(unexpected(&other)),
        }
        let host_ptr = if *host_ptr == 0 {
            0
        } else {
            host_ptr.wrapping_add(region.origin)
        };
        Ok(objects::register(
            ObjectKind::MemObject,
            id,
            Data::Mem {
                context: context.clone(),
                parent: Some(parent.clone()),
                flags: flags | (parent_flags & HOST_FLAGS),
                size: region.size as u64,
                host_ptr,
                maps: Mutex::new(Vec::new()),
                image: None,
                destructors: Default::default(),
            },
        )
        .cl_ptr())
    };
    // SAFETY: the caller's contract.
    unsafe { creating("clCreateSubBuffer", errcode_ret, body) }
}

#[no_mangle]
pub extern "C" fn clRetainMemObject(memobj: cl_mem) -> cl_int {
    retain_entry(
        "clRetainMemObject",
        memobj,
        ObjectKind::MemObject,
        CL_INVALID_MEM_OBJECT,
    )
}

#[no_mangle]
pub extern "C" fn clReleaseMemObject(memobj: cl_mem) -> cl_int {
    release_entry(
        "clReleaseMemObject",
        memobj,
        ObjectKind::MemObject,
        CL_INVALID_MEM_OBJECT,
    )
}

/// # Safety
/// `param_value` is NULL or holds `param_value_size` writable bytes;
/// `param_value_size_ret` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn clGetMemObjectInfo(
    memobj: cl_mem,
    param_name: cl_mem_info,
    param_value_size: usize,
    param_value: *mut c_void,
    param_value_size_ret: *mut usize,
) -> cl_int {
    // SAFETY: the caller's contract, forwarded.
    unsafe {
        object_info(
            "clGetMemObjectInfo",
            memobj,
            ObjectKind::MemObject,
            CL_INVALID_MEM_OBJECT,
            InfoKind::MemObject,
            0,
            param_name,
            param_value_size,
            param_value,
            param_value_size_ret,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_pointer_rules() {
        assert_eq!(check_host_ptr(0, true), Ok(false));
        assert_eq!(check_host_ptr(0, false), Err(CL_INVALID_HOST_PTR));
        assert_eq!(check_host_ptr(CL_MEM_COPY_HOST_PTR, false), Ok(true));
        assert_eq!(
            check_host_ptr(CL_MEM_COPY_HOST_PTR, true),
            Err(CL_INVALID_HOST_PTR)
        );
        assert_eq!(
            check_host_ptr(CL_MEM_USE_HOST_PTR | CL_MEM_COPY_HOST_PTR, false),
            Err(CL_INVALID_VALUE)
        );
    }

    #[test]
    fn bounds_are_checked_without_overflow() {
        assert_eq!(in_bounds(0, 16, 16), Ok(()));
        assert_eq!(in_bounds(8, 9, 16), Err(CL_INVALID_VALUE));
        assert_eq!(in_bounds(usize::MAX, 2, 16), Err(CL_INVALID_VALUE));
    }
}
