//! Destructor callbacks of memory objects, programs and contexts.
//!
//! The shim keeps the program's functions and calls them, last
//! registered first, when it destroys the object: after the last
//! release of the object and of everything that kept it alive (a
//! sub-buffer its buffer, a queue its context), once the daemon has been
//! told. The daemon never uses guest memory after a call returns, so a
//! callback may at once free the host memory of a `CL_MEM_USE_HOST_PTR`
//! object. Whether an object takes a callback at all is the runtime's
//! answer (POCL 3.1 refuses program release callbacks).

use std::ffi::c_void;

use opencl_sys::{
    cl_context, cl_int, cl_mem, cl_program, CL_INVALID_CONTEXT, CL_INVALID_MEM_OBJECT,
    CL_INVALID_PROGRAM, CL_INVALID_VALUE,
};
use protocol::opencl::{ObjectKind, SetDestructorCallback};
use protocol::{Request, Response};

use super::objects::{self, lock, Destructor, Record};
use super::{call, status, unexpected};

/// Registers `func` on the live object `ptr` of `kind`.
fn register(
    entry: &'static str,
    ptr: *const c_void,
    kind: ObjectKind,
    invalid: cl_int,
    func: Option<unsafe extern "C" fn(*mut c_void, *mut c_void)>,
    user_data: *mut c_void,
) -> cl_int {
    status(entry, || {
        let rec = objects::get(ptr, kind).ok_or(invalid)?;
        let func = func.ok_or(CL_INVALID_VALUE)?;
        let list = rec.destructors().ok_or(invalid)?;
        let req = Request::ClSetDestructorCallback(SetDestructorCallback {
            kind,
            object: rec.handle,
        });
        match call(req, &[], &mut [])? {
            Response::ClSetDestructorCallback(_) => {}
            other => return Err(unexpected(&other)),
        }
        lock(list).push(Destructor {
            func,
            user_data: user_data as usize,
        });
        Ok(())
    })
}

/// Calls an object's destructor callbacks, last registered first.
pub(crate) fn run_destructors(rec: &Record) {
    let Some(list) = rec.destructors() else {
        return;
    };
    let pending = std::mem::take(&mut *lock(list));
    for d in pending.into_iter().rev() {
        // SAFETY: the program registered `func` for this object with this
        // user data; the object's pointer is the one it was given.
        unsafe { (d.func)(rec.cl_ptr(), d.user_data as *mut c_void) };
    }
}

/// The callback of all three kinds (`cl_mem`, `cl_program` and
/// `cl_context` are all opaque pointers).
type Notify = Option<unsafe extern "C" fn(*mut c_void, *mut c_void)>;

/// # Safety
/// `pfn_notify` may be called later with `memobj` and `user_data`.
#[no_mangle]
pub unsafe extern "C" fn clSetMemObjectDestructorCallback(
    memobj: cl_mem,
    pfn_notify: Notify,
    user_data: *mut c_void,
) -> cl_int {
    register(
        "clSetMemObjectDestructorCallback",
        memobj,
        ObjectKind::MemObject,
        CL_INVALID_MEM_OBJECT,
        pfn_notify,
        user_data,
    )
}

/// # Safety
/// `pfn_notify` may be called later with `program` and `user_data`.
#[no_mangle]
pub unsafe extern "C" fn clSetProgramReleaseCallback(
    program: cl_program,
    pfn_notify: Notify,
    user_data: *mut c_void,
) -> cl_int {
    register(
        "clSetProgramReleaseCallback",
        program,
        ObjectKind::Program,
        CL_INVALID_PROGRAM,
        pfn_notify,
        user_data,
    )
}

/// # Safety
/// `pfn_notify` may be called later with `context` and `user_data`.
#[no_mangle]
pub unsafe extern "C" fn clSetContextDestructorCallback(
    context: cl_context,
    pfn_notify: Notify,
    user_data: *mut c_void,
) -> cl_int {
    register(
        "clSetContextDestructorCallback",
        context,
        ObjectKind::Context,
        CL_INVALID_CONTEXT,
        pfn_notify,
        user_data,
    )
}
