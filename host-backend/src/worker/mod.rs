//! Worker mode: the daemon binary re-executed by the supervisor
//! (`--worker-control FD`) to serve exactly one connection in a process of
//! its own.
//!
//! | file | role |
//! |---|---|
//! | `mod.rs` | the worker's life: sandbox, runtime, wait, serve, exit |
//! | `sandbox.rs` | rlimits, no_new_privs, Landlock, seccomp |
//! | `watchdog.rs` | ends the worker when one call runs too long |
//!
//! The order matters: the worker enters its sandbox first (so that every
//! thread the runtime starts is inside it), then initialises the runtime
//! (the cost a warm worker has already paid when a guest arrives), says
//! `Ready`, and waits for the supervisor to hand it a connection: a
//! vhost-user listening socket to accept one frontend from (the listener
//! is closed before any guest byte is read), or an accepted stream
//! connection. When that connection ends the worker exits, and the kernel
//! frees everything its sessions held.

mod sandbox;
mod watchdog;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::debug;
use vhost::vhost_user::Listener;

use crate::config::Config;
use crate::connection::{serve_stream, ConnSetup, VhostConn};
use crate::control::{Control, FromWorker, ToWorker};
use crate::hooks::{self, Hooks};
use crate::log::daemon_limiter;
use crate::{executor, limited_error};

pub use sandbox::{enter as enter_sandbox, Enforcement, SandboxError};

/// Environment variable naming the worker's private scratch directory.
pub const SCRATCH_ENV: &str = "VCOMPUTE_WORKER_SCRATCH";

/// Exit status of a worker that could not get ready.
pub const EXIT_SETUP: u8 = 70;
/// Exit status of a worker its watchdog ended.
pub const EXIT_WATCHDOG: u8 = 71;
/// Exit status of a worker that got an instruction it does not know.
pub const EXIT_PROTOCOL: u8 = 72;

/// How long a handed-over listener is watched for the frontend the
/// supervisor saw connecting.
const ACCEPT_WAIT: Duration = Duration::from_secs(2);

/// Runs the worker on the control channel `control_fd`; returns its exit
/// status.
pub fn run(config: Config, control_fd: RawFd) -> ExitCode {
    // SAFETY: the supervisor started this process with its end of the
    // control channel at `control_fd` (checked to be open when the
    // arguments were parsed); nothing else in the process owns it.
    let control = Control::from_fd(unsafe { OwnedFd::from_raw_fd(control_fd) });
    match setup(&config, &control) {
        Ok(setup) => serve(&control, &setup),
        Err(reason) => {
            limited_error!(daemon_limiter(), reason = %reason, "worker cannot get ready");
            let _ = control.send_to_supervisor(&FromWorker::Failed { reason });
            ExitCode::from(EXIT_SETUP)
        }
    }
}

fn report(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        msg.push_str(": ");
        msg.push_str(&c.to_string());
        cause = c.source();
    }
    msg
}

/// Sandbox, key, runtime, hooks, watchdog: everything before `Ready`.
fn setup(config: &Config, control: &Control) -> Result<ConnSetup, String> {
    let scratch = std::env::var_os(SCRATCH_ENV)
        .map(PathBuf::from)
        .ok_or_else(|| format!("{SCRATCH_ENV} is not set"))?;
    let mut rules = config.workers.sandbox.clone();
    rules
        .allow_rw
        .extend(config.workers.kernel_cache.iter().cloned());
    let enforcement = sandbox::enter(&rules, &scratch).map_err(|e| report(&e))?;
    // Inside the sandbox the compiler can read only the guest's own
    // headers, laid out in the scratch directory.
    executor::opencl::enable_guest_headers(&scratch);
    match control.recv_from_supervisor() {
        Ok((ToWorker::Key(key), _)) => {
            executor::opencl::set_binary_key(key);
        }
        Ok((other, _)) => return Err(format!("expected the binary key, got {other:?}")),
        Err(e) => return Err(report(&e)),
    }
    let factory = executor::factory(config.executor).map_err(|e| report(&e))?;
    let reporter = Arc::new(Mutex::new(control.try_clone().map_err(|e| report(&e))?));
    let send = move |msg: FromWorker| {
        let _ = reporter
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .send_to_supervisor(&msg);
    };
    let send_open = send.clone();
    hooks::install(
        Hooks::new(Box::new(move |client| {
            send(FromWorker::Session {
                client: client.chars().take(crate::log::LOGGED_NAME_CHARS).collect(),
            });
        }))
        .with_open_sessions(Box::new(move |open| {
            send_open(FromWorker::OpenSessions {
                open: u32::try_from(open).unwrap_or(u32::MAX),
            });
        })),
    );
    if let Some(limit) = config.workers.max_call {
        let ctl = control.try_clone().map_err(|e| report(&e))?;
        watchdog::start(limit, ctl).map_err(|e| report(&e))?;
    }
    control
        .send_to_supervisor(&FromWorker::Ready {
            landlock: enforcement.as_str().into(),
            executor: factory.name().into(),
        })
        .map_err(|e| report(&e))?;
    Ok(ConnSetup::new(&config.server, factory))
}

/// Waits for a connection and serves it; returns the exit status.
fn serve(control: &Control, setup: &ConnSetup) -> ExitCode {
    loop {
        let (msg, fd) = match control.recv_from_supervisor() {
            Ok(m) => m,
            Err(e) => {
                // The supervisor is gone, or stopping: nothing to serve.
                debug!(error = %e, "control channel closed before a connection");
                return ExitCode::SUCCESS;
            }
        };
        match (msg, fd) {
            (ToWorker::AcceptVhost, Some(fd)) => {
                let mut listener = Listener::from(UnixListener::from(fd));
                if !readable(listener.as_raw_fd(), ACCEPT_WAIT) {
                    drop(listener);
                    if control
                        .send_to_supervisor(&FromWorker::NothingToAccept)
                        .is_err()
                    {
                        return ExitCode::SUCCESS;
                    }
                    continue;
                }
                let conn = VhostConn::accept(&mut listener, setup);
                // Closed before the guest's first byte is read: a worker
                // never holds a way to other tenants' connections.
                drop(listener);
                let conn = match conn {
                    Ok(c) => c,
                    Err(e) => {
                        limited_error!(daemon_limiter(), error = %report(&e), "cannot serve a frontend");
                        let _ = control.send_to_supervisor(&FromWorker::NothingToAccept);
                        return ExitCode::FAILURE;
                    }
                };
                let _ = control.send_to_supervisor(&FromWorker::Accepted);
                conn.serve();
                return ExitCode::SUCCESS;
            }
            (ToWorker::ServeStream, Some(fd)) => {
                if let Err(e) = serve_stream(UnixStream::from(fd), setup) {
                    limited_error!(daemon_limiter(), error = %report(&e), "cannot serve a stream connection");
                    return ExitCode::FAILURE;
                }
                return ExitCode::SUCCESS;
            }
            (other, _) => {
                limited_error!(daemon_limiter(), message = ?other, "unexpected instruction from the supervisor");
                return ExitCode::from(EXIT_PROTOCOL);
            }
        }
    }
}

/// Waits up to `timeout` for `fd` to become readable.
fn readable(fd: RawFd, timeout: Duration) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: `p` is one valid pollfd that outlives the call.
    let n = unsafe { libc::poll(&mut p, 1, ms) };
    n > 0 && p.revents & libc::POLLIN != 0
}
