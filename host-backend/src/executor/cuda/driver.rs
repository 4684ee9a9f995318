//! The real backend: the NVIDIA driver API through `cudarc`'s raw bindings,
//! loaded from `libcuda.so.1` at run time.
//!
//! **Isolation.** Each session creates its own context per device it uses
//! (`cuCtxCreate`), never the process's primary context and never one
//! shared with another session: GPU virtual address spaces are per context,
//! so a device pointer a guest smuggles into kernel parameters cannot reach
//! another tenant's memory. Dropping the backend synchronizes and destroys
//! those contexts, which frees everything the session made on the GPU.
//!
//! Every call first makes the device's context current on the calling
//! thread (sessions may move between worker threads). Entry points whose
//! enum arguments come from the guest (`cuDeviceGetAttribute`,
//! `cuFuncGetAttribute`, `cuFuncSetAttribute`) and the optional
//! `cuFuncGetParamInfo` (CUDA 12.4) are looked up with integer signatures,
//! so that no out-of-range number is ever held in a Rust enum.

use std::ffi::{c_int, c_uint, c_void, CString};

use cudarc::driver::sys::{self, CUresult};
use protocol::cuda::result::{INVALID_VALUE, NOT_FOUND};
use protocol::cuda::{DeviceAttribute, DeviceInfo, DynamicSmem, MemOpKind, MemsetWidth, ParamInfo};
use protocol::limits::{MAX_DEVICE_ATTRIBUTES, MAX_KERNEL_PARAM_BYTES};

use super::backend::{Backend, CuResult, Lane, LaunchDims, Loaded, ModuleImage};
use super::launch_args::LaunchArgs;
use super::staging::{Dma, Staging};
use crate::limits::STAGING_CHUNK;
use crate::segment::{InSeg, OutSeg};

/// Maps a driver result to `Ok` or its code.
pub(super) fn check(r: CUresult) -> CuResult<()> {
    match r {
        CUresult::CUDA_SUCCESS => Ok(()),
        e => Err(e as i32),
    }
}

type AttrGetFn = unsafe extern "C" fn(*mut c_int, c_int, sys::CUdevice) -> CUresult;
type FuncAttrGetFn = unsafe extern "C" fn(*mut c_int, c_int, sys::CUfunction) -> CUresult;
type FuncAttrSetFn = unsafe extern "C" fn(sys::CUfunction, c_int, c_int) -> CUresult;
type ParamInfoFn = unsafe extern "C" fn(sys::CUfunction, usize, *mut usize, *mut usize) -> CUresult;

/// Looks up a driver entry point with the given signature.
///
/// # Safety
/// `F` must be the entry point's C signature (integer-typed enums allowed:
/// a C enum is an `int`), and the driver library must be present.
unsafe fn entry<F: Copy>(name: &str) -> Option<F> {
    // SAFETY: the caller guarantees the library is present (so `culib`
    // does not panic) and that `F` matches the symbol's type.
    unsafe { sys::culib().get::<F>(name.as_bytes()).ok().map(|s| *s) }
}

/// True when `libcuda.so.1` (or `libcuda.so`) can be loaded.
pub fn library_present() -> bool {
    // SAFETY: loading the driver library runs its initializers, which is
    // what using CUDA at all requires; nothing else is called.
    unsafe { sys::is_culib_present() }
}

/// Initializes the driver; returns its version and device count.
/// Call only after [`library_present`].
pub fn init() -> CuResult<(i32, u32)> {
    // SAFETY: the library is present (caller's contract); these calls only
    // write through pointers to locals.
    unsafe {
        check(sys::cuInit(0))?;
        let mut version = 0;
        check(sys::cuDriverGetVersion(&mut version))?;
        let mut count = 0;
        check(sys::cuDeviceGetCount(&mut count))?;
        Ok((version, u32::try_from(count).unwrap_or(0)))
    }
}

struct DeviceCtx {
    ctx: sys::CUcontext,
    staging: Staging,
}

/// A loaded module.
#[derive(Debug)]
pub struct DrvModule(sys::CUmodule);
/// A kernel.
#[derive(Debug)]
pub struct DrvFunction(sys::CUfunction);
/// A stream.
#[derive(Debug)]
pub struct DrvStream(sys::CUstream);
/// An event.
#[derive(Debug)]
pub struct DrvEvent(sys::CUevent);
/// A graph a capture produced.
#[derive(Debug)]
pub struct DrvGraph(sys::CUgraph);
/// An executable graph.
#[derive(Debug)]
pub struct DrvGraphExec(sys::CUgraphExec);

// SAFETY: CUDA driver objects are process-wide handles usable from any
// thread once their context is current; the backend makes it current before
// every call and is used by one thread at a time (`&mut self`).
unsafe impl Send for DrvModule {}
// SAFETY: as for `DrvModule`.
unsafe impl Send for DrvFunction {}
// SAFETY: as for `DrvModule`.
unsafe impl Send for DrvStream {}
// SAFETY: as for `DrvModule`.
unsafe impl Send for DrvEvent {}
// SAFETY: as for `DrvModule`.
unsafe impl Send for DrvGraph {}
// SAFETY: as for `DrvModule`.
unsafe impl Send for DrvGraphExec {}

/// One session's contexts on the real driver.
pub struct Driver {
    version: i32,
    count: u32,
    devices: Vec<Option<DeviceCtx>>,
    attr_get: Option<AttrGetFn>,
    func_attr_get: Option<FuncAttrGetFn>,
    func_attr_set: Option<FuncAttrSetFn>,
    param_info: Option<ParamInfoFn>,
    /// The launch argument block, made on the first launch.
    launch_args: Option<LaunchArgs>,
}

// SAFETY: the contexts, staging buffers and events a `Driver` owns are
// process-wide driver handles; every method makes the right context current
// on the calling thread before use, and `&mut self` serializes use. The
// launch block's pointers point into its own heap buffer.
unsafe impl Send for Driver {}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("version", &self.version)
            .field("devices", &self.count)
            .field(
                "contexts",
                &self.devices.iter().filter(|d| d.is_some()).count(),
            )
            .finish()
    }
}

impl Driver {
    /// A backend for one session; `version` and `count` come from [`init`].
    pub fn new(version: i32, count: u32) -> Self {
        // SAFETY: the factory only opens sessions after `init` succeeded,
        // so the library is present; the signatures match `cuda.h` with
        // enums as `int`.
        let (attr_get, func_attr_get, func_attr_set, param_info) = unsafe {
            (
                entry::<AttrGetFn>("cuDeviceGetAttribute"),
                entry::<FuncAttrGetFn>("cuFuncGetAttribute"),
                entry::<FuncAttrSetFn>("cuFuncSetAttribute"),
                entry::<ParamInfoFn>("cuFuncGetParamInfo"),
            )
        };
        Driver {
            version,
            count,
            devices: (0..count).map(|_| None).collect(),
            attr_get,
            func_attr_get,
            func_attr_set,
            param_info,
            launch_args: None,
        }
    }

    /// Makes the session's context on `device` current.
    fn enter(&mut self, device: u32) -> CuResult<&mut DeviceCtx> {
        let d = self
            .devices
            .get_mut(device as usize)
            .and_then(Option::as_mut)
            .ok_or(sys::CUresult::CUDA_ERROR_INVALID_CONTEXT as i32)?;
        // SAFETY: `d.ctx` is a live context this session created.
        check(unsafe { sys::cuCtxSetCurrent(d.ctx) })?;
        Ok(d)
    }

    fn raw_device(device: u32) -> CuResult<sys::CUdevice> {
        let mut dev = 0;
        // SAFETY: writes the handle of an ordinal the session layer checked.
        check(unsafe { sys::cuDeviceGet(&mut dev, device as c_int) })?;
        Ok(dev)
    }
}

fn stream_of(lane: Lane<'_, DrvStream>) -> sys::CUstream {
    match lane {
        Lane::Legacy => std::ptr::null_mut(),
        // CU_STREAM_PER_THREAD
        Lane::PerThread => 0x2 as sys::CUstream,
        Lane::Stream(s) => s.0,
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        for d in self.devices.iter_mut().filter_map(Option::take) {
            let mut d = d;
            // SAFETY: the context is this session's; waiting for its work
            // before freeing the staging buffers means no DMA still uses
            // them; destroying the context frees everything made in it.
            unsafe {
                if check(sys::cuCtxSetCurrent(d.ctx)).is_ok() {
                    let _ = sys::cuCtxSynchronize();
                    d.staging.release(&mut DriverDma);
                }
                let _ = sys::cuCtxDestroy_v2(d.ctx);
            }
        }
    }
}

// The dynamic shared memory table of a tabulated occupancy query, for the
// driver's callback (which takes no user data). Set and cleared around the
// one call on this thread.
thread_local! {
    static SMEM_TABLE: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

extern "C" fn smem_for_block_size(block_size: c_int) -> usize {
    SMEM_TABLE.with(|t| {
        let t = t.borrow();
        let warps = (block_size.max(1) as usize).div_ceil(32);
        let v = t.get(warps - 1).or(t.last()).copied().unwrap_or(0);
        usize::try_from(v).unwrap_or(usize::MAX)
    })
}

impl Backend for Driver {
    type Module = DrvModule;
    type Function = DrvFunction;
    type Stream = DrvStream;
    type Event = DrvEvent;
    type Graph = DrvGraph;
    type GraphExec = DrvGraphExec;

    fn driver_version(&self) -> i32 {
        self.version
    }

    fn device_count(&self) -> u32 {
        self.count
    }

    fn device_info(&mut self, device: u32) -> CuResult<DeviceInfo> {
        let dev = Self::raw_device(device)?;
        let mut name = [0 as std::ffi::c_char; 256];
        let mut uuid = sys::CUuuid { bytes: [0; 16] };
        let mut total = 0usize;
        // SAFETY: each call writes into a local of the size it is told.
        unsafe {
            check(sys::cuDeviceGetName(
                name.as_mut_ptr(),
                name.len() as c_int,
                dev,
            ))?;
            check(sys::cuDeviceGetUuid_v2(&mut uuid, dev))?;
            check(sys::cuDeviceTotalMem_v2(&mut total, dev))?;
        }
        let name: Vec<u8> = name
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        let mut attributes = Vec::new();
        if let Some(get) = self.attr_get {
            for attribute in 1..=MAX_DEVICE_ATTRIBUTES as c_int {
                let mut value = 0;
                // SAFETY: `get` is cuDeviceGetAttribute with the attribute
                // as an int; unknown numbers return an error, not UB.
                if unsafe { get(&mut value, attribute, dev) } == CUresult::CUDA_SUCCESS {
                    attributes.push(DeviceAttribute { attribute, value });
                }
            }
        }
        Ok(DeviceInfo {
            name: String::from_utf8_lossy(&name).into_owned(),
            uuid: uuid.bytes.map(|b| b as u8),
            total_mem: total as u64,
            attributes,
        })
    }

    fn open_device(&mut self, device: u32) -> CuResult<()> {
        let slot = self
            .devices
            .get_mut(device as usize)
            .ok_or(sys::CUresult::CUDA_ERROR_INVALID_DEVICE as i32)?;
        if slot.is_some() {
            return Ok(());
        }
        let dev = Self::raw_device(device)?;
        let mut ctx = std::ptr::null_mut();
        // SAFETY: creates a fresh context (made current) into a local.
        check(unsafe { sys::cuCtxCreate_v2(&mut ctx, 0, dev) })?;
        *slot = Some(DeviceCtx {
            ctx,
            staging: Staging::default(),
        });
        Ok(())
    }

    fn synchronize(&mut self, device: u32) -> CuResult<()> {
        self.enter(device)?;
        // SAFETY: the session's context is current.
        check(unsafe { sys::cuCtxSynchronize() })
    }

    fn ctx_limit(&mut self, device: u32, limit: u32, value: Option<u64>) -> CuResult<u64> {
        use sys::CUlimit as L;
        let limit = match limit {
            0 => L::CU_LIMIT_STACK_SIZE,
            1 => L::CU_LIMIT_PRINTF_FIFO_SIZE,
            2 => L::CU_LIMIT_MALLOC_HEAP_SIZE,
            3 => L::CU_LIMIT_DEV_RUNTIME_SYNC_DEPTH,
            4 => L::CU_LIMIT_DEV_RUNTIME_PENDING_LAUNCH_COUNT,
            5 => L::CU_LIMIT_MAX_L2_FETCH_GRANULARITY,
            6 => L::CU_LIMIT_PERSISTING_L2_CACHE_SIZE,
            _ => return Err(INVALID_VALUE),
        };
        self.enter(device)?;
        if let Some(v) = value {
            let v = usize::try_from(v).map_err(|_| INVALID_VALUE)?;
            // SAFETY: sets a limit of the current (session) context.
            check(unsafe { sys::cuCtxSetLimit(limit, v) })?;
        }
        let mut v = 0usize;
        // SAFETY: reads a limit of the current context into a local.
        check(unsafe { sys::cuCtxGetLimit(&mut v, limit) })?;
        Ok(v as u64)
    }

    fn stream_priority_range(&mut self, device: u32) -> CuResult<(i32, i32)> {
        self.enter(device)?;
        let (mut least, mut greatest) = (0, 0);
        // SAFETY: two locals; the current context's device is queried.
        check(unsafe { sys::cuCtxGetStreamPriorityRange(&mut least, &mut greatest) })?;
        Ok((least, greatest))
    }

    fn mem_get_info(&mut self, device: u32) -> CuResult<(u64, u64)> {
        self.enter(device)?;
        let (mut free, mut total) = (0usize, 0usize);
        // SAFETY: writes two locals; the context is current.
        check(unsafe { sys::cuMemGetInfo_v2(&mut free, &mut total) })?;
        Ok((free as u64, total as u64))
    }

    fn mem_alloc(&mut self, device: u32, size: u64) -> CuResult<u64> {
        self.enter(device)?;
        let size = usize::try_from(size).map_err(|_| INVALID_VALUE)?;
        let mut ptr = 0;
        // SAFETY: allocates in the current (session) context into a local.
        check(unsafe { sys::cuMemAlloc_v2(&mut ptr, size) })?;
        Ok(ptr)
    }

    fn mem_free(&mut self, device: u32, ptr: u64) -> CuResult<()> {
        self.enter(device)?;
        // SAFETY: `ptr` is an allocation of this context that the session
        // layer just removed from its table.
        check(unsafe { sys::cuMemFree_v2(ptr) })
    }

    fn memcpy_htod(
        &mut self,
        device: u32,
        lane: Lane<'_, DrvStream>,
        dst: u64,
        src: &[InSeg<'_>],
    ) -> CuResult<()> {
        let stream = stream_of(lane);
        self.enter(device)?
            .staging
            .htod(&mut DriverDma, stream, dst, src)
    }

    fn memcpy_dtoh(
        &mut self,
        device: u32,
        lane: Lane<'_, DrvStream>,
        src: u64,
        dst: &[OutSeg<'_>],
    ) -> CuResult<()> {
        let stream = stream_of(lane);
        self.enter(device)?
            .staging
            .dtoh(&mut DriverDma, stream, src, dst)
    }

    fn memcpy_dtod(
        &mut self,
        device: u32,
        lane: Lane<'_, DrvStream>,
        dst: u64,
        src: u64,
        size: u64,
    ) -> CuResult<()> {
        let stream = stream_of(lane);
        self.enter(device)?;
        let size = usize::try_from(size).map_err(|_| INVALID_VALUE)?;
        // SAFETY: both ranges lie in regions of this session (checked by
        // the session layer); the stream belongs to the current context.
        check(unsafe { sys::cuMemcpyDtoDAsync_v2(dst, src, size, stream) })
    }

    fn memset(
        &mut self,
        device: u32,
        lane: Lane<'_, DrvStream>,
        dst: u64,
        width: MemsetWidth,
        value: u32,
        count: u64,
    ) -> CuResult<()> {
        let stream = stream_of(lane);
        self.enter(device)?;
        let n = usize::try_from(count).map_err(|_| INVALID_VALUE)?;
        // SAFETY: the range was checked against the session's regions; the
        // stream belongs to the current context.
        check(unsafe {
            match width {
                MemsetWidth::D8 => sys::cuMemsetD8Async(dst, value as u8, n, stream),
                MemsetWidth::D16 => sys::cuMemsetD16Async(dst, value as u16, n, stream),
                MemsetWidth::D32 => sys::cuMemsetD32Async(dst, value, n, stream),
            }
        })
    }

    fn module_load(&mut self, device: u32, image: &ModuleImage<'_>) -> Loaded<DrvModule> {
        if let Err(code) = self.enter(device) {
            return Loaded {
                module: Err(code),
                info_log: Vec::new(),
                error_log: Vec::new(),
            };
        }
        // Log buffers one byte longer than asked, for the driver's NUL.
        let mut info_log = vec![0u8; image.info_log_len as usize + 1];
        let mut error_log = vec![0u8; image.error_log_len as usize + 1];
        let mut keys: Vec<u32> = Vec::new();
        let mut values: Vec<*mut c_void> = Vec::new();
        for o in image.options {
            keys.push(o.option);
            values.push(o.value as usize as *mut c_void);
        }
        if image.info_log_len > 0 {
            keys.extend([3, 4]); // CU_JIT_INFO_LOG_BUFFER(_SIZE_BYTES)
            values.extend([info_log.as_mut_ptr().cast(), info_log.len() as *mut c_void]);
        }
        if image.error_log_len > 0 {
            keys.extend([5, 6]); // CU_JIT_ERROR_LOG_BUFFER(_SIZE_BYTES)
            values.extend([
                error_log.as_mut_ptr().cast(),
                error_log.len() as *mut c_void,
            ]);
        }
        let mut module = std::ptr::null_mut();
        // SAFETY: the context is current; `image.bytes` is the whole image
        // (PTX NUL-terminated) and outlives the call; `keys` holds option
        // numbers the session layer checked (read by the driver as C
        // enums, never as Rust ones) with one value slot each; the log
        // buffers are as long as the sizes passed with them.
        let r = unsafe {
            sys::cuModuleLoadDataEx(
                &mut module,
                image.bytes.as_ptr().cast(),
                keys.len() as c_uint,
                keys.as_mut_ptr().cast(),
                values.as_mut_ptr(),
            )
        };
        let until_nul =
            |v: &[u8]| -> Vec<u8> { v.iter().take_while(|&&c| c != 0).copied().collect() };
        Loaded {
            module: check(r).map(|()| DrvModule(module)),
            info_log: until_nul(&info_log),
            error_log: until_nul(&error_log),
        }
    }

    fn module_unload(&mut self, device: u32, module: DrvModule) -> CuResult<()> {
        self.enter(device)?;
        // SAFETY: a module of this context, unloaded once (it is moved in).
        check(unsafe { sys::cuModuleUnload(module.0) })
    }

    fn get_function(
        &mut self,
        device: u32,
        module: &DrvModule,
        name: &str,
    ) -> CuResult<(DrvFunction, Option<Vec<ParamInfo>>)> {
        self.enter(device)?;
        let cname = CString::new(name).map_err(|_| INVALID_VALUE)?;
        let mut f = std::ptr::null_mut();
        // SAFETY: a live module of the current context and a NUL-terminated
        // name; writes a local.
        check(unsafe { sys::cuModuleGetFunction(&mut f, module.0, cname.as_ptr()) })?;
        let layout = self.param_info.and_then(|get| {
            let mut params = Vec::new();
            for i in 0..MAX_KERNEL_PARAM_BYTES {
                let (mut offset, mut size) = (0usize, 0usize);
                // SAFETY: `get` is cuFuncGetParamInfo; writes two locals.
                match unsafe { get(f, i, &mut offset, &mut size) } {
                    CUresult::CUDA_SUCCESS => params.push(ParamInfo {
                        offset: u32::try_from(offset).ok()?,
                        size: u32::try_from(size).ok()?,
                    }),
                    // One past the last parameter.
                    CUresult::CUDA_ERROR_INVALID_VALUE => return Some(params),
                    _ => return None,
                }
            }
            None
        });
        Ok((DrvFunction(f), layout))
    }

    fn get_global(&mut self, device: u32, module: &DrvModule, name: &str) -> CuResult<(u64, u64)> {
        self.enter(device)?;
        let cname = CString::new(name).map_err(|_| NOT_FOUND)?;
        let (mut ptr, mut size) = (0, 0usize);
        // SAFETY: a live module and a NUL-terminated name; writes locals.
        check(unsafe { sys::cuModuleGetGlobal_v2(&mut ptr, &mut size, module.0, cname.as_ptr()) })?;
        Ok((ptr, size as u64))
    }

    fn func_get_attribute(&mut self, device: u32, f: &DrvFunction, attr: i32) -> CuResult<i32> {
        self.enter(device)?;
        let get = self.func_attr_get.ok_or(INVALID_VALUE)?;
        let mut value = 0;
        // SAFETY: cuFuncGetAttribute with the attribute as an int (range
        // checked by the session layer); writes a local.
        check(unsafe { get(&mut value, attr, f.0) })?;
        Ok(value)
    }

    fn func_set_attribute(
        &mut self,
        device: u32,
        f: &DrvFunction,
        attr: i32,
        value: i32,
    ) -> CuResult<()> {
        self.enter(device)?;
        let set = self.func_attr_set.ok_or(INVALID_VALUE)?;
        // SAFETY: cuFuncSetAttribute on a live function, attribute as int.
        check(unsafe { set(f.0, attr, value) })
    }

    fn func_set_cache_config(&mut self, device: u32, f: &DrvFunction, config: u32) -> CuResult<()> {
        use sys::CUfunc_cache as C;
        self.enter(device)?;
        let config = match config {
            0 => C::CU_FUNC_CACHE_PREFER_NONE,
            1 => C::CU_FUNC_CACHE_PREFER_SHARED,
            2 => C::CU_FUNC_CACHE_PREFER_L1,
            3 => C::CU_FUNC_CACHE_PREFER_EQUAL,
            _ => return Err(INVALID_VALUE),
        };
        // SAFETY: a live function of the current context.
        check(unsafe { sys::cuFuncSetCacheConfig(f.0, config) })
    }

    fn launch(
        &mut self,
        device: u32,
        f: &DrvFunction,
        dims: &LaunchDims,
        lane: Lane<'_, DrvStream>,
        params: &[u8],
        layout: Option<&[ParamInfo]>,
    ) -> CuResult<()> {
        let stream = stream_of(lane);
        self.enter(device)?;
        // Every pointer and byte the driver may read for this kernel lies
        // in the block, whatever the real signature (see `launch_args`).
        let args = self.launch_args.get_or_insert_with(LaunchArgs::new);
        args.prepare(params, layout).ok_or(INVALID_VALUE)?;
        let mut size = params.len();
        // CU_LAUNCH_PARAM_BUFFER_POINTER, _SIZE, _END: markers, not addresses.
        let mut extra: [*mut c_void; 5] = [
            std::ptr::without_provenance_mut(1),
            args.buffer(),
            std::ptr::without_provenance_mut(2),
            (&raw mut size).cast(),
            std::ptr::null_mut(),
        ];
        let (kernel_params, extra_ptr) = match layout {
            Some(_) => (args.kernel_params(), std::ptr::null_mut()),
            None => (std::ptr::null_mut(), extra.as_mut_ptr()),
        };
        // SAFETY: a live function and stream of the current context;
        // `kernel_params` is NULL or the block's pointer array (one per
        // parameter, then pointers to zeros, as many as any kernel has),
        // `extra` NULL or a terminated list naming the block's buffer and
        // the parameters' size; every size the driver reads behind them
        // lies in the block. The driver copies the arguments before
        // returning and only reads them.
        check(unsafe {
            sys::cuLaunchKernel(
                f.0,
                dims.grid[0],
                dims.grid[1],
                dims.grid[2],
                dims.block[0],
                dims.block[1],
                dims.block[2],
                dims.shared_mem_bytes,
                stream,
                kernel_params,
                extra_ptr,
            )
        })
    }

    fn occupancy_max_active_blocks(
        &mut self,
        device: u32,
        f: &DrvFunction,
        block_size: i32,
        dynamic_smem: u64,
        flags: u32,
    ) -> CuResult<i32> {
        self.enter(device)?;
        let smem = usize::try_from(dynamic_smem).map_err(|_| INVALID_VALUE)?;
        let mut n = 0;
        // SAFETY: a live function; writes a local.
        check(unsafe {
            sys::cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(
                &mut n, f.0, block_size, smem, flags,
            )
        })?;
        Ok(n)
    }

    fn occupancy_max_potential_block_size(
        &mut self,
        device: u32,
        f: &DrvFunction,
        dynamic_smem: &DynamicSmem,
        block_size_limit: i32,
        flags: u32,
    ) -> CuResult<(i32, i32)> {
        self.enter(device)?;
        let (callback, fixed): (sys::CUoccupancyB2DSize, usize) = match dynamic_smem {
            DynamicSmem::Fixed(s) => (None, usize::try_from(*s).map_err(|_| INVALID_VALUE)?),
            DynamicSmem::PerBlockSize(t) => {
                SMEM_TABLE.with(|cell| *cell.borrow_mut() = t.clone());
                (Some(smem_for_block_size), 0)
            }
        };
        let (mut grid, mut block) = (0, 0);
        // SAFETY: a live function; the callback reads only this thread's
        // table, set above and cleared below; writes two locals.
        let r = unsafe {
            sys::cuOccupancyMaxPotentialBlockSizeWithFlags(
                &mut grid,
                &mut block,
                f.0,
                callback,
                fixed,
                block_size_limit,
                flags,
            )
        };
        SMEM_TABLE.with(|cell| cell.borrow_mut().clear());
        check(r)?;
        Ok((grid, block))
    }

    fn occupancy_available_dynamic_smem(
        &mut self,
        device: u32,
        f: &DrvFunction,
        num_blocks: i32,
        block_size: i32,
    ) -> CuResult<u64> {
        self.enter(device)?;
        let mut size = 0usize;
        // SAFETY: a live function; writes a local.
        check(unsafe {
            sys::cuOccupancyAvailableDynamicSMemPerBlock(&mut size, f.0, num_blocks, block_size)
        })?;
        Ok(size as u64)
    }

    fn stream_create(&mut self, device: u32, flags: u32, priority: i32) -> CuResult<DrvStream> {
        self.enter(device)?;
        let mut s = std::ptr::null_mut();
        // SAFETY: creates a stream in the current context into a local.
        check(unsafe { sys::cuStreamCreateWithPriority(&mut s, flags, priority) })?;
        Ok(DrvStream(s))
    }

    fn stream_destroy(&mut self, device: u32, stream: DrvStream) -> CuResult<()> {
        self.enter(device)?;
        // SAFETY: a stream of this context, destroyed once (moved in).
        check(unsafe { sys::cuStreamDestroy_v2(stream.0) })
    }

    fn stream_synchronize(&mut self, device: u32, lane: Lane<'_, DrvStream>) -> CuResult<()> {
        let stream = stream_of(lane);
        self.enter(device)?;
        // SAFETY: a stream of the current context (or a default stream).
        check(unsafe { sys::cuStreamSynchronize(stream) })
    }

    fn stream_query(&mut self, device: u32, lane: Lane<'_, DrvStream>) -> CuResult<()> {
        let stream = stream_of(lane);
        self.enter(device)?;
        // SAFETY: as above.
        check(unsafe { sys::cuStreamQuery(stream) })
    }

    fn stream_wait_event(
        &mut self,
        device: u32,
        lane: Lane<'_, DrvStream>,
        event: &DrvEvent,
        flags: u32,
    ) -> CuResult<()> {
        let stream = stream_of(lane);
        self.enter(device)?;
        // SAFETY: a stream of the current context and a live event of this
        // session (events may come from another of its contexts).
        check(unsafe { sys::cuStreamWaitEvent(stream, event.0, flags) })
    }

    fn event_create(&mut self, device: u32, flags: u32) -> CuResult<DrvEvent> {
        self.enter(device)?;
        let mut e = std::ptr::null_mut();
        // SAFETY: creates an event in the current context into a local.
        check(unsafe { sys::cuEventCreate(&mut e, flags) })?;
        Ok(DrvEvent(e))
    }

    fn event_destroy(&mut self, device: u32, event: DrvEvent) -> CuResult<()> {
        self.enter(device)?;
        // SAFETY: an event of this context, destroyed once (moved in).
        check(unsafe { sys::cuEventDestroy_v2(event.0) })
    }

    fn event_record(
        &mut self,
        device: u32,
        event: &DrvEvent,
        lane: Lane<'_, DrvStream>,
        flags: u32,
    ) -> CuResult<()> {
        let stream = stream_of(lane);
        self.enter(device)?;
        // SAFETY: an event and a stream of the current context.
        check(unsafe { sys::cuEventRecordWithFlags(event.0, stream, flags) })
    }

    fn event_synchronize(&mut self, device: u32, event: &DrvEvent) -> CuResult<()> {
        self.enter(device)?;
        // SAFETY: a live event of this context.
        check(unsafe { sys::cuEventSynchronize(event.0) })
    }

    fn event_query(&mut self, device: u32, event: &DrvEvent) -> CuResult<()> {
        self.enter(device)?;
        // SAFETY: a live event of this context.
        check(unsafe { sys::cuEventQuery(event.0) })
    }

    fn event_elapsed(&mut self, device: u32, start: &DrvEvent, end: &DrvEvent) -> CuResult<f32> {
        self.enter(device)?;
        let mut ms = 0f32;
        // SAFETY: two live events of this context; writes a local.
        check(unsafe { sys::cuEventElapsedTime(&mut ms, start.0, end.0) })?;
        Ok(ms)
    }

    fn mem_alloc_async(
        &mut self,
        device: u32,
        lane: Lane<'_, DrvStream>,
        size: u64,
    ) -> CuResult<u64> {
        let stream = stream_of(lane);
        self.enter(device)?;
        let size = usize::try_from(size).map_err(|_| INVALID_VALUE)?;
        let mut ptr = 0;
        // SAFETY: allocates from the current context's device pool into a
        // local, ordered on a stream of that context.
        check(unsafe { sys::cuMemAllocAsync(&mut ptr, size, stream) })?;
        Ok(ptr)
    }

    fn mem_free_async(&mut self, device: u32, lane: Lane<'_, DrvStream>, ptr: u64) -> CuResult<()> {
        let stream = stream_of(lane);
        self.enter(device)?;
        // SAFETY: `ptr` is an allocation of this context that the session
        // layer just removed from its table.
        check(unsafe { sys::cuMemFreeAsync(ptr, stream) })
    }

    fn stream_mem_op(
        &mut self,
        device: u32,
        lane: Lane<'_, DrvStream>,
        kind: MemOpKind,
        addr: u64,
        value: u64,
        flags: u32,
    ) -> CuResult<()> {
        let stream = stream_of(lane);
        self.enter(device)?;
        // SAFETY: `addr` lies in this session's memory, aligned; the
        // stream belongs to the current context; the flags were checked.
        check(unsafe {
            match kind {
                MemOpKind::Wait32 => sys::cuStreamWaitValue32_v2(stream, addr, value as u32, flags),
                MemOpKind::Write32 => {
                    sys::cuStreamWriteValue32_v2(stream, addr, value as u32, flags)
                }
                MemOpKind::Wait64 => sys::cuStreamWaitValue64_v2(stream, addr, value, flags),
                MemOpKind::Write64 => sys::cuStreamWriteValue64_v2(stream, addr, value, flags),
            }
        })
    }

    fn stream_begin_capture(&mut self, device: u32, stream: &DrvStream, mode: u32) -> CuResult<()> {
        // Every capture is relaxed on the daemon's side: a global or
        // thread-local capture makes the driver refuse "unsafe" calls of
        // the whole process or thread, which would reach other sessions'
        // work (and the daemon's own staging). The guest's mode was
        // checked; what the capture records is the same.
        if mode > 2 {
            return Err(INVALID_VALUE);
        }
        self.enter(device)?;
        // SAFETY: a stream of the current context; the mode is a variant.
        check(unsafe {
            sys::cuStreamBeginCapture_v2(
                stream.0,
                sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_RELAXED,
            )
        })
    }

    fn stream_end_capture(&mut self, device: u32, stream: &DrvStream) -> CuResult<DrvGraph> {
        self.enter(device)?;
        let mut g = std::ptr::null_mut();
        // SAFETY: a capturing stream of the current context; into a local.
        check(unsafe { sys::cuStreamEndCapture(stream.0, &mut g) })?;
        Ok(DrvGraph(g))
    }

    fn graph_instantiate(
        &mut self,
        device: u32,
        graph: &DrvGraph,
        flags: u64,
    ) -> CuResult<DrvGraphExec> {
        self.enter(device)?;
        let mut e = std::ptr::null_mut();
        // SAFETY: a live graph of this session; into a local.
        check(unsafe { sys::cuGraphInstantiateWithFlags(&mut e, graph.0, flags) })?;
        Ok(DrvGraphExec(e))
    }

    fn graph_launch(
        &mut self,
        device: u32,
        exec: &DrvGraphExec,
        lane: Lane<'_, DrvStream>,
    ) -> CuResult<()> {
        let stream = stream_of(lane);
        self.enter(device)?;
        // SAFETY: a live executable graph of this context, on one of its
        // streams.
        check(unsafe { sys::cuGraphLaunch(exec.0, stream) })
    }

    fn graph_destroy(&mut self, device: u32, graph: DrvGraph) -> CuResult<()> {
        self.enter(device)?;
        // SAFETY: a graph of this session, destroyed once (moved in).
        check(unsafe { sys::cuGraphDestroy(graph.0) })
    }

    fn graph_exec_destroy(&mut self, device: u32, exec: DrvGraphExec) -> CuResult<()> {
        self.enter(device)?;
        // SAFETY: an executable graph of this session, destroyed once.
        check(unsafe { sys::cuGraphExecDestroy(exec.0) })
    }
}

/// The pool's driver calls on the real driver.
#[derive(Debug, Default)]
pub(super) struct DriverDma;

impl Dma for DriverDma {
    fn alloc_host(&mut self) -> CuResult<*mut u8> {
        let mut host = std::ptr::null_mut::<c_void>();
        // SAFETY: plain allocation into a local out-pointer; the device's
        // context is current (module contract). PORTABLE: usable from any
        // context of the process.
        check(unsafe {
            sys::cuMemHostAlloc(&mut host, STAGING_CHUNK, sys::CU_MEMHOSTALLOC_PORTABLE)
        })?;
        Ok(host.cast())
    }

    fn free_host(&mut self, host: *mut u8) {
        // SAFETY: `host` came from cuMemHostAlloc and no DMA uses it.
        unsafe { sys::cuMemFreeHost(host.cast()) };
    }

    fn event_create(&mut self) -> CuResult<sys::CUevent> {
        let mut event = std::ptr::null_mut();
        // SAFETY: creates an event in the current context into a local.
        check(unsafe {
            sys::cuEventCreate(
                &mut event,
                sys::CUevent_flags::CU_EVENT_DISABLE_TIMING as u32,
            )
        })?;
        Ok(event)
    }

    fn event_destroy(&mut self, event: sys::CUevent) {
        // SAFETY: a live event of the current context, destroyed once.
        unsafe { sys::cuEventDestroy_v2(event) };
    }

    fn event_record(&mut self, event: sys::CUevent, stream: sys::CUstream) -> CuResult<()> {
        // SAFETY: a live event and a stream of the current context.
        check(unsafe { sys::cuEventRecord(event, stream) })
    }

    fn event_wait(&mut self, event: sys::CUevent) -> CuResult<()> {
        // SAFETY: a live event of the current context.
        check(unsafe { sys::cuEventSynchronize(event) })
    }

    fn htod_async(
        &mut self,
        dst: u64,
        src: *const u8,
        len: usize,
        stream: sys::CUstream,
    ) -> CuResult<()> {
        // SAFETY: `dst..dst+len` lies in an allocation the session layer
        // checked; `src` is a pinned buffer of at least `len` bytes that
        // the pool does not reuse before an event recorded after this copy
        // completes; the stream belongs to the current context.
        check(unsafe { sys::cuMemcpyHtoDAsync_v2(dst, src.cast(), len, stream) })
    }

    fn dtoh_async(
        &mut self,
        dst: *mut u8,
        src: u64,
        len: usize,
        stream: sys::CUstream,
    ) -> CuResult<()> {
        // SAFETY: as for `htod_async`, the other way; the pool does not
        // read the buffer before the event recorded after this completes.
        check(unsafe { sys::cuMemcpyDtoHAsync_v2(dst.cast(), src, len, stream) })
    }
}
