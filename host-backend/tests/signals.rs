//! SIGINT and SIGTERM stop the server in-process: live connections are shut
//! down, the socket file is removed and `run` returns Ok.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod frontend;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use frontend::*;
use vhost_device_compute::config::ServerConfig;
use vhost_device_compute::limits::session_limits;
use vhost_device_compute::listen::SignalGuard;
use vhost_device_compute::server::Server;

fn serve_until(signal: i32) {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("compute.sock");
    let factory = Arc::new(FakeFactory::default());
    let server = Server::bind(
        ServerConfig {
            socket: Some(socket.clone()),
            listen: None,
            vsock: None,
            device: false,
            max_sessions: 4,
            limits: session_limits(1000, 0),
            poll: Duration::ZERO,
        },
        factory.clone(),
    )
    .unwrap();
    let guard = SignalGuard::install(&server.stop_handle()).unwrap();
    let thread = std::thread::spawn(move || server.run());
    let mut g = TestGuest::connect(&socket).unwrap();
    g.open_session();
    signal_hook::low_level::raise(signal).unwrap();
    thread.join().unwrap().unwrap();
    drop(guard);
    assert!(!socket.exists());
    assert_eq!(
        factory.live.load(Ordering::SeqCst),
        0,
        "session not dropped"
    );
}

#[test]
fn sigterm_and_sigint_stop_the_server() {
    serve_until(libc::SIGTERM);
    serve_until(libc::SIGINT);
}
