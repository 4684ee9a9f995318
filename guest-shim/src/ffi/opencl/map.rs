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
    cl_bool, cl_command_queue, cl_event, cl_int, cl_map_flags, cl_mem, cl_uint, CL_INVALID_VALUE,
    CL_MAP_READ, CL_MAP_WRITE, CL_MAP_WRITE_INVALIDATE_REGION, CL_MEM_ALLOC_HOST_PTR,
    CL_OUT_OF_HOST_MEMORY,
};

use super::enqueue::{begin, marker, read_pieces, same_context, write_pieces};
use super::event::{event_handle, publish};
use super::memory::{get_buffer, in_bounds};
use super::objects::{lock, Data, Mapping};
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
        let known = CL_MAP_READ | CL_MAP_WRITE | CL_MAP_WRITE_INVALIDATE_REGION;
        let invalidate = map_flags & CL_MAP_WRITE_INVALIDATE_REGION != 0;
        if size == 0
            || map_flags & !known != 0
            || (invalidate && map_flags & (CL_MAP_READ | CL_MAP_WRITE) != 0)
        {
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
        if invalidate {
            marker(&q, wait, ev, false)?;
        } else {
            // SAFETY: `addr` is our fresh allocation of `size` bytes, or
            // the program's USE_HOST_PTR memory, which covers the buffer.
            let out = unsafe { std::slice::from_raw_parts_mut(addr as *mut u8, size) };
            read_pieces(&q, &buf, offset, out, &wait, ev)?;
        }
        let write = map_flags & (CL_MAP_WRITE | CL_MAP_WRITE_INVALIDATE_REGION) != 0;
        let mapping = Mapping {
            offset: offset as u64,
            size,
            write,
            _owned: owned,
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
        let (buf, _) = get_buffer(memobj)?;
        same_context(&q, &buf)?;
        let Data::Mem { maps, .. } = &buf.data else {
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
            let offset = usize::try_from(mapping.offset).map_err(|_| CL_INVALID_VALUE)?;
            // Posting copies the bytes, so the allocation may go at once.
            write_pieces(&q, &buf, offset, data, false, &wait, ev)?;
        } else {
            marker(&q, wait, ev, false)?;
        }
        drop(mapping);
        // SAFETY: `event` is NULL or writable.
        unsafe { publish(&q, ev, event) };
        Ok(())
    })
}
