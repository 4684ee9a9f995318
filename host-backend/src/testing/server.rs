//! [`RecordingServer`]: the daemon's server over the recording double, in
//! the test's own process.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::recorder::{Recorder, RecordingCudaFactory};
use crate::config::ServerConfig;
use crate::limits::session_limits;
use crate::listen::StopHandle;
use crate::server::{Server, ServerError};

/// The daemon's server over a [`RecordingCudaFactory`], serving in this
/// process on a thread of its own: what the CUDA end-to-end tests of every
/// crate drive (through the shim, or as a vhost-user frontend). It serves
/// up to 4 sessions, each limited to 1000 objects and 1 GiB of device
/// memory, polling 50 µs after a queue drains. It listens on the
/// vhost-user socket and, for the stream transport, on a unix socket
/// beside it ([`RecordingServer::stream_endpoint`]). Dropping it stops it.
#[derive(Debug)]
pub struct RecordingServer {
    recorder: Arc<Recorder>,
    socket: PathBuf,
    stop: StopHandle,
    thread: Option<JoinHandle<Result<(), ServerError>>>,
}

impl RecordingServer {
    /// Binds the vhost-user socket `socket` (in a directory that exists)
    /// and starts serving.
    pub fn start(socket: PathBuf) -> Result<RecordingServer, ServerError> {
        let factory = Arc::new(RecordingCudaFactory::new());
        let recorder = factory.recorder();
        let server = Server::bind(
            ServerConfig {
                socket: Some(socket.clone()),
                listen: Some(socket.with_extension("stream")),
                vsock: None,
                device: false,
                max_sessions: 4,
                limits: session_limits(1000, 1 << 30),
                poll: Duration::from_micros(50),
            },
            factory,
        )?;
        let stop = server.stop_handle();
        let thread = std::thread::spawn(move || server.run());
        Ok(RecordingServer {
            recorder,
            socket,
            stop,
            thread: Some(thread),
        })
    }

    /// What the server's sessions received.
    pub fn recorder(&self) -> &Arc<Recorder> {
        &self.recorder
    }

    /// The vhost-user socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The `VCOMPUTE_ENDPOINT` that points the shim at this server.
    pub fn endpoint(&self) -> String {
        format!("vhost-user:{}", self.socket.display())
    }

    /// The `VCOMPUTE_ENDPOINT` of the same server over the stream
    /// transport (records with inline bulk on a unix socket).
    pub fn stream_endpoint(&self) -> String {
        format!("unix:{}", self.socket.with_extension("stream").display())
    }

    /// Stops the server and waits for its thread; returns how the server
    /// ended. A panic of the server's thread is resumed here, unless this
    /// thread is already unwinding from a panic of its own.
    pub fn stop(&mut self) -> Result<(), ServerError> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        self.stop.stop();
        match thread.join() {
            Ok(ended) => ended,
            Err(panic) if !std::thread::panicking() => std::panic::resume_unwind(panic),
            Err(_) => Ok(()),
        }
    }
}

impl Drop for RecordingServer {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.stop.stop();
            let _ = thread.join();
        }
    }
}
