//! The workloads about when work happens: asyncAPI, clock, and the
//! micro-benchmarks (null round trip, launch rate).

use super::WorkloadError;
use crate::ipc::Measurement;

/// The timing workloads as an API runs them: untimed and timed runs as
/// in [`super::compute::Compute`], each verified. asyncAPI and clock
/// keep secondary figures beside their samples.
pub(crate) trait Timing {
    fn async_api(
        &mut self,
        n: usize,
        warmup: usize,
        reps: usize,
    ) -> Result<Measurement, WorkloadError>;
    fn clock(
        &mut self,
        groups: usize,
        group_size: usize,
        warmup: usize,
        reps: usize,
    ) -> Result<Measurement, WorkloadError>;
    fn null_sync(&mut self, warmup: usize, reps: usize) -> Result<Vec<f64>, WorkloadError>;
    fn launch_rate(
        &mut self,
        launches: usize,
        warmup: usize,
        reps: usize,
    ) -> Result<Vec<f64>, WorkloadError>;
}
