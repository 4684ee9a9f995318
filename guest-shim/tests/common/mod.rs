//! Helpers shared by the integration tests (each test uses a subset).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// Builds the cdylib and returns its path.
pub fn build_shim() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "-p", "vcompute-shim"])
        .status()
        .expect("cargo build runs");
    assert!(status.success(), "cargo build -p vcompute-shim failed");
    let lib = target_dir().join("debug/libvcompute_shim.so");
    assert!(lib.exists(), "{} was not built", lib.display());
    lib
}

/// Builds the cdylib and returns a directory holding `libcuda.so.1` and
/// `libcuda.so` links to it (what `scripts/libcuda.sh` makes), for
/// `LD_LIBRARY_PATH` or `dlopen`.
pub fn cuda_lib_dir() -> PathBuf {
    let lib = build_shim();
    let dir = target_dir().join("debug/cuda");
    std::fs::create_dir_all(&dir).expect("create the libcuda directory");
    for name in ["libcuda.so.1", "libcuda.so"] {
        // Atomic replacement: tests in other processes may do the same.
        let tmp = dir.join(format!(".{name}.{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&lib, &tmp).expect("link libcuda");
        std::fs::rename(&tmp, dir.join(name)).expect("install the libcuda link");
    }
    dir
}

/// The workspace's target directory.
pub fn target_dir() -> PathBuf {
    std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// Whether `prog` can be started.
pub fn installed(prog: &str, arg: &str) -> bool {
    Command::new(prog)
        .arg(arg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok()
}
