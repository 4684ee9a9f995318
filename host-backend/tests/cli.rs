//! The daemon binary: argument errors, executor errors and signals.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_vhost-device-compute");

#[test]
fn socket_is_required() {
    let out = Command::new(BIN).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--socket"), "{err}");
}

/// The NVIDIA driver's presence, as the daemon would see it; `Some(why)`
/// when there is none.
fn no_cuda() -> Option<String> {
    vhost_device_compute::executor::cuda::CudaFactory::new()
        .err()
        .map(|e| e.to_string())
}

#[test]
fn cuda_executor_without_a_driver_is_a_clear_startup_error() {
    if no_cuda().is_none() {
        eprintln!("SKIPPED: an NVIDIA driver and GPU are present, so --executor cuda starts");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("c.sock");
    let out = Command::new(BIN)
        .arg("--socket")
        .arg(&sock)
        .args(["--executor", "cuda"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no NVIDIA driver"), "{err}");
    assert!(err.contains("--executor opencl"), "{err}");
    assert!(!sock.exists(), "no socket should be left behind");
}

#[test]
fn auto_uses_opencl_when_there_is_no_cuda_driver() {
    let Some(why) = no_cuda() else {
        eprintln!("SKIPPED: an NVIDIA driver and GPU are present, so --executor auto picks CUDA");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("c.sock");
    let mut child = Command::new(BIN)
        .arg("--socket")
        .arg(&sock)
        .args(["--executor", "auto"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sock.exists() {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            eprintln!(
                "SKIPPED: no OpenCL platform either: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return;
        }
        assert!(Instant::now() < deadline, "socket never appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: plain kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("CUDA not available; serving OpenCL only"),
        "{err}"
    );
    assert!(
        err.contains("listening") && err.contains("\"opencl\""),
        "{err}"
    );
    assert!(why.contains("NVIDIA"), "{why}");
}

#[test]
fn bad_limits_are_rejected() {
    let out = Command::new(BIN)
        .args(["--socket", "/tmp/x.sock", "--max-sessions", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--max-sessions must be at least 1"), "{err}");
}

#[test]
fn sigterm_stops_cleanly_and_removes_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("c.sock");
    let mut child = Command::new(BIN)
        .arg("--socket")
        .arg(&sock)
        .args(["--executor", "opencl"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sock.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            eprintln!(
                "SKIPPED: the daemon cannot start an OpenCL executor here ({status}): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return;
        }
        assert!(Instant::now() < deadline, "socket never appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: plain kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(!sock.exists(), "socket file left behind");
}
