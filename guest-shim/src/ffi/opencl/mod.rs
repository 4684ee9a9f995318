//! The OpenCL ICD: what ocl-icd (or any Khronos ICD loader) loads through
//! `OCL_ICD_VENDORS`.
//!
//! | module | role |
//! |---|---|
//! | [`dispatch`] | the Khronos dispatch table every object points to |
//! | [`stubs`] | `CL_INVALID_OPERATION` entry points for unsupported slots |
//! | [`objects`] | object records, the registry of live pointers, refcounts |
//! | [`info`] | `clGet*Info` plumbing: local answers, daemon queries, caches |
//! | [`platform`] | platforms and devices |
//! | [`devices`] | sub-devices, device reference counts, timers |
//! | [`context`] | contexts and image formats |
//! | [`queue`] | command queues, `clFlush`, `clFinish` |
//! | [`memory`] | buffers and sub-buffers |
//! | [`image`] | images and the commands on them |
//! | [`sampler`] | samplers |
//! | [`program`] | programs: source, binaries, builds |
//! | [`compile`] | separate compilation, linking, IL and built-in programs |
//! | [`kernel`] | kernels, their clones, and argument classification |
//! | [`enqueue`] | transfers, kernel launches, markers, barriers, migration |
//! | [`rect`] | rectangular buffer transfers |
//! | [`boxes`] | rectangular host transfers cut into pieces |
//! | [`map`] | `clEnqueueMapBuffer`/`clEnqueueMapImage` emulated in host memory |
//! | [`event`] | events, user events, callbacks, waits |
//! | [`callbacks`] | destructor callbacks of memory objects, programs, contexts |
//!
//! The first `clIcdGetPlatformIDsKHR` (or `clGetPlatformIDs`) lists the
//! platforms once, over the process's one session
//! ([`crate::ffi::shared_client`]); a missing daemon means no platforms.

pub(crate) mod boxes;
pub(crate) mod callbacks;
pub(crate) mod compile;
pub(crate) mod context;
pub(crate) mod devices;
pub(crate) mod dispatch;
pub(crate) mod enqueue;
pub(crate) mod event;
pub(crate) mod image;
pub(crate) mod info;
pub(crate) mod kernel;
pub(crate) mod map;
pub(crate) mod memory;
pub(crate) mod objects;
pub(crate) mod platform;
pub(crate) mod program;
pub(crate) mod queue;
pub(crate) mod rect;
pub(crate) mod sampler;
mod stubs;

use std::ffi::{c_char, c_void};
use std::panic::catch_unwind;
use std::sync::{Arc, OnceLock};

use opencl_sys::{cl_int, cl_platform_id, cl_uint, CL_OUT_OF_RESOURCES, CL_SUCCESS};
use protocol::opencl::{Empty, Release};
use protocol::{ProtocolError, Request, Response};

use crate::client::{CallError, Client};
use crate::log::{Chain, CALLS, CONNECT};
use crate::transport::ENDPOINT_ENV;
use objects::Record;

/// `CL_PLATFORM_NOT_FOUND_KHR`: no platform behind this ICD.
pub(crate) const CL_PLATFORM_NOT_FOUND_KHR: cl_int = -1001;

/// Largest piece a transfer is split into when no session says otherwise.
const DEFAULT_CHUNK: usize = 32 << 20;

/// Largest piece of a transfer one call may carry.
pub(crate) fn chunk_size() -> usize {
    client().map_or(DEFAULT_CHUNK, |c| c.max_chunk()).max(1)
}

/// A connected session and the platforms the daemon reported.
#[derive(Debug)]
pub(crate) struct Session {
    pub client: &'static Client,
    pub platforms: Vec<Arc<Record>>,
}

static SESSION: OnceLock<Option<Session>> = OnceLock::new();

/// The session, connecting on first use. `None` when the daemon cannot be
/// reached (reported once on stderr).
pub(crate) fn session() -> Option<&'static Session> {
    SESSION
        .get_or_init(|| match catch_unwind(connect) {
            Ok(s) => s,
            Err(_) => {
                CONNECT.log(format_args!(
                    "cannot reach daemon: the transport failed internally"
                ));
                None
            }
        })
        .as_ref()
}

fn connect() -> Option<Session> {
    let endpoint =
        std::env::var(ENDPOINT_ENV).unwrap_or_else(|_| format!("({ENDPOINT_ENV} unset)"));
    let client = crate::ffi::shared_client()?;
    let platforms = match client.call(Request::ClGetPlatformIds(Empty {}), &[], &mut []) {
        Ok(Response::ClGetPlatformIds(list)) => list.handles,
        Ok(_) => {
            CONNECT.log(format_args!(
                "daemon at {endpoint} sent a malformed platform list"
            ));
            vec![]
        }
        Err(CallError::Native(c)) if c == CL_PLATFORM_NOT_FOUND_KHR => vec![],
        Err(e) => {
            CONNECT.log(format_args!(
                "daemon at {endpoint} listed no platforms: {}",
                Chain(&e)
            ));
            vec![]
        }
    };
    let platforms = platforms.into_iter().map(objects::platform).collect();
    Some(Session { client, platforms })
}

/// The connected client, for calls on objects (which exist only once a
/// session does).
pub(crate) fn client() -> Result<&'static Client, cl_int> {
    session().map(|s| s.client).ok_or(CL_OUT_OF_RESOURCES)
}

/// Maps a failed call to the native code an application expects.
pub(crate) fn cl_error(e: &CallError) -> cl_int {
    match e {
        CallError::Native(c) if *c < 0 => *c,
        CallError::Protocol(ProtocolError::LimitExceeded) => CL_OUT_OF_RESOURCES,
        other => {
            CALLS.log(format_args!("call failed: {}", Chain(other)));
            CL_OUT_OF_RESOURCES
        }
    }
}

/// A synchronous call, errors mapped to native codes.
pub(crate) fn call(
    req: Request,
    bulk_in: &[&[u8]],
    bulk_out: &mut [&mut [u8]],
) -> Result<Response, cl_int> {
    client()?
        .call(req, bulk_in, bulk_out)
        .map_err(|e| cl_error(&e))
}

/// A fire-and-forget call, errors mapped to native codes.
pub(crate) fn post(req: Request, bulk_in: &[&[u8]]) -> Result<(), cl_int> {
    client()?.post(req, bulk_in).map_err(|e| cl_error(&e))
}

/// A reply of the wrong type: the daemon is broken, not the program.
pub(crate) fn unexpected(_resp: &Response) -> cl_int {
    cl_error(&CallError::Protocol(ProtocolError::Malformed))
}

/// Sends `ClRelease` for objects destroyed by a release, children first,
/// and runs each one's destructor callbacks once its release is sent.
pub(crate) fn send_releases(dead: Vec<Arc<Record>>) -> cl_int {
    let mut rc = CL_SUCCESS;
    for r in dead {
        let req = Request::ClRelease(Release {
            kind: r.kind,
            object: r.handle,
        });
        if let Err(e) = post(req, &[]) {
            rc = e;
        }
        callbacks::run_destructors(&r);
    }
    rc
}

/// Runs a creating entry point: writes the status to `errcode_ret` and
/// returns the object (NULL on error).
///
/// # Safety
/// `errcode_ret` is NULL or valid for writing one `cl_int`.
pub(crate) unsafe fn creating(
    entry: &'static str,
    errcode_ret: *mut cl_int,
    body: impl FnOnce() -> Result<*mut c_void, cl_int>,
) -> *mut c_void {
    let (obj, rc) = match crate::ffi::guard(entry, Err(opencl_sys::CL_OUT_OF_HOST_MEMORY), body) {
        Ok(p) => (p, CL_SUCCESS),
        Err(e) => (std::ptr::null_mut(), e),
    };
    // SAFETY: the caller's contract.
    unsafe { crate::ffi::write_opt(errcode_ret, rc) };
    obj
}

/// Runs an entry point returning a status.
pub(crate) fn status(entry: &'static str, body: impl FnOnce() -> Result<(), cl_int>) -> cl_int {
    match crate::ffi::guard(entry, Err(opencl_sys::CL_OUT_OF_HOST_MEMORY), body) {
        Ok(()) => CL_SUCCESS,
        Err(e) => e,
    }
}

/// A `clRetain*` entry point.
pub(crate) fn retain_entry(
    entry: &'static str,
    ptr: *const c_void,
    kind: protocol::opencl::ObjectKind,
    invalid: cl_int,
) -> cl_int {
    status(entry, || {
        if objects::retain(ptr, kind) {
            Ok(())
        } else {
            Err(invalid)
        }
    })
}

/// A `clRelease*` entry point: the last release is posted to the daemon.
pub(crate) fn release_entry(
    entry: &'static str,
    ptr: *const c_void,
    kind: protocol::opencl::ObjectKind,
    invalid: cl_int,
) -> cl_int {
    status(entry, || {
        let dead = objects::release(ptr, kind).ok_or(invalid)?;
        info::check(send_releases(dead))
    })
}

/// The ICD entry point the loader calls to enumerate this vendor's
/// platforms.
///
/// # Safety
/// `platforms` is NULL or holds `num_entries` writable entries;
/// `num_platforms` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn clIcdGetPlatformIDsKHR(
    num_entries: cl_uint,
    platforms: *mut cl_platform_id,
    num_platforms: *mut cl_uint,
) -> cl_int {
    // SAFETY: same contract as clGetPlatformIDs.
    unsafe { platform::clGetPlatformIDs(num_entries, platforms, num_platforms) }
}

/// Extension functions by name: only the ICD's own entry point.
///
/// # Safety
/// `func_name` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn clGetExtensionFunctionAddress(func_name: *const c_char) -> *mut c_void {
    // SAFETY: the caller's contract.
    let name = unsafe { crate::ffi::c_string(func_name) };
    crate::ffi::guard(
        "clGetExtensionFunctionAddress",
        std::ptr::null_mut(),
        || match name.as_deref() {
            Some("clIcdGetPlatformIDsKHR") => clIcdGetPlatformIDsKHR as *mut c_void,
            _ => std::ptr::null_mut(),
        },
    )
}

/// As [`clGetExtensionFunctionAddress`]; the platform is not consulted.
///
/// # Safety
/// `func_name` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn clGetExtensionFunctionAddressForPlatform(
    _platform: cl_platform_id,
    func_name: *const c_char,
) -> *mut c_void {
    // SAFETY: the caller's contract.
    unsafe { clGetExtensionFunctionAddress(func_name) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::{LinkError, TransportError};

    #[test]
    fn call_errors_map_to_native_codes() {
        assert_eq!(cl_error(&CallError::Native(-5)), -5);
        assert_eq!(cl_error(&CallError::Native(-36)), -36);
        assert_eq!(
            cl_error(&CallError::Protocol(ProtocolError::LimitExceeded)),
            CL_OUT_OF_RESOURCES
        );
        assert_eq!(
            cl_error(&CallError::Protocol(ProtocolError::Malformed)),
            CL_OUT_OF_RESOURCES
        );
        let t = CallError::Transport(TransportError::Disconnected(LinkError::Closed.into()));
        assert_eq!(cl_error(&t), CL_OUT_OF_RESOURCES);
        // A "native" success code as an error would report false success.
        assert_eq!(cl_error(&CallError::Native(0)), CL_OUT_OF_RESOURCES);
    }

    #[test]
    fn extension_lookup_finds_only_the_icd_entry() {
        // SAFETY: literal NUL-terminated strings and NULL are valid inputs.
        unsafe {
            let p = clGetExtensionFunctionAddress(c"clIcdGetPlatformIDsKHR".as_ptr());
            assert_eq!(p, clIcdGetPlatformIDsKHR as *mut c_void);
            assert!(clGetExtensionFunctionAddress(c"clFoo".as_ptr()).is_null());
            assert!(clGetExtensionFunctionAddress(std::ptr::null()).is_null());
        }
    }
}
