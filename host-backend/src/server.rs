//! The in-process server: up to two listening sockets, each connection
//! served on a thread of this process ([`crate::connection`]).
//!
//! This is what embedders and tests run with an [`ExecutorFactory`] of
//! their own (the recording CUDA double's server is one). The daemon binary
//! runs the `crate::supervisor` instead, which gives every connection a
//! sandboxed worker process of its own; both serve a connection with the
//! same code.
//!
//! Connections beyond `max_sessions` (both kinds counted together) are
//! accepted and closed at once.
//!
//! A [`StopHandle`] ends the loop: no more connections are accepted, live
//! ones are shut down and waited for, and the socket files are removed.

use std::collections::HashMap;
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use tracing::{debug, info};
use vhost_user_backend::ShutdownHandle;

use crate::config::ServerConfig;
use crate::connection::{serve_stream, ConnSetup, VhostConn};
use crate::executor::{ExecutorError, ExecutorFactory};
use crate::listen::{stop_channel, ListenError, Listeners, StopHandle, StopReceiver};
use crate::log::WarnLimiter;
use crate::{limited_error, limited_info, limited_warn};

/// Errors that stop the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The executor runtime could not be set up.
    #[error("cannot set up the executor")]
    Executor(#[from] ExecutorError),
    /// The listening sockets or the stop channel could not be set up.
    #[error(transparent)]
    Listen(#[from] ListenError),
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

    fn stop(&self) {
        match self {
            Stopper::Vhost(Some(s)) => s.shutdown(),
            Stopper::Vhost(None) => {}
            Stopper::Stream(s) => {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

struct Live {
    stop: Stopper,
    thread: Option<JoinHandle<()>>,
}

/// Bound listening sockets and the connections they serve.
pub struct Server {
    config: ServerConfig,
    setup: ConnSetup,
    listeners: Listeners,
    stop_rx: StopReceiver,
    stop_tx: StopHandle,
    stats: Arc<Stats>,
    live: Arc<Mutex<HashMap<u64, Live>>>,
    next_id: u64,
    warn: WarnLimiter,
    /// Connect and disconnect lines, which a client can repeat at will.
    lifecycle: Arc<Mutex<WarnLimiter>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.config)
            .field("setup", &self.setup)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds the sockets (replacing stale ones).
    pub fn bind(
        config: ServerConfig,
        factory: Arc<dyn ExecutorFactory>,
    ) -> Result<Self, ServerError> {
        Self::bind_with_stop(config, factory, stop_channel()?)
    }

    /// Binds the sockets with a stop channel made beforehand, so that
    /// signal handlers can be in place before the sockets become visible.
    pub fn bind_with_stop(
        config: ServerConfig,
        factory: Arc<dyn ExecutorFactory>,
        (stop_tx, stop_rx): (StopHandle, StopReceiver),
    ) -> Result<Self, ServerError> {
        let listeners = Listeners::bind(&config)?;
        Ok(Server {
            setup: ConnSetup::new(&config, factory),
            config,
            listeners,
            stop_rx,
            stop_tx,
            stats: Arc::new(Stats::default()),
            live: Arc::new(Mutex::new(HashMap::new())),
            next_id: 0,
            warn: WarnLimiter::new(),
            lifecycle: Arc::default(),
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
        // log-policy: once per server, at its start.
        info!(
            socket = ?self.config.socket,
            listen = ?self.config.listen,
            vsock_cid = self.config.vsock.map(|v| v.guest_cid),
            vsock_port = self.config.vsock.map(|v| v.port),
            executor = self.setup.factory.name(),
            max_sessions = self.config.max_sessions,
            "listening in-process"
        );
        let result = self.accept_loop();
        self.shutdown_all();
        // log-policy: once per server, at its end.
        info!("stopped");
        result
    }

    fn accept_loop(&mut self) -> Result<(), ServerError> {
        loop {
            let ready = self.listeners.wait(&self.stop_rx, None)?;
            if ready.stop {
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
        if self.full() {
            match self.listeners.refuse_vhost() {
                Ok(true) => self.reject(),
                Ok(false) => {}
                Err(e) => limited_warn!(self.warn, error = %e, "accept failed"),
            }
            return;
        }
        let Some(listener) = self.listeners.vhost.as_mut() else {
            return;
        };
        let conn = match VhostConn::accept(listener, &self.setup) {
            Ok(c) => c,
            Err(e) => {
                limited_error!(self.warn, error = %e, "cannot serve a new connection");
                // Back off so a persistent failure (fd or thread exhaustion)
                // does not spin.
                thread::sleep(Duration::from_millis(100));
                return;
            }
        };
        let id = self.next_id();
        self.register(id, Stopper::Vhost(conn.shutdown_handle()), move || {
            conn.serve()
        });
    }

    fn accept_stream(&mut self) {
        let conn = match self.listeners.accept_stream() {
            Ok(Some(c)) => c,
            Ok(None) => return,
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
        let stop = match conn.try_clone() {
            Ok(s) => s,
            Err(e) => {
                limited_warn!(self.warn, error = %e, "cannot set up a stream connection");
                return;
            }
        };
        let id = self.next_id();
        let setup = self.setup.clone();
        self.register(id, Stopper::Stream(stop), move || {
            if let Err(e) = serve_stream(conn, &setup) {
                debug!(connection = id, error = %e, "cannot serve a stream connection");
            }
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
    /// end it early stays in the table meanwhile. Every kind of connection
    /// goes through here.
    fn register(&mut self, id: u64, stop: Stopper, serve: impl FnOnce() + Send + 'static) {
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
            Ok(t) => {
                table.insert(
                    id,
                    Live {
                        stop,
                        thread: Some(t),
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
            // log-policy: once per server, at its end.
            info!(connections = live.len(), "shutting down live connections");
        }
        for l in &live {
            l.stop.stop();
        }
        for mut l in live {
            if let Some(t) = l.thread.take() {
                let _ = t.join();
            }
        }
    }
}

fn lock(l: &Mutex<WarnLimiter>) -> std::sync::MutexGuard<'_, WarnLimiter> {
    l.lock().unwrap_or_else(PoisonError::into_inner)
}
