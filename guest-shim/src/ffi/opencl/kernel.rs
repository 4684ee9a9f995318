//! Kernels and their arguments.
//!
//! `clSetKernelArg` is checked by the runtime the first time an argument
//! takes a value of a given size and kind, and posted after that. Its
//! value is classified here, since a
//! `cl_mem` or `cl_sampler` in the program's memory is a shim pointer that
//! must reach the daemon as a handle.

use std::ffi::{c_char, c_void};
use std::sync::{Arc, Mutex};

use opencl_sys::{
    cl_device_id, cl_int, cl_kernel, cl_kernel_arg_info, cl_kernel_info, cl_kernel_work_group_info,
    cl_program, cl_uint, CL_INVALID_ARG_SIZE, CL_INVALID_DEVICE, CL_INVALID_KERNEL,
    CL_INVALID_PROGRAM, CL_INVALID_VALUE,
};
use protocol::limits::{MAX_KERNEL_ARG_LEN, MAX_TRANSFER_LEN};
use protocol::opencl::{
    CloneKernel, CreateKernel, Handle, InfoKind, KernelArg, ObjectKind, SetKernelArg,
};
use protocol::{Request, Response};

use super::info::{object_info, remote_value};
use super::objects::{self, lock, Data, Record};
use super::{call, client, creating, post, release_entry, retain_entry, status, unexpected};
use crate::ffi::{c_string, slice_in, write_opt};

/// `CL_PROGRAM_KERNEL_NAMES`
const PROGRAM_KERNEL_NAMES: u32 = 0x1168;

/// The kernel a `cl_kernel` names.
pub(crate) fn get_kernel(k: cl_kernel) -> Result<Arc<Record>, cl_int> {
    objects::get(k, ObjectKind::Kernel).ok_or(CL_INVALID_KERNEL)
}

/// Classifies an argument value. `value` is `None` for a NULL `arg_value`;
/// `live` maps an address to a live shim object's kind and handle.
pub(crate) fn classify_arg(
    size: usize,
    value: Option<&[u8]>,
    live: impl Fn(usize) -> Option<(ObjectKind, Handle)>,
) -> Result<KernelArg, cl_int> {
    let Some(bytes) = value else {
        if size == 0 || size as u64 > MAX_TRANSFER_LEN {
            return Err(CL_INVALID_ARG_SIZE);
        }
        return Ok(KernelArg::Local(size as u64));
    };
    if size == 0 || size > MAX_KERNEL_ARG_LEN {
        return Err(CL_INVALID_ARG_SIZE);
    }
    if let Ok(word) = <[u8; std::mem::size_of::<usize>()]>::try_from(bytes) {
        let addr = usize::from_ne_bytes(word);
        if addr == 0 {
            return Ok(KernelArg::NullMem);
        }
        match live(addr) {
            Some((ObjectKind::MemObject, h)) => return Ok(KernelArg::Mem(h)),
            Some((ObjectKind::Sampler, h)) => return Ok(KernelArg::Sampler(h)),
            _ => {}
        }
    }
    Ok(KernelArg::Bytes(bytes.to_vec()))
}

fn create_kernel(prog: &Arc<Record>, name: String) -> Result<*mut c_void, cl_int> {
    let context = prog.context().ok_or(CL_INVALID_PROGRAM)?;
    let id = client()?.new_handle();
    let req = Request::ClCreateKernel(CreateKernel {
        id,
        program: prog.handle,
        name,
    });
    match call(req, &[], &mut [])? {
        Response::ClCreateKernel(_) => Ok(objects::register(
            ObjectKind::Kernel,
            id,
            Data::Kernel {
                program: prog.clone(),
                context,
                accepted: Mutex::default(),
            },
        )
        .cl_ptr()),
        other => Err(unexpected(&other)),
    }
}

/// # Safety
/// `kernel_name` is NULL or NUL-terminated; `errcode_ret` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn clCreateKernel(
    program: cl_program,
    kernel_name: *const c_char,
    errcode_ret: *mut cl_int,
) -> cl_kernel {
    let body = || {
        let prog = objects::get(program, ObjectKind::Program).ok_or(CL_INVALID_PROGRAM)?;
        // SAFETY: the caller's contract.
        let name = unsafe { c_string(kernel_name) }.ok_or(CL_INVALID_VALUE)?;
        create_kernel(&prog, name)
    };
    // SAFETY: the caller's contract.
    unsafe { creating("clCreateKernel", errcode_ret, body) }
}

/// A kernel with the source kernel's program and arguments.
///
/// # Safety
/// `errcode_ret` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn clCloneKernel(
    source_kernel: cl_kernel,
    errcode_ret: *mut cl_int,
) -> cl_kernel {
    let body = || {
        let k = get_kernel(source_kernel)?;
        let Data::Kernel {
            program, context, ..
        } = &k.data
        else {
            return Err(CL_INVALID_KERNEL);
        };
        let id = client()?.new_handle();
        let req = Request::ClCloneKernel(CloneKernel {
            id,
            kernel: k.handle,
        });
        match call(req, &[], &mut [])? {
            Response::ClCloneKernel(_) => Ok(objects::register(
                ObjectKind::Kernel,
                id,
                Data::Kernel {
                    program: program.clone(),
                    context: context.clone(),
                    accepted: Mutex::default(),
                },
            )
            .cl_ptr()),
            other => Err(unexpected(&other)),
        }
    };
    // SAFETY: the caller's contract.
    unsafe { creating("clCloneKernel", errcode_ret, body) }
}

/// Splits `CL_PROGRAM_KERNEL_NAMES` (semicolon-separated, NUL-terminated).
pub(crate) fn kernel_names(raw: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(raw)
        .trim_end_matches('\0')
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// # Safety
/// `kernels` is NULL or holds `num_kernels` writable entries;
/// `num_kernels_ret` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn clCreateKernelsInProgram(
    program: cl_program,
    num_kernels: cl_uint,
    kernels: *mut cl_kernel,
    num_kernels_ret: *mut cl_uint,
) -> cl_int {
    status("clCreateKernelsInProgram", || {
        let prog = objects::get(program, ObjectKind::Program).ok_or(CL_INVALID_PROGRAM)?;
        let raw = remote_value(InfoKind::Program, prog.handle, 0, PROGRAM_KERNEL_NAMES)?;
        let names = kernel_names(&raw);
        if !kernels.is_null() && (num_kernels as usize) < names.len() {
            return Err(CL_INVALID_VALUE);
        }
        if !kernels.is_null() {
            let mut made: Vec<*mut c_void> = Vec::with_capacity(names.len());
            for name in &names {
                match create_kernel(&prog, name.clone()) {
                    Ok(k) => made.push(k),
                    Err(e) => {
                        for k in made {
                            clReleaseKernel(k);
                        }
                        return Err(e);
                    }
                }
            }
            for (i, k) in made.into_iter().enumerate() {
                // SAFETY: `i < names.len() <= num_kernels`, in the array.
                unsafe { kernels.add(i).write(k) };
            }
        }
        let n = cl_uint::try_from(names.len()).unwrap_or(cl_uint::MAX);
        // SAFETY: the caller's contract.
        unsafe { write_opt(num_kernels_ret, n) };
        Ok(())
    })
}

#[no_mangle]
pub extern "C" fn clRetainKernel(kernel: cl_kernel) -> cl_int {
    retain_entry(
        "clRetainKernel",
        kernel,
        ObjectKind::Kernel,
        CL_INVALID_KERNEL,
    )
}

#[no_mangle]
pub extern "C" fn clReleaseKernel(kernel: cl_kernel) -> cl_int {
    release_entry(
        "clReleaseKernel",
        kernel,
        ObjectKind::Kernel,
        CL_INVALID_KERNEL,
    )
}

/// Checked at once the first time an argument is set with a given size
/// and kind of value; posted after that.
///
/// # Safety
/// `arg_value` is NULL or holds `arg_size` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn clSetKernelArg(
    kernel: cl_kernel,
    arg_index: cl_uint,
    arg_size: usize,
    arg_value: *const c_void,
) -> cl_int {
    status("clSetKernelArg", || {
        let k = get_kernel(kernel)?;
        let value = if arg_value.is_null() {
            None
        } else {
            if arg_size > MAX_KERNEL_ARG_LEN {
                return Err(CL_INVALID_ARG_SIZE);
            }
            // SAFETY: the caller guarantees `arg_size` readable bytes.
            Some(unsafe { slice_in(arg_value.cast::<u8>(), arg_size) }.ok_or(CL_INVALID_VALUE)?)
        };
        let arg = classify_arg(arg_size, value, |addr| {
            objects::get_any(addr as *const c_void).map(|r| (r.kind, r.handle))
        })?;
        let Data::Kernel { accepted, .. } = &k.data else {
            return Err(CL_INVALID_KERNEL);
        };
        let shape = (arg_index, arg_size, arg_kind(&arg));
        let req = Request::ClSetKernelArg(SetKernelArg {
            kernel: k.handle,
            index: arg_index,
            arg,
        });
        if lock(accepted).contains(&shape) {
            return post(req, &[]);
        }
        // A new shape is checked by the runtime now, so that its error
        // (a wrong index, size or kind) is this call's, as natively.
        match call(req, &[], &mut [])? {
            Response::ClSetKernelArg(_) => {}
            other => return Err(unexpected(&other)),
        }
        lock(accepted).insert(shape);
        Ok(())
    })
}

/// The kind of an argument value, for [`clSetKernelArg`]'s shapes.
fn arg_kind(arg: &KernelArg) -> u8 {
    match arg {
        KernelArg::Bytes(_) => 0,
        KernelArg::Local(_) => 1,
        KernelArg::Mem(_) => 2,
        KernelArg::NullMem => 3,
        KernelArg::Sampler(_) => 4,
    }
}

/// # Safety
/// `param_value` is NULL or holds `param_value_size` writable bytes;
/// `param_value_size_ret` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn clGetKernelInfo(
    kernel: cl_kernel,
    param_name: cl_kernel_info,
    param_value_size: usize,
    param_value: *mut c_void,
    param_value_size_ret: *mut usize,
) -> cl_int {
    // SAFETY: the caller's contract, forwarded.
    unsafe {
        object_info(
            "clGetKernelInfo",
            kernel,
            ObjectKind::Kernel,
            CL_INVALID_KERNEL,
            InfoKind::Kernel,
            0,
            param_name,
            param_value_size,
            param_value,
            param_value_size_ret,
        )
    }
}

/// # Safety
/// As [`clGetKernelInfo`].
#[no_mangle]
pub unsafe extern "C" fn clGetKernelWorkGroupInfo(
    kernel: cl_kernel,
    device: cl_device_id,
    param_name: cl_kernel_work_group_info,
    param_value_size: usize,
    param_value: *mut c_void,
    param_value_size_ret: *mut usize,
) -> cl_int {
    let extra = if device.is_null() {
        0
    } else {
        match objects::get(device, ObjectKind::Device) {
            Some(d) => d.handle,
            None => return CL_INVALID_DEVICE,
        }
    };
    // SAFETY: the caller's contract, forwarded.
    unsafe {
        object_info(
            "clGetKernelWorkGroupInfo",
            kernel,
            ObjectKind::Kernel,
            CL_INVALID_KERNEL,
            InfoKind::KernelWorkGroup,
            extra,
            param_name,
            param_value_size,
            param_value,
            param_value_size_ret,
        )
    }
}

/// # Safety
/// As [`clGetKernelInfo`].
#[no_mangle]
pub unsafe extern "C" fn clGetKernelArgInfo(
    kernel: cl_kernel,
    arg_index: cl_uint,
    param_name: cl_kernel_arg_info,
    param_value_size: usize,
    param_value: *mut c_void,
    param_value_size_ret: *mut usize,
) -> cl_int {
    // SAFETY: the caller's contract, forwarded.
    unsafe {
        object_info(
            "clGetKernelArgInfo",
            kernel,
            ObjectKind::Kernel,
            CL_INVALID_KERNEL,
            InfoKind::KernelArg,
            u64::from(arg_index),
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

    fn live(addr: usize) -> Option<(ObjectKind, Handle)> {
        match addr {
            0x1000 => Some((ObjectKind::MemObject, 11)),
            0x2000 => Some((ObjectKind::Sampler, 22)),
            0x3000 => Some((ObjectKind::Kernel, 33)),
            _ => None,
        }
    }

    fn word(v: usize) -> Vec<u8> {
        v.to_ne_bytes().to_vec()
    }

    #[test]
    fn kernel_args_are_classified() {
        let w = std::mem::size_of::<usize>();
        assert_eq!(classify_arg(64, None, live), Ok(KernelArg::Local(64)));
        assert_eq!(classify_arg(0, None, live), Err(CL_INVALID_ARG_SIZE));
        assert_eq!(
            classify_arg(w, Some(&word(0x1000)), live),
            Ok(KernelArg::Mem(11))
        );
        assert_eq!(
            classify_arg(w, Some(&word(0x2000)), live),
            Ok(KernelArg::Sampler(22))
        );
        assert_eq!(
            classify_arg(w, Some(&word(0)), live),
            Ok(KernelArg::NullMem)
        );
        // A pointer-sized scalar that names no mem object stays bytes, as
        // does a live object of another kind.
        assert_eq!(
            classify_arg(w, Some(&word(0x1001)), live),
            Ok(KernelArg::Bytes(word(0x1001)))
        );
        assert_eq!(
            classify_arg(w, Some(&word(0x3000)), live),
            Ok(KernelArg::Bytes(word(0x3000)))
        );
        assert_eq!(
            classify_arg(4, Some(&[1, 2, 3, 4]), live),
            Ok(KernelArg::Bytes(vec![1, 2, 3, 4]))
        );
        assert_eq!(classify_arg(0, Some(&[]), live), Err(CL_INVALID_ARG_SIZE));
    }

    #[test]
    fn kernel_names_split() {
        assert_eq!(kernel_names(b"add;mul\0"), vec!["add", "mul"]);
        assert_eq!(kernel_names(b"\0"), Vec::<String>::new());
        assert_eq!(kernel_names(b"one"), vec!["one"]);
    }
}
