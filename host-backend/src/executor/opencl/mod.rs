//! The OpenCL executor: replays a session's `Cl*` requests on the system's
//! OpenCL runtime through `opencl3`/`cl3`.
//!
//! | file | role |
//! |---|---|
//! | `mod.rs` | factory, executor, request dispatch, contexts and queues |
//! | `handles.rs` | the session's handle table and object wrappers |
//! | `info.rs` | `clGet*Info` queries and image formats |
//! | `advertise.rs` | platform and device info limited to what a session can use |
//! | `devices.rs` | sub-devices, timers, destructor callbacks |
//! | `program.rs` | programs, builds, binaries, kernels and their arguments |
//! | `headers.rs` | a build's guest header files, laid out for the compiler |
//! | `binaries.rs` | the tag on program binaries handed out, checked when they return |
//! | `compile.rs` | separate compilation, linking, IL and built-in programs, kernel clones |
//! | `enqueue.rs` | buffers and every enqueue, finish, flush, waits, user events |
//! | `images.rs` | images, samplers and the commands on images |
//! | `rect.rs` | rectangular buffer transfers, migration |
//! | `markers.rs` | marker and barrier events, held until they complete |
//! | `staging.rs` | copies of small posted writes the runtime has yet to finish |
//! | `user_events.rs` | the session's user events, completed from another thread when the guest is gone |
//! | `tests/` | tests against the system's runtime (POCL in CI) |
//!
//! The guest is untrusted: every handle is looked up with the kind it must
//! have, every range is checked before the runtime sees it, no host pointer
//! or runtime handle is ever returned, and the guest cannot make the runtime
//! read host files (`#include`, `-I`) or load native code (foreign binaries).

mod advertise;
mod binaries;
mod compile;
mod devices;
mod enqueue;
mod handles;
mod headers;
mod images;
mod info;
mod markers;
mod program;
mod rect;
mod staging;
#[cfg(test)]
mod tests;
mod user_events;

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};

use cl3::error_codes::{CL_INVALID_PROPERTY, CL_INVALID_VALUE};
use cl3::types::{
    cl_context_properties, cl_device_id, cl_int, cl_platform_id, cl_queue_properties,
};
use opencl3::command_queue::CommandQueue;
use opencl3::context::Context;
use protocol::opencl::{
    CreateCommandQueue, CreateContext, CreateContextFromType, Empty, GetDeviceIds, Handle,
    HandleList,
};
use protocol::{ProtocolError, Request, Response};

use super::{Abandon, Bulk, ExecError, Executor, ExecutorError, ExecutorFactory};
use crate::limits::SessionLimits;
use handles::{native, Object, Table};
use user_events::UserEvents;

/// `CL_QUEUE_PRIORITY_KHR` and `CL_QUEUE_THROTTLE_KHR`: plain values, safe to
/// pass on.
const CL_QUEUE_PRIORITY_KHR: u64 = 0x1096;
const CL_QUEUE_THROTTLE_KHR: u64 = 0x1097;
const CL_QUEUE_PROPERTIES: u64 = cl3::command_queue::CL_QUEUE_PROPERTIES as u64;
const CL_QUEUE_SIZE: u64 = cl3::command_queue::CL_QUEUE_SIZE as u64;

/// Serializes platform and device discovery: some runtimes (POCL 3) answer
/// `CL_DEVICE_NOT_FOUND` to a thread that asks while another initializes.
static DISCOVERY: Mutex<()> = Mutex::new(());

fn discovery() -> MutexGuard<'static, ()> {
    DISCOVERY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every platform with its devices of every type, in the runtime's order.
fn discover() -> Result<Vec<(cl_platform_id, Vec<cl_device_id>)>, cl_int> {
    let _guard = discovery();
    let platforms = cl3::platform::get_platform_ids()?;
    Ok(platforms
        .into_iter()
        .map(|p| {
            let all = cl3::device::CL_DEVICE_TYPE_ALL;
            (p, cl3::device::get_device_ids(p, all).unwrap_or_default())
        })
        .collect())
}

/// Discovers OpenCL platforms and opens [`OpenClExecutor`]s.
pub struct OpenClFactory {
    platforms: usize,
}

impl fmt::Debug for OpenClFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenClFactory")
            .field("platforms", &self.platforms)
            .finish()
    }
}

impl OpenClFactory {
    /// Finds the platforms, failing if there are none.
    pub fn new() -> Result<Self, ExecutorError> {
        // Discovering devices too initializes the runtime before any session.
        let platforms = discover()
            .map_err(|_| ExecutorError::NoOpenClPlatform)?
            .len();
        if platforms == 0 {
            return Err(ExecutorError::NoOpenClPlatform);
        }
        Ok(OpenClFactory { platforms })
    }
}

impl ExecutorFactory for OpenClFactory {
    fn name(&self) -> &'static str {
        "opencl"
    }
    fn features(&self) -> u64 {
        protocol::session::FEATURE_OPENCL
    }
    fn open(&self, limits: SessionLimits) -> Result<Box<dyn Executor>, ExecutorError> {
        Ok(Box::new(OpenClExecutor::new(limits)?))
    }
}

/// One session's view of the OpenCL runtime. Dropping it releases every
/// object the session created.
pub struct OpenClExecutor {
    limits: SessionLimits,
    table: Table,
    /// Bytes of live top-level buffers.
    memory: Arc<AtomicU64>,
    staging: staging::Staging,
    user_events: Arc<UserEvents>,
    /// Dropped after the table (fields drop after `Drop::drop`), once the
    /// session's user events have completed.
    markers: markers::Markers,
    callbacks_asked: devices::CallbacksAsked,
}

impl fmt::Debug for OpenClExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenClExecutor")
            .field("limits", &self.limits)
            .field("live_objects", &self.table.live())
            .field("memory", &self.memory)
            .finish()
    }
}

impl Drop for OpenClExecutor {
    fn drop(&mut self) {
        self.table.complete_pending_user_events();
        // Staged writes may wait behind commands those events held back;
        // they run now, and the runtime is then done with their copies.
        self.staging.settle();
        self.table.clear();
    }
}

impl OpenClExecutor {
    fn new(limits: SessionLimits) -> Result<Self, ExecutorError> {
        let found = discover().map_err(ExecutorError::Runtime)?;
        if found.is_empty() {
            return Err(ExecutorError::NoOpenClPlatform);
        }
        let platforms: Vec<cl_platform_id> = found.iter().map(|(p, _)| *p).collect();
        let mut table = Table::new(&platforms);
        // Give devices handles in the runtime's order up front, so that the
        // same device has the same handle whatever the guest asks first.
        for d in found.iter().flat_map(|(_, ds)| ds) {
            table.device_handle(*d);
        }
        Ok(OpenClExecutor {
            limits,
            table,
            memory: Arc::new(AtomicU64::new(0)),
            staging: staging::Staging::default(),
            user_events: Arc::default(),
            markers: markers::Markers::default(),
            callbacks_asked: devices::CallbacksAsked::default(),
        })
    }

    /// Bytes of device memory the session's buffers hold now.
    #[cfg(test)]
    fn memory_in_use(&self) -> u64 {
        self.memory.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn check_new(&self, id: Handle) -> Result<(), ExecError> {
        self.table.check_new(id, self.limits.max_objects)
    }

    fn get_device_ids(&mut self, req: GetDeviceIds) -> Result<HandleList, ExecError> {
        let platform = self.table.platform(req.platform)?;
        let ids = {
            let _guard = discovery();
            cl3::device::get_device_ids(platform, req.device_type).map_err(native)?
        };
        if ids.is_empty() {
            // `cl3` reports "none found" as an empty list; native is an error.
            return Err(native(cl3::error_codes::CL_DEVICE_NOT_FOUND));
        }
        let handles = ids
            .into_iter()
            .map(|d| self.table.device_handle(d))
            .collect();
        Ok(HandleList { handles })
    }

    /// Translates a zero-terminated context property list. Platform values
    /// are handles; any key not known to carry a plain value is refused.
    fn context_properties(&self, props: &[u64]) -> Result<Vec<cl_context_properties>, ExecError> {
        if props.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        let mut seen = Vec::new();
        let mut it = props.iter().copied();
        loop {
            let key = it.next().ok_or(native(CL_INVALID_PROPERTY))?;
            if key == 0 {
                break;
            }
            let value = it.next().ok_or(native(CL_INVALID_PROPERTY))?;
            if seen.contains(&key) {
                return Err(native(CL_INVALID_PROPERTY));
            }
            seen.push(key);
            let value = match key as cl_context_properties {
                cl3::context::CL_CONTEXT_PLATFORM => self.table.platform(value)? as isize,
                cl3::context::CL_CONTEXT_INTEROP_USER_SYNC => value as isize,
                _ => return Err(native(CL_INVALID_PROPERTY)),
            };
            out.extend([key as cl_context_properties, value]);
        }
        out.push(0);
        Ok(out)
    }

    fn create_context(&mut self, req: CreateContext) -> Result<Empty, ExecError> {
        self.check_new(req.id)?;
        let props = self.context_properties(&req.properties)?;
        if req.devices.is_empty() {
            return Err(native(CL_INVALID_VALUE));
        }
        let devices = req
            .devices
            .iter()
            .map(|&h| self.table.device(h))
            .collect::<Result<Vec<cl_device_id>, _>>()?;
        let ctx =
            cl3::context::create_context(&devices, props_ptr(&props), None, std::ptr::null_mut())
                .map_err(native)?;
        self.table
            .insert(req.id, Object::Context(Context::new(ctx, &devices)));
        Ok(Empty {})
    }

    fn create_context_from_type(
        &mut self,
        req: CreateContextFromType,
    ) -> Result<HandleList, ExecError> {
        self.check_new(req.id)?;
        let props = self.context_properties(&req.properties)?;
        let raw = cl3::context::create_context_from_type(
            req.device_type,
            props_ptr(&props),
            None,
            std::ptr::null_mut(),
        )
        .map_err(native)?;
        // Own the reference at once so that an error below releases it.
        let guard = Context::new(raw, &[]);
        let devices: Vec<cl_device_id> =
            cl3::context::get_context_info(raw, cl3::context::CL_CONTEXT_DEVICES)
                .map_err(native)?
                .to_vec_intptr()
                .into_iter()
                .map(|d| d as cl_device_id)
                .collect();
        let handles = devices
            .iter()
            .map(|&d| self.table.device_handle(d))
            .collect();
        // The reference moves to a wrapper that knows the device list.
        std::mem::forget(guard);
        let ctx = Context::new(raw, &devices);
        self.table.insert(req.id, Object::Context(ctx));
        Ok(HandleList { handles })
    }

    fn create_command_queue(&mut self, req: CreateCommandQueue) -> Result<Empty, ExecError> {
        self.check_new(req.id)?;
        let ctx = self.table.context(req.context)?.get();
        let device = self.table.device(req.device)?;
        let mut props: Vec<cl_queue_properties> = Vec::new();
        let mut bits = 0;
        let mut only_bits = true;
        if !req.properties.is_empty() {
            let mut it = req.properties.iter().copied();
            loop {
                let key = it.next().ok_or(native(CL_INVALID_VALUE))?;
                if key == 0 {
                    break;
                }
                let value = it.next().ok_or(native(CL_INVALID_VALUE))?;
                match key {
                    CL_QUEUE_PROPERTIES => {
                        check_queue_bits(value)?;
                        bits = value
                    }
                    CL_QUEUE_SIZE | CL_QUEUE_PRIORITY_KHR | CL_QUEUE_THROTTLE_KHR => {
                        only_bits = false
                    }
                    _ => return Err(native(CL_INVALID_VALUE)),
                }
                props.extend([key, value]);
            }
            props.push(0);
        }
        let props_ptr = if props.is_empty() {
            std::ptr::null()
        } else {
            props.as_ptr()
        };
        // SAFETY: `ctx` and `device` are live runtime objects owned by this
        // session's table; `props_ptr` is NULL or a zero-terminated list that
        // outlives the call.
        let created = unsafe {
            cl3::command_queue::create_command_queue_with_properties(ctx, device, props_ptr)
        };
        let queue = match created {
            Err(cl3::error_codes::DLOPEN_FUNCTION_NOT_AVAILABLE) if only_bits => {
                // An OpenCL 1.x runtime: the old entry point takes the bits.
                // SAFETY: as above; no pointers are passed.
                unsafe { cl3::command_queue::create_command_queue(ctx, device, bits) }
            }
            other => other,
        }
        .map_err(native)?;
        let dims =
            cl3::device::get_device_info(device, cl3::device::CL_DEVICE_MAX_WORK_ITEM_DIMENSIONS)
                .map(|v| v.to_uint())
                .unwrap_or(3);
        self.table
            .insert(req.id, Object::Queue(CommandQueue::new(queue, dims)));
        Ok(Empty {})
    }
}

/// `CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE`, `CL_QUEUE_PROFILING_ENABLE`.
const HOST_QUEUE_BITS: u64 = 0b11;
/// `CL_QUEUE_ON_DEVICE`, `CL_QUEUE_ON_DEVICE_DEFAULT`.
const ON_DEVICE: u64 = 1 << 2;
const ON_DEVICE_DEFAULT: u64 = 1 << 3;

/// Checks queue property bits before the runtime sees them: unknown bits
/// (or a default device queue that is not a device queue) are invalid;
/// device-side queues are valid but not supported, as the device info
/// says (and POCL 3.1 ends the whole process when asked for one).
fn check_queue_bits(bits: u64) -> Result<(), ExecError> {
    if bits & !(HOST_QUEUE_BITS | ON_DEVICE | ON_DEVICE_DEFAULT) != 0
        || (bits & ON_DEVICE_DEFAULT != 0 && bits & ON_DEVICE == 0)
    {
        return Err(native(CL_INVALID_VALUE));
    }
    if bits & ON_DEVICE != 0 {
        return Err(native(cl3::error_codes::CL_INVALID_QUEUE_PROPERTIES));
    }
    Ok(())
}

fn props_ptr(props: &[cl_context_properties]) -> *const cl_context_properties {
    if props.is_empty() {
        std::ptr::null()
    } else {
        props.as_ptr()
    }
}

/// Fails unless the request carried no bulk segments.
fn no_bulk(bulk: &Bulk<'_>) -> Result<(), ExecError> {
    if bulk.input.is_empty() && bulk.output.is_empty() {
        Ok(())
    } else {
        Err(ExecError::Protocol(ProtocolError::BadDescriptor))
    }
}

impl Executor for OpenClExecutor {
    fn execute(&mut self, req: Request, bulk: &Bulk<'_>) -> Result<Response, ExecError> {
        self.run(req, bulk, false)
    }

    fn execute_posted(&mut self, req: Request, bulk: &Bulk<'_>) -> Result<Response, ExecError> {
        self.run(req, bulk, true)
    }

    fn abandoner(&self) -> Option<Arc<dyn Abandon>> {
        Some(self.user_events.clone())
    }
}

impl OpenClExecutor {
    /// Runs one request; `posted` when the guest does not wait for it.
    fn run(&mut self, req: Request, bulk: &Bulk<'_>, posted: bool) -> Result<Response, ExecError> {
        // Only creations with host data and host transfers carry bulk data.
        if !matches!(
            req,
            Request::ClCreateBuffer(_)
                | Request::ClEnqueueWriteBuffer(_)
                | Request::ClEnqueueReadBuffer(_)
                | Request::ClCreateImage(_)
                | Request::ClEnqueueWriteImage(_)
                | Request::ClEnqueueReadImage(_)
                | Request::ClEnqueueWriteBufferRect(_)
                | Request::ClEnqueueReadBufferRect(_)
        ) {
            no_bulk(bulk)?;
        }
        use Response as R;
        match req {
            Request::Ping(_) => Ok(R::Ping(Empty {})),
            Request::ClGetPlatformIds(_) => Ok(R::ClGetPlatformIds(HandleList {
                handles: self.table.platform_handles(),
            })),
            Request::ClGetDeviceIds(r) => self.get_device_ids(r).map(R::ClGetDeviceIds),
            Request::ClGetInfo(r) => self.get_info(r).map(R::ClGetInfo),
            Request::ClGetImageFormats(r) => self.image_formats(r).map(R::ClGetImageFormats),
            Request::ClCreateContext(r) => self.create_context(r).map(R::ClCreateContext),
            Request::ClCreateContextFromType(r) => self
                .create_context_from_type(r)
                .map(R::ClCreateContextFromType),
            Request::ClCreateCommandQueue(r) => {
                self.create_command_queue(r).map(R::ClCreateCommandQueue)
            }
            Request::ClCreateBuffer(r) => self.create_buffer(r, bulk).map(R::ClCreateBuffer),
            Request::ClCreateSubBuffer(r) => self.create_sub_buffer(r).map(R::ClCreateSubBuffer),
            Request::ClCreateProgramWithSource(r) => self
                .create_program_with_source(r)
                .map(R::ClCreateProgramWithSource),
            Request::ClCreateProgramWithBinary(r) => self
                .create_program_with_binary(r)
                .map(R::ClCreateProgramWithBinary),
            Request::ClBuildProgram(r) => self.build_program(r).map(R::ClBuildProgram),
            Request::ClGetProgramBinaries(r) => {
                self.program_binaries(r).map(R::ClGetProgramBinaries)
            }
            Request::ClCreateKernel(r) => self.create_kernel(r).map(R::ClCreateKernel),
            Request::ClSetKernelArg(r) => self.set_kernel_arg(r).map(R::ClSetKernelArg),
            Request::ClCreateUserEvent(r) => self.create_user_event(r).map(R::ClCreateUserEvent),
            Request::ClSetUserEventStatus(r) => {
                self.set_user_event_status(r).map(R::ClSetUserEventStatus)
            }
            Request::ClRelease(r) => {
                self.callbacks_asked.forget(r.object);
                self.table
                    .release(r.kind, r.object)
                    .map(|()| R::ClRelease(Empty {}))
            }
            Request::ClEnqueueWriteBuffer(r) => self
                .write_buffer(r, bulk, posted)
                .map(R::ClEnqueueWriteBuffer),
            Request::ClEnqueueReadBuffer(r) => {
                self.read_buffer(r, bulk).map(R::ClEnqueueReadBuffer)
            }
            Request::ClEnqueueCopyBuffer(r) => self.copy_buffer(r).map(R::ClEnqueueCopyBuffer),
            Request::ClEnqueueFillBuffer(r) => self.fill_buffer(r).map(R::ClEnqueueFillBuffer),
            Request::ClEnqueueNdRange(r) => self.nd_range(r).map(R::ClEnqueueNdRange),
            Request::ClEnqueueMarker(r) => self.marker(r).map(R::ClEnqueueMarker),
            Request::ClFinish(r) => self.finish(r).map(R::ClFinish),
            Request::ClFlush(r) => self.flush(r).map(R::ClFlush),
            Request::ClWaitForEvents(r) => self.wait_for_events(r).map(R::ClWaitForEvents),
            other => self.run_more(other, bulk),
        }
    }

    /// The requests of images, samplers, rectangles, separate compilation,
    /// sub-devices and the rest added since the first protocol version.
    fn run_more(&mut self, req: Request, bulk: &Bulk<'_>) -> Result<Response, ExecError> {
        use Response as R;
        match req {
            Request::ClWaitForEventsFor(r) => {
                self.wait_for_events_for(r).map(R::ClWaitForEventsFor)
            }
            Request::ClGetDeviceTimer(r) => self.device_timer(r).map(R::ClGetDeviceTimer),
            Request::ClCreateSubDevices(r) => self.create_sub_devices(r).map(R::ClCreateSubDevices),
            Request::ClSetDestructorCallback(r) => {
                self.destructor_callback(r).map(R::ClSetDestructorCallback)
            }
            Request::ClCreateImage(r) => self.create_image(r, bulk).map(R::ClCreateImage),
            Request::ClCreateSampler(r) => self.create_sampler(r).map(R::ClCreateSampler),
            Request::ClEnqueueReadImage(r) => {
                self.host_image(r, bulk, true).map(R::ClEnqueueReadImage)
            }
            Request::ClEnqueueWriteImage(r) => {
                self.host_image(r, bulk, false).map(R::ClEnqueueWriteImage)
            }
            Request::ClEnqueueCopyImage(r) => self.copy_image(r).map(R::ClEnqueueCopyImage),
            Request::ClEnqueueFillImage(r) => self.fill_image(r).map(R::ClEnqueueFillImage),
            Request::ClEnqueueCopyImageToBuffer(r) => self
                .copy_image_buffer(r, true)
                .map(R::ClEnqueueCopyImageToBuffer),
            Request::ClEnqueueCopyBufferToImage(r) => self
                .copy_image_buffer(r, false)
                .map(R::ClEnqueueCopyBufferToImage),
            Request::ClEnqueueReadBufferRect(r) => self
                .buffer_rect(r, bulk, true)
                .map(R::ClEnqueueReadBufferRect),
            Request::ClEnqueueWriteBufferRect(r) => self
                .buffer_rect(r, bulk, false)
                .map(R::ClEnqueueWriteBufferRect),
            Request::ClEnqueueCopyBufferRect(r) => {
                self.copy_buffer_rect(r).map(R::ClEnqueueCopyBufferRect)
            }
            Request::ClEnqueueMigrate(r) => self.migrate(r).map(R::ClEnqueueMigrate),
            Request::ClCompileProgram(r) => self.compile_program(r).map(R::ClCompileProgram),
            Request::ClLinkProgram(r) => self.link_program(r).map(R::ClLinkProgram),
            Request::ClCreateProgramWithIl(r) => {
                self.create_program_with_il(r).map(R::ClCreateProgramWithIl)
            }
            Request::ClCreateProgramWithBuiltIns(r) => self
                .create_program_with_built_ins(r)
                .map(R::ClCreateProgramWithBuiltIns),
            Request::ClSetSpecConstant(r) => self.set_spec_constant(r).map(R::ClSetSpecConstant),
            Request::ClCloneKernel(r) => self.clone_kernel(r).map(R::ClCloneKernel),
            Request::SessionOpen(_) | Request::SessionClose(_) => {
                Err(ExecError::Protocol(ProtocolError::UnsupportedOpcode))
            }
            // Another API family: the session layer refuses these before
            // they get here; this is the executor's own guard.
            _ => Err(ExecError::Protocol(ProtocolError::ApiUnavailable)),
        }
    }
}

/// Sets the key tagging the program binaries this process hands out (see
/// `binaries.rs`); a worker is given its daemon's key before its first
/// session. False if a key was already in use.
pub fn set_binary_key(key: [u8; 16]) -> bool {
    binaries::set_key(key)
}

/// Lets builds include the guest's header files, laid out below
/// `scratch` (see `headers.rs`). Only a sandboxed worker calls this: there
/// the compiler can read nothing else of the host.
pub fn enable_guest_headers(scratch: &std::path::Path) -> bool {
    headers::enable(scratch)
}

/// A fresh random key for [`set_binary_key`].
pub fn random_binary_key() -> std::io::Result<[u8; 16]> {
    binaries::random_key()
}
