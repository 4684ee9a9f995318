//! What the CUDA workloads need from the machine, checked before anything
//! starts: NVIDIA's driver (`libcuda.so.1`, as cudarc finds it) and NVRTC
//! (the kernels are compiled at run time). Also tells NVIDIA's driver from
//! our shim, so that neither side of a run silently measures the other:
//! the shim is the only `libcuda.so.1` that also exports the OpenCL ICD
//! entry point [`SHIM_MARKER`].

use std::ffi::{c_void, CStr};

use cudarc::driver::sys as cu;

/// A symbol the shim exports and NVIDIA's `libcuda.so.1` does not.
pub const SHIM_MARKER: &str = "clIcdGetPlatformIDsKHR";

/// The driver library this process loads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Driver {
    /// Its file, as the dynamic loader found it.
    pub path: String,
    /// Whether it is virtio-compute's shim rather than NVIDIA's driver.
    pub is_shim: bool,
}

/// The driver cudarc loads in this process, or `None` when no
/// `libcuda` can be loaded.
pub fn driver() -> Option<Driver> {
    // SAFETY: tries to dlopen the candidate names; loading a driver
    // library runs no initialiser with preconditions.
    if !unsafe { cu::is_culib_present() } {
        return None;
    }
    // SAFETY: as above; `is_culib_present` found a loadable candidate, so
    // this returns it instead of panicking.
    let lib = unsafe { cu::culib() };
    let marker = format!("{SHIM_MARKER}\0");
    // SAFETY: only the symbols' addresses are taken, nothing is called.
    let is_shim = unsafe { lib.get::<*const c_void>(marker.as_bytes()) }.is_ok();
    // SAFETY: as above.
    let path = unsafe { lib.get::<*const c_void>(b"cuInit\0") }
        .ok()
        .and_then(|sym| file_of(*sym))
        .unwrap_or_else(|| "libcuda".into());
    Some(Driver { path, is_shim })
}

/// The file of the loaded object holding `addr`.
fn file_of(addr: *const c_void) -> Option<String> {
    // SAFETY: an all-zero `Dl_info` is a valid out-value (null pointers).
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: `addr` is a symbol address in a loaded object; `info` is a
    // live out-pointer.
    if unsafe { libc::dladdr(addr, &mut info) } == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dladdr filled in a NUL-terminated name owned by the loader,
    // valid while the object stays loaded (it does: cudarc keeps it).
    Some(
        unsafe { CStr::from_ptr(info.dli_fname) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// Whether NVRTC can be loaded (cudarc looks for `libnvrtc.so`, then
/// versioned names such as `libnvrtc.so.12`).
pub fn nvrtc_present() -> bool {
    // SAFETY: tries to dlopen the candidate names only.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// Why NVRTC is needed and how to provide it.
pub const NVRTC_MISSING: &str = "NVRTC: no libnvrtc.so (nor libnvrtc.so.12, .11, …) could be \
    loaded, and the CUDA workloads compile their kernels with it at run time; install a CUDA \
    toolkit, or the nvidia-cuda-nvrtc-cu12 wheel, and put the directory holding libnvrtc.so \
    on LD_LIBRARY_PATH (scripts/gpu-validate.sh finds one and does this)";

/// What is missing for the native side of `--api cuda`, given what this
/// process found; `Ok` when nothing is.
pub fn native_problems(driver: Option<&Driver>, nvrtc: bool) -> Result<(), String> {
    let mut missing = Vec::new();
    match driver {
        None => missing.push(
            "the NVIDIA driver: no libcuda.so.1 (nor libcuda.so) could be loaded; install \
             the NVIDIA driver on a machine with an NVIDIA GPU"
                .to_string(),
        ),
        Some(d) if d.is_shim => missing.push(format!(
            "the NVIDIA driver: the libcuda.so.1 this process loads is virtio-compute's shim \
             ({}), which cannot be the native side; take its directory out of LD_LIBRARY_PATH \
             (the harness points the virtualized side at the shim itself)",
            d.path
        )),
        Some(_) => {}
    }
    if !nvrtc {
        missing.push(NVRTC_MISSING.to_string());
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "--api cuda cannot run on this machine; missing: {}",
            missing.join("; and ")
        ))
    }
}

/// Checks, before a run starts, what the native side of `--api cuda`
/// needs (the virtualized side needs the same NVRTC and the shim, which
/// the harness provides).
pub fn check_native() -> Result<(), String> {
    native_problems(driver().as_ref(), nvrtc_present())
}

/// Checks that a worker meant for `virtualized` (or native) loads the
/// shim (or NVIDIA's driver); returns what it loads.
pub fn expect_driver(virtualized: bool) -> Result<Driver, String> {
    let Some(d) = driver() else {
        return Err(if virtualized {
            "no libcuda.so.1 could be loaded: LD_LIBRARY_PATH should lead to the shim's \
             libcuda.so.1"
                .into()
        } else {
            "no libcuda.so.1 could be loaded: the NVIDIA driver is not installed".into()
        });
    };
    match (virtualized, d.is_shim) {
        (true, false) => Err(format!(
            "the virtualized side loaded {} instead of virtio-compute's shim; its \
             measurements would be native ones",
            d.path
        )),
        (false, true) => Err(format!(
            "the native side loaded virtio-compute's shim ({}) instead of NVIDIA's driver",
            d.path
        )),
        _ => Ok(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_pieces_are_named_together() {
        let e = native_problems(None, false).unwrap_err();
        assert!(
            e.starts_with("--api cuda cannot run on this machine"),
            "{e}"
        );
        assert!(e.contains("the NVIDIA driver: no libcuda.so.1"), "{e}");
        assert!(e.contains("NVRTC: no libnvrtc.so"), "{e}");
        let shim = Driver {
            path: "/x/libvcompute_shim.so".into(),
            is_shim: true,
        };
        let e = native_problems(Some(&shim), true).unwrap_err();
        assert!(
            e.contains("virtio-compute's shim (/x/libvcompute_shim.so)"),
            "{e}"
        );
        assert!(!e.contains("NVRTC"), "{e}");
        let nvidia = Driver {
            path: "/usr/lib/x86_64-linux-gnu/libcuda.so.1".into(),
            is_shim: false,
        };
        assert!(native_problems(Some(&nvidia), true).is_ok());
        let e = native_problems(Some(&nvidia), false).unwrap_err();
        assert!(e.contains("NVRTC") && !e.contains("NVIDIA driver"), "{e}");
    }

    /// The test process has the shim nowhere on its library path: it
    /// finds NVIDIA's driver (on a GPU host) or none, and then refuses.
    #[test]
    fn this_process_finds_nvidia_or_nothing() {
        match driver() {
            None => assert!(check_native().unwrap_err().contains("NVIDIA driver")),
            Some(d) => assert!(!d.is_shim, "the test process loaded the shim: {d:?}"),
        }
    }
}
