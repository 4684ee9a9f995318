//! The shim's environment settings, as a program meets them: a bad value
//! gives one clear line on stderr (the variable, the value, what is
//! accepted, the default used) and the shim goes on with the default; a
//! call failing in a loop gives one line, not one per call.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;
#[path = "cuda/mod.rs"]
mod cuda;

use std::ptr::null_mut;

use cuda::{link_add_ptx, ok, Cu, Daemon};

/// Failing calls the scenario makes in a loop.
const FAILING_CALLS: usize = 2000;

#[test]
fn bad_settings_are_said_once_and_the_defaults_used() {
    let daemon = Daemon::start("settings");
    let mut cmd = daemon.scenario("scenario_bad_settings");
    // An arena of 1 MiB cannot be laid out: the program works only if the
    // default is used instead.
    cmd.env("VCOMPUTE_ARENA_MB", "1")
        .env("VCOMPUTE_POLL_US", "fast")
        .env("VCOMPUTE_TIMEOUT_MS", "60000");
    let out = Daemon::run("scenario_bad_settings", cmd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("vcompute:"))
        .collect();
    let (settings, calls): (Vec<&str>, Vec<&str>) =
        lines.iter().partition(|l| l.contains("VCOMPUTE_"));
    assert_eq!(
        settings,
        [
            "vcompute: VCOMPUTE_ARENA_MB=\"1\" is out of range: expected 32 to 2048 MiB; \
             using the default 256",
            "vcompute: VCOMPUTE_POLL_US=\"fast\" is not a whole number: expected 0 to 10000 \
             microseconds; using the default 100",
        ],
        "one line per bad setting, none for a good one:\n{stderr}"
    );
    // The limiter lets one line a second through.
    assert!(
        !calls.is_empty() && calls.len() < 10,
        "{FAILING_CALLS} failing calls gave {} lines:\n{stderr}",
        calls.len()
    );
    assert!(
        calls.iter().all(|l| l.contains("linking several images")),
        "{stderr}"
    );
}

#[test]
#[ignore = "a scenario, run in a child process by the test above"]
fn scenario_bad_settings() {
    let Some(cu) = Cu::load() else { return };
    // SAFETY: the driver API, used as documented, on live buffers.
    unsafe {
        ok((cu.cuInit)(0));
        let mut n = 0;
        ok((cu.cuDeviceGetCount)(&mut n));
        assert!(n > 0, "the daemon's devices are listed");
        let mut ctx = null_mut();
        ok((cu.cuCtxCreate_v2)(&mut ctx, 0, 0));
        let mut state = null_mut();
        ok((cu.cuLinkCreate_v2)(0, null_mut(), null_mut(), &mut state));
        let mut data = cuda::PTX.as_bytes().to_vec();
        ok(link_add_ptx(&cu, state, &mut data));
        // A second image is refused with a log line: a program retrying it
        // in a loop must not flood stderr.
        for _ in 0..FAILING_CALLS {
            assert_eq!(
                link_add_ptx(&cu, state, &mut data),
                801,
                "CUDA_ERROR_NOT_SUPPORTED"
            );
        }
        ok((cu.cuLinkDestroy)(state));
        ok((cu.cuCtxDestroy_v2)(ctx));
    }
    println!("SCENARIO OK");
}
