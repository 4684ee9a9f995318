//! The compute workloads: vectorAdd, matrixMul, BlackScholes,
//! fastWalshTransform and convolutionSeparable.

use super::WorkloadError;

/// The compute workloads as an API runs them. Each runs `warmup` untimed
/// runs and `reps` timed ones, verifies every one against the CPU
/// reference and returns the timed runs' samples (nanoseconds); `key`
/// names the case, under which its CPU reference is cached.
pub(crate) trait Compute {
    fn vector_add(
        &mut self,
        n: usize,
        warmup: usize,
        reps: usize,
    ) -> Result<Vec<f64>, WorkloadError>;
    fn matrix_mul(
        &mut self,
        key: &str,
        n: usize,
        warmup: usize,
        reps: usize,
    ) -> Result<Vec<f64>, WorkloadError>;
    fn black_scholes(
        &mut self,
        key: &str,
        options: usize,
        warmup: usize,
        reps: usize,
    ) -> Result<Vec<f64>, WorkloadError>;
    fn fwt(
        &mut self,
        key: &str,
        log2_data: u32,
        log2_kernel: u32,
        warmup: usize,
        reps: usize,
    ) -> Result<Vec<f64>, WorkloadError>;
    fn convolution(
        &mut self,
        key: &str,
        width: usize,
        height: usize,
        warmup: usize,
        reps: usize,
    ) -> Result<Vec<f64>, WorkloadError>;
}
