//! Compute APIs the harness drives. Each API has a backend module that
//! implements every [`Case`] of the shared catalogue behind [`Backend`];
//! the runner, verification and reports do not depend on which API ran.
//!
//! | module | API |
//! |---|---|
//! | [`opencl`] | OpenCL, through the ICD loader (native ICDs, or our shim) |
//!
//! A CUDA backend goes beside it: a `cuda` module implementing [`Backend`],
//! an arm in [`open`] and in [`Api::point_at`].

pub mod opencl;

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use crate::check::Mismatch;
use crate::ipc::{Measurement, RuntimeInfo};
use crate::workload::Case;

/// The API a run measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Api {
    /// OpenCL.
    #[value(name = "opencl")]
    OpenCl,
    /// The CUDA driver API.
    #[value(name = "cuda")]
    Cuda,
}

/// Which runtime a worker process sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Side {
    /// The vendor runtime, directly.
    Native,
    /// Our shim, talking to the daemon.
    Virtual,
}

impl Side {
    /// How reports name the side.
    pub fn label(self) -> &'static str {
        match self {
            Side::Native => "native",
            Side::Virtual => "virtio-compute",
        }
    }
}

/// Where a virtualized worker finds the shim and the daemon.
#[derive(Clone, Debug)]
pub struct VirtualTarget {
    /// The shim library.
    pub shim: PathBuf,
    /// The `VCOMPUTE_ENDPOINT` of the daemon.
    pub endpoint: String,
}

impl Api {
    /// Sets a worker's environment so that its calls reach `side`.
    pub fn point_at(self, cmd: &mut Command, side: Side, target: &VirtualTarget) {
        match (self, side) {
            (Api::OpenCl, Side::Native) => {
                cmd.env_remove("OCL_ICD_VENDORS")
                    .env_remove("VCOMPUTE_ENDPOINT");
            }
            (Api::OpenCl, Side::Virtual) => {
                // The loader then sees only the shim, which forwards to
                // the daemon's runtime.
                cmd.env("OCL_ICD_VENDORS", &target.shim)
                    .env("VCOMPUTE_ENDPOINT", &target.endpoint);
            }
            (Api::Cuda, _) => {}
        }
    }

    /// The shim library's file name.
    pub fn shim_file(self) -> &'static str {
        match self {
            Api::OpenCl => "libvcompute_shim.so",
            Api::Cuda => "libcuda.so.1",
        }
    }
}

/// Why a case failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// An API call returned an error.
    #[error("{call} failed: {code} ({name})")]
    Call {
        call: &'static str,
        code: i32,
        name: &'static str,
    },
    /// A result differs from the CPU reference.
    #[error("wrong result: {0}")]
    Wrong(#[from] Mismatch),
    /// A kernel did not build.
    #[error("kernel build failed: {0}")]
    Build(String),
    /// The runtime offers no device, or not what the case needs.
    #[error("{0}")]
    Unavailable(String),
}

/// A runtime that can run every case of the catalogue.
pub trait Backend {
    /// What the runtime reports about itself.
    fn runtime(&self) -> &RuntimeInfo;

    /// Runs `case`: `warmup` untimed runs then `reps` timed ones, each run
    /// verified against the CPU reference.
    fn run(
        &mut self,
        case: &Case,
        warmup: usize,
        reps: usize,
    ) -> Result<Measurement, WorkloadError>;
}

impl Api {
    /// Fails for an API whose workloads this build does not have.
    pub fn check_built(self) -> Result<(), WorkloadError> {
        match self {
            Api::OpenCl => Ok(()),
            Api::Cuda => Err(WorkloadError::Unavailable(
                "the CUDA workloads are not built yet; use --api opencl".into(),
            )),
        }
    }
}

/// Opens the backend for `api` in this process.
pub fn open(api: Api) -> Result<Box<dyn Backend>, WorkloadError> {
    api.check_built()?;
    match api {
        Api::OpenCl => Ok(Box::new(opencl::OpenCl::open()?)),
        Api::Cuda => Err(WorkloadError::Unavailable("CUDA".into())),
    }
}

/// Runs `one` `warmup` times untimed and then `reps` times, collecting what
/// it returns. `one` times its own critical section (so that preparing and
/// verifying stay outside the sample) and returns nanoseconds.
pub fn sample(
    warmup: usize,
    reps: usize,
    mut one: impl FnMut() -> Result<f64, WorkloadError>,
) -> Result<Vec<f64>, WorkloadError> {
    for _ in 0..warmup {
        one()?;
    }
    (0..reps).map(|_| one()).collect()
}

/// Runs `f` and returns its value with the nanoseconds it took.
pub fn timed<T, E>(f: impl FnOnce() -> Result<T, E>) -> Result<(T, f64), E> {
    let t = Instant::now();
    let v = f()?;
    Ok((v, t.elapsed().as_nanos() as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unbuilt_apis_are_refused_by_name() {
        assert!(Api::OpenCl.check_built().is_ok());
        let e = Api::Cuda.check_built().unwrap_err().to_string();
        assert!(e.contains("CUDA workloads are not built yet"), "{e}");
    }
}
