//! The built shim exports exactly the OpenCL and CUDA driver API entry
//! points: every `cl*` and `cu*` function it implements and nothing of the
//! Rust runtime.
#![allow(clippy::expect_used)]

use std::process::Command;

mod common;
use common::build_shim;

fn exported(lib: &std::path::Path) -> Option<Vec<String>> {
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(lib)
        .output()
        .ok()?;
    assert!(out.status.success(), "nm failed on {}", lib.display());
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().nth(2))
            .map(|s| s.split('@').next().unwrap_or(s).to_string())
            .collect(),
    )
}

#[test]
fn only_api_symbols_are_exported() {
    let lib = build_shim();
    let Some(syms) = exported(&lib) else {
        println!("SKIPPED: nm not installed");
        return;
    };
    let foreign: Vec<_> = syms
        .iter()
        .filter(|s| !s.starts_with("cl") && !s.starts_with("cu"))
        .collect();
    assert!(foreign.is_empty(), "exports outside the APIs: {foreign:?}");
    for required in [
        "clIcdGetPlatformIDsKHR",
        "clGetPlatformInfo",
        "clGetExtensionFunctionAddress",
        "clGetExtensionFunctionAddressForPlatform",
        "clGetPlatformIDs",
        "clCreateBuffer",
        "clSetKernelArg",
        "clEnqueueNDRangeKernel",
        "cuInit",
        "cuGetProcAddress_v2",
        "cuMemAlloc_v2",
        "cuMemcpyHtoDAsync_v2",
        "cuMemcpyHtoDAsync_v2_ptsz",
        "cuLaunchKernel",
        "cuLaunchKernel_ptsz",
    ] {
        assert!(
            syms.iter().any(|s| s == required),
            "{required} is not exported"
        );
    }
}

#[test]
fn library_binds_its_own_symbols() {
    let lib = build_shim();
    let Ok(out) = Command::new("readelf").arg("-d").arg(&lib).output() else {
        println!("SKIPPED: readelf not installed");
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("SYMBOLIC"),
        "the shim must be linked with -Bsymbolic:\n{text}"
    );
    assert!(
        !text.contains("libOpenCL"),
        "the shim must not depend on an OpenCL loader:\n{text}"
    );
}
