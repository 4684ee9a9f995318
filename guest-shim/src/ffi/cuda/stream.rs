//! Streams and events. Creation and destruction are posted (the shim names
//! the handle, so no answer is needed), as are event records and stream
//! waits; synchronizations and queries are round trips that also return
//! any sticky error of earlier asynchronous calls.

use std::ffi::{c_int, c_uint};

use protocol::cuda::{
    Elapsed, EventCreate, EventElapsedTime, EventOp, EventRecord, StreamCreate, StreamDestroy,
    StreamOp, StreamRef, StreamWaitEvent,
};
use protocol::opencl::Handle;
use protocol::{Request, Response};

use super::state::{self, Event, Kind, Stream};
use super::types::*;
use super::{
    call, client, current_ctx, entry, out, post, stream_ref, unexpected, CuResult, NullStream,
};

fn event_handle(e: Opaque) -> CuResult<Handle> {
    let h = state::from_opaque(Kind::Event, e).ok_or(CUDA_ERROR_INVALID_HANDLE)?;
    if state::with(|s| s.events.contains_key(&h)) {
        Ok(h)
    } else {
        Err(CUDA_ERROR_INVALID_HANDLE)
    }
}

fn create_stream(ph: *mut Opaque, flags: c_uint, priority: c_int) -> CuResult {
    if ph.is_null() || flags & !CU_STREAM_FLAGS_MASK != 0 {
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    let ctx = current_ctx()?;
    let id = client()?.new_handle();
    post(
        Request::CuStreamCreate(StreamCreate {
            id,
            ctx,
            flags,
            priority,
        }),
        &[],
    )?;
    state::with(|s| {
        s.streams.insert(
            id,
            Stream {
                ctx,
                flags,
                priority,
                capture: None,
            },
        )
    });
    // SAFETY: checked non-null; the caller's contract.
    unsafe { out(ph, state::to_opaque(Kind::Stream, id)) }
}

/// `cuStreamCreate`
///
/// # Safety
/// `ph` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuStreamCreate(ph: *mut Opaque, flags: c_uint) -> CUresult {
    entry("cuStreamCreate", || create_stream(ph, flags, 0))
}

/// `cuStreamCreateWithPriority`
///
/// # Safety
/// `ph` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuStreamCreateWithPriority(
    ph: *mut Opaque,
    flags: c_uint,
    priority: c_int,
) -> CUresult {
    entry("cuStreamCreateWithPriority", || {
        create_stream(ph, flags, priority)
    })
}

/// `cuStreamDestroy_v2` (posted; pending work on it still completes).
#[no_mangle]
pub extern "C" fn cuStreamDestroy_v2(h: Opaque) -> CUresult {
    entry("cuStreamDestroy_v2", || {
        let id = state::from_opaque(Kind::Stream, h).ok_or(CUDA_ERROR_INVALID_HANDLE)?;
        state::with(|s| s.streams.remove(&id)).ok_or(CUDA_ERROR_INVALID_HANDLE)?;
        post(Request::CuStreamDestroy(StreamDestroy { stream: id }), &[])
    })
}

/// A stream's record, for the local queries.
fn stream_record(h: Opaque) -> CuResult<Option<Stream>> {
    match stream_ref(h, NullStream::Legacy)? {
        StreamRef::Stream(id) => Ok(state::with(|s| s.streams.get(&id).cloned())),
        _ => Ok(None),
    }
}

macro_rules! stream_entries {
    ($( $sync:ident, $query:ident, $wait:ident, $flags:ident, $prio:ident, $ctx:ident, $null:expr; )*) => { $(
        /// `cuStreamSynchronize`
        #[no_mangle]
        pub extern "C" fn $sync(h: Opaque) -> CUresult {
            entry(stringify!($sync), || {
                let stream = stream_ref(h, $null)?;
                match call(Request::CuStreamSynchronize(StreamOp { stream }), &[], &mut [])? {
                    Response::CuStreamSynchronize(_) => Ok(()),
                    r => Err(unexpected(r)),
                }
            })
        }

        /// `cuStreamQuery`: `CUDA_ERROR_NOT_READY` while work is pending.
        #[no_mangle]
        pub extern "C" fn $query(h: Opaque) -> CUresult {
            entry(stringify!($query), || {
                let stream = stream_ref(h, $null)?;
                match call(Request::CuStreamQuery(StreamOp { stream }), &[], &mut [])? {
                    Response::CuStreamQuery(_) => Ok(()),
                    r => Err(unexpected(r)),
                }
            })
        }

        /// `cuStreamWaitEvent` (posted).
        #[no_mangle]
        pub extern "C" fn $wait(h: Opaque, event: Opaque, flags: c_uint) -> CUresult {
            entry(stringify!($wait), || {
                let stream = stream_ref(h, $null)?;
                let event = event_handle(event)?;
                post(
                    Request::CuStreamWaitEvent(StreamWaitEvent {
                        stream,
                        event,
                        flags,
                    }),
                    &[],
                )
            })
        }

        /// `cuStreamGetFlags` (0 for the default streams).
        ///
        /// # Safety
        /// `flags` is NULL or writable.
        #[no_mangle]
        pub unsafe extern "C" fn $flags(h: Opaque, flags: *mut c_uint) -> CUresult {
            entry(stringify!($flags), || {
                let f = stream_record(h)?.map_or(0, |s| s.flags);
                // SAFETY: the caller's contract.
                unsafe { out(flags, f) }
            })
        }

        /// `cuStreamGetPriority` (0 for the default streams).
        ///
        /// # Safety
        /// `priority` is NULL or writable.
        #[no_mangle]
        pub unsafe extern "C" fn $prio(h: Opaque, priority: *mut c_int) -> CUresult {
            entry(stringify!($prio), || {
                let p = stream_record(h)?.map_or(0, |s| s.priority);
                // SAFETY: the caller's contract.
                unsafe { out(priority, p) }
            })
        }

        /// `cuStreamGetCtx`
        ///
        /// # Safety
        /// `pctx` is NULL or writable.
        #[no_mangle]
        pub unsafe extern "C" fn $ctx(h: Opaque, pctx: *mut Opaque) -> CUresult {
            entry(stringify!($ctx), || {
                let ctx = match stream_ref(h, $null)? {
                    StreamRef::Stream(id) => state::with(|s| s.streams.get(&id).map(|s| s.ctx))
                        .ok_or(CUDA_ERROR_INVALID_HANDLE)?,
                    StreamRef::Legacy { ctx } | StreamRef::PerThread { ctx } => ctx,
                };
                // SAFETY: the caller's contract.
                unsafe { out(pctx, state::to_opaque(Kind::Context, ctx)) }
            })
        }
    )* };
}

stream_entries! {
    cuStreamSynchronize, cuStreamQuery, cuStreamWaitEvent, cuStreamGetFlags,
        cuStreamGetPriority, cuStreamGetCtx, NullStream::Legacy;
    cuStreamSynchronize_ptsz, cuStreamQuery_ptsz, cuStreamWaitEvent_ptsz, cuStreamGetFlags_ptsz,
        cuStreamGetPriority_ptsz, cuStreamGetCtx_ptsz, NullStream::PerThread;
}

/// `cuEventCreate` (posted).
///
/// # Safety
/// `ph` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuEventCreate(ph: *mut Opaque, flags: c_uint) -> CUresult {
    entry("cuEventCreate", || {
        if ph.is_null() || flags & !CU_EVENT_FLAGS_MASK != 0 {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let ctx = current_ctx()?;
        let id = client()?.new_handle();
        post(Request::CuEventCreate(EventCreate { id, ctx, flags }), &[])?;
        state::with(|s| s.events.insert(id, Event { ctx }));
        // SAFETY: checked non-null; the caller's contract.
        unsafe { out(ph, state::to_opaque(Kind::Event, id)) }
    })
}

/// `cuEventDestroy_v2` (posted).
#[no_mangle]
pub extern "C" fn cuEventDestroy_v2(h: Opaque) -> CUresult {
    entry("cuEventDestroy_v2", || {
        let id = event_handle(h)?;
        state::with(|s| s.events.remove(&id));
        post(Request::CuEventDestroy(EventOp { event: id }), &[])
    })
}

fn record(event: Opaque, stream: Opaque, flags: c_uint, null: NullStream) -> CuResult {
    let event = event_handle(event)?;
    let stream = stream_ref(stream, null)?;
    post(
        Request::CuEventRecord(EventRecord {
            event,
            stream,
            flags,
        }),
        &[],
    )
}

/// `cuEventRecord` (posted).
#[no_mangle]
pub extern "C" fn cuEventRecord(event: Opaque, stream: Opaque) -> CUresult {
    entry("cuEventRecord", || {
        record(event, stream, 0, NullStream::Legacy)
    })
}

/// `cuEventRecord_ptsz` (posted).
#[no_mangle]
pub extern "C" fn cuEventRecord_ptsz(event: Opaque, stream: Opaque) -> CUresult {
    entry("cuEventRecord_ptsz", || {
        record(event, stream, 0, NullStream::PerThread)
    })
}

/// `cuEventRecordWithFlags` (posted).
#[no_mangle]
pub extern "C" fn cuEventRecordWithFlags(event: Opaque, stream: Opaque, flags: c_uint) -> CUresult {
    entry("cuEventRecordWithFlags", || {
        record(event, stream, flags, NullStream::Legacy)
    })
}

/// `cuEventRecordWithFlags_ptsz` (posted).
#[no_mangle]
pub extern "C" fn cuEventRecordWithFlags_ptsz(
    event: Opaque,
    stream: Opaque,
    flags: c_uint,
) -> CUresult {
    entry("cuEventRecordWithFlags_ptsz", || {
        record(event, stream, flags, NullStream::PerThread)
    })
}

/// `cuEventSynchronize`
#[no_mangle]
pub extern "C" fn cuEventSynchronize(h: Opaque) -> CUresult {
    entry("cuEventSynchronize", || {
        let event = event_handle(h)?;
        match call(Request::CuEventSynchronize(EventOp { event }), &[], &mut [])? {
            Response::CuEventSynchronize(_) => Ok(()),
            r => Err(unexpected(r)),
        }
    })
}

/// `cuEventQuery`: `CUDA_ERROR_NOT_READY` until the event completes.
#[no_mangle]
pub extern "C" fn cuEventQuery(h: Opaque) -> CUresult {
    entry("cuEventQuery", || {
        let event = event_handle(h)?;
        match call(Request::CuEventQuery(EventOp { event }), &[], &mut [])? {
            Response::CuEventQuery(_) => Ok(()),
            r => Err(unexpected(r)),
        }
    })
}

/// `cuEventElapsedTime`
///
/// # Safety
/// `ms` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuEventElapsedTime(ms: *mut f32, start: Opaque, end: Opaque) -> CUresult {
    entry("cuEventElapsedTime", || {
        let (start, end) = (event_handle(start)?, event_handle(end)?);
        if ms.is_null() {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let e: Elapsed = match call(
            Request::CuEventElapsedTime(EventElapsedTime { start, end }),
            &[],
            &mut [],
        )? {
            Response::CuEventElapsedTime(e) => e,
            r => return Err(unexpected(r)),
        };
        // SAFETY: the caller's contract.
        unsafe { out(ms, e.millis()) }
    })
}

/// `cuEventElapsedTime_v2` (CUDA 12.8: the same contract).
///
/// # Safety
/// `ms` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuEventElapsedTime_v2(
    ms: *mut f32,
    start: Opaque,
    end: Opaque,
) -> CUresult {
    // SAFETY: same contract.
    unsafe { cuEventElapsedTime(ms, start, end) }
}
