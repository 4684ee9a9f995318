//! CUDA micro-benchmarks, native and through the shim in one invocation.
//!
//! Loads the native driver (`libcuda.so.1` from the system's library
//! path) and the shim (`--shim`, by default `target/release/cuda/libcuda.so.1`
//! as made by `scripts/libcuda.sh`) with `dlopen`, runs the same driver-API
//! code on each, and prints one row per measure with the ratio:
//!
//! - launch throughput of an empty kernel, asynchronous (launches/s);
//! - the synchronous round trip: `cuCtxSynchronize` on an idle context (µs);
//! - H2D and D2H bandwidth from pageable and from host-allocated
//!   (`cuMemHostAlloc`) buffers (GB/s).
//!
//! The shim needs a daemon on a GPU host: start
//! `vhost-device-compute --socket S --executor cuda` and set
//! `VCOMPUTE_ENDPOINT=vhost-user:S`. Without an NVIDIA driver the program
//! says so and exits successfully (nothing to compare).
//!
//! ```sh
//! scripts/libcuda.sh release
//! cargo run --release -p vcompute-shim --example cuda_micro -- [--quick] [--shim PATH]
//! ```
#![allow(clippy::expect_used, clippy::unwrap_used, non_snake_case)]

use std::ffi::{c_int, c_uint, c_void};
use std::path::PathBuf;
use std::ptr::null_mut;
use std::time::Instant;

type P = *mut c_void;

/// The driver entry points the benchmarks use.
struct Api {
    _lib: libloading::Library,
    cuInit: unsafe extern "C" fn(c_uint) -> c_uint,
    cuDeviceGet: unsafe extern "C" fn(*mut c_int, c_int) -> c_uint,
    cuCtxCreate_v2: unsafe extern "C" fn(*mut P, c_uint, c_int) -> c_uint,
    cuCtxDestroy_v2: unsafe extern "C" fn(P) -> c_uint,
    cuCtxSynchronize: unsafe extern "C" fn() -> c_uint,
    cuModuleLoadData: unsafe extern "C" fn(*mut P, *const c_void) -> c_uint,
    cuModuleGetFunction: unsafe extern "C" fn(*mut P, P, *const std::ffi::c_char) -> c_uint,
    cuLaunchKernel: unsafe extern "C" fn(
        P,
        c_uint,
        c_uint,
        c_uint,
        c_uint,
        c_uint,
        c_uint,
        c_uint,
        P,
        *mut P,
        *mut P,
    ) -> c_uint,
    cuMemAlloc_v2: unsafe extern "C" fn(*mut u64, usize) -> c_uint,
    cuMemFree_v2: unsafe extern "C" fn(u64) -> c_uint,
    cuMemcpyHtoD_v2: unsafe extern "C" fn(u64, *const c_void, usize) -> c_uint,
    cuMemcpyDtoH_v2: unsafe extern "C" fn(*mut c_void, u64, usize) -> c_uint,
    cuMemHostAlloc: unsafe extern "C" fn(*mut P, usize, c_uint) -> c_uint,
    cuMemFreeHost: unsafe extern "C" fn(P) -> c_uint,
}

impl Api {
    fn load(path: &str) -> Result<Api, String> {
        // SAFETY: loading a CUDA driver library; its initialisers have no
        // preconditions.
        let lib = unsafe { libloading::Library::new(path) }.map_err(|e| e.to_string())?;
        macro_rules! sym {
            ($n:ident) => {
                // SAFETY: the symbol has the signature of cuda.h.
                *unsafe { lib.get(concat!(stringify!($n), "\0").as_bytes()) }
                    .map_err(|e| format!("{}: {e}", stringify!($n)))?
            };
        }
        Ok(Api {
            cuInit: sym!(cuInit),
            cuDeviceGet: sym!(cuDeviceGet),
            cuCtxCreate_v2: sym!(cuCtxCreate_v2),
            cuCtxDestroy_v2: sym!(cuCtxDestroy_v2),
            cuCtxSynchronize: sym!(cuCtxSynchronize),
            cuModuleLoadData: sym!(cuModuleLoadData),
            cuModuleGetFunction: sym!(cuModuleGetFunction),
            cuLaunchKernel: sym!(cuLaunchKernel),
            cuMemAlloc_v2: sym!(cuMemAlloc_v2),
            cuMemFree_v2: sym!(cuMemFree_v2),
            cuMemcpyHtoD_v2: sym!(cuMemcpyHtoD_v2),
            cuMemcpyDtoH_v2: sym!(cuMemcpyDtoH_v2),
            cuMemHostAlloc: sym!(cuMemHostAlloc),
            cuMemFreeHost: sym!(cuMemFreeHost),
            _lib: lib,
        })
    }
}

fn check(what: &str, rc: c_uint) {
    assert_eq!(rc, 0, "{what} returned CUresult {rc}");
}

const EMPTY_PTX: &str = ".version 7.0\n.target sm_50\n.address_size 64\n\
    .visible .entry empty() { ret; }\n\0";

/// One measure's results.
#[derive(Default)]
struct Results {
    launches_per_s: f64,
    sync_us: f64,
    /// (name, GB/s)
    bandwidth: Vec<(&'static str, f64)>,
}

struct Sizes {
    launches: usize,
    syncs: usize,
    bytes: usize,
    reps: usize,
}

/// Runs every measure on one driver.
fn run(api: &Api, s: &Sizes) -> Results {
    let mut r = Results::default();
    // SAFETY: the driver API, used as documented, on live buffers.
    unsafe {
        let mut dev = 0;
        check("cuDeviceGet", (api.cuDeviceGet)(&mut dev, 0));
        let mut ctx = null_mut();
        check("cuCtxCreate", (api.cuCtxCreate_v2)(&mut ctx, 0, dev));
        let mut module = null_mut();
        check(
            "cuModuleLoadData",
            (api.cuModuleLoadData)(&mut module, EMPTY_PTX.as_ptr().cast()),
        );
        let mut f = null_mut();
        check(
            "cuModuleGetFunction",
            (api.cuModuleGetFunction)(&mut f, module, c"empty".as_ptr()),
        );

        // Warm up, then asynchronous launches, drained by one sync.
        let launch =
            || (api.cuLaunchKernel)(f, 1, 1, 1, 1, 1, 1, 0, null_mut(), null_mut(), null_mut());
        for _ in 0..100 {
            check("cuLaunchKernel", launch());
        }
        check("cuCtxSynchronize", (api.cuCtxSynchronize)());
        let t = Instant::now();
        for _ in 0..s.launches {
            check("cuLaunchKernel", launch());
        }
        check("cuCtxSynchronize", (api.cuCtxSynchronize)());
        r.launches_per_s = s.launches as f64 / t.elapsed().as_secs_f64();

        let t = Instant::now();
        for _ in 0..s.syncs {
            check("cuCtxSynchronize", (api.cuCtxSynchronize)());
        }
        r.sync_us = t.elapsed().as_secs_f64() * 1e6 / s.syncs as f64;

        let mut d = 0;
        check("cuMemAlloc", (api.cuMemAlloc_v2)(&mut d, s.bytes));
        let mut pageable = vec![1u8; s.bytes];
        let mut pinned = null_mut();
        check(
            "cuMemHostAlloc",
            (api.cuMemHostAlloc)(&mut pinned, s.bytes, 0),
        );
        std::ptr::write_bytes(pinned.cast::<u8>(), 1, s.bytes);
        let gbps = |t: Instant| (s.bytes * s.reps) as f64 / t.elapsed().as_secs_f64() / 1e9;
        for (name, host) in [
            ("pageable", pageable.as_mut_ptr().cast::<c_void>()),
            ("host-allocated", pinned),
        ] {
            check("warm-up", (api.cuMemcpyHtoD_v2)(d, host, s.bytes));
            let t = Instant::now();
            for _ in 0..s.reps {
                check("cuMemcpyHtoD", (api.cuMemcpyHtoD_v2)(d, host, s.bytes));
            }
            check("cuCtxSynchronize", (api.cuCtxSynchronize)());
            r.bandwidth.push((
                if name == "pageable" {
                    "H2D pageable"
                } else {
                    "H2D host-allocated"
                },
                gbps(t),
            ));
            let t = Instant::now();
            for _ in 0..s.reps {
                check("cuMemcpyDtoH", (api.cuMemcpyDtoH_v2)(host, d, s.bytes));
            }
            r.bandwidth.push((
                if name == "pageable" {
                    "D2H pageable"
                } else {
                    "D2H host-allocated"
                },
                gbps(t),
            ));
        }
        check("cuMemFreeHost", (api.cuMemFreeHost)(pinned));
        check("cuMemFree", (api.cuMemFree_v2)(d));
        check("cuCtxDestroy", (api.cuCtxDestroy_v2)(ctx));
    }
    r
}

/// Loads and initialises a driver, or says why not.
fn open(path: &str) -> Result<Api, String> {
    let api = Api::load(path)?;
    // SAFETY: cuInit with the only valid flags.
    match unsafe { (api.cuInit)(0) } {
        0 => Ok(api),
        rc => Err(format!("cuInit returned CUresult {rc}")),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let shim = args
        .iter()
        .position(|a| a == "--shim")
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| {
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
            root.join("target/release/cuda/libcuda.so.1")
                .display()
                .to_string()
        });
    let sizes = if quick {
        Sizes {
            launches: 2_000,
            syncs: 500,
            bytes: 8 << 20,
            reps: 3,
        }
    } else {
        Sizes {
            launches: 100_000,
            syncs: 10_000,
            bytes: 64 << 20,
            reps: 10,
        }
    };

    let native = match open("libcuda.so.1") {
        Ok(api) => api,
        Err(why) => {
            println!("SKIPPED: no NVIDIA driver on this machine ({why}); nothing to compare");
            return;
        }
    };
    let n = run(&native, &sizes);
    drop(native);
    let v = if std::env::var_os("VCOMPUTE_ENDPOINT").is_none() {
        println!(
            "shim: SKIPPED (VCOMPUTE_ENDPOINT is not set; start the daemon with --executor cuda)"
        );
        None
    } else {
        match open(&shim) {
            Ok(api) => Some(run(&api, &sizes)),
            Err(why) => {
                println!("shim: SKIPPED ({shim}: {why})");
                None
            }
        }
    };

    println!(
        "{:<28} {:>14} {:>14} {:>8}",
        "measure", "native", "virtualized", "ratio"
    );
    let row = |name: &str, a: f64, b: Option<f64>, unit: &str| match b {
        Some(b) => println!(
            "{name:<28} {a:>11.2} {unit:<2} {b:>11.2} {unit:<2} {:>8.3}",
            b / a
        ),
        None => println!("{name:<28} {a:>11.2} {unit:<2} {:>14} {:>8}", "-", "-"),
    };
    row(
        "empty launch (async)",
        n.launches_per_s / 1e3,
        v.as_ref().map(|v| v.launches_per_s / 1e3),
        "k/s",
    );
    row(
        "cuCtxSynchronize (idle)",
        n.sync_us,
        v.as_ref().map(|v| v.sync_us),
        "us",
    );
    for (i, (name, gbps)) in n.bandwidth.iter().enumerate() {
        row(
            name,
            *gbps,
            v.as_ref().and_then(|v| v.bandwidth.get(i)).map(|b| b.1),
            "GB/s",
        );
    }
}
