//! `clEnqueueMapBuffer` / `clEnqueueUnmapMemObject`, emulated in host
//! memory: mapping reads the region into a shim allocation (unless
//! `CL_MAP_WRITE_INVALIDATE_REGION`), unmapping writes it back when it was
//! mapped for writing. A `CL_MEM_USE_HOST_PTR` buffer maps onto the
//! program's own memory, as the API promises. A `CL_MEM_ALLOC_HOST_PTR`
//! buffer maps onto the transport's shared host memory when there is
//! some, so that transfers from and to the mapping (the OpenCL way to use
//! pinned memory) are not copied by the shim: the daemon reads and writes
//! it in place.

use std::alloc::{alloc, dealloc, Layout};
use std::ffi::c_void;
use std::ptr::NonNull;

use opencl_sys::{
    cl_bool, cl_command_queue, cl_event, cl_int, cl_map_flags, cl_mem, cl_uint,
    CL_INVALID_MEM_OBJECT, CL_INVALID_VALUE, CL_MAP_READ, CL_MAP_WRITE,
    CL_MAP_WRITE_INVALIDATE_REGION, CL_MEM_ALLOC_HOST_PTR, CL_OUT_OF_HOST_MEMORY,
};
use protocol::opencl::layout::{image_box, IMAGE1D, IMAGE1D_ARRAY, IMAGE1D_BUFFER, IMAGE2D};
use protocol::opencl::ObjectKind;

use super::boxes::{queue_of, Host};
use super::enqueue::{begin, marker, read_pieces, same_context, write_pieces};
use super::event::{event_handle, publish};
use super::image::{get_image, image_transfer};
use super::memory::{get_buffer, in_bounds};
use super::objects::{self, lock, Data, MappedRegion, Mapping};
use super::rect::triple;
use super::{client, creating, status};

/// Alignment of mapped memory: enough for any OpenCL vector type.
const MAP_ALIGN: usize = 128;

/// Host memory owned by a mapping.
#[derive(Debug)]
pub(crate) struct HostAlloc {
    ptr: NonNull<u8>,
    /// `None`: a block of the transport's shared host memory.
    layout: Option<Layout>,
}

// SAFETY: the allocation is plain bytes owned by this value; moving the
// owner between threads moves no thread-bound state.
unsafe impl Send for HostAlloc {}
// SAFETY: `HostAlloc` exposes no interior mutability through `&self`.
unsafe impl Sync for HostAlloc {}

impl HostAlloc {
    /// `size` bytes, from shared host memory if `shared` and the transport
    /// has some left, else from the process heap.
    fn new(size: usize, shared: bool) -> Option<HostAlloc> {
        if shared {
            let block = client().ok().and_then(|c| c.host_alloc(size.max(1)));
            if let Some(ptr) = block.and_then(NonNull::new) {
                // Shared blocks are page-aligned, more than MAP_ALIGN.
                return Some(HostAlloc { ptr, layout: None });
            }
        }
        let layout = Layout::from_size_align(size.max(1), MAP_ALIGN).ok()?;
        // SAFETY: `layout` has a non-zero size.
        let p = unsafe { alloc(layout) };
        NonNull::new(p).map(|ptr| HostAlloc {
            ptr,
            layout: Some(layout),
        })
    }
}

impl Drop for HostAlloc {
    fn drop(&mut self) {
        match self.layout {
            // SAFETY: allocated in `new` with this very layout, freed once.
            Some(layout) => unsafe { dealloc(self.ptr.as_ptr(), layout) },
            // Sends pending calls (which may name the block) first. A
            // failure leaves the block to the transport, not to a reuse.
            None => {
                if let Ok(c) = client() {
                    let _ = c.host_free(self.ptr.as_ptr() as usize);
                }
            }
        }
    }
}

/// # Safety
/// The wait list, `event` and `errcode_ret` follow the OpenCL contract.
#[no_mangle]
pub unsafe extern "C" fn clEnqueueMapBuffer(
    command_queue: cl_command_queue,
    buffer: cl_mem,
    _blocking_map: cl_bool,
    map_flags: cl_map_flags,
    offset: usize,
    size: usize,
    num_events_in_wait_list: cl_uint,
    event_wait_list: *const cl_event,
    event: *mut cl_event,
    errcode_ret: *mut cl_int,
) -> *mut c_void {
    let body = || {
        // SAFETY: the caller's contract.
        let (q, wait) = unsafe { begin(command_queue, num_events_in_wait_list, event_wait_list) }?;
        let (buf, buf_size) = get_buffer(buffer)?;
        same_context(&q, &buf)?;
        in_bounds(offset, size, buf_size)?;
        let (write, read_first) = map_flags_ok(map_flags)?;
        if size == 0 {
            return Err(CL_INVALID_VALUE);
        }
        let Data::Mem {
            host_ptr,
            maps,
            flags,
            ..
        } = &buf.data
        else {
            return Err(CL_INVALID_VALUE);
        };
        let (addr, owned) = if *host_ptr != 0 {
            (host_ptr.wrapping_add(offset), None)
        } else {
            let shared = flags & CL_MEM_ALLOC_HOST_PTR != 0;
            let a = HostAlloc::new(size, shared).ok_or(CL_OUT_OF_HOST_MEMORY)?;
            (a.ptr.as_ptr() as usize, Some(a))
        };
        let ev = event_handle(event)?;
        if read_first {
            // SAFETY: `addr` is our fresh allocation of `size` bytes, or
            // the program's USE_HOST_PTR memory, which covers the buffer.
            let out = unsafe { std::slice::from_raw_parts_mut(addr as *mut u8, size) };
            read_pieces(&q, &buf, offset, out, &wait, ev)?;
        } else {
            marker(&q, wait, ev, false)?;
        }
        let mapping = Mapping {
            offset: offset as u64,
            size,
            write,
            _owned: owned,
            image: None,
        };
        lock(maps).push((addr, mapping));
        // SAFETY: `event` is NULL or writable.
        unsafe { publish(&q, ev, event) };
        Ok(addr as *mut c_void)
    };
    // SAFETY: the caller's contract.
    unsafe { creating("clEnqueueMapBuffer", errcode_ret, body) }
}

/// # Safety
/// The wait list and `event` follow the OpenCL contract.
#[no_mangle]
pub unsafe extern "C" fn clEnqueueUnmapMemObject(
    command_queue: cl_command_queue,
    memobj: cl_mem,
    mapped_ptr: *mut c_void,
    num_events_in_wait_list: cl_uint,
    event_wait_list: *const cl_event,
    event: *mut cl_event,
) -> cl_int {
    status("clEnqueueUnmapMemObject", || {
        // SAFETY: the caller's contract.
        let (q, wait) = unsafe { begin(command_queue, num_events_in_wait_list, event_wait_list) }?;
        let buf = objects::get(memobj, ObjectKind::MemObject).ok_or(CL_INVALID_MEM_OBJECT)?;
        same_context(&q, &buf)?;
        let Data::Mem { maps, image, .. } = &buf.data else {
            return Err(CL_INVALID_VALUE);
        };
        let mapping = {
            let mut maps = lock(maps);
            let i = maps
                .iter()
                .position(|(a, _)| *a == mapped_ptr as usize)
                .ok_or(CL_INVALID_VALUE)?;
            maps.swap_remove(i).1
        };
        let ev = event_handle(event)?;
        if mapping.write {
            // SAFETY: the mapping covers `size` bytes at `mapped_ptr`
            // (our allocation, still owned by `mapping`, or the program's
            // USE_HOST_PTR memory).
            let data = unsafe { std::slice::from_raw_parts(mapped_ptr.cast::<u8>(), mapping.size) };
            match (&mapping.image, image) {
                (Some(m), Some(shape)) => image_transfer(
                    queue_of(&q),
                    buf.handle,
                    shape,
                    m.origin,
                    m.region,
                    m.pitches,
                    Host::Write(data),
                    &wait,
                    ev,
                )?,
                _ => {
                    let offset = usize::try_from(mapping.offset).map_err(|_| CL_INVALID_VALUE)?;
                    // Posting copies the bytes, so the allocation may go at once.
                    write_pieces(&q, &buf, offset, data, false, &wait, ev)?;
                }
            }
        } else {
            marker(&q, wait, ev, false)?;
        }
        drop(mapping);
        // SAFETY: `event` is NULL or writable.
        unsafe { publish(&q, ev, event) };
        Ok(())
    })
}

/// Checks map flags: known bits, and `CL_MAP_WRITE_INVALIDATE_REGION`
/// alone. Returns whether the mapping is written back, and whether it
/// must first be read.
fn map_flags_ok(map_flags: cl_map_flags) -> Result<(bool, bool), cl_int> {
    let known = CL_MAP_READ | CL_MAP_WRITE | CL_MAP_WRITE_INVALIDATE_REGION;
    let invalidate = map_flags & CL_MAP_WRITE_INVALIDATE_REGION != 0;
    if map_flags & !known != 0 || (invalidate && map_flags & (CL_MAP_READ | CL_MAP_WRITE) != 0) {
        return Err(CL_INVALID_VALUE);
    }
    let write = map_flags & (CL_MAP_WRITE | CL_MAP_WRITE_INVALIDATE_REGION) != 0;
    Ok((write, !invalidate))
}

/// Maps an image region into host memory: the program's own memory for
/// a `CL_MEM_USE_HOST_PTR` image (with its pitches), else a shim
/// allocation of the tightly packed region.
///
/// # Safety
/// The origin and region hold three entries; `image_row_pitch` is
/// writable; `image_slice_pitch` is NULL or writable; the wait list,
/// `event` and `errcode_ret` follow the OpenCL contract.
#[no_mangle]
pub unsafe extern "C" fn clEnqueueMapImage(
    command_queue: cl_command_queue,
    image: cl_mem,
    _blocking_map: cl_bool,
    map_flags: cl_map_flags,
    origin: *const usize,
    region: *const usize,
    image_row_pitch: *mut usize,
    image_slice_pitch: *mut usize,
    num_events_in_wait_list: cl_uint,
    event_wait_list: *const cl_event,
    event: *mut cl_event,
    errcode_ret: *mut cl_int,
) -> *mut c_void {
    let body = || {
        // SAFETY: the caller's contract.
        let (q, wait) = unsafe { begin(command_queue, num_events_in_wait_list, event_wait_list) }?;
        let (img, shape) = get_image(image)?;
        same_context(&q, &img)?;
        // SAFETY: the caller's contract.
        let (origin, region) = unsafe { (triple(origin)?, triple(region)?) };
        let flat = matches!(shape.image_type, IMAGE1D | IMAGE1D_BUFFER | IMAGE2D);
        if image_row_pitch.is_null() || (!flat && image_slice_pitch.is_null()) {
            return Err(CL_INVALID_VALUE);
        }
        let (write, read_first) = map_flags_ok(map_flags)?;
        let Data::Mem { host_ptr, maps, .. } = &img.data else {
            return Err(CL_INVALID_MEM_OBJECT);
        };
        let b = image_box(shape.image_type, region, shape.element).ok_or(CL_INVALID_VALUE)?;
        let (addr, pitches, owned) = if *host_ptr != 0 {
            // The program's memory, at the region's first byte.
            let (row, slice) = shape.host_pitches;
            let (layer, y) = match shape.image_type {
                IMAGE1D_ARRAY => (origin[1], 0),
                _ => (origin[2], origin[1]),
            };
            let start = layer
                .checked_mul(slice)
                .zip(y.checked_mul(row))
                .zip(origin[0].checked_mul(shape.element))
                .and_then(|((a, b), c)| a.checked_add(b)?.checked_add(c))
                .and_then(|v| usize::try_from(v).ok())
                .ok_or(CL_INVALID_VALUE)?;
            (host_ptr.wrapping_add(start), (row, slice), None)
        } else {
            let (row, slice) = b.pitches(0, 0).ok_or(CL_INVALID_VALUE)?;
            let len = b.span(row, slice).ok_or(CL_INVALID_VALUE)?;
            let len = usize::try_from(len).map_err(|_| CL_INVALID_VALUE)?;
            let a = HostAlloc::new(len, false).ok_or(CL_OUT_OF_HOST_MEMORY)?;
            (a.ptr.as_ptr() as usize, (row, slice), Some(a))
        };
        let len = b.span(pitches.0, pitches.1).ok_or(CL_INVALID_VALUE)?;
        let len = usize::try_from(len).map_err(|_| CL_INVALID_VALUE)?;
        let ev = event_handle(event)?;
        if read_first {
            // SAFETY: `addr` is our allocation of `len` bytes, or the
            // program's USE_HOST_PTR memory, which covers the image.
            let out = unsafe { std::slice::from_raw_parts_mut(addr as *mut u8, len) };
            let q_of = queue_of(&q);
            image_transfer(
                q_of,
                img.handle,
                &shape,
                origin,
                region,
                pitches,
                Host::Read(out),
                &wait,
                ev,
            )?;
        } else {
            marker(&q, wait, ev, false)?;
        }
        lock(maps).push((
            addr,
            Mapping {
                offset: 0,
                size: len,
                write,
                _owned: owned,
                image: Some(MappedRegion {
                    origin,
                    region,
                    pitches,
                }),
            },
        ));
        // SAFETY: writable (checked non-NULL above), the caller's contract.
        unsafe { image_row_pitch.write(pitches.0 as usize) };
        // SAFETY: NULL or writable, the caller's contract.
        unsafe {
            crate::ffi::write_opt(image_slice_pitch, if flat { 0 } else { pitches.1 as usize })
        };
        // SAFETY: `event` is NULL or writable.
        unsafe { publish(&q, ev, event) };
        Ok(addr as *mut c_void)
    };
    // SAFETY: the caller's contract.
    unsafe { creating("clEnqueueMapImage", errcode_ret, body) }
}
