//! `cuGetExportTable`: the private tables the CUDA runtime (`libcudart`,
//! shared or linked statically into a library) asks the driver for by
//! UUID, answered in the shim. No table needs the daemon: they hand out
//! the primary context, load modules through the ordinary module path,
//! keep per-context storage, and compute the integrity answer from facts
//! of the guest process.
//!
//! | table | slots used |
//! |---|---|
//! | `CUDART_INTERFACE` | 1, 6, 8: load a module from a fat binary (wrapper or header); 2: a device's primary context without retaining it; 7, 12: no-ops |
//! | `TOOLS_RUNTIME_CALLBACK_HOOKS` | 2, 6: two zeroed buffers the runtime owns (1024 and 14 `u32`) |
//! | `TOOLS_TLS` | only the size in slot 0 is read |
//! | `INTEGRITY_CHECK` | 1: the HMAC-MD2 answer ([`super::integrity`]) |
//! | `CONTEXT_LOCAL_STORAGE` | 0, 1, 2: put, delete, get by context and key ([`super::cls`]) |
//! | `CONTEXT_CHECKS` | 2: a context's flags (none set); 3: 0 |
//!
//! Tables hold their own size in bytes in slot 0, except the context-local
//! storage table. Unused slots are NULL. Any other UUID is
//! `CUDA_ERROR_NOT_FOUND`, as the driver answers for tables it lacks.
//! The UUIDs are stored in the byte order the runtime passes them (the
//! order of their usual text form).

use std::ffi::{c_uint, c_void};
use std::ptr::null;

use super::cls::{cls_delete, cls_get, cls_put};
use super::integrity::{self, DeviceId, Record};
use super::module::cuModuleLoadData;
use super::state::{self, Kind};
use super::types::*;
use super::{entry, out, CuResult};

/// A table: function addresses (and a size), read by the runtime.
#[repr(C)]
pub(crate) struct Table<const N: usize>(pub [*const c_void; N]);

// SAFETY: a table is immutable after its static initialiser: it holds
// only addresses of functions and a length, read concurrently.
unsafe impl<const N: usize> Sync for Table<N> {}

/// Slot 0: the table's size in bytes.
const fn size<const N: usize>() -> *const c_void {
    (N * size_of::<*const c_void>()) as *const c_void
}

/// UUID of `CUDART_INTERFACE`.
pub(crate) const CUDART_INTERFACE: [u8; 16] = uuid(0x6bd5fb6c_5bf4_e74a_8987_d93912fd9df9);
/// UUID of `TOOLS_RUNTIME_CALLBACK_HOOKS`.
pub(crate) const TOOLS_RUNTIME_CALLBACK_HOOKS: [u8; 16] =
    uuid(0xa094798c_2e74_2e74_93f2_0800200c0a66);
/// UUID of `TOOLS_TLS`.
pub(crate) const TOOLS_TLS: [u8; 16] = uuid(0x42d85a81_23f6_cb47_8298_f6e78a3aecdc);
/// UUID of `INTEGRITY_CHECK`.
pub(crate) const INTEGRITY_CHECK: [u8; 16] = uuid(0xd4082055_bde6_704b_8d34_ba123c66e1f2);
/// UUID of `CONTEXT_LOCAL_STORAGE` (interface 3.1).
pub(crate) const CONTEXT_LOCAL_STORAGE: [u8; 16] = uuid(0xc693336e_1121_df11_a8c3_68f355d89593);
/// UUID of `CONTEXT_CHECKS`.
pub(crate) const CONTEXT_CHECKS: [u8; 16] = uuid(0x263e8860_7cd2_6143_92f6_bbd5006dfa7e);

const fn uuid(v: u128) -> [u8; 16] {
    v.to_be_bytes()
}

static CUDART_INTERFACE_TABLE: Table<13> = Table([
    size::<13>(),
    module_from_wrapper as *const c_void,
    primary_context as *const c_void,
    null(),
    null(),
    null(),
    module_from_wrapper_ext as *const c_void,
    nothing as *const c_void,
    module_from_header_ext as *const c_void,
    null(),
    null(),
    null(),
    load_compilers as *const c_void,
]);

static HOOKS_TABLE: Table<7> = Table([
    size::<7>(),
    null(),
    hooks_buffer_1 as *const c_void,
    null(),
    null(),
    null(),
    hooks_buffer_2 as *const c_void,
]);

static TOOLS_TLS_TABLE: Table<4> = Table([size::<4>(), null(), null(), null()]);

static INTEGRITY_TABLE: Table<3> = Table([size::<3>(), integrity_check as *const c_void, null()]);

static CLS_TABLE: Table<3> = Table([
    cls_put as *const c_void,
    cls_delete as *const c_void,
    cls_get as *const c_void,
]);

static CHECKS_TABLE: Table<4> = Table([
    size::<4>(),
    null(),
    context_check as *const c_void,
    check_zero as *const c_void,
]);

/// The table for `id`, if the shim has it.
pub(crate) fn table(id: &[u8; 16]) -> Option<*const c_void> {
    let t: *const c_void = match *id {
        CUDART_INTERFACE => CUDART_INTERFACE_TABLE.0.as_ptr().cast(),
        TOOLS_RUNTIME_CALLBACK_HOOKS => HOOKS_TABLE.0.as_ptr().cast(),
        TOOLS_TLS => TOOLS_TLS_TABLE.0.as_ptr().cast(),
        INTEGRITY_CHECK => INTEGRITY_TABLE.0.as_ptr().cast(),
        CONTEXT_LOCAL_STORAGE => CLS_TABLE.0.as_ptr().cast(),
        CONTEXT_CHECKS => CHECKS_TABLE.0.as_ptr().cast(),
        _ => return None,
    };
    Some(t)
}

/// `cuGetExportTable`
///
/// # Safety
/// `table` is NULL or writable; `id` is NULL or points to a `CUuuid`.
#[no_mangle]
pub unsafe extern "C" fn cuGetExportTable(
    table: *mut *const c_void,
    id: *const CUuuid,
) -> CUresult {
    entry("cuGetExportTable", || {
        // SAFETY: the caller's contract.
        let id = unsafe { super::read(id) }?;
        let t = self::table(&id.bytes).ok_or(CUDA_ERROR_NOT_FOUND)?;
        // SAFETY: the caller's contract.
        unsafe { out(table, t) }
    })
}

// ---- CUDART_INTERFACE ----

/// Slot 1: a module in the current context from a fat binary wrapper.
///
/// # Safety
/// `module` is writable; `wrapper` points at a fat binary wrapper.
unsafe extern "C" fn module_from_wrapper(module: *mut Opaque, wrapper: *const c_void) -> CUresult {
    // SAFETY: the caller's contract; the image's magic says what it is.
    unsafe { cuModuleLoadData(module, wrapper) }
}

/// Slot 6: as slot 1, with arguments for linking that the runtime passes
/// as NULL and 0; anything else is not supported.
///
/// # Safety
/// As [`module_from_wrapper`].
unsafe extern "C" fn module_from_wrapper_ext(
    module: *mut Opaque,
    wrapper: *const c_void,
    a: *mut c_void,
    b: *mut c_void,
    c: c_uint,
) -> CUresult {
    if !a.is_null() || !b.is_null() || c != 0 {
        return CUDA_ERROR_NOT_SUPPORTED;
    }
    // SAFETY: the caller's contract.
    unsafe { cuModuleLoadData(module, wrapper) }
}

/// Slot 8: as slot 6, from the fat binary's header itself.
///
/// # Safety
/// `header` points at a fat binary; `module` is writable.
unsafe extern "C" fn module_from_header_ext(
    header: *const c_void,
    module: *mut Opaque,
    a: *mut c_void,
    b: *mut c_void,
    c: c_uint,
) -> CUresult {
    // SAFETY: the caller's contract.
    unsafe { module_from_wrapper_ext(module, header, a, b, c) }
}

/// Slot 2: the primary context of `dev`, created if need be but not
/// retained (its reference count is the program's, through
/// `cuDevicePrimaryCtxRetain`).
///
/// # Safety
/// `pctx` is NULL or writable.
unsafe extern "C" fn primary_context(pctx: *mut Opaque, dev: CUdevice) -> CUresult {
    entry("cudart primary context", || {
        if pctx.is_null() {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let h = super::context::primary(dev)?;
        // SAFETY: checked non-null; the caller's contract.
        unsafe { out(pctx, state::to_opaque(Kind::Context, h)) }
    })
}

/// Slot 7: called with one word; nothing to do.
extern "C" fn nothing(_arg: usize) {}

/// Slot 12: loads the driver's JIT compilers; the daemon's driver has its
/// own.
extern "C" fn load_compilers() -> CUresult {
    CUDA_SUCCESS
}

// ---- TOOLS_RUNTIME_CALLBACK_HOOKS ----

/// A zeroed buffer the runtime writes into.
struct Buffer<const N: usize>(std::cell::UnsafeCell<[u32; N]>);

// SAFETY: the shim never reads or writes the buffer; it only hands its
// address to the runtime, which synchronizes its own use of it.
unsafe impl<const N: usize> Sync for Buffer<N> {}

static HOOKS_BUFFER_1: Buffer<1024> = Buffer(std::cell::UnsafeCell::new([0; 1024]));
static HOOKS_BUFFER_2: Buffer<14> = Buffer(std::cell::UnsafeCell::new([0; 14]));

/// Slot 2: the first buffer and its length in `u32`s.
///
/// # Safety
/// `ptr` and `len` are NULL or writable.
unsafe extern "C" fn hooks_buffer_1(ptr: *mut *mut c_void, len: *mut usize) {
    // SAFETY: the caller's contract.
    unsafe {
        crate::ffi::write_opt(ptr, HOOKS_BUFFER_1.0.get().cast());
        crate::ffi::write_opt(len, 1024);
    }
}

/// Slot 6: the second buffer and its length in `u32`s.
///
/// # Safety
/// `ptr` and `len` are NULL or writable.
unsafe extern "C" fn hooks_buffer_2(ptr: *mut *mut c_void, len: *mut usize) {
    // SAFETY: the caller's contract.
    unsafe {
        crate::ffi::write_opt(ptr, HOOKS_BUFFER_2.0.get().cast());
        crate::ffi::write_opt(len, 14);
    }
}

// ---- INTEGRITY_CHECK ----

/// The facts about this process and the devices the shim reports.
fn record(version: u32, unix_seconds: u64) -> CuResult<Record> {
    let count = super::device::device_count()?;
    let devices = (0..count as CUdevice)
        .map(|d| {
            let a = |n| super::device::attribute(d, n).unwrap_or(0);
            Ok(DeviceId {
                uuid: super::device::info(d)?.uuid,
                pci_domain: a(CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID),
                pci_bus: a(CU_DEVICE_ATTRIBUTE_PCI_BUS_ID),
                pci_device: a(CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID),
            })
        })
        .collect::<CuResult<Vec<_>>>()?;
    let driver_version = super::device::driver_version();
    // SAFETY: pthread_self has no preconditions.
    let thread = unsafe { libc::pthread_self() } as u32;
    Ok(Record {
        driver_version: driver_version as u32,
        version,
        pid: std::process::id(),
        thread,
        cudart_table: CUDART_INTERFACE_TABLE.0.as_ptr() as u64,
        integrity_table: INTEGRITY_TABLE.0.as_ptr() as u64,
        function: integrity_check as *const c_void as u64,
        unix_seconds,
        devices,
    })
}

/// Slot 1: the integrity answer for the runtime at `version`.
///
/// # Safety
/// `result` is NULL or writable for 16 bytes.
unsafe extern "C" fn integrity_check(
    version: u32,
    unix_seconds: u64,
    result: *mut [u8; 16],
) -> CUresult {
    entry("cudart integrity check", || {
        let r = record(version, unix_seconds)?;
        // SAFETY: the caller's contract.
        unsafe { out(result, integrity::answer(&r)) }
    })
}

// ---- CONTEXT_CHECKS ----

/// Slot 2: flags of a context the runtime checks; none is set.
///
/// # Safety
/// `flags` and `extra` are NULL or writable.
unsafe extern "C" fn context_check(
    _ctx: Opaque,
    flags: *mut u32,
    extra: *mut *const c_void,
) -> CUresult {
    // SAFETY: the caller's contract.
    unsafe {
        crate::ffi::write_opt(flags, 0);
        crate::ffi::write_opt(extra, null());
    }
    CUDA_SUCCESS
}

/// Slot 3: always 0.
extern "C" fn check_zero() -> u32 {
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_tables_are_found_and_sized_unknown_ones_are_not() {
        let mut t: *const c_void = null();
        for (id, slots) in [
            (CUDART_INTERFACE, 13),
            (TOOLS_RUNTIME_CALLBACK_HOOKS, 7),
            (TOOLS_TLS, 4),
            (INTEGRITY_CHECK, 3),
            (CONTEXT_CHECKS, 4),
        ] {
            let uuid = CUuuid { bytes: id };
            // SAFETY: live locals.
            assert_eq!(unsafe { cuGetExportTable(&mut t, &uuid) }, CUDA_SUCCESS);
            // SAFETY: the table has at least one slot.
            let len = unsafe { t.cast::<usize>().read() };
            assert_eq!(len, slots * 8);
        }
        let cls = CUuuid {
            bytes: CONTEXT_LOCAL_STORAGE,
        };
        // SAFETY: live locals; the table has three slots.
        let first = unsafe {
            assert_eq!(cuGetExportTable(&mut t, &cls), CUDA_SUCCESS);
            t.cast::<*const c_void>().read()
        };
        assert_eq!(first, cls_put as *const c_void, "no size slot");
        let first_asked = CUuuid {
            bytes: uuid(0xf8cff951_2146_8b4e_b9e2_fb469e7c0dd9),
        };
        // SAFETY: live locals; NULL is refused before any read.
        let (unknown, null_id) = unsafe {
            (
                cuGetExportTable(&mut t, &first_asked),
                cuGetExportTable(&mut t, null()),
            )
        };
        assert_eq!(unknown, CUDA_ERROR_NOT_FOUND);
        assert_eq!(null_id, CUDA_ERROR_INVALID_VALUE);
        assert_eq!(
            &CUDART_INTERFACE[..4],
            &[0x6b, 0xd5, 0xfb, 0x6c],
            "text order"
        );
    }

    #[test]
    fn hook_buffers_are_the_sizes_the_runtime_expects() {
        let (mut p, mut n) = (std::ptr::null_mut(), 0usize);
        // SAFETY: live locals.
        unsafe { hooks_buffer_1(&mut p, &mut n) };
        assert_eq!(
            (p.cast_const(), n),
            (HOOKS_BUFFER_1.0.get().cast_const().cast(), 1024)
        );
        // SAFETY: live locals.
        unsafe { hooks_buffer_2(&mut p, &mut n) };
        assert_eq!(n, 14);
    }
}
