//! `cuGetErrorName` and `cuGetErrorString`, answered by the shim alone.
//!
//! The table lists every `CUresult` of CUDA 12.4 (the API level the
//! workspace's `cudarc` bindings are pinned to) with its `cuda.h` name; the
//! unit test checks each number against that bindgen output of `cuda.h`
//! (`cudarc::driver::sys::CUresult`).

use std::ffi::{c_char, CStr};

use super::types::*;

/// Calls `$m!` with the table: `NAME = number, "description";`.
macro_rules! cu_results {
    ($m:ident) => {
        $m! {
            CUDA_SUCCESS = 0, c"no error";
            CUDA_ERROR_INVALID_VALUE = 1, c"invalid argument";
            CUDA_ERROR_OUT_OF_MEMORY = 2, c"out of memory";
            CUDA_ERROR_NOT_INITIALIZED = 3, c"initialization error";
            CUDA_ERROR_DEINITIALIZED = 4, c"driver shutting down";
            CUDA_ERROR_PROFILER_DISABLED = 5, c"profiler disabled while using external profiling tool";
            CUDA_ERROR_PROFILER_NOT_INITIALIZED = 6, c"profiler not initialized: call cudaProfilerInitialize()";
            CUDA_ERROR_PROFILER_ALREADY_STARTED = 7, c"profiler already started";
            CUDA_ERROR_PROFILER_ALREADY_STOPPED = 8, c"profiler already stopped";
            CUDA_ERROR_STUB_LIBRARY = 34, c"CUDA driver is a stub library";
            CUDA_ERROR_DEVICE_UNAVAILABLE = 46, c"CUDA-capable device(s) is/are busy or unavailable";
            CUDA_ERROR_NO_DEVICE = 100, c"no CUDA-capable device is detected";
            CUDA_ERROR_INVALID_DEVICE = 101, c"invalid device ordinal";
            CUDA_ERROR_DEVICE_NOT_LICENSED = 102, c"device doesn't have valid Grid license";
            CUDA_ERROR_INVALID_IMAGE = 200, c"device kernel image is invalid";
            CUDA_ERROR_INVALID_CONTEXT = 201, c"invalid device context";
            CUDA_ERROR_CONTEXT_ALREADY_CURRENT = 202, c"context already current";
            CUDA_ERROR_MAP_FAILED = 205, c"mapping of buffer object failed";
            CUDA_ERROR_UNMAP_FAILED = 206, c"unmapping of buffer object failed";
            CUDA_ERROR_ARRAY_IS_MAPPED = 207, c"array is mapped";
            CUDA_ERROR_ALREADY_MAPPED = 208, c"resource already mapped";
            CUDA_ERROR_NO_BINARY_FOR_GPU = 209, c"no kernel image is available for execution on the device";
            CUDA_ERROR_ALREADY_ACQUIRED = 210, c"resource already acquired";
            CUDA_ERROR_NOT_MAPPED = 211, c"resource not mapped";
            CUDA_ERROR_NOT_MAPPED_AS_ARRAY = 212, c"resource not mapped as array";
            CUDA_ERROR_NOT_MAPPED_AS_POINTER = 213, c"resource not mapped as pointer";
            CUDA_ERROR_ECC_UNCORRECTABLE = 214, c"uncorrectable ECC error encountered";
            CUDA_ERROR_UNSUPPORTED_LIMIT = 215, c"limit is not supported on this architecture";
            CUDA_ERROR_CONTEXT_ALREADY_IN_USE = 216, c"exclusive-thread device already in use by a different thread";
            CUDA_ERROR_PEER_ACCESS_UNSUPPORTED = 217, c"peer access is not supported between these two devices";
            CUDA_ERROR_INVALID_PTX = 218, c"a PTX JIT compilation failed";
            CUDA_ERROR_INVALID_GRAPHICS_CONTEXT = 219, c"invalid OpenGL or DirectX context";
            CUDA_ERROR_NVLINK_UNCORRECTABLE = 220, c"uncorrectable NVLink error detected during the execution";
            CUDA_ERROR_JIT_COMPILER_NOT_FOUND = 221, c"PTX JIT compiler library not found";
            CUDA_ERROR_UNSUPPORTED_PTX_VERSION = 222, c"the provided PTX was compiled with an unsupported toolchain.";
            CUDA_ERROR_JIT_COMPILATION_DISABLED = 223, c"PTX JIT compilation was disabled";
            CUDA_ERROR_UNSUPPORTED_EXEC_AFFINITY = 224, c"the provided execution affinity is not supported";
            CUDA_ERROR_UNSUPPORTED_DEVSIDE_SYNC = 225, c"the provided PTX contains unsupported call to cudaDeviceSynchronize";
            CUDA_ERROR_INVALID_SOURCE = 300, c"device kernel image is invalid";
            CUDA_ERROR_FILE_NOT_FOUND = 301, c"file not found";
            CUDA_ERROR_SHARED_OBJECT_SYMBOL_NOT_FOUND = 302, c"shared object symbol not found";
            CUDA_ERROR_SHARED_OBJECT_INIT_FAILED = 303, c"shared object initialization failed";
            CUDA_ERROR_OPERATING_SYSTEM = 304, c"OS call failed or operation not supported on this OS";
            CUDA_ERROR_INVALID_HANDLE = 400, c"invalid resource handle";
            CUDA_ERROR_ILLEGAL_STATE = 401, c"the operation cannot be performed in the present state";
            CUDA_ERROR_LOSSY_QUERY = 402, c"attempted introspection would be semantically lossy";
            CUDA_ERROR_NOT_FOUND = 500, c"named symbol not found";
            CUDA_ERROR_NOT_READY = 600, c"device not ready";
            CUDA_ERROR_ILLEGAL_ADDRESS = 700, c"an illegal memory access was encountered";
            CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES = 701, c"too many resources requested for launch";
            CUDA_ERROR_LAUNCH_TIMEOUT = 702, c"the launch timed out and was terminated";
            CUDA_ERROR_LAUNCH_INCOMPATIBLE_TEXTURING = 703, c"launch uses incompatible texturing mode";
            CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED = 704, c"peer access is already enabled";
            CUDA_ERROR_PEER_ACCESS_NOT_ENABLED = 705, c"peer access has not been enabled";
            CUDA_ERROR_PRIMARY_CONTEXT_ACTIVE = 708, c"cannot set while device is active in this process";
            CUDA_ERROR_CONTEXT_IS_DESTROYED = 709, c"context is destroyed";
            CUDA_ERROR_ASSERT = 710, c"device-side assert triggered";
            CUDA_ERROR_TOO_MANY_PEERS = 711, c"peer mapping resources exhausted";
            CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED = 712, c"part or all of the requested memory range is already mapped";
            CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED = 713, c"pointer does not correspond to a registered memory region";
            CUDA_ERROR_HARDWARE_STACK_ERROR = 714, c"hardware stack error";
            CUDA_ERROR_ILLEGAL_INSTRUCTION = 715, c"an illegal instruction was encountered";
            CUDA_ERROR_MISALIGNED_ADDRESS = 716, c"misaligned address";
            CUDA_ERROR_INVALID_ADDRESS_SPACE = 717, c"operation not supported on global/shared address space";
            CUDA_ERROR_INVALID_PC = 718, c"invalid program counter";
            CUDA_ERROR_LAUNCH_FAILED = 719, c"unspecified launch failure";
            CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE = 720, c"too many blocks in cooperative launch";
            CUDA_ERROR_NOT_PERMITTED = 800, c"operation not permitted";
            CUDA_ERROR_NOT_SUPPORTED = 801, c"operation not supported";
            CUDA_ERROR_SYSTEM_NOT_READY = 802, c"system not yet initialized";
            CUDA_ERROR_SYSTEM_DRIVER_MISMATCH = 803, c"system has unsupported display driver / cuda driver combination";
            CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE = 804, c"forward compatibility was attempted on non supported HW";
            CUDA_ERROR_MPS_CONNECTION_FAILED = 805, c"MPS client failed to connect to the MPS control daemon or the MPS server";
            CUDA_ERROR_MPS_RPC_FAILURE = 806, c"the remote procedural call between the MPS server and the MPS client failed";
            CUDA_ERROR_MPS_SERVER_NOT_READY = 807, c"MPS server is not ready to accept new MPS client requests";
            CUDA_ERROR_MPS_MAX_CLIENTS_REACHED = 808, c"the hardware resources required to create MPS client have been exhausted";
            CUDA_ERROR_MPS_MAX_CONNECTIONS_REACHED = 809, c"the hardware resources required to support device connections have been exhausted";
            CUDA_ERROR_MPS_CLIENT_TERMINATED = 810, c"the MPS client has been terminated by the server";
            CUDA_ERROR_CDP_NOT_SUPPORTED = 811, c"is using CUDA Dynamic Parallelism, but the current configuration, like MPS, does not support it";
            CUDA_ERROR_CDP_VERSION_MISMATCH = 812, c"unsupported interaction between different versions of CUDA Dynamic Parallelism";
            CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED = 900, c"operation not permitted when stream is capturing";
            CUDA_ERROR_STREAM_CAPTURE_INVALIDATED = 901, c"operation failed due to a previous error during capture";
            CUDA_ERROR_STREAM_CAPTURE_MERGE = 902, c"operation would result in a merge of separate capture sequences";
            CUDA_ERROR_STREAM_CAPTURE_UNMATCHED = 903, c"capture was not ended in the same stream as it began";
            CUDA_ERROR_STREAM_CAPTURE_UNJOINED = 904, c"capturing stream has unjoined work";
            CUDA_ERROR_STREAM_CAPTURE_ISOLATION = 905, c"dependency created on uncaptured work in another stream";
            CUDA_ERROR_STREAM_CAPTURE_IMPLICIT = 906, c"operation would make the legacy stream depend on a capturing blocking stream";
            CUDA_ERROR_CAPTURED_EVENT = 907, c"operation not permitted on an event last recorded in a capturing stream";
            CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD = 908, c"attempt to terminate a thread-local capture sequence from another thread";
            CUDA_ERROR_TIMEOUT = 909, c"wait operation timed out";
            CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE = 910, c"the graph update was not performed because it included changes which violated constraints specific to instantiated graph update";
            CUDA_ERROR_EXTERNAL_DEVICE = 911, c"an async error has occured in external entity outside of CUDA";
            CUDA_ERROR_INVALID_CLUSTER_SIZE = 912, c"a kernel launch error has occurred due to cluster misconfiguration";
            CUDA_ERROR_FUNCTION_NOT_LOADED = 913, c"the function handle is not loaded when calling an API that requires a loaded function";
            CUDA_ERROR_INVALID_RESOURCE_TYPE = 914, c"one or more resources passed in are not valid resource types for the operation";
            CUDA_ERROR_INVALID_RESOURCE_CONFIGURATION = 915, c"one or more resources are insufficient or non-applicable for the operation";
            CUDA_ERROR_UNKNOWN = 999, c"unknown error";
        }
    };
}

macro_rules! lookup_fn {
    ($( $name:ident = $num:literal, $desc:literal; )*) => {
        /// `(name, description)` of a `CUresult`, or `None` if unknown.
        pub(crate) fn describe(code: CUresult) -> Option<(&'static CStr, &'static CStr)> {
            match code {
                $( $num => Some((
                    match CStr::from_bytes_with_nul(concat!(stringify!($name), "\0").as_bytes()) {
                        Ok(s) => s,
                        Err(_) => c"",
                    },
                    $desc,
                )), )*
                _ => None,
            }
        }
    };
}
cu_results!(lookup_fn);

/// Writes the static string for `error` through `p_str`, or NULL and
/// `CUDA_ERROR_INVALID_VALUE` for an unknown code.
fn answer(error: CUresult, p_str: *mut *const c_char, name: bool) -> Result<(), CUresult> {
    if p_str.is_null() {
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    let (s, rc) = match describe(error) {
        Some((n, d)) => (if name { n } else { d }.as_ptr(), Ok(())),
        None => (std::ptr::null(), Err(CUDA_ERROR_INVALID_VALUE)),
    };
    // SAFETY: `p_str` is non-null and, by the API contract, writable.
    unsafe { p_str.write_unaligned(s) };
    rc
}

/// `cuGetErrorName`
///
/// # Safety
/// `p_str` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuGetErrorName(error: CUresult, p_str: *mut *const c_char) -> CUresult {
    super::entry("cuGetErrorName", || answer(error, p_str, true))
}

/// `cuGetErrorString`
///
/// # Safety
/// `p_str` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuGetErrorString(error: CUresult, p_str: *mut *const c_char) -> CUresult {
    super::entry("cuGetErrorString", || answer(error, p_str, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! check_against_header {
        ($( $name:ident = $num:literal, $desc:literal; )*) => {
            $(
                assert_eq!(
                    cudarc::driver::sys::CUresult::$name as u32, $num,
                    concat!(stringify!($name), " differs from cuda.h")
                );
            )*
        };
    }

    #[test]
    fn every_code_matches_the_header() {
        cu_results!(check_against_header);
    }

    #[test]
    fn names_and_strings_are_answered_locally() {
        let mut p: *const c_char = std::ptr::null();
        // SAFETY: `p` is a live local.
        unsafe {
            assert_eq!(cuGetErrorName(500, &mut p), CUDA_SUCCESS);
            assert_eq!(CStr::from_ptr(p), c"CUDA_ERROR_NOT_FOUND");
            assert_eq!(cuGetErrorString(2, &mut p), CUDA_SUCCESS);
            assert_eq!(CStr::from_ptr(p), c"out of memory");
            assert_eq!(cuGetErrorName(12345, &mut p), CUDA_ERROR_INVALID_VALUE);
            assert!(p.is_null());
            assert_eq!(
                cuGetErrorString(0, std::ptr::null_mut()),
                CUDA_ERROR_INVALID_VALUE
            );
        }
    }
}
