//! The daemon's checked configuration: what [`crate::args`] turns the
//! command line into, and what embedders and tests build directly.

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
    /// Most concurrent connections.
    pub max_sessions: usize,
    /// Bounds handed to each session's executor.
    pub limits: SessionLimits,
    /// Adaptive polling window after a queue drains.
    pub poll: Duration,
}
