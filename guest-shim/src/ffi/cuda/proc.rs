//! `cuGetProcAddress[_v2]`: every export by its `cuda.h` name, the CUDA
//! version the caller compiled against and its default-stream mode.
//!
//! The table lists, per API name, the version each variant appeared in
//! (`cuMemAlloc` became `cuMemAlloc_v2` in 3.2) and the per-thread
//! default-stream variant where there is one (`_ptds`/`_ptsz`). A lookup
//! takes the newest variant not newer than the caller's version; if that
//! variant is one the shim does not provide (an old ABI such as the
//! 32-bit `cuMemAlloc`, or a newer one such as `cuCtxCreate_v4`'s
//! successors), the answer is "not found", never a function with another
//! signature. Unknown names are `CUDA_ERROR_NOT_FOUND` with
//! `CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND`, as the driver documents.

use std::ffi::{c_char, c_int, c_void};
use std::sync::OnceLock;

use super::context::*;
use super::device::*;
use super::errors::*;
use super::export::*;
use super::graph::*;
use super::launch::*;
use super::library::*;
use super::link::*;
use super::memop::*;
use super::memory::*;
use super::mempool::*;
use super::module::*;
use super::pitched::*;
use super::pointer::*;
use super::stream::*;
use super::types::*;

/// Calls `$m!` with the export table:
/// `"apiName" since symbol(arity) [ptds per_thread_symbol] [header name];`
/// (`header` names the declaration the ABI test compares with when
/// `cudarc`'s bindings lack the symbol.)
macro_rules! cuda_exports {
    ($m:ident) => {
        $m! {
            "cuGetErrorString" 6000 cuGetErrorString(_, _);
            "cuGetErrorName" 6000 cuGetErrorName(_, _);
            "cuInit" 2000 cuInit(_);
            "cuDriverGetVersion" 2020 cuDriverGetVersion(_);
            "cuDeviceGet" 2000 cuDeviceGet(_, _);
            "cuDeviceGetCount" 2000 cuDeviceGetCount(_);
            "cuDeviceGetName" 2000 cuDeviceGetName(_, _, _);
            "cuDeviceGetUuid" 9020 cuDeviceGetUuid(_, _);
            "cuDeviceGetUuid" 11040 cuDeviceGetUuid_v2(_, _);
            "cuDeviceTotalMem" 3020 cuDeviceTotalMem_v2(_, _);
            "cuDeviceGetAttribute" 2000 cuDeviceGetAttribute(_, _, _);
            "cuDeviceComputeCapability" 2000 cuDeviceComputeCapability(_, _, _);
            "cuDeviceGetProperties" 2000 cuDeviceGetProperties(_, _);
            "cuDeviceGetPCIBusId" 4010 cuDeviceGetPCIBusId(_, _, _);
            "cuDevicePrimaryCtxRetain" 7000 cuDevicePrimaryCtxRetain(_, _);
            "cuDevicePrimaryCtxRelease" 11000 cuDevicePrimaryCtxRelease_v2(_);
            "cuDevicePrimaryCtxSetFlags" 11000 cuDevicePrimaryCtxSetFlags_v2(_, _);
            "cuDevicePrimaryCtxGetState" 7000 cuDevicePrimaryCtxGetState(_, _, _);
            "cuDevicePrimaryCtxReset" 11000 cuDevicePrimaryCtxReset_v2(_);
            "cuCtxCreate" 3020 cuCtxCreate_v2(_, _, _);
            "cuCtxCreate" 11040 cuCtxCreate_v3(_, _, _, _, _);
            "cuCtxCreate" 12050 cuCtxCreate_v4(_, _, _, _) header cuCtxCreate_v4_header;
            "cuCtxDestroy" 4000 cuCtxDestroy_v2(_);
            "cuCtxPushCurrent" 4000 cuCtxPushCurrent_v2(_);
            "cuCtxPopCurrent" 4000 cuCtxPopCurrent_v2(_);
            "cuCtxSetCurrent" 4000 cuCtxSetCurrent(_);
            "cuCtxGetCurrent" 4000 cuCtxGetCurrent(_);
            "cuCtxGetDevice" 2000 cuCtxGetDevice(_);
            "cuCtxGetFlags" 7000 cuCtxGetFlags(_);
            "cuCtxGetApiVersion" 3020 cuCtxGetApiVersion(_, _);
            "cuCtxSynchronize" 2000 cuCtxSynchronize();
            "cuCtxGetLimit" 3010 cuCtxGetLimit(_, _);
            "cuCtxSetLimit" 3010 cuCtxSetLimit(_, _);
            "cuCtxGetStreamPriorityRange" 5050 cuCtxGetStreamPriorityRange(_, _);
            "cuModuleLoad" 2000 cuModuleLoad(_, _);
            "cuModuleLoadData" 2000 cuModuleLoadData(_, _);
            "cuModuleLoadDataEx" 2010 cuModuleLoadDataEx(_, _, _, _, _);
            "cuModuleLoadFatBinary" 2000 cuModuleLoadFatBinary(_, _);
            "cuModuleUnload" 2000 cuModuleUnload(_);
            "cuModuleGetFunction" 2000 cuModuleGetFunction(_, _, _);
            "cuModuleGetGlobal" 3020 cuModuleGetGlobal_v2(_, _, _, _);
            "cuModuleGetLoadingMode" 11070 cuModuleGetLoadingMode(_);
            "cuLibraryLoadData" 12000 cuLibraryLoadData(_, _, _, _, _, _, _, _);
            "cuLibraryLoadFromFile" 12000 cuLibraryLoadFromFile(_, _, _, _, _, _, _, _);
            "cuLibraryUnload" 12000 cuLibraryUnload(_);
            "cuLibraryGetKernel" 12000 cuLibraryGetKernel(_, _, _);
            "cuLibraryGetModule" 12000 cuLibraryGetModule(_, _);
            "cuLibraryGetGlobal" 12000 cuLibraryGetGlobal(_, _, _, _);
            "cuKernelGetFunction" 12000 cuKernelGetFunction(_, _);
            "cuKernelGetAttribute" 12000 cuKernelGetAttribute(_, _, _, _);
            "cuKernelSetAttribute" 12000 cuKernelSetAttribute(_, _, _, _);
            "cuKernelGetName" 12030 cuKernelGetName(_, _);
            "cuMemGetInfo" 3020 cuMemGetInfo_v2(_, _);
            "cuMemAlloc" 3020 cuMemAlloc_v2(_, _);
            "cuMemFree" 3020 cuMemFree_v2(_);
            "cuMemGetAddressRange" 3020 cuMemGetAddressRange_v2(_, _, _);
            "cuMemAllocHost" 3020 cuMemAllocHost_v2(_, _);
            "cuMemFreeHost" 2000 cuMemFreeHost(_);
            "cuMemHostAlloc" 2020 cuMemHostAlloc(_, _, _);
            "cuMemHostGetDevicePointer" 3020 cuMemHostGetDevicePointer_v2(_, _, _);
            "cuMemHostGetFlags" 2030 cuMemHostGetFlags(_, _);
            "cuMemHostRegister" 6050 cuMemHostRegister_v2(_, _, _);
            "cuMemHostUnregister" 4000 cuMemHostUnregister(_);
            "cuMemcpy" 4000 cuMemcpy(_, _, _) ptds cuMemcpy_ptds;
            "cuMemAllocPitch" 3020 cuMemAllocPitch_v2(_, _, _, _, _);
            "cuMemcpy2D" 3020 cuMemcpy2D_v2(_) ptds cuMemcpy2D_v2_ptds;
            "cuMemcpy2DUnaligned" 3020 cuMemcpy2DUnaligned_v2(_) ptds cuMemcpy2DUnaligned_v2_ptds;
            "cuMemcpy2DAsync" 3020 cuMemcpy2DAsync_v2(_, _) ptds cuMemcpy2DAsync_v2_ptsz;
            "cuMemcpy3D" 3020 cuMemcpy3D_v2(_) ptds cuMemcpy3D_v2_ptds;
            "cuMemcpy3DAsync" 3020 cuMemcpy3DAsync_v2(_, _) ptds cuMemcpy3DAsync_v2_ptsz;
            "cuMemcpyAsync" 4000 cuMemcpyAsync(_, _, _, _) ptds cuMemcpyAsync_ptsz;
            "cuMemcpyHtoD" 3020 cuMemcpyHtoD_v2(_, _, _) ptds cuMemcpyHtoD_v2_ptds;
            "cuMemcpyDtoH" 3020 cuMemcpyDtoH_v2(_, _, _) ptds cuMemcpyDtoH_v2_ptds;
            "cuMemcpyDtoD" 3020 cuMemcpyDtoD_v2(_, _, _) ptds cuMemcpyDtoD_v2_ptds;
            "cuMemcpyHtoDAsync" 3020 cuMemcpyHtoDAsync_v2(_, _, _, _) ptds cuMemcpyHtoDAsync_v2_ptsz;
            "cuMemcpyDtoHAsync" 3020 cuMemcpyDtoHAsync_v2(_, _, _, _) ptds cuMemcpyDtoHAsync_v2_ptsz;
            "cuMemcpyDtoDAsync" 3020 cuMemcpyDtoDAsync_v2(_, _, _, _) ptds cuMemcpyDtoDAsync_v2_ptsz;
            "cuMemsetD8" 3020 cuMemsetD8_v2(_, _, _) ptds cuMemsetD8_v2_ptds;
            "cuMemsetD16" 3020 cuMemsetD16_v2(_, _, _) ptds cuMemsetD16_v2_ptds;
            "cuMemsetD32" 3020 cuMemsetD32_v2(_, _, _) ptds cuMemsetD32_v2_ptds;
            "cuMemsetD8Async" 3020 cuMemsetD8Async(_, _, _, _) ptds cuMemsetD8Async_ptsz;
            "cuMemsetD16Async" 3020 cuMemsetD16Async(_, _, _, _) ptds cuMemsetD16Async_ptsz;
            "cuMemsetD32Async" 3020 cuMemsetD32Async(_, _, _, _) ptds cuMemsetD32Async_ptsz;
            "cuPointerGetAttribute" 4000 cuPointerGetAttribute(_, _, _);
            "cuPointerGetAttributes" 7000 cuPointerGetAttributes(_, _, _, _);
            "cuStreamCreate" 2000 cuStreamCreate(_, _);
            "cuStreamCreateWithPriority" 5050 cuStreamCreateWithPriority(_, _, _);
            "cuStreamGetPriority" 5050 cuStreamGetPriority(_, _) ptds cuStreamGetPriority_ptsz;
            "cuStreamGetFlags" 5050 cuStreamGetFlags(_, _) ptds cuStreamGetFlags_ptsz;
            "cuStreamGetCtx" 9020 cuStreamGetCtx(_, _) ptds cuStreamGetCtx_ptsz;
            "cuStreamWaitEvent" 3020 cuStreamWaitEvent(_, _, _) ptds cuStreamWaitEvent_ptsz;
            "cuStreamQuery" 2000 cuStreamQuery(_) ptds cuStreamQuery_ptsz;
            "cuStreamSynchronize" 2000 cuStreamSynchronize(_) ptds cuStreamSynchronize_ptsz;
            "cuStreamDestroy" 4000 cuStreamDestroy_v2(_);
            "cuStreamWaitValue32" 8000 cuStreamWaitValue32(_, _, _, _) header cuStreamWaitValue32_v1;
            "cuStreamWaitValue32" 11070 cuStreamWaitValue32_v2(_, _, _, _) ptds cuStreamWaitValue32_v2_ptsz;
            "cuStreamWaitValue64" 9000 cuStreamWaitValue64(_, _, _, _) header cuStreamWaitValue64_v1;
            "cuStreamWaitValue64" 11070 cuStreamWaitValue64_v2(_, _, _, _) ptds cuStreamWaitValue64_v2_ptsz;
            "cuStreamWriteValue32" 8000 cuStreamWriteValue32(_, _, _, _) header cuStreamWriteValue32_v1;
            "cuStreamWriteValue32" 11070 cuStreamWriteValue32_v2(_, _, _, _) ptds cuStreamWriteValue32_v2_ptsz;
            "cuStreamWriteValue64" 9000 cuStreamWriteValue64(_, _, _, _) header cuStreamWriteValue64_v1;
            "cuStreamWriteValue64" 11070 cuStreamWriteValue64_v2(_, _, _, _) ptds cuStreamWriteValue64_v2_ptsz;
            "cuStreamBatchMemOp" 8000 cuStreamBatchMemOp(_, _, _, _) header cuStreamBatchMemOp_v1;
            "cuStreamBatchMemOp" 11070 cuStreamBatchMemOp_v2(_, _, _, _) ptds cuStreamBatchMemOp_v2_ptsz;
            "cuStreamBeginCapture" 10010 cuStreamBeginCapture_v2(_, _) ptds cuStreamBeginCapture_v2_ptsz;
            "cuStreamEndCapture" 10000 cuStreamEndCapture(_, _) ptds cuStreamEndCapture_ptsz;
            "cuStreamIsCapturing" 10000 cuStreamIsCapturing(_, _) ptds cuStreamIsCapturing_ptsz;
            "cuStreamGetCaptureInfo" 10010 cuStreamGetCaptureInfo(_, _, _) ptds cuStreamGetCaptureInfo_ptsz header cuStreamGetCaptureInfo_v1;
            "cuStreamGetCaptureInfo" 11030 cuStreamGetCaptureInfo_v2(_, _, _, _, _, _) ptds cuStreamGetCaptureInfo_v2_ptsz;
            "cuStreamGetCaptureInfo" 12030 cuStreamGetCaptureInfo_v3(_, _, _, _, _, _, _) ptds cuStreamGetCaptureInfo_v3_ptsz;
            "cuThreadExchangeStreamCaptureMode" 10010 cuThreadExchangeStreamCaptureMode(_);
            "cuGraphInstantiateWithFlags" 11040 cuGraphInstantiateWithFlags(_, _, _);
            "cuGraphInstantiate" 12000 cuGraphInstantiateWithFlags(_, _, _);
            "cuGraphLaunch" 10000 cuGraphLaunch(_, _) ptds cuGraphLaunch_ptsz;
            "cuGraphDestroy" 10000 cuGraphDestroy(_);
            "cuGraphExecDestroy" 10000 cuGraphExecDestroy(_);
            "cuMemAllocAsync" 11020 cuMemAllocAsync(_, _, _) ptds cuMemAllocAsync_ptsz;
            "cuMemFreeAsync" 11020 cuMemFreeAsync(_, _) ptds cuMemFreeAsync_ptsz;
            "cuEventCreate" 2000 cuEventCreate(_, _);
            "cuEventRecord" 2000 cuEventRecord(_, _) ptds cuEventRecord_ptsz;
            "cuEventRecordWithFlags" 11010 cuEventRecordWithFlags(_, _, _) ptds cuEventRecordWithFlags_ptsz;
            "cuEventQuery" 2000 cuEventQuery(_);
            "cuEventSynchronize" 2000 cuEventSynchronize(_);
            "cuEventDestroy" 4000 cuEventDestroy_v2(_);
            "cuEventElapsedTime" 2000 cuEventElapsedTime(_, _, _);
            "cuEventElapsedTime" 12080 cuEventElapsedTime_v2(_, _, _) header cuEventElapsedTime_v2_header;
            "cuFuncGetAttribute" 2020 cuFuncGetAttribute(_, _, _);
            "cuFuncSetAttribute" 9000 cuFuncSetAttribute(_, _, _);
            "cuFuncSetCacheConfig" 3000 cuFuncSetCacheConfig(_, _);
            "cuFuncGetParamInfo" 12040 cuFuncGetParamInfo(_, _, _, _);
            "cuLaunchKernel" 4000 cuLaunchKernel(_, _, _, _, _, _, _, _, _, _, _) ptds cuLaunchKernel_ptsz;
            "cuLaunchKernelEx" 11060 cuLaunchKernelEx(_, _, _, _) ptds cuLaunchKernelEx_ptsz;
            "cuOccupancyMaxActiveBlocksPerMultiprocessor" 6050 cuOccupancyMaxActiveBlocksPerMultiprocessor(_, _, _, _);
            "cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags" 7000 cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(_, _, _, _, _);
            "cuOccupancyMaxPotentialBlockSize" 6050 cuOccupancyMaxPotentialBlockSize(_, _, _, _, _, _);
            "cuOccupancyMaxPotentialBlockSizeWithFlags" 7000 cuOccupancyMaxPotentialBlockSizeWithFlags(_, _, _, _, _, _, _);
            "cuOccupancyAvailableDynamicSMemPerBlock" 10020 cuOccupancyAvailableDynamicSMemPerBlock(_, _, _, _);
            "cuLinkCreate" 6050 cuLinkCreate_v2(_, _, _, _);
            "cuLinkAddData" 6050 cuLinkAddData_v2(_, _, _, _, _, _, _, _);
            "cuLinkAddFile" 6050 cuLinkAddFile_v2(_, _, _, _, _, _);
            "cuLinkComplete" 5050 cuLinkComplete(_, _, _);
            "cuLinkDestroy" 5050 cuLinkDestroy(_);
            "cuGetProcAddress" 11030 cuGetProcAddress(_, _, _, _) header cuGetProcAddress_v1;
            "cuGetProcAddress" 12000 cuGetProcAddress_v2(_, _, _, _, _);
            "cuGetExportTable" 3000 cuGetExportTable(_, _);
        }
    };
}

/// Variants of exported API names that the shim does not provide, with the
/// version each appeared in: the pre-3.2 (32-bit) and pre-4.0 ABIs, and the
/// pre-11.0 primary-context and pre-6.5 host-register semantics. A lookup
/// that lands on one of them is "not found".
const NOT_PROVIDED: &[(&str, c_int)] = &[
    ("cuDeviceTotalMem", 2000),
    ("cuCtxCreate", 2000),
    ("cuCtxDestroy", 2000),
    ("cuCtxPushCurrent", 2000),
    ("cuCtxPopCurrent", 2000),
    ("cuModuleGetGlobal", 2000),
    ("cuMemGetInfo", 2000),
    ("cuMemAlloc", 2000),
    ("cuMemFree", 2000),
    ("cuMemGetAddressRange", 2000),
    ("cuMemAllocHost", 2000),
    ("cuMemHostGetDevicePointer", 2020),
    ("cuMemcpyHtoD", 2000),
    ("cuMemcpyDtoH", 2000),
    ("cuMemcpyDtoD", 2000),
    ("cuMemcpyHtoDAsync", 2000),
    ("cuMemcpyDtoHAsync", 2000),
    ("cuMemcpyDtoDAsync", 3000),
    ("cuMemsetD8", 2000),
    ("cuMemsetD16", 2000),
    ("cuMemsetD32", 2000),
    ("cuStreamDestroy", 2000),
    ("cuEventDestroy", 2000),
    ("cuMemHostRegister", 4000),
    ("cuDevicePrimaryCtxRelease", 7000),
    ("cuDevicePrimaryCtxSetFlags", 7000),
    ("cuDevicePrimaryCtxReset", 7000),
    ("cuStreamBeginCapture", 10000),
    ("cuGraphInstantiate", 10000),
    ("cuMemAllocPitch", 2000),
    ("cuMemcpy2D", 2000),
    ("cuMemcpy2DUnaligned", 2000),
    ("cuMemcpy2DAsync", 2000),
    ("cuMemcpy3D", 2000),
    ("cuMemcpy3DAsync", 2000),
    ("cuLinkCreate", 5050),
    ("cuLinkAddData", 5050),
    ("cuLinkAddFile", 5050),
];

/// One exported variant of an API name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Export {
    pub name: &'static str,
    pub symbol: &'static str,
    pub since: c_int,
    pub addr: usize,
    /// The per-thread default-stream variant, if any: (symbol, address).
    pub ptds: Option<(&'static str, usize)>,
}

macro_rules! table {
    ($( $name:literal $since:literal $sym:ident ( $($a:tt),* ) $( ptds $pt:ident )? $( header $h:ident )? ; )*) => {
        fn build() -> Vec<Export> {
            vec![$(
                Export {
                    name: $name,
                    symbol: stringify!($sym),
                    since: $since,
                    addr: $sym as *const () as usize,
                    ptds: None $( .or(Some((stringify!($pt), $pt as *const () as usize))) )?,
                },
            )*]
        }
    };
}
cuda_exports!(table);

/// Every exported variant.
pub(crate) fn exports() -> &'static [Export] {
    static TABLE: OnceLock<Vec<Export>> = OnceLock::new();
    TABLE.get_or_init(build)
}

/// Resolves `name` for a caller built against `version` with `flags`.
/// Errors carry the result and the symbol status.
pub(crate) fn resolve(name: &str, version: c_int, flags: u64) -> Result<usize, (CUresult, c_int)> {
    let known = CU_GET_PROC_ADDRESS_LEGACY_STREAM | CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM;
    if flags & !known != 0 {
        return Err((
            CUDA_ERROR_INVALID_VALUE,
            CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND,
        ));
    }
    let not_found = (CUDA_ERROR_NOT_FOUND, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
    let provided = exports()
        .iter()
        .filter(|e| e.name == name)
        .map(|e| (e.since, Some(e)));
    let missing = NOT_PROVIDED
        .iter()
        .filter(|(n, _)| *n == name)
        .map(|&(_, since)| (since, None));
    let variants: Vec<(c_int, Option<&Export>)> = provided.chain(missing).collect();
    if variants.is_empty() {
        return Err(not_found);
    }
    let best = variants
        .iter()
        .filter(|(since, _)| *since <= version)
        .max_by_key(|(since, _)| *since)
        .ok_or((
            CUDA_ERROR_NOT_FOUND,
            CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT,
        ))?;
    let e = best.1.ok_or(not_found)?;
    let per_thread = flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM != 0;
    Ok(match e.ptds {
        Some((_, addr)) if per_thread => addr,
        _ => e.addr,
    })
}

/// The lookup behind both entry points.
///
/// # Safety
/// `symbol` is NULL or NUL-terminated; `pfn` and `status` are NULL or
/// writable.
unsafe fn get_proc(
    symbol: *const c_char,
    pfn: *mut *mut c_void,
    version: c_int,
    flags: u64,
    status: *mut c_int,
) -> CUresult {
    // SAFETY: the caller's contract.
    let name = unsafe { crate::ffi::c_string(symbol) };
    let r = match name {
        Some(n) if !pfn.is_null() => resolve(&n, version, flags),
        _ => Err((
            CUDA_ERROR_INVALID_VALUE,
            CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND,
        )),
    };
    let (addr, rc, st) = match r {
        Ok(a) => (a, CUDA_SUCCESS, CU_GET_PROC_ADDRESS_SUCCESS),
        Err((rc, st)) => (0, rc, st),
    };
    // SAFETY: the caller's contract.
    unsafe {
        crate::ffi::write_opt(pfn, addr as *mut c_void);
        crate::ffi::write_opt(status, st);
    }
    rc
}

/// `cuGetProcAddress_v2`
///
/// # Safety
/// `symbol` is NUL-terminated; `pfn` and `symbol_status` are NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn cuGetProcAddress_v2(
    symbol: *const c_char,
    pfn: *mut *mut c_void,
    cuda_version: c_int,
    flags: u64,
    symbol_status: *mut CUdriverProcAddressQueryResult,
) -> CUresult {
    let r = crate::ffi::guard("cuGetProcAddress_v2", Err(CUDA_ERROR_UNKNOWN), || {
        // SAFETY: the caller's contract.
        Ok(unsafe { get_proc(symbol, pfn, cuda_version, flags, symbol_status) })
    });
    r.unwrap_or_else(|e| e)
}

/// `cuGetProcAddress` (CUDA 11.3 form, without the status).
///
/// # Safety
/// `symbol` is NUL-terminated; `pfn` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuGetProcAddress(
    symbol: *const c_char,
    pfn: *mut *mut c_void,
    cuda_version: c_int,
    flags: u64,
) -> CUresult {
    // SAFETY: same contract, no status.
    unsafe { cuGetProcAddress_v2(symbol, pfn, cuda_version, flags, std::ptr::null_mut()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Size and alignment of a signature's parameters and result.
    trait Shape {
        fn shape() -> Vec<(usize, usize)>;
    }

    macro_rules! shapes {
        ($( ($($a:ident),*) )*) => { $(
            impl<R, $($a),*> Shape for unsafe extern "C" fn($($a),*) -> R {
                fn shape() -> Vec<(usize, usize)> {
                    vec![(size_of::<R>(), align_of::<R>()) $(, (size_of::<$a>(), align_of::<$a>()))*]
                }
            }
            impl<R, $($a),*> Shape for unsafe fn($($a),*) -> R {
                fn shape() -> Vec<(usize, usize)> {
                    vec![(size_of::<R>(), align_of::<R>()) $(, (size_of::<$a>(), align_of::<$a>()))*]
                }
            }
        )* };
    }
    shapes! {
        () (A) (A, B) (A, B, C) (A, B, C, D) (A, B, C, D, E) (A, B, C, D, E, F)
        (A, B, C, D, E, F, G) (A, B, C, D, E, F, G, H) (A, B, C, D, E, F, G, H, I)
        (A, B, C, D, E, F, G, H, I, J) (A, B, C, D, E, F, G, H, I, J, K)
    }

    fn shape_of<F: Shape>(_: F) -> Vec<(usize, usize)> {
        F::shape()
    }

    /// `cuGetProcAddress` as CUDA 11.3's `cuda.h` declared it (12.x keeps
    /// the symbol but declares only `_v2`).
    #[allow(non_snake_case)]
    unsafe fn cuGetProcAddress_v1(
        _symbol: *const c_char,
        _pfn: *mut *mut c_void,
        _version: c_int,
        _flags: u64,
    ) -> CUresult {
        CUDA_ERROR_NOT_SUPPORTED
    }

    /// `cuCtxCreate_v4` as CUDA 12.5's `cuda.h` declares it (newer than the
    /// pinned bindings).
    #[allow(non_snake_case)]
    unsafe fn cuCtxCreate_v4_header(
        _pctx: *mut Opaque,
        _params: *mut CUctxCreateParams,
        _flags: std::ffi::c_uint,
        _dev: CUdevice,
    ) -> CUresult {
        CUDA_ERROR_NOT_SUPPORTED
    }

    /// `cuStreamGetCaptureInfo` as CUDA 10.1's `cuda.h` declared it (12.x
    /// keeps the symbol but declares only `_v2` and `_v3`).
    #[allow(non_snake_case)]
    unsafe fn cuStreamGetCaptureInfo_v1(
        _stream: Opaque,
        _status: *mut std::ffi::c_uint,
        _id: *mut u64,
    ) -> CUresult {
        CUDA_ERROR_NOT_SUPPORTED
    }

    /// The CUDA 8 and 9 stream memory operations, whose symbols 12.x keeps
    /// but declares only as `_v2` (the same signatures).
    #[allow(non_snake_case)]
    unsafe fn cuStreamWaitValue32_v1(
        _s: Opaque,
        _a: u64,
        _v: u32,
        _f: std::ffi::c_uint,
    ) -> CUresult {
        CUDA_ERROR_NOT_SUPPORTED
    }
    #[allow(non_snake_case)]
    unsafe fn cuStreamWriteValue32_v1(
        _s: Opaque,
        _a: u64,
        _v: u32,
        _f: std::ffi::c_uint,
    ) -> CUresult {
        CUDA_ERROR_NOT_SUPPORTED
    }
    #[allow(non_snake_case)]
    unsafe fn cuStreamWaitValue64_v1(
        _s: Opaque,
        _a: u64,
        _v: u64,
        _f: std::ffi::c_uint,
    ) -> CUresult {
        CUDA_ERROR_NOT_SUPPORTED
    }
    #[allow(non_snake_case)]
    unsafe fn cuStreamWriteValue64_v1(
        _s: Opaque,
        _a: u64,
        _v: u64,
        _f: std::ffi::c_uint,
    ) -> CUresult {
        CUDA_ERROR_NOT_SUPPORTED
    }
    #[allow(non_snake_case)]
    unsafe fn cuStreamBatchMemOp_v1(
        _s: Opaque,
        _n: std::ffi::c_uint,
        _p: *mut c_void,
        _f: std::ffi::c_uint,
    ) -> CUresult {
        CUDA_ERROR_NOT_SUPPORTED
    }

    /// `cuEventElapsedTime_v2` as CUDA 12.8's `cuda.h` declares it.
    #[allow(non_snake_case)]
    unsafe fn cuEventElapsedTime_v2_header(
        _ms: *mut f32,
        _start: Opaque,
        _end: Opaque,
    ) -> CUresult {
        CUDA_ERROR_NOT_SUPPORTED
    }

    macro_rules! header_of {
        ($s:ident) => {
            cudarc::driver::sys::$s
        };
        ($s:ident, $h:ident) => {
            $h
        };
    }

    macro_rules! check_abi {
        ($( $name:literal $since:literal $sym:ident ( $($a:tt),* ) $( ptds $pt:ident )? $( header $h:ident )? ; )*) => {{
            let mut checked = 0;
            $(
                let header: unsafe fn($($a),*) -> _ = header_of!($sym $(, $h)?);
                let as_ptr = |f: unsafe extern "C" fn($($a),*) -> _| f;
                assert_eq!(shape_of(as_ptr($sym)), shape_of(header), "{} differs from cuda.h", stringify!($sym));
                $(
                    assert_eq!(shape_of(as_ptr($pt)), shape_of(header), "{} differs from cuda.h", stringify!($pt));
                )?
                checked += 1;
            )*
            checked
        }};
    }

    #[test]
    fn every_export_matches_the_header_signature() {
        let n = cuda_exports!(check_abi);
        assert_eq!(n, exports().len());
    }

    #[test]
    fn every_export_resolves_by_name_version_and_stream_mode() {
        for e in exports() {
            assert_eq!(resolve(e.name, e.since, 0), Ok(e.addr), "{}", e.symbol);
            let newest = exports()
                .iter()
                .filter(|x| x.name == e.name)
                .max_by_key(|x| x.since)
                .map(|x| x.addr);
            assert_eq!(resolve(e.name, 99999, 0).ok(), newest, "{}", e.name);
            let pt = resolve(
                e.name,
                e.since,
                CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM,
            );
            assert_eq!(pt, Ok(e.ptds.map_or(e.addr, |(_, a)| a)), "{}", e.symbol);
            assert_eq!(
                resolve(e.name, e.since, CU_GET_PROC_ADDRESS_LEGACY_STREAM),
                Ok(e.addr)
            );
        }
    }

    #[test]
    fn lookups_that_would_give_another_abi_are_not_found() {
        let not_found = Err((CUDA_ERROR_NOT_FOUND, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND));
        assert_eq!(resolve("cuMemAlloc", 2000, 0), not_found, "32-bit ABI");
        assert_eq!(
            resolve("cuMemAlloc_v2", 12000, 0),
            not_found,
            "not an API name"
        );
        assert_eq!(resolve("cuNoSuchFunction", 12000, 0), not_found);
        assert_eq!(
            resolve("cuFuncGetParamInfo", 12000, 0),
            Err((
                CUDA_ERROR_NOT_FOUND,
                CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT
            ))
        );
        assert_eq!(
            resolve("cuInit", 12000, 1 << 7).map_err(|e| e.0),
            Err(CUDA_ERROR_INVALID_VALUE)
        );
        assert_eq!(
            resolve("cuCtxCreate", 12000, 0),
            Ok(cuCtxCreate_v3 as *const () as usize),
            "newest variant not newer than the caller"
        );
    }

    #[test]
    fn the_c_entry_points_report_status() {
        let mut pfn: *mut c_void = std::ptr::null_mut();
        let mut status = -1;
        // SAFETY: literal strings and live locals.
        unsafe {
            let rc = cuGetProcAddress_v2(
                c"cuLaunchKernel".as_ptr(),
                &mut pfn,
                12000,
                CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM,
                &mut status,
            );
            assert_eq!((rc, status), (CUDA_SUCCESS, CU_GET_PROC_ADDRESS_SUCCESS));
            assert_eq!(pfn as usize, cuLaunchKernel_ptsz as *const () as usize);
            let rc = cuGetProcAddress_v2(c"cuBogus".as_ptr(), &mut pfn, 12000, 0, &mut status);
            assert_eq!(rc, CUDA_ERROR_NOT_FOUND);
            assert_eq!(status, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
            assert!(pfn.is_null(), "never a pointer for an unknown symbol");
            assert_eq!(
                cuGetProcAddress(c"cuInit".as_ptr(), &mut pfn, 12000, 0),
                CUDA_SUCCESS
            );
            assert_eq!(pfn as usize, cuInit as *const () as usize);
        }
    }
}
