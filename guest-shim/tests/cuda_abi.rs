//! The built `libcuda.so.1`, loaded with `dlopen` as a CUDA program would:
//! every `cu*` symbol it exports is reachable through its own
//! `cuGetProcAddress_v2` (by API name, version and stream mode), unknown
//! names are "not found" with a NULL pointer, and with no daemon `cuInit`
//! fails promptly with `CUDA_ERROR_NO_DEVICE` while the local answers
//! (`cuGetErrorName`, `cuDriverGetVersion`) still work. Loaded as the
//! OpenCL ICD and as `libcuda.so.1` in one process, it is mapped once, so
//! both APIs share one session.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::process::Command;

mod common;

type GetProc =
    unsafe extern "C" fn(*const c_char, *mut *mut c_void, c_int, u64, *mut c_int) -> c_uint;

const PER_THREAD: u64 = 1 << 1;
const VERSIONS: [c_int; 13] = [
    2000, 2020, 3020, 4000, 6050, 7000, 9020, 11000, 11040, 12000, 12050, 12080, 13000,
];

fn cu_exports(lib: &std::path::Path) -> Option<Vec<String>> {
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(lib)
        .output()
        .ok()?;
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().nth(2))
            .map(|s| s.split('@').next().unwrap_or(s).to_string())
            .filter(|s| s.starts_with("cu"))
            .collect(),
    )
}

/// The API name a symbol is looked up by: without `_ptds`/`_ptsz` and
/// without its `_vN` suffix.
fn api_name(symbol: &str) -> (String, bool) {
    let (base, per_thread) = match symbol
        .strip_suffix("_ptds")
        .or(symbol.strip_suffix("_ptsz"))
    {
        Some(b) => (b, true),
        None => (symbol, false),
    };
    let base = ["_v2", "_v3", "_v4"]
        .iter()
        .find_map(|v| base.strip_suffix(v))
        .unwrap_or(base);
    (base.to_string(), per_thread)
}

#[test]
fn every_export_is_reachable_through_cu_get_proc_address() {
    let dir = common::cuda_lib_dir();
    let path = dir.join("libcuda.so.1");
    let Some(symbols) = cu_exports(&path) else {
        println!("SKIPPED: nm not installed");
        return;
    };
    assert!(symbols.len() > 100, "only {} cu* exports", symbols.len());
    // SAFETY: loading the shim runs no initialisers with preconditions.
    let lib = unsafe { libloading::Library::new(&path) }.expect("dlopen libcuda.so.1");
    // SAFETY: the symbol has the cuGetProcAddress_v2 signature (checked
    // against cuda.h by the shim's unit tests).
    let get_proc: GetProc = *unsafe { lib.get::<GetProc>(b"cuGetProcAddress_v2") }.expect("symbol");
    for sym in &symbols {
        // SAFETY: only the address is taken.
        let addr = *unsafe { lib.get::<unsafe extern "C" fn()>(sym.as_bytes()) }.expect("exported")
            as usize;
        let (name, per_thread) = api_name(sym);
        let cname = std::ffi::CString::new(name.clone()).unwrap();
        let flags = if per_thread { PER_THREAD } else { 0 };
        let found = VERSIONS.iter().any(|&v| {
            let mut pfn = std::ptr::null_mut();
            let mut status = -1;
            // SAFETY: a NUL-terminated name and live out-pointers.
            let rc = unsafe { get_proc(cname.as_ptr(), &mut pfn, v, flags, &mut status) };
            rc == 0 && status == 0 && pfn as usize == addr
        });
        assert!(
            found,
            "{sym} is not reachable as {name:?} (per-thread: {per_thread})"
        );
    }
    let mut pfn: *mut c_void = std::ptr::dangling_mut();
    let mut status = -1;
    // SAFETY: as above.
    let rc = unsafe { get_proc(c"cuNotAFunction".as_ptr(), &mut pfn, 12080, 0, &mut status) };
    assert_eq!(
        (rc, status),
        (500, 1),
        "CUDA_ERROR_NOT_FOUND, SYMBOL_NOT_FOUND"
    );
    assert!(pfn.is_null());
}

#[test]
fn without_a_daemon_init_fails_promptly_and_local_answers_work() {
    let dir = common::cuda_lib_dir();
    // The check runs in a child process: the environment and the shim's
    // one session are per process.
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([
            "--exact",
            "child_probe_without_daemon",
            "--ignored",
            "--nocapture",
        ])
        .env("VCOMPUTE_PROBE_LIB", dir.join("libcuda.so.1"))
        .env("VCOMPUTE_ENDPOINT", "vhost-user:/nonexistent/vcompute.sock")
        .output()
        .expect("run the probe");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "probe failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("PROBE OK"), "probe did not run:\n{stdout}");
    assert!(
        stderr.contains("vcompute: cannot reach daemon"),
        "no reason given:\n{stderr}"
    );
}

/// Run by the test above in a child process.
#[test]
#[ignore = "run as a child of without_a_daemon_init_fails_promptly_and_local_answers_work"]
fn child_probe_without_daemon() {
    let Ok(path) = std::env::var("VCOMPUTE_PROBE_LIB") else {
        return;
    };
    // SAFETY: as above.
    let lib = unsafe { libloading::Library::new(path) }.expect("dlopen");
    type Init = unsafe extern "C" fn(c_uint) -> c_uint;
    type Name = unsafe extern "C" fn(c_uint, *mut *const c_char) -> c_uint;
    type Version = unsafe extern "C" fn(*mut c_int) -> c_uint;
    type Count = unsafe extern "C" fn(*mut c_int) -> c_uint;
    // SAFETY: the signatures of cuda.h (checked by the unit tests).
    unsafe {
        let init: Init = *lib.get(b"cuInit").unwrap();
        let name: Name = *lib.get(b"cuGetErrorName").unwrap();
        let version: Version = *lib.get(b"cuDriverGetVersion").unwrap();
        let count: Count = *lib.get(b"cuDeviceGetCount").unwrap();
        let start = std::time::Instant::now();
        assert_eq!(init(0), 100, "CUDA_ERROR_NO_DEVICE");
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
        let mut s = std::ptr::null();
        assert_eq!(name(100, &mut s), 0);
        assert_eq!(CStr::from_ptr(s).to_str().unwrap(), "CUDA_ERROR_NO_DEVICE");
        let mut v = 0;
        assert_eq!(version(&mut v), 0);
        assert!(v >= 12000, "the shim's own API level without a daemon");
        let mut n = -1;
        assert_eq!(count(&mut n), 3, "CUDA_ERROR_NOT_INITIALIZED");
    }
    println!("PROBE OK");
}

#[test]
fn the_opencl_icd_and_libcuda_are_one_mapping_so_one_session() {
    let dir = common::cuda_lib_dir();
    let icd = common::build_shim();
    // SAFETY: as above.
    let (a, b) = unsafe {
        (
            libloading::Library::new(&icd).expect("dlopen the ICD path"),
            libloading::Library::new(dir.join("libcuda.so.1")).expect("dlopen libcuda.so.1"),
        )
    };
    // SAFETY: only the addresses are taken.
    let (x, y) = unsafe {
        (
            *a.get::<unsafe extern "C" fn()>(b"cuInit").unwrap() as usize,
            *b.get::<unsafe extern "C" fn()>(b"cuInit").unwrap() as usize,
        )
    };
    assert_eq!(
        x, y,
        "loaded twice: OpenCL and CUDA would open two sessions"
    );
}
