//! The object model: what a `cl_*` pointer handed to the program stands for.
//!
//! Every object the program sees is a boxed [`IcdObject`] whose first field
//! is the ICD dispatch table, as the Khronos ICD rules require. The shim never
//! dereferences a pointer the program passes back: it looks the address up in
//! the [`REGISTRY`] of live objects, which yields the object's [`Record`]
//! (handle, kind, parent links). A stale or foreign pointer is therefore an
//! `CL_INVALID_*` error, never a crash.
//!
//! Reference counts live here. A child (queue, buffer, kernel, event, ...)
//! holds one reference on each parent, so a parent's `ClRelease` is sent only
//! after its last child is gone, children first.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use opencl_sys::cl_icd::cl_icd_dispatch;
use protocol::opencl::{Handle, ObjectKind};

use super::dispatch::DISPATCH;

/// What the program's `cl_*` pointers point to.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct IcdObject {
    /// Must stay first: the ICD loader reads it to route every call.
    dispatch: &'static cl_icd_dispatch,
}

/// Immutable info values already fetched from the daemon, by `param_name`.
/// Native errors are cached too (an unknown parameter stays unknown).
#[derive(Debug, Default)]
pub(crate) struct InfoCache(Mutex<HashMap<(u32, u64), CachedValue>>);

/// A cached info value or native error.
type CachedValue = Result<Vec<u8>, i32>;

impl InfoCache {
    pub(crate) fn get(&self, param: u32, extra: u64) -> Option<Result<Vec<u8>, i32>> {
        lock(&self.0).get(&(param, extra)).cloned()
    }
    pub(crate) fn put(&self, param: u32, extra: u64, v: Result<Vec<u8>, i32>) {
        lock(&self.0).insert((param, extra), v);
    }
}

/// A buffer region mapped into host memory by `clEnqueueMapBuffer`.
#[derive(Debug)]
pub(crate) struct Mapping {
    /// Byte offset in the buffer.
    pub offset: u64,
    /// Bytes mapped.
    pub size: usize,
    /// Whether unmapping writes the region back.
    pub write: bool,
    /// Shim-owned memory; `None` when the program's `USE_HOST_PTR` memory is
    /// the mapping.
    pub _owned: Option<super::map::HostAlloc>,
    /// For an image: the region mapped and its host pitches.
    pub image: Option<MappedRegion>,
}

/// The image region a mapping holds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MappedRegion {
    /// Origin in the image.
    pub origin: [u64; 3],
    /// Region in the image.
    pub region: [u64; 3],
    /// Row and slice pitches of the mapped memory.
    pub pitches: (u64, u64),
}

/// What the shim knows of an image, for laying out its transfers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ImageShape {
    /// `cl_mem_object_type`.
    pub image_type: u32,
    /// Size in each coordinate (`protocol::opencl::layout::image_extent`).
    pub extent: [u64; 3],
    /// Bytes per element, as the runtime reports them.
    pub element: u64,
    /// The host row and slice pitches of a `CL_MEM_USE_HOST_PTR` image.
    pub host_pitches: (u64, u64),
}

/// A destructor callback (`clSetMemObjectDestructorCallback`,
/// `clSetProgramReleaseCallback`, `clSetContextDestructorCallback`): the
/// program's function and its user data, kept opaque.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Destructor {
    /// The function; all three kinds take the object and the user data.
    pub func: unsafe extern "C" fn(*mut c_void, *mut c_void),
    /// The user data's address.
    pub user_data: usize,
}

/// Destructor callbacks of an object, called last-registered first when
/// the shim destroys it.
pub(crate) type Destructors = Mutex<Vec<Destructor>>;

/// A pending `clSetEventCallback`.
#[derive(Debug)]
pub(crate) struct EventCallback {
    /// `CL_SUBMITTED`, `CL_RUNNING` or `CL_COMPLETE`.
    pub on: i32,
    /// The program's function.
    pub func: unsafe extern "C" fn(*mut c_void, i32, *mut c_void),
    /// Its user data (an address, kept opaque).
    pub user_data: usize,
}

/// Per-kind data and parent links.
#[derive(Debug)]
pub(crate) enum Data {
    Platform {
        cache: InfoCache,
    },
    Device {
        platform: Arc<Record>,
        cache: InfoCache,
        /// The device a sub-device was partitioned from (`None` for a
        /// root device, which is not reference counted).
        parent: Option<Arc<Record>>,
    },
    Context {
        devices: Vec<Arc<Record>>,
        /// The caller's property list (program pointers), zero-terminated,
        /// or empty when it passed NULL.
        properties: Vec<isize>,
        destructors: Destructors,
    },
    Queue {
        context: Arc<Record>,
        device: Arc<Record>,
        /// `CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE` was requested.
        out_of_order: bool,
    },
    Mem {
        context: Arc<Record>,
        parent: Option<Arc<Record>>,
        flags: u64,
        size: u64,
        /// `host_ptr` for `CL_MEM_USE_HOST_PTR` (0 otherwise).
        host_ptr: usize,
        /// Live mappings by mapped address (one address may be mapped
        /// more than once).
        maps: Mutex<Vec<(usize, Mapping)>>,
        /// `Some` for an image.
        image: Option<ImageShape>,
        destructors: Destructors,
    },
    Program {
        context: Arc<Record>,
        devices: Vec<Arc<Record>>,
        destructors: Destructors,
        /// The source of a program made from source: builds send the
        /// header files it includes (see `crate::includes`).
        source: Option<Arc<str>>,
    },
    Kernel {
        program: Arc<Record>,
        context: Arc<Record>,
        /// Argument shapes (index, size, kind of value) the runtime has
        /// accepted on this kernel: setting one again cannot fail
        /// differently, so it is posted; a new one is checked at once.
        accepted: Mutex<std::collections::HashSet<(u32, usize, u8)>>,
    },
    Event {
        context: Arc<Record>,
        queue: Option<Arc<Record>>,
        callbacks: Mutex<Vec<EventCallback>>,
        /// For a user event: its status has been set.
        status_set: std::sync::atomic::AtomicBool,
    },
    Sampler {
        context: Arc<Record>,
    },
}

/// One live object.
#[derive(Debug)]
pub(crate) struct Record {
    /// Its kind.
    pub kind: ObjectKind,
    /// The session handle naming it to the daemon.
    pub handle: Handle,
    /// The address the program holds.
    pub ptr: usize,
    /// Kind-specific data.
    pub data: Data,
}

impl Record {
    /// The program-visible pointer.
    pub(crate) fn cl_ptr(&self) -> *mut c_void {
        self.ptr as *mut c_void
    }

    /// Whether the object is reference counted: all but platforms and
    /// root devices.
    pub(crate) fn counted(&self) -> bool {
        match &self.data {
            Data::Platform { .. } => false,
            Data::Device { parent, .. } => parent.is_some(),
            _ => true,
        }
    }

    /// The destructor callbacks registered on the object, if it takes any.
    pub(crate) fn destructors(&self) -> Option<&Destructors> {
        match &self.data {
            Data::Mem { destructors, .. }
            | Data::Program { destructors, .. }
            | Data::Context { destructors, .. } => Some(destructors),
            _ => None,
        }
    }

    /// The objects this one keeps alive (only counted ones).
    fn parents(&self) -> Vec<&Arc<Record>> {
        match &self.data {
            Data::Platform { .. } => vec![],
            Data::Device { parent, .. } => parent.iter().filter(|d| d.counted()).collect(),
            // A context keeps its sub-devices, as the runtime does.
            Data::Context { devices, .. } => devices.iter().filter(|d| d.counted()).collect(),
            Data::Sampler { context } => vec![context],
            Data::Queue { context, .. } => vec![context],
            Data::Mem {
                context, parent, ..
            } => {
                let mut v = vec![context];
                v.extend(parent.iter());
                v
            }
            Data::Program { context, .. } => vec![context],
            Data::Kernel { program, .. } => vec![program],
            Data::Event { context, queue, .. } => match queue {
                Some(q) => vec![q],
                None => vec![context],
            },
        }
    }

    /// The context an object belongs to (itself for a context).
    pub(crate) fn context(self: &Arc<Self>) -> Option<Arc<Record>> {
        match &self.data {
            Data::Context { .. } => Some(self.clone()),
            Data::Queue { context, .. }
            | Data::Mem { context, .. }
            | Data::Program { context, .. }
            | Data::Kernel { context, .. }
            | Data::Event { context, .. }
            | Data::Sampler { context } => Some(context.clone()),
            Data::Platform { .. } | Data::Device { .. } => None,
        }
    }
}

struct Entry {
    record: Arc<Record>,
    refs: u32,
    _object: Box<IcdObject>,
}

#[derive(Default)]
struct Registry {
    by_ptr: HashMap<usize, Entry>,
    platforms: HashMap<Handle, Arc<Record>>,
    devices: HashMap<Handle, Arc<Record>>,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(Default::default);

/// Locks a mutex, ignoring poisoning (a panic was already reported).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn insert(
    reg: &mut Registry,
    kind: ObjectKind,
    handle: Handle,
    data: impl FnOnce(usize) -> Data,
) -> Arc<Record> {
    let object = Box::new(IcdObject {
        dispatch: &DISPATCH,
    });
    let ptr = &*object as *const IcdObject as usize;
    let record = Arc::new(Record {
        kind,
        handle,
        ptr,
        data: data(ptr),
    });
    for p in record.parents() {
        if let Some(e) = reg.by_ptr.get_mut(&p.ptr) {
            e.refs = e.refs.saturating_add(1);
        }
    }
    reg.by_ptr.insert(
        ptr,
        Entry {
            record: record.clone(),
            refs: 1,
            _object: object,
        },
    );
    record
}

/// Registers a new object with one reference, taking a reference on each of
/// its parents.
pub(crate) fn register(kind: ObjectKind, handle: Handle, data: Data) -> Arc<Record> {
    let mut reg = lock(&REGISTRY);
    insert(&mut reg, kind, handle, |_| data)
}

/// The platform object for a daemon handle (the same pointer every time).
pub(crate) fn platform(handle: Handle) -> Arc<Record> {
    let mut reg = lock(&REGISTRY);
    if let Some(r) = reg.platforms.get(&handle) {
        return r.clone();
    }
    let r = insert(&mut reg, ObjectKind::Platform, handle, |_| Data::Platform {
        cache: InfoCache::default(),
    });
    reg.platforms.insert(handle, r.clone());
    r
}

/// The device object for a daemon handle (the same pointer every time).
pub(crate) fn device(handle: Handle, platform: &Arc<Record>) -> Arc<Record> {
    let mut reg = lock(&REGISTRY);
    if let Some(r) = reg.devices.get(&handle) {
        return r.clone();
    }
    let r = insert(&mut reg, ObjectKind::Device, handle, |_| Data::Device {
        platform: platform.clone(),
        cache: InfoCache::default(),
        parent: None,
    });
    reg.devices.insert(handle, r.clone());
    r
}

/// A known device by handle (for handles the daemon returns in lists).
pub(crate) fn device_by_handle(handle: Handle) -> Option<Arc<Record>> {
    lock(&REGISTRY).devices.get(&handle).cloned()
}

/// Looks up a live object of `kind` by the program's pointer.
pub(crate) fn get(ptr: *const c_void, kind: ObjectKind) -> Option<Arc<Record>> {
    get_any(ptr).filter(|r| r.kind == kind)
}

/// Looks up a live object of any kind.
pub(crate) fn get_any(ptr: *const c_void) -> Option<Arc<Record>> {
    if ptr.is_null() {
        return None;
    }
    lock(&REGISTRY)
        .by_ptr
        .get(&(ptr as usize))
        .map(|e| e.record.clone())
}

/// The current reference count of a live object.
pub(crate) fn ref_count(ptr: usize) -> u32 {
    lock(&REGISTRY).by_ptr.get(&ptr).map_or(0, |e| e.refs)
}

/// Registers a new sub-device of `parent`, with one reference.
pub(crate) fn sub_device(handle: Handle, parent: &Arc<Record>) -> Arc<Record> {
    let platform = match &parent.data {
        Data::Device { platform, .. } => platform.clone(),
        _ => parent.clone(),
    };
    register(
        ObjectKind::Device,
        handle,
        Data::Device {
            platform,
            cache: InfoCache::default(),
            parent: Some(parent.clone()),
        },
    )
}

/// Adds a reference. Platforms and root devices are not counted.
pub(crate) fn retain(ptr: *const c_void, kind: ObjectKind) -> bool {
    let mut reg = lock(&REGISTRY);
    match reg.by_ptr.get_mut(&(ptr as usize)) {
        Some(e) if !ptr.is_null() && e.record.kind == kind => {
            if e.record.counted() {
                e.refs = e.refs.saturating_add(1);
            }
            true
        }
        _ => false,
    }
}

/// Drops a reference. Returns `None` if `ptr` is not a live `kind`, else the
/// objects destroyed by this release, children before parents; the caller
/// sends `ClRelease` for each.
pub(crate) fn release(ptr: *const c_void, kind: ObjectKind) -> Option<Vec<Arc<Record>>> {
    let mut reg = lock(&REGISTRY);
    match reg.by_ptr.get(&(ptr as usize)) {
        Some(e) if !ptr.is_null() && e.record.kind == kind => {}
        _ => return None,
    }
    let mut dead = Vec::new();
    if reg
        .by_ptr
        .get(&(ptr as usize))
        .is_some_and(|e| !e.record.counted())
    {
        return Some(dead);
    }
    let mut todo = vec![ptr as usize];
    while let Some(p) = todo.pop() {
        let Some(e) = reg.by_ptr.get_mut(&p) else {
            continue;
        };
        e.refs = e.refs.saturating_sub(1);
        if e.refs > 0 {
            continue;
        }
        if let Some(e) = reg.by_ptr.remove(&p) {
            todo.extend(e.record.parents().iter().map(|r| r.ptr));
            dead.push(e.record);
        }
    }
    Some(dead)
}

/// Every live object of `kind` (for sync points that scan events).
pub(crate) fn all_of(kind: ObjectKind) -> Vec<Arc<Record>> {
    lock(&REGISTRY)
        .by_ptr
        .values()
        .filter(|e| e.record.kind == kind)
        .map(|e| e.record.clone())
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn test_context() -> Arc<Record> {
        let p = platform(0x7000_0001);
        let d = device(0x7000_0002, &p);
        register(
            ObjectKind::Context,
            0x7000_0003,
            Data::Context {
                devices: vec![d],
                properties: vec![],
                destructors: Destructors::default(),
            },
        )
    }

    #[test]
    fn same_handle_gives_same_device_pointer() {
        let p = platform(0x5000_0001);
        let a = device(0x5000_0002, &p);
        let b = device(0x5000_0002, &p);
        assert_eq!(a.ptr, b.ptr);
        assert_eq!(platform(0x5000_0001).ptr, p.ptr);
        assert!(get(a.cl_ptr(), ObjectKind::Device).is_some());
        assert!(get(a.cl_ptr(), ObjectKind::Context).is_none());
    }

    #[test]
    fn object_starts_with_the_dispatch_table() {
        let ctx = test_context();
        // SAFETY: `ctx.ptr` is a live boxed `IcdObject` whose first field is
        // a `&'static cl_icd_dispatch`, exactly what the loader reads.
        let first = unsafe { *(ctx.ptr as *const *const cl_icd_dispatch) };
        assert_eq!(first, &DISPATCH as *const cl_icd_dispatch);
    }

    #[test]
    fn children_keep_parents_until_released() {
        let ctx = test_context();
        let q = register(
            ObjectKind::CommandQueue,
            0x7100_0001,
            Data::Queue {
                context: ctx.clone(),
                device: ctx.clone(),
                out_of_order: false,
            },
        );
        assert_eq!(ref_count(ctx.ptr), 2);
        // The program drops its context: nothing is destroyed yet.
        let dead = release(ctx.cl_ptr(), ObjectKind::Context).unwrap_or_default();
        assert!(dead.is_empty());
        assert!(get(ctx.cl_ptr(), ObjectKind::Context).is_some());
        // Releasing the queue destroys the queue, then the context.
        let dead = release(q.cl_ptr(), ObjectKind::CommandQueue).unwrap_or_default();
        let kinds: Vec<_> = dead.iter().map(|r| r.kind).collect();
        assert_eq!(kinds, vec![ObjectKind::CommandQueue, ObjectKind::Context]);
        assert!(get(ctx.cl_ptr(), ObjectKind::Context).is_none());
        assert!(release(q.cl_ptr(), ObjectKind::CommandQueue).is_none());
    }
}
