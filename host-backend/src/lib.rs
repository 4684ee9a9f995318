//! `vhost-device-compute`: the virtio-compute host daemon.
//!
//! A vhost-user backend that takes protocol frames off virtqueues and replays
//! them on a compute runtime through an [`executor::Executor`].
//!
//! | module | role |
//! |---|---|
//! | [`args`] | command line, and the checked [`args::Config`] |
//! | [`server`] | accept loop, one daemon per connection, signal handling |
//! | [`vhu_compute`] | the `VhostUserBackend` impl: queues, adaptive polling |
//! | [`chain`] | walking one descriptor chain: areas, bulk, responses |
//! | `dispatch` | per-frame dispatch shared by chains and stream records |
//! | [`stream`] | serving one stream connection: records in, records out |
//! | [`session`] | per-connection session: version, executor, counters |
//! | [`vsock`] | vsock device mode: the daemon as a VM's vhost-user-vsock device |
//! | [`limits`] | defaults for per-session bounds; log rate limiting |
//! | [`executor`] | the executor trait and its runtimes (OpenCL, CUDA), and a recording CUDA test double |
//!
//! Entry point: [`server::run`] with a [`args::Config`]; embedders and tests
//! that bring their own [`executor::ExecutorFactory`] use
//! [`server::Server::bind`] and [`server::Server::run`].

pub mod args;
pub mod chain;
mod dispatch;
pub mod executor;
pub mod limits;
pub mod server;
pub mod session;
pub mod stream;
#[cfg(test)]
mod test_util;
pub mod vhu_compute;
pub mod vsock;
