//! The daemon outlives its clients: guests killed mid-request leave nothing
//! behind, and one session's garbage never disturbs another.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

/// Child entry point: builds a session with live objects, then runs
/// requests forever until it is killed.
#[test]
fn child_busy_loop() {
    if std::env::var(CHILD_ENV).as_deref() != Ok("busy") {
        return;
    }
    use opencl3::command_queue::CommandQueue;
    use opencl3::context::Context;
    use opencl3::device::{Device, CL_DEVICE_TYPE_ALL};
    use opencl3::kernel::{ExecuteKernel, Kernel};
    use opencl3::memory::{Buffer, CL_MEM_READ_WRITE};
    use opencl3::platform::get_platforms;
    use opencl3::program::Program;
    use opencl3::types::CL_NON_BLOCKING;

    let platform = get_platforms().expect("platforms")[0];
    let device = Device::new(platform.get_devices(CL_DEVICE_TYPE_ALL).expect("devices")[0]);
    let ctx = Context::from_device(&device).expect("context");
    let queue = CommandQueue::create_default_with_properties(&ctx, 0, 0).expect("queue");
    let src = "__kernel void inc(__global uint *x) { x[get_global_id(0)] += 1; }";
    let program = Program::create_and_build_from_source(&ctx, src, "").expect("build");
    let kernel = Kernel::create(&program, "inc").expect("kernel");
    let n = 1 << 18;
    // SAFETY: no host pointer.
    let mut buf = unsafe {
        Buffer::<u32>::create(&ctx, CL_MEM_READ_WRITE, n, std::ptr::null_mut()).expect("buffer")
    };
    let data = vec![1u32; n];
    let mut first = true;
    loop {
        // SAFETY: `data` outlives the queue's use of it (finish below).
        unsafe {
            queue
                .enqueue_write_buffer(&mut buf, CL_NON_BLOCKING, 0, &data, &[])
                .expect("write");
            ExecuteKernel::new(&kernel)
                .set_arg(&buf)
                .set_global_work_size(n)
                .enqueue_nd_range(&queue)
                .expect("launch");
        }
        queue.finish().expect("finish");
        if first {
            println!("T|ready");
            first = false;
        }
    }
}

fn crash_one(target: &Target<'_>, delay: Duration) {
    let mut cmd = child_command("child_busy_loop", "busy", target);
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let ready = lines.any(|l| l.is_ok_and(|l| transcript_line(&l) == Some("ready")));
    assert!(ready, "child never became ready");
    std::thread::sleep(delay);
    // SIGKILL: no destructors, no session close; the daemon must notice.
    child.kill().expect("kill");
    child.wait().expect("wait");
}

/// The daemon's fds and threads once it is idle: the least seen over a
/// second (a worker still ending holds a few of each in the supervisor).
fn idle_counts(daemon: &Daemon) -> (usize, usize) {
    let mut least = (usize::MAX, usize::MAX);
    let end = Instant::now() + Duration::from_secs(1);
    while Instant::now() < end {
        least = (
            least.0.min(daemon.fd_count()),
            least.1.min(daemon.thread_count()),
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    least
}

/// Waits (bounded) until the daemon's fds and threads are back down to the
/// given counts: session teardown runs on the daemon's own threads and may
/// finish a moment after the client is gone.
fn settle(daemon: &Daemon, fds: usize, threads: usize) -> (usize, usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = (daemon.fd_count(), daemon.thread_count());
        if (now.0 <= fds && now.1 <= threads) || Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The daemon's arguments for these tests: one kernel cache for every
/// worker, so that each of the hundreds of clients does not compile its
/// kernel afresh (the daemon's default, a cache per connection, costs
/// about a second of build per client on POCL).
fn shared_cache() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().display().to_string();
    (dir, path)
}

#[test]
fn killed_clients_leak_nothing() {
    let (_cache, cache) = shared_cache();
    let daemon = Daemon::start(&["--kernel-cache", &cache]);
    killed_clients_on(&daemon, &Target::Shim(&daemon), 200);
}

#[test]
fn killed_stream_clients_leak_nothing() {
    let (_cache, cache) = shared_cache();
    let daemon = Daemon::start_with_stream(&["--kernel-cache", &cache]);
    killed_clients_on(&daemon, &Target::Stream(&daemon), 60);
}

/// Kills `default_cycles` (or `VCOMPUTE_CRASH_CYCLES`) busy clients of
/// `target` mid-run and checks that the daemon frees everything and still
/// serves.
fn killed_clients_on(daemon: &Daemon, target: &Target<'_>, default_cycles: usize) {
    if !have_native_opencl() {
        return;
    }
    let cycles: usize = std::env::var("VCOMPUTE_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cycles);
    // Warm up: the runtime's own caches (compiler, thread pools) fill once.
    for i in 0..10 {
        crash_one(target, Duration::from_millis(i % 4));
    }
    // Idle: only the accept loop and the warm worker's monitor remain once
    // the last killed session's worker has ended (which takes a moment).
    let (fds0, threads0) = idle_counts(daemon);
    let rss0 = daemon.rss_kib();
    for i in 0..cycles {
        crash_one(target, Duration::from_millis((i % 7) as u64));
        assert!(daemon.alive(), "daemon exited");
    }
    let (fds, threads) = settle(daemon, fds0, threads0);
    let rss = daemon.rss_kib();
    eprintln!(
        "after {cycles} kills: fds {fds0} -> {fds}, threads {threads0} -> {threads}, rss {rss0} KiB -> {rss} KiB"
    );
    assert!(fds <= fds0, "file descriptors leaked: {fds0} -> {fds}");
    assert!(
        threads <= threads0,
        "threads leaked: {threads0} -> {threads}"
    );
    // Allocator noise is fine; a per-session leak of even one 1 MiB buffer
    // would show as 200 MiB.
    assert!(
        rss < rss0 + 32 * 1024,
        "memory grew: {rss0} KiB -> {rss} KiB"
    );

    // And it still serves a fresh client correctly.
    let out = run_child(
        child_command("child_busy_loop_then_exit", "ok", target),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{out:?}");
    assert!(transcript(&out).contains(&"ok".to_string()), "{out:?}");
}

/// Child entry point: one short correct session.
#[test]
fn child_busy_loop_then_exit() {
    if std::env::var(CHILD_ENV).as_deref() != Ok("ok") {
        return;
    }
    let lines = conformance::run().expect("conformance run");
    assert!(lines.iter().any(|l| l.contains("exact=true")), "{lines:?}");
    println!("T|ok");
}
