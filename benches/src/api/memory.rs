//! The memory workloads: bandwidthTest, alignedTypes and small copies.

use super::WorkloadError;
use crate::workload::{AlignedType, Direction, HostMem};

/// The memory workloads as an API runs them: untimed and timed runs as
/// in [`super::compute::Compute`], each verified, the samples returned.
pub(crate) trait Memory {
    fn bandwidth(
        &mut self,
        dir: Direction,
        mem: Option<HostMem>,
        bytes: usize,
        warmup: usize,
        reps: usize,
    ) -> Result<Vec<f64>, WorkloadError>;
    fn aligned_types(
        &mut self,
        ty: AlignedType,
        bytes: usize,
        warmup: usize,
        reps: usize,
    ) -> Result<Vec<f64>, WorkloadError>;
    /// H2D or D2H only.
    fn small_copy(
        &mut self,
        dir: Direction,
        bytes: usize,
        warmup: usize,
        reps: usize,
    ) -> Result<Vec<f64>, WorkloadError>;
}
