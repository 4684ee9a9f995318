//! Starting the daemon for a run, and stopping it afterwards.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::api::Api;

/// A daemon this harness started; killed on drop.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    dir: PathBuf,
    pub endpoint: String,
}

impl Daemon {
    /// Starts `binary` with the executor for `api` on a socket in a fresh
    /// temporary directory and waits until the socket exists. With
    /// `stream`, the daemon listens on a unix stream socket and the
    /// endpoint names that instead of the vhost-user socket.
    pub fn start(binary: &Path, api: Api, stream: bool) -> Result<Self, String> {
        Self::start_with(binary, api, stream, &[], "run")
    }

    /// Like [`Daemon::start`], with `extra` daemon arguments, in a directory
    /// of its own named after `tag` (so that several can run at once).
    pub fn start_with(
        binary: &Path,
        api: Api,
        stream: bool,
        extra: &[&str],
        tag: &str,
    ) -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!("vcompute-bench-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let sock = dir.join("daemon.sock");
        let (flag, value, endpoint) = if stream {
            let v = format!("unix:{}", sock.display());
            ("--listen", v.clone(), v)
        } else {
            let v = sock.display().to_string();
            ("--socket", v.clone(), format!("vhost-user:{v}"))
        };
        let mut cmd = Command::new(binary);
        cmd.arg(flag)
            .arg(value)
            .arg("--executor")
            .arg(api.arg())
            .args(extra)
            .stdin(Stdio::null());
        // SAFETY: the hook runs in the forked child before exec and only
        // makes one async-signal-safe system call (prctl), which asks the
        // kernel to end the daemon if the harness dies without stopping it
        // (killed by a signal), instead of leaving it running.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        if std::env::var_os("RUST_LOG").is_none() {
            // Its lifecycle lines would only break up the progress display;
            // warnings and errors still show.
            cmd.env("RUST_LOG", "warn");
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let mut d = Daemon {
            child,
            dir,
            endpoint,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while !sock.exists() {
            if let Ok(Some(status)) = d.child.try_wait() {
                return Err(format!("daemon exited at start-up: {status}"));
            }
            if Instant::now() > deadline {
                return Err("daemon did not create its socket within 15 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(d)
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the daemon has exited.
    pub fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("daemon died during the run: {status}")),
            Err(e) => Err(format!("cannot query the daemon: {e}")),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
