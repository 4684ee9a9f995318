//! Helpers shared by the integration tests.

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
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let lib = target.join("debug/libvcompute_shim.so");
    assert!(lib.exists(), "{} was not built", lib.display());
    lib
}
