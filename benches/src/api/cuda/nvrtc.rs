//! Compiling the CUDA C sources to PTX at run time with NVRTC, through
//! `cudarc`, which loads `libnvrtc` dynamically. Both sides of a run
//! compile the same source with the same NVRTC for the same device, so
//! they load the same PTX. Call [`super::probe::nvrtc_present`] first:
//! cudarc panics when the library cannot be loaded.

use std::ffi::{c_int, CString};

use cudarc::nvrtc::{result, sys};

use super::kernels::{options, Source};
use crate::api::WorkloadError;

/// NVRTC's version, e.g. `(12, 4)`.
pub fn version() -> Result<(i32, i32), WorkloadError> {
    let (mut major, mut minor) = (0, 0);
    // SAFETY: two live out-pointers.
    unsafe { sys::nvrtcVersion(&mut major, &mut minor) }
        .result()
        .map_err(|e| WorkloadError::Build(format!("nvrtcVersion: {e}")))?;
    Ok((major, minor))
}

/// The virtual architectures NVRTC can compile for, as `10 * major +
/// minor` (e.g. 90 for `compute_90`). Needs NVRTC 11.2 or newer.
pub fn supported_archs() -> Result<Vec<i32>, WorkloadError> {
    let fail = |e: result::NvrtcError| WorkloadError::Build(format!("nvrtcGetSupportedArchs: {e}"));
    let mut n: c_int = 0;
    // SAFETY: a live out-pointer.
    unsafe { sys::nvrtcGetNumSupportedArchs(&mut n) }
        .result()
        .map_err(fail)?;
    let mut archs = vec![0 as c_int; usize::try_from(n).unwrap_or(0)];
    if !archs.is_empty() {
        // SAFETY: `archs` holds the `n` entries NVRTC writes.
        unsafe { sys::nvrtcGetSupportedArchs(archs.as_mut_ptr()) }
            .result()
            .map_err(fail)?;
    }
    Ok(archs)
}

/// The architecture to compile for on a device of compute capability
/// `device` (`10 * major + minor`): the newest NVRTC supports that the
/// device can run (PTX for an older architecture runs on newer devices;
/// the driver compiles it for the device when the module loads).
pub fn choose_arch(supported: &[i32], device: i32) -> Option<i32> {
    supported.iter().copied().filter(|&a| a <= device).max()
}

/// `compute_XY` for an architecture number.
pub fn arch_name(arch: i32) -> String {
    format!("compute_{arch}")
}

/// Compiles `src` for `arch` (e.g. `compute_90`); returns NUL-terminated
/// PTX, ready for `cuModuleLoadData`.
pub fn compile(src: &Source, arch: &str) -> Result<Vec<u8>, WorkloadError> {
    let build = |what: String| WorkloadError::Build(format!("{}: {what}", src.name));
    let text = CString::new(src.text).map_err(|_| build("the source holds a NUL".into()))?;
    let name = CString::new(format!("{}.cu", src.name))
        .map_err(|_| build("the name holds a NUL".into()))?;
    let prog = result::create_program(&text, Some(&name))
        .map_err(|e| build(format!("nvrtcCreateProgram: {e}")))?;
    let opts = options(src, arch);
    // SAFETY: `prog` is the live program created above; the options are
    // plain strings without NUL bytes.
    let compiled = unsafe { result::compile_program(prog, &opts) };
    let outcome = match compiled {
        Ok(()) => {
            // SAFETY: `prog` compiled successfully.
            unsafe { result::get_ptx(prog) }.map_err(|e| build(format!("nvrtcGetPTX: {e}")))
        }
        Err(e) => {
            // SAFETY: `prog` is live; its log says why it failed.
            let log = unsafe { result::get_program_log(prog) }
                .map(|l| text_of(&l))
                .unwrap_or_default();
            Err(build(format!(
                "NVRTC {e} with {}:\n{}",
                opts.join(" "),
                log.trim_end()
            )))
        }
    };
    // SAFETY: `prog` is live and not used after this.
    let _ = unsafe { result::destroy_program(prog) };
    let mut ptx: Vec<u8> = outcome?.into_iter().map(|c| c as u8).collect();
    // Exactly one NUL, at the end.
    while ptx.last() == Some(&0) {
        ptx.pop();
    }
    if ptx.contains(&0) {
        return Err(build("NVRTC returned PTX with a NUL inside".into()));
    }
    ptx.push(0);
    Ok(ptx)
}

/// A C string buffer from NVRTC as text (up to its NUL).
fn text_of(buf: &[std::ffi::c_char]) -> String {
    let bytes: Vec<u8> = buf
        .iter()
        .map(|&c| c as u8)
        .take_while(|&b| b != 0)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_architecture_the_device_runs_is_chosen() {
        let nvrtc_12_4 = [50, 52, 53, 60, 61, 62, 70, 72, 75, 80, 86, 87, 89, 90];
        assert_eq!(choose_arch(&nvrtc_12_4, 90), Some(90));
        // A newer device than this NVRTC knows: its newest architecture.
        assert_eq!(choose_arch(&nvrtc_12_4, 100), Some(90));
        assert_eq!(choose_arch(&nvrtc_12_4, 86), Some(86));
        assert_eq!(choose_arch(&nvrtc_12_4, 88), Some(87));
        // NVRTC 13 dropped the old architectures: nothing for a Pascal.
        let nvrtc_13 = [75, 80, 86, 87, 88, 89, 90, 100, 103, 110, 120, 121];
        assert_eq!(choose_arch(&nvrtc_13, 61), None);
        assert_eq!(choose_arch(&nvrtc_13, 90), Some(90));
        assert_eq!(arch_name(90), "compute_90");
    }

    #[test]
    fn logs_read_up_to_their_nul() {
        let buf: Vec<std::ffi::c_char> = b"error: x\0junk"
            .iter()
            .map(|&b| b as std::ffi::c_char)
            .collect();
        assert_eq!(text_of(&buf), "error: x");
    }
}
