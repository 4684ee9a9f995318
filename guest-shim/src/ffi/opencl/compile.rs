//! Separate compilation and linking, programs from IL and from built-in
//! kernels, and specialization constants. All are synchronous; a
//! completion callback runs once the call is done, either way.

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use opencl_sys::{
    cl_context, cl_device_id, cl_int, cl_program, cl_uint, CL_INVALID_CONTEXT, CL_INVALID_PROGRAM,
    CL_INVALID_VALUE, CL_OUT_OF_HOST_MEMORY, CL_OUT_OF_RESOURCES,
};
use protocol::limits::{MAX_BODY_LEN, MAX_LIST_LEN, MAX_SPEC_CONSTANT_LEN};
use protocol::opencl::{
    CompileProgram, CreateProgramWithBuiltIns, CreateProgramWithIl, LinkProgram, ObjectKind,
    SetSpecConstant,
};
use protocol::{Request, Response};

use super::objects::{self, Record};
use super::program::{devices_in, program_devices, register_program, with_headers};
use super::{call, client, creating, status, unexpected};
use crate::ffi::{c_string, slice_in, write_opt};

/// Type of a compile or link completion callback.
type ProgramNotify = Option<unsafe extern "C" fn(cl_program, *mut c_void)>;

/// The programs of a caller's list of `n`.
///
/// # Safety
/// `list` is NULL or holds `n` entries.
unsafe fn programs(n: cl_uint, list: *const cl_program) -> Result<Vec<Arc<Record>>, cl_int> {
    if n as usize > MAX_LIST_LEN {
        return Err(CL_INVALID_VALUE);
    }
    // SAFETY: the caller's contract.
    let ptrs = unsafe { slice_in(list, n as usize) }.ok_or(CL_INVALID_VALUE)?;
    ptrs.iter()
        .map(|p| objects::get(*p, ObjectKind::Program).ok_or(CL_INVALID_PROGRAM))
        .collect()
}

/// # Safety
/// The OpenCL contract for `clCompileProgram`.
#[no_mangle]
pub unsafe extern "C" fn clCompileProgram(
    program: cl_program,
    num_devices: cl_uint,
    device_list: *const cl_device_id,
    options: *const c_char,
    num_input_headers: cl_uint,
    input_headers: *const cl_program,
    header_include_names: *mut *const c_char,
    pfn_notify: ProgramNotify,
    user_data: *mut c_void,
) -> cl_int {
    let mut compiled = false;
    let rc = status("clCompileProgram", || {
        let prog = objects::get(program, ObjectKind::Program).ok_or(CL_INVALID_PROGRAM)?;
        let ctx = prog.context().ok_or(CL_INVALID_PROGRAM)?;
        // SAFETY: the caller's contract.
        let devs = unsafe { devices_in(&ctx, num_devices, device_list) }?;
        let none = num_input_headers == 0;
        if none != input_headers.is_null() || none != header_include_names.is_null() {
            return Err(CL_INVALID_VALUE);
        }
        if pfn_notify.is_none() && !user_data.is_null() {
            return Err(CL_INVALID_VALUE);
        }
        // SAFETY: the caller's contract.
        let headers = unsafe { programs(num_input_headers, input_headers) }?;
        // SAFETY: the caller's contract: one name per header.
        let names = unsafe {
            slice_in(
                header_include_names.cast_const(),
                num_input_headers as usize,
            )
        }
        .ok_or(CL_INVALID_VALUE)?;
        let names = names
            .iter()
            // SAFETY: each name is a NUL-terminated string.
            .map(|n| unsafe { c_string(*n) }.ok_or(CL_INVALID_VALUE))
            .collect::<Result<Vec<_>, _>>()?;
        // SAFETY: the caller's contract.
        let options = unsafe { c_string(options) }.unwrap_or_default();
        let (options, files) = with_headers(&prog, &options)?;
        let req = Request::ClCompileProgram(CompileProgram {
            program: prog.handle,
            devices: devs.iter().map(|d| d.handle).collect(),
            options,
            headers: headers.iter().map(|h| h.handle).zip(names).collect(),
            files,
        });
        compiled = true;
        match call(req, &[], &mut [])? {
            Response::ClCompileProgram(_) => Ok(()),
            other => Err(unexpected(&other)),
        }
    });
    if let (true, Some(f)) = (compiled, pfn_notify) {
        // SAFETY: the program registered `f` for this compile and data.
        unsafe { f(program, user_data) };
    }
    rc
}

/// Returns the linked program, with `errcode_ret` the link's status: a
/// failed link that still made a program (holding the log) returns it.
///
/// # Safety
/// The OpenCL contract for `clLinkProgram`.
#[no_mangle]
pub unsafe extern "C" fn clLinkProgram(
    context: cl_context,
    num_devices: cl_uint,
    device_list: *const cl_device_id,
    options: *const c_char,
    num_input_programs: cl_uint,
    input_programs: *const cl_program,
    pfn_notify: ProgramNotify,
    user_data: *mut c_void,
    errcode_ret: *mut cl_int,
) -> cl_program {
    let body = || -> Result<(*mut c_void, cl_int), cl_int> {
        let ctx = objects::get(context, ObjectKind::Context).ok_or(CL_INVALID_CONTEXT)?;
        // SAFETY: the caller's contract.
        let devs = unsafe { devices_in(&ctx, num_devices, device_list) }?;
        if num_input_programs == 0 || input_programs.is_null() {
            return Err(CL_INVALID_VALUE);
        }
        if pfn_notify.is_none() && !user_data.is_null() {
            return Err(CL_INVALID_VALUE);
        }
        // SAFETY: the caller's contract.
        let inputs = unsafe { programs(num_input_programs, input_programs) }?;
        // SAFETY: the caller's contract.
        let options = unsafe { c_string(options) }.unwrap_or_default();
        let id = client()?.new_handle();
        let req = Request::ClLinkProgram(LinkProgram {
            id,
            context: ctx.handle,
            devices: devs.iter().map(|d| d.handle).collect(),
            options,
            programs: inputs.iter().map(|p| p.handle).collect(),
        });
        let linked = match call(req, &[], &mut [])? {
            Response::ClLinkProgram(l) => l.status,
            other => return Err(unexpected(&other)),
        };
        let devices = program_devices(&ctx, devs);
        Ok((register_program(id, ctx, devices, None), linked))
    };
    let (prog, rc) = match crate::ffi::guard("clLinkProgram", Err(CL_OUT_OF_HOST_MEMORY), body) {
        Ok((p, rc)) => (p, rc),
        Err(e) => (std::ptr::null_mut(), e),
    };
    // SAFETY: the caller's contract.
    unsafe { write_opt(errcode_ret, rc) };
    if let (false, Some(f)) = (prog.is_null(), pfn_notify) {
        // SAFETY: the program registered `f` for this link and data.
        unsafe { f(prog, user_data) };
    }
    prog
}

/// # Safety
/// `il` holds `length` readable bytes; `errcode_ret` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn clCreateProgramWithIL(
    context: cl_context,
    il: *const c_void,
    length: usize,
    errcode_ret: *mut cl_int,
) -> cl_program {
    let body = || {
        let ctx = objects::get(context, ObjectKind::Context).ok_or(CL_INVALID_CONTEXT)?;
        if il.is_null() || length == 0 {
            return Err(CL_INVALID_VALUE);
        }
        if length > MAX_BODY_LEN - 64 {
            return Err(CL_OUT_OF_RESOURCES);
        }
        // SAFETY: the caller guarantees `length` readable bytes.
        let bytes = unsafe { slice_in(il.cast::<u8>(), length) }.ok_or(CL_INVALID_VALUE)?;
        let id = client()?.new_handle();
        let req = Request::ClCreateProgramWithIl(CreateProgramWithIl {
            id,
            context: ctx.handle,
            il: bytes.to_vec(),
        });
        match call(req, &[], &mut [])? {
            Response::ClCreateProgramWithIl(_) => {}
            other => return Err(unexpected(&other)),
        }
        let devices = program_devices(&ctx, vec![]);
        Ok(register_program(id, ctx, devices, None))
    };
    // SAFETY: the caller's contract.
    unsafe { creating("clCreateProgramWithIL", errcode_ret, body) }
}

/// # Safety
/// `device_list` holds `num_devices` entries; `kernel_names` is a
/// NUL-terminated string; `errcode_ret` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn clCreateProgramWithBuiltInKernels(
    context: cl_context,
    num_devices: cl_uint,
    device_list: *const cl_device_id,
    kernel_names: *const c_char,
    errcode_ret: *mut cl_int,
) -> cl_program {
    let body = || {
        let ctx = objects::get(context, ObjectKind::Context).ok_or(CL_INVALID_CONTEXT)?;
        if num_devices == 0 {
            return Err(CL_INVALID_VALUE);
        }
        // SAFETY: the caller's contract.
        let devs = unsafe { devices_in(&ctx, num_devices, device_list) }?;
        // SAFETY: the caller's contract.
        let names = unsafe { c_string(kernel_names) }.ok_or(CL_INVALID_VALUE)?;
        let id = client()?.new_handle();
        let req = Request::ClCreateProgramWithBuiltIns(CreateProgramWithBuiltIns {
            id,
            context: ctx.handle,
            devices: devs.iter().map(|d| d.handle).collect(),
            names,
        });
        match call(req, &[], &mut [])? {
            Response::ClCreateProgramWithBuiltIns(_) => {}
            other => return Err(unexpected(&other)),
        }
        Ok(register_program(id, ctx, devs, None))
    };
    // SAFETY: the caller's contract.
    unsafe { creating("clCreateProgramWithBuiltInKernels", errcode_ret, body) }
}

/// # Safety
/// `spec_value` holds `spec_size` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn clSetProgramSpecializationConstant(
    program: cl_program,
    spec_id: cl_uint,
    spec_size: usize,
    spec_value: *const c_void,
) -> cl_int {
    status("clSetProgramSpecializationConstant", || {
        let prog = objects::get(program, ObjectKind::Program).ok_or(CL_INVALID_PROGRAM)?;
        if spec_value.is_null() || spec_size == 0 || spec_size > MAX_SPEC_CONSTANT_LEN {
            return Err(CL_INVALID_VALUE);
        }
        // SAFETY: the caller guarantees `spec_size` readable bytes.
        let value =
            unsafe { slice_in(spec_value.cast::<u8>(), spec_size) }.ok_or(CL_INVALID_VALUE)?;
        let req = Request::ClSetSpecConstant(SetSpecConstant {
            program: prog.handle,
            spec_id,
            value: value.to_vec(),
        });
        match call(req, &[], &mut [])? {
            Response::ClSetSpecConstant(_) => Ok(()),
            other => Err(unexpected(&other)),
        }
    })
}
