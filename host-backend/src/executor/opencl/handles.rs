//! The session's object table: guest handles to runtime objects.
//!
//! Platforms and devices get handles from the daemon, in a range the guest
//! may never choose (the top bit set), so a guest that picks its own handles
//! from 1 upwards can never collide with them. Every other handle is chosen by
//! the guest at creation and checked here. Each lookup names the kind it
//! expects; a missing or wrong-kind handle fails with the native
//! `CL_INVALID_<OBJECT>` code.
//!
//! Runtime objects are held by `opencl3`'s RAII wrappers, so removing an entry
//! (or dropping the table) releases the session's reference; the runtime
//! frees the object once nothing else (a sub-buffer, a queued command) holds it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cl3::error_codes::{
    CL_INVALID_COMMAND_QUEUE, CL_INVALID_CONTEXT, CL_INVALID_DEVICE, CL_INVALID_EVENT,
    CL_INVALID_KERNEL, CL_INVALID_MEM_OBJECT, CL_INVALID_PLATFORM, CL_INVALID_PROGRAM,
    CL_INVALID_SAMPLER, CL_INVALID_VALUE,
};
use cl3::types::{cl_device_id, cl_event, cl_int, cl_mem, cl_platform_id};
use opencl3::command_queue::CommandQueue;
use opencl3::context::Context;
use opencl3::device::Device;
use opencl3::event::Event;
use opencl3::kernel::Kernel;
use opencl3::memory::{Buffer, ClMem};
use opencl3::platform::Platform;
use opencl3::program::Program;
use protocol::opencl::{Handle, ObjectKind};
use protocol::ProtocolError;

use crate::executor::ExecError;

/// Handles with this bit set are assigned by the daemon (platforms, devices);
/// a guest may not choose one.
pub(super) const DAEMON_HANDLE_BIT: Handle = 1 << 63;
const PLATFORM_TAG: Handle = DAEMON_HANDLE_BIT | (1 << 32);
const DEVICE_TAG: Handle = DAEMON_HANDLE_BIT | (2 << 32);

/// The native error for a missing or wrong-kind handle of `kind`.
pub(super) fn invalid(kind: ObjectKind) -> ExecError {
    ExecError::Native(match kind {
        ObjectKind::Platform => CL_INVALID_PLATFORM,
        ObjectKind::Device => CL_INVALID_DEVICE,
        ObjectKind::Context => CL_INVALID_CONTEXT,
        ObjectKind::CommandQueue => CL_INVALID_COMMAND_QUEUE,
        ObjectKind::MemObject => CL_INVALID_MEM_OBJECT,
        ObjectKind::Program => CL_INVALID_PROGRAM,
        ObjectKind::Kernel => CL_INVALID_KERNEL,
        ObjectKind::Event => CL_INVALID_EVENT,
        ObjectKind::Sampler => CL_INVALID_SAMPLER,
    })
}

/// Shorthand for a native error.
pub(super) fn native(code: cl_int) -> ExecError {
    ExecError::Native(code)
}

/// Bytes of device memory a buffer holds against the session's budget,
/// given back when the runtime object is dropped.
#[derive(Debug)]
pub(super) struct Charge {
    pool: Arc<AtomicU64>,
    bytes: u64,
}

impl Charge {
    /// Adds `bytes` to `pool` until the charge drops.
    pub(super) fn new(pool: &Arc<AtomicU64>, bytes: u64) -> Self {
        pool.fetch_add(bytes, Ordering::Relaxed);
        Charge {
            pool: Arc::clone(pool),
            bytes,
        }
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.pool.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// A buffer or sub-buffer.
///
/// Fields drop in order: the runtime object first, then the parent it keeps
/// alive, then the memory charge.
#[derive(Debug)]
pub(super) struct MemObj {
    buffer: Buffer<u8>,
    /// Size in bytes.
    pub size: u64,
    _parent: Option<Arc<MemObj>>,
    _charge: Option<Charge>,
}

impl MemObj {
    /// A top-level buffer charged against the session's memory budget.
    pub(super) fn buffer(buffer: Buffer<u8>, size: u64, charge: Charge) -> Self {
        MemObj {
            buffer,
            size,
            _parent: None,
            _charge: Some(charge),
        }
    }

    /// A sub-buffer, which keeps its parent alive and costs no new memory.
    pub(super) fn sub_buffer(buffer: Buffer<u8>, size: u64, parent: Arc<MemObj>) -> Self {
        MemObj {
            buffer,
            size,
            _parent: Some(parent),
            _charge: None,
        }
    }

    /// The runtime handle, for runtime calls only.
    pub(super) fn raw(&self) -> cl_mem {
        self.buffer.get()
    }
}

/// How a kernel argument may be set, from `clGetKernelArgInfo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ArgClass {
    /// A `__global`/`__constant` pointer, image, pipe or other object: only a
    /// memory object (or NULL) by handle.
    Memory,
    /// A `sampler_t`: only a sampler by handle.
    Sampler,
    /// A `__local` pointer: only a size.
    Local,
    /// A plain value: only bytes.
    Value,
    /// The runtime has no argument info (a program from a binary).
    Unknown,
}

/// What the session knows about one kernel argument.
#[derive(Debug, Default)]
pub(super) struct ArgSlot {
    /// Cached classification.
    pub class: Option<ArgClass>,
    /// The memory object set on the argument, kept alive while it is set
    /// so that a later launch cannot reach a freed object.
    pub pinned: Option<Arc<MemObj>>,
}

/// A kernel and its arguments.
#[derive(Debug)]
pub(super) struct KernelObj {
    pub kernel: Kernel,
    pub args: Vec<ArgSlot>,
}

/// An event, and whether the guest made it with `clCreateUserEvent`.
#[derive(Debug)]
pub(super) struct EventObj {
    pub event: Event,
    pub user: bool,
}

/// Everything a guest handle can name, except platforms and devices.
#[derive(Debug)]
pub(super) enum Object {
    Context(Context),
    Queue(CommandQueue),
    Mem(Arc<MemObj>),
    Program(Program),
    Kernel(KernelObj),
    Event(EventObj),
}

impl Object {
    fn kind(&self) -> ObjectKind {
        match self {
            Object::Context(_) => ObjectKind::Context,
            Object::Queue(_) => ObjectKind::CommandQueue,
            Object::Mem(_) => ObjectKind::MemObject,
            Object::Program(_) => ObjectKind::Program,
            Object::Kernel(_) => ObjectKind::Kernel,
            Object::Event(_) => ObjectKind::Event,
        }
    }
}

/// One session's objects.
#[derive(Debug, Default)]
pub(super) struct Table {
    platforms: Vec<(Handle, Platform)>,
    devices: Vec<(Handle, Device)>,
    objects: HashMap<Handle, Object>,
    /// User events the guest released before completing them; failed when
    /// the session ends so commands waiting on them can finish.
    orphans: Vec<Event>,
}

impl Table {
    /// A table knowing the runtime's platforms, in the runtime's order.
    pub(super) fn new(platforms: &[cl_platform_id]) -> Self {
        let mut t = Table::default();
        for (i, &p) in platforms.iter().enumerate() {
            t.platforms
                .push((PLATFORM_TAG | (i as Handle + 1), Platform::new(p)));
        }
        t
    }

    /// Handles of all platforms.
    pub(super) fn platform_handles(&self) -> Vec<Handle> {
        self.platforms.iter().map(|(h, _)| *h).collect()
    }

    /// The runtime platform named by `h`.
    pub(super) fn platform(&self, h: Handle) -> Result<cl_platform_id, ExecError> {
        self.platforms
            .iter()
            .find(|(ph, _)| *ph == h)
            .map(|(_, p)| p.id())
            .ok_or(invalid(ObjectKind::Platform))
    }

    /// The runtime device named by `h`.
    pub(super) fn device(&self, h: Handle) -> Result<cl_device_id, ExecError> {
        self.devices
            .iter()
            .find(|(dh, _)| *dh == h)
            .map(|(_, d)| d.id())
            .ok_or(invalid(ObjectKind::Device))
    }

    /// The handle of a runtime device, assigning the next one on first sight.
    pub(super) fn device_handle(&mut self, id: cl_device_id) -> Handle {
        if let Some((h, _)) = self.devices.iter().find(|(_, d)| d.id() == id) {
            return *h;
        }
        let h = DEVICE_TAG | (self.devices.len() as Handle + 1);
        self.devices.push((h, Device::new(id)));
        h
    }

    /// Objects the guest holds (each counts against `max_objects`).
    pub(super) fn live(&self) -> usize {
        self.objects.len() + self.orphans.len()
    }

    /// Checks that `id` may name a new object and that one more fits.
    pub(super) fn check_new(&self, id: Handle, max_objects: usize) -> Result<(), ExecError> {
        if id == 0 || id & DAEMON_HANDLE_BIT != 0 || self.objects.contains_key(&id) {
            return Err(native(CL_INVALID_VALUE));
        }
        if self.live() >= max_objects {
            return Err(ExecError::Protocol(ProtocolError::LimitExceeded));
        }
        Ok(())
    }

    /// Stores a new object; the caller ran [`Table::check_new`] first.
    pub(super) fn insert(&mut self, id: Handle, obj: Object) {
        self.objects.insert(id, obj);
    }

    fn get(&self, h: Handle, kind: ObjectKind) -> Result<&Object, ExecError> {
        match self.objects.get(&h) {
            Some(o) if o.kind() == kind => Ok(o),
            _ => Err(invalid(kind)),
        }
    }

    pub(super) fn context(&self, h: Handle) -> Result<&Context, ExecError> {
        match self.get(h, ObjectKind::Context)? {
            Object::Context(c) => Ok(c),
            _ => Err(invalid(ObjectKind::Context)),
        }
    }

    pub(super) fn queue(&self, h: Handle) -> Result<&CommandQueue, ExecError> {
        match self.get(h, ObjectKind::CommandQueue)? {
            Object::Queue(q) => Ok(q),
            _ => Err(invalid(ObjectKind::CommandQueue)),
        }
    }

    pub(super) fn mem(&self, h: Handle) -> Result<&Arc<MemObj>, ExecError> {
        match self.get(h, ObjectKind::MemObject)? {
            Object::Mem(m) => Ok(m),
            _ => Err(invalid(ObjectKind::MemObject)),
        }
    }

    pub(super) fn program(&self, h: Handle) -> Result<&Program, ExecError> {
        match self.get(h, ObjectKind::Program)? {
            Object::Program(p) => Ok(p),
            _ => Err(invalid(ObjectKind::Program)),
        }
    }

    pub(super) fn kernel(&self, h: Handle) -> Result<&KernelObj, ExecError> {
        match self.get(h, ObjectKind::Kernel)? {
            Object::Kernel(k) => Ok(k),
            _ => Err(invalid(ObjectKind::Kernel)),
        }
    }

    pub(super) fn kernel_mut(&mut self, h: Handle) -> Result<&mut KernelObj, ExecError> {
        match self.objects.get_mut(&h) {
            Some(Object::Kernel(k)) => Ok(k),
            _ => Err(invalid(ObjectKind::Kernel)),
        }
    }

    pub(super) fn event(&self, h: Handle) -> Result<&EventObj, ExecError> {
        match self.get(h, ObjectKind::Event)? {
            Object::Event(e) => Ok(e),
            _ => Err(invalid(ObjectKind::Event)),
        }
    }

    /// The runtime events of a list of handles; `code` is the error for a
    /// bad one (`CL_INVALID_EVENT_WAIT_LIST` for wait lists).
    pub(super) fn events(&self, hs: &[Handle], code: cl_int) -> Result<Vec<cl_event>, ExecError> {
        hs.iter()
            .map(|&h| {
                self.event(h)
                    .map(|e| e.event.get())
                    .map_err(|_| native(code))
            })
            .collect()
    }

    /// Drops the session's reference to an object (`clRelease*`).
    pub(super) fn release(&mut self, kind: ObjectKind, h: Handle) -> Result<(), ExecError> {
        match kind {
            // Root devices and platforms are not reference counted.
            ObjectKind::Platform => self.platform(h).map(|_| ()),
            ObjectKind::Device => self.device(h).map(|_| ()),
            ObjectKind::Sampler => Err(invalid(kind)),
            _ => {
                self.get(h, kind)?;
                if let Some(Object::Event(e)) = self.objects.remove(&h) {
                    if e.user && !is_complete(&e.event) {
                        self.orphans.push(e.event);
                    }
                }
                Ok(())
            }
        }
    }

    /// Completes every user event that has not completed, so that commands
    /// waiting on them finish and release what they hold.
    ///
    /// Completed, not failed: POCL 3.1 aborts the whole process when a
    /// failed user event fails a barrier that no event handle refers to
    /// while commands wait behind it (`pocl_update_event_failed`), which a
    /// guest could arrange and then disconnect. The released commands run
    /// on the session's own objects, as they would have had the guest set
    /// the event.
    pub(super) fn complete_pending_user_events(&mut self) {
        let user = self.objects.values().filter_map(|o| match o {
            Object::Event(e) if e.user => Some(&e.event),
            _ => None,
        });
        for ev in user.chain(self.orphans.iter()) {
            if !is_complete(ev) {
                // An error here only means the status was already set.
                let _ = cl3::event::set_user_event_status(ev.get(), cl3::event::CL_COMPLETE);
            }
        }
    }

    /// Releases everything, dependents before what they depend on.
    pub(super) fn clear(&mut self) {
        let order = [
            ObjectKind::Kernel,
            ObjectKind::Program,
            ObjectKind::Event,
            ObjectKind::MemObject,
            ObjectKind::CommandQueue,
            ObjectKind::Context,
        ];
        for kind in order {
            self.objects.retain(|_, o| o.kind() != kind);
        }
        self.orphans.clear();
    }
}

pub(super) fn is_complete(ev: &Event) -> bool {
    cl3::event::get_event_info(ev.get(), cl3::event::CL_EVENT_COMMAND_EXECUTION_STATUS)
        .is_ok_and(|v| v.to_int() <= cl3::event::CL_COMPLETE)
}
