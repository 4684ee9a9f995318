//! Stream capture and graphs, replayed on the daemon's driver.
//!
//! A capture begins and ends on the daemon's real stream (posted and
//! synchronous respectively); what is posted on the stream in between is
//! captured there. The shim keeps each stream's capture state, so the
//! queries the runtime makes before nearly every copy
//! (`cuStreamIsCapturing`, `cuStreamGetCaptureInfo`) and the per-thread
//! capture mode are answered locally. Graph handles are chosen by the
//! shim: the one a capture will produce is named when it begins, so that
//! `cuStreamGetCaptureInfo` can report it. Only streams the program
//! created can be captured. Launches, destructions and frees of graphs are
//! posted.

use std::cell::Cell;
use std::ffi::{c_uint, c_void};
use std::sync::atomic::{AtomicU64, Ordering};

use protocol::cuda::{
    GraphInstantiate, GraphLaunch, GraphOp, StreamBeginCapture, StreamEndCapture, StreamRef,
};
use protocol::opencl::Handle;
use protocol::{Request, Response};

use super::state::{self, Capture, Kind};
use super::types::*;
use super::{call, client, entry, out, post, stream_ref, unexpected, CuResult, NullStream};

/// `CU_STREAM_CAPTURE_STATUS_NONE`
const STATUS_NONE: c_uint = 0;
/// `CU_STREAM_CAPTURE_STATUS_ACTIVE`
const STATUS_ACTIVE: c_uint = 1;
/// `CU_STREAM_CAPTURE_MODE_RELAXED`, the largest `CUstreamCaptureMode`.
const MODE_MAX: c_uint = 2;

/// Capture ids, unique in the process as the driver's are.
static NEXT_CAPTURE: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's capture mode (`cuThreadExchangeStreamCaptureMode`).
    static MODE: Cell<c_uint> = const { Cell::new(0) };
}

/// The created stream behind `s`; capture is not supported on the
/// default streams.
fn capturable(s: Opaque, null: NullStream) -> CuResult<Handle> {
    match stream_ref(s, null)? {
        StreamRef::Stream(h) => Ok(h),
        _ => Err(CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED),
    }
}

/// The capture a stream is in, if any (none for the default streams).
/// One lookup for a created stream: the runtime asks before every copy.
fn capture_of(s: Opaque, null: NullStream) -> CuResult<Option<Capture>> {
    if let Some(h) = state::from_opaque(Kind::Stream, s) {
        return state::with(|st| st.streams.get(&h).map(|s| s.capture))
            .ok_or(CUDA_ERROR_INVALID_HANDLE);
    }
    stream_ref(s, null).map(|_| None)
}

fn begin(s: Opaque, mode: c_uint, null: NullStream) -> CuResult {
    if mode > MODE_MAX {
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    let h = capturable(s, null)?;
    if capture_of(s, null)?.is_some() {
        return Err(CUDA_ERROR_ILLEGAL_STATE);
    }
    let graph = client()?.new_handle();
    post(
        Request::CuStreamBeginCapture(StreamBeginCapture {
            stream: StreamRef::Stream(h),
            mode,
        }),
        &[],
    )?;
    let cap = Capture {
        graph,
        id: NEXT_CAPTURE.fetch_add(1, Ordering::Relaxed),
        mode,
    };
    state::with(|st| {
        if let Some(s) = st.streams.get_mut(&h) {
            s.capture = Some(cap);
        }
    });
    Ok(())
}

fn end(s: Opaque, pgraph: *mut Opaque, null: NullStream) -> CuResult {
    if pgraph.is_null() {
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    let h = capturable(s, null)?;
    let cap = state::with(|st| st.streams.get_mut(&h).and_then(|s| s.capture.take()))
        .ok_or(CUDA_ERROR_ILLEGAL_STATE)?;
    let ctx = super::current_ctx()?;
    match call(
        Request::CuStreamEndCapture(StreamEndCapture {
            stream: StreamRef::Stream(h),
            graph: cap.graph,
        }),
        &[],
        &mut [],
    )? {
        Response::CuStreamEndCapture(_) => {}
        r => return Err(unexpected(r)),
    }
    state::with(|st| st.graphs.insert(cap.graph, ctx));
    // SAFETY: checked non-null; the caller's contract.
    unsafe { out(pgraph, state::to_opaque(Kind::Graph, cap.graph)) }
}

/// Writes a stream's capture status and id (either may be NULL).
///
/// # Safety
/// `status` and `id` are NULL or writable.
unsafe fn info(cap: Option<Capture>, status: *mut c_uint, id: *mut u64) {
    // SAFETY: the caller's contract.
    unsafe {
        crate::ffi::write_opt(status, cap.map_or(STATUS_NONE, |_| STATUS_ACTIVE));
        crate::ffi::write_opt(id, cap.map_or(0, |c| c.id));
    }
}

/// The graph a capture builds and its (empty, to the program) list of
/// dependencies.
///
/// # Safety
/// The outputs are NULL or writable.
unsafe fn capture_graph(
    cap: Option<Capture>,
    graph: *mut Opaque,
    deps: *mut *const c_void,
    num_deps: *mut usize,
) {
    let g = cap.map_or(std::ptr::null_mut(), |c| {
        state::to_opaque(Kind::Graph, c.graph)
    });
    // SAFETY: the caller's contract.
    unsafe {
        crate::ffi::write_opt(graph, g);
        crate::ffi::write_opt(deps, std::ptr::null());
        crate::ffi::write_opt(num_deps, 0);
    }
}

macro_rules! capture_entries {
    ($( $begin:ident, $end:ident, $is:ident, $info1:ident, $info2:ident, $info3:ident, $null:expr; )*) => { $(
        /// `cuStreamBeginCapture_v2` (posted).
        #[no_mangle]
        pub extern "C" fn $begin(s: Opaque, mode: c_uint) -> CUresult {
            entry(stringify!($begin), || begin(s, mode, $null))
        }

        /// `cuStreamEndCapture`: the graph of the capture.
        ///
        /// # Safety
        /// `graph` is NULL or writable.
        #[no_mangle]
        pub unsafe extern "C" fn $end(s: Opaque, graph: *mut Opaque) -> CUresult {
            entry(stringify!($end), || end(s, graph, $null))
        }

        /// `cuStreamIsCapturing` (answered locally).
        ///
        /// # Safety
        /// `status` is NULL or writable.
        #[no_mangle]
        pub unsafe extern "C" fn $is(s: Opaque, status: *mut c_uint) -> CUresult {
            entry(stringify!($is), || {
                let cap = capture_of(s, $null)?;
                // SAFETY: the caller's contract.
                unsafe { out(status, cap.map_or(STATUS_NONE, |_| STATUS_ACTIVE)) }
            })
        }

        /// `cuStreamGetCaptureInfo` (answered locally).
        ///
        /// # Safety
        /// The outputs are NULL or writable.
        #[no_mangle]
        pub unsafe extern "C" fn $info1(s: Opaque, status: *mut c_uint, id: *mut u64) -> CUresult {
            entry(stringify!($info1), || {
                let cap = capture_of(s, $null)?;
                // SAFETY: the caller's contract.
                unsafe { info(cap, status, id) };
                Ok(())
            })
        }

        /// `cuStreamGetCaptureInfo_v2` (answered locally).
        ///
        /// # Safety
        /// The outputs are NULL or writable.
        #[no_mangle]
        pub unsafe extern "C" fn $info2(
            s: Opaque,
            status: *mut c_uint,
            id: *mut u64,
            graph: *mut Opaque,
            deps: *mut *const c_void,
            num_deps: *mut usize,
        ) -> CUresult {
            entry(stringify!($info2), || {
                let cap = capture_of(s, $null)?;
                // SAFETY: the caller's contract.
                unsafe {
                    info(cap, status, id);
                    capture_graph(cap, graph, deps, num_deps);
                }
                Ok(())
            })
        }

        /// `cuStreamGetCaptureInfo_v3` (answered locally; no edge data).
        ///
        /// # Safety
        /// The outputs are NULL or writable.
        #[no_mangle]
        pub unsafe extern "C" fn $info3(
            s: Opaque,
            status: *mut c_uint,
            id: *mut u64,
            graph: *mut Opaque,
            deps: *mut *const c_void,
            edges: *mut *const c_void,
            num_deps: *mut usize,
        ) -> CUresult {
            entry(stringify!($info3), || {
                let cap = capture_of(s, $null)?;
                // SAFETY: the caller's contract.
                unsafe {
                    info(cap, status, id);
                    capture_graph(cap, graph, deps, num_deps);
                    crate::ffi::write_opt(edges, std::ptr::null());
                }
                Ok(())
            })
        }
    )* };
}

capture_entries! {
    cuStreamBeginCapture_v2, cuStreamEndCapture, cuStreamIsCapturing, cuStreamGetCaptureInfo,
        cuStreamGetCaptureInfo_v2, cuStreamGetCaptureInfo_v3, NullStream::Legacy;
    cuStreamBeginCapture_v2_ptsz, cuStreamEndCapture_ptsz, cuStreamIsCapturing_ptsz,
        cuStreamGetCaptureInfo_ptsz, cuStreamGetCaptureInfo_v2_ptsz, cuStreamGetCaptureInfo_v3_ptsz,
        NullStream::PerThread;
}

/// `cuThreadExchangeStreamCaptureMode`: this thread's mode, swapped
/// (answered locally).
///
/// # Safety
/// `mode` is NULL or readable and writable.
#[no_mangle]
pub unsafe extern "C" fn cuThreadExchangeStreamCaptureMode(mode: *mut c_uint) -> CUresult {
    entry("cuThreadExchangeStreamCaptureMode", || {
        // SAFETY: the caller's contract.
        let new = unsafe { super::read(mode) }?;
        if new > MODE_MAX {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let old = MODE.with(|m| m.replace(new));
        // SAFETY: the caller's contract.
        unsafe { out(mode, old) }
    })
}

fn graph_handle(g: Opaque) -> CuResult<Handle> {
    let h = state::from_opaque(Kind::Graph, g).ok_or(CUDA_ERROR_INVALID_VALUE)?;
    state::with(|s| s.graphs.contains_key(&h))
        .then_some(h)
        .ok_or(CUDA_ERROR_INVALID_VALUE)
}

fn exec_handle(g: Opaque) -> CuResult<Handle> {
    let h = state::from_opaque(Kind::GraphExec, g).ok_or(CUDA_ERROR_INVALID_VALUE)?;
    state::with(|s| s.execs.contains_key(&h))
        .then_some(h)
        .ok_or(CUDA_ERROR_INVALID_VALUE)
}

/// `cuGraphInstantiateWithFlags` (also `cuGraphInstantiate` from CUDA 12).
///
/// # Safety
/// `exec` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuGraphInstantiateWithFlags(
    exec: *mut Opaque,
    graph: Opaque,
    flags: u64,
) -> CUresult {
    entry("cuGraphInstantiateWithFlags", || {
        let graph = graph_handle(graph)?;
        if exec.is_null() {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let id = client()?.new_handle();
        let ctx = state::with(|s| s.graphs.get(&graph).copied()).ok_or(CUDA_ERROR_INVALID_VALUE)?;
        match call(
            Request::CuGraphInstantiate(GraphInstantiate {
                exec: id,
                graph,
                flags,
            }),
            &[],
            &mut [],
        )? {
            Response::CuGraphInstantiate(_) => {}
            r => return Err(unexpected(r)),
        }
        state::with(|s| s.execs.insert(id, ctx));
        // SAFETY: checked non-null; the caller's contract.
        unsafe { out(exec, state::to_opaque(Kind::GraphExec, id)) }
    })
}

fn launch(exec: Opaque, s: Opaque, null: NullStream) -> CuResult {
    let exec = exec_handle(exec)?;
    let stream = stream_ref(s, null)?;
    post(Request::CuGraphLaunch(GraphLaunch { exec, stream }), &[])
}

/// `cuGraphLaunch` (posted).
#[no_mangle]
pub extern "C" fn cuGraphLaunch(exec: Opaque, s: Opaque) -> CUresult {
    entry("cuGraphLaunch", || launch(exec, s, NullStream::Legacy))
}

/// `cuGraphLaunch_ptsz` (posted).
#[no_mangle]
pub extern "C" fn cuGraphLaunch_ptsz(exec: Opaque, s: Opaque) -> CUresult {
    entry("cuGraphLaunch_ptsz", || {
        launch(exec, s, NullStream::PerThread)
    })
}

/// `cuGraphDestroy` (posted).
#[no_mangle]
pub extern "C" fn cuGraphDestroy(graph: Opaque) -> CUresult {
    entry("cuGraphDestroy", || {
        let graph = graph_handle(graph)?;
        state::with(|s| s.graphs.remove(&graph));
        post(Request::CuGraphDestroy(GraphOp { graph }), &[])
    })
}

/// `cuGraphExecDestroy` (posted).
#[no_mangle]
pub extern "C" fn cuGraphExecDestroy(exec: Opaque) -> CUresult {
    entry("cuGraphExecDestroy", || {
        let graph = exec_handle(exec)?;
        state::with(|s| s.execs.remove(&graph));
        post(Request::CuGraphExecDestroy(GraphOp { graph }), &[])
    })
}
