//! Samplers. A sampler reaches the daemon as a handle, in its creation and
//! as a kernel argument ([`super::kernel::classify_arg`]).

use std::ffi::c_void;

use opencl_sys::{
    cl_addressing_mode, cl_bool, cl_context, cl_filter_mode, cl_int, cl_sampler, cl_sampler_info,
    cl_sampler_properties, CL_INVALID_CONTEXT, CL_INVALID_SAMPLER, CL_INVALID_VALUE,
};
use protocol::limits::MAX_PROPERTIES;
use protocol::opencl::{CreateSampler, InfoKind, ObjectKind, SamplerArgs};
use protocol::{Request, Response};

use super::info::object_info;
use super::objects::{self, Data};
use super::{call, client, creating, release_entry, retain_entry, unexpected};
use crate::ffi::property_list;

fn create(context: cl_context, args: SamplerArgs) -> Result<*mut c_void, cl_int> {
    let ctx = objects::get(context, ObjectKind::Context).ok_or(CL_INVALID_CONTEXT)?;
    let id = client()?.new_handle();
    let req = Request::ClCreateSampler(CreateSampler {
        id,
        context: ctx.handle,
        args,
    });
    match call(req, &[], &mut [])? {
        Response::ClCreateSampler(_) => {
            Ok(objects::register(ObjectKind::Sampler, id, Data::Sampler { context: ctx }).cl_ptr())
        }
        other => Err(unexpected(&other)),
    }
}

/// # Safety
/// `errcode_ret` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn clCreateSampler(
    context: cl_context,
    normalized_coords: cl_bool,
    addressing_mode: cl_addressing_mode,
    filter_mode: cl_filter_mode,
    errcode_ret: *mut cl_int,
) -> cl_sampler {
    let args = SamplerArgs::Legacy {
        normalized: normalized_coords,
        addressing: addressing_mode,
        filter: filter_mode,
    };
    // SAFETY: the caller's contract.
    unsafe { creating("clCreateSampler", errcode_ret, || create(context, args)) }
}

/// # Safety
/// `sampler_properties` is NULL or a zero-terminated list; `errcode_ret`
/// is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn clCreateSamplerWithProperties(
    context: cl_context,
    sampler_properties: *const cl_sampler_properties,
    errcode_ret: *mut cl_int,
) -> cl_sampler {
    let body = || {
        // SAFETY: the caller's contract.
        let props = unsafe { property_list(sampler_properties, MAX_PROPERTIES / 2) }
            .ok_or(CL_INVALID_VALUE)?;
        create(context, SamplerArgs::Properties(props))
    };
    // SAFETY: the caller's contract.
    unsafe { creating("clCreateSamplerWithProperties", errcode_ret, body) }
}

#[no_mangle]
pub extern "C" fn clRetainSampler(sampler: cl_sampler) -> cl_int {
    retain_entry(
        "clRetainSampler",
        sampler,
        ObjectKind::Sampler,
        CL_INVALID_SAMPLER,
    )
}

#[no_mangle]
pub extern "C" fn clReleaseSampler(sampler: cl_sampler) -> cl_int {
    release_entry(
        "clReleaseSampler",
        sampler,
        ObjectKind::Sampler,
        CL_INVALID_SAMPLER,
    )
}

/// # Safety
/// `param_value` is NULL or holds `param_value_size` writable bytes;
/// `param_value_size_ret` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn clGetSamplerInfo(
    sampler: cl_sampler,
    param_name: cl_sampler_info,
    param_value_size: usize,
    param_value: *mut c_void,
    param_value_size_ret: *mut usize,
) -> cl_int {
    // SAFETY: the caller's contract, forwarded.
    unsafe {
        object_info(
            "clGetSamplerInfo",
            sampler,
            ObjectKind::Sampler,
            CL_INVALID_SAMPLER,
            InfoKind::Sampler,
            0,
            param_name,
            param_value_size,
            param_value,
            param_value_size_ret,
        )
    }
}
