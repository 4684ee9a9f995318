//! Command queues, `clFlush` and `clFinish`.

use std::ffi::c_void;
use std::sync::Arc;

use opencl_sys::{
    cl_command_queue, cl_command_queue_info, cl_command_queue_properties, cl_context, cl_device_id,
    cl_int, cl_queue_properties, CL_INVALID_COMMAND_QUEUE, CL_INVALID_CONTEXT, CL_INVALID_DEVICE,
    CL_INVALID_PROPERTY, CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE, CL_QUEUE_PROPERTIES,
};
use protocol::limits::MAX_PROPERTIES;
use protocol::opencl::{CreateCommandQueue, InfoKind, ObjectKind, QueueOp};
use protocol::{Request, Response};

use super::info::object_info;
use super::objects::{self, Data, Record};
use super::{call, client, creating, event, release_entry, retain_entry, status, unexpected};
use crate::ffi::property_list;

/// Whether a wire property list asks for out-of-order execution.
fn wants_out_of_order(props: &[u64]) -> bool {
    props
        .chunks_exact(2)
        .take_while(|p| p.first() != Some(&0))
        .any(|p| {
            p.first() == Some(&u64::from(CL_QUEUE_PROPERTIES))
                && p.get(1)
                    .is_some_and(|v| v & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE != 0)
        })
}

fn create_queue(
    context: cl_context,
    device: cl_device_id,
    properties: Vec<u64>,
) -> Result<*mut c_void, cl_int> {
    let ctx = objects::get(context, ObjectKind::Context).ok_or(CL_INVALID_CONTEXT)?;
    let dev = objects::get(device, ObjectKind::Device).ok_or(CL_INVALID_DEVICE)?;
    let Data::Context { devices, .. } = &ctx.data else {
        return Err(CL_INVALID_CONTEXT);
    };
    if !devices.iter().any(|d| Arc::ptr_eq(d, &dev)) {
        return Err(CL_INVALID_DEVICE);
    }
    let out_of_order = wants_out_of_order(&properties);
    let id = client()?.new_handle();
    let req = Request::ClCreateCommandQueue(CreateCommandQueue {
        id,
        context: ctx.handle,
        device: dev.handle,
        properties,
    });
    match call(req, &[], &mut [])? {
        Response::ClCreateCommandQueue(_) => Ok(objects::register(
            ObjectKind::CommandQueue,
            id,
            Data::Queue {
                context: ctx,
                device: dev,
                out_of_order,
            },
        )
        .cl_ptr()),
        other => Err(unexpected(&other)),
    }
}

/// # Safety
/// `errcode_ret` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn clCreateCommandQueue(
    context: cl_context,
    device: cl_device_id,
    properties: cl_command_queue_properties,
    errcode_ret: *mut cl_int,
) -> cl_command_queue {
    let props = if properties == 0 {
        vec![]
    } else {
        vec![u64::from(CL_QUEUE_PROPERTIES), properties, 0]
    };
    // SAFETY: the caller's contract.
    unsafe {
        creating("clCreateCommandQueue", errcode_ret, || {
            create_queue(context, device, props)
        })
    }
}

/// # Safety
/// `properties` is NULL or a zero-terminated list; `errcode_ret` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn clCreateCommandQueueWithProperties(
    context: cl_context,
    device: cl_device_id,
    properties: *const cl_queue_properties,
    errcode_ret: *mut cl_int,
) -> cl_command_queue {
    let body = || {
        // SAFETY: the caller's contract.
        let props =
            unsafe { property_list(properties, MAX_PROPERTIES / 2) }.ok_or(CL_INVALID_PROPERTY)?;
        create_queue(context, device, props)
    };
    // SAFETY: the caller's contract.
    unsafe { creating("clCreateCommandQueueWithProperties", errcode_ret, body) }
}

#[no_mangle]
pub extern "C" fn clRetainCommandQueue(command_queue: cl_command_queue) -> cl_int {
    retain_entry(
        "clRetainCommandQueue",
        command_queue,
        ObjectKind::CommandQueue,
        CL_INVALID_COMMAND_QUEUE,
    )
}

#[no_mangle]
pub extern "C" fn clReleaseCommandQueue(command_queue: cl_command_queue) -> cl_int {
    release_entry(
        "clReleaseCommandQueue",
        command_queue,
        ObjectKind::CommandQueue,
        CL_INVALID_COMMAND_QUEUE,
    )
}

/// # Safety
/// `param_value` is NULL or holds `param_value_size` writable bytes;
/// `param_value_size_ret` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn clGetCommandQueueInfo(
    command_queue: cl_command_queue,
    param_name: cl_command_queue_info,
    param_value_size: usize,
    param_value: *mut c_void,
    param_value_size_ret: *mut usize,
) -> cl_int {
    // SAFETY: the caller's contract, forwarded.
    unsafe {
        object_info(
            "clGetCommandQueueInfo",
            command_queue,
            ObjectKind::CommandQueue,
            CL_INVALID_COMMAND_QUEUE,
            InfoKind::CommandQueue,
            0,
            param_name,
            param_value_size,
            param_value,
            param_value_size_ret,
        )
    }
}

/// The queue a `cl_command_queue` names.
pub(crate) fn get_queue(q: cl_command_queue) -> Result<Arc<Record>, cl_int> {
    objects::get(q, ObjectKind::CommandQueue).ok_or(CL_INVALID_COMMAND_QUEUE)
}

/// A sync point: sends everything queued and reports sticky errors.
#[no_mangle]
pub extern "C" fn clFlush(command_queue: cl_command_queue) -> cl_int {
    status("clFlush", || {
        let q = get_queue(command_queue)?;
        match call(Request::ClFlush(QueueOp { queue: q.handle }), &[], &mut [])? {
            Response::ClFlush(_) => Ok(()),
            other => Err(unexpected(&other)),
        }
    })
}

/// Waits for every command of the queue; completion callbacks of its events
/// run here.
#[no_mangle]
pub extern "C" fn clFinish(command_queue: cl_command_queue) -> cl_int {
    status("clFinish", || {
        let q = get_queue(command_queue)?;
        // While another thread may still set a user event the queue waits
        // on, wait in bounded slices first (see `event::settle`).
        event::settle(q.handle, vec![])?;
        match call(Request::ClFinish(QueueOp { queue: q.handle }), &[], &mut [])? {
            Response::ClFinish(_) => {
                event::fire_queue_callbacks(&q);
                Ok(())
            }
            other => Err(unexpected(&other)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_is_read_from_properties() {
        let ooo = CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE;
        let qp = u64::from(CL_QUEUE_PROPERTIES);
        assert!(wants_out_of_order(&[qp, ooo, 0]));
        assert!(!wants_out_of_order(&[qp, 2, 0]));
        assert!(!wants_out_of_order(&[]));
        assert!(!wants_out_of_order(&[0, qp, ooo]));
    }
}
