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

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cl3::error_codes::{
    CL_INVALID_COMMAND_QUEUE, CL_INVALID_CONTEXT, CL_INVALID_DEVICE, CL_INVALID_EVENT,
    CL_INVALID_KERNEL, CL_INVALID_MEM_OBJECT, CL_INVALID_PLATFORM, CL_INVALID_PROGRAM,
    CL_INVALID_SAMPLER, CL_INVALID_VALUE,
};
use cl3::types::{cl_device_id, cl_event, cl_int, cl_mem, cl_platform_id, cl_program, cl_sampler};
use opencl3::command_queue::CommandQueue;
use opencl3::context::Context;
use opencl3::device::{Device, SubDevice};
use opencl3::event::Event;
use opencl3::kernel::Kernel;
use opencl3::memory::{Buffer, ClMem, Image, Sampler};
use opencl3::platform::Platform;
use opencl3::program::Program;
use protocol::opencl::layout::Triple;
use protocol::opencl::{Handle, ObjectKind};
use protocol::ProtocolError;

use crate::executor::ExecError;

/// Handles with this bit set are assigned by the daemon (platforms, devices);
/// a guest may not choose one.
pub(super) const DAEMON_HANDLE_BIT: Handle = 1 << 63;
const PLATFORM_TAG: Handle = DAEMON_HANDLE_BIT | (1 << 32);
const DEVICE_TAG: Handle = DAEMON_HANDLE_BIT | (2 << 32);
const SUB_DEVICE_TAG: Handle = DAEMON_HANDLE_BIT | (3 << 32);

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

/// The runtime object of a memory object.
#[derive(Debug)]
enum RuntimeMem {
    Buffer(Buffer<u8>),
    Image(Image),
}

// SAFETY: a `cl_mem` is a handle the runtime lets any thread use (every
// OpenCL call but `clSetKernelArg` on one kernel is thread-safe), and
// neither variant has state of its own beyond the handle.
unsafe impl Sync for RuntimeMem {}

/// A sampler, shared between the table and the kernel arguments it is set
/// on.
#[derive(Debug)]
pub(super) struct SamplerObj(Sampler);

// SAFETY: as for `RuntimeMem`: a `cl_sampler` is a handle any thread may
// use, and the wrapper holds nothing else.
unsafe impl Sync for SamplerObj {}

impl SamplerObj {
    /// Takes over the reference to a new sampler.
    pub(super) fn new(raw: cl_sampler) -> Self {
        SamplerObj(Sampler::new(raw))
    }

    /// The runtime handle, for runtime calls only.
    pub(super) fn get(&self) -> cl_sampler {
        self.0.get()
    }
}

/// What an image is, for checking its commands' ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ImageMeta {
    /// `cl_mem_object_type`.
    pub image_type: u32,
    /// Size in each coordinate (see `layout::image_extent`).
    pub extent: Triple,
    /// Bytes per element, as the runtime reports them.
    pub element: u64,
}

/// A buffer, sub-buffer or image.
///
/// Fields drop in order: the runtime object first, then the parent it keeps
/// alive, then the memory charge.
#[derive(Debug)]
pub(super) struct MemObj {
    mem: RuntimeMem,
    /// Size in bytes.
    pub size: u64,
    /// `Some` for an image.
    pub image: Option<ImageMeta>,
    /// The guest asked for `CL_MEM_USE_HOST_PTR` (here or on the parent),
    /// which the daemon made a copy: info answers say what the guest asked.
    pub use_host_ptr: bool,
    _parent: Option<Arc<MemObj>>,
    _charge: Option<Charge>,
}

impl MemObj {
    /// A top-level buffer charged against the session's memory budget.
    pub(super) fn buffer(
        buffer: Buffer<u8>,
        size: u64,
        charge: Charge,
        use_host_ptr: bool,
    ) -> Self {
        MemObj {
            mem: RuntimeMem::Buffer(buffer),
            size,
            image: None,
            use_host_ptr,
            _parent: None,
            _charge: Some(charge),
        }
    }

    /// A sub-buffer, which keeps its parent alive and costs no new memory.
    pub(super) fn sub_buffer(buffer: Buffer<u8>, size: u64, parent: Arc<MemObj>) -> Self {
        MemObj {
            mem: RuntimeMem::Buffer(buffer),
            size,
            image: None,
            use_host_ptr: parent.use_host_ptr,
            _parent: Some(parent),
            _charge: None,
        }
    }

    /// An image: charged when it has memory of its own, else keeping the
    /// buffer or image it is made from alive.
    pub(super) fn image(
        image: Image,
        size: u64,
        meta: ImageMeta,
        use_host_ptr: bool,
        backing: Result<Charge, Arc<MemObj>>,
    ) -> Self {
        let (parent, charge) = match backing {
            Ok(c) => (None, Some(c)),
            Err(p) => (Some(p), None),
        };
        MemObj {
            mem: RuntimeMem::Image(image),
            size,
            image: Some(meta),
            use_host_ptr,
            _parent: parent,
            _charge: charge,
        }
    }

    /// The runtime handle, for runtime calls only.
    pub(super) fn raw(&self) -> cl_mem {
        match &self.mem {
            RuntimeMem::Buffer(b) => b.get(),
            RuntimeMem::Image(i) => i.get(),
        }
    }

    /// True for a buffer or sub-buffer.
    pub(super) fn is_buffer(&self) -> bool {
        self.image.is_none()
    }
}

/// A program: one reference of the session's own, released on drop.
#[derive(Debug)]
pub(super) struct ProgramObj(cl_program);

// SAFETY: a `cl_program` is a handle any thread may use (OpenCL calls on
// programs are thread-safe), and the wrapper holds nothing else.
unsafe impl Send for ProgramObj {}
// SAFETY: as above.
unsafe impl Sync for ProgramObj {}

impl ProgramObj {
    /// Takes over the reference to a program the runtime just made.
    pub(super) fn new(raw: cl_program) -> Self {
        ProgramObj(raw)
    }

    /// The runtime handle, for runtime calls only.
    pub(super) fn get(&self) -> cl_program {
        self.0
    }
}

impl From<Program> for ProgramObj {
    /// Takes a reference of its own, then lets the wrapper release its.
    fn from(p: Program) -> Self {
        let raw = p.get();
        // SAFETY: `raw` is the live program `p` holds a reference to.
        let retained = unsafe { cl3::program::retain_program(raw) };
        match retained {
            Ok(()) => ProgramObj(raw),
            // Should the retain fail, keep the wrapper's reference by
            // not dropping it.
            Err(_) => {
                std::mem::forget(p);
                ProgramObj(raw)
            }
        }
    }
}

impl Drop for ProgramObj {
    fn drop(&mut self) {
        // SAFETY: the reference this value holds, released once. An error
        // here only means the runtime already considers it gone.
        let _ = unsafe { cl3::program::release_program(self.0) };
    }
}

/// How a kernel argument may be set, from `clGetKernelArgInfo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ArgClass {
    /// A `__global`/`__constant` pointer: only a buffer (or NULL) by handle.
    Memory,
    /// An image type: only an image by handle.
    Image,
    /// A pipe, queue or event type, none of which this daemon creates:
    /// only NULL.
    Object,
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
    /// The sampler set on the argument, kept alive likewise.
    pub sampler: Option<Arc<SamplerObj>>,
}

/// A kernel and its arguments.
#[derive(Debug)]
pub(super) struct KernelObj {
    pub kernel: Kernel,
    pub args: Vec<ArgSlot>,
    /// The guest asked for argument info (`-cl-kernel-arg-info`) when it
    /// built the kernel's program; the daemon always does, for its checks.
    pub arg_info: bool,
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
    Program(ProgramObj),
    Kernel(KernelObj),
    Event(EventObj),
    Sampler(Arc<SamplerObj>),
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
            Object::Sampler(_) => ObjectKind::Sampler,
        }
    }
}

/// One session's objects.
#[derive(Debug, Default)]
pub(super) struct Table {
    platforms: Vec<(Handle, Platform)>,
    devices: Vec<(Handle, Device)>,
    /// Sub-devices, each holding one reference, by handle.
    sub_devices: HashMap<Handle, SubDevice>,
    /// The number of the last sub-device handle given out.
    last_sub_device: Handle,
    objects: HashMap<Handle, Object>,
    /// Programs whose guest asked for kernel argument info.
    arg_info: HashSet<Handle>,
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

    /// The runtime device (or sub-device) named by `h`.
    pub(super) fn device(&self, h: Handle) -> Result<cl_device_id, ExecError> {
        if let Some(d) = self.sub_devices.get(&h) {
            return Ok(d.id());
        }
        self.devices
            .iter()
            .find(|(dh, _)| *dh == h)
            .map(|(_, d)| d.id())
            .ok_or(invalid(ObjectKind::Device))
    }

    /// Takes over the reference to a new sub-device and names it; the
    /// caller ran [`Table::check_new_daemon`] first.
    pub(super) fn insert_sub_device(&mut self, id: cl_device_id) -> Handle {
        self.last_sub_device += 1;
        let h = SUB_DEVICE_TAG | (self.last_sub_device & 0xffff_ffff);
        self.sub_devices.insert(h, SubDevice::new(id));
        h
    }

    /// Checks that `n` more daemon-named objects (sub-devices) fit.
    pub(super) fn check_new_daemon(&self, n: usize, max_objects: usize) -> Result<(), ExecError> {
        if self.live().saturating_add(n) > max_objects
            || self.last_sub_device.saturating_add(n as Handle) > 0xffff_ffff
        {
            return Err(ExecError::Protocol(ProtocolError::LimitExceeded));
        }
        Ok(())
    }

    /// Records whether the guest asked for kernel argument info on `program`.
    pub(super) fn set_arg_info(&mut self, program: Handle, wanted: bool) {
        if wanted {
            self.arg_info.insert(program);
        } else {
            self.arg_info.remove(&program);
        }
    }

    /// Whether the guest asked for kernel argument info on `program`.
    pub(super) fn arg_info(&self, program: Handle) -> bool {
        self.arg_info.contains(&program)
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
        self.objects.len() + self.orphans.len() + self.sub_devices.len()
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

    /// A buffer or sub-buffer (not an image), as buffer commands need.
    pub(super) fn buffer(&self, h: Handle) -> Result<&Arc<MemObj>, ExecError> {
        self.mem(h).and_then(|m| {
            if m.is_buffer() {
                Ok(m)
            } else {
                Err(invalid(ObjectKind::MemObject))
            }
        })
    }

    /// An image, with what the daemon knows of it.
    pub(super) fn image(&self, h: Handle) -> Result<(&Arc<MemObj>, ImageMeta), ExecError> {
        let m = self.mem(h)?;
        m.image
            .map(|i| (m, i))
            .ok_or(invalid(ObjectKind::MemObject))
    }

    pub(super) fn program(&self, h: Handle) -> Result<&ProgramObj, ExecError> {
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

    pub(super) fn sampler(&self, h: Handle) -> Result<&Arc<SamplerObj>, ExecError> {
        match self.get(h, ObjectKind::Sampler)? {
            Object::Sampler(s) => Ok(s),
            _ => Err(invalid(ObjectKind::Sampler)),
        }
    }

    /// A kernel's object and a copy of its argument state, for a clone.
    pub(super) fn kernel_args(&self, h: Handle) -> Result<(&KernelObj, Vec<ArgSlot>), ExecError> {
        let k = self.kernel(h)?;
        let args = k
            .args
            .iter()
            .map(|a| ArgSlot {
                class: a.class,
                pinned: a.pinned.clone(),
                sampler: a.sampler.clone(),
            })
            .collect();
        Ok((k, args))
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
            ObjectKind::Device => {
                if self.sub_devices.remove(&h).is_none() {
                    self.device(h)?;
                }
                Ok(())
            }
            _ => {
                self.get(h, kind)?;
                self.arg_info.remove(&h);
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
            ObjectKind::Sampler,
            ObjectKind::CommandQueue,
            ObjectKind::Context,
        ];
        for kind in order {
            self.objects.retain(|_, o| o.kind() != kind);
        }
        self.orphans.clear();
        self.arg_info.clear();
        self.sub_devices.clear();
    }
}

pub(super) fn is_complete(ev: &Event) -> bool {
    cl3::event::get_event_info(ev.get(), cl3::event::CL_EVENT_COMMAND_EXECUTION_STATUS)
        .is_ok_and(|v| v.to_int() <= cl3::event::CL_COMPLETE)
}
