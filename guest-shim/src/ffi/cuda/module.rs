//! Modules: loads from PTX text, cubin (ELF) or fat binaries, kernels and
//! globals. An image larger than one call carries is staged in pieces and
//! then loaded by name (so large fat binaries load over the stream
//! transports too). The driver API passes images without a length, so the shim
//! finds it from the image itself, as the driver does: PTX runs to its NUL,
//! an ELF image to the end of its last section or header table, a fat
//! binary to the end its header states.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr};

use protocol::cuda::{
    GetFunction, GetGlobal, ImageKind, JitOption, ModuleLoad, ModuleLoaded, ModuleStage,
    ModuleUnload,
};
use protocol::fatbin;
use protocol::limits::{MAX_JIT_LOG_LEN, MAX_JIT_OPTIONS, MAX_MODULE_IMAGE_LEN};
use protocol::opencl::Handle;
use protocol::{Request, Response};

use super::state::{self, DevRange, Function, Kind, Module};
use super::types::*;
use super::{call, client, current_ctx, entry, out, post, unexpected, CuResult};

const ELF_MAGIC: [u8; 4] = [0x7f, b'E', b'L', b'F'];

/// Copies `n` bytes at `p + off` (the image header the length comes from).
///
/// # Safety
/// `p + off .. p + off + n` is readable (part of the program's image).
unsafe fn peek(p: *const u8, off: usize, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    // SAFETY: the caller's contract; `v` is a fresh buffer of `n` bytes.
    unsafe { std::ptr::copy_nonoverlapping(p.wrapping_add(off), v.as_mut_ptr(), n) };
    v
}

fn u16_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 2)
        .and_then(|s| s.try_into().ok())
        .map_or(0, |a| u64::from(u16::from_le_bytes(a)))
}

fn u32_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, |a| u64::from(u32::from_le_bytes(a)))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// The length of a 64-bit little-endian ELF image from its headers.
///
/// # Safety
/// `p` points at a readable ELF image.
unsafe fn elf_len(p: *const u8) -> CuResult<u64> {
    // SAFETY: an ELF64 header is 64 bytes; the caller's contract.
    let h = unsafe { peek(p, 0, 64) };
    if h.get(4) != Some(&2) || h.get(5) != Some(&1) {
        return Err(CUDA_ERROR_INVALID_IMAGE); // not ELF64 little-endian
    }
    let (phoff, shoff) = (u64_at(&h, 0x20), u64_at(&h, 0x28));
    let (phentsize, phnum) = (u16_at(&h, 0x36), u16_at(&h, 0x38));
    let (shentsize, shnum) = (u16_at(&h, 0x3a), u16_at(&h, 0x3c));
    let mut end = 64u64
        .max(phoff.saturating_add(phentsize * phnum))
        .max(shoff.saturating_add(shentsize * shnum));
    if end > MAX_MODULE_IMAGE_LEN || shentsize < 64 && shnum > 0 {
        return Err(CUDA_ERROR_INVALID_IMAGE);
    }
    let shoff = usize::try_from(shoff).map_err(|_| CUDA_ERROR_INVALID_IMAGE)?;
    for i in 0..shnum as usize {
        // SAFETY: the section header table lies inside the image (its end
        // was checked against the bound above; the image is the caller's).
        let sh = unsafe { peek(p, shoff + i * shentsize as usize, 64) };
        const SHT_NOBITS: u64 = 8;
        if u32_at(&sh, 4) != SHT_NOBITS {
            end = end.max(u64_at(&sh, 0x18).saturating_add(u64_at(&sh, 0x20)));
        }
    }
    Ok(end)
}

/// What the image at `p` is and its bytes.
///
/// # Safety
/// `p` points at a complete module image: NUL-terminated PTX, an ELF
/// cubin, a fat binary or a fat binary wrapper, alive for `'a`.
pub(crate) unsafe fn image<'a>(p: *const c_void) -> CuResult<(ImageKind, &'a [u8])> {
    if p.is_null() {
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    let p = p.cast::<u8>();
    // SAFETY: every image kind is at least 4 bytes long.
    let head = unsafe { peek(p, 0, 4) };
    let magic = u32_at(&head, 0) as u32;
    let (kind, start, len) = if head == ELF_MAGIC {
        // SAFETY: an ELF image, by the caller's contract.
        (ImageKind::Cubin, p, unsafe { elf_len(p) }?)
    } else if magic == fatbin::FATBIN_MAGIC {
        // SAFETY: a fat binary header is 16 bytes.
        let h = unsafe { peek(p, 0, fatbin::HEADER_LEN) };
        let len = fatbin::image_len(&h).map_err(|_| CUDA_ERROR_INVALID_IMAGE)?;
        // SAFETY: the fat binary is `len` bytes long, as its header says.
        let b = unsafe { std::slice::from_raw_parts(p, len as usize) };
        // Its entries must tile it; their payloads are checked (and
        // decompressed) by the daemon.
        fatbin::entries(b).map_err(|_| CUDA_ERROR_INVALID_IMAGE)?;
        return Ok((ImageKind::Fatbin, b));
    } else if magic == fatbin::WRAPPER_MAGIC {
        // SAFETY: a wrapper is 24 bytes: magic, version, two pointers.
        let w = unsafe { peek(p, 0, fatbin::WRAPPER_LEN) };
        let w = fatbin::Wrapper::parse(&w).ok_or(CUDA_ERROR_INVALID_IMAGE)?;
        let data = w.data as usize as *const c_void;
        // SAFETY: the wrapper points at a fat binary, by the same contract.
        return unsafe { image(data) }.and_then(|(k, b)| match k {
            ImageKind::Fatbin => Ok((k, b)),
            _ => Err(CUDA_ERROR_INVALID_IMAGE),
        });
    } else {
        // SAFETY: otherwise PTX text, NUL-terminated by the contract.
        let text = unsafe { CStr::from_ptr(p.cast::<c_char>()) };
        (ImageKind::Ptx, p, text.to_bytes().len() as u64)
    };
    if len == 0 || len > MAX_MODULE_IMAGE_LEN {
        return Err(CUDA_ERROR_INVALID_IMAGE);
    }
    let len = usize::try_from(len).map_err(|_| CUDA_ERROR_INVALID_IMAGE)?;
    // SAFETY: the image is `len` bytes long, as its own headers say.
    Ok((kind, unsafe { std::slice::from_raw_parts(start, len) }))
}

/// What a file or linked buffer holds, judged by its first bytes.
pub(crate) fn kind_of(bytes: &[u8]) -> ImageKind {
    let magic = bytes
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes);
    if bytes.starts_with(&ELF_MAGIC) {
        ImageKind::Cubin
    } else if magic == Some(fatbin::FATBIN_MAGIC) {
        ImageKind::Fatbin
    } else {
        ImageKind::Ptx
    }
}

/// JIT log buffers the program asked for, written after the load.
#[derive(Default)]
pub(crate) struct Logs {
    info: Option<(*mut u8, usize, usize)>,
    error: Option<(*mut u8, usize, usize)>,
    wall_time: Option<usize>,
}

/// Splits JIT options into plain ones for the daemon and log buffers.
///
/// # Safety
/// `options` and `values` are NULL or hold `n` entries.
pub(crate) unsafe fn jit_options(
    n: c_uint,
    options: *const c_int,
    values: *const *mut c_void,
) -> CuResult<(Vec<JitOption>, Logs)> {
    let n = n as usize;
    if n > MAX_JIT_OPTIONS {
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    // SAFETY: the caller's contract.
    let (opts, vals) = unsafe {
        (
            crate::ffi::slice_in(options, n).ok_or(CUDA_ERROR_INVALID_VALUE)?,
            crate::ffi::slice_in(values, n).ok_or(CUDA_ERROR_INVALID_VALUE)?,
        )
    };
    let (mut plain, mut logs) = (Vec::new(), Logs::default());
    let (mut info_buf, mut info_len, mut err_buf, mut err_len) = (None, 0, None, 0);
    for (i, (&o, &v)) in opts.iter().zip(vals).enumerate() {
        let word = v as usize;
        match o {
            CU_JIT_INFO_LOG_BUFFER => info_buf = Some(v.cast::<u8>()),
            CU_JIT_ERROR_LOG_BUFFER => err_buf = Some(v.cast::<u8>()),
            CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES => info_len = word as u32 as usize,
            CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES => err_len = word as u32 as usize,
            CU_JIT_WALL_TIME => logs.wall_time = Some(i),
            _ => plain.push(JitOption {
                option: u32::try_from(o).map_err(|_| CUDA_ERROR_INVALID_VALUE)?,
                value: word as u32 as u64,
            }),
        }
    }
    let slot = |want| opts.iter().position(|&o| o == want).unwrap_or(0);
    if let Some(b) = info_buf.filter(|b| !b.is_null() && info_len > 0) {
        logs.info = Some((b, info_len, slot(CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES)));
    }
    if let Some(b) = err_buf.filter(|b| !b.is_null() && err_len > 0) {
        logs.error = Some((b, err_len, slot(CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES)));
    }
    Ok((plain, logs))
}

/// Copies a returned log into the program's buffer (NUL-terminated) and
/// stores the bytes written in its size option.
///
/// # Safety
/// `buf` holds `cap` writable bytes; `values` holds the option slots.
unsafe fn put_log(log: &[u8], (buf, cap, slot): (*mut u8, usize, usize), values: *mut *mut c_void) {
    let n = log.len().min(cap - 1);
    // SAFETY: the caller's contract; `n + 1 <= cap`.
    unsafe {
        std::ptr::copy_nonoverlapping(log.as_ptr(), buf, n);
        buf.add(n).write(0);
        values.add(slot).write((n + 1) as *mut c_void);
    }
}

/// Sends an image to the daemon as a module of context `ctx` and records
/// it. Returns the daemon's answer (with the JIT logs) and the module,
/// which exists only when the answer's result is 0.
pub(crate) fn send_load(
    ctx: Handle,
    kind: ImageKind,
    bytes: &[u8],
    options: Vec<JitOption>,
    log_caps: (u32, u32),
) -> CuResult<(ModuleLoaded, Option<Handle>)> {
    let c = client()?;
    // An image larger than one call carries (a stream record holds at
    // most 16 MiB) is staged in pieces first, then named by the load.
    let chunk = c.max_chunk().max(1);
    let upload = if bytes.len() > chunk {
        let upload = c.new_handle();
        let total = bytes.len() as u64;
        for (i, piece) in bytes.chunks(chunk).enumerate() {
            let req = Request::CuModuleStage(ModuleStage {
                upload,
                offset: (i * chunk) as u64,
                total,
            });
            match call(req, &[piece], &mut [])? {
                Response::CuModuleStage(_) => {}
                r => return Err(unexpected(r)),
            }
        }
        Some(upload)
    } else {
        None
    };
    let id = c.new_handle();
    let req = Request::CuModuleLoad(ModuleLoad {
        id,
        ctx,
        kind,
        image_len: bytes.len() as u64,
        options,
        info_log_len: log_caps.0,
        error_log_len: log_caps.1,
        upload,
    });
    let inline: &[&[u8]] = if upload.is_some() { &[] } else { &[bytes] };
    let loaded = match call(req, inline, &mut [])? {
        Response::CuModuleLoad(l) => l,
        r => return Err(unexpected(r)),
    };
    if loaded.result != 0 {
        return Ok((loaded, None));
    }
    state::with(|s| {
        s.modules.insert(
            id,
            Module {
                ctx,
                functions: Default::default(),
            },
        )
    });
    Ok((loaded, Some(id)))
}

/// Loads an image into the current context.
///
/// # Safety
/// `values` is NULL or holds the option slots `logs` refers to.
unsafe fn load(
    module: *mut Opaque,
    kind: ImageKind,
    bytes: &[u8],
    options: Vec<JitOption>,
    logs: Logs,
    values: *mut *mut c_void,
) -> CuResult {
    if module.is_null() {
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    let ctx = current_ctx()?;
    let cap = |l: &Option<(*mut u8, usize, usize)>| {
        l.map_or(0, |(_, n, _)| n.min(MAX_JIT_LOG_LEN as usize) as u32)
    };
    let (loaded, id) = send_load(
        ctx,
        kind,
        bytes,
        options,
        (cap(&logs.info), cap(&logs.error)),
    )?;
    // SAFETY: the log buffers and slots come from the caller's options.
    unsafe { logs.write(&loaded, values) };
    let id = id.ok_or_else(|| CUresult::try_from(loaded.result).unwrap_or(CUDA_ERROR_UNKNOWN))?;
    // SAFETY: checked non-null above; the caller's contract.
    unsafe { out(module, state::to_opaque(Kind::Module, id)) }
}

impl Logs {
    /// Writes the logs of `loaded` into the program's buffers and the
    /// wall time into its slot.
    ///
    /// # Safety
    /// `values` holds the option slots the logs refer to.
    pub(crate) unsafe fn write(&self, loaded: &ModuleLoaded, values: *mut *mut c_void) {
        // SAFETY: the caller's contract.
        unsafe {
            if let Some(l) = self.info {
                put_log(&loaded.info_log, l, values);
            }
            if let Some(l) = self.error {
                put_log(&loaded.error_log, l, values);
            }
            if let Some(slot) = self.wall_time {
                values
                    .add(slot)
                    .write(0f32.to_bits() as usize as *mut c_void);
            }
        }
    }
}

/// `cuModuleLoadDataEx`
///
/// # Safety
/// `image` is a complete module image; `options`/`values` hold
/// `num_options` entries; `module` is writable.
#[no_mangle]
pub unsafe extern "C" fn cuModuleLoadDataEx(
    module: *mut Opaque,
    image: *const c_void,
    num_options: c_uint,
    options: *mut c_int,
    values: *mut *mut c_void,
) -> CUresult {
    entry("cuModuleLoadDataEx", || {
        // SAFETY: the caller's contract.
        let (kind, bytes) = unsafe { self::image(image) }?;
        // SAFETY: the caller's contract.
        let (opts, logs) = unsafe { jit_options(num_options, options, values) }?;
        // SAFETY: the caller's contract.
        unsafe { load(module, kind, bytes, opts, logs, values) }
    })
}

/// `cuModuleLoadData`
///
/// # Safety
/// `image` is a complete module image; `module` is writable.
#[no_mangle]
pub unsafe extern "C" fn cuModuleLoadData(module: *mut Opaque, image: *const c_void) -> CUresult {
    // SAFETY: same contract, no options.
    unsafe { cuModuleLoadDataEx(module, image, 0, std::ptr::null_mut(), std::ptr::null_mut()) }
}

/// `cuModuleLoadFatBinary`
///
/// # Safety
/// `fat` is a fat binary (or its wrapper); `module` is writable.
#[no_mangle]
pub unsafe extern "C" fn cuModuleLoadFatBinary(
    module: *mut Opaque,
    fat: *const c_void,
) -> CUresult {
    // SAFETY: same contract; the image's own magic says what it is.
    unsafe { cuModuleLoadData(module, fat) }
}

/// `cuModuleLoad`: the file is read by the shim and sent as an image.
///
/// # Safety
/// `fname` is a NUL-terminated path; `module` is writable.
#[no_mangle]
pub unsafe extern "C" fn cuModuleLoad(module: *mut Opaque, fname: *const c_char) -> CUresult {
    entry("cuModuleLoad", || {
        // SAFETY: the caller's contract.
        let path = unsafe { crate::ffi::c_string(fname) }.ok_or(CUDA_ERROR_INVALID_VALUE)?;
        let (kind, bytes) = read_image_file(&path)?;
        // SAFETY: no options, so no slots are written.
        unsafe {
            load(
                module,
                kind,
                &bytes,
                Vec::new(),
                Logs::default(),
                std::ptr::null_mut(),
            )
        }
    })
}

/// Reads a module image from a file: what it holds judged by its first
/// bytes, PTX cut at its NUL.
pub(crate) fn read_image_file(path: &str) -> CuResult<(ImageKind, Vec<u8>)> {
    let mut bytes = std::fs::read(path).map_err(|_| CUDA_ERROR_FILE_NOT_FOUND)?;
    let kind = kind_of(&bytes);
    match kind {
        ImageKind::Ptx => {
            if let Some(nul) = bytes.iter().position(|&b| b == 0) {
                bytes.truncate(nul);
            }
        }
        ImageKind::Fatbin => {
            let len = fatbin::image_len(&bytes).map_err(|_| CUDA_ERROR_INVALID_IMAGE)?;
            bytes.truncate(usize::try_from(len).map_err(|_| CUDA_ERROR_INVALID_IMAGE)?);
            fatbin::entries(&bytes).map_err(|_| CUDA_ERROR_INVALID_IMAGE)?;
        }
        ImageKind::Cubin => {}
    }
    Ok((kind, bytes))
}

/// Unloads a module (posted): its functions and globals go with it.
pub(crate) fn unload(module: Handle) -> CuResult {
    state::with(|s| s.forget_module(module));
    post(Request::CuModuleUnload(ModuleUnload { module }), &[])
}

/// The handle behind a `CUmodule` argument, if live.
pub(crate) fn module_handle(m: Opaque) -> CuResult<Handle> {
    let h = state::from_opaque(Kind::Module, m).ok_or(CUDA_ERROR_INVALID_HANDLE)?;
    if state::with(|s| s.modules.contains_key(&h)) {
        Ok(h)
    } else {
        Err(CUDA_ERROR_INVALID_HANDLE)
    }
}

/// `cuModuleUnload` (posted: its functions and globals go with it).
#[no_mangle]
pub extern "C" fn cuModuleUnload(hmod: Opaque) -> CUresult {
    entry("cuModuleUnload", || unload(module_handle(hmod)?))
}

/// `cuModuleGetFunction`: one round trip per name, which also brings the
/// kernel's parameter layout; later lookups of the name are local.
///
/// # Safety
/// `hfunc` is writable; `name` is NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn cuModuleGetFunction(
    hfunc: *mut Opaque,
    hmod: Opaque,
    name: *const c_char,
) -> CUresult {
    entry("cuModuleGetFunction", || {
        let module = module_handle(hmod)?;
        // SAFETY: the caller's contract.
        let name = unsafe { crate::ffi::c_string(name) }.ok_or(CUDA_ERROR_INVALID_VALUE)?;
        if hfunc.is_null() {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let id = function(module, name)?;
        // SAFETY: checked non-null; the caller's contract.
        unsafe { out(hfunc, state::to_opaque(Kind::Function, id)) }
    })
}

/// The kernel `name` of a live module: one round trip per name, which
/// also brings the parameter layout; later lookups are local.
pub(crate) fn function(module: Handle, name: String) -> CuResult<Handle> {
    let cached = state::with(|s| {
        s.modules
            .get(&module)
            .and_then(|m| m.functions.get(&name).copied())
    });
    if let Some(id) = cached {
        return Ok(id);
    }
    let id = client()?.new_handle();
    let req = Request::CuModuleGetFunction(GetFunction {
        id,
        module,
        name: name.clone(),
    });
    let info = match call(req, &[], &mut [])? {
        Response::CuModuleGetFunction(i) => i,
        r => return Err(unexpected(r)),
    };
    state::with(|s| {
        s.functions.insert(id, Function { module, info });
        if let Some(m) = s.modules.get_mut(&module) {
            m.functions.insert(name, id);
        }
    });
    Ok(id)
}

/// `cuModuleGetGlobal_v2`: either output may be NULL.
///
/// # Safety
/// `dptr` and `bytes` are NULL or writable; `name` is NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn cuModuleGetGlobal_v2(
    dptr: *mut CUdeviceptr,
    bytes: *mut usize,
    hmod: Opaque,
    name: *const c_char,
) -> CUresult {
    entry("cuModuleGetGlobal_v2", || {
        let module = module_handle(hmod)?;
        // SAFETY: the caller's contract.
        let name = unsafe { crate::ffi::c_string(name) }.ok_or(CUDA_ERROR_INVALID_VALUE)?;
        let (ptr, size) = global(module, name)?;
        // SAFETY: the caller's contract.
        unsafe {
            crate::ffi::write_opt(dptr, ptr);
            crate::ffi::write_opt(bytes, usize::try_from(size).unwrap_or(usize::MAX));
        }
        Ok(())
    })
}

/// A global of a live module, recorded as a device range: its address and
/// size.
pub(crate) fn global(module: Handle, name: String) -> CuResult<(u64, u64)> {
    let g = match call(
        Request::CuModuleGetGlobal(GetGlobal { module, name }),
        &[],
        &mut [],
    )? {
        Response::CuModuleGetGlobal(g) => g,
        r => return Err(unexpected(r)),
    };
    state::with(|s| {
        let ctx = s.modules.get(&module).map_or(0, |m| m.ctx);
        s.dev.insert(
            g.ptr,
            DevRange {
                len: g.size,
                ctx,
                module: Some(module),
            },
        );
    });
    Ok((g.ptr, g.size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_recognised_and_measured() {
        let ptx = c".version 8.0\n.target sm_80\n";
        // SAFETY: a live NUL-terminated string.
        let (k, b) = unsafe { image(ptx.as_ptr().cast()) }.unwrap_or((ImageKind::Cubin, &[]));
        assert_eq!(k, ImageKind::Ptx);
        assert_eq!(b, ptx.to_bytes());

        let mut fat = vec![0u8; 16 + 100];
        fat[..4].copy_from_slice(&fatbin::FATBIN_MAGIC.to_le_bytes());
        fat[4] = 1;
        fat[6..8].copy_from_slice(&16u16.to_le_bytes());
        fat[8..16].copy_from_slice(&100u64.to_le_bytes());
        // SAFETY: a live fat binary of the stated length.
        let (k, b) = unsafe { image(fat.as_ptr().cast()) }.unwrap_or((ImageKind::Ptx, &[]));
        assert_eq!((k, b.len()), (ImageKind::Fatbin, 116));

        let mut wrapper = [0u8; 24];
        wrapper[..4].copy_from_slice(&fatbin::WRAPPER_MAGIC.to_le_bytes());
        wrapper[4] = 1;
        wrapper[8..16].copy_from_slice(&(fat.as_ptr() as u64).to_le_bytes());
        // SAFETY: a live wrapper pointing at the fat binary above.
        let (k, b) = unsafe { image(wrapper.as_ptr().cast()) }.unwrap_or((ImageKind::Ptx, &[]));
        assert_eq!((k, b.len()), (ImageKind::Fatbin, 116));

        // An ELF64 header with one section header at 64, a section
        // reaching byte 300.
        let mut elf = vec![0u8; 300];
        elf[..4].copy_from_slice(&ELF_MAGIC);
        elf[4] = 2;
        elf[5] = 1;
        elf[0x28..0x30].copy_from_slice(&64u64.to_le_bytes());
        elf[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        elf[0x3c..0x3e].copy_from_slice(&1u16.to_le_bytes());
        elf[64 + 0x18..64 + 0x20].copy_from_slice(&200u64.to_le_bytes());
        elf[64 + 0x20..64 + 0x28].copy_from_slice(&100u64.to_le_bytes());
        // SAFETY: a live ELF image of 300 bytes.
        let (k, b) = unsafe { image(elf.as_ptr().cast()) }.unwrap_or((ImageKind::Ptx, &[]));
        assert_eq!((k, b.len()), (ImageKind::Cubin, 300));

        // A 32-bit ELF is refused.
        elf[4] = 1;
        assert_eq!(
            // SAFETY: as above.
            unsafe { image(elf.as_ptr().cast()) }.err(),
            Some(CUDA_ERROR_INVALID_IMAGE)
        );
        assert_eq!(kind_of(&fat), ImageKind::Fatbin);
        assert_eq!(kind_of(b".version"), ImageKind::Ptx);
    }
}
