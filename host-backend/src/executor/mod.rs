//! Executors: where decoded requests are replayed on a real compute runtime.
//!
//! Every executor sits behind [`Executor`]; the session layer neither knows
//! nor cares which runtime is underneath. An [`ExecutorFactory`] is created
//! once per daemon (it discovers the runtime) and opens one [`Executor`] per
//! guest session; dropping that executor frees everything the session made.
//!
//! | file | role |
//! |---|---|
//! | `mod.rs` | the trait, a request's bulk, errors, selection |
//! | `opencl/` | the OpenCL executor over `opencl3` |
//! | `cuda/` | the CUDA executor over `cudarc` (driver API) |
//! | `combined.rs` | several API families in one session, routed by opcode |

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use protocol::{ProtocolError, Request, Response};

use crate::limits::SessionLimits;
use crate::segment::{InSeg, OutSeg};
use tracing::info;

pub mod combined;
pub mod cuda;
pub mod opencl;

/// The bulk segments of one request frame, lent for that request only
/// (see [`crate::segment`]).
#[derive(Debug, Default)]
pub struct Bulk<'a> {
    /// Readable segments, in the order the request names them.
    pub input: &'a [InSeg<'a>],
    /// Writable segments, in the order the request names them.
    pub output: &'a [OutSeg<'a>],
}

/// Why a request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecError {
    /// The runtime's own error code (`cl_int`, `CUresult`), passed through.
    Native(i32),
    /// The request could not be executed at all.
    Protocol(ProtocolError),
}

/// Ends an executor's waits from another thread once its guest is gone.
///
/// A session serves its requests in order on one thread, so a wait that
/// only a later request of the same guest could end (an OpenCL wait on
/// the guest's own user event) would block that thread for good, and with
/// it the session's teardown. The transport that sees the guest go
/// (disconnect, reset, shutdown) calls [`Abandon::abandon`] from its own
/// thread while the session's thread may still be blocked.
pub trait Abandon: Send + Sync {
    /// The guest is gone, or its device is being reset: complete whatever
    /// only it could have completed, so that waits on it end, now and
    /// until [`Abandon::resume`].
    fn abandon(&self);

    /// A new guest session follows (after a device reset): waits behave
    /// as before.
    fn resume(&self);
}

/// Several [`Abandon`]s as one, including those added after it was
/// abandoned (which are abandoned as they arrive).
#[derive(Default)]
pub struct AbandonSet(Mutex<(bool, Vec<Arc<dyn Abandon>>)>);

impl fmt::Debug for AbandonSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("AbandonSet")
            .field("abandoned", &s.0)
            .field("members", &s.1.len())
            .finish()
    }
}

impl AbandonSet {
    /// Adds a member (an executor that was just opened).
    pub fn add(&self, member: Arc<dyn Abandon>) {
        let mut s = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if s.0 {
            member.abandon();
        }
        s.1.push(member);
    }

    /// Forgets every member (their executors are gone).
    pub fn clear(&self) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            .clear();
    }
}

impl Abandon for AbandonSet {
    fn abandon(&self) {
        let mut s = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        s.0 = true;
        s.1.iter().for_each(|m| m.abandon());
    }

    fn resume(&self) {
        let mut s = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        s.0 = false;
        s.1.iter().for_each(|m| m.resume());
    }
}

/// Replays one guest session's requests on a runtime.
pub trait Executor: Send {
    /// Executes one request. Bulk segments were already checked to lie in
    /// guest memory; their count matches the frame header.
    fn execute(&mut self, req: Request, bulk: &Bulk<'_>) -> Result<Response, ExecError>;

    /// Executes a request the guest posted (`FLAG_ASYNC`): it waits for
    /// neither the result nor the completion, so an executor may leave the
    /// work to finish in the runtime after returning, provided it keeps
    /// what the runtime still reads (guest segments are gone on return).
    /// By default, the same as [`Executor::execute`].
    fn execute_posted(&mut self, req: Request, bulk: &Bulk<'_>) -> Result<Response, ExecError> {
        self.execute(req, bulk)
    }

    /// What ends this executor's waits once the guest is gone (see
    /// [`Abandon`]), or `None` when no wait of it depends on the guest.
    fn abandoner(&self) -> Option<Arc<dyn Abandon>> {
        None
    }
}

/// Opens executors of one kind, one per session.
pub trait ExecutorFactory: Send + Sync {
    /// Short name for logs (`"opencl"`).
    fn name(&self) -> &'static str;
    /// The `FEATURE_*` API bits the executors serve.
    fn features(&self) -> u64;
    /// Opens a fresh executor for a new session.
    fn open(&self, limits: SessionLimits) -> Result<Box<dyn Executor>, ExecutorError>;
}

/// Which executor the daemon should use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecutorKind {
    /// Every runtime present: CUDA when a driver sees a device, OpenCL when
    /// a platform exists, both together when both are.
    Auto,
    /// OpenCL through the system ICD loader.
    OpenCl,
    /// CUDA through the driver API.
    Cuda,
}

/// Errors creating executors.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// `libcuda.so.1` could not be loaded.
    #[error("no NVIDIA driver: libcuda.so.1 could not be loaded (use --executor opencl)")]
    NoCudaDriver,
    /// `cuInit` or a device query failed.
    #[error("the NVIDIA driver failed to initialize (CUresult {0})")]
    CudaInit(i32),
    /// The driver loaded but sees no GPU.
    #[error("the NVIDIA driver reports no CUDA device (use --executor opencl)")]
    NoCudaDevice,
    /// No OpenCL platform could be found.
    #[error("no OpenCL platform found (is an ICD such as pocl-opencl-icd installed?)")]
    NoOpenClPlatform,
    /// Two combined executors claim the same API family.
    #[error("two executors serve the same API family")]
    OverlappingFamilies,
    /// `auto` found neither runtime.
    #[error("no compute runtime found: CUDA: {cuda}; OpenCL: {opencl}")]
    NoRuntime {
        /// Why CUDA is not available.
        cuda: Box<ExecutorError>,
        /// Why OpenCL is not available.
        opencl: Box<ExecutorError>,
    },
    /// The runtime reported an error while setting up.
    #[error("runtime error {0} while opening the executor")]
    Runtime(i32),
}

/// Creates the factory for `kind`. `Auto` serves every runtime present:
/// CUDA when the NVIDIA driver loads and sees a device, OpenCL when a
/// platform exists, and both (each session routed by API family) when both
/// are.
pub fn factory(kind: ExecutorKind) -> Result<Arc<dyn ExecutorFactory>, ExecutorError> {
    match kind {
        ExecutorKind::Cuda => Ok(Arc::new(cuda::CudaFactory::new()?)),
        ExecutorKind::OpenCl => Ok(Arc::new(opencl::OpenClFactory::new()?)),
        ExecutorKind::Auto => match (cuda::CudaFactory::new(), opencl::OpenClFactory::new()) {
            (Ok(c), Ok(o)) => Ok(Arc::new(combined::CombinedFactory::new(
                vec![Arc::new(c), Arc::new(o)],
                "cuda+opencl",
            )?)),
            (Ok(c), Err(why)) => {
                // log-policy: once per daemon, at start-up.
                info!(reason = %why, "OpenCL not available; serving CUDA only");
                Ok(Arc::new(c))
            }
            (Err(why), Ok(o)) => {
                // log-policy: once per daemon, at start-up.
                info!(reason = %why, "CUDA not available; serving OpenCL only");
                Ok(Arc::new(o))
            }
            (Err(cuda), Err(opencl)) => Err(ExecutorError::NoRuntime {
                cuda: Box::new(cuda),
                opencl: Box::new(opencl),
            }),
        },
    }
}
