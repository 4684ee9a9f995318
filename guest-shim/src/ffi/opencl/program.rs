//! Programs: from source or binaries, builds, and their info.

use std::ffi::{c_char, c_void, CStr};
use std::path::PathBuf;
use std::sync::Arc;

use opencl_sys::{
    cl_context, cl_device_id, cl_int, cl_program, cl_program_build_info, cl_program_info, cl_uint,
    CL_INVALID_BUILD_OPTIONS, CL_INVALID_CONTEXT, CL_INVALID_DEVICE, CL_INVALID_PROGRAM,
    CL_INVALID_VALUE, CL_OUT_OF_RESOURCES, CL_SUCCESS,
};
use protocol::limits::MAX_DEVICES;
use protocol::opencl::{
    BuildProgram, CreateProgramWithBinary, CreateProgramWithSource, GetProgramBinaries,
    GuestHeaders, InfoKind, ObjectKind,
};
use protocol::{Request, Response};

use super::info::{object_info, query};
use super::objects::{self, Data, Record};
use super::{call, client, creating, release_entry, retain_entry, status, unexpected};
use crate::ffi::{c_string, slice_in, write_opt};
use crate::includes::{self, IncludeError};
use crate::log::CALLS;

/// `CL_PROGRAM_BINARIES`
const PROGRAM_BINARIES: u32 = 0x1166;

/// Type of the build-completion callback.
type BuildNotify = Option<unsafe extern "C" fn(cl_program, *mut c_void)>;

/// Joins source strings: each is NUL-terminated when its length is 0 (or
/// `lengths` is NULL), else exactly that many bytes.
///
/// # Safety
/// `strings` holds `count` pointers; `lengths` is NULL or holds `count`
/// entries; each string is NUL-terminated or at least as long as given.
pub(crate) unsafe fn join_sources(
    count: cl_uint,
    strings: *const *const c_char,
    lengths: *const usize,
) -> Result<String, cl_int> {
    if count == 0 {
        return Err(CL_INVALID_VALUE);
    }
    let n = count as usize;
    // SAFETY: the caller's contract.
    let ptrs = unsafe { slice_in(strings, n) }.ok_or(CL_INVALID_VALUE)?;
    let lens = if lengths.is_null() {
        None
    } else {
        // SAFETY: the caller's contract.
        Some(unsafe { slice_in(lengths, n) }.ok_or(CL_INVALID_VALUE)?)
    };
    let mut out = Vec::new();
    for (i, p) in ptrs.iter().enumerate() {
        if p.is_null() {
            return Err(CL_INVALID_VALUE);
        }
        match lens.and_then(|l| l.get(i)).copied().unwrap_or(0) {
            // SAFETY: a NUL-terminated string, the caller's contract.
            0 => out.extend_from_slice(unsafe { CStr::from_ptr(*p) }.to_bytes()),
            len => {
                // SAFETY: at least `len` readable bytes, the caller's contract.
                let bytes = unsafe { slice_in(p.cast::<u8>(), len) }.ok_or(CL_INVALID_VALUE)?;
                out.extend_from_slice(bytes)
            }
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Device records for a caller's device list, each one of `context`'s.
///
/// # Safety
/// `list` is NULL or holds `n` entries.
pub(crate) unsafe fn devices_in(
    context: &Record,
    n: cl_uint,
    list: *const cl_device_id,
) -> Result<Vec<Arc<Record>>, cl_int> {
    if (n == 0) != list.is_null() || n as usize > MAX_DEVICES {
        return Err(CL_INVALID_VALUE);
    }
    let Data::Context { devices, .. } = &context.data else {
        return Err(CL_INVALID_CONTEXT);
    };
    // SAFETY: the caller's contract.
    let ptrs = unsafe { slice_in(list, n as usize) }.ok_or(CL_INVALID_VALUE)?;
    ptrs.iter()
        .map(|p| {
            let d = objects::get(*p, ObjectKind::Device).ok_or(CL_INVALID_DEVICE)?;
            if devices.iter().any(|c| Arc::ptr_eq(c, &d)) {
                Ok(d)
            } else {
                Err(CL_INVALID_DEVICE)
            }
        })
        .collect()
}

/// The devices a program made for `devs` of `ctx` is for: those, or
/// all of the context's when none are named.
pub(super) fn program_devices(ctx: &Record, devs: Vec<Arc<Record>>) -> Vec<Arc<Record>> {
    if !devs.is_empty() {
        return devs;
    }
    match &ctx.data {
        Data::Context { devices, .. } => devices.clone(),
        _ => vec![],
    }
}

pub(crate) fn register_program(
    id: u64,
    context: Arc<Record>,
    devices: Vec<Arc<Record>>,
    source: Option<Arc<str>>,
) -> *mut c_void {
    objects::register(
        ObjectKind::Program,
        id,
        Data::Program {
            context,
            devices,
            destructors: Default::default(),
            source,
        },
    )
    .cl_ptr()
}

/// The options of a build of `prog` without their `-I` directories, and
/// the guest header files the build can include, found as the compiler
/// would find them (`crate::includes`).
pub(super) fn with_headers(prog: &Record, options: &str) -> Result<(String, GuestHeaders), cl_int> {
    let source = match &prog.data {
        Data::Program { source, .. } => source.clone(),
        _ => None,
    };
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let g = includes::gather(
        source.as_deref().unwrap_or(""),
        options,
        &cwd,
        includes::read_file,
    )
    .map_err(|e| match e {
        IncludeError::MissingDir => CL_INVALID_BUILD_OPTIONS,
        IncludeError::TooMany | IncludeError::TooLarge => {
            CALLS.log(format_args!("OpenCL build failed: {e}"));
            CL_OUT_OF_RESOURCES
        }
    })?;
    let text = |p: &std::path::Path| p.to_string_lossy().into_owned();
    Ok((
        g.options,
        GuestHeaders {
            cwd: text(&cwd),
            dirs: g.dirs.iter().map(|d| text(d)).collect(),
            files: g.files.into_iter().map(|(p, b)| (text(&p), b)).collect(),
        },
    ))
}

/// # Safety
/// As [`join_sources`]; `errcode_ret` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn clCreateProgramWithSource(
    context: cl_context,
    count: cl_uint,
    strings: *mut *const c_char,
    lengths: *const usize,
    errcode_ret: *mut cl_int,
) -> cl_program {
    let body = || {
        let ctx = objects::get(context, ObjectKind::Context).ok_or(CL_INVALID_CONTEXT)?;
        // SAFETY: the caller's contract.
        let source = unsafe { join_sources(count, strings.cast_const(), lengths) }?;
        let kept = source.clone();
        let id = client()?.new_handle();
        let req = Request::ClCreateProgramWithSource(CreateProgramWithSource {
            id,
            context: ctx.handle,
            source,
        });
        match call(req, &[], &mut [])? {
            Response::ClCreateProgramWithSource(_) => {}
            other => return Err(unexpected(&other)),
        }
        let devices = program_devices(&ctx, vec![]);
        Ok(register_program(id, ctx, devices, Some(kept.into())))
    };
    // SAFETY: the caller's contract.
    unsafe { creating("clCreateProgramWithSource", errcode_ret, body) }
}

/// # Safety
/// `device_list`, `lengths` and `binaries` hold `num_devices` entries, each
/// binary `lengths[i]` bytes; `binary_status` is NULL or holds
/// `num_devices` entries; `errcode_ret` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn clCreateProgramWithBinary(
    context: cl_context,
    num_devices: cl_uint,
    device_list: *const cl_device_id,
    lengths: *const usize,
    binaries: *mut *const u8,
    binary_status: *mut cl_int,
    errcode_ret: *mut cl_int,
) -> cl_program {
    let body = || {
        let ctx = objects::get(context, ObjectKind::Context).ok_or(CL_INVALID_CONTEXT)?;
        if num_devices == 0 {
            return Err(CL_INVALID_VALUE);
        }
        // SAFETY: the caller's contract.
        let devs = unsafe { devices_in(&ctx, num_devices, device_list) }?;
        let n = num_devices as usize;
        // SAFETY: the caller's contract.
        let (lens, bins) = unsafe { (slice_in(lengths, n), slice_in(binaries.cast_const(), n)) };
        let (lens, bins) = lens.zip(bins).ok_or(CL_INVALID_VALUE)?;
        let mut blobs = Vec::with_capacity(n);
        for (len, bin) in lens.iter().zip(bins) {
            if *len == 0 || bin.is_null() {
                return Err(CL_INVALID_VALUE);
            }
            // SAFETY: `len` readable bytes at `bin`, the caller's contract.
            blobs.push(
                unsafe { slice_in(*bin, *len) }
                    .ok_or(CL_INVALID_VALUE)?
                    .to_vec(),
            );
        }
        let id = client()?.new_handle();
        let req = Request::ClCreateProgramWithBinary(CreateProgramWithBinary {
            id,
            context: ctx.handle,
            devices: devs.iter().map(|d| d.handle).collect(),
            binaries: blobs,
        });
        let st = match call(req, &[], &mut [])? {
            Response::ClCreateProgramWithBinary(s) => s.status,
            other => return Err(unexpected(&other)),
        };
        if !binary_status.is_null() {
            for i in 0..n {
                let s = st.get(i).copied().unwrap_or(CL_SUCCESS);
                // SAFETY: `i < num_devices`, within the caller's array.
                unsafe { binary_status.add(i).write_unaligned(s) };
            }
        }
        Ok(register_program(id, ctx, devs, None))
    };
    // SAFETY: the caller's contract.
    unsafe { creating("clCreateProgramWithBinary", errcode_ret, body) }
}

#[no_mangle]
pub extern "C" fn clRetainProgram(program: cl_program) -> cl_int {
    retain_entry(
        "clRetainProgram",
        program,
        ObjectKind::Program,
        CL_INVALID_PROGRAM,
    )
}

#[no_mangle]
pub extern "C" fn clReleaseProgram(program: cl_program) -> cl_int {
    release_entry(
        "clReleaseProgram",
        program,
        ObjectKind::Program,
        CL_INVALID_PROGRAM,
    )
}

/// Synchronous; `pfn_notify` runs once the build finished, either way.
///
/// # Safety
/// `device_list` is NULL or holds `num_devices` entries; `options` is NULL
/// or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn clBuildProgram(
    program: cl_program,
    num_devices: cl_uint,
    device_list: *const cl_device_id,
    options: *const c_char,
    pfn_notify: BuildNotify,
    user_data: *mut c_void,
) -> cl_int {
    let mut built = false;
    let rc = status("clBuildProgram", || {
        let prog = objects::get(program, ObjectKind::Program).ok_or(CL_INVALID_PROGRAM)?;
        if pfn_notify.is_none() && !user_data.is_null() {
            return Err(CL_INVALID_VALUE);
        }
        let ctx = prog.context().ok_or(CL_INVALID_PROGRAM)?;
        // SAFETY: the caller's contract.
        let devs = unsafe { devices_in(&ctx, num_devices, device_list) }?;
        // SAFETY: the caller's contract.
        let options = unsafe { c_string(options) }.unwrap_or_default();
        let (options, headers) = with_headers(&prog, &options)?;
        let req = Request::ClBuildProgram(BuildProgram {
            program: prog.handle,
            devices: devs.iter().map(|d| d.handle).collect(),
            options,
            headers,
        });
        built = true;
        match call(req, &[], &mut [])? {
            Response::ClBuildProgram(_) => Ok(()),
            other => Err(unexpected(&other)),
        }
    });
    if let (true, Some(f)) = (built, pfn_notify) {
        // SAFETY: the program registered `f` for this build and data.
        unsafe { f(program, user_data) };
    }
    rc
}

/// Answers `CL_PROGRAM_BINARIES`: copies each binary into the program's
/// buffers (sized from `CL_PROGRAM_BINARY_SIZES`).
///
/// # Safety
/// `value` is NULL or holds `size` bytes of binary pointers, each NULL or
/// large enough for its binary; `size_ret` is NULL or writable.
unsafe fn binaries(
    prog: &Record,
    size: usize,
    value: *mut c_void,
    size_ret: *mut usize,
) -> Result<(), cl_int> {
    let ndev = match &prog.data {
        Data::Program { devices, .. } => devices.len(),
        _ => return Err(CL_INVALID_PROGRAM),
    };
    let need = ndev * std::mem::size_of::<*mut u8>();
    if !value.is_null() {
        if size < need {
            return Err(CL_INVALID_VALUE);
        }
        let req = Request::ClGetProgramBinaries(GetProgramBinaries {
            program: prog.handle,
        });
        let bins = match call(req, &[], &mut [])? {
            Response::ClGetProgramBinaries(b) => b.binaries,
            other => return Err(unexpected(&other)),
        };
        // SAFETY: `value` holds `ndev` pointers (checked size above).
        let outs =
            unsafe { slice_in(value.cast::<*mut u8>().cast_const(), ndev) }.unwrap_or_default();
        for (out, bin) in outs.iter().zip(&bins) {
            if !out.is_null() {
                // SAFETY: the program sized each buffer from
                // CL_PROGRAM_BINARY_SIZES, as the API requires.
                unsafe { std::ptr::copy_nonoverlapping(bin.as_ptr(), *out, bin.len()) };
            }
        }
    }
    // SAFETY: the caller's contract.
    unsafe { write_opt(size_ret, need) };
    Ok(())
}

/// # Safety
/// `param_value` is NULL or holds `param_value_size` writable bytes;
/// `param_value_size_ret` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn clGetProgramInfo(
    program: cl_program,
    param_name: cl_program_info,
    param_value_size: usize,
    param_value: *mut c_void,
    param_value_size_ret: *mut usize,
) -> cl_int {
    status("clGetProgramInfo", || {
        let prog = objects::get(program, ObjectKind::Program).ok_or(CL_INVALID_PROGRAM)?;
        let (size, value, ret) = (param_value_size, param_value, param_value_size_ret);
        if param_name == PROGRAM_BINARIES {
            // SAFETY: the caller's contract.
            return unsafe { binaries(&prog, size, value, ret) };
        }
        // SAFETY: the caller's contract.
        unsafe { query(&prog, InfoKind::Program, 0, param_name, size, value, ret) }
    })
}

/// # Safety
/// As [`clGetProgramInfo`].
#[no_mangle]
pub unsafe extern "C" fn clGetProgramBuildInfo(
    program: cl_program,
    device: cl_device_id,
    param_name: cl_program_build_info,
    param_value_size: usize,
    param_value: *mut c_void,
    param_value_size_ret: *mut usize,
) -> cl_int {
    let dev = match objects::get(device, ObjectKind::Device) {
        Some(d) => d,
        None => return CL_INVALID_DEVICE,
    };
    // SAFETY: the caller's contract, forwarded.
    unsafe {
        object_info(
            "clGetProgramBuildInfo",
            program,
            ObjectKind::Program,
            CL_INVALID_PROGRAM,
            InfoKind::ProgramBuild,
            dev.handle,
            param_name,
            param_value_size,
            param_value,
            param_value_size_ret,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_join_honouring_lengths() {
        let a = c"__kernel void f() {}\n";
        let b = b"__kernel void g() {}XXXX";
        let ptrs = [a.as_ptr(), b.as_ptr().cast::<c_char>()];
        let lens = [0usize, 20];
        // SAFETY: both strings are live; `b` has at least 20 bytes.
        let got = unsafe { join_sources(2, ptrs.as_ptr(), lens.as_ptr()) };
        assert_eq!(
            got.as_deref(),
            Ok("__kernel void f() {}\n__kernel void g() {}")
        );
        // NULL lengths: every string NUL-terminated.
        let ptrs = [a.as_ptr(), a.as_ptr()];
        // SAFETY: live NUL-terminated strings.
        let got = unsafe { join_sources(2, ptrs.as_ptr(), std::ptr::null()) };
        assert_eq!(got.map(|s| s.len()), Ok(2 * a.to_bytes().len()));
    }

    #[test]
    fn bad_source_lists_are_rejected() {
        let ptrs = [std::ptr::null::<c_char>()];
        // SAFETY: a live list holding a NULL entry, and NULL lists.
        unsafe {
            assert_eq!(
                join_sources(1, ptrs.as_ptr(), std::ptr::null()),
                Err(CL_INVALID_VALUE)
            );
            assert_eq!(
                join_sources(0, ptrs.as_ptr(), std::ptr::null()),
                Err(CL_INVALID_VALUE)
            );
            assert_eq!(
                join_sources(1, std::ptr::null(), std::ptr::null()),
                Err(CL_INVALID_VALUE)
            );
        }
    }
}
