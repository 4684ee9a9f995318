//! The daemon's checked configuration: what [`crate::args`] turns the
//! command line into, and what embedders and tests build directly.

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::time::Duration;

use crate::executor::ExecutorKind;
use crate::limits::SessionLimits;

/// The daemon's checked configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Which executor to create.
    pub executor: ExecutorKind,
    /// Socket, limits and polling.
    pub server: ServerConfig,
    /// The worker processes the supervisor runs, one per connection.
    pub workers: WorkerConfig,
    /// In a worker process: its end of the control channel to the
    /// supervisor (the hidden `--worker-control`).
    pub worker_control: Option<RawFd>,
}

/// The worker processes: how many are kept ready, how long one call may
/// run, and what their sandbox allows.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Workers started ahead, sandboxed and with the runtime initialised,
    /// so that a new connection does not wait for either.
    pub warm: usize,
    /// Longest a single call may run before its worker is ended.
    pub max_call: Option<Duration>,
    /// The sandbox of every worker.
    pub sandbox: SandboxConfig,
    /// A cgroup v2 leaf per worker under this delegated cgroup.
    pub cgroup: Option<CgroupConfig>,
    /// Where each worker's private scratch directory is made.
    pub scratch: PathBuf,
    /// A compiled-kernel cache shared by all workers (POCL's and the CUDA
    /// JIT's), for a daemon whose guests are all one tenant; none: each
    /// worker compiles into its own scratch directory.
    pub kernel_cache: Option<PathBuf>,
    /// Where the supervisor serves its per-worker metrics.
    pub metrics: Option<MetricsAddr>,
}

/// What a worker's sandbox allows beyond its fixed rules.
#[derive(Clone, Debug, Default)]
pub struct SandboxConfig {
    /// `RLIMIT_AS`, in bytes (none: unlimited).
    pub address_space: Option<u64>,
    /// `RLIMIT_CPU`, in seconds of CPU time (none: unlimited).
    pub cpu_seconds: Option<u64>,
    /// `RLIMIT_NOFILE`.
    pub max_files: u64,
    /// More paths the runtime may read (a vendor runtime installed
    /// elsewhere than `/usr`).
    pub allow_read: Vec<PathBuf>,
    /// More paths the runtime may read and write (device nodes of another
    /// vendor).
    pub allow_rw: Vec<PathBuf>,
}

/// A delegated cgroup v2 directory and the limits of each worker's leaf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupConfig {
    /// The delegated cgroup (writable by the daemon).
    pub parent: PathBuf,
    /// `memory.max` of each leaf, in bytes.
    pub memory_max: Option<u64>,
    /// `cpu.max` of each leaf, as a percentage of one CPU.
    pub cpu_percent: Option<u32>,
}

/// Where the supervisor's metrics are served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetricsAddr {
    /// A unix socket.
    Unix(PathBuf),
    /// A TCP address (a loopback one, normally).
    Tcp(SocketAddr),
}

/// vsock device mode: what the vhost-user socket serves instead of the
/// virtio-compute device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VsockConfig {
    /// The guest's context id, reported in the device's config space.
    pub guest_cid: u64,
    /// The port whose connections the daemon serves.
    pub port: u32,
}

/// What the server needs beyond the executor factory.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// vhost-user socket path; an existing file there is replaced.
    pub socket: Option<PathBuf>,
    /// Stream listener path; an existing file there is replaced.
    pub listen: Option<PathBuf>,
    /// vsock device mode on `socket`.
    pub vsock: Option<VsockConfig>,
    /// Device mode on `socket`: the virtio-compute device of a VM, whose
    /// driver gives each guest process a session (not with `vsock`).
    pub device: bool,
    /// Most concurrent connections; in device mode also the most sessions
    /// one device serves at once (its config space's `max_sessions`), in
    /// vsock device mode the most guest connections.
    pub max_sessions: usize,
    /// Bounds handed to each session's executor.
    pub limits: SessionLimits,
    /// Adaptive polling window after a queue drains.
    pub poll: Duration,
}
