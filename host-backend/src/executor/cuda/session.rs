//! The session layer of every CUDA executor: the guest's handles, the
//! allocation table, and every check, in front of a [`Backend`].
//!
//! [`CudaSession`] decodes nothing and trusts nothing: it resolves each
//! handle with the kind it must have (a missing or wrong-kind one is
//! `CUDA_ERROR_INVALID_CONTEXT` for contexts, `CUDA_ERROR_INVALID_HANDLE`
//! otherwise), checks every device range against the allocation table,
//! every flag and attribute against the API, and the session's object and
//! memory limits, and only then calls the backend. Because the real
//! executor and the recording test double share this layer, the double
//! refuses exactly what the real executor refuses.
//!
//! This file holds the tables, the dispatch, contexts and modules;
//! `commands.rs` holds memory, streams, events, launches and occupancy.

use std::collections::HashMap;

use protocol::cuda::result::{
    INVALID_DEVICE, INVALID_HANDLE, INVALID_IMAGE, INVALID_PTX, INVALID_VALUE, NOT_INITIALIZED,
    UNSUPPORTED_LIMIT,
};
use protocol::cuda::*;
use protocol::limits::MAX_DEVICE_ATTRIBUTES;
use protocol::{ProtocolError, Request, Response};
use tracing::debug;

use super::backend::{Backend, Lane, ModuleImage};
use super::image::{self, ImageInfo};
use super::memory::{MemTable, Owner};
use super::rules;
use crate::executor::{Bulk, ExecError};
use crate::limits::SessionLimits;
use crate::segment::{total_len, Cursor};

/// A native `CUresult` failure.
pub(super) fn cu(code: i32) -> ExecError {
    ExecError::Native(code)
}

/// The bulk segments do not match what the request declares.
pub(super) fn bad_descriptor() -> ExecError {
    ExecError::Protocol(ProtocolError::BadDescriptor)
}

/// One guest-named object.
pub(super) enum Obj<B: Backend> {
    Context {
        device: u32,
    },
    Module {
        ctx: Handle,
        module: B::Module,
        info: ImageInfo,
    },
    Function {
        module: Handle,
        function: B::Function,
        params: Option<Vec<ParamInfo>>,
    },
    Stream {
        ctx: Handle,
        stream: B::Stream,
        /// Whether a capture is in progress on it.
        capturing: bool,
    },
    Event {
        ctx: Handle,
        event: B::Event,
    },
    Graph {
        ctx: Handle,
        graph: B::Graph,
    },
    GraphExec {
        ctx: Handle,
        exec: B::GraphExec,
    },
}

impl<B: Backend> Obj<B> {
    #[cfg(test)]
    fn kind(&self) -> CuObjectKind {
        match self {
            Obj::Context { .. } => CuObjectKind::Context,
            Obj::Module { .. } => CuObjectKind::Module,
            Obj::Function { .. } => CuObjectKind::Function,
            Obj::Stream { .. } => CuObjectKind::Stream,
            Obj::Event { .. } => CuObjectKind::Event,
            Obj::Graph { .. } | Obj::GraphExec { .. } => CuObjectKind::Graph,
        }
    }
}

/// A resolved function: its device, the backend's function, its layout.
pub(super) type FunctionRef<'a, B> = (u32, &'a <B as Backend>::Function, Option<&'a [ParamInfo]>);

/// The guest's objects, by handle.
pub(super) struct Objects<B: Backend>(pub(super) HashMap<Handle, Obj<B>>);

impl<B: Backend> Objects<B> {
    /// The device of a context handle.
    pub(super) fn ctx_device(&self, h: Handle) -> Result<u32, ExecError> {
        match self.0.get(&h) {
            Some(Obj::Context { device }) => Ok(*device),
            _ => Err(cu(CuObjectKind::Context.invalid())),
        }
    }

    /// The device and stream a [`StreamRef`] names.
    pub(super) fn lane(&self, s: StreamRef) -> Result<(u32, Lane<'_, B::Stream>), ExecError> {
        match s {
            StreamRef::Legacy { ctx } => Ok((self.ctx_device(ctx)?, Lane::Legacy)),
            StreamRef::PerThread { ctx } => Ok((self.ctx_device(ctx)?, Lane::PerThread)),
            StreamRef::Stream(h) => match self.0.get(&h) {
                Some(Obj::Stream { ctx, stream, .. }) => {
                    Ok((self.ctx_device(*ctx)?, Lane::Stream(stream)))
                }
                _ => Err(cu(CuObjectKind::Stream.invalid())),
            },
        }
    }

    /// A module, its context's device and its image info.
    pub(super) fn module(&self, h: Handle) -> Result<(u32, &B::Module, &ImageInfo), ExecError> {
        match self.0.get(&h) {
            Some(Obj::Module { ctx, module, info }) => Ok((self.ctx_device(*ctx)?, module, info)),
            _ => Err(cu(CuObjectKind::Module.invalid())),
        }
    }

    /// A function, its device and its parameter layout.
    pub(super) fn function(&self, h: Handle) -> Result<FunctionRef<'_, B>, ExecError> {
        match self.0.get(&h) {
            Some(Obj::Function {
                module,
                function,
                params,
            }) => Ok((self.module(*module)?.0, function, params.as_deref())),
            _ => Err(cu(CuObjectKind::Function.invalid())),
        }
    }

    /// An event and its device.
    pub(super) fn event(&self, h: Handle) -> Result<(u32, &B::Event), ExecError> {
        match self.0.get(&h) {
            Some(Obj::Event { ctx, event }) => Ok((self.ctx_device(*ctx)?, event)),
            _ => Err(cu(CuObjectKind::Event.invalid())),
        }
    }
}

/// A staged module image being received (see `graphs.rs`).
#[derive(Debug)]
pub(super) struct Upload {
    pub id: Handle,
    pub total: u64,
    pub bytes: Vec<u8>,
}

/// One guest session's CUDA state over a backend. Dropping it drops the
/// backend, which frees everything on the device.
pub struct CudaSession<B: Backend> {
    pub(super) backend: B,
    pub(super) limits: SessionLimits,
    pub(super) objects: Objects<B>,
    pub(super) mem: MemTable,
    /// A staged module image being received.
    pub(super) upload: Option<Upload>,
    initialized: bool,
}

impl<B: Backend> std::fmt::Debug for CudaSession<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaSession")
            .field("objects", &self.objects.0.len())
            .field("allocations", &self.mem.allocations())
            .field("memory", &self.mem.used())
            .finish_non_exhaustive()
    }
}

impl<B: Backend> CudaSession<B> {
    /// A session over `backend` with `limits`.
    pub fn new(backend: B, limits: SessionLimits) -> Self {
        let mem = MemTable::new(limits.max_device_memory);
        CudaSession {
            backend,
            limits,
            objects: Objects(HashMap::new()),
            mem,
            upload: None,
            initialized: false,
        }
    }

    /// The backend, for tests that inspect it.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Live guest objects plus allocations (what counts against the limit).
    pub fn live_objects(&self) -> usize {
        self.objects.0.len() + self.mem.allocations()
    }

    /// Bytes the session's allocations hold.
    pub fn memory_in_use(&self) -> u64 {
        self.mem.used()
    }

    /// Checks that `id` may name a new object and that one more fits.
    pub(super) fn check_new(&self, id: Handle) -> Result<(), ExecError> {
        if id == 0 || self.objects.0.contains_key(&id) {
            return Err(cu(INVALID_HANDLE));
        }
        self.check_room()
    }

    /// Checks that one more object (or allocation) fits.
    pub(super) fn check_room(&self) -> Result<(), ExecError> {
        if self.live_objects() >= self.limits.max_objects {
            return Err(ExecError::Protocol(ProtocolError::LimitExceeded));
        }
        Ok(())
    }

    /// Runs one request.
    pub fn execute(&mut self, req: Request, bulk: &Bulk<'_>) -> Result<Response, ExecError> {
        let takes_bulk = matches!(
            req,
            Request::CuModuleLoad(_)
                | Request::CuModuleStage(_)
                | Request::CuMemcpyHtoD(_)
                | Request::CuMemcpyDtoH(_)
        );
        let has_bulk = !bulk.input.is_empty() || !bulk.output.is_empty();
        if has_bulk && !takes_bulk {
            return Err(bad_descriptor());
        }
        if !self.initialized && !matches!(req, Request::CuInit(_)) {
            return Err(cu(NOT_INITIALIZED));
        }
        use Response as R;
        match req {
            Request::CuInit(r) => self.init(r).map(R::CuInit),
            Request::CuDeviceGetInfo(r) => self.device_info(r).map(R::CuDeviceGetInfo),
            Request::CuCtxCreate(r) => self.ctx_create(r).map(R::CuCtxCreate),
            Request::CuCtxDestroy(r) => self.ctx_destroy(r).map(R::CuCtxDestroy),
            Request::CuCtxSynchronize(r) => self.ctx_synchronize(r).map(R::CuCtxSynchronize),
            Request::CuCtxLimit(r) => self.ctx_limit(r).map(R::CuCtxLimit),
            Request::CuCtxStreamPriorityRange(r) => self
                .stream_priority_range(r)
                .map(R::CuCtxStreamPriorityRange),
            Request::CuModuleLoad(r) => self.module_load(r, bulk).map(R::CuModuleLoad),
            Request::CuModuleGetFunction(r) => self.get_function(r).map(R::CuModuleGetFunction),
            Request::CuModuleGetGlobal(r) => self.get_global(r).map(R::CuModuleGetGlobal),
            Request::CuModuleUnload(r) => self.module_unload(r).map(R::CuModuleUnload),
            Request::CuMemAlloc(r) => self.mem_alloc(r).map(R::CuMemAlloc),
            Request::CuMemFree(r) => self.mem_free(r).map(R::CuMemFree),
            Request::CuMemGetInfo(r) => self.mem_get_info(r).map(R::CuMemGetInfo),
            Request::CuMemcpyHtoD(r) => self.memcpy_htod(r, bulk).map(R::CuMemcpyHtoD),
            Request::CuMemcpyDtoH(r) => self.memcpy_dtoh(r, bulk).map(R::CuMemcpyDtoH),
            Request::CuMemcpyDtoD(r) => self.memcpy_dtod(r).map(R::CuMemcpyDtoD),
            Request::CuMemset(r) => self.memset(r).map(R::CuMemset),
            Request::CuPointerGetAttribute(r) => {
                self.pointer_attribute(r).map(R::CuPointerGetAttribute)
            }
            Request::CuStreamCreate(r) => self.stream_create(r).map(R::CuStreamCreate),
            Request::CuStreamDestroy(r) => self.stream_destroy(r).map(R::CuStreamDestroy),
            Request::CuStreamSynchronize(r) => {
                self.stream_synchronize(r).map(R::CuStreamSynchronize)
            }
            Request::CuStreamQuery(r) => self.stream_query(r).map(R::CuStreamQuery),
            Request::CuStreamWaitEvent(r) => self.stream_wait_event(r).map(R::CuStreamWaitEvent),
            Request::CuEventCreate(r) => self.event_create(r).map(R::CuEventCreate),
            Request::CuEventRecord(r) => self.event_record(r).map(R::CuEventRecord),
            Request::CuEventSynchronize(r) => self.event_synchronize(r).map(R::CuEventSynchronize),
            Request::CuEventQuery(r) => self.event_query(r).map(R::CuEventQuery),
            Request::CuEventElapsedTime(r) => self.event_elapsed(r).map(R::CuEventElapsedTime),
            Request::CuEventDestroy(r) => self.event_destroy(r).map(R::CuEventDestroy),
            Request::CuLaunchKernel(r) => self.launch(r).map(R::CuLaunchKernel),
            Request::CuFuncGetAttribute(r) => self.func_get_attribute(r).map(R::CuFuncGetAttribute),
            Request::CuFuncSetAttribute(r) => self.func_set_attribute(r).map(R::CuFuncSetAttribute),
            Request::CuFuncSetCacheConfig(r) => {
                self.func_set_cache_config(r).map(R::CuFuncSetCacheConfig)
            }
            Request::CuOccupancyMaxActiveBlocks(r) => self
                .occupancy_max_active_blocks(r)
                .map(R::CuOccupancyMaxActiveBlocks),
            Request::CuOccupancyMaxPotentialBlockSize(r) => self
                .occupancy_max_potential_block_size(r)
                .map(R::CuOccupancyMaxPotentialBlockSize),
            Request::CuOccupancyAvailableDynamicSmem(r) => self
                .occupancy_available_dynamic_smem(r)
                .map(R::CuOccupancyAvailableDynamicSmem),
            Request::CuModuleStage(r) => self.module_stage(r, bulk).map(R::CuModuleStage),
            Request::CuStreamMemOp(r) => self.stream_mem_op(r).map(R::CuStreamMemOp),
            Request::CuMemAllocAsync(r) => self.mem_alloc_async(r).map(R::CuMemAllocAsync),
            Request::CuMemFreeAsync(r) => self.mem_free_async(r).map(R::CuMemFreeAsync),
            Request::CuStreamBeginCapture(r) => {
                self.stream_begin_capture(r).map(R::CuStreamBeginCapture)
            }
            Request::CuStreamEndCapture(r) => self.stream_end_capture(r).map(R::CuStreamEndCapture),
            Request::CuGraphInstantiate(r) => self.graph_instantiate(r).map(R::CuGraphInstantiate),
            Request::CuGraphLaunch(r) => self.graph_launch(r).map(R::CuGraphLaunch),
            Request::CuGraphDestroy(r) => self.graph_destroy(r, false).map(R::CuGraphDestroy),
            Request::CuGraphExecDestroy(r) => {
                self.graph_destroy(r, true).map(R::CuGraphExecDestroy)
            }
            Request::Ping(_) => Ok(R::Ping(Empty {})),
            // Session control is the session layer's; other API families
            // are refused there too. This is the executor's own guard.
            Request::SessionOpen(_) | Request::SessionClose(_) => {
                Err(ExecError::Protocol(ProtocolError::UnsupportedOpcode))
            }
            _ => Err(ExecError::Protocol(ProtocolError::ApiUnavailable)),
        }
    }

    fn init(&mut self, r: Init) -> Result<InitInfo, ExecError> {
        if r.flags != 0 {
            return Err(cu(INVALID_VALUE));
        }
        self.initialized = true;
        Ok(InitInfo {
            driver_version: self.backend.driver_version(),
            device_count: self.backend.device_count(),
        })
    }

    fn check_device(&self, device: u32) -> Result<(), ExecError> {
        if device < self.backend.device_count() {
            Ok(())
        } else {
            Err(cu(INVALID_DEVICE))
        }
    }

    fn device_info(&mut self, r: DeviceQuery) -> Result<DeviceInfo, ExecError> {
        self.check_device(r.device)?;
        let mut info = self.backend.device_info(r.device).map_err(cu)?;
        info.total_mem = info.total_mem.min(self.mem.limit());
        info.attributes.truncate(MAX_DEVICE_ATTRIBUTES);
        Ok(info)
    }

    fn ctx_create(&mut self, r: CtxCreate) -> Result<Empty, ExecError> {
        self.check_new(r.id)?;
        self.check_device(r.device)?;
        rules::check_flags(r.flags, rules::CTX_FLAGS).map_err(cu)?;
        self.backend.open_device(r.device).map_err(cu)?;
        self.objects
            .0
            .insert(r.id, Obj::Context { device: r.device });
        Ok(Empty {})
    }

    fn ctx_destroy(&mut self, r: CtxDestroy) -> Result<Empty, ExecError> {
        let device = self.objects.ctx_device(r.ctx)?;
        // Everything made under the context goes with it: functions of its
        // modules first, then the modules, streams, events and memory.
        let modules: Vec<Handle> = self
            .objects
            .0
            .iter()
            .filter_map(|(h, o)| match o {
                Obj::Module { ctx, .. } if *ctx == r.ctx => Some(*h),
                _ => None,
            })
            .collect();
        for m in modules {
            self.drop_module(device, m);
        }
        // Executable graphs before the graphs they came from.
        for exec in [true, false] {
            let graphs: Vec<Handle> = self
                .objects
                .0
                .iter()
                .filter_map(|(h, o)| match o {
                    Obj::GraphExec { ctx, .. } if exec && *ctx == r.ctx => Some(*h),
                    Obj::Graph { ctx, .. } if !exec && *ctx == r.ctx => Some(*h),
                    _ => None,
                })
                .collect();
            for g in graphs {
                if let Err(code) = self.drop_graph(device, g) {
                    debug!(
                        handle = g,
                        code, "destroying a graph of a destroyed context failed"
                    );
                }
            }
        }
        let owned: Vec<Handle> = self
            .objects
            .0
            .iter()
            .filter_map(|(h, o)| match o {
                Obj::Stream { ctx, .. } | Obj::Event { ctx, .. } if *ctx == r.ctx => Some(*h),
                _ => None,
            })
            .collect();
        for h in owned {
            let failed = match self.objects.0.remove(&h) {
                Some(Obj::Stream { stream, .. }) => self.backend.stream_destroy(device, stream),
                Some(Obj::Event { event, .. }) => self.backend.event_destroy(device, event),
                _ => Ok(()),
            };
            if let Err(code) = failed {
                debug!(
                    handle = h,
                    code, "destroying an object of a destroyed context failed"
                );
            }
        }
        for region in self
            .mem
            .remove_where(|reg| reg.ctx == r.ctx && reg.owner == Owner::Alloc)
        {
            if let Err(code) = self.backend.mem_free(region.device, region.base) {
                debug!(code, "freeing memory of a destroyed context failed");
            }
        }
        self.objects.0.remove(&r.ctx);
        Ok(Empty {})
    }

    fn ctx_synchronize(&mut self, r: CtxSynchronize) -> Result<Empty, ExecError> {
        let device = self.objects.ctx_device(r.ctx)?;
        self.backend.synchronize(device).map_err(cu)?;
        Ok(Empty {})
    }

    fn ctx_limit(&mut self, r: CtxLimit) -> Result<SizeValue, ExecError> {
        let device = self.objects.ctx_device(r.ctx)?;
        if r.limit > rules::MAX_LIMIT {
            return Err(cu(UNSUPPORTED_LIMIT));
        }
        let value = self
            .backend
            .ctx_limit(device, r.limit, r.value)
            .map_err(cu)?;
        Ok(SizeValue { value })
    }

    fn stream_priority_range(&mut self, r: CtxPriorityRange) -> Result<PriorityRange, ExecError> {
        let device = self.objects.ctx_device(r.ctx)?;
        let (least, greatest) = self.backend.stream_priority_range(device).map_err(cu)?;
        Ok(PriorityRange { least, greatest })
    }

    /// Removes a module with its functions and globals, and unloads it.
    fn drop_module(&mut self, device: u32, h: Handle) {
        self.objects
            .0
            .retain(|_, o| !matches!(o, Obj::Function { module, .. } if *module == h));
        self.mem
            .remove_where(|reg| reg.owner == Owner::Global { module: h });
        if let Some(Obj::Module { module, .. }) = self.objects.0.remove(&h) {
            if let Err(code) = self.backend.module_unload(device, module) {
                debug!(handle = h, code, "module unload failed");
            }
        }
    }

    fn module_load(&mut self, r: ModuleLoad, bulk: &Bulk<'_>) -> Result<ModuleLoaded, ExecError> {
        let inline_len = if r.upload.is_some() { 0 } else { r.image_len };
        if !bulk.output.is_empty() || total_len(bulk.input) != inline_len {
            return Err(bad_descriptor());
        }
        // A staged image goes with this load, whatever its outcome.
        let staged = r
            .upload
            .map(|id| self.take_upload(id, r.image_len))
            .transpose()?;
        self.check_new(r.id)?;
        let device = self.objects.ctx_device(r.ctx)?;
        rules::check_jit_options(&r.options).map_err(cu)?;
        // The image is copied out of guest memory once, so that what is
        // checked and parsed is what the driver loads.
        let mut bytes = staged.unwrap_or_else(|| Cursor::new(bulk.input).gather(1));
        if !image::magic_matches(r.kind, &bytes) || !image::extent_fits(r.kind, &bytes) {
            return Err(cu(match r.kind {
                ImageKind::Ptx => INVALID_PTX,
                _ => INVALID_IMAGE,
            }));
        }
        let info = image::parse(r.kind, &bytes);
        if r.kind == ImageKind::Ptx {
            bytes.push(0);
        }
        let loaded = self.backend.module_load(
            device,
            &ModuleImage {
                bytes: &bytes,
                info: &info,
                options: &r.options,
                info_log_len: r.info_log_len,
                error_log_len: r.error_log_len,
            },
        );
        let mut reply = ModuleLoaded {
            result: 0,
            info_log: loaded.info_log,
            error_log: loaded.error_log,
        };
        reply.info_log.truncate(r.info_log_len as usize);
        reply.error_log.truncate(r.error_log_len as usize);
        match loaded.module {
            Ok(module) => {
                self.objects.0.insert(
                    r.id,
                    Obj::Module {
                        ctx: r.ctx,
                        module,
                        info,
                    },
                );
            }
            Err(code) => reply.result = code,
        }
        Ok(reply)
    }

    fn get_function(&mut self, r: GetFunction) -> Result<FunctionInfo, ExecError> {
        self.check_new(r.id)?;
        if r.name.contains('\0') {
            return Err(cu(INVALID_VALUE));
        }
        let (device, module, info) = self.objects.module(r.module)?;
        let (function, from_driver) = self
            .backend
            .get_function(device, module, &r.name)
            .map_err(cu)?;
        let params = from_driver.or_else(|| info.kernels.get(&r.name).cloned().flatten());
        self.objects.0.insert(
            r.id,
            Obj::Function {
                module: r.module,
                function,
                params: params.clone(),
            },
        );
        Ok(FunctionInfo { params })
    }

    fn get_global(&mut self, r: GetGlobal) -> Result<Global, ExecError> {
        if r.name.contains('\0') {
            return Err(cu(INVALID_VALUE));
        }
        let (device, module, _) = self.objects.module(r.module)?;
        let (ptr, size) = self
            .backend
            .get_global(device, module, &r.name)
            .map_err(cu)?;
        if !self.mem.has_global(ptr, r.module) {
            let ctx = match self.objects.0.get(&r.module) {
                Some(Obj::Module { ctx, .. }) => *ctx,
                _ => return Err(cu(INVALID_HANDLE)),
            };
            self.mem
                .insert(ptr, size, device, ctx, Owner::Global { module: r.module })
                .map_err(cu)?;
        }
        Ok(Global { ptr, size })
    }

    fn module_unload(&mut self, r: ModuleUnload) -> Result<Empty, ExecError> {
        let (device, ..) = self.objects.module(r.module)?;
        self.drop_module(device, r.module);
        Ok(Empty {})
    }

    /// Objects of each kind, for tests.
    #[cfg(test)]
    pub(super) fn count(&self, kind: CuObjectKind) -> usize {
        self.objects.0.values().filter(|o| o.kind() == kind).count()
    }
}
