//! What the CUDA end-to-end tests share: the daemon's server running
//! in-process over the recording test double, child processes that load
//! the built `libcuda.so.1` as a CUDA program would, and typed entry
//! points of that library.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::ffi::{c_char, c_int, c_uint, c_void};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;

use host_backend::testing::{Recorder, RecordingServer};

/// A PTX module with one kernel of three parameters: a pointer, a float
/// and an int (packed at offsets 0, 8 and 12).
pub const PTX: &str = ".version 7.0\n.target sm_50\n.address_size 64\n\
    .visible .entry scale(.param .u64 p, .param .f32 k, .param .u32 n) { ret; }\n\0";

/// The daemon's server over the recording double, in this process.
pub struct Daemon {
    pub recorder: Arc<Recorder>,
    pub socket: PathBuf,
    server: RecordingServer,
}

impl Daemon {
    pub fn start(tag: &str) -> Daemon {
        let dir = std::env::temp_dir().join(format!("vcompute-cuda-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let server = RecordingServer::start(dir.join("compute.sock")).expect("bind the server");
        Daemon {
            recorder: Arc::clone(server.recorder()),
            socket: server.socket().to_owned(),
            server,
        }
    }

    pub fn endpoint(&self) -> String {
        self.server.endpoint()
    }

    /// A command that runs the ignored test `name` of this binary in a
    /// child process, pointed at this daemon and at the built
    /// `libcuda.so.1`.
    pub fn scenario(&self, name: &str) -> Command {
        let lib = super::common::cuda_lib_dir().join("libcuda.so.1");
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--exact",
            name,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("VCOMPUTE_TEST_LIBCUDA", lib)
        .env("VCOMPUTE_ENDPOINT", self.endpoint())
        .env("VCOMPUTE_HOST_MB", "64")
        .env("VCOMPUTE_ARENA_MB", "64");
        cmd
    }

    /// Runs the scenario `name` (see [`Daemon::scenario`]); asserts it
    /// passed and printed `SCENARIO OK`. Returns its output.
    pub fn run(name: &str, mut cmd: Command) -> Output {
        let out = cmd.output().expect("run the scenario");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name} failed:\n{stdout}\n{stderr}");
        assert!(
            stdout.contains("SCENARIO OK"),
            "{name} did not run:\n{stdout}\n{stderr}"
        );
        out
    }

    /// Runs the scenario `name` as it is; returns its stdout.
    pub fn run_scenario(&self, name: &str) -> String {
        let out = Self::run(name, self.scenario(name));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The same daemon over the stream transport (a unix socket).
    pub fn stream_endpoint(&self) -> String {
        self.server.stream_endpoint()
    }

    /// [`Daemon::run_scenario`] over another endpoint of this daemon (its
    /// stream endpoint, say).
    pub fn run_scenario_over(&self, name: &str, endpoint: &str) -> String {
        let mut cmd = self.scenario(name);
        cmd.env("VCOMPUTE_ENDPOINT", endpoint);
        String::from_utf8_lossy(&Self::run(name, cmd).stdout).into_owned()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.server.stop();
        let _ = std::fs::remove_dir_all(self.socket.parent().unwrap());
    }
}

pub type P = *mut c_void;

macro_rules! entry_points {
    ($( $name:ident ( $($arg:ty),* ); )*) => {
        /// The driver API, as loaded from the built library (fields keep
        /// the C names).
        #[allow(non_snake_case)]
        pub struct Cu {
            _lib: libloading::Library,
            $( pub $name: unsafe extern "C" fn($($arg),*) -> c_uint, )*
        }

        impl Cu {
            /// Loads the library named by `VCOMPUTE_TEST_LIBCUDA`, or `None`
            /// when not run as a scenario.
            pub fn load() -> Option<Cu> {
                let path = std::env::var("VCOMPUTE_TEST_LIBCUDA").ok()?;
                // SAFETY: the shim runs no initialisers with preconditions.
                let lib = unsafe { libloading::Library::new(path) }.expect("dlopen libcuda.so.1");
                // SAFETY: each symbol has the signature of cuda.h (checked
                // by the shim's unit tests against the header bindings).
                unsafe {
                    Some(Cu {
                        $( $name: *lib.get(concat!(stringify!($name), "\0").as_bytes()).expect(stringify!($name)), )*
                        _lib: lib,
                    })
                }
            }
        }
    };
}

entry_points! {
    cuInit(c_uint);
    cuDriverGetVersion(*mut c_int);
    cuDeviceGetCount(*mut c_int);
    cuDeviceGet(*mut c_int, c_int);
    cuDeviceGetName(*mut c_char, c_int, c_int);
    cuDeviceGetAttribute(*mut c_int, c_int, c_int);
    cuDeviceTotalMem_v2(*mut usize, c_int);
    cuCtxCreate_v2(*mut P, c_uint, c_int);
    cuCtxDestroy_v2(P);
    cuCtxGetCurrent(*mut P);
    cuCtxSynchronize();
    cuDevicePrimaryCtxRetain(*mut P, c_int);
    cuDevicePrimaryCtxRelease_v2(c_int);
    cuDevicePrimaryCtxReset_v2(c_int);
    cuDevicePrimaryCtxGetState(c_int, *mut c_uint, *mut c_int);
    cuGetExportTable(*mut *const c_void, *const [u8; 16]);
    cuStreamWriteValue32(P, u64, c_uint, c_uint);
    cuStreamWaitValue32(P, u64, c_uint, c_uint);
    cuStreamBatchMemOp(P, c_uint, *mut c_void, c_uint);
    cuCtxSetCurrent(P);
    cuModuleLoadData(*mut P, *const c_void);
    cuModuleGetFunction(*mut P, P, *const c_char);
    cuModuleUnload(P);
    cuFuncGetParamInfo(P, usize, *mut usize, *mut usize);
    cuMemAlloc_v2(*mut u64, usize);
    cuMemFree_v2(u64);
    cuMemGetInfo_v2(*mut usize, *mut usize);
    cuMemcpyHtoD_v2(u64, *const c_void, usize);
    cuMemcpyDtoH_v2(*mut c_void, u64, usize);
    cuMemcpyDtoD_v2(u64, u64, usize);
    cuMemcpy(u64, u64, usize);
    cuMemcpyHtoDAsync_v2(u64, *const c_void, usize, P);
    cuMemcpyDtoHAsync_v2(*mut c_void, u64, usize, P);
    cuMemsetD32_v2(u64, c_uint, usize);
    cuMemsetD8Async(u64, u8, usize, P);
    cuMemHostAlloc(*mut P, usize, c_uint);
    cuMemAllocHost_v2(*mut P, usize);
    cuMemFreeHost(P);
    cuPointerGetAttribute(*mut c_void, c_int, u64);
    cuStreamCreate(*mut P, c_uint);
    cuStreamDestroy_v2(P);
    cuStreamSynchronize(P);
    cuStreamQuery(P);
    cuEventCreate(*mut P, c_uint);
    cuEventRecord(P, P);
    cuEventSynchronize(P);
    cuEventElapsedTime(*mut f32, P, P);
    cuEventDestroy_v2(P);
    cuStreamWaitEvent(P, P, c_uint);
    cuLinkCreate_v2(c_uint, *mut c_int, *mut *mut c_void, *mut P);
    cuLinkAddData_v2(P, c_int, *mut c_void, usize, *const c_char, c_uint, *mut c_int, *mut *mut c_void);
    cuLinkComplete(P, *mut P, *mut usize);
    cuLinkDestroy(P);
    cuLaunchKernel(P, c_uint, c_uint, c_uint, c_uint, c_uint, c_uint, c_uint, P, *mut *mut c_void, *mut *mut c_void);
    cuLaunchKernel_ptsz(P, c_uint, c_uint, c_uint, c_uint, c_uint, c_uint, c_uint, P, *mut *mut c_void, *mut *mut c_void);
}

/// Asserts a `CUresult`.
#[track_caller]
pub fn ok(rc: c_uint) {
    assert_eq!(rc, 0, "CUresult {rc}");
}

/// `cuLinkAddData_v2` of the PTX text in `data`, without options.
///
/// # Safety
/// `state` is a live link state of `cu`.
pub unsafe fn link_add_ptx(cu: &Cu, state: P, data: &mut [u8]) -> c_uint {
    // SAFETY: `data` is live for the call; the caller vouches for `state`.
    unsafe {
        (cu.cuLinkAddData_v2)(
            state,
            1, // CU_JIT_INPUT_PTX
            data.as_mut_ptr().cast(),
            data.len(),
            c"kernel.ptx".as_ptr(),
            0,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    }
}
