//! The supervisor: the daemon binary's normal mode. It owns the listening
//! sockets and hands every connection to a worker process of its own
//! ([`crate::worker`]), sandboxed before it reads a guest byte, so that a
//! runtime that aborts, crashes, hangs or is exploited reaches no other
//! tenant. The supervisor itself never loads a compute runtime and never
//! touches guest memory.
//!
//! | file | role |
//! |---|---|
//! | `mod.rs` | start-up, the accept loop, handing connections over, stopping |
//! | `process.rs` | starting a worker: arguments, descriptors, scratch, cgroup |
//! | `monitor.rs` | one thread per worker: messages, its log, reaping |
//! | `state.rs` | what is known of the workers; the metrics text |
//! | `metrics.rs` | the `--metrics` endpoint |
//!
//! A vhost-user connection is handed over as the listening socket: the
//! worker accepts the one frontend waiting and closes the listener before
//! it reads from it (vhost-user-backend serves only what it accepted
//! itself). A stream connection is accepted here and handed over.
//! `--warm-workers` workers are kept ready (sandboxed, runtime initialised)
//! so that a connection does not wait for a worker to start.

mod metrics;
mod monitor;
mod process;
mod state;

use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::info;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::config::Config;
use crate::control::{Control, FromWorker, ToWorker};
use crate::executor::opencl::random_binary_key;
use crate::limits::{WORKER_ACCEPT_TIMEOUT, WORKER_READY_TIMEOUT, WORKER_STOP_GRACE};
use crate::listen::{stop_channel, ListenError, Listeners, SignalGuard, StopReceiver};
use crate::log::WarnLimiter;
use crate::{limited_error, limited_info, limited_warn};

use monitor::{Event, Shared, Watched};
use process::Spawner;
pub use state::{ExitReason, State};

/// Lines all workers together may log per window.
const ALL_WORKER_LINES: u32 = 200;

/// Workers tried for one connection before it is refused.
const ATTEMPTS: usize = 3;

/// Why the supervisor could not run.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// The listening sockets or the stop channel could not be set up.
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// A directory, the key, or a worker process could not be made.
    #[error("cannot {what}")]
    Setup {
        /// What failed.
        what: &'static str,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// The first worker could not get ready: no connection could be served.
    #[error("{0}")]
    Worker(String),
}

fn setup_err(what: &'static str) -> impl FnOnce(io::Error) -> SupervisorError {
    move |source| SupervisorError::Setup { what, source }
}

/// A worker the accept loop holds.
struct Worker {
    pid: u32,
    control: Control,
    events: Receiver<Event>,
    /// Messages taken off `events` while looking for an exit.
    pending: VecDeque<FromWorker>,
    /// How it ended, once its monitor has said.
    ended: Option<ExitReason>,
    pidfd: OwnedFd,
    ready: bool,
}

impl Worker {
    /// Sends `sig` through the pidfd (never to a reused pid).
    fn signal(&self, sig: i32) {
        // SAFETY: pidfd_send_signal with a pidfd this process owns, no
        // siginfo and no flags.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
    }

    /// Ends it; its monitor reaps it and cleans up.
    fn kill(self) {
        self.signal(libc::SIGKILL);
    }

    fn note(&mut self, ev: Event) {
        match ev {
            Event::Message(m) => self.pending.push_back(m),
            Event::Exited(r) => self.ended = Some(r),
        }
    }

    /// Waits for the next message the accept loop cares about.
    fn next(&mut self, timeout: Duration) -> Result<FromWorker, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(m) = self.pending.pop_front() {
                return Ok(m);
            }
            if let Some(r) = &self.ended {
                return Err(format!("the worker {}", r.describe()));
            }
            match self
                .events
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(ev) => self.note(ev),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!("no answer within {timeout:?}"))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.ended = Some(ExitReason::Code(-1));
                }
            }
        }
    }

    /// True once its monitor has seen it exit.
    fn exited(&mut self) -> bool {
        loop {
            match self.events.try_recv() {
                Ok(ev) => self.note(ev),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    self.ended.get_or_insert(ExitReason::Code(-1));
                    break;
                }
            }
        }
        self.ended.is_some()
    }
}

fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// The supervisor and its workers.
struct Supervisor {
    config: Config,
    spawner: Spawner,
    shared: Shared,
    pool: VecDeque<Worker>,
    serving: HashMap<u32, Worker>,
    next: u64,
    warn: WarnLimiter,
    lifecycle: WarnLimiter,
    landlock_said: bool,
    executor: Option<String>,
}

impl Supervisor {
    fn spawn(&mut self) -> io::Result<Worker> {
        self.next += 1;
        let mut p = self.spawner.spawn(self.next)?;
        let pid = p.pid();
        let pidfd = match pidfd_open(pid) {
            Ok(fd) => fd,
            Err(e) => {
                p.kill();
                return Err(e);
            }
        };
        let (tx, events) = mpsc::channel();
        let reader = match p.control.try_clone() {
            Ok(r) => r,
            Err(e) => {
                p.kill();
                return Err(e);
            }
        };
        self.shared.state.started(pid, p.started);
        let stderr = p.stderr.take();
        let watched = Watched {
            child: p.child,
            control: reader,
            stderr,
            scratch: p.scratch,
            cgroup: p.cgroup,
        };
        monitor::start(pid, watched, self.shared.clone(), tx)?;
        Ok(Worker {
            pid,
            control: p.control,
            events,
            pending: VecDeque::new(),
            ended: None,
            pidfd,
            ready: false,
        })
    }

    /// Waits until `w` is ready; `Err` says why it never will be.
    fn await_ready(&mut self, w: &mut Worker) -> Result<(), String> {
        let deadline = Instant::now() + WORKER_READY_TIMEOUT;
        while !w.ready {
            let left = deadline.saturating_duration_since(Instant::now());
            match w.next(left)? {
                FromWorker::Ready { landlock, executor } => {
                    w.ready = true;
                    if !self.landlock_said && landlock != "full" {
                        limited_warn!(
                            self.warn,
                            landlock = %landlock,
                            "this kernel does not fully enforce Landlock: workers' file access is restricted only as far as it can"
                        );
                    }
                    self.landlock_said = true;
                    self.executor.get_or_insert(executor);
                }
                FromWorker::Failed { reason } => return Err(reason),
                _ => {}
            }
        }
        Ok(())
    }

    /// A ready worker: a warm one, or a new one started now.
    fn take_ready(&mut self) -> Result<Worker, String> {
        let mut why = String::from("no worker could be started");
        for _ in 0..ATTEMPTS {
            let mut w = match self.pool.pop_front() {
                Some(w) => w,
                None => match self.spawn() {
                    Ok(w) => w,
                    Err(e) => {
                        why = format!("cannot start a worker: {e}");
                        continue;
                    }
                },
            };
            match self.await_ready(&mut w) {
                Ok(()) => return Ok(w),
                Err(e) => {
                    why = e;
                    w.kill();
                }
            }
        }
        Err(why)
    }

    /// Starts workers until `--warm-workers` are waiting.
    fn replenish(&mut self) {
        self.pool.retain_mut(|w| !w.exited());
        while self.pool.len() < self.config.workers.warm {
            match self.spawn() {
                Ok(w) => self.pool.push_back(w),
                Err(e) => {
                    limited_error!(self.warn, error = %e, "cannot start a warm worker");
                    break;
                }
            }
        }
    }

    fn full(&mut self) -> bool {
        self.serving.retain(|_, w| !w.exited());
        self.serving.len() >= self.config.server.max_sessions
    }

    fn reject(&mut self) {
        self.shared.state.rejected();
        limited_warn!(
            self.warn,
            max_sessions = self.config.server.max_sessions,
            "session limit reached; closing new connection"
        );
    }

    fn now_serving(&mut self, w: Worker, kind: &'static str) {
        self.shared.state.serving(w.pid, kind);
        limited_info!(
            self.lifecycle,
            worker = w.pid,
            kind,
            live = self.serving.len() + 1,
            "guest connected"
        );
        self.serving.insert(w.pid, w);
    }

    fn vhost_kind(&self) -> &'static str {
        if self.config.server.vsock.is_some() {
            "vsock-device"
        } else if self.config.server.device {
            "device"
        } else {
            "vhost-user"
        }
    }

    fn hand_vhost(&mut self, listeners: &mut Listeners) {
        if self.full() {
            match listeners.refuse_vhost() {
                Ok(true) => self.reject(),
                Ok(false) => {}
                Err(e) => limited_warn!(self.warn, error = %e, "accept failed"),
            }
            return;
        }
        let Some(fd) = listeners.vhost.as_ref().map(AsRawFd::as_raw_fd) else {
            return;
        };
        let mut w = match self.take_ready() {
            Ok(w) => w,
            Err(why) => {
                limited_error!(self.warn, reason = %why, "no worker could get ready; refusing the connection");
                let _ = listeners.refuse_vhost();
                return;
            }
        };
        if let Err(e) = w.control.send_to_worker(&ToWorker::AcceptVhost, Some(fd)) {
            limited_warn!(self.warn, worker = w.pid, error = %e, "cannot hand a connection to a worker");
            w.kill();
            return;
        }
        match w.next(WORKER_ACCEPT_TIMEOUT) {
            Ok(FromWorker::Accepted) => {
                let kind = self.vhost_kind();
                self.now_serving(w, kind);
            }
            Ok(FromWorker::NothingToAccept) => self.pool.push_front(w),
            Ok(other) => {
                limited_warn!(self.warn, worker = w.pid, message = ?other, "worker answered out of turn");
                w.kill();
            }
            Err(why) => {
                limited_warn!(self.warn, worker = w.pid, reason = %why, "worker did not take its connection");
                w.kill();
            }
        }
    }

    fn hand_stream(&mut self, listeners: &Listeners) {
        let conn = match listeners.accept_stream() {
            Ok(Some(c)) => c,
            Ok(None) => return,
            Err(e) => {
                limited_warn!(self.warn, error = %e, "accept failed");
                return;
            }
        };
        if self.full() {
            self.reject();
            return;
        }
        let w = match self.take_ready() {
            Ok(w) => w,
            Err(why) => {
                limited_error!(self.warn, reason = %why, "no worker could get ready; refusing the connection");
                return;
            }
        };
        match w
            .control
            .send_to_worker(&ToWorker::ServeStream, Some(conn.as_raw_fd()))
        {
            Ok(()) => self.now_serving(w, "stream"),
            Err(e) => {
                limited_warn!(self.warn, worker = w.pid, error = %e, "cannot hand a connection to a worker");
                w.kill();
            }
        }
        // Our copy closes here; the worker holds the connection now.
    }

    fn accept_loop(
        &mut self,
        listeners: &mut Listeners,
        stop: &StopReceiver,
    ) -> Result<(), SupervisorError> {
        let exited = self.shared.exited.as_raw_fd();
        loop {
            let ready = listeners.wait(stop, Some(exited))?;
            if ready.stop {
                return Ok(());
            }
            if ready.extra {
                // Let go of workers that have ended.
                let _ = self.shared.exited.read();
                self.serving.retain(|_, w| !w.exited());
            }
            if ready.vhost {
                self.hand_vhost(listeners);
            }
            if ready.stream {
                self.hand_stream(listeners);
            }
            self.replenish();
        }
    }

    /// Asks every worker to end, then kills what has not within the grace
    /// period, and waits until every one is reaped.
    fn stop_all(&mut self) {
        let workers: Vec<Worker> = self
            .pool
            .drain(..)
            .chain(self.serving.drain().map(|(_, w)| w))
            .collect();
        if !workers.is_empty() {
            // log-policy: once per daemon, at its end.
            info!(workers = workers.len(), "stopping workers");
        }
        for w in &workers {
            w.signal(libc::SIGTERM);
        }
        let deadline = Instant::now() + WORKER_STOP_GRACE;
        for mut w in workers {
            if wait_exit(&mut w, deadline.saturating_duration_since(Instant::now())) {
                continue;
            }
            w.signal(libc::SIGKILL);
            wait_exit(&mut w, WORKER_STOP_GRACE);
        }
    }
}

/// Waits up to `timeout` for `w`'s monitor to report its exit.
fn wait_exit(w: &mut Worker, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while !w.exited() {
        match w
            .events
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            Ok(ev) => w.note(ev),
            Err(RecvTimeoutError::Disconnected) => return true,
            Err(RecvTimeoutError::Timeout) => return false,
        }
    }
    true
}

/// Makes the supervisor's scratch root, replacing a stale one.
fn scratch_root(base: &Path) -> Result<PathBuf, SupervisorError> {
    let root = base.join(format!("vhost-device-compute-{}", std::process::id()));
    let _ = fs::remove_dir_all(&root);
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&root)
        .map_err(setup_err("create the workers' scratch directory"))?;
    Ok(root)
}

/// Runs the daemon as a supervisor until SIGINT or SIGTERM. `args` are the
/// daemon's own arguments, passed on to every worker.
pub fn run(config: Config, args: Vec<OsString>) -> Result<(), SupervisorError> {
    // Handlers go in before the socket exists: a client (or a service
    // manager) that sees the socket may signal at once.
    let (stop, stop_rx) = stop_channel()?;
    let _signals = SignalGuard::install(&stop)?;
    let root = scratch_root(&config.workers.scratch)?;
    let result = supervise(config, args, &root, &stop_rx);
    let _ = fs::remove_dir_all(&root);
    result
}

fn supervise(
    config: Config,
    args: Vec<OsString>,
    root: &Path,
    stop_rx: &StopReceiver,
) -> Result<(), SupervisorError> {
    let spawner = Spawner {
        exe: std::env::current_exe().map_err(setup_err("find the daemon binary"))?,
        args,
        scratch_root: root.to_path_buf(),
        cgroup: config.workers.cgroup.clone(),
        key: random_binary_key().map_err(setup_err("make the binary-tag key"))?,
        kernel_cache: config.workers.kernel_cache.clone(),
    };
    let shared = Shared {
        state: State::default(),
        exits: Arc::new(Mutex::new(WarnLimiter::new())),
        lines: Arc::new(Mutex::new(WarnLimiter::with_burst(ALL_WORKER_LINES))),
        exited: Arc::new(EventFd::new(EFD_NONBLOCK).map_err(setup_err("make an event"))?),
    };
    let mut sup = Supervisor {
        config,
        spawner,
        shared,
        pool: VecDeque::new(),
        serving: HashMap::new(),
        next: 0,
        warn: WarnLimiter::new(),
        lifecycle: WarnLimiter::new(),
        landlock_said: false,
        executor: None,
    };
    // A first worker must get ready before the sockets appear: a daemon
    // whose workers cannot start (no runtime, a sandbox the kernel
    // refuses) says so and exits, rather than refusing every guest.
    let mut first = sup.spawn().map_err(setup_err("start the first worker"))?;
    if let Err(why) = sup.await_ready(&mut first) {
        first.kill();
        return Err(SupervisorError::Worker(why));
    }
    if sup.config.workers.warm > 0 {
        sup.pool.push_back(first);
    }
    // Otherwise `first` is dropped: its control channel closes and it exits.
    let mut listeners = Listeners::bind(&sup.config.server)?;
    let _metrics = match &sup.config.workers.metrics {
        Some(addr) => Some(
            metrics::serve(addr, sup.shared.state.clone())
                .map_err(setup_err("serve the metrics"))?,
        ),
        None => None,
    };
    sup.replenish();
    // log-policy: once per daemon, at start-up.
    info!(
        socket = ?sup.config.server.socket,
        listen = ?sup.config.server.listen,
        vsock_cid = sup.config.server.vsock.map(|v| v.guest_cid),
        executor = sup.executor.as_deref().unwrap_or("?"),
        max_sessions = sup.config.server.max_sessions,
        warm_workers = sup.config.workers.warm,
        max_call_seconds = sup.config.workers.max_call.map_or(0, |d| d.as_secs()),
        "listening; one sandboxed worker process per connection"
    );
    let result = sup.accept_loop(&mut listeners, stop_rx);
    drop(listeners);
    sup.stop_all();
    // log-policy: once per daemon, at its end.
    info!("stopped");
    result
}
