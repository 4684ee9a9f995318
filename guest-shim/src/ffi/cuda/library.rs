//! Context-independent loading (`cuLibrary*`, `cuKernel*`), which the
//! runtime uses for every kernel an nvcc-built program registers.
//!
//! A library is kept in the guest: `cuLibraryLoadData` measures and checks
//! the image and keeps it (the program's own bytes when it passes
//! `CU_LIBRARY_BINARY_IS_PRESERVED`, a copy otherwise), with no round
//! trip. The image travels once per context, when that context first
//! needs a module or a kernel of the library (`cuLibraryGetModule`,
//! `cuKernelGetFunction`, a launch of a `CUkernel`, `cuLibraryGetGlobal`),
//! as an ordinary module load. A `CUkernel` names a kernel by library and
//! name; `cuLaunchKernel` also takes one in place of a `CUfunction`, as
//! the driver does, and resolves it in the current context.

use std::ffi::{c_char, c_int, c_uint, c_void};

use protocol::cuda::ImageKind;
use protocol::opencl::Handle;

use super::state::{self, Image, Kernel, Kind, Library};
use super::types::*;
use super::{client, current_ctx, entry, out, CuResult};

/// `CU_LIBRARY_BINARY_IS_PRESERVED`
const CU_LIBRARY_BINARY_IS_PRESERVED: c_int = 1;
/// `CU_LIBRARY_HOST_UNIVERSAL_FUNCTION_AND_DATA_TABLE`
const CU_LIBRARY_HOST_UNIVERSAL_FUNCTION_AND_DATA_TABLE: c_int = 0;
/// `CU_MODULE_LAZY_LOADING`
const CU_MODULE_LAZY_LOADING: c_int = 2;

fn library_handle(l: Opaque) -> CuResult<Handle> {
    let h = state::from_opaque(Kind::Library, l).ok_or(CUDA_ERROR_INVALID_HANDLE)?;
    if state::with(|s| s.libraries.contains_key(&h)) {
        Ok(h)
    } else {
        Err(CUDA_ERROR_INVALID_HANDLE)
    }
}

/// The library's module in the current context, loading it there first.
pub(crate) fn module_of(library: Handle) -> CuResult<Handle> {
    let ctx = current_ctx()?;
    let found = state::with(|s| {
        let l = s.libraries.get(&library)?;
        Some(match l.modules.get(&ctx) {
            Some(&m) => Ok(m),
            None => Err((l.kind, l.image.clone(), l.options.clone())),
        })
    })
    .ok_or(CUDA_ERROR_INVALID_HANDLE)?;
    let (kind, image, options) = match found {
        Ok(m) => return Ok(m),
        Err(load) => load,
    };
    let (loaded, id) = super::module::send_load(ctx, kind, image.bytes(), options, (0, 0))?;
    let id = id.ok_or_else(|| CUresult::try_from(loaded.result).unwrap_or(CUDA_ERROR_UNKNOWN))?;
    state::with(|s| {
        if let Some(l) = s.libraries.get_mut(&library) {
            l.modules.insert(ctx, id);
        }
    });
    Ok(id)
}

/// The `CUfunction` of a kernel in the current context.
pub(crate) fn kernel_function(kernel: Handle) -> CuResult<Handle> {
    let ctx = current_ctx()?;
    let known = state::with(|s| {
        let k = s.kernels.get(&kernel)?;
        Some(match k.functions.get(&ctx) {
            Some(&f) => Ok(f),
            None => Err((k.library, k.name.clone())),
        })
    })
    .ok_or(CUDA_ERROR_INVALID_HANDLE)?;
    let (library, name) = match known {
        Ok(f) => return Ok(f),
        Err(miss) => miss,
    };
    let f = super::module::function(module_of(library)?, name)?;
    state::with(|s| {
        if let Some(k) = s.kernels.get_mut(&kernel) {
            k.functions.insert(ctx, f);
        }
    });
    Ok(f)
}

/// The kernel behind a `CUkernel` value, if it is one.
pub(crate) fn kernel_handle(k: Opaque) -> Option<Handle> {
    let h = state::from_opaque(Kind::Kernel, k)?;
    state::with(|s| s.kernels.contains_key(&h)).then_some(h)
}

/// Reads the library options: whether the image is preserved.
///
/// # Safety
/// `options` and `values` are NULL or hold `n` entries.
unsafe fn preserved(
    n: c_uint,
    options: *const c_int,
    values: *const *mut c_void,
) -> CuResult<bool> {
    // SAFETY: the caller's contract.
    let (opts, vals) = unsafe {
        (
            crate::ffi::slice_in(options, n as usize).ok_or(CUDA_ERROR_INVALID_VALUE)?,
            crate::ffi::slice_in(values, n as usize).ok_or(CUDA_ERROR_INVALID_VALUE)?,
        )
    };
    let mut keep = false;
    for (&o, &v) in opts.iter().zip(vals) {
        match o {
            CU_LIBRARY_BINARY_IS_PRESERVED => keep = !v.is_null(),
            // The host table of universal functions names host code the
            // runtime handles itself.
            CU_LIBRARY_HOST_UNIVERSAL_FUNCTION_AND_DATA_TABLE => {}
            _ => return Err(CUDA_ERROR_INVALID_VALUE),
        }
    }
    Ok(keep)
}

/// Records a library over `image`.
fn keep(
    library: *mut Opaque,
    kind: ImageKind,
    image: Image,
    options: Vec<protocol::cuda::JitOption>,
) -> CuResult {
    if library.is_null() {
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    let id = client()?.new_handle();
    state::with(|s| {
        s.libraries.insert(
            id,
            Library {
                kind,
                image,
                options,
                modules: Default::default(),
                kernels: Default::default(),
            },
        )
    });
    // SAFETY: checked non-null; the caller's contract.
    unsafe { out(library, state::to_opaque(Kind::Library, id)) }
}

/// `cuLibraryLoadData`: kept in the guest until a context needs it. JIT
/// logs are written empty (the load they would describe happens later).
///
/// # Safety
/// `code` is a complete image (as for `cuModuleLoadData`); the option
/// arrays hold their counts of entries; `library` is writable.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn cuLibraryLoadData(
    library: *mut Opaque,
    code: *const c_void,
    jit_options: *mut c_int,
    jit_values: *mut *mut c_void,
    num_jit: c_uint,
    lib_options: *mut c_int,
    lib_values: *mut *mut c_void,
    num_lib: c_uint,
) -> CUresult {
    entry("cuLibraryLoadData", || {
        client()?;
        // SAFETY: the caller's contract.
        let (kind, bytes) = unsafe { super::module::image(code) }?;
        // SAFETY: the caller's contract.
        let (opts, logs) = unsafe { super::module::jit_options(num_jit, jit_options, jit_values) }?;
        // SAFETY: the caller's contract.
        let keep_theirs = unsafe { preserved(num_lib, lib_options, lib_values) }?;
        // SAFETY: the slots come from the caller's options.
        unsafe { logs.write(&Default::default(), jit_values) };
        let image = if keep_theirs {
            // SAFETY: the program keeps the image alive and unchanged
            // while the library lives, as it promised with the option.
            Image::Preserved(unsafe { std::slice::from_raw_parts(bytes.as_ptr(), bytes.len()) })
        } else {
            Image::Owned(bytes.into())
        };
        keep(library, kind, image, opts)
    })
}

/// `cuLibraryLoadFromFile`: the file is read at once and kept.
///
/// # Safety
/// `file` is a NUL-terminated path; the option arrays hold their counts;
/// `library` is writable.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn cuLibraryLoadFromFile(
    library: *mut Opaque,
    file: *const c_char,
    jit_options: *mut c_int,
    jit_values: *mut *mut c_void,
    num_jit: c_uint,
    lib_options: *mut c_int,
    lib_values: *mut *mut c_void,
    num_lib: c_uint,
) -> CUresult {
    entry("cuLibraryLoadFromFile", || {
        client()?;
        // SAFETY: the caller's contract.
        let path = unsafe { crate::ffi::c_string(file) }.ok_or(CUDA_ERROR_INVALID_VALUE)?;
        let (kind, bytes) = super::module::read_image_file(&path)?;
        // SAFETY: the caller's contract.
        let (opts, logs) = unsafe { super::module::jit_options(num_jit, jit_options, jit_values) }?;
        // SAFETY: the caller's contract.
        unsafe { preserved(num_lib, lib_options, lib_values) }?;
        // SAFETY: the slots come from the caller's options.
        unsafe { logs.write(&Default::default(), jit_values) };
        keep(library, kind, Image::Owned(bytes.into()), opts)
    })
}

/// `cuLibraryUnload`: its modules go from every context (posted).
#[no_mangle]
pub extern "C" fn cuLibraryUnload(library: Opaque) -> CUresult {
    entry("cuLibraryUnload", || {
        let h = library_handle(library)?;
        let lib = state::with(|s| {
            s.kernels.retain(|_, k| k.library != h);
            s.libraries.remove(&h)
        });
        for m in lib
            .map(|l| l.modules.into_values().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            super::module::unload(m)?;
        }
        Ok(())
    })
}

/// `cuLibraryGetModule`: the library's module in the current context.
///
/// # Safety
/// `module` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuLibraryGetModule(module: *mut Opaque, library: Opaque) -> CUresult {
    entry("cuLibraryGetModule", || {
        let h = library_handle(library)?;
        if module.is_null() {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let m = module_of(h)?;
        // SAFETY: the caller's contract.
        unsafe { out(module, state::to_opaque(Kind::Module, m)) }
    })
}

/// `cuLibraryGetKernel`: answered locally; whether the kernel exists is
/// known once a context loads the library.
///
/// # Safety
/// `kernel` is NULL or writable; `name` is NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn cuLibraryGetKernel(
    kernel: *mut Opaque,
    library: Opaque,
    name: *const c_char,
) -> CUresult {
    entry("cuLibraryGetKernel", || {
        let h = library_handle(library)?;
        // SAFETY: the caller's contract.
        let name = unsafe { crate::ffi::c_string(name) }.ok_or(CUDA_ERROR_INVALID_VALUE)?;
        if kernel.is_null() {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let c = client()?;
        let id = state::with(|s| {
            let lib = s.libraries.get_mut(&h)?;
            if let Some(&k) = lib.kernels.get(&name) {
                return Some(k);
            }
            let k = c.new_handle();
            lib.kernels.insert(name.clone(), k);
            let c_name = std::ffi::CString::new(name.clone()).ok()?.into();
            s.kernels.insert(
                k,
                Kernel {
                    library: h,
                    name,
                    c_name,
                    functions: Default::default(),
                },
            );
            Some(k)
        })
        .ok_or(CUDA_ERROR_INVALID_HANDLE)?;
        // SAFETY: the caller's contract.
        unsafe { out(kernel, state::to_opaque(Kind::Kernel, id)) }
    })
}

/// `cuKernelGetFunction`: the kernel in the current context.
///
/// # Safety
/// `func` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuKernelGetFunction(func: *mut Opaque, kernel: Opaque) -> CUresult {
    entry("cuKernelGetFunction", || {
        let k = kernel_handle(kernel).ok_or(CUDA_ERROR_INVALID_HANDLE)?;
        if func.is_null() {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let f = kernel_function(k)?;
        // SAFETY: the caller's contract.
        unsafe { out(func, state::to_opaque(Kind::Function, f)) }
    })
}

/// `cuKernelGetName`
///
/// # Safety
/// `name` is NULL or writable. The string lives as long as the library.
#[no_mangle]
pub unsafe extern "C" fn cuKernelGetName(name: *mut *const c_char, kernel: Opaque) -> CUresult {
    entry("cuKernelGetName", || {
        let k = kernel_handle(kernel).ok_or(CUDA_ERROR_INVALID_HANDLE)?;
        let p = state::with(|s| s.kernels.get(&k).map(|k| k.c_name.as_ptr()))
            .ok_or(CUDA_ERROR_INVALID_HANDLE)?;
        // SAFETY: the caller's contract.
        unsafe { out(name, p) }
    })
}

/// `cuKernelGetAttribute`: the attribute of the kernel's function on the
/// current context (`dev` must be the current context's device).
///
/// # Safety
/// `pi` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuKernelGetAttribute(
    pi: *mut c_int,
    attrib: c_int,
    kernel: Opaque,
    dev: CUdevice,
) -> CUresult {
    entry("cuKernelGetAttribute", || {
        let f = on_device(kernel, dev)?;
        // SAFETY: the caller's contract.
        super::result(unsafe { super::launch::cuFuncGetAttribute(pi, attrib, f) })
    })
}

/// `cuKernelSetAttribute`
#[no_mangle]
pub extern "C" fn cuKernelSetAttribute(
    attrib: c_int,
    value: c_int,
    kernel: Opaque,
    dev: CUdevice,
) -> CUresult {
    entry("cuKernelSetAttribute", || {
        let f = on_device(kernel, dev)?;
        super::result(super::launch::cuFuncSetAttribute(f, attrib, value))
    })
}

/// The `CUfunction` of a kernel in the current context, which must be on
/// `dev`.
fn on_device(kernel: Opaque, dev: CUdevice) -> CuResult<Opaque> {
    let k = kernel_handle(kernel).ok_or(CUDA_ERROR_INVALID_HANDLE)?;
    let ctx = current_ctx()?;
    let here = state::with(|s| s.contexts.get(&ctx).map(|c| c.device));
    if here != Some(dev) {
        return Err(CUDA_ERROR_INVALID_DEVICE);
    }
    Ok(state::to_opaque(Kind::Function, kernel_function(k)?))
}

/// `cuLibraryGetGlobal`: the global of the library's module in the
/// current context.
///
/// # Safety
/// `dptr` and `bytes` are NULL or writable; `name` is NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn cuLibraryGetGlobal(
    dptr: *mut CUdeviceptr,
    bytes: *mut usize,
    library: Opaque,
    name: *const c_char,
) -> CUresult {
    entry("cuLibraryGetGlobal", || {
        let h = library_handle(library)?;
        // SAFETY: the caller's contract.
        let name = unsafe { crate::ffi::c_string(name) }.ok_or(CUDA_ERROR_INVALID_VALUE)?;
        let (ptr, size) = super::module::global(module_of(h)?, name)?;
        // SAFETY: the caller's contract.
        unsafe {
            crate::ffi::write_opt(dptr, ptr);
            crate::ffi::write_opt(bytes, usize::try_from(size).unwrap_or(usize::MAX));
        }
        Ok(())
    })
}

/// `cuModuleGetLoadingMode`: modules load lazily (the runtime then
/// registers kernels without any driver call, and uses libraries).
///
/// # Safety
/// `mode` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuModuleGetLoadingMode(mode: *mut c_int) -> CUresult {
    // SAFETY: the caller's contract.
    entry("cuModuleGetLoadingMode", || unsafe {
        out(mode, CU_MODULE_LAZY_LOADING)
    })
}
