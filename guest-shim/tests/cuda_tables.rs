//! The CUDA runtime's private tables as a program reaches them
//! (`cuGetExportTable` of the built `libcuda.so.1`), against the daemon's
//! server over the recording double: context-local storage keeps a value
//! per context and key and runs its destructor when the primary context
//! is reset; the runtime's primary-context slot creates the context
//! without retaining it; unknown tables are not found.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;
#[path = "cuda/mod.rs"]
mod cuda;

use std::ffi::{c_int, c_uint, c_void};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicUsize, Ordering};

use cuda::{ok, Cu, Daemon, P};
use protocol::Opcode;

const CLS: [u8; 16] = 0xc693336e_1121_df11_a8c3_68f355d89593u128.to_be_bytes();
const CUDART_INTERFACE: [u8; 16] = 0x6bd5fb6c_5bf4_e74a_8987_d93912fd9df9u128.to_be_bytes();
const NOT_FOUND: c_uint = 500;
const INVALID_HANDLE: c_uint = 400;

type Put = unsafe extern "C" fn(P, P, P, Option<extern "C" fn(P, P, P)>) -> c_uint;
type Get = unsafe extern "C" fn(*mut P, P, P) -> c_uint;
type Primary = unsafe extern "C" fn(*mut P, c_int) -> c_uint;

static DESTROYED: AtomicUsize = AtomicUsize::new(0);

extern "C" fn destructor(_ctx: P, _key: P, value: P) {
    DESTROYED.fetch_add(value as usize, Ordering::SeqCst);
}

/// Slot `i` of a table.
///
/// # Safety
/// `t` is a table of more than `i` slots.
unsafe fn slot<F: Copy>(t: *const c_void, i: usize) -> F {
    // SAFETY: the caller's contract; a slot holds a function address.
    unsafe { std::mem::transmute_copy(&*t.cast::<*const c_void>().add(i)) }
}

#[test]
fn the_runtimes_tables_work_without_the_daemon() {
    let daemon = Daemon::start("tables");
    daemon.run_scenario("scenario_tables");
    // One context was created, by the primary-context slot; the storage
    // calls made no request.
    assert_eq!(daemon.recorder.requests(Opcode::CuCtxCreate).len(), 1);
    assert_eq!(daemon.recorder.requests(Opcode::CuCtxDestroy).len(), 1);
}

#[test]
#[ignore = "a scenario, run in a child process by the test above"]
fn scenario_tables() {
    let Some(cu) = Cu::load() else { return };
    // SAFETY: the driver API and its tables, used as the runtime uses them.
    unsafe {
        ok((cu.cuInit)(0));
        let mut t: *const c_void = std::ptr::null();
        assert_eq!((cu.cuGetExportTable)(&mut t, &[7; 16]), NOT_FOUND);
        ok((cu.cuGetExportTable)(&mut t, &CUDART_INTERFACE));
        let primary: Primary = slot(t, 2);
        let mut ctx = null_mut();
        ok(primary(&mut ctx, 0));
        let (mut flags, mut active) = (0, 7);
        ok((cu.cuDevicePrimaryCtxGetState)(0, &mut flags, &mut active));
        assert_eq!(active, 0, "created, not retained");
        let mut again = null_mut();
        ok((cu.cuDevicePrimaryCtxRetain)(&mut again, 0));
        assert_eq!(again, ctx, "the same primary context");
        ok((cu.cuDevicePrimaryCtxGetState)(0, &mut flags, &mut active));
        assert_eq!(active, 1);
        ok((cu.cuCtxSetCurrent)(ctx));

        ok((cu.cuGetExportTable)(&mut t, &CLS));
        let (put, get): (Put, Get) = (slot(t, 0), slot(t, 2));
        let (k1, k2) = (1usize as P, 2usize as P);
        ok(put(ctx, k1, 10usize as P, Some(destructor)));
        ok(put(null_mut(), k2, 32usize as P, Some(destructor)));
        let mut v = null_mut();
        ok(get(&mut v, ctx, k1));
        assert_eq!(v as usize, 10);
        ok(get(&mut v, null_mut(), k2));
        assert_eq!(v as usize, 32, "NULL is the current context");
        assert_eq!(get(&mut v, ctx, 3usize as P), INVALID_HANDLE);

        assert_eq!(DESTROYED.load(Ordering::SeqCst), 0);
        ok((cu.cuDevicePrimaryCtxReset_v2)(0));
        assert_eq!(DESTROYED.load(Ordering::SeqCst), 42, "both destructors ran");
        assert_ne!(get(&mut v, ctx, k1), 0, "gone with the context");
    }
    println!("SCENARIO OK");
}
