//! The accept loop: up to two listening sockets, many concurrent connections.
//!
//! - The vhost-user socket (`--socket`): for each connection the loop builds
//!   a fresh backend (a [`VhuCompute`], or with `--vsock-cid` a
//!   [`VhuVsock`]) and `VhostUserDaemon`, lets the daemon accept exactly one
//!   connection, and hands it to a waiter thread that `wait()`s for the
//!   frontend to go away and then drops it (which stops the daemon's worker
//!   threads and frees the sessions).
//! - The stream listener (`--listen unix:PATH`): each connection is one
//!   session served by [`crate::stream::serve`] on its own thread.
//!
//! A session's thread may be blocked in a wait only its guest could have
//! ended (see [`crate::executor::Abandon`]). So the loop abandons a
//! session as soon as its guest is seen to go: a vhost-user connection's
//! waiter does it when the frontend has gone, and the accept loop watches
//! every stream connection for the peer's hang-up.
//!
//! Connections beyond `max_sessions` (both kinds counted together) are
//! accepted and closed at once.
//!
//! A [`StopHandle`] (wired to SIGINT/SIGTERM by [`run`]) ends the loop: no
//! more connections are accepted, live ones are shut down and waited for, and
//! the socket files are removed.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use tracing::{debug, info};
use vhost::vhost_user::Listener;
use vhost_user_backend::{ShutdownHandle, VhostUserDaemon};
use vm_memory::{GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};

use crate::config::ServerConfig;
use crate::executor::{Abandon, ExecutorError, ExecutorFactory};
use crate::log::WarnLimiter;
use crate::session::Session;
use crate::vhu_compute::VhuCompute;
use crate::vsock::{VhuVsock, WAKE_EVENT};
use crate::{limited_error, limited_info, limited_warn};

/// Errors that stop the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The executor runtime could not be set up.
    #[error("cannot set up the executor")]
    Executor(#[from] ExecutorError),
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
    /// Waiting for the listener failed.
    #[error("polling the listening socket failed")]
    Poll(#[source] io::Error),
}

/// Ends a running [`Server`]; cheap to clone, callable from any thread.
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

/// Creates a stop channel for [`Server::bind_with_stop`].
pub fn stop_channel() -> Result<(StopHandle, StopReceiver), ServerError> {
    let (rx, tx) = UnixStream::pair().map_err(ServerError::Signals)?;
    rx.set_nonblocking(true).map_err(ServerError::Signals)?;
    tx.set_nonblocking(true).map_err(ServerError::Signals)?;
    Ok((StopHandle(Arc::new(tx)), StopReceiver(rx)))
}

/// Live numbers, readable while the server runs.
#[derive(Debug, Default)]
pub struct Stats {
    live: AtomicUsize,
    accepted: AtomicUsize,
    rejected: AtomicUsize,
}

impl Stats {
    /// Connections being served now.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }
    /// Connections accepted and served so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
    /// Connections closed at once because `max_sessions` was reached.
    pub fn rejected(&self) -> usize {
        self.rejected.load(Ordering::SeqCst)
    }
}

/// How to end one live connection.
enum Stopper {
    /// A vhost-user connection.
    Vhost(Option<ShutdownHandle>),
    /// A stream connection (a clone of its socket).
    Stream(UnixStream),
}

impl Stopper {
    /// The kind of connection, for logs and thread names.
    fn kind(&self) -> &'static str {
        match self {
            Stopper::Vhost(_) => "vhost-user",
            Stopper::Stream(_) => "stream",
        }
    }
}

struct Live {
    stop: Stopper,
    waiter: Option<JoinHandle<()>>,
    /// A stream session's abandoner (a vhost-user connection's waiter
    /// abandons its own).
    abandon: Option<Arc<dyn Abandon>>,
}

/// A bound listening socket and the connections it serves.
pub struct Server {
    config: ServerConfig,
    factory: Arc<dyn ExecutorFactory>,
    listener: Option<Listener>,
    stream: Option<UnixListener>,
    stop_rx: UnixStream,
    stop_tx: StopHandle,
    stats: Arc<Stats>,
    live: Arc<Mutex<HashMap<u64, Live>>>,
    next_id: u64,
    warn: WarnLimiter,
    /// Connect and disconnect lines, which a client can repeat at will.
    lifecycle: Arc<Mutex<WarnLimiter>>,
    /// Stream connections watched for the peer's hang-up, by connection id.
    hangups: Epoll,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.config)
            .field("factory", &self.factory.name())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds the socket (replacing a stale one).
    pub fn bind(
        config: ServerConfig,
        factory: Arc<dyn ExecutorFactory>,
    ) -> Result<Self, ServerError> {
        Self::bind_with_stop(config, factory, stop_channel()?)
    }

    /// Binds the socket with a stop channel made beforehand, so that signal
    /// handlers can be in place before the socket becomes visible.
    pub fn bind_with_stop(
        config: ServerConfig,
        factory: Arc<dyn ExecutorFactory>,
        (stop_tx, stop_rx): (StopHandle, StopReceiver),
    ) -> Result<Self, ServerError> {
        let listener = match &config.socket {
            Some(path) => {
                Some(
                    Listener::new(path, true).map_err(|source| ServerError::Listen {
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
        let stop_rx = stop_rx.0;
        let hangups = Epoll::new().map_err(ServerError::Poll)?;
        Ok(Server {
            config,
            factory,
            listener,
            stream,
            stop_rx,
            stop_tx,
            stats: Arc::new(Stats::default()),
            live: Arc::new(Mutex::new(HashMap::new())),
            next_id: 0,
            warn: WarnLimiter::new(),
            lifecycle: Arc::default(),
            hangups,
        })
    }

    /// A handle that ends [`Server::run`].
    pub fn stop_handle(&self) -> StopHandle {
        self.stop_tx.clone()
    }

    /// Live counters.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// The vhost-user socket path, if any.
    pub fn socket(&self) -> Option<&Path> {
        self.config.socket.as_deref()
    }

    /// Serves connections until stopped, then shuts every live one down.
    /// The socket files are removed when this returns.
    pub fn run(mut self) -> Result<(), ServerError> {
        // log-policy: once per daemon, at start-up.
        info!(
            socket = ?self.config.socket,
            listen = ?self.config.listen,
            vsock_cid = self.config.vsock.map(|v| v.guest_cid),
            vsock_port = self.config.vsock.map(|v| v.port),
            executor = self.factory.name(),
            max_sessions = self.config.max_sessions,
            "listening"
        );
        let result = self.accept_loop();
        self.shutdown_all();
        if let Some(p) = &self.config.listen {
            let _ = std::fs::remove_file(p);
        }
        // log-policy: once per daemon, at its end.
        info!("stopped");
        result
    }

    fn accept_loop(&mut self) -> Result<(), ServerError> {
        loop {
            let ready = wait_readable(
                self.listener.as_ref().map(AsRawFd::as_raw_fd),
                self.stream.as_ref().map(AsRawFd::as_raw_fd),
                self.hangups.as_raw_fd(),
                &self.stop_rx,
            )?;
            if ready.hangup {
                self.abandon_hung_up();
            }
            if ready.stop {
                let mut buf = [0u8; 16];
                let _ = (&self.stop_rx).read(&mut buf);
                return Ok(());
            }
            if ready.vhost {
                self.accept_vhost();
            }
            if ready.stream {
                self.accept_stream();
            }
        }
    }

    /// Abandons the sessions of stream connections whose peer hung up:
    /// they may be blocked in a wait only that peer could have ended. Each
    /// connection is watched once (`EPOLLONESHOT`); closing it removes it.
    fn abandon_hung_up(&mut self) {
        let mut events = [EpollEvent::default(); 16];
        let n = match self.hangups.wait(0, &mut events) {
            Ok(n) => n,
            Err(e) => {
                limited_warn!(self.warn, error = %e, "watching stream connections failed");
                return;
            }
        };
        let table = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        for ev in events.iter().take(n) {
            // A connection that has ended meanwhile is no longer listed.
            if let Some(a) = table.get(&ev.data()).and_then(|l| l.abandon.as_ref()) {
                debug!(connection = ev.data(), "stream peer hung up");
                a.abandon();
            }
        }
    }

    /// Counts and logs a connection closed at once because `max_sessions`
    /// connections are live.
    fn reject(&mut self) {
        self.stats.rejected.fetch_add(1, Ordering::SeqCst);
        limited_warn!(
            self.warn,
            max_sessions = self.config.max_sessions,
            "session limit reached; closing new connection"
        );
    }

    fn full(&self) -> bool {
        self.stats.live() >= self.config.max_sessions
    }

    fn accept_vhost(&mut self) {
        let full = self.full();
        let Some(listener) = self.listener.as_mut() else {
            return;
        };
        if full {
            // Accept and close, so the peer sees a prompt hang-up rather than
            // a connection that never answers.
            match listener.accept() {
                Ok(Some(stream)) => {
                    // Counted before the peer can see the hang-up.
                    self.reject();
                    drop(stream);
                }
                Ok(None) => {}
                Err(e) => limited_warn!(self.warn, error = %e, "accept failed"),
            }
            return;
        }
        let mem = GuestMemoryAtomic::new(GuestMemoryMmap::new());
        match self.config.vsock {
            None => {
                let backend = Arc::new(VhuCompute::new(
                    self.factory.clone(),
                    self.config.limits,
                    self.config.poll,
                    mem.clone(),
                ));
                let gone = backend.clone();
                let on_gone = Box::new(move || gone.abandon_session());
                self.start_vhost(backend, mem, on_gone, |_| Ok(()));
            }
            Some(v) => {
                let backend = match VhuVsock::new(
                    v.guest_cid,
                    v.port,
                    self.config.max_sessions,
                    self.factory.clone(),
                    self.config.limits,
                    mem.clone(),
                ) {
                    Ok(b) => Arc::new(b),
                    Err(e) => {
                        limited_error!(self.warn, error = %e, "cannot create a vsock device for a new connection");
                        thread::sleep(Duration::from_millis(100));
                        return;
                    }
                };
                let wake = backend.wake_fd();
                // Dropping the device abandons and ends its sessions.
                self.start_vhost(backend, mem, Box::new(|| {}), |daemon| {
                    // One worker thread serves every queue; the wake event
                    // joins its epoll set.
                    let handlers = daemon.get_epoll_handlers();
                    let h = handlers
                        .first()
                        .ok_or_else(|| io::Error::other("no worker"))?;
                    h.register_listener(wake, vmm_sys_util::epoll::EventSet::IN, WAKE_EVENT)
                });
            }
        }
    }

    /// Starts a vhost-user daemon for `backend` on the next connection of
    /// the listener; `setup` runs once the daemon exists, `on_gone` once
    /// the frontend has gone, before the worker threads are joined.
    fn start_vhost<B>(
        &mut self,
        backend: Arc<B>,
        mem: GuestMemoryAtomic<GuestMemoryMmap>,
        on_gone: Box<dyn FnOnce() + Send>,
        setup: impl FnOnce(&VhostUserDaemon<Arc<B>>) -> io::Result<()>,
    ) where
        B: vhost_user_backend::VhostUserBackend<
                Bitmap = (),
                Vring = vhost_user_backend::VringRwLock,
            > + Send
            + Sync
            + 'static,
    {
        let Some(listener) = self.listener.as_mut() else {
            return;
        };
        let mut daemon = match VhostUserDaemon::new("vcompute-conn".into(), backend, mem) {
            Ok(d) => d,
            Err(e) => {
                limited_error!(self.warn, error = %e, "cannot create a vhost-user daemon for a new connection");
                // Back off so a persistent failure (fd or thread exhaustion)
                // does not spin.
                thread::sleep(Duration::from_millis(100));
                return;
            }
        };
        if let Err(e) = setup(&daemon) {
            limited_error!(self.warn, error = %e, "cannot set up a new connection");
            return;
        }
        if let Err(e) = daemon.start(listener) {
            limited_warn!(self.warn, error = %e, "cannot start serving a new connection");
            return;
        }
        let shutdown = daemon.shutdown_handle();
        let id = self.next_id();
        self.register(id, Stopper::Vhost(shutdown), None, move || {
            if let Err(e) = daemon.wait() {
                debug!(connection = id, error = %e, "connection ended with an error");
            }
            // A worker may be blocked in a wait only the guest could
            // have ended; end it, or joining the workers never returns.
            on_gone();
            // Stops the worker threads and drops the session with it.
            drop(daemon);
        });
    }

    fn accept_stream(&mut self) {
        let Some(listener) = self.stream.as_ref() else {
            return;
        };
        let conn = match listener.accept() {
            Ok((c, _)) => c,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) => {
                limited_warn!(self.warn, error = %e, "accept failed");
                return;
            }
        };
        if self.full() {
            self.reject();
            drop(conn);
            return;
        }
        let stop = match conn.set_nonblocking(false).and_then(|()| conn.try_clone()) {
            Ok(s) => s,
            Err(e) => {
                limited_warn!(self.warn, error = %e, "cannot set up a stream connection");
                return;
            }
        };
        let id = self.next_id();
        let mut session = Session::new(self.factory.clone(), self.config.limits);
        let abandon = session.abandoner();
        // Watched for the peer's hang-up while the session may be blocked.
        let watch = EventSet::READ_HANG_UP | EventSet::HANG_UP | EventSet::ONE_SHOT;
        if let Err(e) = self.hangups.ctl(
            ControlOperation::Add,
            conn.as_raw_fd(),
            EpollEvent::new(watch, id),
        ) {
            limited_warn!(self.warn, error = %e, "cannot watch a stream connection");
        }
        self.register(id, Stopper::Stream(stop), Some(abandon), move || {
            let mut conn = conn;
            if let Err(e) = crate::stream::serve(&mut conn, &mut session) {
                debug!(connection = id, error = %e, "stream connection ended with an error");
            }
            // Frees everything the client made.
            drop(session);
        });
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Counts and logs a connection just accepted, and serves it on a
    /// thread of its own: `serve` runs until the guest has gone and its
    /// session is freed; then the connection leaves the live table. How to
    /// end it early (`stop`, `abandon`) stays in the table meanwhile. Every
    /// kind of connection goes through here.
    fn register(
        &mut self,
        id: u64,
        stop: Stopper,
        abandon: Option<Arc<dyn Abandon>>,
        serve: impl FnOnce() + Send + 'static,
    ) {
        self.stats.live.fetch_add(1, Ordering::SeqCst);
        self.stats.accepted.fetch_add(1, Ordering::SeqCst);
        let kind = stop.kind();
        limited_info!(
            lock(&self.lifecycle),
            connection = id,
            kind,
            live = self.stats.live(),
            "guest connected"
        );
        // Registered before the thread starts so that its removal cannot
        // run first.
        let mut table = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        let live = self.live.clone();
        let stats = self.stats.clone();
        let lifecycle = self.lifecycle.clone();
        let thread = thread::Builder::new()
            .name(format!("vcompute-{kind}-{id}"))
            .spawn(move || {
                serve();
                live.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&id);
                stats.live.fetch_sub(1, Ordering::SeqCst);
                limited_info!(
                    lock(&lifecycle),
                    connection = id,
                    kind,
                    "guest disconnected"
                );
            });
        match thread {
            Ok(waiter) => {
                table.insert(
                    id,
                    Live {
                        stop,
                        waiter: Some(waiter),
                        abandon,
                    },
                );
            }
            Err(e) => {
                // `serve` was moved into the closure that failed to start and
                // is dropped with it: the connection closes.
                limited_error!(self.warn, error = %e, "cannot start a connection thread");
                self.stats.live.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    fn shutdown_all(&mut self) {
        let live: Vec<Live> = {
            let mut table = self.live.lock().unwrap_or_else(PoisonError::into_inner);
            table.drain().map(|(_, l)| l).collect()
        };
        if !live.is_empty() {
            // log-policy: once per daemon, at its end.
            info!(connections = live.len(), "shutting down live connections");
        }
        for l in &live {
            match &l.stop {
                Stopper::Vhost(Some(s)) => s.shutdown(),
                Stopper::Vhost(None) => {}
                Stopper::Stream(s) => {
                    let _ = s.shutdown(Shutdown::Both);
                }
            }
            if let Some(a) = &l.abandon {
                a.abandon();
            }
        }
        for mut l in live {
            if let Some(w) = l.waiter.take() {
                let _ = w.join();
            }
        }
    }
}

fn lock(l: &Mutex<WarnLimiter>) -> std::sync::MutexGuard<'_, WarnLimiter> {
    l.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Binds the stream listener, replacing a stale socket file.
fn bind_stream(path: &Path) -> Result<UnixListener, ServerError> {
    let err = |source| ServerError::ListenStream {
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

/// Which of the server's fds are readable.
struct Ready {
    vhost: bool,
    stream: bool,
    hangup: bool,
    stop: bool,
}

/// Blocks until a listener, the hang-up watch or the stop channel is
/// readable.
fn wait_readable(
    vhost: Option<RawFd>,
    stream: Option<RawFd>,
    hangups: RawFd,
    stop: &UnixStream,
) -> Result<Ready, ServerError> {
    // A negative fd is ignored by poll(2).
    let mut fds = [
        vhost.unwrap_or(-1),
        stream.unwrap_or(-1),
        hangups,
        stop.as_fd().as_raw_fd(),
    ]
    .map(|fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    });
    loop {
        // SAFETY: `fds` is a valid array of initialised pollfd structs that
        // outlives the call, and its length is passed alongside it.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n >= 0 {
            let ready =
                |p: &libc::pollfd| p.revents & (libc::POLLIN | libc::POLLERR | libc::POLLHUP) != 0;
            return Ok(Ready {
                vhost: ready(&fds[0]),
                stream: ready(&fds[1]),
                hangup: ready(&fds[2]),
                stop: ready(&fds[3]),
            });
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(ServerError::Poll(e));
        }
    }
}

/// Routes SIGINT and SIGTERM to `stop` until dropped.
#[derive(Debug)]
pub struct SignalGuard(Vec<signal_hook::SigId>);

impl SignalGuard {
    /// Registers the handlers.
    pub fn install(stop: &StopHandle) -> Result<Self, ServerError> {
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
                    reset = Err(ServerError::Signals(std::io::Error::last_os_error()));
                }
            }
        });
        reset?;
        for sig in SIGNALS {
            let tx = stop.0.try_clone().map_err(ServerError::Signals)?;
            ids.push(
                signal_hook::low_level::pipe::register(sig, tx).map_err(ServerError::Signals)?,
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
