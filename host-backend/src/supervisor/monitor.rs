//! One thread per worker, for its whole life: reads its control messages
//! (keeping the supervisor's view of it current and passing the ones the
//! accept loop waits for), forwards its standard error into the daemon's
//! log (sanitised and rate-limited, so that a worker, even a compromised
//! one, can neither flood nor forge the log), and when it has exited reaps
//! it, says why it ended, and removes what it left behind.

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, ChildStderr};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

use vmm_sys_util::eventfd::EventFd;

use crate::control::{Control, ControlError, FromWorker};
use crate::limited_warn;
use crate::log::{logged_name, WarnLimiter};
use crate::worker::{EXIT_SETUP, EXIT_WATCHDOG};

use super::process::cleanup;
use super::state::{ExitReason, State};

/// Longest worker log line forwarded; the rest of a longer one is cut.
const MAX_LINE: usize = 4096;

/// Lines one worker may log per window (see [`WarnLimiter`]).
const WORKER_LINES: u32 = 50;

/// What the accept loop hears from a worker's monitor.
#[derive(Debug)]
pub enum Event {
    /// A message the accept loop waits for (`Ready`, `Failed`, `Accepted`,
    /// `NothingToAccept`).
    Message(FromWorker),
    /// The worker has exited and been reaped.
    Exited(ExitReason),
}

/// What every monitor shares.
#[derive(Debug, Clone)]
pub struct Shared {
    /// The supervisor's view of its workers.
    pub state: State,
    /// Lines about workers that ended abnormally.
    pub exits: Arc<Mutex<WarnLimiter>>,
    /// Every worker's forwarded lines together.
    pub lines: Arc<Mutex<WarnLimiter>>,
    /// Signalled whenever a worker has exited, so that the accept loop lets
    /// go of it at once.
    pub exited: Arc<EventFd>,
}

/// What a monitor takes over from a just-started worker.
#[derive(Debug)]
pub struct Watched {
    /// The process, reaped by the monitor.
    pub child: Child,
    /// A handle on its control channel, for reading.
    pub control: Control,
    /// Its standard error.
    pub stderr: Option<ChildStderr>,
    /// Its scratch directory.
    pub scratch: PathBuf,
    /// Its cgroup leaf.
    pub cgroup: Option<PathBuf>,
}

/// Starts the monitor of worker `pid`; it reports to `events`.
pub fn start(pid: u32, w: Watched, shared: Shared, events: Sender<Event>) -> io::Result<()> {
    thread::Builder::new()
        .name(format!("vcompute-monitor-{pid}"))
        .spawn(move || run(pid, w, &shared, &events))
        .map(|_| ())
}

fn run(pid: u32, mut w: Watched, shared: &Shared, events: &Sender<Event>) {
    let mut forward = Forwarder {
        pid,
        buf: Vec::new(),
        own: WarnLimiter::with_burst(WORKER_LINES),
        all: shared.lines.clone(),
    };
    let mut watchdog = false;
    let mut control_open = true;
    let mut stderr = w.stderr.take();
    while control_open || stderr.is_some() {
        let (ctl_ready, err_ready) = wait(
            control_open.then(|| w.control.as_raw_fd()),
            stderr.as_ref().map(AsRawFd::as_raw_fd),
        );
        if ctl_ready {
            match w.control.recv_from_worker(None) {
                Ok(FromWorker::Session { client }) => {
                    shared.state.session(pid, logged_name(&client));
                }
                Ok(FromWorker::OpenSessions { open }) => {
                    shared.state.open_sessions(pid, open);
                }
                Ok(FromWorker::Watchdog { .. }) => watchdog = true,
                Ok(m) => {
                    let _ = events.send(Event::Message(m));
                }
                Err(ControlError::Malformed) => {
                    limited_warn!(
                        lock(&shared.exits),
                        pid,
                        "worker sent a malformed control message"
                    );
                }
                Err(_) => control_open = false,
            }
        }
        if err_ready {
            if let Some(e) = stderr.as_mut() {
                if !forward.pump(e) {
                    forward.flush();
                    stderr = None;
                }
            }
        }
    }
    let status = w.child.wait();
    let reason = match status {
        _ if watchdog => ExitReason::Watchdog,
        Ok(s) => match (s.code(), std::os::unix::process::ExitStatusExt::signal(&s)) {
            (Some(0), _) => ExitReason::Clean,
            (Some(c), _) if c == i32::from(EXIT_WATCHDOG) => ExitReason::Watchdog,
            (Some(c), _) if c == i32::from(EXIT_SETUP) => ExitReason::Setup,
            (Some(c), _) => ExitReason::Code(c),
            (None, Some(sig)) => ExitReason::Signal(sig),
            (None, None) => ExitReason::Code(-1),
        },
        Err(_) => ExitReason::Code(-1),
    };
    cleanup(&w.scratch, w.cgroup.as_deref());
    if let Some(record) = shared.state.ended(pid, reason.clone()) {
        if !reason.abnormal() && record.kind != "warm" {
            crate::limited_info!(
                lock(&shared.exits),
                worker = pid,
                kind = record.kind,
                "guest disconnected"
            );
        } else if reason.abnormal() && record.kind != "warm" {
            limited_warn!(
                lock(&shared.exits),
                pid,
                kind = record.kind,
                client = record.client.as_deref().unwrap_or(""),
                reason = %reason.describe(),
                "worker ended; the sessions it served are gone, the daemon serves on"
            );
        }
    }
    let _ = events.send(Event::Exited(reason));
    let _ = shared.exited.write(1);
}

fn lock(l: &Mutex<WarnLimiter>) -> std::sync::MutexGuard<'_, WarnLimiter> {
    l.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Blocks until the control channel or standard error is readable (or
/// closed).
fn wait(control: Option<i32>, stderr: Option<i32>) -> (bool, bool) {
    let mut fds = [control.unwrap_or(-1), stderr.unwrap_or(-1)].map(|fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    });
    loop {
        // SAFETY: `fds` is a valid array of initialised pollfd structs that
        // outlives the call, and its length is passed alongside it.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n >= 0 {
            let ready = |p: &libc::pollfd| {
                p.fd >= 0 && p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0
            };
            return (ready(&fds[0]), ready(&fds[1]));
        }
        if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            // Nothing sensible to wait on: report both, so that reads fail
            // and the loop ends.
            return (control.is_some(), stderr.is_some());
        }
    }
}

/// Turns a worker's standard error into log lines.
struct Forwarder {
    pid: u32,
    buf: Vec<u8>,
    own: WarnLimiter,
    all: Arc<Mutex<WarnLimiter>>,
}

impl Forwarder {
    /// Reads what is there; false at the end of the stream.
    fn pump(&mut self, from: &mut ChildStderr) -> bool {
        let mut chunk = [0u8; 4096];
        let n = match from.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        for &b in chunk.get(..n).unwrap_or_default() {
            if b == b'\n' {
                self.flush();
            } else if self.buf.len() < MAX_LINE {
                self.buf.push(b);
            }
        }
        true
    }

    /// Emits the line gathered so far, if both limits allow.
    fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let line = String::from_utf8_lossy(&self.buf);
        let clean: String = line
            .chars()
            .flat_map(|c| {
                let esc: Vec<char> = if c.is_control() && c != '\t' {
                    c.escape_debug().collect()
                } else {
                    vec![c]
                };
                esc
            })
            .collect();
        self.buf.clear();
        if self.own.allow().is_none() {
            return;
        }
        if let Some(dropped) = lock(&self.all).allow() {
            let mut err = io::stderr().lock();
            let _ = if dropped > 0 {
                writeln!(
                    err,
                    "worker {} ({dropped} worker lines suppressed): {clean}",
                    self.pid
                )
            } else {
                writeln!(err, "worker {}: {clean}", self.pid)
            };
        }
    }
}
