//! CUDA programs through the built `libcuda.so.1`, the client pipeline and
//! real virtqueues, against the daemon's server running in-process over
//! the recording test double (no GPU: the double keeps device memory in
//! host RAM and records every call, but runs no kernel).
//!
//! Each test starts the server, runs one scenario in a child process that
//! `dlopen`s the library as a CUDA program would, and then checks what the
//! double recorded: launch parameter bytes equal what the program passed,
//! asynchronous failures surface at the next synchronizing call, pageable
//! async copies capture their bytes at the call, and host allocations are
//! read in place (zero-copy) when the batch goes.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;
#[path = "cuda/mod.rs"]
mod cuda;

use std::ffi::{c_void, CStr};
use std::ptr::null_mut;

use cuda::{link_add_ptx, ok, Cu, Daemon, P, PTX};
use protocol::cuda::LaunchKernel;
use protocol::{Opcode, Request};

const INVALID_VALUE: u32 = 1;
const LAUNCH_FAILED: u32 = 719;
const ILLEGAL_ADDRESS: u32 = 700;

/// cuInit, a context on device 0 and the `scale` kernel.
fn setup(cu: &Cu) -> (P, P) {
    // SAFETY: the driver API, used as documented.
    unsafe {
        ok((cu.cuInit)(0));
        let mut ctx = null_mut();
        ok((cu.cuCtxCreate_v2)(&mut ctx, 0, 0));
        let mut module = null_mut();
        ok((cu.cuModuleLoadData)(&mut module, PTX.as_ptr().cast()));
        let mut f = null_mut();
        ok((cu.cuModuleGetFunction)(&mut f, module, c"scale".as_ptr()));
        (ctx, f)
    }
}

fn alloc(cu: &Cu, n: usize) -> u64 {
    let mut d = 0;
    // SAFETY: a live out-pointer.
    ok(unsafe { (cu.cuMemAlloc_v2)(&mut d, n) });
    d
}

fn read_back(cu: &Cu, d: u64, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    // SAFETY: `v` holds `n` bytes.
    ok(unsafe { (cu.cuMemcpyDtoH_v2)(v.as_mut_ptr().cast(), d, n) });
    v
}

fn launches(d: &Daemon) -> Vec<LaunchKernel> {
    d.recorder
        .requests(Opcode::CuLaunchKernel)
        .into_iter()
        .filter_map(|r| match r {
            Request::CuLaunchKernel(l) => Some(l),
            _ => None,
        })
        .collect()
}

/// A hex number the scenario printed after `key` (libtest may print its
/// own text before it on the same line).
fn printed(out: &str, key: &str) -> u64 {
    let rest = out.lines().find_map(|l| l.split(key).nth(1)).expect(key);
    let hex: String = rest.chars().take_while(char::is_ascii_hexdigit).collect();
    u64::from_str_radix(&hex, 16).unwrap()
}

// ---- marshaling ----

#[test]
fn launch_parameters_and_copies_arrive_as_the_program_passed_them() {
    let daemon = Daemon::start("marshal");
    let out = daemon.run_scenario("scenario_marshaling");
    let dptr = printed(&out, "DPTR=");
    let l = launches(&daemon);
    assert_eq!(l.len(), 2, "{l:?}");
    let mut want = dptr.to_le_bytes().to_vec();
    want.extend(2.5f32.to_le_bytes());
    want.extend(1024u32.to_le_bytes());
    assert_eq!(
        l[0].params, want,
        "kernelParams packed at the layout's offsets"
    );
    assert_eq!((l[0].grid, l[0].block), ([4, 2, 1], [256, 1, 1]));
    assert_eq!(l[0].shared_mem_bytes, 128);
    let mut blob = dptr.to_le_bytes().to_vec();
    blob.extend(3.5f32.to_le_bytes());
    blob.extend(7u32.to_le_bytes());
    assert_eq!(l[1].params, blob, "the extra form's buffer, as passed");
}

#[test]
#[ignore = "a scenario, run in a child process by the test above"]
fn scenario_marshaling() {
    let Some(cu) = Cu::load() else { return };
    // SAFETY: live out-pointers.
    unsafe {
        let (mut v, mut n) = (0, 0);
        ok((cu.cuDriverGetVersion)(&mut v));
        assert_eq!(
            v, 12040,
            "the daemon's driver (the double's), before cuInit"
        );
        assert_eq!(
            (cu.cuDeviceGetCount)(&mut n),
            3,
            "NOT_INITIALIZED before cuInit"
        );
    }
    let (_ctx, f) = setup(&cu);
    // SAFETY: the driver API, used as documented, on live buffers.
    unsafe {
        let mut n = 0;
        ok((cu.cuDeviceGetCount)(&mut n));
        assert_eq!(n, 1);
        let mut name = [0 as std::ffi::c_char; 128];
        ok((cu.cuDeviceGetName)(name.as_mut_ptr(), 128, 0));
        let name = CStr::from_ptr(name.as_ptr()).to_string_lossy();
        assert!(name.contains("recording test double"), "{name}");
        for (i, want) in [(0, (0, 8)), (1, (8, 4)), (2, (12, 4))] {
            let (mut off, mut size) = (0, 0);
            ok((cu.cuFuncGetParamInfo)(f, i, &mut off, &mut size));
            assert_eq!((off, size), want, "parameter {i}");
        }

        // Copies: H2D, D2H, memset, D2D.
        let d = alloc(&cu, 1 << 16);
        let e = alloc(&cu, 1 << 16);
        let data: Vec<u8> = (0..1 << 16).map(|i| (i * 7 % 251) as u8).collect();
        ok((cu.cuMemcpyHtoD_v2)(d, data.as_ptr().cast(), data.len()));
        assert_eq!(read_back(&cu, d, data.len()), data);
        ok((cu.cuMemcpyDtoD_v2)(e, d, data.len()));
        ok((cu.cuMemsetD32_v2)(d + 64, 0xdead_beef, 4));
        let got = read_back(&cu, d, 128);
        assert_eq!(&got[..64], &data[..64]);
        assert_eq!(&got[64..80], &0xdead_beef_u32.to_le_bytes().repeat(4)[..]);
        assert_eq!(read_back(&cu, e, data.len()), data, "D2D before the memset");

        // A bad range fails at once, even for a posted call.
        let rc = (cu.cuMemcpyHtoD_v2)(d + (1 << 16) - 4, data.as_ptr().cast(), 8);
        assert_eq!(rc, INVALID_VALUE);
        assert_eq!((cu.cuMemsetD32_v2)(0x1234, 0, 1), INVALID_VALUE);

        // Both launch forms.
        let (mut p, mut k, mut count) = (d, 2.5f32, 1024u32);
        let mut args: [*mut c_void; 3] = [
            (&raw mut p).cast(),
            (&raw mut k).cast(),
            (&raw mut count).cast(),
        ];
        ok((cu.cuLaunchKernel)(
            f,
            4,
            2,
            1,
            256,
            1,
            1,
            128,
            null_mut(),
            args.as_mut_ptr(),
            null_mut(),
        ));
        let mut blob = d.to_le_bytes().to_vec();
        blob.extend(3.5f32.to_le_bytes());
        blob.extend(7u32.to_le_bytes());
        let mut len = blob.len();
        // CU_LAUNCH_PARAM_BUFFER_POINTER, _SIZE and _END are the values
        // 1, 2 and 0 in the pointer array.
        let key = |k: usize| k as *mut c_void;
        let mut extra: [*mut c_void; 5] = [
            key(1),
            blob.as_mut_ptr().cast(),
            key(2),
            (&raw mut len).cast(),
            key(0),
        ];
        ok((cu.cuLaunchKernel)(
            f,
            1,
            1,
            1,
            32,
            1,
            1,
            0,
            null_mut(),
            null_mut(),
            extra.as_mut_ptr(),
        ));
        // Both forms at once is a usage error, reported at once.
        let rc = (cu.cuLaunchKernel)(
            f,
            1,
            1,
            1,
            32,
            1,
            1,
            0,
            null_mut(),
            args.as_mut_ptr(),
            extra.as_mut_ptr(),
        );
        assert_eq!(rc, INVALID_VALUE);
        ok((cu.cuCtxSynchronize)());
        ok((cu.cuMemFree_v2)(e));
        assert_eq!((cu.cuMemFree_v2)(e), INVALID_VALUE, "double free");
        println!("DPTR={d:x}");
    }
    println!("SCENARIO OK");
}

// ---- sticky errors ----

#[test]
fn asynchronous_failures_surface_at_the_next_synchronizing_call() {
    let daemon = Daemon::start("sticky");
    daemon
        .recorder
        .fail(Opcode::CuLaunchKernel, 0, LAUNCH_FAILED as i32);
    daemon
        .recorder
        .fail(Opcode::CuMemset, 0, ILLEGAL_ADDRESS as i32);
    daemon.run_scenario("scenario_sticky");
    // The calls after the failed launch still ran, in order.
    let ops: Vec<Opcode> = daemon
        .recorder
        .calls()
        .iter()
        .map(|c| c.request.opcode())
        .filter(|o| matches!(o, Opcode::CuLaunchKernel | Opcode::CuCtxSynchronize))
        .collect();
    assert_eq!(
        ops,
        [
            Opcode::CuLaunchKernel,
            Opcode::CuLaunchKernel,
            Opcode::CuCtxSynchronize,
            Opcode::CuCtxSynchronize
        ]
    );
}

#[test]
fn a_failure_in_a_batch_left_in_flight_surfaces_at_the_next_sync() {
    // 1000 launches fill several batches; each full batch is started
    // without waiting, so the failure of launch 600 is seen only when its
    // batch completes, and must still surface (once) at the next sync.
    let daemon = Daemon::start("inflight");
    daemon
        .recorder
        .fail(Opcode::CuLaunchKernel, 600, LAUNCH_FAILED as i32);
    daemon.run_scenario("scenario_in_flight");
    let launches = launches(&daemon);
    assert_eq!(
        launches.len(),
        1000,
        "every launch reached the daemon, in order"
    );
    let counts: Vec<u32> = launches
        .iter()
        .map(|l| u32::from_le_bytes(l.params[12..16].try_into().unwrap()))
        .collect();
    assert!(counts.iter().enumerate().all(|(i, &n)| n == i as u32));
}

#[test]
#[ignore = "a scenario, run in a child process by the test above"]
fn scenario_in_flight() {
    let Some(cu) = Cu::load() else { return };
    let (_ctx, f) = setup(&cu);
    let d = alloc(&cu, 4096);
    // SAFETY: the driver API, used as documented.
    unsafe {
        for i in 0..1000u32 {
            let (mut p, mut k, mut n) = (d, 1f32, i);
            let mut args: [*mut c_void; 3] = [
                (&raw mut p).cast(),
                (&raw mut k).cast(),
                (&raw mut n).cast(),
            ];
            let rc = (cu.cuLaunchKernel)(
                f,
                1,
                1,
                1,
                32,
                1,
                1,
                0,
                null_mut(),
                args.as_mut_ptr(),
                null_mut(),
            );
            ok(rc);
        }
        assert_eq!((cu.cuCtxSynchronize)(), LAUNCH_FAILED, "the failed launch");
        ok((cu.cuCtxSynchronize)());
    }
    println!("SCENARIO OK");
}

#[test]
#[ignore = "a scenario, run in a child process by the test above"]
fn scenario_sticky() {
    let Some(cu) = Cu::load() else { return };
    let (_ctx, f) = setup(&cu);
    let d = alloc(&cu, 4096);
    // SAFETY: the driver API, used as documented.
    unsafe {
        let (mut p, mut k, mut n) = (d, 1f32, 1u32);
        let mut args: [*mut c_void; 3] = [
            (&raw mut p).cast(),
            (&raw mut k).cast(),
            (&raw mut n).cast(),
        ];
        let launch = |args: *mut *mut c_void| {
            (cu.cuLaunchKernel)(f, 1, 1, 1, 32, 1, 1, 0, null_mut(), args, null_mut())
        };
        ok(launch(args.as_mut_ptr()));
        ok(launch(args.as_mut_ptr()));
        assert_eq!((cu.cuCtxSynchronize)(), LAUNCH_FAILED, "the failed launch");
        ok((cu.cuCtxSynchronize)());

        let mut s = null_mut();
        ok((cu.cuStreamCreate)(&mut s, 0));
        ok((cu.cuMemsetD8Async)(d, 1, 4096, s));
        assert_eq!((cu.cuStreamSynchronize)(s), ILLEGAL_ADDRESS);
        ok((cu.cuStreamSynchronize)(s));
        ok((cu.cuStreamDestroy_v2)(s));
        assert_eq!((cu.cuStreamSynchronize)(s), 400, "destroyed stream");
    }
    println!("SCENARIO OK");
}

// ---- pageable async copies ----

#[test]
fn pageable_async_copies_capture_their_bytes_at_the_call() {
    let daemon = Daemon::start("pageable");
    daemon.run_scenario("scenario_pageable");
}

#[test]
#[ignore = "a scenario, run in a child process by the test above"]
fn scenario_pageable() {
    let Some(cu) = Cu::load() else { return };
    let _ = setup(&cu);
    for len in [4096usize, 3 << 20] {
        let d = alloc(&cu, len);
        let mut buf: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        let want = buf.clone();
        // SAFETY: live buffers of `len` bytes.
        unsafe {
            let mut s = null_mut();
            ok((cu.cuStreamCreate)(&mut s, 0));
            ok((cu.cuMemcpyHtoDAsync_v2)(d, buf.as_ptr().cast(), len, s));
            buf.fill(0xee); // the program reuses its memory at once
            ok((cu.cuStreamSynchronize)(s));
            // And an async D2H into pageable memory is complete on return.
            let mut back = vec![0u8; len];
            ok((cu.cuMemcpyDtoHAsync_v2)(
                back.as_mut_ptr().cast(),
                d,
                len,
                s,
            ));
            assert!(back == want, "{len} bytes captured at the call");
        }
    }
    println!("SCENARIO OK");
}

// ---- host allocations ----

#[test]
fn host_allocations_are_read_and_written_in_place() {
    let daemon = Daemon::start("hostalloc");
    daemon.run_scenario("scenario_host_alloc");
    let inputs: Vec<Vec<u8>> = daemon
        .recorder
        .calls()
        .into_iter()
        .filter(|c| c.request.opcode() == Opcode::CuMemcpyHtoD)
        .map(|c| c.input)
        .collect();
    assert_eq!(inputs.len(), 1);
    assert!(
        inputs[0].iter().all(|&b| b == 0x22),
        "the daemon read the block when the batch went, not a copy made at the call"
    );
}

#[test]
#[ignore = "a scenario, run in a child process by the test above"]
fn scenario_host_alloc() {
    let Some(cu) = Cu::load() else { return };
    let _ = setup(&cu);
    const LEN: usize = 1 << 20;
    let d = alloc(&cu, LEN);
    // SAFETY: the driver API on live host blocks of LEN bytes.
    unsafe {
        let (mut a, mut b) = (null_mut(), null_mut());
        ok((cu.cuMemHostAlloc)(&mut a, LEN, 0));
        ok((cu.cuMemAllocHost_v2)(&mut b, LEN));
        let mut mem_type = 0u32;
        ok((cu.cuPointerGetAttribute)(
            (&raw mut mem_type).cast(),
            2,
            a as u64,
        ));
        assert_eq!(mem_type, 1, "CU_MEMORYTYPE_HOST");
        let mut s = null_mut();
        ok((cu.cuStreamCreate)(&mut s, 0));
        std::ptr::write_bytes(a.cast::<u8>(), 0x11, LEN);
        ok((cu.cuMemcpyHtoDAsync_v2)(d, a, LEN, s));
        // Pinned memory may not change before the copy is synchronized;
        // doing so shows when the bytes are read: in place, later.
        std::ptr::write_bytes(a.cast::<u8>(), 0x22, LEN);
        ok((cu.cuStreamSynchronize)(s));
        assert!(read_back(&cu, d, LEN).iter().all(|&x| x == 0x22));

        ok((cu.cuMemsetD8Async)(d, 0x33, LEN, s));
        ok((cu.cuMemcpyDtoHAsync_v2)(b, d, LEN, s));
        ok((cu.cuStreamSynchronize)(s));
        let got = std::slice::from_raw_parts(b.cast::<u8>(), LEN);
        assert!(
            got.iter().all(|&x| x == 0x33),
            "filled in place by the sync"
        );
        ok((cu.cuMemFreeHost)(a));
        ok((cu.cuMemFreeHost)(b));
        assert_eq!((cu.cuMemFreeHost)(b), INVALID_VALUE, "double free");
    }
    println!("SCENARIO OK");
}

// ---- cuLink* pass-through ----

#[test]
fn a_single_ptx_image_passes_through_the_linker() {
    let daemon = Daemon::start("link");
    daemon.run_scenario("scenario_link");
    let loads = daemon.recorder.requests(Opcode::CuModuleLoad);
    assert_eq!(loads.len(), 2, "the direct load and the linked one");
}

#[test]
#[ignore = "a scenario, run in a child process by the test above"]
fn scenario_link() {
    let Some(cu) = Cu::load() else { return };
    let _ = setup(&cu);
    let text = PTX.trim_end_matches('\0').as_bytes().to_vec();
    // SAFETY: the driver API, used as documented, on live buffers.
    unsafe {
        let mut state = null_mut();
        ok((cu.cuLinkCreate_v2)(0, null_mut(), null_mut(), &mut state));
        let mut data = text.clone();
        ok(link_add_ptx(&cu, state, &mut data));
        assert_eq!(
            link_add_ptx(&cu, state, &mut data),
            801,
            "a second image is not linked"
        );
        let (mut image, mut size) = (null_mut(), 0usize);
        ok((cu.cuLinkComplete)(state, &mut image, &mut size));
        assert_eq!(size, text.len() + 1, "the PTX, NUL-terminated");
        let mut module = null_mut();
        ok((cu.cuModuleLoadData)(&mut module, image));
        let mut f = null_mut();
        ok((cu.cuModuleGetFunction)(&mut f, module, c"scale".as_ptr()));
        ok((cu.cuLinkDestroy)(state));
        assert_eq!((cu.cuLinkDestroy)(state), 400, "destroyed twice");
    }
    println!("SCENARIO OK");
}

// ---- forged handles ----

#[test]
fn forged_handles_and_null_outputs_are_errors_not_crashes() {
    let daemon = Daemon::start("forged");
    daemon.run_scenario("scenario_forged");
}

#[test]
#[ignore = "a scenario, run in a child process by the test above"]
fn scenario_forged() {
    let Some(cu) = Cu::load() else { return };
    let (ctx, f) = setup(&cu);
    let forged = [0xdead_beef_usize as P, 0x1000 as P, f, ctx];
    // SAFETY: the driver API; every forged value is only ever looked up.
    unsafe {
        for &h in &forged[..2] {
            assert_eq!((cu.cuStreamSynchronize)(h), 400, "stream {h:?}");
            assert_eq!((cu.cuEventSynchronize)(h), 400, "event {h:?}");
            assert_eq!((cu.cuCtxSetCurrent)(h), 201, "context {h:?}");
            assert_eq!((cu.cuModuleUnload)(h), 400, "module {h:?}");
        }
        // A handle of one kind is not accepted as another.
        assert_eq!((cu.cuStreamSynchronize)(f), 400);
        assert_eq!((cu.cuModuleUnload)(ctx), 400);
        let launch =
            (cu.cuLaunchKernel)(ctx, 1, 1, 1, 1, 1, 1, 0, null_mut(), null_mut(), null_mut());
        assert_eq!(launch, 400, "a context is not a function");
        assert_eq!((cu.cuMemAlloc_v2)(null_mut(), 16), INVALID_VALUE);
        assert_eq!((cu.cuCtxGetCurrent)(null_mut()), INVALID_VALUE);
        assert_eq!((cu.cuMemFreeHost)(0x1234 as P), INVALID_VALUE);
        // Lengths no buffer can have, and NULL host sides: errors, as the
        // driver returns, not a crash of the program.
        let d = alloc(&cu, 64);
        let mut host = [0u8; 64];
        assert_eq!(
            (cu.cuMemcpyHtoD_v2)(d, host.as_ptr().cast(), usize::MAX),
            INVALID_VALUE
        );
        assert_eq!(
            (cu.cuMemcpyDtoH_v2)(host.as_mut_ptr().cast(), d, usize::MAX),
            INVALID_VALUE
        );
        assert_eq!(
            (cu.cuMemcpyHtoDAsync_v2)(d, host.as_ptr().cast(), usize::MAX / 2, null_mut()),
            INVALID_VALUE
        );
        let h = host.as_mut_ptr() as u64;
        assert_eq!((cu.cuMemcpy)(h, 0, 16), INVALID_VALUE);
        assert_eq!((cu.cuMemcpy)(0, h, 16), INVALID_VALUE);
        assert_eq!((cu.cuMemcpy)(h, h + 8, usize::MAX), INVALID_VALUE);
        // After all that, the session still works.
        let d = alloc(&cu, 64);
        ok((cu.cuMemsetD32_v2)(d, 7, 16));
        assert_eq!(read_back(&cu, d, 4), 7u32.to_le_bytes());
    }
    println!("SCENARIO OK");
}
