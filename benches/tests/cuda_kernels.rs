//! The CUDA C kernels compiled with NVRTC, on this machine (NVRTC needs no
//! GPU): every source compiles for the architectures of the GPUs the
//! harness targets, and the PTX declares each kernel with exactly the
//! parameters the host code packs (names, count, sizes), and the globals
//! the host sets with their sizes. What this cannot check is that the
//! kernels compute the right thing: that needs a GPU (the harness checks
//! every result against a CPU reference there).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use vcompute_bench::api::cuda::kernels::{ptx_entries, ALL};
use vcompute_bench::api::cuda::{nvrtc, probe};

/// Loads NVRTC by path so that cudarc's own lookup (by name) finds it
/// loaded already; returns false (after saying why) when it is absent.
fn load_nvrtc() -> bool {
    let Some(path) = common::nvrtc_library() else {
        return false;
    };
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: loading NVRTC runs no initialiser with preconditions; the
    // handle is kept for the life of the process on purpose.
    let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    assert!(!h.is_null(), "dlopen {} failed", path.display());
    assert!(
        probe::nvrtc_present(),
        "cudarc does not find the loaded NVRTC"
    );
    true
}

#[test]
fn every_kernel_compiles_with_the_signature_the_host_packs() {
    if !load_nvrtc() {
        return;
    }
    let (major, minor) = nvrtc::version().unwrap();
    let supported = nvrtc::supported_archs().unwrap();
    eprintln!("NVRTC {major}.{minor}, architectures {supported:?}");
    // Hopper (H100, H200), and Ampere for good measure.
    for device in [90, 80] {
        let arch = nvrtc::arch_name(nvrtc::choose_arch(&supported, device).unwrap());
        for src in ALL {
            let ptx = nvrtc::compile(src, &arch)
                .unwrap_or_else(|e| panic!("{} for {arch}: {e}", src.name));
            assert_eq!(
                ptx.last(),
                Some(&0),
                "PTX for cuModuleLoadData ends in a NUL"
            );
            let text = std::str::from_utf8(&ptx[..ptx.len() - 1]).unwrap();
            assert!(
                text.contains(&format!(".target sm_{}", &arch[8..])),
                "{text}"
            );
            let entries = ptx_entries(text);
            assert_eq!(
                entries.len(),
                src.kernels.len(),
                "{}: PTX entries {entries:?}",
                src.name
            );
            for k in src.kernels {
                let (_, sizes) = entries
                    .iter()
                    .find(|(n, _)| n == k.name)
                    .unwrap_or_else(|| panic!("{}: no .entry {} in {entries:?}", src.name, k.name));
                let packed: Vec<usize> = k.params.iter().map(|p| p.size()).collect();
                assert_eq!(sizes, &packed, "{}: parameters of {}", src.name, k.name);
            }
            for (name, size) in src.globals {
                let decl = format!(".b8 {name}[{size}];");
                assert!(
                    text.lines()
                        .any(|l| l.contains(".const") && l.contains(&decl)),
                    "{}: no constant {decl} in the PTX",
                    src.name
                );
            }
        }
    }
}

#[test]
fn a_compile_error_is_reported_with_nvrtc_log() {
    if !load_nvrtc() {
        return;
    }
    static BROKEN: vcompute_bench::api::cuda::kernels::Source =
        vcompute_bench::api::cuda::kernels::Source {
            name: "broken",
            text: "extern \"C\" __global__ void k(float *d) { d[0] = undefined_name; }\n",
            defines: &[],
            kernels: &[],
            globals: &[],
        };
    let e = nvrtc::compile(&BROKEN, "compute_80")
        .unwrap_err()
        .to_string();
    assert!(e.contains("broken") && e.contains("undefined_name"), "{e}");
}
