//! `cuLink*`, for the common case only: one image in, the same image out.
//!
//! Tools such as numba-cuda pass their single PTX module through the
//! driver's linker and load the "cubin" it returns. The shim does not
//! forward linking; a link state that is given exactly one PTX, cubin or
//! fat binary completes with that image unchanged (PTX NUL-terminated, so
//! `cuModuleLoadData` takes it as text), and the module load then compiles
//! it on the daemon's driver. Linking several images, or object and
//! library inputs, answers `CUDA_ERROR_NOT_SUPPORTED`.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_uint, c_void};
use std::sync::Mutex;

use protocol::cuda::ImageKind;
use protocol::limits::MAX_MODULE_IMAGE_LEN;
use protocol::opencl::Handle;

use super::state::{self, Kind};
use super::types::*;
use super::{client, entry, out, CuResult};

/// `CUjitInputType` values the pass-through accepts.
const CU_JIT_INPUT_CUBIN: c_int = 0;
const CU_JIT_INPUT_PTX: c_int = 1;
const CU_JIT_INPUT_FATBINARY: c_int = 2;

/// A link state: the images added so far and, once complete, the output
/// the program was handed (alive until `cuLinkDestroy`).
#[derive(Debug, Default)]
struct LinkState {
    images: Vec<Vec<u8>>,
    output: Option<Vec<u8>>,
}

static LINKS: Mutex<Option<HashMap<Handle, LinkState>>> = Mutex::new(None);

fn with_links<R>(f: impl FnOnce(&mut HashMap<Handle, LinkState>) -> R) -> R {
    let mut g = LINKS.lock().unwrap_or_else(|p| p.into_inner());
    f(g.get_or_insert_with(HashMap::new))
}

fn link_handle(s: Opaque) -> CuResult<Handle> {
    let h = state::from_opaque(Kind::Link, s).ok_or(CUDA_ERROR_INVALID_HANDLE)?;
    if with_links(|l| l.contains_key(&h)) {
        Ok(h)
    } else {
        Err(CUDA_ERROR_INVALID_HANDLE)
    }
}

/// `cuLinkCreate_v2`: JIT options are accepted and ignored (nothing is
/// compiled here; the module load compiles).
///
/// # Safety
/// `state_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuLinkCreate_v2(
    num_options: c_uint,
    options: *mut c_int,
    values: *mut *mut c_void,
    state_out: *mut Opaque,
) -> CUresult {
    let _ = (num_options, options, values);
    entry("cuLinkCreate_v2", || {
        super::current_ctx()?;
        let h = client()?.new_handle();
        with_links(|l| l.insert(h, LinkState::default()));
        // SAFETY: the caller's contract.
        unsafe { out(state_out, state::to_opaque(Kind::Link, h)) }
    })
}

/// Adds one image; a second one, or an input that is not PTX, cubin or a
/// fat binary, is `CUDA_ERROR_NOT_SUPPORTED`.
fn add(state: Opaque, input: c_int, bytes: Vec<u8>) -> CuResult {
    let h = link_handle(state)?;
    let kind = match input {
        CU_JIT_INPUT_PTX => ImageKind::Ptx,
        CU_JIT_INPUT_CUBIN => ImageKind::Cubin,
        CU_JIT_INPUT_FATBINARY => ImageKind::Fatbin,
        _ => return Err(CUDA_ERROR_NOT_SUPPORTED),
    };
    let mut bytes = bytes;
    if kind == ImageKind::Ptx {
        // As text for cuModuleLoadData: up to the first NUL, then one NUL.
        if let Some(nul) = bytes.iter().position(|&b| b == 0) {
            bytes.truncate(nul);
        }
        bytes.push(0);
    }
    with_links(|l| {
        let s = l.get_mut(&h).ok_or(CUDA_ERROR_INVALID_HANDLE)?;
        if !s.images.is_empty() || s.output.is_some() {
            crate::log::CALLS.log(format_args!(
                "cuLink: linking several images is not forwarded"
            ));
            return Err(CUDA_ERROR_NOT_SUPPORTED);
        }
        s.images.push(bytes);
        Ok(())
    })
}

/// `cuLinkAddData_v2`
///
/// # Safety
/// `data` holds `size` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn cuLinkAddData_v2(
    state: Opaque,
    input: c_int,
    data: *mut c_void,
    size: usize,
    name: *const c_char,
    num_options: c_uint,
    options: *mut c_int,
    values: *mut *mut c_void,
) -> CUresult {
    let _ = (name, num_options, options, values);
    entry("cuLinkAddData_v2", || {
        if size as u64 > MAX_MODULE_IMAGE_LEN || size == 0 {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        // SAFETY: the caller's contract.
        let bytes = unsafe { crate::ffi::slice_in(data.cast::<u8>().cast_const(), size) }
            .ok_or(CUDA_ERROR_INVALID_VALUE)?;
        add(state, input, bytes.to_vec())
    })
}

/// `cuLinkAddFile_v2`
///
/// # Safety
/// `path` is NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn cuLinkAddFile_v2(
    state: Opaque,
    input: c_int,
    path: *const c_char,
    num_options: c_uint,
    options: *mut c_int,
    values: *mut *mut c_void,
) -> CUresult {
    let _ = (num_options, options, values);
    entry("cuLinkAddFile_v2", || {
        // SAFETY: the caller's contract.
        let path = unsafe { crate::ffi::c_string(path) }.ok_or(CUDA_ERROR_INVALID_VALUE)?;
        let bytes = std::fs::read(path).map_err(|_| CUDA_ERROR_FILE_NOT_FOUND)?;
        add(state, input, bytes)
    })
}

/// `cuLinkComplete`: hands out the one image added.
///
/// # Safety
/// `image_out` and `size_out` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuLinkComplete(
    state: Opaque,
    image_out: *mut *mut c_void,
    size_out: *mut usize,
) -> CUresult {
    entry("cuLinkComplete", || {
        let h = link_handle(state)?;
        let (ptr, len) = with_links(|l| {
            let s = l.get_mut(&h).ok_or(CUDA_ERROR_INVALID_HANDLE)?;
            if s.output.is_none() {
                let image = s.images.pop().ok_or(CUDA_ERROR_INVALID_VALUE)?;
                s.output = Some(image);
            }
            let o = s.output.as_mut().ok_or(CUDA_ERROR_INVALID_VALUE)?;
            Ok::<_, CUresult>((o.as_mut_ptr().cast::<c_void>(), o.len()))
        })?;
        // SAFETY: the caller's contract; the image stays alive in the link
        // state until cuLinkDestroy.
        unsafe {
            out(image_out, ptr)?;
            crate::ffi::write_opt(size_out, len);
        }
        Ok(())
    })
}

/// `cuLinkDestroy`
#[no_mangle]
pub extern "C" fn cuLinkDestroy(state: Opaque) -> CUresult {
    entry("cuLinkDestroy", || {
        let h = link_handle(state)?;
        with_links(|l| l.remove(&h));
        Ok(())
    })
}
