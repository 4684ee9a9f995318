//! The OpenCL executor.
use super::*;

/// Discovers OpenCL platforms and opens [`OpenClExecutor`]s.
#[derive(Debug)]
pub struct OpenClFactory {}

impl OpenClFactory {
    /// Finds the platforms, failing if there are none.
    pub fn new() -> Result<Self, ExecutorError> {
        Err(ExecutorError::NoOpenClPlatform)
    }
}

impl ExecutorFactory for OpenClFactory {
    fn name(&self) -> &'static str {
        "opencl"
    }
    fn features(&self) -> u64 {
        protocol::session::FEATURE_OPENCL
    }
    fn open(&self, _limits: SessionLimits) -> Result<Box<dyn Executor>, ExecutorError> {
        Err(ExecutorError::NoOpenClPlatform)
    }
}
