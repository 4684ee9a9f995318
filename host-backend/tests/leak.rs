//! Connections come and go without leaking file descriptors or threads.
//!
//! Its own test binary, so that no other test opens fds or threads in this
//! process while it counts them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod frontend;

use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use frontend::*;
use protocol::opencl::Empty;
use protocol::{Outcome, Response};
use vhost_device_compute::config::ServerConfig;
use vhost_device_compute::limits::session_limits;
use vhost_device_compute::server::Server;

fn count(dir: &str) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

#[test]
fn connect_disconnect_cycles_leak_no_fds_or_threads() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("compute.sock");
    let factory = Arc::new(FakeFactory::default());
    let server = Server::bind(
        ServerConfig {
            socket: Some(socket.clone()),
            listen: None,
            vsock: None,
            device: false,
            max_sessions: 1,
            limits: session_limits(1000, 0),
            poll: Duration::from_micros(50),
        },
        factory.clone(),
    )
    .unwrap();
    let (stats, stop) = (server.stats(), server.stop_handle());
    let thread = std::thread::spawn(move || server.run().unwrap());

    // Every connection made so far has been seen and torn down.
    let made = std::cell::Cell::new(0usize);
    let settled = || {
        wait_until(|| {
            stats.accepted() + stats.rejected() == made.get()
                && stats.live() == 0
                && factory.live.load(Ordering::SeqCst) == 0
        })
    };
    let cycle = |i: usize| {
        made.set(made.get() + if i % 3 == 1 { 2 } else { 1 });
        match i % 3 {
            // A full session.
            0 | 1 => {
                let mut g = TestGuest::connect(&socket).unwrap();
                g.open_session();
                assert_eq!(g.ping(), Outcome::Ok(Response::Ping(Empty {})));
                if i % 3 == 1 {
                    // A second connection while the first is live is over
                    // the cap and must be closed and forgotten.
                    assert!(TestGuest::connect(&socket).is_err());
                }
            }
            // A peer that connects and hangs up without a word.
            _ => drop(UnixStream::connect(&socket).unwrap()),
        }
        assert!(settled(), "connection {i} was not torn down");
    };

    // Warm up: lazily created process-wide state (thread-locals, the
    // tracing dispatcher) settles in the first rounds.
    for i in 0..6 {
        cycle(i);
    }
    let fds0 = count("/proc/self/fd");
    let threads0 = count("/proc/self/task");
    let cycles = 150;
    for i in 0..cycles {
        cycle(i);
    }
    // Waiter threads exit just after they mark the connection gone.
    wait_until(|| count("/proc/self/fd") <= fds0 && count("/proc/self/task") <= threads0);
    let (fds, threads) = (count("/proc/self/fd"), count("/proc/self/task"));
    eprintln!("after {cycles} connections: fds {fds0} -> {fds}, threads {threads0} -> {threads}");
    assert_eq!(fds, fds0, "file descriptors leaked");
    assert_eq!(threads, threads0, "threads leaked");
    assert_eq!(stats.rejected(), 2 + cycles / 3);
    assert_eq!(stats.accepted() + stats.rejected(), made.get());

    stop.stop();
    thread.join().unwrap();
    assert!(!socket.exists());
}
