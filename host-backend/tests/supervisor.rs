//! The supervisor's view and control of its workers: metrics, warm
//! workers, cgroup leaves, and a stop that leaves no worker behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

/// One scrape of a `--metrics unix:PATH` endpoint: the body.
fn scrape(path: &Path) -> String {
    let mut c = UnixStream::connect(path).unwrap();
    c.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut page = String::new();
    c.read_to_string(&mut page).unwrap();
    let (head, body) = page.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.0 200 OK"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    body.to_owned()
}

/// The value of the one sample of `metric` whose line contains `with`.
fn sample(body: &str, metric: &str, with: &str) -> Option<f64> {
    body.lines()
        .filter(|l| l.starts_with(metric) && l.contains(with))
        .find_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse().ok()))
}

/// The worker processes of `supervisor`.
fn workers(supervisor: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(") ")
                        .and_then(|(_, r)| r.split_whitespace().nth(1).map(str::to_owned))
                })
                .and_then(|p| p.parse::<u32>().ok())
                == Some(supervisor)
        })
        .collect()
}

fn eventually(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Child entry point: one short correct session, as `clinfo` would open.
#[test]
fn child_short_session() {
    if std::env::var(CHILD_ENV).as_deref() != Ok("short") {
        return;
    }
    let platforms = opencl3::platform::get_platforms().expect("platforms");
    println!("T|platforms {}", platforms.len());
}

#[test]
fn metrics_show_each_worker_and_why_workers_ended() {
    if !have_native_opencl() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let metrics = dir.path().join("metrics.sock");
    let m = format!("unix:{}", metrics.display());
    let mut daemon = Daemon::start(&["--warm-workers", "2", "--metrics", &m]);
    eventually("two warm workers", Duration::from_secs(30), || {
        sample(&scrape(&metrics), "vcompute_workers", "kind=\"warm\"") == Some(2.0)
    });
    let body = scrape(&metrics);
    assert!(body.contains("# TYPE vcompute_workers gauge"), "{body}");
    // Each live worker has its own samples.
    assert!(
        body.lines()
            .filter(|l| l.starts_with("vcompute_worker_resident_bytes{pid="))
            .count()
            >= 2,
        "{body}"
    );

    let out = run_child(
        child_command("child_short_session", "short", &Target::Shim(&daemon)),
        Duration::from_secs(60),
    );
    assert!(
        transcript(&out).contains(&"platforms 1".to_string()),
        "{out:?}"
    );
    let client = "client=\"supervisor-";
    eventually("the clean exit counted", Duration::from_secs(30), || {
        let b = scrape(&metrics);
        sample(&b, "vcompute_worker_exits_total", "reason=\"clean\"") == Some(1.0)
            && b.contains(client)
    });
    let body = scrape(&metrics);
    assert_eq!(
        sample(&body, "vcompute_connections_total", ""),
        Some(1.0),
        "{body}"
    );
    // The pool was refilled.
    eventually("the pool refilled", Duration::from_secs(30), || {
        sample(&scrape(&metrics), "vcompute_workers", "kind=\"warm\"") == Some(2.0)
    });

    // A worker killed from outside is reported with its signal. (SIGKILL:
    // the runtime in a worker catches the crash signals, to print its own
    // report, and one sent from outside does not end it.)
    let victim = *workers(daemon.pid()).first().unwrap();
    // SAFETY: plain kill(2) on a worker of our daemon.
    unsafe { libc::kill(victim as i32, libc::SIGKILL) };
    eventually("the crash counted", Duration::from_secs(30), || {
        scrape(&metrics).contains(&format!("pid=\"{victim}\""))
            && sample(
                &scrape(&metrics),
                "vcompute_worker_exits_total",
                "reason=\"signal\"",
            ) == Some(1.0)
    });
    assert!(scrape(&metrics).contains("signal 9 (SIGKILL)"));
    daemon.assert_alive();

    // A stop ends every worker and removes the endpoint.
    let pids = workers(daemon.pid());
    assert!(!pids.is_empty());
    let status = daemon
        .terminate(Duration::from_secs(30))
        .expect("daemon stopped");
    assert!(status.success(), "{status}");
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z")),
            "worker {pid} outlived the daemon"
        );
    }
    assert!(!metrics.exists(), "the metrics socket was left behind");
}

/// A cgroup v2 directory this process may create children in, if any.
fn delegated_cgroup() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    let root = mounts
        .lines()
        .find(|l| l.split_whitespace().nth(2) == Some("cgroup2"))?
        .split_whitespace()
        .nth(1)?
        .to_owned();
    let dir = PathBuf::from(root).join(format!("vcompute-test-{}", std::process::id()));
    std::fs::create_dir(&dir).ok()?;
    Some(dir)
}

#[test]
fn each_worker_runs_in_a_cgroup_leaf_of_its_own() {
    if !have_native_opencl() {
        return;
    }
    let Some(parent) = delegated_cgroup() else {
        eprintln!("SKIPPED: no writable cgroup v2 hierarchy on this host");
        return;
    };
    let p = parent.display().to_string();
    let mut daemon = Daemon::start(&["--warm-workers", "1", "--cgroup", &p]);
    eventually("a worker in a leaf", Duration::from_secs(30), || {
        workers(daemon.pid()).iter().any(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .is_ok_and(|c| c.contains("/vcompute-worker-"))
        })
    });
    let leaves = || {
        std::fs::read_dir(&parent)
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("vcompute-worker-")
            })
            .count()
    };
    assert_eq!(leaves(), 1);
    // The supervisor itself stays where it was.
    let own = std::fs::read_to_string(format!("/proc/{}/cgroup", daemon.pid())).unwrap();
    assert!(!own.contains("vcompute-worker-"), "{own}");
    let _ = daemon.terminate(Duration::from_secs(30));
    // Every leaf is gone with its worker.
    eventually("the leaves removed", Duration::from_secs(10), || {
        leaves() == 0
    });
    std::fs::remove_dir(&parent).unwrap();
}

#[test]
fn a_daemon_whose_workers_cannot_start_says_why_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("c.sock");
    // A cgroup directory that is not a cgroup: the first worker cannot be
    // placed, so no worker could ever serve.
    let not_cgroup = dir.path().join("plain-dir");
    std::fs::create_dir(&not_cgroup).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vhost-device-compute"))
        .arg("--socket")
        .arg(&sock)
        .args(["--executor", "opencl", "--cgroup"])
        .arg(&not_cgroup)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("start the first worker"), "{err}");
    assert!(!sock.exists(), "no socket should be left behind");
}
