//! The shim's records of the program's CUDA objects.
//!
//! Contexts, modules, functions, streams and events are
//! session [`Handle`]s chosen by the shim. The program sees them as opaque
//! pointers whose value encodes the handle and its kind
//! ([`to_opaque`]/[`from_opaque`]); a value that decodes to no live record
//! of the right kind is an invalid handle, never a dereference. Values are
//! never 0, `CU_STREAM_LEGACY` (1) or `CU_STREAM_PER_THREAD` (2).
//!
//! The context stack is per thread, as in the driver. Device ranges
//! (allocations and module globals) and host ranges (host allocations and
//! registrations) are kept so that the shim can classify and check a
//! pointer without asking the daemon.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::ffi::{c_int, c_uint};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use protocol::cuda::{DeviceInfo, FunctionInfo, InitInfo};
use protocol::opencl::Handle;

use super::types::*;

/// What an opaque value names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub(crate) enum Kind {
    Context = 1,
    Module = 2,
    Function = 3,
    Stream = 4,
    Event = 5,
    Link = 6,
    Library = 7,
    Kernel = 8,
    Graph = 9,
    GraphExec = 10,
}

const KIND_BITS: u32 = 4;

/// The opaque value the program sees for handle `h` of `kind`.
pub(crate) fn to_opaque(kind: Kind, h: Handle) -> Opaque {
    ((h << KIND_BITS) | kind as u64) as usize as Opaque
}

/// The handle behind an opaque value, if it encodes one of `kind`.
pub(crate) fn from_opaque(kind: Kind, p: Opaque) -> Option<Handle> {
    let v = p as usize as u64;
    let h = v >> KIND_BITS;
    (v & ((1 << KIND_BITS) - 1) == kind as u64 && h != 0).then_some(h)
}

/// A context the program created or retained.
#[derive(Clone, Debug)]
pub(crate) struct Ctx {
    pub device: CUdevice,
    pub flags: c_uint,
}

/// A device's primary context.
#[derive(Clone, Debug, Default)]
pub(crate) struct Primary {
    /// Its context while retained at least once.
    pub ctx: Option<Handle>,
    pub refs: u32,
    pub flags: c_uint,
}

/// A loaded module.
#[derive(Clone, Debug)]
pub(crate) struct Module {
    pub ctx: Handle,
    /// Kernels looked up so far, by name.
    pub functions: HashMap<String, Handle>,
}

/// A kernel of a module, with its parameter layout.
#[derive(Clone, Debug)]
pub(crate) struct Function {
    pub module: Handle,
    pub info: FunctionInfo,
}

/// A library image kept in the guest until a context needs it.
#[derive(Clone, Debug)]
pub(crate) enum Image {
    /// The program's own bytes, which it promised to keep
    /// (`CU_LIBRARY_BINARY_IS_PRESERVED`).
    Preserved(&'static [u8]),
    /// A copy.
    Owned(std::sync::Arc<[u8]>),
}

impl Image {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Image::Preserved(b) => b,
            Image::Owned(b) => b,
        }
    }
}

/// A library: loaded lazily, once per context that uses it.
#[derive(Clone, Debug)]
pub(crate) struct Library {
    pub kind: protocol::cuda::ImageKind,
    pub image: Image,
    pub options: Vec<protocol::cuda::JitOption>,
    /// Its module in each context that needed one.
    pub modules: HashMap<Handle, Handle>,
    /// Kernels handed out, by name.
    pub kernels: HashMap<String, Handle>,
}

/// A kernel of a library (context-independent).
#[derive(Clone, Debug)]
pub(crate) struct Kernel {
    pub library: Handle,
    pub name: String,
    /// The name for `cuKernelGetName` (its address stays put).
    pub c_name: std::sync::Arc<std::ffi::CStr>,
    /// Its function in each context that resolved it.
    pub functions: HashMap<Handle, Handle>,
}

/// A capture in progress on a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Capture {
    /// The graph it will end with.
    pub graph: Handle,
    /// Its id (`cuStreamGetCaptureInfo`).
    pub id: u64,
    /// Its `CUstreamCaptureMode`.
    pub mode: c_uint,
}

/// A stream the program created.
#[derive(Clone, Debug)]
pub(crate) struct Stream {
    pub ctx: Handle,
    pub flags: c_uint,
    pub priority: c_int,
    pub capture: Option<Capture>,
}

/// An event the program created.
#[derive(Clone, Debug)]
pub(crate) struct Event {
    pub ctx: Handle,
}

/// A device range the program may name in copies.
#[derive(Clone, Debug)]
pub(crate) struct DevRange {
    pub len: u64,
    pub ctx: Handle,
    /// The module owning it, for globals; `None` for allocations.
    pub module: Option<Handle>,
}

/// Where a host range's memory came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HostKind {
    /// A block of the transport's shared memory (zero-copy).
    Shared,
    /// Ordinary memory the shim allocated (no shared memory available).
    Owned,
    /// The program's own memory, registered with `cuMemHostRegister`.
    Registered,
}

/// A host allocation or registration.
#[derive(Clone, Debug)]
pub(crate) struct HostRange {
    pub len: usize,
    pub ctx: Handle,
    pub flags: c_uint,
    pub kind: HostKind,
}

/// Everything the shim knows about the program's CUDA objects.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// The daemon's driver version and device count, once asked.
    pub init: Option<InitInfo>,
    pub devices: HashMap<CUdevice, DeviceInfo>,
    /// Each device's stream priority range, once asked.
    pub priorities: HashMap<CUdevice, (c_int, c_int)>,
    pub contexts: HashMap<Handle, Ctx>,
    pub primary: HashMap<CUdevice, Primary>,
    pub modules: HashMap<Handle, Module>,
    pub functions: HashMap<Handle, Function>,
    pub streams: HashMap<Handle, Stream>,
    pub events: HashMap<Handle, Event>,
    pub libraries: HashMap<Handle, Library>,
    pub kernels: HashMap<Handle, Kernel>,
    /// Graphs and executable graphs, with their contexts.
    pub graphs: HashMap<Handle, Handle>,
    pub execs: HashMap<Handle, Handle>,
    /// Device ranges by start address.
    pub dev: BTreeMap<u64, DevRange>,
    /// Host ranges by start address.
    pub host: BTreeMap<usize, HostRange>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

/// Whether `cuInit` has succeeded (`cuDriverGetVersion` asks the daemon
/// too, but does not initialize the API). Outside the lock: every entry
/// point checks it.
static INITIALIZED: AtomicBool = AtomicBool::new(false);

/// Whether `cuInit` has succeeded.
pub(crate) fn initialized() -> bool {
    INITIALIZED.load(Ordering::Acquire)
}

/// Records that `cuInit` succeeded.
pub(crate) fn set_initialized() {
    INITIALIZED.store(true, Ordering::Release);
}

/// Runs `f` on the state, under its lock. Keep `f` short: no calls to the
/// daemon from inside.
pub(crate) fn with<R>(f: impl FnOnce(&mut State) -> R) -> R {
    let mut g: MutexGuard<'_, Option<State>> = STATE.lock().unwrap_or_else(|p| p.into_inner());
    f(g.get_or_insert_with(State::default))
}

impl State {
    /// The device range containing `ptr..ptr+len`, as (start, range).
    pub fn dev_range(&self, ptr: u64, len: u64) -> Option<(u64, &DevRange)> {
        let (&start, r) = self.dev.range(..=ptr).next_back()?;
        let end = start.checked_add(r.len)?;
        let want_end = ptr.checked_add(len)?;
        (want_end <= end && (ptr < end || len == 0 && ptr == start)).then_some((start, r))
    }

    /// The host range containing `addr..addr+len`, as (start, range).
    pub fn host_range(&self, addr: usize, len: usize) -> Option<(usize, &HostRange)> {
        let (&start, r) = self.host.range(..=addr).next_back()?;
        let end = start.checked_add(r.len)?;
        let want_end = addr.checked_add(len)?;
        (want_end <= end && addr < end).then_some((start, r))
    }

    /// Forgets every object created under context `ctx` (after the daemon
    /// destroyed it): modules, functions, streams, events, device ranges.
    pub fn forget_context(&mut self, ctx: Handle) {
        let modules: Vec<Handle> = self
            .modules
            .iter()
            .filter(|(_, m)| m.ctx == ctx)
            .map(|(&h, _)| h)
            .collect();
        for m in modules {
            self.forget_module(m);
        }
        self.streams.retain(|_, s| s.ctx != ctx);
        self.events.retain(|_, e| e.ctx != ctx);
        self.graphs.retain(|_, c| *c != ctx);
        self.execs.retain(|_, c| *c != ctx);
        self.dev.retain(|_, r| r.ctx != ctx);
        self.contexts.remove(&ctx);
    }

    /// Forgets a module, its functions and its globals.
    pub fn forget_module(&mut self, module: Handle) {
        self.modules.remove(&module);
        for l in self.libraries.values_mut() {
            l.modules.retain(|_, m| *m != module);
        }
        let functions = &self.functions;
        for k in self.kernels.values_mut() {
            k.functions
                .retain(|_, f| functions.get(f).is_some_and(|f| f.module != module));
        }
        self.functions.retain(|_, f| f.module != module);
        self.dev.retain(|_, r| r.module != Some(module));
    }
}

thread_local! {
    /// This thread's context stack; the last entry is current.
    static STACK: RefCell<Vec<Handle>> = const { RefCell::new(Vec::new()) };
}

/// This thread's current context, if any.
pub(crate) fn current() -> Option<Handle> {
    STACK.with(|s| s.borrow().last().copied())
}

/// Runs `f` on this thread's context stack.
pub(crate) fn with_stack<R>(f: impl FnOnce(&mut Vec<Handle>) -> R) -> R {
    STACK.with(|s| f(&mut s.borrow_mut()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opaque_values_round_trip_per_kind_and_avoid_special_streams() {
        for h in [1u64, 2, 77, 1 << 40] {
            let p = to_opaque(Kind::Stream, h);
            assert!(p as usize > CU_STREAM_PER_THREAD);
            assert_eq!(from_opaque(Kind::Stream, p), Some(h));
            assert_eq!(from_opaque(Kind::Event, p), None, "wrong kind");
        }
        assert_eq!(from_opaque(Kind::Stream, std::ptr::null_mut()), None);
        assert_eq!(from_opaque(Kind::Stream, 4 as Opaque), None, "zero handle");
        assert_eq!(from_opaque(Kind::Context, 0xdead_beef as Opaque), None);
    }

    #[test]
    fn ranges_are_found_only_when_fully_inside() {
        let mut s = State::default();
        s.dev.insert(
            0x1000,
            DevRange {
                len: 0x100,
                ctx: 1,
                module: None,
            },
        );
        assert!(s.dev_range(0x1000, 0x100).is_some());
        assert!(s.dev_range(0x10ff, 1).is_some());
        assert!(s.dev_range(0x1000, 0x101).is_none());
        assert!(s.dev_range(0x1100, 1).is_none());
        assert!(s.dev_range(0xfff, 1).is_none());
        assert!(s.dev_range(u64::MAX, 2).is_none());
        s.forget_context(1);
        assert!(s.dev_range(0x1000, 1).is_none());
    }
}
