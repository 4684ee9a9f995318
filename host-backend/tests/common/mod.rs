//! Shared helpers for the end-to-end tests: start the real daemon binary on
//! a socket in a temp dir, re-run this test binary as a child OpenCL program
//! (natively or through the shim), and read its transcript.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod conformance;
pub mod forwarded;
pub mod forwarded_programs;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Set in a child process to the mode its entry-point test should run.
pub const CHILD_ENV: &str = "VCOMPUTE_TEST_CHILD";

/// Where a child program sends its OpenCL calls.
#[derive(Debug)]
pub enum Target<'a> {
    /// The system's own ICDs.
    Native,
    /// The shim, pointed at this daemon's vhost-user socket.
    Shim(&'a Daemon),
    /// The shim, pointed at this daemon's stream listener (`unix:`).
    Stream(&'a Daemon),
}

/// True when a native OpenCL platform is available; otherwise says the test
/// is skipped and why.
pub fn have_native_opencl() -> bool {
    let ok = matches!(opencl3::platform::get_platforms(), Ok(p) if !p.is_empty());
    if !ok {
        eprintln!("SKIPPED: no native OpenCL platform (apt-get install pocl-opencl-icd ocl-icd-libopencl1)");
    }
    ok
}

/// `which`: the first `name` on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn target_dir() -> PathBuf {
    // .../target/<profile>/deps/<test binary>
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary lives in <target>/<profile>/deps")
        .to_path_buf()
}

/// The shim cdylib built alongside this test.
pub fn shim_lib() -> PathBuf {
    let dir = target_dir();
    for p in [
        dir.join("libvcompute_shim.so"),
        dir.join("deps").join("libvcompute_shim.so"),
    ] {
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "libvcompute_shim.so not found under {}; run `cargo build -p vcompute-shim` first",
        dir.display()
    );
}

/// The daemon binary, running on a socket in its own temp dir.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    socket: PathBuf,
    stream: PathBuf,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts `vhost-device-compute --executor opencl` plus `extra` args and
    /// waits for its socket.
    pub fn start(extra: &[&str]) -> Daemon {
        Self::spawn(extra, None)
    }

    /// Like [`Daemon::start`], with a stream listener as well
    /// (`--listen unix:PATH`).
    pub fn start_with_stream(extra: &[&str]) -> Daemon {
        Self::spawn(extra, Some("stream.sock"))
    }

    /// Like [`Daemon::start_with_stream`], the listener named `name` in the
    /// daemon's directory.
    pub fn start_with_stream_named(name: &str, extra: &[&str]) -> Daemon {
        Self::spawn(extra, Some(name))
    }

    fn spawn(extra: &[&str], stream_name: Option<&str>) -> Daemon {
        let stream = stream_name.is_some();
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("compute.sock");
        let stream_path = dir.path().join(stream_name.unwrap_or("stream.sock"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vhost-device-compute"));
        cmd.arg("--socket")
            .arg(&socket)
            .args(["--executor", "opencl"]);
        if stream {
            cmd.arg("--listen")
                .arg(format!("unix:{}", stream_path.display()));
        }
        let child = cmd
            .args(extra)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn daemon");
        let mut d = Daemon {
            child,
            socket,
            stream: stream_path,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !d.socket.exists() || (stream && !d.stream.exists()) {
            d.assert_alive();
            assert!(Instant::now() < deadline, "daemon socket never appeared");
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    /// The `VCOMPUTE_ENDPOINT` value naming this daemon.
    pub fn endpoint(&self) -> String {
        format!("vhost-user:{}", self.socket.display())
    }

    /// The `VCOMPUTE_ENDPOINT` value naming this daemon's stream listener.
    pub fn stream_endpoint(&self) -> String {
        format!("unix:{}", self.stream.display())
    }

    /// The stream listener's path.
    pub fn stream_path(&self) -> &Path {
        &self.stream
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The daemon's (the supervisor's) process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn proc_path(&self, rest: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/{rest}", self.child.id()))
    }

    /// Open file descriptors of the daemon.
    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(self.proc_path("fd"))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Threads of the daemon.
    pub fn thread_count(&self) -> usize {
        std::fs::read_dir(self.proc_path("task"))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Resident set size of the daemon, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(self.proc_path("status")).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// True while the daemon process runs (not exited, not a zombie).
    pub fn alive(&self) -> bool {
        std::fs::read_to_string(self.proc_path("stat"))
            .ok()
            .and_then(|s| s.rsplit_once(") ").map(|(_, r)| r.to_owned()))
            .is_some_and(|r| !r.starts_with('Z'))
    }

    /// Sends SIGTERM and waits up to `timeout` for the daemon to exit;
    /// returns its status, or `None` if it is still running.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Panics if the daemon has exited.
    pub fn assert_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("daemon exited: {status}");
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Re-runs this test binary as a child that executes only `test_name`, with
/// [`CHILD_ENV`] set to `mode`, its OpenCL calls going to `target`.
pub fn child_command(test_name: &str, mode: &str, target: &Target<'_>) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
    cmd.args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, mode);
    aim(&mut cmd, target);
    cmd
}

/// Points an OpenCL program's loader at `target`.
pub fn aim(cmd: &mut Command, target: &Target<'_>) {
    match target {
        Target::Native => {
            cmd.env_remove("OCL_ICD_VENDORS")
                .env_remove("VCOMPUTE_ENDPOINT");
        }
        Target::Shim(d) => {
            cmd.env("OCL_ICD_VENDORS", shim_lib())
                .env("VCOMPUTE_ENDPOINT", d.endpoint());
        }
        Target::Stream(d) => {
            cmd.env("OCL_ICD_VENDORS", shim_lib())
                .env("VCOMPUTE_ENDPOINT", d.stream_endpoint());
        }
    }
}

/// Runs `cmd` to completion, killing it after `timeout`.
pub fn run_child(mut cmd: Command, timeout: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let out = std::thread::scope(|s| {
        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let o = s.spawn(move || {
            let mut v = Vec::new();
            if let Some(r) = stdout.as_mut() {
                let _ = std::io::Read::read_to_end(r, &mut v);
            }
            v
        });
        let e = s.spawn(move || {
            let mut v = Vec::new();
            if let Some(r) = stderr.as_mut() {
                let _ = std::io::Read::read_to_end(r, &mut v);
            }
            v
        });
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(st) = child.try_wait().expect("wait child") {
                break st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                break child.wait().expect("wait child");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Output {
            status,
            stdout: o.join().unwrap_or_default(),
            stderr: e.join().unwrap_or_default(),
        }
    });
    out
}

/// The transcript text of one line of child output, if it has any. The test
/// harness may print `test NAME ... ` before the child's first line, so the
/// marker is searched for, not expected at the start.
pub fn transcript_line(line: &str) -> Option<&str> {
    line.find("T|").map(|i| &line[i + 2..])
}

/// The `T|` lines a child printed, without the prefix.
pub fn transcript(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(transcript_line)
        .map(str::to_owned)
        .collect()
}

/// The body of each test binary's `child_conformance` entry point: runs the
/// conformance program when this process was started as that child (see
/// [`child_command`]) and prints its transcript; does nothing otherwise.
pub fn conformance_child() {
    if std::env::var(CHILD_ENV).as_deref() != Ok("conformance") {
        return;
    }
    match conformance::run() {
        Ok(lines) => lines.iter().for_each(|l| println!("T|{l}")),
        Err(code) => println!("T|failed with {code}"),
    }
}

/// Runs the conformance program natively and at `target` (each as a child
/// of this test binary, whose `child_conformance` test must call
/// [`conformance_child`]) and asserts that the native run is complete and
/// that both transcripts are identical.
pub fn assert_conformance_matches_native(target: &Target<'_>) {
    let native = run_child(
        child_command("child_conformance", "conformance", &Target::Native),
        Duration::from_secs(120),
    );
    let virt = run_child(
        child_command("child_conformance", "conformance", target),
        Duration::from_secs(120),
    );
    let (n, v) = (transcript(&native), transcript(&virt));
    assert!(
        n.len() > 20 && !n.iter().any(|l| l.starts_with("failed")),
        "native run incomplete: {n:#?}\nstderr: {}",
        String::from_utf8_lossy(&native.stderr)
    );
    assert!(n
        .iter()
        .any(|l| l.contains("vadd") && l.contains("exact=true")));
    assert!(n
        .iter()
        .any(|l| l.contains("matmul") && l.contains("close=true")));
    assert_eq!(
        n,
        v,
        "transcripts differ; shim stderr:\n{}",
        String::from_utf8_lossy(&virt.stderr)
    );
}
