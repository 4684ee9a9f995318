//! Command-line arguments, and the checked [`Config`] they turn into.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::executor::ExecutorKind;
use crate::limits::{
    session_limits, DEFAULT_MAX_DEVICE_MEMORY, DEFAULT_MAX_OBJECTS, DEFAULT_MAX_SESSIONS,
    DEFAULT_POLL_US, MAX_POLL_US,
};
use crate::server::ServerConfig;

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
    /// Unix socket to listen on for vhost-user frontends (replaced if it exists).
    #[arg(long, value_name = "PATH")]
    pub socket: PathBuf,

    /// Runtime that executes guest calls.
    #[arg(long, value_enum, default_value_t = ExecutorArg::Auto)]
    pub executor: ExecutorArg,

    /// Most concurrent guest connections; extra ones are closed at once.
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
}

/// Arguments that parse but make no sense.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// `--max-sessions 0` would refuse every guest.
    #[error("--max-sessions must be at least 1")]
    ZeroSessions,
    /// `--max-objects 0` would fail every guest's first call.
    #[error("--max-objects must be at least 1")]
    ZeroObjects,
    /// Polling longer than [`MAX_POLL_US`] wastes a core.
    #[error("--poll-us {0} exceeds the maximum of {MAX_POLL_US}")]
    PollTooLong(u64),
    /// The socket's directory does not exist.
    #[error("the directory of socket {0} does not exist")]
    NoSocketDir(PathBuf),
}

/// The daemon's checked configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Which executor to create.
    pub executor: ExecutorKind,
    /// Socket, limits and polling.
    pub server: ServerConfig,
}

impl TryFrom<Args> for Config {
    type Error = ConfigError;

    fn try_from(a: Args) -> Result<Self, ConfigError> {
        if a.max_sessions == 0 {
            return Err(ConfigError::ZeroSessions);
        }
        if a.max_objects == 0 {
            return Err(ConfigError::ZeroObjects);
        }
        if a.poll_us > MAX_POLL_US {
            return Err(ConfigError::PollTooLong(a.poll_us));
        }
        let dir = match a.socket.parent() {
            Some(d) if d.as_os_str().is_empty() => PathBuf::from("."),
            Some(d) => d.to_path_buf(),
            None => return Err(ConfigError::NoSocketDir(a.socket)),
        };
        if !dir.is_dir() {
            return Err(ConfigError::NoSocketDir(a.socket));
        }
        Ok(Config {
            executor: a.executor.into(),
            server: ServerConfig {
                socket: a.socket,
                max_sessions: a.max_sessions,
                limits: session_limits(a.max_objects, a.max_device_memory),
                poll: Duration::from_micros(a.poll_us),
            },
        })
    }
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
    fn socket_is_required() {
        assert!(Args::try_parse_from(["vhost-device-compute"]).is_err());
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
