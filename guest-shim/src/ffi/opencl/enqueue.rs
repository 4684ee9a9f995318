//! Commands: buffer transfers, kernel launches, markers and barriers.
//!
//! Reads are always synchronous (the daemon completes a read before it
//! answers). Blocking writes are synchronous; everything else is posted and
//! its errors surface at the next sync point. Transfers larger than one
//! chunk are split; the command's event then belongs to the last piece (in
//! an in-order queue) or to a trailing barrier (out-of-order queue).
//!
//! Transfers of at least [`PIPELINE_MIN`] bytes are split into smaller
//! pieces and pipelined ([`crate::client::Client::call_pipelined`]): the shim copies one
//! piece into shared memory while the daemon copies the previous one into
//! (or out of) the buffer, instead of the two copies running in turn. This
//! holds for non-blocking writes too: posting one would copy it into the
//! batch first and then send it in one-chunk chains, each waited for, so a
//! large non-blocking write is instead done by the time its call returns
//! (which OpenCL allows).

use std::ffi::c_void;
use std::sync::Arc;

use opencl_sys::{
    cl_bool, cl_command_queue, cl_event, cl_int, cl_kernel, cl_mem, cl_mem_migration_flags,
    cl_uint, CL_INVALID_CONTEXT, CL_INVALID_MEM_OBJECT, CL_INVALID_VALUE,
    CL_INVALID_WORK_DIMENSION, CL_TRUE,
};
use protocol::limits::{MAX_FILL_PATTERN_LEN, MAX_LIST_LEN, MAX_WORK_DIM};
use protocol::opencl::{
    EnqueueCommon, EnqueueCopyBuffer, EnqueueFillBuffer, EnqueueMarker, EnqueueMigrate,
    EnqueueNdRange, EnqueueReadBuffer, EnqueueWriteBuffer, Handle, ObjectKind,
};
use protocol::Request;

use super::event::{event_handle, publish, settle, wait_list};
use super::kernel::get_kernel;
use super::memory::{get_buffer, in_bounds};
use super::objects::{self, Data, Record};
use super::queue::get_queue;
use super::{call, chunk_size, cl_error, client, post, status};
use crate::client::Piece;
use crate::ffi::{bytes_out, slice_in};

/// OpenCL transfers at least this long are pipelined. Below it one chain
/// costs less than several: each piece is one blocking runtime call in the
/// daemon (some 15-25 µs with POCL on a busy two-core machine), which a
/// 256 KiB or 1 MiB copy does not repay (`vcompute-bench`, 2 MiB vs
/// 256 KiB here: 256 KiB transfers 0.2-0.35x -> 0.7-1.1x native
/// bandwidth, 1 MiB 0.26-0.45x -> 0.5-0.6x).
pub(crate) const PIPELINE_MIN: usize = 2 << 20;

/// Smallest piece of a pipelined OpenCL transfer.
const PIPELINE_MIN_PIECE: usize = 512 << 10;

/// How a transfer of the host bytes `host`, blocking or not, is split:
/// the piece length, and whether the pieces are pipelined. Bytes in the
/// transport's shared host memory are read or written in place, so there
/// is no copy to overlap: they go in as few calls as the limits allow.
pub(crate) fn split(host: &[u8]) -> (usize, bool) {
    let len = host.len();
    match client() {
        Ok(c) => {
            let start = host.as_ptr() as usize;
            let shared = c
                .host_block(start)
                .is_some_and(|b| start.checked_add(len).is_some_and(|end| end <= b.end));
            if shared {
                (chunk_size(), false)
            } else {
                c.split_transfer_from(len, PIPELINE_MIN, PIPELINE_MIN_PIECE)
            }
        }
        Err(_) => (chunk_size(), false),
    }
}

/// The common fields of each piece of a command split `n` ways, and the
/// trailing barrier that carries the event when pieces may reorder.
pub(crate) fn plan(
    queue: Handle,
    out_of_order: bool,
    n: usize,
    wait: &[Handle],
    event: Option<Handle>,
) -> (Vec<EnqueueCommon>, Option<EnqueueCommon>) {
    let pieces = (0..n)
        .map(|i| EnqueueCommon {
            queue,
            wait: if i == 0 || out_of_order {
                wait.to_vec()
            } else {
                vec![]
            },
            event: if i + 1 == n && (n == 1 || !out_of_order) {
                event
            } else {
                None
            },
        })
        .collect();
    let tail = (out_of_order && n > 1 && event.is_some()).then(|| EnqueueCommon {
        queue,
        wait: vec![],
        event,
    });
    (pieces, tail)
}

fn is_out_of_order(q: &Record) -> bool {
    matches!(
        &q.data,
        Data::Queue {
            out_of_order: true,
            ..
        }
    )
}

/// Sends `req` synchronously or posts it.
fn send(req: Request, bulk: &[&[u8]], sync: bool) -> Result<(), cl_int> {
    if sync {
        call(req, bulk, &mut []).map(|_| ())
    } else {
        post(req, bulk)
    }
}

/// A queue, its context, and a checked wait list.
///
/// # Safety
/// `list` is NULL or holds `n` entries.
pub(crate) unsafe fn begin(
    queue: cl_command_queue,
    n: cl_uint,
    list: *const cl_event,
) -> Result<(Arc<Record>, Vec<Handle>), cl_int> {
    let q = get_queue(queue)?;
    let ctx = q.context().ok_or(CL_INVALID_CONTEXT)?;
    // SAFETY: the caller's contract.
    let wait = unsafe { wait_list(n, list, &ctx) }?;
    Ok((q, wait))
}

/// Sends one synchronous command (so that its error is the call's own)
/// and publishes its event.
///
/// # Safety
/// `out` is NULL or writable.
pub(crate) unsafe fn sync_command(
    q: &Arc<Record>,
    event: Option<Handle>,
    out: *mut cl_event,
    req: Request,
) -> Result<(), cl_int> {
    let op = req.opcode();
    match call(req, &[], &mut [])? {
        r if r.opcode() == op => {}
        other => return Err(super::unexpected(&other)),
    }
    // SAFETY: the caller's contract.
    unsafe { publish(q, event, out) };
    Ok(())
}

/// What a copy between two memory objects checks first: the queue and
/// its wait list, that both objects are in the queue's context, the two
/// origins and the region, and the event handle.
#[derive(Debug)]
pub(crate) struct Copy {
    pub q: Arc<Record>,
    pub common: EnqueueCommon,
    pub origins: ([u64; 3], [u64; 3]),
    pub region: [u64; 3],
}

/// # Safety
/// The wait list follows the OpenCL contract; the origins and region are
/// NULL or hold three entries.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn copy_between(
    queue: cl_command_queue,
    (n, list): (cl_uint, *const cl_event),
    src: &Arc<Record>,
    dst: &Arc<Record>,
    src_origin: *const usize,
    dst_origin: *const usize,
    region: *const usize,
    event: *mut cl_event,
) -> Result<Copy, cl_int> {
    // SAFETY: the caller's contract.
    let (q, wait) = unsafe { begin(queue, n, list) }?;
    same_context(&q, src)?;
    same_context(&q, dst)?;
    // SAFETY: the caller's contract.
    let (so, d_o, region) = unsafe {
        (
            super::rect::triple(src_origin)?,
            super::rect::triple(dst_origin)?,
            super::rect::triple(region)?,
        )
    };
    let common = EnqueueCommon {
        queue: q.handle,
        wait,
        event: event_handle(event)?,
    };
    Ok(Copy {
        q,
        common,
        origins: (so, d_o),
        region,
    })
}

/// Fails unless `obj` belongs to the queue's context.
pub(crate) fn same_context(q: &Arc<Record>, obj: &Arc<Record>) -> Result<(), cl_int> {
    match (q.context(), obj.context()) {
        (Some(a), Some(b)) if Arc::ptr_eq(&a, &b) => Ok(()),
        _ => Err(CL_INVALID_CONTEXT),
    }
}

/// Writes `data` at `offset` of `buf`, split into chunks.
pub(crate) fn write_pieces(
    q: &Arc<Record>,
    buf: &Record,
    offset: usize,
    data: &[u8],
    sync: bool,
    wait: &[Handle],
    event: Option<Handle>,
) -> Result<(), cl_int> {
    let (chunk, pipelined) = split(data);
    let chunks: Vec<&[u8]> = data.chunks(chunk).collect();
    let wait = if sync {
        settle(q.handle, wait.to_vec())?
    } else {
        wait.to_vec()
    };
    let (commons, tail) = plan(q.handle, is_out_of_order(q), chunks.len(), &wait, event);
    let reqs = commons
        .into_iter()
        .zip(chunks)
        .enumerate()
        .map(|(i, (common, piece))| {
            let req = Request::ClEnqueueWriteBuffer(EnqueueWriteBuffer {
                common,
                buffer: buf.handle,
                offset: (offset + i * chunk) as u64,
                size: piece.len() as u64,
            });
            (req, piece)
        });
    if pipelined {
        client()?
            .call_pipelined(reqs.map(|(req, piece)| Piece {
                req,
                bulk_in: Some(piece),
                bulk_out: None,
            }))
            .map_err(|e| cl_error(&e))?;
    } else {
        for (req, piece) in reqs {
            send(req, &[piece], sync)?;
        }
    }
    marker_tail(tail, sync)
}

/// Reads `out.len()` bytes at `offset` of `buf`, split into chunks; always
/// synchronous.
pub(crate) fn read_pieces(
    q: &Arc<Record>,
    buf: &Record,
    offset: usize,
    out: &mut [u8],
    wait: &[Handle],
    event: Option<Handle>,
) -> Result<(), cl_int> {
    let (chunk, pipelined) = split(out);
    let n = out.len().div_ceil(chunk);
    let wait = settle(q.handle, wait.to_vec())?;
    let (commons, tail) = plan(q.handle, is_out_of_order(q), n, &wait, event);
    let reqs = commons
        .into_iter()
        .zip(out.chunks_mut(chunk))
        .enumerate()
        .map(|(i, (common, piece))| {
            let req = Request::ClEnqueueReadBuffer(EnqueueReadBuffer {
                common,
                buffer: buf.handle,
                offset: (offset + i * chunk) as u64,
                size: piece.len() as u64,
            });
            (req, piece)
        });
    if pipelined {
        client()?
            .call_pipelined(reqs.map(|(req, piece)| Piece {
                req,
                bulk_in: None,
                bulk_out: Some(piece),
            }))
            .map_err(|e| cl_error(&e))?;
    } else {
        for (req, piece) in reqs {
            call(req, &[], &mut [piece])?;
        }
    }
    marker_tail(tail, true)
}

fn marker_tail(tail: Option<EnqueueCommon>, sync: bool) -> Result<(), cl_int> {
    match tail {
        Some(common) => send(
            Request::ClEnqueueMarker(EnqueueMarker {
                common,
                barrier: true,
            }),
            &[],
            sync,
        ),
        None => Ok(()),
    }
}

/// Posts a marker or barrier.
pub(crate) fn marker(
    q: &Arc<Record>,
    wait: Vec<Handle>,
    event: Option<Handle>,
    barrier: bool,
) -> Result<(), cl_int> {
    let common = EnqueueCommon {
        queue: q.handle,
        wait,
        event,
    };
    post(
        Request::ClEnqueueMarker(EnqueueMarker { common, barrier }),
        &[],
    )
}

/// # Safety
/// `ptr` holds `size` writable bytes; the wait list and `event` follow the
/// OpenCL contract.
#[no_mangle]
pub unsafe extern "C" fn clEnqueueReadBuffer(
    command_queue: cl_command_queue,
    buffer: cl_mem,
    _blocking_read: cl_bool,
    offset: usize,
    size: usize,
    ptr: *mut c_void,
    num_events_in_wait_list: cl_uint,
    event_wait_list: *const cl_event,
    event: *mut cl_event,
) -> cl_int {
    status("clEnqueueReadBuffer", || {
        // SAFETY: the caller's contract.
        let (q, wait) = unsafe { begin(command_queue, num_events_in_wait_list, event_wait_list) }?;
        let (buf, buf_size) = get_buffer(buffer)?;
        same_context(&q, &buf)?;
        in_bounds(offset, size, buf_size)?;
        // SAFETY: the caller guarantees `size` writable bytes at `ptr`.
        let out = unsafe { bytes_out(ptr.cast(), size) }.ok_or(CL_INVALID_VALUE)?;
        let ev = event_handle(event)?;
        read_pieces(&q, &buf, offset, out, &wait, ev)?;
        // SAFETY: `event` is NULL or writable.
        unsafe { publish(&q, ev, event) };
        Ok(())
    })
}

/// # Safety
/// `ptr` holds `size` readable bytes; the wait list and `event` follow the
/// OpenCL contract.
#[no_mangle]
pub unsafe extern "C" fn clEnqueueWriteBuffer(
    command_queue: cl_command_queue,
    buffer: cl_mem,
    blocking_write: cl_bool,
    offset: usize,
    size: usize,
    ptr: *const c_void,
    num_events_in_wait_list: cl_uint,
    event_wait_list: *const cl_event,
    event: *mut cl_event,
) -> cl_int {
    status("clEnqueueWriteBuffer", || {
        // SAFETY: the caller's contract.
        let (q, wait) = unsafe { begin(command_queue, num_events_in_wait_list, event_wait_list) }?;
        let (buf, buf_size) = get_buffer(buffer)?;
        same_context(&q, &buf)?;
        in_bounds(offset, size, buf_size)?;
        if size == 0 {
            return Err(CL_INVALID_VALUE);
        }
        // SAFETY: the caller guarantees `size` readable bytes at `ptr`.
        let data = unsafe { slice_in(ptr.cast::<u8>(), size) }.ok_or(CL_INVALID_VALUE)?;
        let ev = event_handle(event)?;
        write_pieces(&q, &buf, offset, data, blocking_write == CL_TRUE, &wait, ev)?;
        // SAFETY: `event` is NULL or writable.
        unsafe { publish(&q, ev, event) };
        Ok(())
    })
}

/// # Safety
/// The wait list and `event` follow the OpenCL contract.
#[no_mangle]
pub unsafe extern "C" fn clEnqueueCopyBuffer(
    command_queue: cl_command_queue,
    src_buffer: cl_mem,
    dst_buffer: cl_mem,
    src_offset: usize,
    dst_offset: usize,
    size: usize,
    num_events_in_wait_list: cl_uint,
    event_wait_list: *const cl_event,
    event: *mut cl_event,
) -> cl_int {
    status("clEnqueueCopyBuffer", || {
        // SAFETY: the caller's contract.
        let (q, wait) = unsafe { begin(command_queue, num_events_in_wait_list, event_wait_list) }?;
        let (src, src_size) = get_buffer(src_buffer)?;
        let (dst, dst_size) = get_buffer(dst_buffer)?;
        same_context(&q, &src)?;
        same_context(&q, &dst)?;
        in_bounds(src_offset, size, src_size)?;
        in_bounds(dst_offset, size, dst_size)?;
        if size == 0 {
            return Err(CL_INVALID_VALUE);
        }
        let ev = event_handle(event)?;
        let req = Request::ClEnqueueCopyBuffer(EnqueueCopyBuffer {
            common: EnqueueCommon {
                queue: q.handle,
                wait,
                event: ev,
            },
            src: src.handle,
            dst: dst.handle,
            src_offset: src_offset as u64,
            dst_offset: dst_offset as u64,
            size: size as u64,
        });
        post(req, &[])?;
        // SAFETY: `event` is NULL or writable.
        unsafe { publish(&q, ev, event) };
        Ok(())
    })
}

/// # Safety
/// `pattern` holds `pattern_size` readable bytes; the wait list and `event`
/// follow the OpenCL contract.
#[no_mangle]
pub unsafe extern "C" fn clEnqueueFillBuffer(
    command_queue: cl_command_queue,
    buffer: cl_mem,
    pattern: *const c_void,
    pattern_size: usize,
    offset: usize,
    size: usize,
    num_events_in_wait_list: cl_uint,
    event_wait_list: *const cl_event,
    event: *mut cl_event,
) -> cl_int {
    status("clEnqueueFillBuffer", || {
        // SAFETY: the caller's contract.
        let (q, wait) = unsafe { begin(command_queue, num_events_in_wait_list, event_wait_list) }?;
        let (buf, buf_size) = get_buffer(buffer)?;
        same_context(&q, &buf)?;
        in_bounds(offset, size, buf_size)?;
        if pattern.is_null()
            || !pattern_size.is_power_of_two()
            || pattern_size > MAX_FILL_PATTERN_LEN
            || !offset.is_multiple_of(pattern_size)
            || !size.is_multiple_of(pattern_size)
        {
            return Err(CL_INVALID_VALUE);
        }
        // SAFETY: the caller guarantees `pattern_size` readable bytes.
        let pat =
            unsafe { slice_in(pattern.cast::<u8>(), pattern_size) }.ok_or(CL_INVALID_VALUE)?;
        let ev = event_handle(event)?;
        let req = Request::ClEnqueueFillBuffer(EnqueueFillBuffer {
            common: EnqueueCommon {
                queue: q.handle,
                wait,
                event: ev,
            },
            buffer: buf.handle,
            pattern: pat.to_vec(),
            offset: offset as u64,
            size: size as u64,
        });
        post(req, &[])?;
        // SAFETY: `event` is NULL or writable.
        unsafe { publish(&q, ev, event) };
        Ok(())
    })
}

/// Reads an optional work-size array of `dim` entries (NULL = empty).
///
/// # Safety
/// `p` is NULL or holds `dim` entries.
unsafe fn sizes(p: *const usize, dim: usize) -> Vec<u64> {
    if p.is_null() {
        return vec![];
    }
    // SAFETY: the caller's contract.
    let s = unsafe { slice_in(p, dim) }.unwrap_or_default();
    s.iter().map(|v| *v as u64).collect()
}

/// # Safety
/// Each work-size array is NULL or holds `work_dim` entries; the wait list
/// and `event` follow the OpenCL contract.
#[no_mangle]
pub unsafe extern "C" fn clEnqueueNDRangeKernel(
    command_queue: cl_command_queue,
    kernel: cl_kernel,
    work_dim: cl_uint,
    global_work_offset: *const usize,
    global_work_size: *const usize,
    local_work_size: *const usize,
    num_events_in_wait_list: cl_uint,
    event_wait_list: *const cl_event,
    event: *mut cl_event,
) -> cl_int {
    status("clEnqueueNDRangeKernel", || {
        // SAFETY: the caller's contract.
        let (q, wait) = unsafe { begin(command_queue, num_events_in_wait_list, event_wait_list) }?;
        let k = get_kernel(kernel)?;
        same_context(&q, &k)?;
        let dim = work_dim as usize;
        if dim == 0 || dim > MAX_WORK_DIM {
            return Err(CL_INVALID_WORK_DIMENSION);
        }
        if global_work_size.is_null() {
            return Err(CL_INVALID_VALUE);
        }
        // SAFETY: each array is NULL or holds `work_dim` entries.
        let (offset, global, local) = unsafe {
            (
                sizes(global_work_offset, dim),
                sizes(global_work_size, dim),
                sizes(local_work_size, dim),
            )
        };
        let ev = event_handle(event)?;
        let req = Request::ClEnqueueNdRange(EnqueueNdRange {
            common: EnqueueCommon {
                queue: q.handle,
                wait,
                event: ev,
            },
            kernel: k.handle,
            offset,
            global,
            local,
        });
        post(req, &[])?;
        // SAFETY: `event` is NULL or writable.
        unsafe { publish(&q, ev, event) };
        Ok(())
    })
}

/// A one-work-item launch.
///
/// # Safety
/// As [`clEnqueueNDRangeKernel`].
#[no_mangle]
pub unsafe extern "C" fn clEnqueueTask(
    command_queue: cl_command_queue,
    kernel: cl_kernel,
    num_events_in_wait_list: cl_uint,
    event_wait_list: *const cl_event,
    event: *mut cl_event,
) -> cl_int {
    let one = [1usize];
    // SAFETY: `one` is a live one-entry array; the rest is forwarded.
    unsafe {
        clEnqueueNDRangeKernel(
            command_queue,
            kernel,
            1,
            std::ptr::null(),
            one.as_ptr(),
            one.as_ptr(),
            num_events_in_wait_list,
            event_wait_list,
            event,
        )
    }
}

/// # Safety
/// The wait list and `event` follow the OpenCL contract.
unsafe fn marker_entry(
    entry: &'static str,
    queue: cl_command_queue,
    n: cl_uint,
    list: *const cl_event,
    event: *mut cl_event,
    barrier: bool,
) -> cl_int {
    status(entry, || {
        // SAFETY: the caller's contract.
        let (q, wait) = unsafe { begin(queue, n, list) }?;
        let ev = event_handle(event)?;
        marker(&q, wait, ev, barrier)?;
        // SAFETY: `event` is NULL or writable.
        unsafe { publish(&q, ev, event) };
        Ok(())
    })
}

/// # Safety
/// The wait list and `event` follow the OpenCL contract.
#[no_mangle]
pub unsafe extern "C" fn clEnqueueMarkerWithWaitList(
    command_queue: cl_command_queue,
    num_events_in_wait_list: cl_uint,
    event_wait_list: *const cl_event,
    event: *mut cl_event,
) -> cl_int {
    // SAFETY: forwarded.
    unsafe {
        marker_entry(
            "clEnqueueMarkerWithWaitList",
            command_queue,
            num_events_in_wait_list,
            event_wait_list,
            event,
            false,
        )
    }
}

/// # Safety
/// The wait list and `event` follow the OpenCL contract.
#[no_mangle]
pub unsafe extern "C" fn clEnqueueBarrierWithWaitList(
    command_queue: cl_command_queue,
    num_events_in_wait_list: cl_uint,
    event_wait_list: *const cl_event,
    event: *mut cl_event,
) -> cl_int {
    // SAFETY: forwarded.
    unsafe {
        marker_entry(
            "clEnqueueBarrierWithWaitList",
            command_queue,
            num_events_in_wait_list,
            event_wait_list,
            event,
            true,
        )
    }
}

/// # Safety
/// `event` is writable.
#[no_mangle]
pub unsafe extern "C" fn clEnqueueMarker(
    command_queue: cl_command_queue,
    event: *mut cl_event,
) -> cl_int {
    if event.is_null() {
        return CL_INVALID_VALUE;
    }
    // SAFETY: forwarded.
    unsafe {
        marker_entry(
            "clEnqueueMarker",
            command_queue,
            0,
            std::ptr::null(),
            event,
            false,
        )
    }
}

#[no_mangle]
pub extern "C" fn clEnqueueBarrier(command_queue: cl_command_queue) -> cl_int {
    // SAFETY: no wait list and no event.
    unsafe {
        marker_entry(
            "clEnqueueBarrier",
            command_queue,
            0,
            std::ptr::null(),
            std::ptr::null_mut(),
            true,
        )
    }
}

/// # Safety
/// `event_list` holds `num_events` entries.
#[no_mangle]
pub unsafe extern "C" fn clEnqueueWaitForEvents(
    command_queue: cl_command_queue,
    num_events: cl_uint,
    event_list: *const cl_event,
) -> cl_int {
    if num_events == 0 || event_list.is_null() {
        return CL_INVALID_VALUE;
    }
    // SAFETY: forwarded.
    unsafe {
        marker_entry(
            "clEnqueueWaitForEvents",
            command_queue,
            num_events,
            event_list,
            std::ptr::null_mut(),
            true,
        )
    }
}

/// Migration runs in the runtime, which validates it as natively; the
/// call is synchronous, so its errors are its own.
///
/// # Safety
/// `mem_objects` holds `num_mem_objects` entries; the wait list and `event`
/// follow the OpenCL contract.
#[no_mangle]
pub unsafe extern "C" fn clEnqueueMigrateMemObjects(
    command_queue: cl_command_queue,
    num_mem_objects: cl_uint,
    mem_objects: *const cl_mem,
    flags: cl_mem_migration_flags,
    num_events_in_wait_list: cl_uint,
    event_wait_list: *const cl_event,
    event: *mut cl_event,
) -> cl_int {
    status("clEnqueueMigrateMemObjects", || {
        // SAFETY: the caller's contract.
        let (q, wait) = unsafe { begin(command_queue, num_events_in_wait_list, event_wait_list) }?;
        if num_mem_objects as usize > MAX_LIST_LEN || (num_mem_objects > 0 && mem_objects.is_null())
        {
            return Err(CL_INVALID_VALUE);
        }
        // SAFETY: the caller's contract.
        let mems = unsafe { slice_in(mem_objects, num_mem_objects as usize) }.unwrap_or_default();
        let mems = mems
            .iter()
            .map(|m| {
                objects::get(*m, ObjectKind::MemObject)
                    .map(|r| r.handle)
                    .ok_or(CL_INVALID_MEM_OBJECT)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ev = event_handle(event)?;
        let req = Request::ClEnqueueMigrate(EnqueueMigrate {
            common: EnqueueCommon {
                queue: q.handle,
                wait,
                event: ev,
            },
            mems,
            flags,
        });
        call(req, &[], &mut [])?;
        // SAFETY: `event` is NULL or writable.
        unsafe { publish(&q, ev, event) };
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_piece_carries_waits_and_event() {
        let (p, tail) = plan(1, false, 1, &[7, 8], Some(9));
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].wait, vec![7, 8]);
        assert_eq!(p[0].event, Some(9));
        assert!(tail.is_none());
        let (p, tail) = plan(1, true, 1, &[7], Some(9));
        assert_eq!((p[0].event, tail), (Some(9), None));
    }

    #[test]
    fn in_order_split_puts_the_event_on_the_last_piece() {
        let (p, tail) = plan(1, false, 3, &[7], Some(9));
        assert_eq!(p[0].wait, vec![7]);
        assert!(p[1].wait.is_empty() && p[2].wait.is_empty());
        assert_eq!(
            p.iter().map(|c| c.event).collect::<Vec<_>>(),
            vec![None, None, Some(9)]
        );
        assert!(tail.is_none());
    }

    #[test]
    fn out_of_order_split_ends_with_a_barrier() {
        let (p, tail) = plan(1, true, 2, &[7], Some(9));
        assert!(p.iter().all(|c| c.wait == vec![7] && c.event.is_none()));
        let tail = tail.unwrap_or_default();
        assert_eq!(tail.event, Some(9));
        assert!(tail.wait.is_empty());
    }
}
