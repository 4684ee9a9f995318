//! Programs of the CUDA runtime API (`libcudart`) through the shim, against
//! the daemon's server over the recording test double: NVIDIA's own
//! runtime (the `nvidia-cuda-runtime-cu12` wheel that `scripts/deps.sh`
//! unpacks into `target/cudart`), shared and static, under a C program
//! that registers an NVRTC-compiled, nvFatbin-packed fat binary the way
//! nvcc's host code does; and CuPy (`cupy-cuda12x`), which links the
//! runtime statically, under the Python interpreter the wheels are for.
//!
//! Without the wheels (no network when `scripts/deps.sh` ran) each test
//! prints SKIPPED with the reason; under CI (`CI=true`) a missing wheel is
//! a failure, so that the test cannot pass there without running.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;
#[path = "cuda/mod.rs"]
mod cuda;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cuda::Daemon;
use protocol::cuda::LaunchKernel;
use protocol::{Opcode, Request, Response};

/// Where `scripts/deps.sh` unpacked the wheels.
struct Wheels {
    cudart: PathBuf,
    nvrtc: PathBuf,
    site: PathBuf,
}

/// The wheels, or `None` after printing why the test is skipped.
fn wheels(need_site: bool) -> Option<Wheels> {
    let target = common::target_dir();
    let w = Wheels {
        cudart: target.join("cudart/nvidia"),
        nvrtc: target.join("nvrtc/nvidia/cuda_nvrtc"),
        site: target.join("cudart/site"),
    };
    let needed = [
        w.cudart.join("cuda_runtime/lib/libcudart.so.12"),
        w.cudart.join("nvfatbin/lib/libnvfatbin.so.12"),
        w.nvrtc.join("lib/libnvrtc.so.12"),
    ];
    let mut missing: Vec<PathBuf> = needed.into_iter().filter(|p| !p.exists()).collect();
    if need_site && !w.site.join("cupy").exists() {
        missing.push(w.site.join("cupy"));
    }
    if missing.is_empty() {
        return Some(w);
    }
    let why = format!(
        "{} missing (scripts/deps.sh fetches them from PyPI; was the network down?)",
        missing[0].display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("the CUDA runtime test must run in CI: {why}");
    }
    println!("SKIPPED: {why}");
    None
}

/// Builds the C program against the runtime, shared or static.
fn build(w: &Wheels, static_runtime: bool) -> PathBuf {
    let dir = common::target_dir().join(format!("cudart-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join(if static_runtime { "static" } else { "shared" });
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/cudart_program.c");
    let rt = w.cudart.join("cuda_runtime");
    let mut cc = Command::new("cc");
    cc.arg("-O1")
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        // crt/host_defines.h, which the toolkit ships with nvcc.
        .arg("-I")
        .arg(src.parent().unwrap())
        .arg("-I")
        .arg(rt.join("include"))
        .arg("-I")
        .arg(w.nvrtc.join("include"))
        .arg("-I")
        .arg(w.cudart.join("nvfatbin/include"))
        .arg("-L")
        .arg(rt.join("lib"))
        .arg("-L")
        .arg(w.nvrtc.join("lib"))
        .arg("-L")
        .arg(w.cudart.join("nvfatbin/lib"));
    if static_runtime {
        cc.arg(rt.join("lib/libcudart_static.a"))
            .args(["-lpthread", "-ldl", "-lrt"]);
    } else {
        cc.arg("-l:libcudart.so.12");
    }
    cc.args(["-l:libnvrtc.so.12", "-l:libnvfatbin.so.12", "-lstdc++"]);
    let out = cc.output().expect("cc runs");
    assert!(
        out.status.success(),
        "building the runtime program failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// `LD_LIBRARY_PATH` for a runtime program: the shim's `libcuda.so.1`
/// first, then the wheels' libraries.
fn library_path(w: &Wheels) -> String {
    [
        common::cuda_lib_dir(),
        w.cudart.join("cuda_runtime/lib"),
        w.cudart.join("nvfatbin/lib"),
        w.nvrtc.join("lib"),
    ]
    .iter()
    .map(|p| p.display().to_string())
    .collect::<Vec<_>>()
    .join(":")
}

fn run(cmd: &mut Command, daemon: &Daemon, w: &Wheels) -> String {
    let out: Output = cmd
        .env("LD_LIBRARY_PATH", library_path(w))
        .env("VCOMPUTE_ENDPOINT", daemon.endpoint())
        .env("VCOMPUTE_HOST_MB", "64")
        .env("VCOMPUTE_ARENA_MB", "64")
        .output()
        .expect("the program runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("PASS"),
        "program failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    stdout
}

/// A `key=value` the program printed.
fn printed<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("{key} not printed:\n{out}"))
}

/// Every launch the double recorded, with its kernel's name.
fn launches(d: &Daemon) -> Vec<(String, LaunchKernel)> {
    let calls = d.recorder.calls();
    let name = |f| {
        calls.iter().find_map(|c| match (&c.request, &c.outcome) {
            (Request::CuModuleGetFunction(g), Ok(Response::CuModuleGetFunction(_)))
                if g.id == f =>
            {
                Some(g.name.clone())
            }
            _ => None,
        })
    };
    calls
        .iter()
        .filter_map(|c| match &c.request {
            Request::CuLaunchKernel(l) => Some((name(l.function).unwrap_or_default(), l.clone())),
            _ => None,
        })
        .collect()
}

/// Runs the C program and checks what the double recorded.
fn runtime_program(static_runtime: bool) {
    let Some(w) = wheels(false) else { return };
    if !common::installed("cc", "--version") {
        println!("SKIPPED: cc not installed");
        return;
    }
    let exe = build(&w, static_runtime);
    let daemon = Daemon::start(if static_runtime {
        "rt-static"
    } else {
        "rt-shared"
    });
    let out = run(&mut Command::new(&exe), &daemon, &w);
    assert_eq!(printed(&out, "devices"), "1");
    assert!(printed(&out, "device").contains("recording test double"));
    let dev = u64::from_str_radix(printed(&out, "dev"), 16).unwrap();

    let launches = launches(&daemon);
    let [(scale, l1), (fill, l2), ..] = &launches[..] else {
        panic!("two launches expected: {launches:?}");
    };
    assert_eq!(scale, "scale");
    assert_eq!((l1.grid, l1.block), ([256, 1, 1], [256, 1, 1]));
    let mut want = dev.to_le_bytes().to_vec();
    want.extend(3.0f32.to_le_bytes());
    want.extend(65536u32.to_le_bytes());
    assert_eq!(l1.params, want, "scale(dev, 3.0, n)");
    assert_eq!(fill, "fill");
    assert_eq!((l2.grid, l2.block), ([512, 1, 1], [128, 1, 1]));
    let mut want = dev.to_le_bytes().to_vec();
    want.extend(0xc0ffeeu32.to_le_bytes());
    want.extend([0; 4]);
    want.extend(65536u64.to_le_bytes());
    assert_eq!(l2.params, want, "fill(dev, v, n), n at offset 16");

    // The fat binary was sent once, as NVIDIA's packer made it (with its
    // compressed entries), when the first kernel was needed.
    let loads = daemon.recorder.requests(Opcode::CuModuleLoad);
    assert_eq!(loads.len(), 1, "{loads:?}");

    // cudaMallocAsync went to the pool, in stream order.
    let pool = u64::from_str_radix(printed(&out, "pool"), 16).unwrap();
    let calls = daemon.recorder.calls();
    let alloc = calls
        .iter()
        .find_map(|c| match (&c.request, &c.outcome) {
            (Request::CuMemAllocAsync(a), Ok(Response::CuMemAllocAsync(p))) => Some((a, p.ptr)),
            _ => None,
        })
        .expect("a stream-ordered allocation");
    assert_eq!((alloc.0.size, alloc.1), (4096, pool));
    assert!(calls.iter().any(
        |c| matches!(&c.request, Request::CuMemFreeAsync(f) if f.ptr == pool) && c.outcome.is_ok()
    ));

    // The capture: begin, the memset and fill(pool, 0xbeef, 1024) on the
    // capturing stream, end, instantiate, launch; all succeeded.
    let at = |want: Opcode| {
        calls
            .iter()
            .position(|c| c.request.opcode() == want && c.outcome.is_ok())
            .unwrap_or_else(|| panic!("{want:?} not recorded"))
    };
    let (begin, end) = (
        at(Opcode::CuStreamBeginCapture),
        at(Opcode::CuStreamEndCapture),
    );
    assert!(begin < end && end < at(Opcode::CuGraphInstantiate));
    assert!(at(Opcode::CuGraphInstantiate) < at(Opcode::CuGraphLaunch));
    let captured: Vec<&LaunchKernel> = calls[begin..end]
        .iter()
        .filter_map(|c| match &c.request {
            Request::CuLaunchKernel(l) => Some(l),
            _ => None,
        })
        .collect();
    let [l3] = captured[..] else {
        panic!("one captured launch: {captured:?}")
    };
    let mut want = pool.to_le_bytes().to_vec();
    want.extend(0xbeefu32.to_le_bytes());
    want.extend([0; 4]);
    want.extend(1024u64.to_le_bytes());
    assert_eq!(l3.params, want, "fill(pool, 0xbeef, 1024), captured");
    assert_eq!((l3.grid, l3.block), ([8, 1, 1], [128, 1, 1]));
    assert!(calls[begin..end]
        .iter()
        .any(|c| matches!(&c.request, Request::CuMemset(m) if m.dst == pool && m.value == 0x22)));
    assert_eq!(printed(&out, "launches"), "4");
    // cudaLaunchKernelExC: fill(dev, v, n) on a 4x2 grid of 64.
    let last = &launches.last().unwrap().1;
    assert_eq!((last.grid, last.block), ([4, 2, 1], [64, 1, 1]));
    assert_eq!(&last.params[..8], &dev.to_le_bytes());
    // The pitched allocation was pitch * 37 bytes.
    let pitch: u64 = printed(&out, "pitch").parse().unwrap();
    assert!(calls.iter().any(|c| matches!(&c.request,
        Request::CuMemAlloc(a) if a.size == pitch * 37)));
    assert!(calls.iter().any(|c| matches!(&c.request,
        Request::CuCtxLimit(l) if l.limit == 2 && l.value == Some(32 << 20))));
    let _ = std::fs::remove_file(&exe);
}

#[test]
fn a_runtime_program_runs_over_the_shared_runtime() {
    runtime_program(false);
}

#[test]
fn a_runtime_program_runs_over_the_static_runtime() {
    runtime_program(true);
}

#[test]
fn cupy_initializes_and_round_trips_arrays() {
    let Some(w) = wheels(true) else { return };
    let version = Command::new("python3").arg("--version").output();
    let version = version.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    if !version
        .as_deref()
        .is_ok_and(|v| v.starts_with("Python 3.11"))
    {
        // The pinned wheels are CPython 3.11's.
        let why = format!("CuPy needs CPython 3.11, found {version:?}");
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("the CuPy test must run in CI: {why}");
        }
        println!("SKIPPED: {why}");
        return;
    }
    let daemon = Daemon::start("cupy");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/cupy_check.py");
    let mut cmd = Command::new("python3");
    cmd.arg(&script).env("PYTHONPATH", &w.site);
    let out = run(&mut cmd, &daemon, &w);
    assert_eq!(printed(&out, "devices"), "1");
    assert!(printed(&out, "name").contains("recording test double"));
    assert_eq!(printed(&out, "major"), "9");
    assert_eq!(printed(&out, "driver"), "12040");
    // Every byte went to the device and back through the shim.
    let moved: u64 = printed(&out, "bytes").parse().unwrap();
    let calls = daemon.recorder.calls();
    let sum = |op: Opcode| -> u64 {
        calls
            .iter()
            .filter(|c| c.outcome.is_ok())
            .map(|c| match &c.request {
                Request::CuMemcpyHtoD(m) if op == Opcode::CuMemcpyHtoD => m.size,
                Request::CuMemcpyDtoH(m) if op == Opcode::CuMemcpyDtoH => m.size,
                _ => 0,
            })
            .sum()
    };
    assert!(sum(Opcode::CuMemcpyHtoD) >= moved, "host to device");
    assert!(sum(Opcode::CuMemcpyDtoH) >= moved, "device to host");
}
