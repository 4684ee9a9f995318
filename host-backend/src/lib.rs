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
//! | [`supervisor`] | the daemon: listening sockets, one worker process per connection |
//! | [`worker`] | a worker process: its sandbox, its one connection, its watchdog |
//! | [`control`] | the channel between the supervisor and a worker |
//! | [`hooks`] | what a worker watches in its sessions (call times, clients) |
//! | [`server`] | the in-process server: a thread per connection (embedders, tests) |
//! | [`connection`] | serving one connection (vhost-user or stream), wherever it runs |
//! | [`vhu_compute`] | the virtio-compute `VhostUserBackend` impl: queues, adaptive polling |
//! | [`vhu_device`] | the virtio-compute device in device mode: sessions by device header, config space, a thread per queue |
//! | [`vhu_glue`] | what the `VhostUserBackend` impls share: memory, exit events, draining and polling a queue |
//! | [`chain`] | walking one direct-mode descriptor chain: areas, bulk, responses; running a chain's frames |
//! | [`device_chain`] | walking one device-mode descriptor chain: device header, areas, segments of several descriptors, status |
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
//! Entry points: [`supervisor::run`] (the daemon) and [`worker::run`] (what
//! the supervisor starts per connection), each with a [`config::Config`];
//! embedders and tests that bring their own [`executor::ExecutorFactory`]
//! serve in-process with [`server::Server::bind`] and
//! [`server::Server::run`].

pub mod args;
pub mod chain;
pub mod config;
pub mod connection;
pub mod control;
pub mod device_chain;
mod dispatch;
pub mod executor;
pub mod hooks;
pub mod limits;
pub mod listen;
pub mod log;
pub mod segment;
pub mod server;
pub mod session;
pub mod stream;
pub mod supervisor;
#[cfg(test)]
mod test_util;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod vhu_compute;
pub mod vhu_device;
pub mod vhu_glue;
pub mod vsock;
pub mod worker;
