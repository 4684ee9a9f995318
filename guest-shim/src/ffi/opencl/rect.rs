//! Rectangular buffer transfers: `clEnqueue{Read,Write,Copy}BufferRect`.
//!
//! They run synchronously (a non-blocking write is done when its call
//! returns, which OpenCL allows), so every error is the call's own. The
//! host side travels from its first byte, with the host origin folded
//! into where that is; large rectangles are cut into pieces
//! ([`super::boxes`]).

use std::ffi::c_void;

use opencl_sys::{cl_bool, cl_command_queue, cl_event, cl_int, cl_mem, cl_uint, CL_INVALID_VALUE};
use protocol::opencl::layout::{ByteBox, Placement, Triple};
use protocol::opencl::{EnqueueBufferRect, EnqueueCommon, EnqueueCopyBufferRect};
use protocol::Request;

use super::boxes::{queue_of, transfer, BoxPiece, Host};
use super::enqueue::{begin, copy_between, same_context, sync_command};
use super::event::{event_handle, publish};
use super::memory::get_buffer;
use super::status;
use crate::ffi::{bytes_out, slice_in};

/// Reads a `size_t[3]` the caller passed.
///
/// # Safety
/// `p` is NULL or holds three entries.
pub(crate) unsafe fn triple(p: *const usize) -> Result<Triple, cl_int> {
    // SAFETY: the caller's contract.
    let s = unsafe { slice_in(p, 3) }.ok_or(CL_INVALID_VALUE)?;
    Ok([s[0] as u64, s[1] as u64, s[2] as u64])
}

/// `a + b`, component by component (both in range: `b` lies in a region
/// that starts at `a` and was checked).
pub(crate) fn add(a: Triple, b: [u64; 3]) -> Triple {
    [
        a[0].saturating_add(b[0]),
        a[1].saturating_add(b[1]),
        a[2].saturating_add(b[2]),
    ]
}

/// A box's sides as a region.
pub(crate) fn region_of(b: ByteBox) -> Triple {
    [b.row_bytes, b.rows, b.slices]
}

/// Where one side of a rectangle lies: `CL_INVALID_VALUE` for pitches
/// too small for it or an extent past 64 bits.
fn side(b: ByteBox, origin: Triple, row: u64, slice: u64) -> Result<Placement, cl_int> {
    b.place(origin, row, slice).ok_or(CL_INVALID_VALUE)
}

/// # Safety
/// The OpenCL contract for `clEnqueueReadBufferRect` /
/// `clEnqueueWriteBufferRect`: the origins and region hold three entries;
/// `ptr` holds the host rectangle.
#[allow(clippy::too_many_arguments)]
unsafe fn buffer_rect(
    entry: &'static str,
    read: bool,
    queue: cl_command_queue,
    buffer: cl_mem,
    origins: (*const usize, *const usize, *const usize),
    buffer_pitches: (usize, usize),
    host_pitches: (usize, usize),
    ptr: *mut c_void,
    wait: (cl_uint, *const cl_event),
    event: *mut cl_event,
) -> cl_int {
    status(entry, || {
        // SAFETY: the caller's contract.
        let (q, wait) = unsafe { begin(queue, wait.0, wait.1) }?;
        let (buf, size) = get_buffer(buffer)?;
        same_context(&q, &buf)?;
        // SAFETY: the caller's contract.
        let (borigin, horigin, region) =
            unsafe { (triple(origins.0)?, triple(origins.1)?, triple(origins.2)?) };
        if ptr.is_null() {
            return Err(CL_INVALID_VALUE);
        }
        let b = ByteBox::of_rect(region).ok_or(CL_INVALID_VALUE)?;
        let (brow, bslice) = (buffer_pitches.0 as u64, buffer_pitches.1 as u64);
        let on_buffer = side(b, borigin, brow, bslice)?;
        if on_buffer.end > size {
            return Err(CL_INVALID_VALUE);
        }
        let (hrow, hslice) = (host_pitches.0 as u64, host_pitches.1 as u64);
        let on_host = side(b, horigin, hrow, hslice)?;
        let start = usize::try_from(on_host.start).map_err(|_| CL_INVALID_VALUE)?;
        let len = usize::try_from(on_host.len()).map_err(|_| CL_INVALID_VALUE)?;
        let at = (ptr as usize).checked_add(start).ok_or(CL_INVALID_VALUE)? as *mut u8;
        let ev = event_handle(event)?;
        let make = |p: &BoxPiece, common: EnqueueCommon| {
            let rect = EnqueueBufferRect {
                common,
                buffer: buf.handle,
                buffer_origin: add(borigin, p.at),
                region: region_of(p.size),
                buffer_row_pitch: on_buffer.row_pitch,
                buffer_slice_pitch: on_buffer.slice_pitch,
                host_row_pitch: on_host.row_pitch,
                host_slice_pitch: on_host.slice_pitch,
            };
            if read {
                Request::ClEnqueueReadBufferRect(rect)
            } else {
                Request::ClEnqueueWriteBufferRect(rect)
            }
        };
        let host = if read {
            // SAFETY: the program's rectangle spans `len` writable bytes
            // from its first one, the OpenCL contract for `ptr`.
            Host::Read(unsafe { bytes_out(at, len) }.ok_or(CL_INVALID_VALUE)?)
        } else {
            // SAFETY: as above, readable.
            Host::Write(unsafe { slice_in(at.cast_const(), len) }.ok_or(CL_INVALID_VALUE)?)
        };
        let pitches = (on_host.row_pitch, on_host.slice_pitch);
        transfer(queue_of(&q), b, pitches, 1, host, &wait, ev, make)?;
        // SAFETY: `event` is NULL or writable.
        unsafe { publish(&q, ev, event) };
        Ok(())
    })
}

/// # Safety
/// As [`buffer_rect`].
#[no_mangle]
pub unsafe extern "C" fn clEnqueueReadBufferRect(
    command_queue: cl_command_queue,
    buffer: cl_mem,
    _blocking_read: cl_bool,
    buffer_origin: *const usize,
    host_origin: *const usize,
    region: *const usize,
    buffer_row_pitch: usize,
    buffer_slice_pitch: usize,
    host_row_pitch: usize,
    host_slice_pitch: usize,
    ptr: *mut c_void,
    num_events_in_wait_list: cl_uint,
    event_wait_list: *const cl_event,
    event: *mut cl_event,
) -> cl_int {
    // SAFETY: the caller's contract, forwarded.
    unsafe {
        buffer_rect(
            "clEnqueueReadBufferRect",
            true,
            command_queue,
            buffer,
            (buffer_origin, host_origin, region),
            (buffer_row_pitch, buffer_slice_pitch),
            (host_row_pitch, host_slice_pitch),
            ptr,
            (num_events_in_wait_list, event_wait_list),
            event,
        )
    }
}

/// Runs synchronously, blocking or not.
///
/// # Safety
/// As [`buffer_rect`].
#[no_mangle]
pub unsafe extern "C" fn clEnqueueWriteBufferRect(
    command_queue: cl_command_queue,
    buffer: cl_mem,
    _blocking_write: cl_bool,
    buffer_origin: *const usize,
    host_origin: *const usize,
    region: *const usize,
    buffer_row_pitch: usize,
    buffer_slice_pitch: usize,
    host_row_pitch: usize,
    host_slice_pitch: usize,
    ptr: *const c_void,
    num_events_in_wait_list: cl_uint,
    event_wait_list: *const cl_event,
    event: *mut cl_event,
) -> cl_int {
    // SAFETY: the caller's contract, forwarded.
    unsafe {
        buffer_rect(
            "clEnqueueWriteBufferRect",
            false,
            command_queue,
            buffer,
            (buffer_origin, host_origin, region),
            (buffer_row_pitch, buffer_slice_pitch),
            (host_row_pitch, host_slice_pitch),
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
pub unsafe extern "C" fn clEnqueueCopyBufferRect(
    command_queue: cl_command_queue,
    src_buffer: cl_mem,
    dst_buffer: cl_mem,
    src_origin: *const usize,
    dst_origin: *const usize,
    region: *const usize,
    src_row_pitch: usize,
    src_slice_pitch: usize,
    dst_row_pitch: usize,
    dst_slice_pitch: usize,
    num_events_in_wait_list: cl_uint,
    event_wait_list: *const cl_event,
    event: *mut cl_event,
) -> cl_int {
    status("clEnqueueCopyBufferRect", || {
        let (src, _) = get_buffer(src_buffer)?;
        let (dst, _) = get_buffer(dst_buffer)?;
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
        let req = Request::ClEnqueueCopyBufferRect(EnqueueCopyBufferRect {
            common: c.common,
            src: src.handle,
            dst: dst.handle,
            src_origin: c.origins.0,
            dst_origin: c.origins.1,
            region: c.region,
            src_row_pitch: src_row_pitch as u64,
            src_slice_pitch: src_slice_pitch as u64,
            dst_row_pitch: dst_row_pitch as u64,
            dst_slice_pitch: dst_slice_pitch as u64,
        });
        // SAFETY: `event` is NULL or writable.
        unsafe { sync_command(&c.q, ev, event, req) }
    })
}
