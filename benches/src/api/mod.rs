//! Compute APIs the harness drives. Each API has a backend module that
//! implements every [`Case`] of the shared catalogue behind [`Backend`];
//! the runner, verification and reports do not depend on which API ran.
//!
//! The workloads are written once, over what every API's device offers
//! (`Device`: buffers, copies, fills, launches, waiting). An API implements
//! that, and per workload family (`Compute`, `Memory`, `Timing`) what is
//! its own: its kernels with their arguments bound, and the two workloads
//! whose API calls are their point (asyncAPI, clock). [`Backend::run`]
//! maps a [`Case`] to its workload, once for every API.
//!
//! | module | role |
//! |---|---|
//! | `device` | what every API's device offers the workloads |
//! | `compute` | vectorAdd, matrixMul, BlackScholes, fastWalshTransform, convolutionSeparable |
//! | `memory` | bandwidthTest, alignedTypes, small copies; images (OpenCL's own) |
//! | `timing` | null round trip and launch rate; asyncAPI's and clock's shared parts |
//! | [`opencl`] | OpenCL, through the ICD loader (native ICDs, or our shim) |
//! | [`cuda`] | the CUDA driver API, through `libcuda.so.1` (NVIDIA's driver, or our shim) |

mod compute;
pub mod cuda;
mod device;
mod memory;
pub mod opencl;
mod timing;

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use crate::check::Mismatch;
use crate::ipc::{Measurement, RuntimeInfo};
use crate::workload::{Case, Direction};
use compute::Compute;
use memory::Memory;
use timing::Timing;

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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, clap::ValueEnum)]
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

    /// The `--side` value a worker is started with.
    pub fn arg(self) -> &'static str {
        match self {
            Side::Native => "native",
            Side::Virtual => "virtual",
        }
    }
}

/// Where a virtualized worker finds the shim and the daemon.
#[derive(Debug)]
pub struct VirtualTarget {
    /// The shim library.
    pub shim: PathBuf,
    /// The `VCOMPUTE_ENDPOINT` of the daemon.
    pub endpoint: String,
    /// CUDA: a directory whose `libcuda.so.1` is the shim.
    pub cuda_lib_dir: Option<cuda::libdir::ShimLibDir>,
}

impl Api {
    /// The name `--api` takes.
    pub fn arg(self) -> &'static str {
        match self {
            Api::OpenCl => "opencl",
            Api::Cuda => "cuda",
        }
    }

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
            (Api::Cuda, Side::Native) => {
                // The library path stays the user's: the driver (and
                // NVRTC) this process found, as `probe::check_native` saw.
                cmd.env_remove("VCOMPUTE_ENDPOINT");
            }
            (Api::Cuda, Side::Virtual) => {
                // The shim's directory first, so that `libcuda.so.1` is the
                // shim; NVRTC is still found where the user's path has it.
                if let Some(dir) = &target.cuda_lib_dir {
                    let previous = std::env::var_os("LD_LIBRARY_PATH");
                    cmd.env("LD_LIBRARY_PATH", dir.library_path(previous.as_deref()));
                }
                cmd.env("VCOMPUTE_ENDPOINT", &target.endpoint);
            }
        }
    }
}

/// The shim library's file name (both APIs: one cdylib).
pub const SHIM_FILE: &str = "libvcompute_shim.so";

/// Why a case failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// An API call returned an error.
    #[error("{call} failed: {code} ({name})")]
    Call {
        call: &'static str,
        code: i32,
        name: String,
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

/// Every API that implements the workload families is a backend: this is
/// the one place a [`Case`] meets the workload that runs it.
impl<D: Compute + Memory + Timing> Backend for D {
    fn runtime(&self) -> &RuntimeInfo {
        self.info()
    }

    fn run(
        &mut self,
        case: &Case,
        warmup: usize,
        reps: usize,
    ) -> Result<Measurement, WorkloadError> {
        let samples = |s: Vec<f64>| Measurement {
            samples_ns: s,
            ..Measurement::default()
        };
        let key = case.to_string();
        let (w, r) = (warmup, reps);
        match *case {
            Case::VectorAdd { n } => compute::vector_add(self, n, w, r).map(samples),
            Case::MatrixMul { n } => compute::matrix_mul(self, &key, n, w, r).map(samples),
            Case::BlackScholes { options } => {
                compute::black_scholes(self, &key, options, w, r).map(samples)
            }
            Case::FastWalshTransform {
                log2_data,
                log2_kernel,
            } => compute::fwt(self, &key, log2_data, log2_kernel, w, r).map(samples),
            Case::ConvolutionSeparable { width, height } => {
                compute::convolution(self, &key, width, height, w, r).map(samples)
            }
            Case::Bandwidth { dir, mem, bytes } => {
                memory::bandwidth(self, dir, mem, bytes, w, r).map(samples)
            }
            Case::AlignedTypes { ty, bytes } => {
                memory::aligned_types(self, ty, bytes, w, r).map(samples)
            }
            Case::Image { op, bytes } => self.image(op, bytes, w, r).map(samples),
            Case::SmallCopy { dir, bytes } => match dir {
                Direction::D2D => Err(WorkloadError::Unavailable(
                    "small copies are H2D or D2H".into(),
                )),
                _ => memory::small_copy(self, dir, bytes, w, r).map(samples),
            },
            Case::AsyncApi { n } => self.async_api(n, w, r),
            Case::Clock { groups, group_size } => self.clock(groups, group_size, w, r),
            Case::NullSync => timing::null_sync(self, w, r).map(samples),
            Case::LaunchRate { launches } => timing::launch_rate(self, launches, w, r).map(samples),
        }
    }
}

impl Api {
    /// Checks, before a run starts anything, that this machine has what
    /// the native side of `self` needs; the error names what is missing.
    /// (OpenCL's needs show when its worker opens the first platform.)
    pub fn check_available(self) -> Result<(), WorkloadError> {
        match self {
            Api::OpenCl => Ok(()),
            Api::Cuda => cuda::probe::check_native().map_err(WorkloadError::Unavailable),
        }
    }
}

/// Opens the backend for `api` in this process, as `side` sees it.
pub fn open(api: Api, side: Side) -> Result<Box<dyn Backend>, WorkloadError> {
    match api {
        Api::OpenCl => Ok(Box::new(opencl::OpenCl::open()?)),
        Api::Cuda => Ok(Box::new(cuda::Cuda::open(side)?)),
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

/// [`sample`] for workloads that keep figures beside their samples: `one`
/// returns its sample and one figure per name in `names`; the figures of
/// the untimed runs are dropped.
pub fn sample_with<const N: usize>(
    warmup: usize,
    reps: usize,
    names: [&str; N],
    mut one: impl FnMut() -> Result<(f64, [f64; N]), WorkloadError>,
) -> Result<Measurement, WorkloadError> {
    let mut figures: [Vec<f64>; N] = std::array::from_fn(|_| Vec::new());
    let samples_ns = sample(warmup, reps, || {
        let (sample, figs) = one()?;
        for (all, f) in figures.iter_mut().zip(figs) {
            all.push(f);
        }
        Ok(sample)
    })?;
    let extra = names
        .into_iter()
        .zip(figures)
        .map(|(name, mut all)| {
            let timed = all.split_off(all.len() - samples_ns.len());
            (name.to_string(), timed)
        })
        .collect();
    Ok(Measurement { samples_ns, extra })
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
    fn the_cuda_side_environments() {
        let tmp = tempfile::tempdir().unwrap();
        let shim = tmp.path().join(SHIM_FILE);
        std::fs::write(&shim, b"").unwrap();
        let target = VirtualTarget {
            shim: shim.clone(),
            endpoint: "vhost-user:/s".into(),
            cuda_lib_dir: Some(cuda::libdir::ShimLibDir::create(&shim).unwrap()),
        };
        let env = |side| {
            let mut cmd = Command::new("true");
            Api::Cuda.point_at(&mut cmd, side, &target);
            cmd.get_envs()
                .map(|(k, v)| (k.to_owned(), v.map(ToOwned::to_owned)))
                .collect::<Vec<_>>()
        };
        let virt = env(Side::Virtual);
        let lib = virt
            .iter()
            .find(|(k, _)| k == "LD_LIBRARY_PATH")
            .and_then(|(_, v)| v.clone())
            .unwrap();
        let dir = target.cuda_lib_dir.as_ref().unwrap().path();
        assert!(
            lib.to_string_lossy()
                .starts_with(&dir.display().to_string()),
            "{lib:?}"
        );
        assert!(virt.contains(&("VCOMPUTE_ENDPOINT".into(), Some("vhost-user:/s".into()))));
        let native = env(Side::Native);
        assert_eq!(native, [("VCOMPUTE_ENDPOINT".into(), None)]);
        assert!(Api::OpenCl.check_available().is_ok());
    }
}
