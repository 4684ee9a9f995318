//! `cuLaunchKernel`, function attributes and occupancy queries.
//!
//! `kernelParams` is an array of pointers, one per parameter, with no
//! sizes: the shim packs the pointed-to bytes into one buffer using the
//! parameter layout the daemon returned with `cuModuleGetFunction`
//! (cached per function). The `extra` form already is such a buffer
//! (`CU_LAUNCH_PARAM_BUFFER_POINTER`/`SIZE`). Launches are posted.

use std::ffi::{c_int, c_uint, c_void};

use protocol::cuda::{
    DynamicSmem, FuncGetAttribute, FuncSetAttribute, FuncSetCacheConfig, FunctionInfo,
    LaunchKernel, OccupancyAvailableDynamicSmem, OccupancyMaxActiveBlocks,
    OccupancyMaxPotentialBlockSize, ParamInfo,
};
use protocol::limits::{MAX_KERNEL_PARAM_BYTES, MAX_OCCUPANCY_TABLE};
use protocol::opencl::Handle;
use protocol::{Request, Response};

use super::state::{self, Kind};
use super::types::*;
use super::{call, entry, out, post, read, stream_ref, unexpected, CuResult, NullStream};

/// Most key/value pairs read from an `extra` array before its END.
const MAX_EXTRA_PAIRS: usize = 16;

/// The handle behind a `CUfunction` argument. A `CUkernel` is taken too,
/// as the driver does: its function in the current context.
fn function_handle(f: Opaque) -> CuResult<Handle> {
    match state::from_opaque(Kind::Function, f) {
        Some(h) => Ok(h),
        None => {
            let k = super::library::kernel_handle(f).ok_or(CUDA_ERROR_INVALID_HANDLE)?;
            super::library::kernel_function(k)
        }
    }
}

/// The function behind a `CUfunction` (or `CUkernel`) argument and its
/// layout.
fn function(f: Opaque) -> CuResult<(Handle, FunctionInfo)> {
    let h = function_handle(f)?;
    let info = state::with(|s| s.functions.get(&h).map(|f| f.info.clone()))
        .ok_or(CUDA_ERROR_INVALID_HANDLE)?;
    Ok((h, info))
}

/// Packs one byte slice per parameter at its layout offset.
pub(crate) fn pack(layout: &[ParamInfo], args: &[&[u8]]) -> CuResult<Vec<u8>> {
    if layout.len() != args.len() {
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    let len = layout
        .iter()
        .map(|p| p.offset as usize + p.size as usize)
        .max()
        .unwrap_or(0);
    if len > MAX_KERNEL_PARAM_BYTES {
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    let mut buf = vec![0u8; len];
    for (p, a) in layout.iter().zip(args) {
        let at = p.offset as usize;
        buf.get_mut(at..at + a.len())
            .ok_or(CUDA_ERROR_INVALID_VALUE)?
            .copy_from_slice(a);
    }
    Ok(buf)
}

/// The packed parameter buffer of a launch.
///
/// # Safety
/// `kernel_params` is NULL or holds one readable pointer per parameter,
/// each to a value of the parameter's size; `extra` is NULL or an
/// END-terminated key/value array whose BUFFER_POINTER points at
/// `*BUFFER_SIZE` readable bytes.
unsafe fn params(
    info: &FunctionInfo,
    kernel_params: *mut *mut c_void,
    extra: *mut *mut c_void,
) -> CuResult<Vec<u8>> {
    match (kernel_params.is_null(), extra.is_null()) {
        (false, false) => Err(CUDA_ERROR_INVALID_VALUE),
        (false, true) => {
            let layout = info.params.as_deref().ok_or(CUDA_ERROR_INVALID_VALUE)?;
            // SAFETY: one pointer per parameter, by the caller's contract.
            let ptrs = unsafe { crate::ffi::slice_in(kernel_params.cast_const(), layout.len()) }
                .ok_or(CUDA_ERROR_INVALID_VALUE)?;
            let mut args = Vec::with_capacity(layout.len());
            for (p, &ptr) in layout.iter().zip(ptrs) {
                // SAFETY: each points at a value of the parameter's size.
                let a =
                    unsafe { crate::ffi::slice_in(ptr.cast::<u8>().cast_const(), p.size as usize) }
                        .ok_or(CUDA_ERROR_INVALID_VALUE)?;
                args.push(a);
            }
            pack(layout, &args)
        }
        (true, false) => {
            let (mut buf, mut size) = (None, None);
            for i in 0..MAX_EXTRA_PAIRS {
                // SAFETY: the array is END-terminated; we stop at END.
                let key = unsafe { extra.add(2 * i).read_unaligned() } as usize;
                if key == CU_LAUNCH_PARAM_END {
                    break;
                }
                // SAFETY: every key but END is followed by its value.
                let value = unsafe { extra.add(2 * i + 1).read_unaligned() };
                match key {
                    CU_LAUNCH_PARAM_BUFFER_POINTER => buf = Some(value),
                    CU_LAUNCH_PARAM_BUFFER_SIZE => {
                        // SAFETY: the value points at a `size_t`.
                        size = Some(unsafe { read(value.cast::<usize>()) }?)
                    }
                    _ => return Err(CUDA_ERROR_INVALID_VALUE),
                }
                if i + 1 == MAX_EXTRA_PAIRS {
                    return Err(CUDA_ERROR_INVALID_VALUE);
                }
            }
            let (Some(buf), Some(size)) = (buf, size) else {
                return Err(CUDA_ERROR_INVALID_VALUE);
            };
            if size > MAX_KERNEL_PARAM_BYTES {
                return Err(CUDA_ERROR_INVALID_VALUE);
            }
            // SAFETY: `buf` holds `size` bytes, by the caller's contract.
            let b = unsafe { crate::ffi::slice_in(buf.cast::<u8>().cast_const(), size) }
                .ok_or(CUDA_ERROR_INVALID_VALUE)?;
            Ok(b.to_vec())
        }
        (true, true) => match info.params.as_deref() {
            Some(l) if !l.is_empty() => Err(CUDA_ERROR_INVALID_VALUE),
            _ => Ok(Vec::new()),
        },
    }
}

#[allow(clippy::too_many_arguments)]
unsafe fn launch(
    f: Opaque,
    grid: [c_uint; 3],
    block: [c_uint; 3],
    shared_mem_bytes: c_uint,
    stream: Opaque,
    kernel_params: *mut *mut c_void,
    extra: *mut *mut c_void,
    null: NullStream,
) -> CuResult {
    let function = function_handle(f)?;
    if grid.contains(&0) || block.contains(&0) {
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    let stream = stream_ref(stream, null)?;
    // Packed under the records' lock, so that the layout is not copied
    // for every launch (this is the launch path's hot spot).
    let params = state::with(|s| {
        let info = &s
            .functions
            .get(&function)
            .ok_or(CUDA_ERROR_INVALID_HANDLE)?
            .info;
        // SAFETY: the caller's contract.
        unsafe { params(info, kernel_params, extra) }
    })?;
    post(
        Request::CuLaunchKernel(LaunchKernel {
            function,
            grid,
            block,
            shared_mem_bytes,
            stream,
            params,
        }),
        &[],
    )
}

macro_rules! launch_entries {
    ($( $name:ident, $null:expr; )*) => { $(
        /// `cuLaunchKernel` (posted; errors surface at the next
        /// synchronizing call).
        ///
        /// # Safety
        /// See the driver API: `kernelParams` or `extra` describe every
        /// parameter.
        #[no_mangle]
        #[allow(clippy::too_many_arguments)]
        pub unsafe extern "C" fn $name(
            f: Opaque,
            grid_x: c_uint,
            grid_y: c_uint,
            grid_z: c_uint,
            block_x: c_uint,
            block_y: c_uint,
            block_z: c_uint,
            shared_mem_bytes: c_uint,
            stream: Opaque,
            kernel_params: *mut *mut c_void,
            extra: *mut *mut c_void,
        ) -> CUresult {
            entry(stringify!($name), || {
                // SAFETY: the caller's contract.
                unsafe {
                    launch(
                        f,
                        [grid_x, grid_y, grid_z],
                        [block_x, block_y, block_z],
                        shared_mem_bytes,
                        stream,
                        kernel_params,
                        extra,
                        $null,
                    )
                }
            })
        }
    )* };
}

launch_entries! {
    cuLaunchKernel, NullStream::Legacy;
    cuLaunchKernel_ptsz, NullStream::PerThread;
}

/// `cuLaunchKernelEx`: a launch from a configuration. Launch attributes
/// (clusters, priorities, programmatic dependencies, ...) are not
/// forwarded: a configuration with any is `CUDA_ERROR_NOT_SUPPORTED`.
///
/// # Safety
/// `config` is NULL or readable; as `cuLaunchKernel` otherwise.
unsafe fn launch_ex(
    config: *const CUlaunchConfig,
    f: Opaque,
    kernel_params: *mut *mut c_void,
    extra: *mut *mut c_void,
    null: NullStream,
) -> CuResult {
    // SAFETY: the caller's contract.
    let c = unsafe { read(config) }?;
    if c.num_attrs != 0 {
        return Err(CUDA_ERROR_NOT_SUPPORTED);
    }
    // SAFETY: the caller's contract.
    unsafe {
        launch(
            f,
            c.grid,
            c.block,
            c.shared_mem_bytes,
            c.stream,
            kernel_params,
            extra,
            null,
        )
    }
}

/// `cuLaunchKernelEx` (posted).
///
/// # Safety
/// See [`launch_ex`].
#[no_mangle]
pub unsafe extern "C" fn cuLaunchKernelEx(
    config: *const CUlaunchConfig,
    f: Opaque,
    kernel_params: *mut *mut c_void,
    extra: *mut *mut c_void,
) -> CUresult {
    // SAFETY: the caller's contract.
    entry("cuLaunchKernelEx", || unsafe {
        launch_ex(config, f, kernel_params, extra, NullStream::Legacy)
    })
}

/// `cuLaunchKernelEx_ptsz` (posted).
///
/// # Safety
/// See [`launch_ex`].
#[no_mangle]
pub unsafe extern "C" fn cuLaunchKernelEx_ptsz(
    config: *const CUlaunchConfig,
    f: Opaque,
    kernel_params: *mut *mut c_void,
    extra: *mut *mut c_void,
) -> CUresult {
    // SAFETY: the caller's contract.
    entry("cuLaunchKernelEx_ptsz", || unsafe {
        launch_ex(config, f, kernel_params, extra, NullStream::PerThread)
    })
}

/// `cuFuncGetParamInfo`, from the cached layout.
///
/// # Safety
/// `offset` and `size` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuFuncGetParamInfo(
    f: Opaque,
    index: usize,
    offset: *mut usize,
    size: *mut usize,
) -> CUresult {
    entry("cuFuncGetParamInfo", || {
        let (_, info) = function(f)?;
        let layout = info.params.ok_or(CUDA_ERROR_NOT_SUPPORTED)?;
        let p = layout.get(index).ok_or(CUDA_ERROR_INVALID_VALUE)?;
        // SAFETY: the caller's contract.
        unsafe {
            out(offset, p.offset as usize)?;
            out(size, p.size as usize)
        }
    })
}

/// `cuFuncGetAttribute`
///
/// # Safety
/// `pi` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuFuncGetAttribute(pi: *mut c_int, attrib: c_int, f: Opaque) -> CUresult {
    entry("cuFuncGetAttribute", || {
        let (function, _) = function(f)?;
        if pi.is_null() {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let req = Request::CuFuncGetAttribute(FuncGetAttribute {
            function,
            attribute: attrib,
        });
        match call(req, &[], &mut [])? {
            // SAFETY: the caller's contract.
            Response::CuFuncGetAttribute(v) => unsafe { out(pi, v.value) },
            r => Err(unexpected(r)),
        }
    })
}

/// `cuFuncSetAttribute`
#[no_mangle]
pub extern "C" fn cuFuncSetAttribute(f: Opaque, attrib: c_int, value: c_int) -> CUresult {
    entry("cuFuncSetAttribute", || {
        let (function, _) = function(f)?;
        let req = Request::CuFuncSetAttribute(FuncSetAttribute {
            function,
            attribute: attrib,
            value,
        });
        match call(req, &[], &mut [])? {
            Response::CuFuncSetAttribute(_) => Ok(()),
            r => Err(unexpected(r)),
        }
    })
}

/// `cuFuncSetCacheConfig` (posted: a hint).
#[no_mangle]
pub extern "C" fn cuFuncSetCacheConfig(f: Opaque, config: c_int) -> CUresult {
    entry("cuFuncSetCacheConfig", || {
        let (function, _) = function(f)?;
        let config = u32::try_from(config).map_err(|_| CUDA_ERROR_INVALID_VALUE)?;
        post(
            Request::CuFuncSetCacheConfig(FuncSetCacheConfig { function, config }),
            &[],
        )
    })
}

fn max_active_blocks(
    num_blocks: *mut c_int,
    f: Opaque,
    block_size: c_int,
    dynamic_smem: usize,
    flags: c_uint,
) -> CuResult {
    let (function, _) = function(f)?;
    if num_blocks.is_null() {
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    let req = Request::CuOccupancyMaxActiveBlocks(OccupancyMaxActiveBlocks {
        function,
        block_size,
        dynamic_smem: dynamic_smem as u64,
        flags,
    });
    match call(req, &[], &mut [])? {
        // SAFETY: checked non-null; writable by the caller's contract.
        Response::CuOccupancyMaxActiveBlocks(v) => unsafe { out(num_blocks, v.value) },
        r => Err(unexpected(r)),
    }
}

/// `cuOccupancyMaxActiveBlocksPerMultiprocessor`
///
/// # Safety
/// `num_blocks` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuOccupancyMaxActiveBlocksPerMultiprocessor(
    num_blocks: *mut c_int,
    f: Opaque,
    block_size: c_int,
    dynamic_smem: usize,
) -> CUresult {
    entry("cuOccupancyMaxActiveBlocksPerMultiprocessor", || {
        max_active_blocks(num_blocks, f, block_size, dynamic_smem, 0)
    })
}

/// `cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags`
///
/// # Safety
/// `num_blocks` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(
    num_blocks: *mut c_int,
    f: Opaque,
    block_size: c_int,
    dynamic_smem: usize,
    flags: c_uint,
) -> CUresult {
    entry(
        "cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags",
        || max_active_blocks(num_blocks, f, block_size, dynamic_smem, flags),
    )
}

/// The program's block-size-to-shared-memory callback, tabulated per warp.
///
/// # Safety
/// `cb` is a function the program gave for this purpose.
unsafe fn tabulate(cb: CUoccupancyB2DSize, fixed: usize) -> DynamicSmem {
    match cb {
        None => DynamicSmem::Fixed(fixed as u64),
        Some(cb) => DynamicSmem::PerBlockSize(
            (1..=MAX_OCCUPANCY_TABLE as c_int)
                // SAFETY: the program's callback, called as documented.
                .map(|w| unsafe { cb(32 * w) } as u64)
                .collect(),
        ),
    }
}

/// # Safety
/// Outputs are NULL or writable; `cb` as in [`tabulate`].
unsafe fn potential_block_size(
    min_grid: *mut c_int,
    block: *mut c_int,
    f: Opaque,
    cb: CUoccupancyB2DSize,
    dynamic_smem: usize,
    limit: c_int,
    flags: c_uint,
) -> CuResult {
    let (function, _) = function(f)?;
    if min_grid.is_null() || block.is_null() {
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    let req = Request::CuOccupancyMaxPotentialBlockSize(OccupancyMaxPotentialBlockSize {
        function,
        // SAFETY: the caller's contract.
        dynamic_smem: unsafe { tabulate(cb, dynamic_smem) },
        block_size_limit: limit,
        flags,
    });
    match call(req, &[], &mut [])? {
        // SAFETY: checked non-null; writable by the caller's contract.
        Response::CuOccupancyMaxPotentialBlockSize(v) => unsafe {
            out(min_grid, v.min_grid_size)?;
            out(block, v.block_size)
        },
        r => Err(unexpected(r)),
    }
}

/// `cuOccupancyMaxPotentialBlockSize`
///
/// # Safety
/// Outputs are NULL or writable; `cb` is NULL or a valid callback.
#[no_mangle]
pub unsafe extern "C" fn cuOccupancyMaxPotentialBlockSize(
    min_grid: *mut c_int,
    block: *mut c_int,
    f: Opaque,
    cb: CUoccupancyB2DSize,
    dynamic_smem: usize,
    limit: c_int,
) -> CUresult {
    entry("cuOccupancyMaxPotentialBlockSize", || {
        // SAFETY: the caller's contract.
        unsafe { potential_block_size(min_grid, block, f, cb, dynamic_smem, limit, 0) }
    })
}

/// `cuOccupancyMaxPotentialBlockSizeWithFlags`
///
/// # Safety
/// Outputs are NULL or writable; `cb` is NULL or a valid callback.
#[no_mangle]
pub unsafe extern "C" fn cuOccupancyMaxPotentialBlockSizeWithFlags(
    min_grid: *mut c_int,
    block: *mut c_int,
    f: Opaque,
    cb: CUoccupancyB2DSize,
    dynamic_smem: usize,
    limit: c_int,
    flags: c_uint,
) -> CUresult {
    entry("cuOccupancyMaxPotentialBlockSizeWithFlags", || {
        // SAFETY: the caller's contract.
        unsafe { potential_block_size(min_grid, block, f, cb, dynamic_smem, limit, flags) }
    })
}

/// `cuOccupancyAvailableDynamicSMemPerBlock`
///
/// # Safety
/// `smem` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuOccupancyAvailableDynamicSMemPerBlock(
    smem: *mut usize,
    f: Opaque,
    num_blocks: c_int,
    block_size: c_int,
) -> CUresult {
    entry("cuOccupancyAvailableDynamicSMemPerBlock", || {
        let (function, _) = function(f)?;
        if smem.is_null() {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let req = Request::CuOccupancyAvailableDynamicSmem(OccupancyAvailableDynamicSmem {
            function,
            num_blocks,
            block_size,
        });
        match call(req, &[], &mut [])? {
            // SAFETY: checked non-null; the caller's contract.
            Response::CuOccupancyAvailableDynamicSmem(v) => unsafe {
                out(smem, usize::try_from(v.value).unwrap_or(usize::MAX))
            },
            r => Err(unexpected(r)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(offset: u32, size: u32) -> ParamInfo {
        ParamInfo { offset, size }
    }

    #[test]
    fn parameters_land_at_their_offsets() {
        let layout = [p(0, 4), p(8, 8), p(16, 2)];
        let a = 7u32.to_le_bytes();
        let b = 0x1122_3344_5566_7788u64.to_le_bytes();
        let c = 9u16.to_le_bytes();
        let buf = pack(&layout, &[&a, &b, &c]).unwrap_or_default();
        assert_eq!(buf.len(), 18);
        assert_eq!(&buf[0..4], &a);
        assert_eq!(&buf[4..8], &[0; 4], "padding stays zero");
        assert_eq!(&buf[8..16], &b);
        assert_eq!(&buf[16..18], &c);
        assert_eq!(pack(&layout, &[&a, &b]), Err(CUDA_ERROR_INVALID_VALUE));
        let huge = [p(MAX_KERNEL_PARAM_BYTES as u32, 4)];
        assert_eq!(pack(&huge, &[&a]), Err(CUDA_ERROR_INVALID_VALUE));
    }

    #[test]
    fn launch_forms_are_exclusive_and_checked() {
        let info = FunctionInfo {
            params: Some(vec![p(0, 4), p(8, 8)]),
        };
        let mut x = 5u32;
        let mut y = 6u64;
        let mut args: [*mut c_void; 2] = [(&raw mut x).cast(), (&raw mut y).cast()];
        let mut blob = [1u8, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
        let mut blob_len = blob.len();
        let mut extra: [*mut c_void; 5] = [
            CU_LAUNCH_PARAM_BUFFER_POINTER as *mut c_void,
            blob.as_mut_ptr().cast(),
            CU_LAUNCH_PARAM_BUFFER_SIZE as *mut c_void,
            (&raw mut blob_len).cast(),
            CU_LAUNCH_PARAM_END as *mut c_void,
        ];
        // SAFETY: the arrays above are live and shaped as the API requires.
        unsafe {
            let packed = params(&info, args.as_mut_ptr(), std::ptr::null_mut()).unwrap_or_default();
            assert_eq!(packed.len(), 16);
            assert_eq!(&packed[0..4], &5u32.to_le_bytes());
            assert_eq!(&packed[8..16], &6u64.to_le_bytes());
            let from_extra = params(&info, std::ptr::null_mut(), extra.as_mut_ptr());
            assert_eq!(from_extra.as_deref(), Ok(&blob[..]));
            assert_eq!(
                params(&info, args.as_mut_ptr(), extra.as_mut_ptr()),
                Err(CUDA_ERROR_INVALID_VALUE)
            );
            assert_eq!(
                params(&info, std::ptr::null_mut(), std::ptr::null_mut()),
                Err(CUDA_ERROR_INVALID_VALUE),
                "a kernel with parameters needs them"
            );
            let no_layout = FunctionInfo { params: None };
            assert_eq!(
                params(&no_layout, args.as_mut_ptr(), std::ptr::null_mut()),
                Err(CUDA_ERROR_INVALID_VALUE)
            );
            extra[2] = 0x7 as *mut c_void; // an unknown key
            assert_eq!(
                params(&info, std::ptr::null_mut(), extra.as_mut_ptr()),
                Err(CUDA_ERROR_INVALID_VALUE)
            );
        }
    }
}
