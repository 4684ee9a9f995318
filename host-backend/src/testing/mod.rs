//! Test doubles of the daemon, for tests without a GPU; built only with
//! the `testing` cargo feature (and in the daemon's own unit tests), never
//! in the daemon's default build.
//!
//! The recording CUDA test double ([`RecordingCudaDouble`]) is **not** a
//! CUDA implementation. It runs every request through the same session
//! layer as the real executor ([`crate::executor::cuda::CudaSession`]:
//! handle tables, the allocation table with its range checks and memory
//! limit, flag and attribute checks), over an emulated device
//! ([`EmulatedGpu`]) that keeps device memory in host RAM, and it records
//! every call. It never runs a kernel: a launch is checked and recorded,
//! nothing more. What it is for:
//! - tests of marshaling: every request as decoded, with its in-bulk bytes
//!   (launch parameter bytes, grid and block, stream order);
//! - tests of the asynchronous pipeline and sticky errors: any call can be
//!   made to fail with a chosen `CUresult` ([`Recorder::fail`]), or to
//!   poison the session from then on ([`Recorder::fail_sticky`]) as a
//!   faulting kernel poisons a real context;
//! - the CUDA conformance checks, which run against it always and against
//!   the real executor when a GPU is present.
//!
//! Module images are parsed with the same parser the real executor uses
//! for parameter layouts: a PTX image's `.entry` kernels can be fetched,
//! with their layouts, and its globals get emulated storage.
//!
//! | file | role |
//! |---|---|
//! | `memory.rs` | emulated device memory: sparse pages in host RAM |
//! | `gpu.rs` | [`EmulatedGpu`]: the CUDA backend over that memory |
//! | `capture.rs` | stream capture and graphs on the emulated device |
//! | `recorder.rs` | [`Recorder`], [`RecordingCudaDouble`] and its factory |
//! | `server.rs` | [`RecordingServer`]: the daemon's server over the double, in-process |
//!
//! The command line cannot pick the double: [`crate::executor::ExecutorKind`]
//! has no variant for it and [`crate::executor::factory`] never returns it.
//! Tests of other crates (the shim's, the benchmark harness's) enable the
//! feature in their dev-dependencies.

mod capture;
mod gpu;
mod memory;
mod recorder;
mod server;

pub use capture::{EmuGraph, EmuGraphExec};
pub use gpu::{EmuEvent, EmuFunction, EmuModule, EmuStream, EmulatedGpu};
pub use recorder::{Call, Recorder, RecordingCudaDouble, RecordingCudaFactory};
pub use server::RecordingServer;

/// The emulated driver version (CUDA 12.4).
pub const DOUBLE_DRIVER_VERSION: i32 = 12040;
/// The emulated device's name.
pub const DOUBLE_DEVICE_NAME: &str = "virtio-compute recording test double (emulated, no GPU)";
/// Device memory the emulated device reports, by default.
pub const DOUBLE_TOTAL_MEM: u64 = 16 << 30;
