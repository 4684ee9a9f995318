//! The CUDA side of the harness without a GPU.
//!
//! - `--api cuda` is refused before anything starts, naming what is
//!   missing: NVIDIA's driver, NVRTC, or a native side that would load our
//!   shim.
//! - The CUDA worker, pointed at the shim's `libcuda.so.1`, runs the
//!   memory cases through the shim, real virtqueues and the daemon's
//!   server over the recording test double of the CUDA executor (which
//!   keeps device memory in host RAM), each result checked against its
//!   reference as on a GPU. The double runs no kernels, so a kernel case
//!   must come back as a failure, never as a time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use host_backend::testing::RecordingServer;
use protocol::Opcode;
use vcompute_bench::api::cuda::libdir::ShimLibDir;
use vcompute_bench::ipc::{FromWorker, Measurement, ToWorker, PREFIX};
use vcompute_bench::workload::{Case, Direction, HostMem};

/// Runs the harness with `env`; returns (exit code, stdout, stderr).
fn run_harness(env: &[(&str, &std::ffi::OsStr)], out: &Path) -> (i32, String, String) {
    let o = Command::new(common::harness())
        .args(["run", "--api", "cuda", "--quick", "--out"])
        .arg(out)
        .env_remove("LD_LIBRARY_PATH")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn without_a_driver_cuda_is_refused_up_front_naming_what_is_missing() {
    if common::nvidia_driver_present() {
        eprintln!("SKIPPED: this machine has NVIDIA's driver, so nothing is missing");
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = run_harness(&[], out.path());
    assert_eq!(code, 1, "{stderr}");
    assert!(stdout.is_empty(), "no report after a refusal: {stdout}");
    assert!(
        stderr
            .contains("FAILED: --api cuda cannot run on this machine; missing: the NVIDIA driver"),
        "{stderr}"
    );
    assert!(stderr.contains("libcuda.so.1"), "{stderr}");
    // Refused before anything started.
    assert!(!stderr.contains("started"), "{stderr}");
    assert!(!out.path().join("results.json").exists());
}

#[test]
fn the_shim_is_refused_as_the_native_driver() {
    if common::nvidia_driver_present() {
        eprintln!("SKIPPED: this machine has NVIDIA's driver; LD_LIBRARY_PATH is left alone");
        return;
    }
    let links = ShimLibDir::create(&common::sibling("libvcompute_shim.so")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) =
        run_harness(&[("LD_LIBRARY_PATH", links.path().as_os_str())], out.path());
    assert_eq!(code, 1, "{stderr}");
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("the libcuda.so.1 this process loads is virtio-compute's shim"),
        "{stderr}"
    );
}

/// A worker process and its pipes.
struct Worker {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Worker {
    fn start(side: &str, library_path: &std::ffi::OsStr, endpoint: &str) -> Worker {
        let mut child = Command::new(common::harness())
            .args(["worker", "--api", "cuda", "--side", side])
            .env("LD_LIBRARY_PATH", library_path)
            .env("VCOMPUTE_ENDPOINT", endpoint)
            .env("VCOMPUTE_HOST_MB", "64")
            .env("VCOMPUTE_ARENA_MB", "64")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Worker { child, lines }
    }

    fn recv(&mut self) -> FromWorker {
        loop {
            let line = self.lines.next().expect("the worker answers").unwrap();
            if let Some(msg) = line.strip_prefix(PREFIX) {
                return serde_json::from_str(msg).unwrap();
            }
        }
    }

    fn run(&mut self, case: Case, reps: usize) -> FromWorker {
        let req = ToWorker::Run {
            case,
            warmup: 1,
            reps,
        };
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{}", serde_json::to_string(&req).unwrap()).unwrap();
        stdin.flush().unwrap();
        self.recv()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn done(answer: FromWorker, what: &str, reps: usize) -> Measurement {
    match answer {
        FromWorker::Done { measurement } => {
            assert_eq!(measurement.samples_ns.len(), reps, "{what}");
            assert!(measurement.samples_ns.iter().all(|s| *s > 0.0), "{what}");
            measurement
        }
        other => panic!("{what}: {other:?}"),
    }
}

#[test]
fn the_cuda_worker_runs_through_the_shim_against_the_recording_double() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = RecordingServer::start(dir.path().join("compute.sock")).unwrap();
    let recorder = server.recorder();
    let endpoint = server.endpoint();
    let links = ShimLibDir::create(&common::sibling("libvcompute_shim.so")).unwrap();
    let nvrtc = common::nvrtc_library();
    let library_path = links.library_path(nvrtc.as_ref().map(|p| p.parent().unwrap().as_os_str()));

    // The native side must not accept the shim.
    let mut native = Worker::start("native", &library_path, &endpoint);
    match native.recv() {
        FromWorker::Failed { error } => assert!(
            error.contains("the native side loaded virtio-compute's shim"),
            "{error}"
        ),
        other => panic!("a native worker accepted the shim: {other:?}"),
    }

    let mut w = Worker::start("virtual", &library_path, &endpoint);
    match w.recv() {
        FromWorker::Ready { runtime } => {
            assert_eq!(runtime.api, "CUDA");
            assert_eq!(runtime.platform_name, "virtio-compute shim");
            assert_eq!(runtime.device_version, "compute capability 9.0");
            assert!(runtime.global_mem_bytes > 0);
        }
        other => panic!("{other:?}"),
    }
    let mut cases = vec![Case::NullSync];
    for bytes in [64 << 10, 3 << 20] {
        for mem in [HostMem::Pageable, HostMem::HostAlloc] {
            for dir in [Direction::H2D, Direction::D2H] {
                cases.push(Case::Bandwidth {
                    dir,
                    mem: Some(mem),
                    bytes,
                });
            }
        }
        cases.push(Case::Bandwidth {
            dir: Direction::D2D,
            mem: None,
            bytes,
        });
    }
    for dir in [Direction::H2D, Direction::D2H] {
        cases.push(Case::SmallCopy { dir, bytes: 64 });
    }
    for case in cases {
        let what = case.to_string();
        done(w.run(case, 3), &what, 3);
    }
    // The copies reached the daemon's executor as copies.
    assert!(!recorder.requests(Opcode::CuMemcpyHtoD).is_empty());
    assert!(!recorder.requests(Opcode::CuMemcpyDtoD).is_empty());

    // The double runs no kernel: a kernel case is a failure, never a time.
    match w.run(Case::VectorAdd { n: 1024 }, 2) {
        FromWorker::Failed { error } => {
            if nvrtc.is_some() {
                assert!(
                    error.starts_with("wrong result: vectorAdd c: element 0 is NaN"),
                    "{error}"
                );
            } else {
                assert!(error.contains("NVRTC"), "{error}");
            }
        }
        other => panic!("a kernel that never ran was timed: {other:?}"),
    }
    drop(w);
    drop(native);
    server.stop().unwrap();
}
