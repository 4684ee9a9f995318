//! `vhost-device-compute`: the virtio-compute host daemon.
//!
//! A vhost-user backend that takes protocol frames off virtqueues and replays
//! them on a compute runtime through an [`executor::Executor`].
//!
//! | module | role |
//! |---|---|
//! | [`args`] | the command line, turned into a [`config::Config`] |
//! | [`config`] | the checked configuration |
//! | [`listen`] | the listening sockets, the stop channel, signal handling |
//! | [`server`] | the in-process server: a thread per connection |
//! | [`connection`] | serving one connection (vhost-user or stream), wherever it runs |
//! | [`vhu_compute`] | the virtio-compute `VhostUserBackend` impl: queues, adaptive polling |
//! | [`vhu_glue`] | what both `VhostUserBackend` impls share: memory, exit events, draining a queue |
//! | [`chain`] | walking one descriptor chain: areas, bulk, responses |
//! | `dispatch` | per-frame dispatch shared by chains and stream records |
//! | [`stream`] | serving one stream connection: records in, records out |
//! | [`segment`] | bulk segments lent to an executor for one request |
//! | [`session`] | per-connection session: version, executor, counters |
//! | [`vsock`] | vsock device mode: the daemon as a VM's vhost-user-vsock device |
//! | [`limits`] | per-session and per-daemon bounds and their defaults |
//! | [`log`] | the rate limiter for guest-triggered log lines; name sanitising |
//! | [`executor`] | the executor trait and its runtimes (OpenCL, CUDA) |
//! | `testing` | test doubles: the recording CUDA double and its in-process server (feature `testing`) |
//!
//! Entry point: [`run`] with a [`config::Config`]; embedders and tests
//! that bring their own [`executor::ExecutorFactory`] use
//! [`server::Server::bind`] and [`server::Server::run`].

pub mod args;
pub mod chain;
pub mod config;
pub mod connection;
mod dispatch;
pub mod executor;
pub mod limits;
pub mod listen;
pub mod log;
pub mod segment;
pub mod server;
pub mod session;
pub mod stream;
#[cfg(test)]
mod test_util;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod vhu_compute;
pub mod vhu_glue;
pub mod vsock;

use config::Config;
use listen::{stop_channel, SignalGuard};
use server::{Server, ServerError};

/// Runs the daemon described by `config` until SIGINT or SIGTERM.
pub fn run(config: Config) -> Result<(), ServerError> {
    let factory = executor::factory(config.executor)?;
    // Handlers go in before the socket exists: a client (or a supervisor)
    // that sees the socket may signal at once.
    let (stop, rx) = stop_channel()?;
    let _signals = SignalGuard::install(&stop)?;
    let server = Server::bind_with_stop(config.server, factory, (stop, rx))?;
    server.run()
}
