//! What the CUDA integration tests share: the built binaries and where
//! NVRTC is.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

/// The harness binary under test.
pub fn harness() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vcompute-bench"))
}

/// A binary built beside the harness (the daemon, the shim).
pub fn sibling(name: &str) -> PathBuf {
    let p = harness().parent().unwrap().join(name);
    assert!(
        p.exists(),
        "{} not found; build the workspace first (cargo build --workspace)",
        p.display()
    );
    p
}

/// NVRTC's library: `VCOMPUTE_NVRTC`, or the wheel `scripts/deps.sh`
/// unpacks into `target/nvrtc`; `None` (after printing why) when neither
/// is there.
pub fn nvrtc_library() -> Option<PathBuf> {
    let path = std::env::var_os("VCOMPUTE_NVRTC")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../target/nvrtc/nvidia/cuda_nvrtc/lib/libnvrtc.so.12")
        });
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "SKIPPED: NVRTC not found at {} (scripts/deps.sh fetches it; or set VCOMPUTE_NVRTC)",
            path.display()
        );
        None
    }
}

/// Whether NVIDIA's driver is on this machine (then the no-driver
/// refusals cannot be seen here).
pub fn nvidia_driver_present() -> bool {
    // SAFETY: tries to dlopen the candidate names only.
    unsafe { cudarc::driver::sys::is_culib_present() }
}
