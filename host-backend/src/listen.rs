//! The daemon's listening sockets and its stop channel, shared by the
//! in-process [`crate::server::Server`] and the `crate::supervisor`:
//! binding the vhost-user socket and the stream listener, waiting for
//! either (or a stop request), and routing SIGINT/SIGTERM to the stop
//! channel.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use vhost::vhost_user::Listener;

use crate::config::ServerConfig;

/// Why the listening sockets or the stop channel could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The vhost-user socket could not be created.
    #[error("cannot listen on {path}")]
    Listen {
        /// The socket path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: vhost::vhost_user::Error,
    },
    /// The stream listener could not be created.
    #[error("cannot listen on {path}")]
    ListenStream {
        /// The socket path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// The stop channel or signal handlers could not be set up.
    #[error("cannot set up shutdown handling")]
    Signals(#[source] io::Error),
    /// Waiting for the listeners failed.
    #[error("polling the listening sockets failed")]
    Poll(#[source] io::Error),
}

/// Ends a running server or supervisor; cheap to clone, callable from any
/// thread.
#[derive(Debug, Clone)]
pub struct StopHandle(Arc<UnixStream>);

impl StopHandle {
    /// Asks the server to stop. Idempotent.
    pub fn stop(&self) {
        let _ = (&*self.0).write(&[1]);
    }
}

/// The receiving end of a stop channel; see [`stop_channel`].
#[derive(Debug)]
pub struct StopReceiver(UnixStream);

/// Creates a stop channel.
pub fn stop_channel() -> Result<(StopHandle, StopReceiver), ListenError> {
    let (rx, tx) = UnixStream::pair().map_err(ListenError::Signals)?;
    rx.set_nonblocking(true).map_err(ListenError::Signals)?;
    tx.set_nonblocking(true).map_err(ListenError::Signals)?;
    Ok((StopHandle(Arc::new(tx)), StopReceiver(rx)))
}

/// The daemon's listening sockets.
pub struct Listeners {
    /// The vhost-user socket (`--socket`).
    pub vhost: Option<Listener>,
    /// The stream listener (`--listen unix:PATH`), non-blocking.
    pub stream: Option<UnixListener>,
    stream_path: Option<PathBuf>,
}

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listeners")
            .field("vhost", &self.vhost.as_ref().map(AsRawFd::as_raw_fd))
            .field("stream", &self.stream)
            .finish()
    }
}

/// Which of the fds [`Listeners::wait`] watches are readable.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ready {
    /// A frontend is connecting to the vhost-user socket.
    pub vhost: bool,
    /// A client is connecting to the stream listener.
    pub stream: bool,
    /// The extra fd is readable.
    pub extra: bool,
    /// A stop was requested.
    pub stop: bool,
}

impl Listeners {
    /// Binds the sockets `config` names, replacing stale socket files.
    pub fn bind(config: &ServerConfig) -> Result<Self, ListenError> {
        let vhost = match &config.socket {
            Some(path) => {
                Some(
                    Listener::new(path, true).map_err(|source| ListenError::Listen {
                        path: path.clone(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        let stream = match &config.listen {
            Some(path) => Some(bind_stream(path)?),
            None => None,
        };
        Ok(Listeners {
            vhost,
            stream,
            stream_path: config.listen.clone(),
        })
    }

    /// Blocks until a listener, `extra` (when given) or the stop channel is
    /// readable. A stop request is consumed.
    pub fn wait(&self, stop: &StopReceiver, extra: Option<RawFd>) -> Result<Ready, ListenError> {
        // A negative fd is ignored by poll(2).
        let mut fds = [
            self.vhost.as_ref().map_or(-1, AsRawFd::as_raw_fd),
            self.stream.as_ref().map_or(-1, AsRawFd::as_raw_fd),
            extra.unwrap_or(-1),
            stop.0.as_fd().as_raw_fd(),
        ]
        .map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        });
        loop {
            // SAFETY: `fds` is a valid array of initialised pollfd structs
            // that outlives the call, and its length is passed alongside it.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
            if n >= 0 {
                let ready = |p: &libc::pollfd| {
                    p.revents & (libc::POLLIN | libc::POLLERR | libc::POLLHUP) != 0
                };
                let [v, s, x, st] = &fds;
                let r = Ready {
                    vhost: ready(v),
                    stream: ready(s),
                    extra: ready(x),
                    stop: ready(st),
                };
                if r.stop {
                    let mut buf = [0u8; 16];
                    let _ = (&stop.0).read(&mut buf);
                }
                return Ok(r);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(ListenError::Poll(e));
            }
        }
    }

    /// Accepts a pending stream connection (blocking mode), or `None` when
    /// there was none after all.
    pub fn accept_stream(&self) -> io::Result<Option<UnixStream>> {
        let Some(l) = &self.stream else {
            return Ok(None);
        };
        match l.accept() {
            Ok((c, _)) => {
                c.set_nonblocking(false)?;
                Ok(Some(c))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Accepts a pending vhost-user connection only to close it at once,
    /// so that a refused peer sees a prompt hang-up rather than a
    /// connection that never answers. True when there was one.
    pub fn refuse_vhost(&mut self) -> io::Result<bool> {
        let Some(l) = self.vhost.as_mut() else {
            return Ok(false);
        };
        match l.accept() {
            Ok(Some(stream)) => {
                drop(stream);
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(e) => Err(io::Error::other(e)),
        }
    }
}

impl Drop for Listeners {
    fn drop(&mut self) {
        // The vhost-user listener removes its own socket file.
        if let Some(p) = &self.stream_path {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Binds the stream listener, replacing a stale socket file.
fn bind_stream(path: &Path) -> Result<UnixListener, ListenError> {
    let err = |source| ListenError::ListenStream {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let l = UnixListener::bind(path).map_err(err)?;
    l.set_nonblocking(true).map_err(err)?;
    Ok(l)
}

/// Routes SIGINT and SIGTERM to `stop` until dropped.
#[derive(Debug)]
pub struct SignalGuard(Vec<signal_hook::SigId>);

impl SignalGuard {
    /// Registers the handlers.
    pub fn install(stop: &StopHandle) -> Result<Self, ListenError> {
        let mut ids = Vec::new();
        // Runtimes loaded by the executor (LLVM inside POCL) install handlers
        // that reset the signal to its default and re-raise it. signal-hook
        // chains to whatever was there before its first registration, so that
        // would kill the daemon before it could shut down: start from the
        // default, once, before signal-hook takes the signals over (a second
        // reset would remove signal-hook's own handler).
        static RESET: std::sync::Once = std::sync::Once::new();
        let mut reset = Ok(());
        RESET.call_once(|| {
            for sig in SIGNALS {
                // SAFETY: setting a standard signal's disposition to SIG_DFL
                // is always valid; no handler of ours is installed yet.
                if unsafe { libc::signal(sig, libc::SIG_DFL) } == libc::SIG_ERR {
                    reset = Err(ListenError::Signals(io::Error::last_os_error()));
                }
            }
        });
        reset?;
        for sig in SIGNALS {
            let tx = stop.0.try_clone().map_err(ListenError::Signals)?;
            ids.push(
                signal_hook::low_level::pipe::register(sig, tx).map_err(ListenError::Signals)?,
            );
        }
        Ok(SignalGuard(ids))
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        for id in self.0.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// The signals that stop the daemon.
const SIGNALS: [i32; 2] = [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM];
