//! Serving one guest connection, whoever accepted it: the in-process
//! [`crate::server::Server`] runs this on a thread per connection, a worker
//! process (`crate::worker`) runs it once, for the connection the
//! supervisor handed it.
//!
//! - [`VhostConn`]: a vhost-user frontend, accepted from a listening socket:
//!   the virtio-compute device with one session (direct mode), or a VM's
//!   virtio-compute device whose driver opens a session per guest process
//!   (device mode), or (with a vsock configuration) a VM's vhost-user-vsock
//!   device whose guest connections each get a session.
//! - [`serve_stream`]: a stream connection (unix socket) with one session.
//!
//! A session's thread may be blocked in a wait only its guest could have
//! ended (see [`crate::executor::Abandon`]), so each connection abandons its
//! session as soon as its guest is seen to go: a vhost-user connection when
//! the frontend has gone, a stream connection when the peer hangs up (a
//! thread watches for it).

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use tracing::debug;
use vhost::vhost_user::Listener;
use vhost_user_backend::{ShutdownHandle, VhostUserDaemon};
use vm_memory::{GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::config::{ServerConfig, VsockConfig};
use crate::executor::ExecutorFactory;
use crate::limits::SessionLimits;
use crate::session::Session;
use crate::vhu_compute::VhuCompute;
use crate::vhu_device::VhuDevice;
use crate::vsock::{VhuVsock, WAKE_EVENT};

/// Why a connection could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// The vsock device could not be created.
    #[error("cannot create a vsock device")]
    Vsock(#[source] io::Error),
    /// The vhost-user daemon could not be created (the crate's error is
    /// not a `std::error::Error`, so it is shown here).
    #[error("cannot create a vhost-user daemon: {0}")]
    Daemon(vhost_user_backend::Error),
    /// The vsock device's wake event could not join the worker's epoll.
    #[error("cannot register the vsock wake event")]
    Wake(#[source] io::Error),
    /// Accepting the frontend or starting to serve it failed.
    #[error("cannot start serving the frontend: {0}")]
    Start(vhost_user_backend::Error),
    /// The hang-up watch of a stream connection could not be set up.
    #[error("cannot watch the connection for hang-ups")]
    Watch(#[source] io::Error),
}

/// What every connection is served with.
#[derive(Clone)]
pub struct ConnSetup {
    /// Opens each session's executor.
    pub factory: Arc<dyn ExecutorFactory>,
    /// Bounds of each session.
    pub limits: SessionLimits,
    /// Adaptive polling window after a queue drains.
    pub poll: Duration,
    /// vsock device mode: the vhost-user socket carries a VM's vsock device.
    pub vsock: Option<VsockConfig>,
    /// Device mode: the vhost-user socket carries a VM's virtio-compute
    /// device, whose driver opens a session per guest process.
    pub device: bool,
    /// Most guest connections one vsock device serves at once, and most
    /// sessions one device serves at once.
    pub max_sessions: usize,
}

impl ConnSetup {
    /// What each connection of a server configured by `config` is served
    /// with, its executors opened by `factory`.
    pub fn new(config: &ServerConfig, factory: Arc<dyn ExecutorFactory>) -> Self {
        ConnSetup {
            factory,
            limits: config.limits,
            poll: config.poll,
            vsock: config.vsock,
            device: config.device,
            max_sessions: config.max_sessions,
        }
    }
}

impl std::fmt::Debug for ConnSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnSetup")
            .field("factory", &self.factory.name())
            .field("limits", &self.limits)
            .field("poll", &self.poll)
            .field("vsock", &self.vsock)
            .field("device", &self.device)
            .finish()
    }
}

enum Device {
    Compute(VhostUserDaemon<Arc<VhuCompute>>, Arc<VhuCompute>),
    Sessions(VhostUserDaemon<Arc<VhuDevice>>, Arc<VhuDevice>),
    Vsock(VhostUserDaemon<Arc<VhuVsock>>),
}

/// One vhost-user frontend being served.
pub struct VhostConn {
    device: Device,
}

impl std::fmt::Debug for VhostConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.device {
            Device::Compute(..) => "compute",
            Device::Sessions(..) => "device",
            Device::Vsock(_) => "vsock",
        };
        f.debug_struct("VhostConn").field("device", &kind).finish()
    }
}

impl VhostConn {
    /// Builds the device `setup` describes and accepts one frontend on
    /// `listener` (blocking until one connects).
    pub fn accept(listener: &mut Listener, setup: &ConnSetup) -> Result<VhostConn, ConnError> {
        let mem = GuestMemoryAtomic::new(GuestMemoryMmap::new());
        let device = match setup.vsock {
            None if setup.device => {
                let backend = Arc::new(VhuDevice::new(
                    setup.factory.clone(),
                    setup.limits,
                    setup.max_sessions,
                    setup.poll,
                    mem.clone(),
                ));
                let mut daemon =
                    VhostUserDaemon::new("vcompute-device".into(), backend.clone(), mem)
                        .map_err(ConnError::Daemon)?;
                daemon.start(listener).map_err(ConnError::Start)?;
                Device::Sessions(daemon, backend)
            }
            None => {
                let backend = Arc::new(VhuCompute::new(
                    setup.factory.clone(),
                    setup.limits,
                    setup.poll,
                    mem.clone(),
                ));
                let mut daemon = VhostUserDaemon::new("vcompute-conn".into(), backend.clone(), mem)
                    .map_err(ConnError::Daemon)?;
                daemon.start(listener).map_err(ConnError::Start)?;
                Device::Compute(daemon, backend)
            }
            Some(v) => {
                let backend = Arc::new(
                    VhuVsock::new(
                        v.guest_cid,
                        v.port,
                        setup.max_sessions,
                        setup.factory.clone(),
                        setup.limits,
                        mem.clone(),
                    )
                    .map_err(ConnError::Vsock)?,
                );
                let wake = backend.wake_fd();
                let mut daemon = VhostUserDaemon::new("vcompute-vsock".into(), backend, mem)
                    .map_err(ConnError::Daemon)?;
                // One worker thread serves every queue; the wake event joins
                // its epoll set.
                let handlers = daemon.get_epoll_handlers();
                let h = handlers
                    .first()
                    .ok_or_else(|| ConnError::Wake(io::Error::other("no worker thread")))?;
                h.register_listener(wake, vmm_sys_util::epoll::EventSet::IN, WAKE_EVENT)
                    .map_err(ConnError::Wake)?;
                daemon.start(listener).map_err(ConnError::Start)?;
                Device::Vsock(daemon)
            }
        };
        Ok(VhostConn { device })
    }

    /// Ends the connection from another thread.
    pub fn shutdown_handle(&self) -> Option<ShutdownHandle> {
        match &self.device {
            Device::Compute(d, _) => d.shutdown_handle(),
            Device::Sessions(d, _) => d.shutdown_handle(),
            Device::Vsock(d) => d.shutdown_handle(),
        }
    }

    /// Serves until the frontend goes (or the connection is shut down),
    /// then frees every session the connection had.
    pub fn serve(self) {
        match self.device {
            Device::Compute(mut daemon, backend) => {
                if let Err(e) = daemon.wait() {
                    debug!(error = %e, "vhost-user connection ended with an error");
                }
                // A worker thread may be blocked in a wait only the guest
                // could have ended; end it, or joining it never returns.
                backend.abandon_session();
                // Stops the worker threads and drops the session with them.
                drop(daemon);
            }
            Device::Sessions(mut daemon, backend) => {
                if let Err(e) = daemon.wait() {
                    debug!(error = %e, "device connection ended with an error");
                }
                // As above, for every session of the device.
                backend.abandon_sessions();
                drop(daemon);
            }
            Device::Vsock(mut daemon) => {
                if let Err(e) = daemon.wait() {
                    debug!(error = %e, "vsock device connection ended with an error");
                }
                // Dropping the device abandons and ends its sessions.
                drop(daemon);
            }
        }
    }
}

/// Serves one stream connection with a fresh session until the peer closes
/// it, then frees the session. A thread watches the connection so that a
/// peer that hangs up mid-request ends the session's waits on it.
pub fn serve_stream(mut conn: UnixStream, setup: &ConnSetup) -> Result<(), ConnError> {
    let mut session = Session::new(setup.factory.clone(), setup.limits);
    let abandon = session.abandoner();
    let done = EventFd::new(EFD_NONBLOCK).map_err(ConnError::Watch)?;
    let watched = conn.try_clone().map_err(ConnError::Watch)?;
    let done_watch = done.try_clone().map_err(ConnError::Watch)?;
    let watcher = thread::Builder::new()
        .name("vcompute-hangup".into())
        .spawn(move || {
            if wait_hangup(&watched, &done_watch) {
                debug!("stream peer hung up");
                abandon.abandon();
            }
        })
        .map_err(ConnError::Watch)?;
    if let Err(e) = crate::stream::serve(&mut conn, &mut session) {
        debug!(error = %e, "stream connection ended with an error");
    }
    let _ = done.write(1);
    let _ = watcher.join();
    // Frees everything the client made.
    drop(session);
    Ok(())
}

/// Blocks until `conn`'s peer hangs up (true) or `done` is signalled
/// (false).
fn wait_hangup(conn: &UnixStream, done: &EventFd) -> bool {
    let mut fds = [
        libc::pollfd {
            fd: conn.as_fd().as_raw_fd(),
            events: libc::POLLRDHUP,
            revents: 0,
        },
        libc::pollfd {
            fd: done.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: `fds` is a valid array of initialised pollfd structs that
        // outlives the call, and its length is passed alongside it.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return false;
        }
        let [c, d] = &fds;
        if d.revents != 0 {
            return false;
        }
        if c.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0 {
            return true;
        }
    }
}
