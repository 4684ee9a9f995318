//! Command-line arguments, and the checked [`Config`] they turn into.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::config::{
    CgroupConfig, Config, MetricsAddr, SandboxConfig, ServerConfig, VsockConfig, WorkerConfig,
};
use crate::executor::ExecutorKind;
use crate::limits::{
    session_limits, DEFAULT_MAX_CALL_SECONDS, DEFAULT_MAX_DEVICE_MEMORY, DEFAULT_MAX_OBJECTS,
    DEFAULT_MAX_SESSIONS, DEFAULT_POLL_US, DEFAULT_VSOCK_PORT, DEFAULT_WARM_WORKERS,
    DEFAULT_WORKER_MAX_FILES, MAX_MAX_SESSIONS, MAX_POLL_US, MAX_WARM_WORKERS,
    MIN_WORKER_MAX_FILES,
};

/// Which runtime replays guest calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExecutorArg {
    /// Every runtime present: CUDA, OpenCL, or both (routed per API family).
    Auto,
    /// OpenCL through the system ICD loader.
    Opencl,
    /// CUDA through the driver API.
    Cuda,
}

impl From<ExecutorArg> for ExecutorKind {
    fn from(a: ExecutorArg) -> Self {
        match a {
            ExecutorArg::Auto => ExecutorKind::Auto,
            ExecutorArg::Opencl => ExecutorKind::OpenCl,
            ExecutorArg::Cuda => ExecutorKind::Cuda,
        }
    }
}

/// vhost-user backend for the virtio-compute device: replays guest GPU
/// compute calls (OpenCL, CUDA) on this host's runtime.
#[derive(Clone, Debug, Parser, PartialEq, Eq)]
#[command(name = "vhost-device-compute", version, about)]
pub struct Args {
    /// Unix socket to listen on for vhost-user frontends (replaced if it
    /// exists): the virtio-compute device (for the shim as frontend, or
    /// with --device for a VMM), or with --vsock-cid a vhost-user-vsock
    /// device.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Serve --socket as a VM's virtio-compute device (device mode): the
    /// VMM attaches the socket, the guest's kernel driver gives each guest
    /// process a session (at most --max-sessions at once).
    #[arg(long)]
    pub device: bool,

    /// Stream listener, `unix:PATH` (replaced if it exists): host-local
    /// clients, and the socket Firecracker and Cloud Hypervisor connect a
    /// guest's vsock port P to (`<uds_path>_<P>`).
    #[arg(long, value_name = "unix:PATH")]
    pub listen: Option<String>,

    /// Be a vhost-user-vsock device on --socket for a guest with this
    /// context id, and serve its connections to --vsock-port.
    #[arg(long, value_name = "CID")]
    pub vsock_cid: Option<u64>,

    /// The vsock port served in vsock device mode.
    #[arg(long, value_name = "PORT", default_value_t = DEFAULT_VSOCK_PORT)]
    pub vsock_port: u32,

    /// Runtime that executes guest calls.
    #[arg(long, value_enum, default_value_t = ExecutorArg::Auto)]
    pub executor: ExecutorArg,

    /// Most concurrent guest connections; extra ones are closed at once.
    /// With --device also the most sessions one device serves at once
    /// (its config space's max_sessions); with --vsock-cid the most guest
    /// connections to the port.
    #[arg(long, default_value_t = DEFAULT_MAX_SESSIONS)]
    pub max_sessions: usize,

    /// Most live objects one session may hold.
    #[arg(long, default_value_t = DEFAULT_MAX_OBJECTS)]
    pub max_objects: usize,

    /// Most device memory, in bytes, one session may allocate (0 = unlimited).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_DEVICE_MEMORY)]
    pub max_device_memory: u64,

    /// Microseconds to keep polling a drained queue before sleeping (0 = never poll).
    #[arg(long, value_name = "US", default_value_t = DEFAULT_POLL_US)]
    pub poll_us: u64,

    /// Worker processes kept started and sandboxed, with the runtime
    /// initialised, for the next connections (0 = start one per connection).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_WARM_WORKERS)]
    pub warm_workers: usize,

    /// Seconds one call may run before its worker (and only its guest's
    /// session) is ended (0 = no limit).
    #[arg(long, value_name = "S", default_value_t = DEFAULT_MAX_CALL_SECONDS)]
    pub max_call_seconds: u64,

    /// Most open files per worker (RLIMIT_NOFILE).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_WORKER_MAX_FILES)]
    pub worker_max_files: u64,

    /// Address space per worker, in bytes (RLIMIT_AS; 0 = unlimited; the
    /// CUDA driver reserves far more address space than it uses).
    #[arg(long, value_name = "BYTES", default_value_t = 0)]
    pub worker_address_space: u64,

    /// CPU time per worker, in seconds (RLIMIT_CPU; 0 = unlimited).
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub worker_cpu_seconds: u64,

    /// A path workers may also read (a vendor runtime outside /usr);
    /// repeatable.
    #[arg(long, value_name = "PATH")]
    pub sandbox_allow_read: Vec<PathBuf>,

    /// A path workers may also read and write (another vendor's device
    /// nodes); repeatable.
    #[arg(long, value_name = "PATH")]
    pub sandbox_allow_rw: Vec<PathBuf>,

    /// A delegated cgroup v2 directory: each worker runs in a leaf of its
    /// own below it.
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<PathBuf>,

    /// memory.max of each worker's cgroup leaf, in bytes (needs --cgroup).
    #[arg(long, value_name = "BYTES")]
    pub worker_memory_max: Option<u64>,

    /// cpu.max of each worker's cgroup leaf, in percent of one CPU (needs
    /// --cgroup).
    #[arg(long, value_name = "PERCENT")]
    pub worker_cpu_percent: Option<u32>,

    /// Directory for the workers' private scratch directories (default:
    /// $RUNTIME_DIRECTORY, else the system's temporary directory).
    #[arg(long, value_name = "DIR")]
    pub scratch_dir: Option<PathBuf>,

    /// Share one compiled-kernel cache between all workers, in DIR. Only
    /// for a daemon whose guests are all one tenant: any worker can write
    /// what every other loads. Without it each connection compiles its
    /// kernels afresh.
    #[arg(long, value_name = "DIR")]
    pub kernel_cache: Option<PathBuf>,

    /// Serve per-worker metrics (Prometheus text) on `unix:PATH` or
    /// `tcp:HOST:PORT`.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,

    /// Internal: run as a worker on this control descriptor.
    #[arg(long, value_name = "FD", hide = true)]
    pub worker_control: Option<i32>,
}

/// Arguments that parse but make no sense.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// `--max-sessions 0` would refuse every guest.
    #[error("--max-sessions must be at least 1")]
    ZeroSessions,
    /// More sessions than [`MAX_MAX_SESSIONS`].
    #[error("--max-sessions {0} exceeds the maximum of {MAX_MAX_SESSIONS}")]
    TooManySessions(usize),
    /// `--device` without `--socket`.
    #[error("--device needs --socket (the socket the VMM attaches)")]
    DeviceWithoutSocket,
    /// `--device` and `--vsock-cid` name two devices for one socket.
    #[error("--device and --vsock-cid cannot be combined: the socket serves one device")]
    DeviceAndVsock,
    /// `--max-objects 0` would fail every guest's first call.
    #[error("--max-objects must be at least 1")]
    ZeroObjects,
    /// Polling longer than [`MAX_POLL_US`] wastes a core.
    #[error("--poll-us {0} exceeds the maximum of {MAX_POLL_US}")]
    PollTooLong(u64),
    /// The socket's directory does not exist.
    #[error("the directory of socket {0} does not exist")]
    NoSocketDir(PathBuf),
    /// Neither --socket nor --listen was given.
    #[error("nothing to serve: give --socket, --listen or both")]
    NothingToServe,
    /// --listen does not name a unix socket.
    #[error("--listen {0:?}: expected unix:PATH")]
    BadListen(String),
    /// --vsock-cid without --socket.
    #[error("--vsock-cid needs --socket (the vhost-user-vsock socket)")]
    VsockWithoutSocket,
    /// A context id a guest cannot have (0-2 are reserved, the top is
    /// VMADDR_CID_ANY).
    #[error("--vsock-cid {0} is not a guest context id (3 to 4294967294)")]
    BadCid(u64),
    /// More warm workers than [`MAX_WARM_WORKERS`].
    #[error("--warm-workers {0} exceeds the maximum of {MAX_WARM_WORKERS}")]
    TooManyWarm(usize),
    /// Too few descriptors for a runtime to start.
    #[error("--worker-max-files {0} is below the minimum of {MIN_WORKER_MAX_FILES}")]
    TooFewFiles(u64),
    /// A cgroup limit without --cgroup.
    #[error("--worker-memory-max and --worker-cpu-percent need --cgroup")]
    LimitWithoutCgroup,
    /// The cgroup directory does not exist.
    #[error("--cgroup {0}: not a directory")]
    NoCgroup(PathBuf),
    /// A CPU share of 0 %.
    #[error("--worker-cpu-percent must be at least 1")]
    ZeroCpuPercent,
    /// The scratch directory does not exist.
    #[error("--scratch-dir {0}: not a directory")]
    NoScratchDir(PathBuf),
    /// The kernel cache directory does not exist.
    #[error("--kernel-cache {0}: not a directory")]
    NoKernelCache(PathBuf),
    /// --metrics does not parse.
    #[error("--metrics {0:?}: expected unix:PATH or tcp:HOST:PORT")]
    BadMetrics(String),
    /// The hidden worker descriptor is not open.
    #[error("--worker-control {0}: not an open descriptor")]
    BadWorkerControl(i32),
}

/// The directory a socket path lives in must exist.
fn check_dir(path: &std::path::Path) -> Result<(), ConfigError> {
    let dir = match path.parent() {
        Some(d) if d.as_os_str().is_empty() => PathBuf::from("."),
        Some(d) => d.to_path_buf(),
        None => return Err(ConfigError::NoSocketDir(path.to_path_buf())),
    };
    if !dir.is_dir() {
        return Err(ConfigError::NoSocketDir(path.to_path_buf()));
    }
    Ok(())
}

impl TryFrom<Args> for Config {
    type Error = ConfigError;

    fn try_from(a: Args) -> Result<Self, ConfigError> {
        if a.max_sessions == 0 {
            return Err(ConfigError::ZeroSessions);
        }
        if a.max_sessions > MAX_MAX_SESSIONS {
            return Err(ConfigError::TooManySessions(a.max_sessions));
        }
        if a.max_objects == 0 {
            return Err(ConfigError::ZeroObjects);
        }
        if a.poll_us > MAX_POLL_US {
            return Err(ConfigError::PollTooLong(a.poll_us));
        }
        let listen = match &a.listen {
            None => None,
            Some(l) => match l.strip_prefix("unix:") {
                Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
                _ => return Err(ConfigError::BadListen(l.clone())),
            },
        };
        if a.socket.is_none() && listen.is_none() {
            return Err(ConfigError::NothingToServe);
        }
        for p in a.socket.iter().chain(listen.iter()) {
            check_dir(p)?;
        }
        let vsock = match a.vsock_cid {
            None => None,
            Some(_) if a.socket.is_none() => return Err(ConfigError::VsockWithoutSocket),
            Some(cid) if !(3..u64::from(u32::MAX)).contains(&cid) => {
                return Err(ConfigError::BadCid(cid))
            }
            Some(cid) => Some(VsockConfig {
                guest_cid: cid,
                port: a.vsock_port,
            }),
        };
        if a.device && a.socket.is_none() {
            return Err(ConfigError::DeviceWithoutSocket);
        }
        if a.device && vsock.is_some() {
            return Err(ConfigError::DeviceAndVsock);
        }
        let workers = worker_config(&a)?;
        if let Some(fd) = a.worker_control {
            // SAFETY: F_GETFD only queries the descriptor's flags.
            if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
                return Err(ConfigError::BadWorkerControl(fd));
            }
        }
        Ok(Config {
            executor: a.executor.into(),
            workers,
            worker_control: a.worker_control,
            server: ServerConfig {
                socket: a.socket,
                listen,
                vsock,
                device: a.device,
                max_sessions: a.max_sessions,
                limits: session_limits(a.max_objects, a.max_device_memory),
                poll: Duration::from_micros(a.poll_us),
            },
        })
    }
}

/// The worker settings, checked.
fn worker_config(a: &Args) -> Result<WorkerConfig, ConfigError> {
    if a.warm_workers > MAX_WARM_WORKERS {
        return Err(ConfigError::TooManyWarm(a.warm_workers));
    }
    if a.worker_max_files < MIN_WORKER_MAX_FILES {
        return Err(ConfigError::TooFewFiles(a.worker_max_files));
    }
    let cgroup = match &a.cgroup {
        None if a.worker_memory_max.is_some() || a.worker_cpu_percent.is_some() => {
            return Err(ConfigError::LimitWithoutCgroup)
        }
        None => None,
        Some(p) if !p.is_dir() => return Err(ConfigError::NoCgroup(p.clone())),
        Some(_) if a.worker_cpu_percent == Some(0) => return Err(ConfigError::ZeroCpuPercent),
        Some(p) => Some(CgroupConfig {
            parent: p.clone(),
            memory_max: a.worker_memory_max,
            cpu_percent: a.worker_cpu_percent,
        }),
    };
    let scratch = match &a.scratch_dir {
        Some(d) if !d.is_dir() => return Err(ConfigError::NoScratchDir(d.clone())),
        Some(d) => d.clone(),
        None => std::env::var_os("RUNTIME_DIRECTORY")
            .map(PathBuf::from)
            .filter(|d| d.is_dir())
            .unwrap_or_else(std::env::temp_dir),
    };
    let kernel_cache = match &a.kernel_cache {
        Some(d) if !d.is_dir() => return Err(ConfigError::NoKernelCache(d.clone())),
        d => d.clone(),
    };
    let metrics = match &a.metrics {
        None => None,
        Some(m) => Some(parse_metrics(m).ok_or_else(|| ConfigError::BadMetrics(m.clone()))?),
    };
    let nonzero = |v: u64| (v != 0).then_some(v);
    Ok(WorkerConfig {
        warm: a.warm_workers,
        max_call: nonzero(a.max_call_seconds).map(Duration::from_secs),
        sandbox: SandboxConfig {
            address_space: nonzero(a.worker_address_space),
            cpu_seconds: nonzero(a.worker_cpu_seconds),
            max_files: a.worker_max_files,
            allow_read: a.sandbox_allow_read.clone(),
            allow_rw: a.sandbox_allow_rw.clone(),
        },
        cgroup,
        scratch,
        kernel_cache,
        metrics,
    })
}

/// `unix:PATH` or `tcp:HOST:PORT`.
fn parse_metrics(s: &str) -> Option<MetricsAddr> {
    if let Some(p) = s.strip_prefix("unix:") {
        let p = PathBuf::from(p);
        return (!p.as_os_str().is_empty() && check_dir(&p).is_ok())
            .then_some(MetricsAddr::Unix(p));
    }
    let addr = s.strip_prefix("tcp:")?;
    std::net::ToSocketAddrs::to_socket_addrs(addr)
        .ok()?
        .next()
        .map(MetricsAddr::Tcp)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Result<Args, clap::Error> {
        let mut v = vec!["vhost-device-compute", "--socket", "/tmp/vc.sock"];
        v.extend_from_slice(extra);
        Args::try_parse_from(v)
    }

    #[test]
    fn defaults() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.executor, ExecutorArg::Auto);
        assert_eq!(a.max_sessions, DEFAULT_MAX_SESSIONS);
        assert_eq!(a.max_objects, DEFAULT_MAX_OBJECTS);
        assert_eq!(a.poll_us, DEFAULT_POLL_US);
        let c = Config::try_from(a).unwrap();
        assert_eq!(c.executor, ExecutorKind::Auto);
        assert_eq!(c.server.poll, Duration::from_micros(DEFAULT_POLL_US));
        assert_eq!(c.server.limits.max_device_memory, u64::MAX);
    }

    #[test]
    fn something_to_serve_is_required() {
        let a = Args::try_parse_from(["vhost-device-compute"]).unwrap();
        assert_eq!(Config::try_from(a).err(), Some(ConfigError::NothingToServe));
    }

    #[test]
    fn listen_and_vsock() {
        let c = |v: &[&str]| {
            let mut all = vec!["vhost-device-compute"];
            all.extend_from_slice(v);
            Config::try_from(Args::try_parse_from(all).unwrap())
        };
        let only_listen = c(&["--listen", "unix:/tmp/x.sock_7000"]).unwrap();
        assert_eq!(only_listen.server.socket, None);
        assert_eq!(
            only_listen.server.listen,
            Some(PathBuf::from("/tmp/x.sock_7000"))
        );
        let both = c(&[
            "--socket",
            "/tmp/v.sock",
            "--vsock-cid",
            "3",
            "--listen",
            "unix:/tmp/l.sock",
        ])
        .unwrap();
        assert_eq!(
            both.server.vsock,
            Some(VsockConfig {
                guest_cid: 3,
                port: DEFAULT_VSOCK_PORT
            })
        );
        assert_eq!(
            c(&["--listen", "tcp:1"]).err(),
            Some(ConfigError::BadListen("tcp:1".into()))
        );
        assert_eq!(
            c(&["--listen", "unix:"]).err(),
            Some(ConfigError::BadListen("unix:".into()))
        );
        assert_eq!(
            c(&["--listen", "unix:/tmp/l", "--vsock-cid", "3"]).err(),
            Some(ConfigError::VsockWithoutSocket)
        );
        for bad in ["0", "2", "4294967295"] {
            assert_eq!(
                c(&["--socket", "/tmp/v.sock", "--vsock-cid", bad]).err(),
                Some(ConfigError::BadCid(bad.parse().unwrap()))
            );
        }
        assert!(matches!(
            c(&["--listen", "unix:/nonexistent-dir/l"]),
            Err(ConfigError::NoSocketDir(_))
        ));
    }

    #[test]
    fn device_mode() {
        let c = |v: &[&str]| {
            let mut all = vec!["vhost-device-compute"];
            all.extend_from_slice(v);
            Config::try_from(Args::try_parse_from(all).unwrap())
        };
        let d = c(&["--socket", "/tmp/d.sock", "--device", "--max-sessions", "8"]).unwrap();
        assert!(d.server.device);
        assert_eq!(d.server.max_sessions, 8);
        assert!(!c(&["--socket", "/tmp/d.sock"]).unwrap().server.device);
        assert_eq!(
            c(&["--listen", "unix:/tmp/l", "--device"]).err(),
            Some(ConfigError::DeviceWithoutSocket)
        );
        assert_eq!(
            c(&["--socket", "/tmp/d.sock", "--device", "--vsock-cid", "3"]).err(),
            Some(ConfigError::DeviceAndVsock)
        );
        assert_eq!(
            c(&["--socket", "/tmp/d.sock", "--max-sessions", "4097"]).err(),
            Some(ConfigError::TooManySessions(4097))
        );
    }

    #[test]
    fn executor_values() {
        assert_eq!(
            parse(&["--executor", "cuda"]).unwrap().executor,
            ExecutorArg::Cuda
        );
        assert_eq!(
            parse(&["--executor", "opencl"]).unwrap().executor,
            ExecutorArg::Opencl
        );
        assert!(parse(&["--executor", "vulkan"]).is_err());
    }

    #[test]
    fn checks() {
        let c = |extra: &[&str]| Config::try_from(parse(extra).unwrap()).map(|_| ());
        assert_eq!(c(&["--max-sessions", "0"]), Err(ConfigError::ZeroSessions));
        assert_eq!(c(&["--max-objects", "0"]), Err(ConfigError::ZeroObjects));
        assert_eq!(
            c(&["--poll-us", "10001"]),
            Err(ConfigError::PollTooLong(10001))
        );
        assert_eq!(c(&["--poll-us", "0"]), Ok(()));
        let a = Args::try_parse_from(["x", "--socket", "/nonexistent-dir/s.sock"]).unwrap();
        assert!(matches!(
            Config::try_from(a),
            Err(ConfigError::NoSocketDir(_))
        ));
    }
}
