//! Starting one worker process: the daemon binary re-executed with its own
//! arguments plus `--worker-control 3`, its control channel at descriptor
//! 3, a private scratch directory, optionally a cgroup v2 leaf of its own
//! (entered before the binary runs), and death with the supervisor.

use std::ffi::{CString, OsString};
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::Instant;

use crate::config::CgroupConfig;
use crate::control::{Control, ToWorker};
use crate::worker::SCRATCH_ENV;

/// The descriptor a worker finds its control channel at.
pub const CONTROL_FD: i32 = 3;

/// How to start workers: the same for every one.
#[derive(Debug, Clone)]
pub struct Spawner {
    /// The daemon binary.
    pub exe: PathBuf,
    /// The supervisor's own arguments, passed on.
    pub args: Vec<OsString>,
    /// The directory each worker's scratch directory is made in.
    pub scratch_root: PathBuf,
    /// The delegated cgroup, if any.
    pub cgroup: Option<CgroupConfig>,
    /// The binary-tag key every worker is given.
    pub key: [u8; 16],
    /// The compiled-kernel cache all workers share, if any.
    pub kernel_cache: Option<PathBuf>,
}

/// A started worker, not yet reaped.
#[derive(Debug)]
pub struct WorkerProc {
    /// The process.
    pub child: Child,
    /// The supervisor's end of its control channel.
    pub control: Control,
    /// Its standard error, which the supervisor forwards.
    pub stderr: Option<ChildStderr>,
    /// Its scratch directory, removed once it has exited.
    pub scratch: PathBuf,
    /// Its cgroup leaf, removed once it has exited.
    pub cgroup: Option<PathBuf>,
    /// When it was started.
    pub started: Instant,
}

impl WorkerProc {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Ends it at once (it may be stuck anywhere), waits for it, and
    /// removes its scratch directory and cgroup leaf.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        cleanup(&self.scratch, self.cgroup.as_deref());
    }
}

/// Removes what a worker that has exited leaves behind.
pub fn cleanup(scratch: &Path, cgroup: Option<&Path>) {
    let _ = fs::remove_dir_all(scratch);
    if let Some(c) = cgroup {
        // The kernel empties a cgroup as its last process is reaped.
        let _ = fs::remove_dir(c);
    }
}

fn write_file(path: &Path, value: &str) -> io::Result<()> {
    fs::write(path, value)
}

impl Spawner {
    /// Starts worker number `n`.
    pub fn spawn(&self, n: u64) -> io::Result<WorkerProc> {
        let scratch = self.scratch_root.join(format!("worker-{n}"));
        fs::DirBuilder::new().mode(0o700).create(&scratch)?;
        let cgroup = match &self.cgroup {
            Some(c) => Some(make_leaf(c, n)?),
            None => None,
        };
        let started = self.start(n, &scratch, cgroup.as_deref());
        match started {
            Ok((child, control)) => {
                let mut w = WorkerProc {
                    stderr: None,
                    child,
                    control,
                    scratch,
                    cgroup,
                    started: Instant::now(),
                };
                w.stderr = w.child.stderr.take();
                if let Err(e) = w.control.send_to_worker(&ToWorker::Key(self.key), None) {
                    w.kill();
                    return Err(io::Error::other(e));
                }
                Ok(w)
            }
            Err(e) => {
                cleanup(&scratch, cgroup.as_deref());
                Err(e)
            }
        }
    }

    fn start(&self, n: u64, scratch: &Path, cgroup: Option<&Path>) -> io::Result<(Child, Control)> {
        let (control, worker_end) = Control::pair()?;
        let procs = match cgroup {
            Some(leaf) => Some(
                CString::new(leaf.join("cgroup.procs").as_os_str().as_bytes())
                    .map_err(io::Error::other)?,
            ),
            None => None,
        };
        let cache = self.kernel_cache.as_deref().unwrap_or(scratch);
        let mut cmd = Command::new(&self.exe);
        cmd.args(&self.args)
            .arg("--worker-control")
            .arg(CONTROL_FD.to_string())
            .env(SCRATCH_ENV, scratch)
            // Runtimes' caches and temporary files stay in the worker's
            // own directory: a cache shared between tenants would let one
            // plant code another loads.
            .env("POCL_CACHE_DIR", cache.join("pocl"))
            .env("CUDA_CACHE_PATH", cache.join("nv"))
            .env("TMPDIR", scratch)
            .env("HOME", scratch)
            .env("XDG_CACHE_HOME", scratch)
            .env("VCOMPUTE_WORKER_NUMBER", n.to_string())
            // The runtime's "current directory" (POCL adds `-I.` to every
            // build) is the worker's own, never the daemon's.
            .current_dir(scratch)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let fd = worker_end.as_raw_fd();
        // SAFETY: the closure runs in the child between fork and exec and
        // makes only async-signal-safe system calls (prctl, open, write,
        // close, dup2, fcntl) on values prepared before the fork.
        unsafe {
            cmd.pre_exec(move || child_setup(fd, procs.as_ref()));
        }
        let child = cmd.spawn()?;
        drop::<OwnedFd>(worker_end);
        Ok((child, control))
    }
}

/// In the child, before exec: die with the supervisor, enter the cgroup
/// leaf, put the control channel at [`CONTROL_FD`] (without close-on-exec).
fn child_setup(control: i32, procs: Option<&CString>) -> io::Result<()> {
    // SAFETY: plain integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if let Some(path) = procs {
        // SAFETY: `path` is a NUL-terminated string prepared before fork.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // "0" moves the writing process.
        // SAFETY: writes one byte from a static buffer to the open `fd`.
        let n = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
        // SAFETY: `fd` was opened above and is closed once.
        unsafe { libc::close(fd) };
        if n != 1 {
            return Err(io::Error::last_os_error());
        }
    }
    if control == CONTROL_FD {
        // SAFETY: clears close-on-exec on a descriptor this process holds.
        if unsafe { libc::fcntl(CONTROL_FD, libc::F_SETFD, 0) } != 0 {
            return Err(io::Error::last_os_error());
        }
    // SAFETY: `control` is open in this process; dup2 onto CONTROL_FD
    // leaves the copy without close-on-exec.
    } else if unsafe { libc::dup2(control, CONTROL_FD) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes the cgroup leaf of worker `n` with its limits.
fn make_leaf(c: &CgroupConfig, n: u64) -> io::Result<PathBuf> {
    let leaf = c
        .parent
        .join(format!("vcompute-worker-{}-{n}", std::process::id()));
    fs::create_dir(&leaf)?;
    let limits = || -> io::Result<()> {
        if let Some(bytes) = c.memory_max {
            write_file(&leaf.join("memory.max"), &bytes.to_string())?;
            // No swapping a tenant's memory out behind its limit.
            let _ = write_file(&leaf.join("memory.swap.max"), "0");
        }
        if let Some(pct) = c.cpu_percent {
            const PERIOD_US: u64 = 100_000;
            let quota = u64::from(pct) * PERIOD_US / 100;
            write_file(&leaf.join("cpu.max"), &format!("{quota} {PERIOD_US}"))?;
        }
        Ok(())
    };
    if let Err(e) = limits() {
        let _ = fs::remove_dir(&leaf);
        return Err(e);
    }
    Ok(leaf)
}
