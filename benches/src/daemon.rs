//! Starting the daemon for a run, and stopping it afterwards.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A daemon this harness started; killed on drop.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    dir: PathBuf,
    pub endpoint: String,
}

impl Daemon {
    /// Starts `binary` on a socket in a fresh temporary directory and waits
    /// until the socket exists. With `stream`, the daemon listens on a unix
    /// stream socket and the endpoint names that instead.
    pub fn start(binary: &Path, stream: bool) -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!("vcompute-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let sock = dir.join("daemon.sock");
        let (flag, value, endpoint) = if stream {
            let v = format!("unix:{}", sock.display());
            ("--listen", v.clone(), v)
        } else {
            let v = sock.display().to_string();
            ("--socket", v.clone(), format!("vhost-user:{v}"))
        };
        let child = Command::new(binary)
            .arg(flag)
            .arg(value)
            .args(["--executor", "opencl"])
            .stdin(Stdio::null())
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
