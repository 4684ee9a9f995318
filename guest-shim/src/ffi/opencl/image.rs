//! Images: creation (with host data inline, or uploaded after creation
//! when larger than one call carries), info, and the commands on them.
//!
//! Every image command runs synchronously, so its errors are its own
//! (a non-blocking write is done when its call returns, which OpenCL
//! allows). Host transfers are laid out in elements of the size the
//! runtime reported at creation, and cut into pieces ([`super::boxes`]).

use std::ffi::c_void;
use std::sync::{Arc, Mutex};

use opencl_sys::{
    cl_bool, cl_command_queue, cl_context, cl_event, cl_image_desc, cl_image_format, cl_image_info,
    cl_int, cl_mem, cl_mem_flags, cl_mem_properties, cl_uint, CL_INVALID_CONTEXT,
    CL_INVALID_IMAGE_DESCRIPTOR, CL_INVALID_IMAGE_FORMAT_DESCRIPTOR, CL_INVALID_MEM_OBJECT,
    CL_INVALID_VALUE, CL_MEM_USE_HOST_PTR,
};
use protocol::limits::MAX_PROPERTIES;
use protocol::opencl::layout::{
    element_size, image_box, region_inside, ByteBox, Triple, IMAGE1D_ARRAY, IMAGE2D, IMAGE3D,
};
use protocol::opencl::{
    CreateImage, EnqueueCommon, EnqueueCopyImage, EnqueueCopyImageBuffer, EnqueueFillImage, Handle,
    ImageDesc, ImageTransfer, InfoKind, ObjectKind, FILL_COLOR_LEN,
};
use protocol::{Request, Response};

use super::boxes::{transfer, BoxPiece, Host};
use super::enqueue::{begin, copy_between, same_context, sync_command};
use super::event::{event_handle, publish};
use super::info::object_info;
use super::memory::{check_host_ptr, get_buffer, initial_data, private_queue, send_releases_of};
use super::objects::{self, Data, ImageShape, Record};
use super::rect::{add, triple};
use super::{call, client, creating, status, unexpected};
use crate::ffi::{bytes_out, property_list, slice_in};

/// The image a `cl_mem` names, with its shape.
pub(crate) fn get_image(m: cl_mem) -> Result<(Arc<Record>, ImageShape), cl_int> {
    let r = objects::get(m, ObjectKind::MemObject).ok_or(CL_INVALID_MEM_OBJECT)?;
    let shape = match &r.data {
        Data::Mem { image: Some(s), .. } => *s,
        _ => return Err(CL_INVALID_MEM_OBJECT),
    };
    Ok((r, shape))
}

/// The region coordinates of a piece of an image transfer, from its
/// place in the host box: a 1D array's images are the box's slices.
fn piece_origin(image_type: u32, origin: Triple, p: &BoxPiece, element: u64) -> Triple {
    let x = p.at[0] / element.max(1);
    let at = match image_type {
        IMAGE1D_ARRAY => [x, p.at[2], 0],
        _ => [x, p.at[1], p.at[2]],
    };
    add(origin, at)
}

/// The region of a piece, in the image's coordinates.
fn piece_region(image_type: u32, p: &BoxPiece, element: u64) -> Triple {
    let w = p.size.row_bytes / element.max(1);
    match image_type {
        IMAGE1D_ARRAY => [w, p.size.slices, 1],
        _ => [w, p.size.rows, p.size.slices],
    }
}

/// The host box of `region` of an image, and its explicit pitches, or
/// `CL_INVALID_VALUE`.
fn host_layout(
    shape: &ImageShape,
    origin: Triple,
    region: Triple,
    row_pitch: u64,
    slice_pitch: u64,
) -> Result<(ByteBox, (u64, u64), usize), cl_int> {
    if !region_inside(origin, region, shape.extent) {
        return Err(CL_INVALID_VALUE);
    }
    let b = image_box(shape.image_type, region, shape.element).ok_or(CL_INVALID_VALUE)?;
    let pitches = b.pitches(row_pitch, slice_pitch).ok_or(CL_INVALID_VALUE)?;
    let len = b.span(pitches.0, pitches.1).ok_or(CL_INVALID_VALUE)?;
    Ok((
        b,
        pitches,
        usize::try_from(len).map_err(|_| CL_INVALID_VALUE)?,
    ))
}

/// Reads (`Host::Read`) or writes an image region from or to host memory
/// laid out with `pitches` (the program's, 0 for tight), as one command
/// on `queue` (its handle, and whether it is out of order).
#[allow(clippy::too_many_arguments)]
pub(crate) fn image_transfer(
    queue: (Handle, bool),
    image: Handle,
    shape: &ImageShape,
    origin: Triple,
    region: Triple,
    pitches: (u64, u64),
    host: Host<'_>,
    wait: &[Handle],
    event: Option<Handle>,
) -> Result<(), cl_int> {
    let read = matches!(host, Host::Read(_));
    if region.contains(&0) {
        // An empty region moves nothing; the runtime judges it.
        let t = ImageTransfer {
            common: EnqueueCommon {
                queue: queue.0,
                wait: wait.to_vec(),
                event,
            },
            image,
            origin,
            region,
            row_pitch: pitches.0,
            slice_pitch: pitches.1,
        };
        let req = if read {
            Request::ClEnqueueReadImage(t)
        } else {
            Request::ClEnqueueWriteImage(t)
        };
        return call(req, &[], &mut []).map(|_| ());
    }
    let (b, explicit, _) = host_layout(shape, origin, region, pitches.0, pitches.1)?;
    let make = |p: &BoxPiece, common: EnqueueCommon| {
        let t = ImageTransfer {
            common,
            image,
            origin: piece_origin(shape.image_type, origin, p, shape.element),
            region: piece_region(shape.image_type, p, shape.element),
            row_pitch: explicit.0,
            slice_pitch: explicit.1,
        };
        if read {
            Request::ClEnqueueReadImage(t)
        } else {
            Request::ClEnqueueWriteImage(t)
        }
    };
    transfer(queue, b, explicit, shape.element, host, wait, event, make)
}

/// Writes a new image's host data through a private queue on the
/// context's first device (data too large to travel with the creation).
fn upload(ctx: &Record, image: Handle, shape: &ImageShape, data: &[u8]) -> Result<(), cl_int> {
    let queue = private_queue(ctx)?;
    let result = image_transfer(
        (queue, false),
        image,
        shape,
        [0; 3],
        shape.extent,
        shape.host_pitches,
        Host::Write(data),
        &[],
        None,
    );
    send_releases_of(ObjectKind::CommandQueue, queue);
    result
}

/// Creates an image from the caller's format and descriptor.
///
/// # Safety
/// `format` and `desc` are NULL or point to the structures; with
/// `CL_MEM_COPY_HOST_PTR` or `CL_MEM_USE_HOST_PTR`, `host_ptr` holds the
/// image's rows and slices with the descriptor's pitches.
unsafe fn create(
    context: cl_context,
    properties: Vec<u64>,
    flags: cl_mem_flags,
    format: *const cl_image_format,
    desc: *const cl_image_desc,
    host_ptr: *mut c_void,
) -> Result<*mut c_void, cl_int> {
    let ctx = objects::get(context, ObjectKind::Context).ok_or(CL_INVALID_CONTEXT)?;
    if format.is_null() {
        return Err(CL_INVALID_IMAGE_FORMAT_DESCRIPTOR);
    }
    if desc.is_null() {
        return Err(CL_INVALID_IMAGE_DESCRIPTOR);
    }
    // SAFETY: non-null, and the caller passes the structures.
    let (format, raw) = unsafe { (format.read_unaligned(), desc.read_unaligned()) };
    let backing = if raw.buffer.is_null() {
        None
    } else {
        Some(objects::get(raw.buffer, ObjectKind::MemObject).ok_or(CL_INVALID_IMAGE_DESCRIPTOR)?)
    };
    if backing
        .as_ref()
        .is_some_and(|b| b.context().is_none_or(|c| !Arc::ptr_eq(&c, &ctx)))
    {
        return Err(CL_INVALID_CONTEXT);
    }
    let desc = ImageDesc {
        image_type: raw.image_type,
        width: raw.image_width as u64,
        height: raw.image_height as u64,
        depth: raw.image_depth as u64,
        array_size: raw.image_array_size as u64,
        row_pitch: raw.image_row_pitch as u64,
        slice_pitch: raw.image_slice_pitch as u64,
        num_mip_levels: raw.num_mip_levels,
        num_samples: raw.num_samples,
        mem_object: backing.as_ref().map_or(0, |b| b.handle),
    };
    let order_type = (format.image_channel_order, format.image_channel_data_type);
    let with_data = check_host_ptr(flags, host_ptr.is_null())?;
    let data: &[u8] = if with_data {
        let e =
            element_size(order_type.0, order_type.1).ok_or(CL_INVALID_IMAGE_FORMAT_DESCRIPTOR)?;
        let len = desc.host_len(e).ok_or(CL_INVALID_IMAGE_DESCRIPTOR)?;
        let len = usize::try_from(len).map_err(|_| CL_INVALID_IMAGE_DESCRIPTOR)?;
        // SAFETY: the caller's contract: the host data has every row and
        // slice of the descriptor's pitches.
        unsafe { slice_in(host_ptr.cast::<u8>().cast_const(), len) }.ok_or(CL_INVALID_VALUE)?
    } else {
        &[]
    };
    let (inline, wire_flags) = initial_data(flags, with_data, data.len());
    let id = client()?.new_handle();
    let req = Request::ClCreateImage(CreateImage {
        id,
        context: ctx.handle,
        flags: wire_flags,
        format: order_type,
        desc: desc.clone(),
        properties,
    });
    let bulk: &[&[u8]] = if inline { &[data] } else { &[] };
    let element = match call(req, bulk, &mut [])? {
        Response::ClCreateImage(c) => c.element_size,
        other => return Err(unexpected(&other)),
    };
    let host_pitches = image_box(desc.image_type, desc.extent(), element)
        .and_then(|b| b.pitches(desc.row_pitch, desc.slice_pitch))
        .unwrap_or((0, 0));
    let shape = ImageShape {
        image_type: desc.image_type,
        extent: desc.extent(),
        element,
        host_pitches,
    };
    if with_data && !inline {
        if let Err(e) = upload(&ctx, id, &shape, data) {
            send_releases_of(ObjectKind::MemObject, id);
            return Err(e);
        }
    }
    let host_ptr = if flags & CL_MEM_USE_HOST_PTR != 0 {
        host_ptr as usize
    } else {
        0
    };
    let size = desc.host_len(element).unwrap_or(0);
    Ok(objects::register(
        ObjectKind::MemObject,
        id,
        Data::Mem {
            context: ctx,
            parent: backing,
            flags,
            size,
            host_ptr,
            maps: Mutex::new(Vec::new()),
            image: Some(shape),
            destructors: Default::default(),
        },
    )
    .cl_ptr())
}

/// # Safety
/// As [`create`]; `errcode_ret` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn clCreateImage(
    context: cl_context,
    flags: cl_mem_flags,
    image_format: *const cl_image_format,
    image_desc: *const cl_image_desc,
    host_ptr: *mut c_void,
    errcode_ret: *mut cl_int,
) -> cl_mem {
    // SAFETY: the caller's contract, forwarded.
    let body = || unsafe { create(context, vec![], flags, image_format, image_desc, host_ptr) };
    // SAFETY: the caller's contract.
    unsafe { creating("clCreateImage", errcode_ret, body) }
}

/// # Safety
/// As [`clCreateImage`]; `properties` is NULL or zero-terminated.
#[no_mangle]
pub unsafe extern "C" fn clCreateImageWithProperties(
    context: cl_context,
    properties: *const cl_mem_properties,
    flags: cl_mem_flags,
    image_format: *const cl_image_format,
    image_desc: *const cl_image_desc,
    host_ptr: *mut c_void,
    errcode_ret: *mut cl_int,
) -> cl_mem {
    let body = || {
        // SAFETY: the caller's contract.
        let props = unsafe { property_list(properties, MAX_PROPERTIES / 2) }
            .ok_or(opencl_sys::CL_INVALID_PROPERTY)?;
        // SAFETY: the caller's contract, forwarded.
        unsafe { create(context, props, flags, image_format, image_desc, host_ptr) }
    };
    // SAFETY: the caller's contract.
    unsafe { creating("clCreateImageWithProperties", errcode_ret, body) }
}

/// A descriptor of the OpenCL 1.1 entry points.
fn legacy_desc(image_type: u32, dims: [usize; 3], pitches: [usize; 2]) -> cl_image_desc {
    cl_image_desc {
        image_type,
        image_width: dims[0],
        image_height: dims[1],
        image_depth: dims[2],
        image_array_size: 0,
        image_row_pitch: pitches[0],
        image_slice_pitch: pitches[1],
        num_mip_levels: 0,
        num_samples: 0,
        buffer: std::ptr::null_mut(),
    }
}

/// # Safety
/// As [`clCreateImage`].
#[no_mangle]
pub unsafe extern "C" fn clCreateImage2D(
    context: cl_context,
    flags: cl_mem_flags,
    image_format: *const cl_image_format,
    image_width: usize,
    image_height: usize,
    image_row_pitch: usize,
    host_ptr: *mut c_void,
    errcode_ret: *mut cl_int,
) -> cl_mem {
    let desc = legacy_desc(
        IMAGE2D,
        [image_width, image_height, 0],
        [image_row_pitch, 0],
    );
    // SAFETY: `desc` is a live descriptor; the rest is forwarded.
    unsafe { clCreateImage(context, flags, image_format, &desc, host_ptr, errcode_ret) }
}

/// # Safety
/// As [`clCreateImage`].
#[no_mangle]
pub unsafe extern "C" fn clCreateImage3D(
    context: cl_context,
    flags: cl_mem_flags,
    image_format: *const cl_image_format,
    image_width: usize,
    image_height: usize,
    image_depth: usize,
    image_row_pitch: usize,
    image_slice_pitch: usize,
    host_ptr: *mut c_void,
    errcode_ret: *mut cl_int,
) -> cl_mem {
    let desc = legacy_desc(
        IMAGE3D,
        [image_width, image_height, image_depth],
        [image_row_pitch, image_slice_pitch],
    );
    // SAFETY: `desc` is a live descriptor; the rest is forwarded.
    unsafe { clCreateImage(context, flags, image_format, &desc, host_ptr, errcode_ret) }
}

/// # Safety
/// `param_value` is NULL or holds `param_value_size` writable bytes;
/// `param_value_size_ret` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn clGetImageInfo(
    image: cl_mem,
    param_name: cl_image_info,
    param_value_size: usize,
    param_value: *mut c_void,
    param_value_size_ret: *mut usize,
) -> cl_int {
    // SAFETY: the caller's contract, forwarded.
    unsafe {
        object_info(
            "clGetImageInfo",
            image,
            ObjectKind::MemObject,
            CL_INVALID_MEM_OBJECT,
            InfoKind::Image,
            0,
            param_name,
            param_value_size,
            param_value,
            param_value_size_ret,
        )
    }
}

/// # Safety
/// The OpenCL contract of `clEnqueueReadImage`/`clEnqueueWriteImage`.
#[allow(clippy::too_many_arguments)]
unsafe fn host_transfer(
    entry: &'static str,
    read: bool,
    queue: cl_command_queue,
    image: cl_mem,
    origin: *const usize,
    region: *const usize,
    pitches: (usize, usize),
    ptr: *mut c_void,
    wait: (cl_uint, *const cl_event),
    event: *mut cl_event,
) -> cl_int {
    status(entry, || {
        // SAFETY: the caller's contract.
        let (q, wait) = unsafe { begin(queue, wait.0, wait.1) }?;
        let (img, shape) = get_image(image)?;
        same_context(&q, &img)?;
        // SAFETY: the caller's contract.
        let (origin, region) = unsafe { (triple(origin)?, triple(region)?) };
        if ptr.is_null() {
            return Err(CL_INVALID_VALUE);
        }
        let pitches = (pitches.0 as u64, pitches.1 as u64);
        let len = if region.contains(&0) {
            0
        } else {
            host_layout(&shape, origin, region, pitches.0, pitches.1)?.2
        };
        let ev = event_handle(event)?;
        let host = match (read, len) {
            (true, 0) => Host::Read(&mut []),
            (false, 0) => Host::Write(&[]),
            // SAFETY: the program's host rows span `len` writable bytes,
            // the OpenCL contract for `ptr`.
            (true, _) => Host::Read(unsafe { bytes_out(ptr.cast(), len) }.ok_or(CL_INVALID_VALUE)?),
            // SAFETY: as above, readable.
            (false, _) => Host::Write(
                unsafe { slice_in(ptr.cast::<u8>().cast_const(), len) }.ok_or(CL_INVALID_VALUE)?,
            ),
        };
        let q_of = super::boxes::queue_of(&q);
        image_transfer(
            q_of, img.handle, &shape, origin, region, pitches, host, &wait, ev,
        )?;
        // SAFETY: `event` is NULL or writable.
        unsafe { publish(&q, ev, event) };
        Ok(())
    })
}

/// # Safety
/// As [`host_transfer`].
#[no_mangle]
pub unsafe extern "C" fn clEnqueueReadImage(
    command_queue: cl_command_queue,
    image: cl_mem,
    _blocking_read: cl_bool,
    origin: *const usize,
    region: *const usize,
    row_pitch: usize,
    slice_pitch: usize,
    ptr: *mut c_void,
    num_events_in_wait_list: cl_uint,
    event_wait_list: *const cl_event,
    event: *mut cl_event,
) -> cl_int {
    // SAFETY: forwarded.
    unsafe {
        host_transfer(
            "clEnqueueReadImage",
            true,
            command_queue,
            image,
            origin,
            region,
            (row_pitch, slice_pitch),
            ptr,
            (num_events_in_wait_list, event_wait_list),
            event,
        )
    }
}

/// Runs synchronously, blocking or not.
///
/// # Safety
/// As [`host_transfer`].
#[no_mangle]
pub unsafe extern "C" fn clEnqueueWriteImage(
    command_queue: cl_command_queue,
    image: cl_mem,
    _blocking_write: cl_bool,
    origin: *const usize,
    region: *const usize,
    input_row_pitch: usize,
    input_slice_pitch: usize,
    ptr: *const c_void,
    num_events_in_wait_list: cl_uint,
    event_wait_list: *const cl_event,
    event: *mut cl_event,
) -> cl_int {
    // SAFETY: forwarded.
    unsafe {
        host_transfer(
            "clEnqueueWriteImage",
            false,
            command_queue,
            image,
            origin,
            region,
            (input_row_pitch, input_slice_pitch),
            ptr.cast_mut(),
            (num_events_in_wait_list, event_wait_list),
            event,
        )
    }
}

/// # Safety
/// The origins and region hold three entries; the wait list and `event`
/// follow the OpenCL contract.
#[no_mangle]
pub unsafe extern "C" fn clEnqueueCopyImage(
    command_queue: cl_command_queue,
    src_image: cl_mem,
    dst_image: cl_mem,
    src_origin: *const usize,
    dst_origin: *const usize,
    region: *const usize,
    num_events_in_wait_list: cl_uint,
    event_wait_list: *const cl_event,
    event: *mut cl_event,
) -> cl_int {
    status("clEnqueueCopyImage", || {
        let (src, _) = get_image(src_image)?;
        let (dst, _) = get_image(dst_image)?;
        let wait = (num_events_in_wait_list, event_wait_list);
        // SAFETY: the caller's contract.
        let c = unsafe {
            copy_between(
                command_queue,
                wait,
                &src,
                &dst,
                src_origin,
                dst_origin,
                region,
                event,
            )
        }?;
        let ev = c.common.event;
        let req = Request::ClEnqueueCopyImage(EnqueueCopyImage {
            common: c.common,
            src: src.handle,
            dst: dst.handle,
            src_origin: c.origins.0,
            dst_origin: c.origins.1,
            region: c.region,
        });
        // SAFETY: `event` is NULL or writable.
        unsafe { sync_command(&c.q, ev, event, req) }
    })
}

/// # Safety
/// `fill_color` holds a four-component colour (16 bytes); the origin and
/// region hold three entries; the wait list and `event` follow the
/// OpenCL contract.
#[no_mangle]
pub unsafe extern "C" fn clEnqueueFillImage(
    command_queue: cl_command_queue,
    image: cl_mem,
    fill_color: *const c_void,
    origin: *const usize,
    region: *const usize,
    num_events_in_wait_list: cl_uint,
    event_wait_list: *const cl_event,
    event: *mut cl_event,
) -> cl_int {
    status("clEnqueueFillImage", || {
        // SAFETY: the caller's contract.
        let (q, wait) = unsafe { begin(command_queue, num_events_in_wait_list, event_wait_list) }?;
        let (img, _) = get_image(image)?;
        same_context(&q, &img)?;
        // SAFETY: the caller's contract.
        let color = unsafe { slice_in(fill_color.cast::<u8>(), FILL_COLOR_LEN) }
            .ok_or(CL_INVALID_VALUE)?
            .to_vec();
        // SAFETY: the caller's contract.
        let (origin, region) = unsafe { (triple(origin)?, triple(region)?) };
        let ev = event_handle(event)?;
        let req = Request::ClEnqueueFillImage(EnqueueFillImage {
            common: EnqueueCommon {
                queue: q.handle,
                wait,
                event: ev,
            },
            image: img.handle,
            color,
            origin,
            region,
        });
        // SAFETY: `event` is NULL or writable.
        unsafe { sync_command(&q, ev, event, req) }
    })
}

/// # Safety
/// As for the two copies between images and buffers.
#[allow(clippy::too_many_arguments)]
unsafe fn image_buffer_copy(
    entry: &'static str,
    to_buffer: bool,
    queue: cl_command_queue,
    image: cl_mem,
    buffer: cl_mem,
    origin: *const usize,
    region: *const usize,
    offset: usize,
    wait: (cl_uint, *const cl_event),
    event: *mut cl_event,
) -> cl_int {
    status(entry, || {
        // SAFETY: the caller's contract.
        let (q, wait) = unsafe { begin(queue, wait.0, wait.1) }?;
        let (img, _) = get_image(image)?;
        let (buf, _) = get_buffer(buffer)?;
        same_context(&q, &img)?;
        same_context(&q, &buf)?;
        // SAFETY: the caller's contract.
        let (origin, region) = unsafe { (triple(origin)?, triple(region)?) };
        let ev = event_handle(event)?;
        let body = EnqueueCopyImageBuffer {
            common: EnqueueCommon {
                queue: q.handle,
                wait,
                event: ev,
            },
            image: img.handle,
            buffer: buf.handle,
            origin,
            region,
            offset: offset as u64,
        };
        let req = if to_buffer {
            Request::ClEnqueueCopyImageToBuffer(body)
        } else {
            Request::ClEnqueueCopyBufferToImage(body)
        };
        // SAFETY: `event` is NULL or writable.
        unsafe { sync_command(&q, ev, event, req) }
    })
}

/// # Safety
/// The origin and region hold three entries; the wait list and `event`
/// follow the OpenCL contract.
#[no_mangle]
pub unsafe extern "C" fn clEnqueueCopyImageToBuffer(
    command_queue: cl_command_queue,
    src_image: cl_mem,
    dst_buffer: cl_mem,
    src_origin: *const usize,
    region: *const usize,
    dst_offset: usize,
    num_events_in_wait_list: cl_uint,
    event_wait_list: *const cl_event,
    event: *mut cl_event,
) -> cl_int {
    // SAFETY: forwarded.
    unsafe {
        image_buffer_copy(
            "clEnqueueCopyImageToBuffer",
            true,
            command_queue,
            src_image,
            dst_buffer,
            src_origin,
            region,
            dst_offset,
            (num_events_in_wait_list, event_wait_list),
            event,
        )
    }
}

/// # Safety
/// As [`clEnqueueCopyImageToBuffer`].
#[no_mangle]
pub unsafe extern "C" fn clEnqueueCopyBufferToImage(
    command_queue: cl_command_queue,
    src_buffer: cl_mem,
    dst_image: cl_mem,
    src_offset: usize,
    dst_origin: *const usize,
    region: *const usize,
    num_events_in_wait_list: cl_uint,
    event_wait_list: *const cl_event,
    event: *mut cl_event,
) -> cl_int {
    // SAFETY: forwarded.
    unsafe {
        image_buffer_copy(
            "clEnqueueCopyBufferToImage",
            false,
            command_queue,
            dst_image,
            src_buffer,
            dst_origin,
            region,
            src_offset,
            (num_events_in_wait_list, event_wait_list),
            event,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_map_back_to_image_coordinates() {
        let p = BoxPiece {
            at: [8, 2, 1],
            size: ByteBox::new(16, 3, 2).unwrap(),
            host: 0..1,
        };
        // 4-byte elements: x 8 bytes in is pixel 2.
        assert_eq!(piece_origin(IMAGE3D, [1, 1, 1], &p, 4), [3, 3, 2]);
        assert_eq!(piece_region(IMAGE3D, &p, 4), [4, 3, 2]);
        // A 1D array's layers are the box's slices.
        let layers = BoxPiece {
            at: [0, 0, 5],
            size: ByteBox::new(16, 1, 3).unwrap(),
            host: 0..1,
        };
        assert_eq!(
            piece_origin(IMAGE1D_ARRAY, [0, 1, 0], &layers, 4),
            [0, 6, 0]
        );
        assert_eq!(piece_region(IMAGE1D_ARRAY, &layers, 4), [4, 3, 1]);
    }
}
