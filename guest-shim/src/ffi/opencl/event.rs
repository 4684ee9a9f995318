//! Events: the ones enqueues create, user events, waits and callbacks.
//!
//! Callbacks registered with `clSetEventCallback` run at the next sync point
//! that proves their event finished: `clFinish` on its queue,
//! `clWaitForEvents` naming it, `clSetUserEventStatus` on it, or a
//! `clGetEventInfo` that reports it complete. The event is retained while a
//! callback is pending, as the program may release it first.

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use opencl_sys::{
    cl_context, cl_event, cl_event_info, cl_int, cl_profiling_info, cl_uint, CL_COMPLETE,
    CL_INVALID_CONTEXT, CL_INVALID_EVENT, CL_INVALID_EVENT_WAIT_LIST, CL_INVALID_VALUE, CL_RUNNING,
    CL_SUBMITTED,
};
use protocol::limits::MAX_LIST_LEN;
use protocol::opencl::{
    CreateUserEvent, EnqueueCommon, EnqueueMarker, Handle, InfoKind, ObjectKind, Release,
    SetUserEventStatus, WaitForEvents, WaitForEventsFor,
};
use protocol::{Request, Response};

use super::info::{object_info, query};
use super::objects::{self, lock, Data, EventCallback, Record};
use super::{call, client, creating, post, release_entry, retain_entry, status, unexpected};
use crate::ffi::{slice_in, write_opt};

/// `CL_EVENT_COMMAND_EXECUTION_STATUS`
const EXECUTION_STATUS: u32 = 0x11D3;

/// Type of a `clSetEventCallback` function.
type EventNotify = Option<unsafe extern "C" fn(cl_event, cl_int, *mut c_void)>;

/// User events made and not yet set: while there are any, a wait may be
/// one that only another thread of the program can end.
static PENDING_USER_EVENTS: AtomicUsize = AtomicUsize::new(0);

/// How long one bounded wait may hold the session.
const WAIT_SLICE_US: u32 = 10_000;

/// True while some user event has not been set.
pub(crate) fn user_events_pending() -> bool {
    PENDING_USER_EVENTS.load(Ordering::SeqCst) > 0
}

/// Waits for `events` in bounded slices, so that between them the calls
/// of the program's other threads (which may set the user events the
/// wait depends on) reach the daemon. The daemon serves a session in
/// order on one thread, so one unbounded wait would hold them all up.
pub(crate) fn wait_bounded(events: &[Handle]) -> Result<(), cl_int> {
    loop {
        let req = Request::ClWaitForEventsFor(WaitForEventsFor {
            events: events.to_vec(),
            timeout_us: WAIT_SLICE_US,
        });
        match call(req, &[], &mut [])? {
            Response::ClWaitForEventsFor(w) if w.done => return Ok(()),
            Response::ClWaitForEventsFor(_) => std::thread::yield_now(),
            other => return Err(unexpected(&other)),
        }
    }
}

/// Before a command that blocks in the daemon: while user events are
/// pending, waits in bounded slices for everything the command would wait
/// for (a marker on `queue` behind `wait`), and returns the wait list the
/// command still needs (none then; `wait` itself otherwise).
pub(crate) fn settle(queue: Handle, wait: Vec<Handle>) -> Result<Vec<Handle>, cl_int> {
    if !user_events_pending() {
        return Ok(wait);
    }
    let marker = client()?.new_handle();
    post(
        Request::ClEnqueueMarker(EnqueueMarker {
            common: EnqueueCommon {
                queue,
                wait,
                event: Some(marker),
            },
            barrier: false,
        }),
        &[],
    )?;
    let waited = wait_bounded(&[marker]);
    // A failure leaves the marker to the session's cleanup.
    let _ = post(
        Request::ClRelease(Release {
            kind: ObjectKind::Event,
            object: marker,
        }),
        &[],
    );
    waited.map(|()| Vec::new())
}

/// Reads and checks an event wait list; returns the event records.
///
/// # Safety
/// `list` is NULL or holds `n` entries.
pub(crate) unsafe fn wait_list(
    n: cl_uint,
    list: *const cl_event,
    context: &Arc<Record>,
) -> Result<Vec<Handle>, cl_int> {
    if (n == 0) != list.is_null() || n as usize > MAX_LIST_LEN {
        return Err(CL_INVALID_EVENT_WAIT_LIST);
    }
    // SAFETY: the caller's contract.
    let events = unsafe { slice_in(list, n as usize) }.ok_or(CL_INVALID_EVENT_WAIT_LIST)?;
    events
        .iter()
        .map(|e| {
            let r = objects::get(*e, ObjectKind::Event).ok_or(CL_INVALID_EVENT_WAIT_LIST)?;
            match r.context() {
                Some(c) if Arc::ptr_eq(&c, context) => Ok(r.handle),
                _ => Err(CL_INVALID_CONTEXT),
            }
        })
        .collect()
}

/// A fresh handle for a command's event when the caller asked for one.
pub(crate) fn event_handle(out: *mut cl_event) -> Result<Option<Handle>, cl_int> {
    if out.is_null() {
        return Ok(None);
    }
    Ok(Some(client()?.new_handle()))
}

/// Registers the event of a command the daemon accepted and hands it out.
///
/// # Safety
/// `out` is NULL or writable.
pub(crate) unsafe fn publish(queue: &Arc<Record>, handle: Option<Handle>, out: *mut cl_event) {
    let (Some(h), false) = (handle, out.is_null()) else {
        return;
    };
    let Some(context) = queue.context() else {
        return;
    };
    let ev = objects::register(
        ObjectKind::Event,
        h,
        Data::Event {
            context,
            queue: Some(queue.clone()),
            callbacks: Mutex::new(Vec::new()),
            status_set: AtomicBool::new(false),
        },
    );
    // SAFETY: the caller's contract.
    unsafe { write_opt(out, ev.cl_ptr()) };
}

/// Runs and forgets the pending callbacks of one event.
fn fire(ev: &Record, status: cl_int) {
    let Data::Event { callbacks, .. } = &ev.data else {
        return;
    };
    let pending = std::mem::take(&mut *lock(callbacks));
    for cb in pending {
        let st = if status < 0 { status } else { cb.on };
        // SAFETY: the program registered `func` for this event with this
        // user data; the event is alive (retained while pending).
        unsafe { (cb.func)(ev.cl_ptr(), st, cb.user_data as *mut c_void) };
        clReleaseEvent(ev.cl_ptr());
    }
}

/// Runs the callbacks of every event of `queue` (after `clFinish`).
pub(crate) fn fire_queue_callbacks(queue: &Arc<Record>) {
    for ev in objects::all_of(ObjectKind::Event) {
        if let Data::Event { queue: Some(q), .. } = &ev.data {
            if Arc::ptr_eq(q, queue) {
                fire(&ev, CL_COMPLETE);
            }
        }
    }
}

/// # Safety
/// `event_list` holds `num_events` entries.
#[no_mangle]
pub unsafe extern "C" fn clWaitForEvents(
    num_events: cl_uint,
    event_list: *const cl_event,
) -> cl_int {
    status("clWaitForEvents", || {
        if num_events == 0 || event_list.is_null() || num_events as usize > MAX_LIST_LEN {
            return Err(CL_INVALID_VALUE);
        }
        // SAFETY: the caller's contract.
        let list = unsafe { slice_in(event_list, num_events as usize) }.ok_or(CL_INVALID_VALUE)?;
        let events = list
            .iter()
            .map(|e| objects::get(*e, ObjectKind::Event).ok_or(CL_INVALID_EVENT))
            .collect::<Result<Vec<_>, _>>()?;
        let ctx = events.first().and_then(|e| e.context());
        for e in &events {
            match (e.context(), &ctx) {
                (Some(a), Some(b)) if Arc::ptr_eq(&a, b) => {}
                _ => return Err(CL_INVALID_CONTEXT),
            }
        }
        let handles: Vec<Handle> = events.iter().map(|e| e.handle).collect();
        if user_events_pending() {
            wait_bounded(&handles)?;
        } else {
            let req = Request::ClWaitForEvents(WaitForEvents { events: handles });
            match call(req, &[], &mut [])? {
                Response::ClWaitForEvents(_) => {}
                other => return Err(unexpected(&other)),
            }
        }
        for e in &events {
            fire(e, CL_COMPLETE);
        }
        Ok(())
    })
}

/// # Safety
/// `param_value` is NULL or holds `param_value_size` writable bytes;
/// `param_value_size_ret` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn clGetEventInfo(
    event: cl_event,
    param_name: cl_event_info,
    param_value_size: usize,
    param_value: *mut c_void,
    param_value_size_ret: *mut usize,
) -> cl_int {
    status("clGetEventInfo", || {
        let ev = objects::get(event, ObjectKind::Event).ok_or(CL_INVALID_EVENT)?;
        let (size, value, ret) = (param_value_size, param_value, param_value_size_ret);
        // SAFETY: the caller's contract.
        unsafe { query(&ev, InfoKind::Event, 0, param_name, size, value, ret) }?;
        if param_name == EXECUTION_STATUS && !value.is_null() && size >= 4 {
            // SAFETY: at least 4 bytes were written just above.
            let st = unsafe { value.cast::<cl_int>().read_unaligned() };
            if st <= CL_COMPLETE {
                fire(&ev, st);
            }
        }
        Ok(())
    })
}

/// # Safety
/// As [`clGetEventInfo`].
#[no_mangle]
pub unsafe extern "C" fn clGetEventProfilingInfo(
    event: cl_event,
    param_name: cl_profiling_info,
    param_value_size: usize,
    param_value: *mut c_void,
    param_value_size_ret: *mut usize,
) -> cl_int {
    // SAFETY: the caller's contract, forwarded.
    unsafe {
        object_info(
            "clGetEventProfilingInfo",
            event,
            ObjectKind::Event,
            CL_INVALID_EVENT,
            InfoKind::EventProfiling,
            0,
            param_name,
            param_value_size,
            param_value,
            param_value_size_ret,
        )
    }
}

#[no_mangle]
pub extern "C" fn clRetainEvent(event: cl_event) -> cl_int {
    retain_entry("clRetainEvent", event, ObjectKind::Event, CL_INVALID_EVENT)
}

#[no_mangle]
pub extern "C" fn clReleaseEvent(event: cl_event) -> cl_int {
    release_entry("clReleaseEvent", event, ObjectKind::Event, CL_INVALID_EVENT)
}

/// # Safety
/// `pfn_notify` may be called later with `user_data`, per the API.
#[no_mangle]
pub unsafe extern "C" fn clSetEventCallback(
    event: cl_event,
    command_exec_callback_type: cl_int,
    pfn_notify: EventNotify,
    user_data: *mut c_void,
) -> cl_int {
    status("clSetEventCallback", || {
        let ev = objects::get(event, ObjectKind::Event).ok_or(CL_INVALID_EVENT)?;
        let func = pfn_notify.ok_or(CL_INVALID_VALUE)?;
        if ![CL_COMPLETE, CL_RUNNING, CL_SUBMITTED].contains(&command_exec_callback_type) {
            return Err(CL_INVALID_VALUE);
        }
        let Data::Event { callbacks, .. } = &ev.data else {
            return Err(CL_INVALID_EVENT);
        };
        if !objects::retain(event, ObjectKind::Event) {
            return Err(CL_INVALID_EVENT);
        }
        lock(callbacks).push(EventCallback {
            on: command_exec_callback_type,
            func,
            user_data: user_data as usize,
        });
        Ok(())
    })
}

/// # Safety
/// `errcode_ret` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn clCreateUserEvent(
    context: cl_context,
    errcode_ret: *mut cl_int,
) -> cl_event {
    let body = || {
        let ctx = objects::get(context, ObjectKind::Context).ok_or(CL_INVALID_CONTEXT)?;
        let id = client()?.new_handle();
        let req = Request::ClCreateUserEvent(CreateUserEvent {
            id,
            context: ctx.handle,
        });
        match call(req, &[], &mut [])? {
            Response::ClCreateUserEvent(_) => Ok({
                PENDING_USER_EVENTS.fetch_add(1, Ordering::SeqCst);
                objects::register(
                    ObjectKind::Event,
                    id,
                    Data::Event {
                        context: ctx,
                        queue: None,
                        callbacks: Mutex::new(Vec::new()),
                        status_set: AtomicBool::new(false),
                    },
                )
                .cl_ptr()
            }),
            other => Err(unexpected(&other)),
        }
    };
    // SAFETY: the caller's contract.
    unsafe { creating("clCreateUserEvent", errcode_ret, body) }
}

#[no_mangle]
pub extern "C" fn clSetUserEventStatus(event: cl_event, execution_status: cl_int) -> cl_int {
    status("clSetUserEventStatus", || {
        let ev = objects::get(event, ObjectKind::Event).ok_or(CL_INVALID_EVENT)?;
        let Data::Event {
            queue: None,
            status_set,
            ..
        } = &ev.data
        else {
            return Err(CL_INVALID_EVENT);
        };
        if execution_status > CL_COMPLETE {
            return Err(CL_INVALID_VALUE);
        }
        let req = Request::ClSetUserEventStatus(SetUserEventStatus {
            event: ev.handle,
            status: execution_status,
        });
        match call(req, &[], &mut [])? {
            Response::ClSetUserEventStatus(_) => {}
            other => return Err(unexpected(&other)),
        }
        if !status_set.swap(true, Ordering::SeqCst) {
            PENDING_USER_EVENTS.fetch_sub(1, Ordering::SeqCst);
        }
        fire(&ev, execution_status);
        Ok(())
    })
}
