//! Buffers, transfers, launches and synchronization.
//!
//! Ranges are checked against the buffer's size before the runtime sees
//! them. Transfers run blocking: a guest segment is only valid while
//! `execute` runs, so the runtime must be done with it before we return.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cl3::error_codes::{
    CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST, CL_INVALID_EVENT, CL_INVALID_EVENT_WAIT_LIST,
    CL_INVALID_VALUE, CL_MEM_OBJECT_ALLOCATION_FAILURE,
};
use cl3::event::CL_EVENT_COMMAND_EXECUTION_STATUS;
use cl3::memory::{
    CL_BUFFER_CREATE_TYPE_REGION, CL_MEM_ALLOC_HOST_PTR, CL_MEM_COPY_HOST_PTR, CL_MEM_USE_HOST_PTR,
};
use cl3::types::{
    cl_buffer_region, cl_command_queue, cl_event, cl_int, cl_uint, CL_FALSE, CL_TRUE,
};
use opencl3::event::Event;
use opencl3::memory::Buffer;
use protocol::opencl::{
    CreateBuffer, CreateSubBuffer, CreateUserEvent, Empty, EnqueueCommon, EnqueueCopyBuffer,
    EnqueueFillBuffer, EnqueueMarker, EnqueueNdRange, EnqueueReadBuffer, EnqueueWriteBuffer,
    QueueOp, SetUserEventStatus, WaitForEvents, WaitForEventsFor, WaitOutcome,
};
use protocol::ProtocolError;

use super::handles::{native, Charge, EventObj, MemObj, Object};
use super::OpenClExecutor;
use crate::executor::{Bulk, ExecError};
use crate::segment::{InSeg, Segment};
use vm_memory::volatile_memory::{PtrGuard, PtrGuardMut};

pub(super) fn bad_descriptor() -> ExecError {
    ExecError::Protocol(ProtocolError::BadDescriptor)
}

/// Converts a guest size or offset for the runtime.
pub(super) fn usize_of(v: u64) -> Result<usize, ExecError> {
    usize::try_from(v).map_err(|_| native(CL_INVALID_VALUE))
}

/// Checks `offset..offset+size` against a buffer of `len` bytes.
pub(super) fn check_range(offset: u64, size: u64, len: u64) -> Result<(usize, usize), ExecError> {
    match offset.checked_add(size) {
        Some(end) if end <= len => Ok((usize_of(offset)?, usize_of(size)?)),
        _ => Err(native(CL_INVALID_VALUE)),
    }
}

/// The single segment of `segs`, of exactly `size` bytes.
pub(super) fn single<S: Segment>(segs: &[S], size: u64) -> Result<&S, ExecError> {
    match segs {
        [buf] if buf.seg_len() as u64 == size => Ok(buf),
        _ => Err(bad_descriptor()),
    }
}

/// The guest bytes of a blocking host transfer (a rectangle or an image):
/// the one writable segment of a read or the one readable segment of a
/// write, of exactly `len` bytes; a segment in the other direction is
/// refused. An empty transfer (`len` 0) that comes without a segment has
/// none, and the runtime is given a byte of the caller's instead.
pub(super) enum HostBytes {
    Read(PtrGuardMut),
    Write(PtrGuard),
    Nothing,
}

impl HostBytes {
    pub(super) fn of(bulk: &Bulk<'_>, len: u64, read: bool) -> Result<Self, ExecError> {
        let (wanted, stray) = match read {
            true => (bulk.output.len(), bulk.input.len()),
            false => (bulk.input.len(), bulk.output.len()),
        };
        if stray != 0 {
            return Err(bad_descriptor());
        }
        Ok(match (read, len == 0 && wanted == 0) {
            (_, true) => HostBytes::Nothing,
            (true, false) => HostBytes::Read(single(bulk.output, len)?.ptr_guard_mut()),
            (false, false) => HostBytes::Write(single(bulk.input, len)?.ptr_guard()),
        })
    }

    /// The pointer the runtime reads or writes: the guard's mapping, or
    /// `spare` when there are no bytes.
    pub(super) fn ptr(&self, spare: &mut [u8; 1]) -> *mut u8 {
        match self {
            HostBytes::Read(g) => g.as_ptr(),
            HostBytes::Write(g) => g.as_ptr().cast_mut(),
            HostBytes::Nothing => spare.as_mut_ptr(),
        }
    }
}

/// A command's runtime inputs, gathered before the call.
pub(super) struct Prepared {
    pub queue: cl_command_queue,
    wait: Vec<cl_event>,
}

impl Prepared {
    pub(super) fn wait_len(&self) -> cl_uint {
        self.wait.len() as cl_uint
    }

    pub(super) fn wait_ptr(&self) -> *const cl_event {
        if self.wait.is_empty() {
            std::ptr::null()
        } else {
            self.wait.as_ptr()
        }
    }
}

impl OpenClExecutor {
    /// Checks an enqueue's queue, wait list and event handle.
    pub(super) fn prepare(&self, common: &EnqueueCommon) -> Result<Prepared, ExecError> {
        let queue = self.table.queue(common.queue)?.get();
        if let Some(id) = common.event {
            self.check_new(id)?;
        }
        let wait = self
            .table
            .events(&common.wait, CL_INVALID_EVENT_WAIT_LIST)?;
        Ok(Prepared { queue, wait })
    }

    /// Keeps the command's event if the guest asked for it; otherwise the
    /// event is released here.
    pub(super) fn finish_enqueue(
        &mut self,
        common: &EnqueueCommon,
        event: cl_event,
    ) -> Result<Empty, ExecError> {
        let event = Event::new(event);
        if let Some(id) = common.event {
            self.table
                .insert(id, Object::Event(EventObj { event, user: false }));
        }
        Ok(Empty {})
    }

    pub(super) fn create_buffer(
        &mut self,
        req: CreateBuffer,
        bulk: &Bulk<'_>,
    ) -> Result<Empty, ExecError> {
        let host_flags = CL_MEM_USE_HOST_PTR | CL_MEM_COPY_HOST_PTR;
        let init = if req.flags & host_flags != 0 {
            if !bulk.output.is_empty() {
                return Err(bad_descriptor());
            }
            Some(single(bulk.input, req.size)?)
        } else if bulk.input.is_empty() && bulk.output.is_empty() {
            None
        } else {
            return Err(bad_descriptor());
        };
        self.check_new(req.id)?;
        let ctx = self.table.context(req.context)?.get();
        // The guest's memory cannot back a runtime buffer: USE_HOST_PTR
        // becomes a copy. Combinations native refuses stay refused.
        let mut flags = req.flags;
        if flags & CL_MEM_USE_HOST_PTR != 0 {
            if flags & (CL_MEM_COPY_HOST_PTR | CL_MEM_ALLOC_HOST_PTR) != 0 {
                return Err(native(CL_INVALID_VALUE));
            }
            flags = (flags & !CL_MEM_USE_HOST_PTR) | CL_MEM_COPY_HOST_PTR;
        }
        let size = usize::try_from(req.size)
            .map_err(|_| native(cl3::error_codes::CL_INVALID_BUFFER_SIZE))?;
        let max = self.limits.max_device_memory;
        let used = self.memory.load(Ordering::Relaxed);
        if max != 0 && used.checked_add(req.size).is_none_or(|total| total > max) {
            return Err(native(CL_MEM_OBJECT_ALLOCATION_FAILURE));
        }
        let guard = init.map(InSeg::ptr_guard);
        let host = guard
            .as_ref()
            .map_or(std::ptr::null_mut(), |g| g.as_ptr().cast_mut().cast());
        // SAFETY: `ctx` is a live context of this session. `host` is NULL or a
        // segment of exactly `size` bytes, mapped while `guard` lives (to the
        // end of this call); with COPY_HOST_PTR the runtime copies it before
        // returning, only reads it, and keeps no reference to it.
        let mem = unsafe { cl3::memory::create_buffer(ctx, flags, size, host) }.map_err(native)?;
        let obj = MemObj::buffer(
            Buffer::new(mem),
            req.size,
            Charge::new(&self.memory, req.size),
            req.flags & CL_MEM_USE_HOST_PTR != 0,
        );
        self.table.insert(req.id, Object::Mem(Arc::new(obj)));
        Ok(Empty {})
    }

    pub(super) fn create_sub_buffer(&mut self, req: CreateSubBuffer) -> Result<Empty, ExecError> {
        self.check_new(req.id)?;
        let parent = Arc::clone(self.table.buffer(req.buffer)?);
        let (origin, size) = check_range(req.origin, req.size, parent.size)?;
        let region = cl_buffer_region { origin, size };
        // SAFETY: `parent` is a live buffer of this session; `region` is a
        // valid `cl_buffer_region` that outlives the call, as
        // CL_BUFFER_CREATE_TYPE_REGION requires.
        let mem = unsafe {
            cl3::memory::create_sub_buffer(
                parent.raw(),
                req.flags,
                CL_BUFFER_CREATE_TYPE_REGION,
                (&raw const region).cast(),
            )
        }
        .map_err(native)?;
        let obj = MemObj::sub_buffer(Buffer::new(mem), req.size, parent);
        self.table.insert(req.id, Object::Mem(Arc::new(obj)));
        Ok(Empty {})
    }

    /// A write. When the guest `posted` it and it is small, the bytes are
    /// staged (see `staging`) and the runtime runs it without the daemon
    /// waiting; otherwise it runs blocking, straight from guest memory.
    pub(super) fn write_buffer(
        &mut self,
        req: EnqueueWriteBuffer,
        bulk: &Bulk<'_>,
        posted: bool,
    ) -> Result<Empty, ExecError> {
        if !bulk.output.is_empty() {
            return Err(bad_descriptor());
        }
        let src = single(bulk.input, req.size)?;
        let p = self.prepare(&req.common)?;
        let mem = self.table.buffer(req.buffer)?;
        let (offset, size) = check_range(req.offset, req.size, mem.size)?;
        if size == 0 {
            return Err(native(CL_INVALID_VALUE));
        }
        let staged = (posted && self.staging.room_for(size)).then(|| src.to_vec());
        let guard = src.ptr_guard();
        let (blocking, from) = match &staged {
            Some(copy) => (CL_FALSE, copy.as_ptr()),
            None => (CL_TRUE, guard.as_ptr()),
        };
        // SAFETY: queue, buffer and wait-list events are live objects of this
        // session; `offset..offset+size` lies inside the buffer. `from` holds
        // exactly `size` readable bytes: the segment, mapped while `guard`
        // lives, for the whole (blocking) call, or the staged copy, which is kept (below) until
        // the runtime reports the write complete.
        let ev = unsafe {
            cl3::command_queue::enqueue_write_buffer(
                p.queue,
                mem.raw(),
                blocking,
                offset,
                size,
                from.cast(),
                p.wait_len(),
                p.wait_ptr(),
            )
        }
        .map_err(native)?;
        if let Some(copy) = staged {
            // A reference of our own, so the copy outlives the guest's
            // event. Should that fail, wait: the copy must outlive the read.
            // SAFETY: `ev` is the live event the enqueue just returned.
            match unsafe { cl3::event::retain_event(ev) } {
                Ok(()) => self.staging.push(Event::new(ev), copy),
                Err(_) => {
                    let _ = cl3::event::wait_for_events(&[ev]);
                    drop(copy);
                }
            }
        }
        self.finish_enqueue(&req.common, ev)
    }

    pub(super) fn read_buffer(
        &mut self,
        req: EnqueueReadBuffer,
        bulk: &Bulk<'_>,
    ) -> Result<Empty, ExecError> {
        if !bulk.input.is_empty() {
            return Err(bad_descriptor());
        }
        let dst = single(bulk.output, req.size)?;
        let p = self.prepare(&req.common)?;
        let mem = self.table.buffer(req.buffer)?;
        let (offset, size) = check_range(req.offset, req.size, mem.size)?;
        if size == 0 {
            return Err(native(CL_INVALID_VALUE));
        }
        let guard = dst.ptr_guard_mut();
        // SAFETY: as for writes; `dst` holds exactly `size` writable bytes,
        // mapped while `guard` lives, and the read is blocking, so the
        // runtime is done with it before `guard` is dropped.
        let ev = unsafe {
            cl3::command_queue::enqueue_read_buffer(
                p.queue,
                mem.raw(),
                CL_TRUE,
                offset,
                size,
                guard.as_ptr().cast(),
                p.wait_len(),
                p.wait_ptr(),
            )
        }
        .map_err(native)?;
        self.finish_enqueue(&req.common, ev)
    }

    pub(super) fn copy_buffer(&mut self, req: EnqueueCopyBuffer) -> Result<Empty, ExecError> {
        let p = self.prepare(&req.common)?;
        let src = self.table.buffer(req.src)?;
        let dst = self.table.buffer(req.dst)?;
        let (src_offset, size) = check_range(req.src_offset, req.size, src.size)?;
        let (dst_offset, _) = check_range(req.dst_offset, req.size, dst.size)?;
        // SAFETY: queue, buffers and events are live objects of this session
        // and both ranges lie inside their buffers.
        let ev = unsafe {
            cl3::command_queue::enqueue_copy_buffer(
                p.queue,
                src.raw(),
                dst.raw(),
                src_offset,
                dst_offset,
                size,
                p.wait_len(),
                p.wait_ptr(),
            )
        }
        .map_err(native)?;
        self.finish_enqueue(&req.common, ev)
    }

    pub(super) fn fill_buffer(&mut self, req: EnqueueFillBuffer) -> Result<Empty, ExecError> {
        let p = self.prepare(&req.common)?;
        let mem = self.table.buffer(req.buffer)?;
        let (offset, size) = check_range(req.offset, req.size, mem.size)?;
        if req.pattern.is_empty() {
            return Err(native(CL_INVALID_VALUE));
        }
        // SAFETY: queue, buffer and events are live objects of this session;
        // the range lies inside the buffer; the runtime copies the pattern
        // (`pattern.len()` readable bytes) before the call returns.
        let ev = unsafe {
            cl3::command_queue::enqueue_fill_buffer(
                p.queue,
                mem.raw(),
                req.pattern.as_ptr().cast(),
                req.pattern.len(),
                offset,
                size,
                p.wait_len(),
                p.wait_ptr(),
            )
        }
        .map_err(native)?;
        self.finish_enqueue(&req.common, ev)
    }

    pub(super) fn nd_range(&mut self, req: EnqueueNdRange) -> Result<Empty, ExecError> {
        let p = self.prepare(&req.common)?;
        let kernel = self.table.kernel(req.kernel)?.kernel.get();
        let sizes = |v: &[u64]| {
            v.iter()
                .map(|&x| usize_of(x))
                .collect::<Result<Vec<_>, _>>()
        };
        let global = sizes(&req.global)?;
        let offset = sizes(&req.offset)?;
        let local = sizes(&req.local)?;
        let dim = global.len();
        if dim == 0
            || (!offset.is_empty() && offset.len() != dim)
            || (!local.is_empty() && local.len() != dim)
        {
            return Err(native(cl3::error_codes::CL_INVALID_WORK_DIMENSION));
        }
        let ptr_or_null = |v: &[usize]| {
            if v.is_empty() {
                std::ptr::null()
            } else {
                v.as_ptr()
            }
        };
        // SAFETY: queue, kernel and events are live objects of this session;
        // each size array is NULL or holds `dim` entries and outlives the
        // call. Memory arguments are kept alive by the kernel's pins.
        let ev = unsafe {
            cl3::command_queue::enqueue_nd_range_kernel(
                p.queue,
                kernel,
                dim as cl_uint,
                ptr_or_null(&offset),
                global.as_ptr(),
                ptr_or_null(&local),
                p.wait_len(),
                p.wait_ptr(),
            )
        }
        .map_err(native)?;
        self.finish_enqueue(&req.common, ev)
    }

    pub(super) fn marker(&mut self, req: EnqueueMarker) -> Result<Empty, ExecError> {
        let p = self.prepare(&req.common)?;
        if !self.markers.room() {
            return Err(native(cl3::error_codes::CL_OUT_OF_RESOURCES));
        }
        // SAFETY: the queue and events are live objects of this session; the
        // wait list is NULL or `wait_len()` events that outlive the call.
        let ev = unsafe {
            if req.barrier {
                cl3::command_queue::enqueue_barrier_with_wait_list(
                    p.queue,
                    p.wait_len(),
                    p.wait_ptr(),
                )
            } else {
                cl3::command_queue::enqueue_marker_with_wait_list(
                    p.queue,
                    p.wait_len(),
                    p.wait_ptr(),
                )
            }
        }
        .map_err(native)?;
        // Never without a handle while it can still fail (see `markers`).
        self.markers.hold(ev);
        self.finish_enqueue(&req.common, ev)
    }

    pub(super) fn finish(&mut self, req: QueueOp) -> Result<Empty, ExecError> {
        let q = self.table.queue(req.queue)?.get();
        cl3::command_queue::finish(q).map_err(native)?;
        Ok(Empty {})
    }

    pub(super) fn flush(&mut self, req: QueueOp) -> Result<Empty, ExecError> {
        let q = self.table.queue(req.queue)?.get();
        cl3::command_queue::flush(q).map_err(native)?;
        Ok(Empty {})
    }

    pub(super) fn wait_for_events(&mut self, req: WaitForEvents) -> Result<Empty, ExecError> {
        if req.events.is_empty() {
            return Err(native(CL_INVALID_VALUE));
        }
        let events = self.table.events(&req.events, CL_INVALID_EVENT)?;
        cl3::event::wait_for_events(&events).map_err(native)?;
        Ok(Empty {})
    }

    /// Waits at most `timeout_us` for the events, checking their status
    /// at growing intervals (from 20 µs to 1 ms).
    pub(super) fn wait_for_events_for(
        &mut self,
        req: WaitForEventsFor,
    ) -> Result<WaitOutcome, ExecError> {
        if req.events.is_empty() {
            return Err(native(CL_INVALID_VALUE));
        }
        let events = self.table.events(&req.events, CL_INVALID_EVENT)?;
        let deadline = Instant::now() + Duration::from_micros(u64::from(req.timeout_us));
        let mut pause = Duration::from_micros(20);
        loop {
            let mut done = true;
            for &ev in &events {
                let status = cl3::event::get_event_info(ev, CL_EVENT_COMMAND_EXECUTION_STATUS)
                    .map_err(native)?
                    .to_int();
                if status < 0 {
                    return Err(native(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST));
                }
                done &= status == cl3::event::CL_COMPLETE;
            }
            let now = Instant::now();
            if done || now >= deadline {
                return Ok(WaitOutcome { done });
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(1));
        }
    }

    pub(super) fn create_user_event(&mut self, req: CreateUserEvent) -> Result<Empty, ExecError> {
        self.check_new(req.id)?;
        let ctx = self.table.context(req.context)?.get();
        let ev = cl3::event::create_user_event(ctx).map_err(native)?;
        self.user_events.add(ev);
        self.table.insert(
            req.id,
            Object::Event(EventObj {
                event: Event::new(ev),
                user: true,
            }),
        );
        Ok(Empty {})
    }

    pub(super) fn set_user_event_status(
        &mut self,
        req: SetUserEventStatus,
    ) -> Result<Empty, ExecError> {
        let ev = self.table.event(req.event)?.event.get();
        let status: cl_int = req.status;
        cl3::event::set_user_event_status(ev, status).map_err(native)?;
        Ok(Empty {})
    }
}
