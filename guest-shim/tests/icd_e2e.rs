//! A real OpenCL program, unmodified, through ocl-icd, the shim, the
//! daemon and POCL: clinfo sees the platform and `tests/c/vadd.c` (buffers,
//! kernels, events, callbacks, map/unmap, sub-buffers, binaries, sticky
//! errors) passes.
#![allow(clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

mod common;

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_daemon(socket: &Path) -> Daemon {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let ok = Command::new(cargo)
        .args(["build", "-p", "vhost-device-compute"])
        .status()
        .expect("cargo runs")
        .success();
    assert!(ok, "building the daemon failed");
    let bin = common::target_dir().join("debug/vhost-device-compute");
    let child = Command::new(bin)
        .arg("--socket")
        .arg(socket)
        .args(["--executor", "opencl"])
        .spawn()
        .expect("daemon starts");
    let d = Daemon(child);
    let start = Instant::now();
    while !socket.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "daemon did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    d
}

#[test]
fn opencl_programs_run_through_the_shim() {
    for (prog, arg) in [("clinfo", "--version"), ("cc", "--version")] {
        if !common::installed(prog, arg) {
            println!("SKIPPED: {prog} not installed");
            return;
        }
    }
    let dir = std::env::temp_dir().join(format!("vcompute-icd-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let exe = dir.join("vadd");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/vadd.c");
    let built = Command::new("cc")
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .arg("-lOpenCL")
        .status()
        .expect("cc runs");
    if !built.success() {
        println!("SKIPPED: cannot build an OpenCL program (OpenCL headers or loader missing)");
        return;
    }
    let lib = common::build_shim();
    let socket = dir.join("daemon.sock");
    let _daemon = start_daemon(&socket);
    let endpoint = format!("vhost-user:{}", socket.display());
    let run = |cmd: &mut Command| {
        let out = cmd
            .env("OCL_ICD_VENDORS", &lib)
            .env("VCOMPUTE_ENDPOINT", &endpoint)
            .output()
            .expect("program runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status, text, err)
    };
    let (st, out, err) = run(Command::new("timeout").args(["60", "clinfo", "-l"]));
    assert!(st.success(), "clinfo failed: {st:?}\n{out}\n{err}");
    assert!(out.contains("Platform #0"), "no platform:\n{out}\n{err}");
    let (st, out, err) = run(Command::new("timeout").arg("120").arg(&exe).arg("4096"));
    assert!(st.success(), "vadd failed: {st:?}\n{out}\n{err}");
    assert!(out.contains("ALL OK"), "{out}\n{err}");
    // An argument of a new shape is checked at once, so a bad index is
    // the call's own error, as natively, and nothing is left for clFinish.
    assert!(
        out.contains("at clSetKernelArg -49, at clFinish 0"),
        "{out}"
    );
    // Large enough that the blocking read is split into pipelined pieces,
    // the last one short (4 MB is not a multiple of the 1 MiB chunk); the
    // program checks every element. (The kernel's local size is 64.)
    let (st, out, err) = run(Command::new("timeout").arg("120").arg(&exe).arg("1000000"));
    assert!(st.success(), "large vadd failed: {st:?}\n{out}\n{err}");
    assert!(out.contains("ALL OK"), "{out}\n{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
