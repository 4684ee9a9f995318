//! A daemon killed in the middle of a run: the harness must say so, exit
//! non-zero, not hang, and print no numbers. Runs the real harness binary
//! against the real daemon (the one it starts itself, and one it is
//! pointed at). And the other way round: a harness killed outright takes
//! the daemon it started with it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// Longest the harness may take to notice and exit.
const EXIT_DEADLINE: Duration = Duration::from_secs(60);

fn have_native_opencl() -> bool {
    let ok = matches!(opencl3::platform::get_platforms(), Ok(p) if !p.is_empty());
    if !ok {
        eprintln!(
            "SKIPPED: no native OpenCL platform (apt-get install pocl-opencl-icd ocl-icd-libopencl1)"
        );
    }
    ok
}

fn harness() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vcompute-bench"))
}

/// A binary built beside the harness (the daemon, the shim).
fn sibling(name: &str) -> PathBuf {
    let p = harness().parent().unwrap().join(name);
    assert!(
        p.exists(),
        "{} not found; build the workspace first (cargo build --workspace)",
        p.display()
    );
    p
}

/// A child process killed when the test ends, however it ends: a failed
/// assertion must not leave a minutes-long harness run behind.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A long run (it would take minutes) whose stderr is streamed back.
fn start_harness(extra: &[&str], out: &std::path::Path) -> (Reaped, Receiver<String>) {
    sibling("libvcompute_shim.so");
    let mut child = Command::new(harness())
        .args([
            "run",
            "--quick",
            "--workloads",
            "vectorAdd,micro",
            "--rounds",
            "100000",
            "--out",
        ])
        .arg(out)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (Reaped(child), rx)
}

/// Collects stderr until a line satisfies `pred`; returns that line.
fn wait_for(rx: &Receiver<String>, log: &mut Vec<String>, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).unwrap_or_else(|e| {
            panic!(
                "harness stderr ended ({e}) before the expected line:\n{}",
                log.join("\n")
            )
        });
        log.push(line.clone());
        if pred(&line) {
            return line;
        }
    }
}

/// Waits for the harness to exit; returns its exit code and stdout, and
/// adds the rest of its stderr to `log`.
fn finish(mut child: Reaped, rx: &Receiver<String>, log: &mut Vec<String>) -> (i32, String) {
    let deadline = Instant::now() + EXIT_DEADLINE;
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        // Failing here drops `child`, which kills the harness.
        assert!(
            Instant::now() < deadline,
            "the harness hung after the daemon died:\n{}",
            log.join("\n")
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    // Drain what stderr still holds.
    while let Ok(l) = rx.recv_timeout(Duration::from_millis(500)) {
        log.push(l);
    }
    (status.code().unwrap_or(-1), stdout)
}

/// Waits for the harness to say it started its daemon; the daemon's pid.
fn daemon_pid(rx: &Receiver<String>, log: &mut Vec<String>) -> i32 {
    let started = wait_for(rx, log, |l| l.starts_with("vcompute-bench: started"));
    started
        .split("(pid ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {started:?}"))
}

fn is_virtual_ok(line: &str) -> bool {
    line.contains("virtio-compute") && line.ends_with(": ok")
}

/// Exit code 1, nothing on stdout, a FAILED line naming the case, and
/// each of `needles` somewhere in stderr.
fn assert_clean_failure(code: i32, stdout: &str, log: &[String], needles: &[&str]) {
    let stderr = log.join("\n");
    assert_eq!(code, 1, "exit code; stderr:\n{stderr}");
    assert!(
        stdout.trim().is_empty(),
        "no report may be printed after a failure, got:\n{stdout}"
    );
    let failed = log
        .iter()
        .find(|l| l.starts_with("vcompute-bench: FAILED:"))
        .unwrap_or_else(|| panic!("no FAILED line:\n{stderr}"));
    assert!(
        failed.contains(" `"),
        "the failure names the case: {failed}"
    );
    for n in needles {
        assert!(stderr.contains(n), "expected {n:?} in:\n{stderr}");
    }
}

#[test]
fn killing_the_harness_own_daemon_fails_the_run_clearly() {
    if !have_native_opencl() {
        return;
    }
    sibling("vhost-device-compute");
    let out = tempfile::tempdir().unwrap();
    let (child, rx) = start_harness(&[], out.path());
    let mut log = Vec::new();
    let pid = daemon_pid(&rx, &mut log);
    wait_for(&rx, &mut log, is_virtual_ok);
    // SAFETY: plain kill(2) of the daemon process the harness started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let (code, stdout) = finish(child, &rx, &mut log);
    // Whichever side notices first, the report says the daemon died.
    assert_clean_failure(code, &stdout, &log, &["daemon died during the run"]);
    assert!(
        !out.path().join("results.json").exists(),
        "no results file may be written after a failure"
    );
}

#[test]
fn killing_a_running_daemon_the_harness_was_pointed_at_fails_the_run_clearly() {
    if !have_native_opencl() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("compute.sock");
    let mut daemon = Reaped(
        Command::new(sibling("vhost-device-compute"))
            .arg("--socket")
            .arg(&sock)
            .args(["--executor", "opencl"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sock.exists() {
        assert!(Instant::now() < deadline, "daemon socket never appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    let endpoint = format!("vhost-user:{}", sock.display());
    let (child, rx) = start_harness(&["--endpoint", &endpoint], dir.path());
    let mut log = Vec::new();
    wait_for(&rx, &mut log, is_virtual_ok);
    daemon.0.kill().unwrap();
    daemon.0.wait().unwrap();
    let (code, stdout) = finish(child, &rx, &mut log);
    assert_clean_failure(
        code,
        &stdout,
        &log,
        &["virtio-compute side failed in `", "still running?"],
    );
}

#[test]
fn killing_the_harness_takes_its_daemon_down() {
    if !have_native_opencl() {
        return;
    }
    sibling("vhost-device-compute");
    let out = tempfile::tempdir().unwrap();
    let (mut child, rx) = start_harness(&[], out.path());
    let mut log = Vec::new();
    let pid = daemon_pid(&rx, &mut log);
    wait_for(&rx, &mut log, is_virtual_ok);
    // SIGKILL: the harness gets no chance to stop the daemon itself.
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    while unsafe { libc::kill(pid, 0) } == 0 {
        if Instant::now() > deadline {
            // SAFETY: kill(2) of the orphan, so the failure leaves none.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("the daemon (pid {pid}) outlived the harness");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
