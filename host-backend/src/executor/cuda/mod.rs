//! The CUDA executor: replays a session's `Cu*` requests on the NVIDIA
//! driver through `cudarc`, loaded at run time (the daemon builds and runs
//! without CUDA installed).
//!
//! | file | role |
//! |---|---|
//! | `mod.rs` | factory, driver detection, the `Executor` impl |
//! | `session.rs` | [`CudaSession`]: handles, dispatch, contexts, modules |
//! | `commands.rs` | memory, copies, streams, events, launches, occupancy |
//! | `graphs.rs` | capture, graphs, stream-ordered allocation, staged images |
//! | `memory.rs` | the allocation table: range checks and the memory limit |
//! | `rules.rs` | flag masks, JIT options, pointer attributes |
//! | `image.rs` | kernel parameter layouts from PTX, cubin and fatbin |
//! | `launch_args.rs` | the argument block a launch hands the driver |
//! | `backend.rs` | the [`backend::Backend`] trait the session drives |
//! | `driver.rs` | the real backend: one context per session and device |
//! | `staging.rs` | the pinned staging pool for guest-memory copies |
//! | `tests/` | conformance (every backend), hostile input, GPU-only tests |
//!
//! The session layer ([`CudaSession`]) does every check and is shared with
//! the recording test double (`crate::testing`, feature `testing`), so both
//! refuse the same requests with the same `CUresult`.

pub mod backend;
mod commands;
pub mod driver;
mod graphs;
pub mod image;
mod launch_args;
pub mod memory;
mod rules;
mod session;
mod staging;
#[cfg(test)]
mod tests;

use std::fmt;

use protocol::{Request, Response};

pub use session::CudaSession;

use super::{Bulk, ExecError, Executor, ExecutorError, ExecutorFactory};
use crate::limits::SessionLimits;
use backend::Backend;
use driver::Driver;

/// The real CUDA executor: the session layer over the driver.
pub type CudaExecutor = CudaSession<Driver>;

impl<B: Backend> Executor for CudaSession<B> {
    fn execute(&mut self, req: Request, bulk: &Bulk<'_>) -> Result<Response, ExecError> {
        CudaSession::execute(self, req, bulk)
    }
}

/// Finds the NVIDIA driver and opens [`CudaExecutor`]s.
pub struct CudaFactory {
    version: i32,
    devices: u32,
}

impl fmt::Debug for CudaFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CudaFactory")
            .field("driver_version", &self.version)
            .field("devices", &self.devices)
            .finish()
    }
}

impl CudaFactory {
    /// Loads and initializes the driver, failing unless it has a device.
    pub fn new() -> Result<Self, ExecutorError> {
        if !driver::library_present() {
            return Err(ExecutorError::NoCudaDriver);
        }
        let (version, devices) = driver::init().map_err(ExecutorError::CudaInit)?;
        if devices == 0 {
            return Err(ExecutorError::NoCudaDevice);
        }
        Ok(CudaFactory { version, devices })
    }

    /// The driver's version.
    pub fn driver_version(&self) -> i32 {
        self.version
    }

    /// The number of devices.
    pub fn devices(&self) -> u32 {
        self.devices
    }

    /// Opens a session's executor (the concrete type, for tests).
    pub fn open_cuda(&self, limits: SessionLimits) -> CudaExecutor {
        CudaSession::new(Driver::new(self.version, self.devices), limits)
    }
}

impl ExecutorFactory for CudaFactory {
    fn name(&self) -> &'static str {
        "cuda"
    }
    fn features(&self) -> u64 {
        protocol::session::FEATURE_CUDA
    }
    fn open(&self, limits: SessionLimits) -> Result<Box<dyn Executor>, ExecutorError> {
        Ok(Box::new(self.open_cuda(limits)))
    }
}
