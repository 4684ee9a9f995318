//! Context-local storage: the table through which the runtime keeps one
//! value per (context, key), consulted on nearly every runtime call. It is
//! answered in the shim without a round trip. A value's destructor runs
//! when its context goes (`cuCtxDestroy`, the last primary-context
//! release, `cuDevicePrimaryCtxReset`), outside the shim's locks, so that
//! it may call back into the driver API.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::{Mutex, MutexGuard};

use protocol::opencl::Handle;

use super::state::{self, Kind};
use super::types::*;
use super::{current_ctx, CuResult};

/// A value's destructor: `(context, key, value)`.
pub(crate) type Destructor = extern "C" fn(Opaque, *mut c_void, *mut c_void);

#[derive(Clone, Copy)]
struct Slot {
    value: usize,
    dtor: Option<Destructor>,
}

type Store = HashMap<(Handle, usize), Slot>;

static STORE: Mutex<Option<Store>> = Mutex::new(None);

fn store() -> MutexGuard<'static, Option<Store>> {
    STORE.lock().unwrap_or_else(|p| p.into_inner())
}

/// The context a call names: `ctx`, or the current one for NULL.
fn context(ctx: Opaque) -> CuResult<Handle> {
    if ctx.is_null() {
        current_ctx()
    } else {
        super::context::handle(ctx)
    }
}

fn status(r: CuResult) -> CUresult {
    r.err().unwrap_or(CUDA_SUCCESS)
}

/// Slot 0: stores `value` under `key` for the context.
pub(crate) extern "C" fn cls_put(
    ctx: Opaque,
    key: *mut c_void,
    value: *mut c_void,
    dtor: Option<Destructor>,
) -> CUresult {
    status(context(ctx).map(|h| {
        let slot = Slot {
            value: value as usize,
            dtor,
        };
        store()
            .get_or_insert_with(HashMap::new)
            .insert((h, key as usize), slot);
    }))
}

/// Slot 1: forgets the value under `key` (its destructor does not run).
pub(crate) extern "C" fn cls_delete(ctx: Opaque, key: *mut c_void) -> CUresult {
    status(context(ctx).and_then(|h| {
        store()
            .as_mut()
            .and_then(|s| s.remove(&(h, key as usize)))
            .map(drop)
            .ok_or(CUDA_ERROR_INVALID_HANDLE)
    }))
}

/// Slot 2: the value under `key`; `CUDA_ERROR_INVALID_HANDLE` if none.
///
/// # Safety
/// `value` is NULL or writable.
pub(crate) unsafe extern "C" fn cls_get(
    value: *mut *mut c_void,
    ctx: Opaque,
    key: *mut c_void,
) -> CUresult {
    // One lookup, nearly every runtime call makes it: the context is not
    // checked separately, since a context's values go when it does.
    let h = if ctx.is_null() {
        state::current()
    } else {
        state::from_opaque(Kind::Context, ctx)
    };
    status(h.ok_or(CUDA_ERROR_INVALID_CONTEXT).and_then(|h| {
        let v = store()
            .as_ref()
            .and_then(|s| s.get(&(h, key as usize)).copied())
            .ok_or(CUDA_ERROR_INVALID_HANDLE)?;
        // SAFETY: the caller's contract.
        unsafe { super::out(value, v.value as *mut c_void) }
    }))
}

/// Runs and forgets the destructors of everything stored for `ctx`.
pub(crate) fn release(ctx: Handle) {
    let mut gone: Vec<(usize, Slot)> = Vec::new();
    if let Some(s) = store().as_mut() {
        s.retain(|&(h, key), slot| {
            if h == ctx {
                gone.push((key, *slot));
            }
            h != ctx
        });
    }
    let opaque = state::to_opaque(Kind::Context, ctx);
    for (key, slot) in gone {
        if let Some(d) = slot.dtor {
            crate::ffi::guard("a context-local storage destructor", (), || {
                d(opaque, key as *mut c_void, slot.value as *mut c_void)
            });
        }
    }
}
