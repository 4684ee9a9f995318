//! The CUDA backend: every workload as CUDA C kernels (compiled at run time
//! with NVRTC) and host code over the driver API, through `cudarc`, which
//! loads `libcuda.so.1` dynamically. The process's library path decides
//! what it talks to: NVIDIA's driver, or (with `LD_LIBRARY_PATH` leading to
//! the shim's `libcuda.so.1`, and `VCOMPUTE_ENDPOINT`) our shim; a worker
//! checks that it loaded the one its side expects ([`probe`]).
//!
//! Everything runs in one context of its own (`cuCtxCreate`) on device 0,
//! on the legacy default stream, as the CUDA samples do: synchronous
//! copies, kernels, and `cuCtxSynchronize` where a sample must wait.
//!
//! | module | role |
//! |---|---|
//! | [`probe`] | the driver and NVRTC: present? NVIDIA's or the shim? |
//! | [`kernels`] | CUDA C sources (`kernels/*.cu`), kernel signatures, argument packing |
//! | [`nvrtc`] | compiling the sources to PTX |
//! | [`libdir`] | the directory that makes the shim a process's `libcuda.so.1` |
//! | `compute` | the compute workloads' kernels and launches |
//! | `memory` | host-allocated memory, device copies, alignedTypes' kernels |
//! | `timing` | asyncAPI, clock, the launch-rate kernel |
//!
//! The device operations the shared workloads run on (`api::device`) are
//! implemented here.

mod compute;
pub mod kernels;
pub mod libdir;
mod memory;
pub mod nvrtc;
pub mod probe;
mod timing;

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::ptr::null_mut;

use cudarc::driver::sys::{self as cu, CUdevice_attribute as Attr, CUresult};

use self::kernels::{Args, Kernel, Packed, Source, BLOCK};
use super::device::{Device, Plain};
use super::{Side, WorkloadError};
use crate::ipc::RuntimeInfo;
use crate::reference;

/// Maps a `CUresult` to [`WorkloadError::Call`] naming the call.
pub(crate) fn check(r: CUresult, call: &'static str) -> Result<(), WorkloadError> {
    if r == CUresult::CUDA_SUCCESS {
        Ok(())
    } else {
        Err(WorkloadError::Call {
            call,
            code: r as i32,
            name: format!("{r:?}"),
        })
    }
}

/// Device memory, freed on drop.
#[derive(Debug)]
pub(crate) struct DevBuf {
    ptr: cu::CUdeviceptr,
    bytes: usize,
}

impl Drop for DevBuf {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from cuMemAlloc and is freed once, here.
        let _ = unsafe { cu::cuMemFree_v2(self.ptr) };
    }
}

/// Host memory from `cuMemAllocHost` (page-locked natively; the shared
/// host heap through the shim), freed on drop.
#[derive(Debug)]
pub(crate) struct Pinned {
    ptr: *mut u8,
    len: usize,
}

impl Pinned {
    pub(crate) fn new(len: usize) -> Result<Pinned, WorkloadError> {
        let mut p: *mut c_void = null_mut();
        check(
            // SAFETY: a live out-pointer; the size is at least one byte.
            unsafe { cu::cuMemAllocHost_v2(&mut p, len.max(1)) },
            "cuMemAllocHost",
        )?;
        if p.is_null() {
            return Err(WorkloadError::Unavailable(
                "cuMemAllocHost returned NULL".into(),
            ));
        }
        Ok(Pinned { ptr: p.cast(), len })
    }

    pub(crate) fn ints_mut(&mut self) -> &mut [i32] {
        // SAFETY: cuMemAllocHost memory is page-aligned, so aligned for
        // i32; whole ints only.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.cast(), self.len / 4) }
    }
}

impl AsRef<[u8]> for Pinned {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the allocation holds `len` bytes and lives as long as self.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl AsMut<[u8]> for Pinned {
    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_ref`; `&mut self` makes this the only view.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from cuMemAllocHost and is freed once, here.
        let _ = unsafe { cu::cuMemFreeHost(self.ptr.cast()) };
    }
}

/// An event, destroyed on drop.
#[derive(Debug)]
pub(crate) struct Event(cu::CUevent);

impl Drop for Event {
    fn drop(&mut self) {
        // SAFETY: the event came from cuEventCreate and is destroyed once.
        let _ = unsafe { cu::cuEventDestroy_v2(self.0) };
    }
}

/// A kernel of a loaded module, with its signature.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Func {
    f: cu::CUfunction,
    kernel: &'static Kernel,
}

impl Func {
    /// Starts packing arguments for this kernel.
    pub(crate) fn args(&self) -> Args {
        Args::new(self.kernel)
    }

    /// This kernel with `args` packed, launched as `grid` blocks of
    /// `block` threads.
    pub(crate) fn bind(
        &self,
        args: Args,
        grid: (u32, u32, u32),
        block: (u32, u32, u32),
    ) -> Result<Launch, WorkloadError> {
        Ok(Launch {
            func: *self,
            args: packed(args)?,
            grid,
            block,
        })
    }

    /// This kernel with `args` packed, launched over `n` items in blocks
    /// of [`BLOCK`] threads.
    pub(crate) fn over(&self, args: Args, n: usize) -> Result<Launch, WorkloadError> {
        self.bind(args, (grid(n, BLOCK)?, 1, 1), (BLOCK, 1, 1))
    }
}

/// A kernel with its arguments packed, and its grid and block.
#[derive(Debug)]
pub(crate) struct Launch {
    func: Func,
    args: Packed,
    grid: (u32, u32, u32),
    block: (u32, u32, u32),
}

/// Finishes packing, turning a mismatch with the signature into an error.
pub(crate) fn packed(a: Args) -> Result<Packed, WorkloadError> {
    a.finish().map_err(|e| WorkloadError::Build(e.to_string()))
}

/// Blocks of `block` threads covering `n` items (at least one block).
pub(crate) fn grid(n: usize, block: u32) -> Result<u32, WorkloadError> {
    kernels::blocks(n.max(1), block)
        .ok_or_else(|| WorkloadError::Unavailable(format!("{n} items need too many blocks")))
}

/// The CUDA device this process sees: device 0, in a context of its own.
#[derive(Debug)]
pub struct Cuda {
    ctx: cu::CUcontext,
    /// Compute capability as `10 * major + minor`.
    cc: i32,
    /// The SM clock rate the device reports (kHz), if it does (CUDA 13
    /// deprecates the attribute).
    clock_khz: Option<i32>,
    /// The NVRTC architecture, chosen at the first compile.
    arch: Option<String>,
    modules: HashMap<&'static str, cu::CUmodule>,
    refs: reference::Cache,
    info: RuntimeInfo,
}

fn attribute(dev: cu::CUdevice, a: Attr) -> Result<i32, WorkloadError> {
    let mut v: c_int = 0;
    check(
        // SAFETY: a live out-pointer and a device from cuDeviceGet.
        unsafe { cu::cuDeviceGetAttribute(&mut v, a, dev) },
        "cuDeviceGetAttribute",
    )?;
    Ok(v)
}

/// A CUDA version number (`12080`) as `12.8`.
fn cuda_version(v: i32) -> String {
    format!("{}.{}", v / 1000, v % 1000 / 10)
}

impl Cuda {
    /// Opens device 0 in a new context, after checking that this process
    /// loads the driver `side` expects.
    pub fn open(side: Side) -> Result<Cuda, WorkloadError> {
        let driver =
            probe::expect_driver(side == Side::Virtual).map_err(WorkloadError::Unavailable)?;
        // SAFETY: cuInit with the only valid flags.
        check(unsafe { cu::cuInit(0) }, "cuInit")?;
        let mut count: c_int = 0;
        check(
            // SAFETY: a live out-pointer.
            unsafe { cu::cuDeviceGetCount(&mut count) },
            "cuDeviceGetCount",
        )?;
        if count < 1 {
            return Err(WorkloadError::Unavailable("no CUDA device".into()));
        }
        let mut dev: cu::CUdevice = 0;
        // SAFETY: a live out-pointer; ordinal 0 exists (count >= 1).
        check(unsafe { cu::cuDeviceGet(&mut dev, 0) }, "cuDeviceGet")?;
        let mut name = [0 as c_char; 256];
        check(
            // SAFETY: the buffer holds the 256 bytes the call may write.
            unsafe { cu::cuDeviceGetName(name.as_mut_ptr(), 256, dev) },
            "cuDeviceGetName",
        )?;
        name[255] = 0;
        // SAFETY: the buffer ends with a NUL (set above if the driver
        // filled it).
        let name = unsafe { CStr::from_ptr(name.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        let mut total = 0usize;
        check(
            // SAFETY: a live out-pointer.
            unsafe { cu::cuDeviceTotalMem_v2(&mut total, dev) },
            "cuDeviceTotalMem",
        )?;
        let mut version: c_int = 0;
        check(
            // SAFETY: a live out-pointer.
            unsafe { cu::cuDriverGetVersion(&mut version) },
            "cuDriverGetVersion",
        )?;
        let major = attribute(dev, Attr::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?;
        let minor = attribute(dev, Attr::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?;
        let sms = attribute(dev, Attr::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?;
        let clock_khz = attribute(dev, Attr::CU_DEVICE_ATTRIBUTE_CLOCK_RATE)
            .ok()
            .filter(|&k| k > 0);
        let info = RuntimeInfo {
            api: "CUDA".into(),
            platform_name: if driver.is_shim {
                "virtio-compute shim".into()
            } else {
                "NVIDIA CUDA driver".into()
            },
            platform_vendor: driver.path,
            platform_version: format!("CUDA {}", cuda_version(version)),
            device_name: name,
            device_vendor: "NVIDIA".into(),
            device_version: format!("compute capability {major}.{minor}"),
            device_type: "GPU".into(),
            driver_version: cuda_version(version),
            compute_units: u32::try_from(sms).unwrap_or(0),
            global_mem_bytes: total as u64,
        };
        let mut ctx: cu::CUcontext = null_mut();
        check(
            // SAFETY: a live out-pointer and a device from cuDeviceGet; the new
            // context becomes current on this (the worker's only) thread.
            unsafe { cu::cuCtxCreate_v2(&mut ctx, 0, dev) },
            "cuCtxCreate",
        )?;
        Ok(Cuda {
            ctx,
            cc: 10 * major + minor,
            clock_khz,
            arch: None,
            modules: HashMap::new(),
            refs: reference::Cache::default(),
            info,
        })
    }

    /// The NVRTC architecture for this device, chosen once.
    fn arch(&mut self) -> Result<String, WorkloadError> {
        if let Some(a) = &self.arch {
            return Ok(a.clone());
        }
        if !probe::nvrtc_present() {
            return Err(WorkloadError::Unavailable(probe::NVRTC_MISSING.into()));
        }
        let supported = nvrtc::supported_archs()?;
        let (major, minor) = nvrtc::version()?;
        let arch = nvrtc::choose_arch(&supported, self.cc).ok_or_else(|| {
            WorkloadError::Unavailable(format!(
                "NVRTC {major}.{minor} compiles for {supported:?}, none of which a device of \
                 compute capability {}.{} runs",
                self.cc / 10,
                self.cc % 10
            ))
        })?;
        let name = nvrtc::arch_name(arch);
        self.arch = Some(name.clone());
        Ok(name)
    }

    /// The module of `src`, compiled and loaded on first use.
    fn module(&mut self, src: &'static Source) -> Result<cu::CUmodule, WorkloadError> {
        if let Some(&m) = self.modules.get(src.name) {
            return Ok(m);
        }
        let arch = self.arch()?;
        let ptx = nvrtc::compile(src, &arch)?;
        let mut m: cu::CUmodule = null_mut();
        check(
            // SAFETY: `ptx` is NUL-terminated PTX text that outlives the call.
            unsafe { cu::cuModuleLoadData(&mut m, ptx.as_ptr().cast()) },
            "cuModuleLoadData",
        )?;
        self.modules.insert(src.name, m);
        Ok(m)
    }

    /// Kernel `name` of `src`.
    pub(crate) fn func(&mut self, src: &'static Source, name: &str) -> Result<Func, WorkloadError> {
        let kernel = src
            .kernel(name)
            .ok_or_else(|| WorkloadError::Build(format!("{} has no kernel {name}", src.name)))?;
        let module = self.module(src)?;
        let cname = CString::new(name).map_err(|_| WorkloadError::Build(name.into()))?;
        let mut f: cu::CUfunction = null_mut();
        check(
            // SAFETY: a live out-pointer, a loaded module, a NUL-terminated name.
            unsafe { cu::cuModuleGetFunction(&mut f, module, cname.as_ptr()) },
            "cuModuleGetFunction",
        )?;
        Ok(Func { f, kernel })
    }

    /// The address of global `name` of `src`, checked against the size
    /// the source table declares for it.
    pub(crate) fn global(
        &mut self,
        src: &'static Source,
        name: &str,
    ) -> Result<(cu::CUdeviceptr, usize), WorkloadError> {
        let declared = src
            .globals
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, size)| size)
            .ok_or_else(|| WorkloadError::Build(format!("{} has no global {name}", src.name)))?;
        let module = self.module(src)?;
        let cname = CString::new(name).map_err(|_| WorkloadError::Build(name.into()))?;
        let (mut ptr, mut bytes): (cu::CUdeviceptr, usize) = (0, 0);
        check(
            // SAFETY: live out-pointers, a loaded module, a NUL-terminated name.
            unsafe { cu::cuModuleGetGlobal_v2(&mut ptr, &mut bytes, module, cname.as_ptr()) },
            "cuModuleGetGlobal",
        )?;
        if bytes != declared {
            return Err(WorkloadError::Build(format!(
                "global {name} of {} is {bytes} bytes, not {declared}",
                src.name
            )));
        }
        Ok((ptr, bytes))
    }

    /// Copies `src` to device address `dst` (of `cap` bytes) and waits.
    pub(crate) fn upload_to<T: Plain>(
        &self,
        dst: cu::CUdeviceptr,
        cap: usize,
        src: &[T],
    ) -> Result<(), WorkloadError> {
        let len = std::mem::size_of_val(src);
        if len > cap {
            return Err(WorkloadError::Unavailable(format!(
                "{len} bytes do not fit a {cap}-byte buffer"
            )));
        }
        check(
            // SAFETY: `src` is live for `len` bytes; the range lies in `dst`.
            unsafe { cu::cuMemcpyHtoD_v2(dst, src.as_ptr().cast(), len) },
            "cuMemcpyHtoD",
        )
    }

    /// Sets the first `count` bytes of `buf` to `byte` (not waiting).
    fn memset8(&self, buf: &DevBuf, byte: u8, count: usize) -> Result<(), WorkloadError> {
        if count > buf.bytes {
            return Err(WorkloadError::Unavailable(format!(
                "{count} bytes exceed a {}-byte buffer",
                buf.bytes
            )));
        }
        check(
            // SAFETY: the range lies in `buf`.
            unsafe { cu::cuMemsetD8_v2(buf.ptr, byte, count) },
            "cuMemsetD8",
        )
    }

    /// Sets the first `count` 32-bit words of `buf` to `bits` (not
    /// waiting).
    fn memset32(&self, buf: &DevBuf, bits: u32, count: usize) -> Result<(), WorkloadError> {
        if count.checked_mul(4).is_none_or(|b| b > buf.bytes) {
            return Err(WorkloadError::Unavailable(format!(
                "{count} words exceed a {}-byte buffer",
                buf.bytes
            )));
        }
        check(
            // SAFETY: the range lies in `buf`.
            unsafe { cu::cuMemsetD32_v2(buf.ptr, bits, count) },
            "cuMemsetD32",
        )
    }

    /// Sets every byte of `buf` to `byte` and waits.
    pub(crate) fn poison8(&self, buf: &DevBuf, byte: u8) -> Result<(), WorkloadError> {
        self.memset8(buf, byte, buf.bytes)?;
        self.sync()
    }

    /// A new event (default flags).
    pub(crate) fn event(&self) -> Result<Event, WorkloadError> {
        let mut e: cu::CUevent = null_mut();
        // SAFETY: a live out-pointer; flags 0 is CU_EVENT_DEFAULT.
        check(unsafe { cu::cuEventCreate(&mut e, 0) }, "cuEventCreate")?;
        Ok(Event(e))
    }
}

impl Drop for Cuda {
    fn drop(&mut self) {
        for (_, m) in self.modules.drain() {
            // SAFETY: each module was loaded once and is unloaded once.
            let _ = unsafe { cu::cuModuleUnload(m) };
        }
        // SAFETY: the context was created by `open` and is destroyed once;
        // every buffer of it has been freed by now (they do not outlive
        // the workload that made them).
        let _ = unsafe { cu::cuCtxDestroy_v2(self.ctx) };
    }
}

impl Device for Cuda {
    type Buf<T: Plain> = DevBuf;
    type Launch = Launch;

    fn info(&self) -> &RuntimeInfo {
        &self.info
    }

    fn refs(&mut self) -> &mut reference::Cache {
        &mut self.refs
    }

    fn alloc<T: Plain>(&self, count: usize) -> Result<DevBuf, WorkloadError> {
        let bytes = count
            .checked_mul(std::mem::size_of::<T>())
            .ok_or_else(|| WorkloadError::Unavailable(format!("{count} elements overflow")))?;
        let mut ptr: cu::CUdeviceptr = 0;
        check(
            // SAFETY: a live out-pointer.
            unsafe { cu::cuMemAlloc_v2(&mut ptr, bytes.max(1)) },
            "cuMemAlloc",
        )?;
        Ok(DevBuf { ptr, bytes })
    }

    /// `cuMemsetD8` for bytes, `cuMemsetD32` for 4-byte elements.
    fn poison<T: Plain>(
        &self,
        buf: &mut DevBuf,
        value: T,
        count: usize,
    ) -> Result<(), WorkloadError> {
        let bits = value.bits();
        match std::mem::size_of::<T>() {
            1 => self.memset8(buf, bits as u8, count)?,
            4 => self.memset32(buf, bits as u32, count)?,
            size => {
                return Err(WorkloadError::Unavailable(format!(
                    "no fill of {size}-byte elements"
                )))
            }
        }
        self.sync()
    }

    /// A synchronous copy.
    fn upload<T: Plain>(&self, buf: &mut DevBuf, data: &[T]) -> Result<(), WorkloadError> {
        self.upload_to(buf.ptr, buf.bytes, data)
    }

    fn write<T: Plain>(&self, buf: &mut DevBuf, data: &[T]) -> Result<(), WorkloadError> {
        self.upload_to(buf.ptr, buf.bytes, data)
    }

    /// A synchronous copy, which waits for the kernels before it on the
    /// stream.
    fn read<T: Plain>(&self, buf: &DevBuf, out: &mut [T]) -> Result<(), WorkloadError> {
        let len = std::mem::size_of_val(out);
        if len > buf.bytes {
            return Err(WorkloadError::Unavailable(format!(
                "{len} bytes exceed a {}-byte buffer",
                buf.bytes
            )));
        }
        check(
            // SAFETY: `out` is live and writable for `len` bytes, any bit
            // pattern is a value of `T`; the range lies in `buf`.
            unsafe { cu::cuMemcpyDtoH_v2(out.as_mut_ptr().cast(), buf.ptr, len) },
            "cuMemcpyDtoH",
        )
    }

    /// On the legacy default stream.
    fn launch(&self, k: &mut Launch) -> Result<(), WorkloadError> {
        if !std::ptr::eq(k.args.kernel, k.func.kernel) {
            return Err(WorkloadError::Build(format!(
                "arguments packed for {} passed to {}",
                k.args.kernel.name, k.func.kernel.name
            )));
        }
        check(
            // SAFETY: `func` is a live function; `args` holds one pointer
            // per parameter the kernel declares, each to a live value of
            // the declared size (checked by `Args`); no dynamic shared
            // memory.
            unsafe {
                cu::cuLaunchKernel(
                    k.func.f,
                    k.grid.0,
                    k.grid.1,
                    k.grid.2,
                    k.block.0,
                    k.block.1,
                    k.block.2,
                    0,
                    null_mut(),
                    k.args.params().as_mut_ptr(),
                    null_mut(),
                )
            },
            "cuLaunchKernel",
        )
    }

    /// `cuCtxSynchronize`.
    fn sync(&self) -> Result<(), WorkloadError> {
        // SAFETY: no arguments; the context is current on this thread.
        check(unsafe { cu::cuCtxSynchronize() }, "cuCtxSynchronize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::device::u32_arg;

    #[test]
    fn results_name_the_call_and_the_code() {
        assert!(check(CUresult::CUDA_SUCCESS, "cuInit").is_ok());
        let e = check(CUresult::CUDA_ERROR_INVALID_VALUE, "cuMemAlloc").unwrap_err();
        assert_eq!(
            e.to_string(),
            "cuMemAlloc failed: 1 (CUDA_ERROR_INVALID_VALUE)"
        );
        assert_eq!(cuda_version(12080), "12.8");
        assert_eq!(cuda_version(13000), "13.0");
        assert_eq!(grid(0, 256).unwrap(), 1);
        assert_eq!(grid(1000, 256).unwrap(), 4);
        assert!(u32_arg(1 << 33).is_err());
    }
}
