//! The guest-side cost of CUDA runtime calls through the shim, against the
//! daemon's recording test double (no GPU): calls the shim answers itself
//! (`cudaGetLastError`, `cudaStreamIsCapturing`, the runtime's
//! context-local storage lookup) and a deferred launch
//! (`cudaLaunchKernel` on a stream, posted and sent in batches).
//!
//! ```sh
//! scripts/deps.sh          # the CUDA runtime wheel, into target/cudart
//! cargo bench -p vcompute-bench --bench runtime_calls
//! ```
//!
//! It builds the release shim, compiles `runtime_calls.c` against NVIDIA's
//! `libcudart.so.12`, and runs it with the shim as `libcuda.so.1`; the
//! program times each call (best of five runs). There is no native side:
//! without a GPU there is no driver to compare with.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use host_backend::testing::RecordingServer;
use protocol::fatbin::build::{fatbin, Spec};

/// Targets (ns per call) from the design: local answers and deferred
/// launches on the guest side.
const TARGETS: &[(&str, f64)] = &[
    ("cudaGetLastError", 100.0),
    ("cudaStreamIsCapturing", 100.0),
    ("context-local storage get", 100.0),
    ("cudaLaunchKernel (deferred)", 500.0),
];

fn target_dir() -> PathBuf {
    std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

fn main() {
    let target = target_dir();
    let rt = target.join("cudart/nvidia/cuda_runtime");
    if !rt.join("lib/libcudart.so.12").exists() {
        println!("SKIPPED: {} missing (run scripts/deps.sh)", rt.display());
        return;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(cargo)
        .args(["build", "--release", "-p", "vcompute-shim"])
        .status()
        .expect("cargo runs");
    assert!(built.success(), "building the shim failed");
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("libcuda.so.1");
    std::os::unix::fs::symlink(target.join("release/libvcompute_shim.so"), &lib).unwrap();

    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/runtime_calls.c");
    let crt = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-shim/tests/c");
    let exe = dir.path().join("runtime_calls");
    let cc = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&exe)
        .arg(&src)
        .arg("-I")
        .arg(&crt)
        .arg("-I")
        .arg(rt.join("include"))
        .arg("-L")
        .arg(rt.join("lib"))
        .args(["-l:libcudart.so.12", "-ldl"])
        .status()
        .expect("cc runs");
    assert!(cc.success(), "building the benchmark program failed");

    let ptx = ".version 7.0\n.target sm_50\n.address_size 64\n.visible .entry empty() { ret; }\n";
    let image = dir.path().join("empty.fatbin");
    std::fs::write(&image, fatbin(&[Spec::plain(1, ptx.as_bytes())])).unwrap();

    let server = RecordingServer::start(dir.path().join("compute.sock")).expect("server");
    let out = Command::new(&exe)
        .env(
            "LD_LIBRARY_PATH",
            format!("{}:{}", dir.path().display(), rt.join("lib").display()),
        )
        .env("VCOMPUTE_ENDPOINT", server.endpoint())
        .env("VCOMPUTE_BENCH_FATBIN", &image)
        .output()
        .expect("the program runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the benchmark failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("| call (guest side, through the shim) | ns per call | target | |");
    println!("|---|---:|---:|---|");
    for line in stdout.lines() {
        let Some((name, rest)) = line.rsplit_once(' ').and_then(|(l, _)| l.rsplit_once(' ')) else {
            continue;
        };
        let ns: f64 = rest.parse().unwrap_or(f64::NAN);
        let target = TARGETS
            .iter()
            .find(|t| t.0 == name)
            .map_or(f64::NAN, |t| t.1);
        let verdict = if ns <= target { "met" } else { "missed" };
        println!("| `{name}` | {ns:.0} | ≤ {target:.0} | {verdict} |");
    }
}
