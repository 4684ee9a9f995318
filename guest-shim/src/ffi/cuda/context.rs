//! Contexts: creation and destruction (round trips, so that a bad device
//! or flag fails at once), the per-thread context stack and the primary
//! contexts' reference counts (kept in the shim: a retained primary context
//! is an ordinary context to the daemon).

use std::ffi::{c_int, c_uint, c_void};

use protocol::cuda::{CtxCreate, CtxDestroy, CtxLimit, CtxPriorityRange, CtxSynchronize};
use protocol::opencl::Handle;
use protocol::{Request, Response};

use super::state::{self, Ctx, Kind, Primary};
use super::types::*;
use super::{call, client, current_ctx, entry, out, unexpected, CuResult};

/// Creates a context on the daemon and records it.
fn create(device: CUdevice, flags: c_uint) -> CuResult<Handle> {
    if flags & !CU_CTX_FLAGS_MASK != 0 {
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    super::device::info(device)?;
    let ordinal = u32::try_from(device).map_err(|_| CUDA_ERROR_INVALID_DEVICE)?;
    let id = client()?.new_handle();
    match call(
        Request::CuCtxCreate(CtxCreate {
            id,
            device: ordinal,
            flags,
        }),
        &[],
        &mut [],
    )? {
        Response::CuCtxCreate(_) => {}
        r => return Err(unexpected(r)),
    }
    state::with(|s| s.contexts.insert(id, Ctx { device, flags }));
    Ok(id)
}

/// Destroys a context on the daemon and forgets everything under it,
/// after running its context-local storage destructors.
fn destroy(ctx: Handle) -> CuResult {
    super::cls::release(ctx);
    let r = call(Request::CuCtxDestroy(CtxDestroy { ctx }), &[], &mut []);
    // The records go whatever the daemon said: the context is unusable.
    state::with(|s| s.forget_context(ctx));
    state::with_stack(|st| st.retain(|&c| c != ctx));
    match r? {
        Response::CuCtxDestroy(_) => Ok(()),
        r => Err(unexpected(r)),
    }
}

/// The handle behind a `CUcontext` argument, if live.
pub(crate) fn handle(ctx: Opaque) -> CuResult<Handle> {
    let h = state::from_opaque(Kind::Context, ctx).ok_or(CUDA_ERROR_INVALID_CONTEXT)?;
    if state::with(|s| s.contexts.contains_key(&h)) {
        Ok(h)
    } else {
        Err(CUDA_ERROR_INVALID_CONTEXT)
    }
}

fn is_primary(h: Handle) -> bool {
    state::with(|s| s.primary.values().any(|p| p.ctx == Some(h)))
}

/// `cuCtxCreate_v2`: creates a context and makes it current.
///
/// # Safety
/// `pctx` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuCtxCreate_v2(
    pctx: *mut Opaque,
    flags: c_uint,
    dev: CUdevice,
) -> CUresult {
    entry("cuCtxCreate_v2", || {
        if pctx.is_null() {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let h = create(dev, flags)?;
        state::with_stack(|st| st.push(h));
        // SAFETY: the caller's contract.
        unsafe { out(pctx, state::to_opaque(Kind::Context, h)) }
    })
}

/// `cuCtxCreate_v3`: execution affinity is not forwarded; with no affinity
/// parameters it is `cuCtxCreate_v2`.
///
/// # Safety
/// `pctx` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuCtxCreate_v3(
    pctx: *mut Opaque,
    params: *mut c_void,
    num_params: c_int,
    flags: c_uint,
    dev: CUdevice,
) -> CUresult {
    let _ = params;
    if num_params != 0 {
        return CUDA_ERROR_NOT_SUPPORTED;
    }
    // SAFETY: same contract.
    unsafe { cuCtxCreate_v2(pctx, flags, dev) }
}

/// `cuCtxCreate_v4`: execution affinity and CIG parameters are not
/// forwarded; without them it is `cuCtxCreate_v2`.
///
/// # Safety
/// `pctx` is NULL or writable; `params` is NULL or readable.
#[no_mangle]
pub unsafe extern "C" fn cuCtxCreate_v4(
    pctx: *mut Opaque,
    params: *mut CUctxCreateParams,
    flags: c_uint,
    dev: CUdevice,
) -> CUresult {
    if !params.is_null() {
        // SAFETY: non-null and readable by the caller's contract.
        let p = unsafe { params.read_unaligned() };
        if p.num_exec_affinity_params != 0 || !p.cig_params.is_null() {
            return CUDA_ERROR_NOT_SUPPORTED;
        }
    }
    // SAFETY: same contract.
    unsafe { cuCtxCreate_v2(pctx, flags, dev) }
}

/// `cuCtxDestroy_v2`: frees everything created under the context.
#[no_mangle]
pub extern "C" fn cuCtxDestroy_v2(ctx: Opaque) -> CUresult {
    entry("cuCtxDestroy_v2", || {
        let h = handle(ctx)?;
        if is_primary(h) {
            // Primary contexts go with their last release or a reset.
            return Err(CUDA_ERROR_INVALID_CONTEXT);
        }
        destroy(h)
    })
}

/// `cuCtxPushCurrent_v2`
#[no_mangle]
pub extern "C" fn cuCtxPushCurrent_v2(ctx: Opaque) -> CUresult {
    entry("cuCtxPushCurrent_v2", || {
        let h = handle(ctx)?;
        state::with_stack(|st| st.push(h));
        Ok(())
    })
}

/// `cuCtxPopCurrent_v2`
///
/// # Safety
/// `pctx` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuCtxPopCurrent_v2(pctx: *mut Opaque) -> CUresult {
    entry("cuCtxPopCurrent_v2", || {
        let h = state::with_stack(|st| st.pop()).ok_or(CUDA_ERROR_INVALID_CONTEXT)?;
        // SAFETY: the caller's contract.
        unsafe { crate::ffi::write_opt(pctx, state::to_opaque(Kind::Context, h)) };
        Ok(())
    })
}

/// `cuCtxSetCurrent`: replaces the top of the stack (NULL pops it).
#[no_mangle]
pub extern "C" fn cuCtxSetCurrent(ctx: Opaque) -> CUresult {
    entry("cuCtxSetCurrent", || {
        if ctx.is_null() {
            state::with_stack(|st| st.pop());
            return Ok(());
        }
        let h = handle(ctx)?;
        state::with_stack(|st| match st.last_mut() {
            Some(top) => *top = h,
            None => st.push(h),
        });
        Ok(())
    })
}

/// `cuCtxGetCurrent`: NULL when the stack is empty.
///
/// # Safety
/// `pctx` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuCtxGetCurrent(pctx: *mut Opaque) -> CUresult {
    entry("cuCtxGetCurrent", || {
        super::client()?;
        let p =
            state::current().map_or(std::ptr::null_mut(), |h| state::to_opaque(Kind::Context, h));
        // SAFETY: the caller's contract.
        unsafe { out(pctx, p) }
    })
}

/// `cuCtxGetDevice`
///
/// # Safety
/// `device` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuCtxGetDevice(device: *mut CUdevice) -> CUresult {
    entry("cuCtxGetDevice", || {
        let h = current_ctx()?;
        let d = state::with(|s| s.contexts.get(&h).map(|c| c.device))
            .ok_or(CUDA_ERROR_INVALID_CONTEXT)?;
        // SAFETY: the caller's contract.
        unsafe { out(device, d) }
    })
}

/// `cuCtxGetFlags`
///
/// # Safety
/// `flags` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuCtxGetFlags(flags: *mut c_uint) -> CUresult {
    entry("cuCtxGetFlags", || {
        let h = current_ctx()?;
        let f = state::with(|s| s.contexts.get(&h).map(|c| c.flags))
            .ok_or(CUDA_ERROR_INVALID_CONTEXT)?;
        // SAFETY: the caller's contract.
        unsafe { out(flags, f) }
    })
}

/// `cuCtxGetApiVersion`: every context speaks the 3.2+ (`_v2`) API.
///
/// # Safety
/// `version` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuCtxGetApiVersion(ctx: Opaque, version: *mut c_uint) -> CUresult {
    entry("cuCtxGetApiVersion", || {
        if ctx.is_null() {
            current_ctx()?;
        } else {
            handle(ctx)?;
        }
        // SAFETY: the caller's contract.
        unsafe { out(version, 3020) }
    })
}

/// `cuCtxSynchronize`: waits for the current context's work; returns any
/// sticky error of earlier asynchronous calls.
#[no_mangle]
pub extern "C" fn cuCtxSynchronize() -> CUresult {
    entry("cuCtxSynchronize", || {
        let ctx = current_ctx()?;
        match call(
            Request::CuCtxSynchronize(CtxSynchronize { ctx }),
            &[],
            &mut [],
        )? {
            Response::CuCtxSynchronize(_) => Ok(()),
            r => Err(unexpected(r)),
        }
    })
}

/// The primary context of `dev`, created on first use; its reference
/// count is left alone (the runtime asks for it without retaining).
pub(crate) fn primary(dev: CUdevice) -> CuResult<Handle> {
    super::device::info(dev)?;
    let p = state::with(|s| s.primary.get(&dev).cloned()).unwrap_or_default();
    if let Some(h) = p.ctx {
        return Ok(h);
    }
    let h = create(dev, p.flags)?;
    // Two threads may have raced to create it: keep the first.
    let (kept, extra) = state::with(|s| {
        let e = s.primary.entry(dev).or_default();
        match e.ctx {
            Some(first) => (first, Some(h)),
            None => {
                e.ctx = Some(h);
                (h, None)
            }
        }
    });
    if let Some(extra) = extra {
        destroy(extra)?;
    }
    Ok(kept)
}

/// `cuDevicePrimaryCtxRetain`: the first retain creates the context.
///
/// # Safety
/// `pctx` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuDevicePrimaryCtxRetain(pctx: *mut Opaque, dev: CUdevice) -> CUresult {
    entry("cuDevicePrimaryCtxRetain", || {
        if pctx.is_null() {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let h = primary(dev)?;
        state::with(|s| s.primary.entry(dev).or_default().refs += 1);
        // SAFETY: the caller's contract.
        unsafe { out(pctx, state::to_opaque(Kind::Context, h)) }
    })
}

/// `cuDevicePrimaryCtxRelease_v2`: the last release resets the context.
#[no_mangle]
pub extern "C" fn cuDevicePrimaryCtxRelease_v2(dev: CUdevice) -> CUresult {
    entry("cuDevicePrimaryCtxRelease_v2", || {
        super::device::info(dev)?;
        let last = state::with(|s| {
            let p = s.primary.get_mut(&dev).filter(|p| p.refs > 0)?;
            p.refs -= 1;
            Some(if p.refs == 0 { p.ctx.take() } else { None })
        })
        .ok_or(CUDA_ERROR_INVALID_CONTEXT)?;
        last.map_or(Ok(()), destroy)
    })
}

/// `cuDevicePrimaryCtxReset_v2`: destroys the primary context now.
#[no_mangle]
pub extern "C" fn cuDevicePrimaryCtxReset_v2(dev: CUdevice) -> CUresult {
    entry("cuDevicePrimaryCtxReset_v2", || {
        super::device::info(dev)?;
        let ctx = state::with(|s| {
            let p = s.primary.entry(dev).or_default();
            p.refs = 0;
            p.ctx.take()
        });
        ctx.map_or(Ok(()), destroy)
    })
}

/// `cuDevicePrimaryCtxGetState`
///
/// # Safety
/// `flags` and `active` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuDevicePrimaryCtxGetState(
    dev: CUdevice,
    flags: *mut c_uint,
    active: *mut c_int,
) -> CUresult {
    entry("cuDevicePrimaryCtxGetState", || {
        super::device::info(dev)?;
        let p: Primary = state::with(|s| s.primary.get(&dev).cloned()).unwrap_or_default();
        // SAFETY: the caller's contract.
        unsafe {
            out(flags, p.flags)?;
            out(active, c_int::from(p.refs > 0))
        }
    })
}

/// `cuDevicePrimaryCtxSetFlags_v2`
#[no_mangle]
pub extern "C" fn cuDevicePrimaryCtxSetFlags_v2(dev: CUdevice, flags: c_uint) -> CUresult {
    entry("cuDevicePrimaryCtxSetFlags_v2", || {
        if flags & !CU_CTX_FLAGS_MASK != 0 {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        super::device::info(dev)?;
        state::with(|s| {
            let p = s.primary.entry(dev).or_default();
            p.flags = flags;
            if let Some(c) = p.ctx.and_then(|h| s.contexts.get_mut(&h)) {
                c.flags = flags;
            }
        });
        Ok(())
    })
}

/// `cuCtxGetLimit`: the current context's limit (a round trip: the
/// program may have set it).
///
/// # Safety
/// `value` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuCtxGetLimit(value: *mut usize, limit: c_uint) -> CUresult {
    entry("cuCtxGetLimit", || {
        if value.is_null() {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let v = ctx_limit(limit, None)?;
        // SAFETY: checked non-null; the caller's contract.
        unsafe { out(value, usize::try_from(v).unwrap_or(usize::MAX)) }
    })
}

/// `cuCtxSetLimit`
#[no_mangle]
pub extern "C" fn cuCtxSetLimit(limit: c_uint, value: usize) -> CUresult {
    entry("cuCtxSetLimit", || {
        ctx_limit(limit, Some(value as u64)).map(drop)
    })
}

fn ctx_limit(limit: c_uint, value: Option<u64>) -> CuResult<u64> {
    let ctx = current_ctx()?;
    match call(
        Request::CuCtxLimit(CtxLimit { ctx, limit, value }),
        &[],
        &mut [],
    )? {
        Response::CuCtxLimit(v) => Ok(v.value),
        r => Err(unexpected(r)),
    }
}

/// `cuCtxGetStreamPriorityRange`: asked once per device, then cached
/// (a device's range does not change).
///
/// # Safety
/// `least` and `greatest` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuCtxGetStreamPriorityRange(
    least: *mut c_int,
    greatest: *mut c_int,
) -> CUresult {
    entry("cuCtxGetStreamPriorityRange", || {
        let ctx = current_ctx()?;
        let device = state::with(|s| s.contexts.get(&ctx).map(|c| c.device))
            .ok_or(CUDA_ERROR_INVALID_CONTEXT)?;
        let cached = state::with(|s| s.priorities.get(&device).copied());
        let (l, g) = match cached {
            Some(r) => r,
            None => {
                let r = match call(
                    Request::CuCtxStreamPriorityRange(CtxPriorityRange { ctx }),
                    &[],
                    &mut [],
                )? {
                    Response::CuCtxStreamPriorityRange(p) => (p.least, p.greatest),
                    r => return Err(unexpected(r)),
                };
                state::with(|s| s.priorities.insert(device, r));
                r
            }
        };
        // SAFETY: the caller's contract.
        unsafe {
            crate::ffi::write_opt(least, l);
            crate::ffi::write_opt(greatest, g);
        }
        Ok(())
    })
}
