//! An unmodified C program of the CUDA driver API, compiled with `cc` and
//! linked against the built `libcuda.so.1` (found through
//! `LD_LIBRARY_PATH` at run time), against the daemon's server over the
//! recording test double: it runs to PASS, and the double recorded its
//! launch with the parameter bytes the program passed.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;
#[path = "cuda/mod.rs"]
mod cuda;

use std::path::Path;
use std::process::Command;

use cuda::Daemon;
use protocol::{Opcode, Request};

#[test]
fn a_c_program_runs_through_the_shim() {
    if !common::installed("cc", "--version") {
        println!("SKIPPED: cc not installed");
        return;
    }
    let lib_dir = common::cuda_lib_dir();
    let dir = std::env::temp_dir().join(format!("vcompute-cuda-c-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("cuda_vadd");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c");
    let built = Command::new("cc")
        .arg("-o")
        .arg(&exe)
        .arg(src.join("cuda_vadd.c"))
        .arg("-I")
        .arg(&src)
        .arg("-L")
        .arg(&lib_dir)
        // The shim has no SONAME (it is also the OpenCL ICD), so name the
        // file: the program then needs libcuda.so.1, as one linked against
        // the NVIDIA driver does.
        .arg("-l:libcuda.so.1")
        .status()
        .expect("cc runs");
    assert!(built.success(), "building the C program failed");

    let daemon = Daemon::start("c");
    let out = Command::new(&exe)
        .env("LD_LIBRARY_PATH", &lib_dir)
        .env("VCOMPUTE_ENDPOINT", daemon.endpoint())
        .env("VCOMPUTE_HOST_MB", "16")
        .output()
        .expect("the program runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("PASS"),
        "program failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("recording test double"), "{stdout}");

    let hex = stdout
        .split("ptr=")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .expect("the program printed its pointer");
    let ptr = u64::from_str_radix(hex, 16).unwrap();
    let launches = daemon.recorder.requests(Opcode::CuLaunchKernel);
    let [Request::CuLaunchKernel(l)] = &launches[..] else {
        panic!("one launch expected: {launches:?}");
    };
    let mut want = ptr.to_le_bytes().to_vec();
    want.extend(3.0f32.to_le_bytes());
    want.extend(65536u32.to_le_bytes());
    assert_eq!(l.params, want);
    assert_eq!((l.grid, l.block), ([256, 1, 1], [256, 1, 1]));
    let _ = std::fs::remove_dir_all(&dir);
}
