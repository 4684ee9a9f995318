//! The server end to end in one process: a real vhost-user frontend with
//! shared memory and split virtqueues drives the daemon's accept loop,
//! sessions and chain handling.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod frontend;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use frontend::*;
use protocol::opencl::{Empty, HandleList, QueueOp};
use protocol::{Outcome, ProtocolError, Request, Response};
use vhost::vhost_user::VhostUserFrontend;
use vhost_device_compute::config::ServerConfig;
use vhost_device_compute::limits::session_limits;
use vhost_device_compute::listen::StopHandle;
use vhost_device_compute::server::{Server, Stats};

struct Running {
    factory: Arc<FakeFactory>,
    stats: Arc<Stats>,
    stop: StopHandle,
    thread: Option<JoinHandle<()>>,
    socket: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Running {
    fn start(max_sessions: usize) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("compute.sock");
        let factory = Arc::new(FakeFactory::default());
        let server = Server::bind(
            ServerConfig {
                socket: Some(socket.clone()),
                listen: None,
                vsock: None,
                device: false,
                max_sessions,
                limits: session_limits(1000, 0),
                poll: Duration::from_micros(50),
            },
            factory.clone(),
        )
        .unwrap();
        let (stats, stop) = (server.stats(), server.stop_handle());
        let thread = std::thread::spawn(move || server.run().unwrap());
        Running {
            factory,
            stats,
            stop,
            thread: Some(thread),
            socket,
            _dir: dir,
        }
    }

    fn guest(&self) -> TestGuest {
        TestGuest::connect(&self.socket).unwrap()
    }

    fn stop(&mut self) {
        self.stop.stop();
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn session_open_ping_and_api_call_end_to_end() {
    let mut srv = Running::start(4);
    let mut g = srv.guest();
    g.open_session();
    assert_eq!(g.ping(), Outcome::Ok(Response::Ping(Empty {})));
    let out = g
        .call(
            1,
            &[
                Request::ClGetPlatformIds(Empty {}),
                Request::ClFinish(QueueOp { queue: 3 }),
                Request::Ping(Empty {}),
            ],
        )
        .unwrap();
    // A native error does not stop the batch.
    let outcomes: Vec<_> = out.into_iter().map(|(_, o)| o).collect();
    assert_eq!(
        outcomes,
        vec![
            Outcome::Ok(Response::ClGetPlatformIds(HandleList { handles: vec![7] })),
            Outcome::Native(-36),
            Outcome::Ok(Response::Ping(Empty {})),
        ]
    );
    assert_eq!(srv.factory.opened.load(Ordering::SeqCst), 1);
    // Control opcodes are not allowed on the request queue.
    let out = g.call(1, &[Request::SessionClose(Empty {})]).unwrap();
    assert_eq!(
        out[0].1,
        Outcome::Protocol(ProtocolError::UnsupportedOpcode)
    );
    // SessionClose on the control queue drops the executor.
    let out = g.call(0, &[Request::SessionClose(Empty {})]).unwrap();
    assert_eq!(out[0].1, Outcome::Ok(Response::SessionClose(Empty {})));
    assert_eq!(srv.factory.live.load(Ordering::SeqCst), 0);
    assert_eq!(g.ping(), Outcome::Protocol(ProtocolError::NoSession));
    drop(g);
    assert!(wait_until(|| srv.stats.live() == 0));
    srv.stop();
    assert!(!srv.socket.exists(), "socket file not removed on stop");
}

#[test]
fn disconnect_and_device_reset_drop_the_session() {
    let srv = Running::start(4);
    let mut g = srv.guest();
    g.open_session();
    assert_eq!(srv.factory.live.load(Ordering::SeqCst), 1);
    g.frontend.reset_device().unwrap();
    assert!(wait_until(|| srv.factory.live.load(Ordering::SeqCst) == 0));
    drop(g);

    let mut g = srv.guest();
    g.open_session();
    assert_eq!(srv.factory.live.load(Ordering::SeqCst), 1);
    drop(g);
    assert!(wait_until(|| srv.factory.live.load(Ordering::SeqCst) == 0));
    assert!(wait_until(|| srv.stats.live() == 0));
}

#[test]
fn concurrent_sessions_and_max_sessions() {
    let srv = Running::start(2);
    let mut a = srv.guest();
    let mut b = srv.guest();
    a.open_session();
    b.open_session();
    assert_eq!(srv.factory.live.load(Ordering::SeqCst), 2);
    // Sessions are independent: closing one leaves the other open.
    a.call(0, &[Request::SessionClose(Empty {})]).unwrap();
    assert_eq!(a.ping(), Outcome::Protocol(ProtocolError::NoSession));
    assert_eq!(b.ping(), Outcome::Ok(Response::Ping(Empty {})));

    // A third connection is closed at once.
    assert!(TestGuest::connect(&srv.socket).is_err());
    assert!(wait_until(|| srv.stats.rejected() == 1));

    drop(a);
    assert!(wait_until(|| srv.stats.live() == 1));
    let mut c = srv.guest();
    c.open_session();
    assert_eq!(c.ping(), Outcome::Ok(Response::Ping(Empty {})));
    assert_eq!(b.ping(), Outcome::Ok(Response::Ping(Empty {})));
}

#[test]
fn stop_shuts_down_live_connections() {
    let mut srv = Running::start(4);
    let mut g = srv.guest();
    g.open_session();
    srv.stop();
    assert_eq!(srv.factory.live.load(Ordering::SeqCst), 0);
    assert_eq!(srv.stats.live(), 0);
    assert!(!srv.socket.exists());
    // The guest sees its connection gone.
    assert!(g.frontend.set_vring_enable(0, true).is_err());
}
