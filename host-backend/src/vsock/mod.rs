//! vsock device mode: the daemon is the vhost-user-vsock device of a VM
//! (QEMU `-device vhost-user-vsock-pci`) and terminates the guest's vsock
//! connections to its port itself. Each connection is one session, served
//! by [`crate::stream::serve`] on its own thread exactly as a unix-socket
//! connection is.
//!
//! | file | role |
//! |---|---|
//! | `device.rs` | the `VhostUserBackend`: rx/tx/event queues, packets in and out |
//! | `muxer.rs` | connections: state machine, credit, resets, session threads |
//! | `pipe.rs` | the byte pipe between the device thread and a session thread |
//! | `muxer_tests.rs` | the muxer's rules against hostile packet sequences |
//! | `device_tests.rs` | the device on mock virtqueues: unparsable packets, buffers |
//!
//! Packets are parsed with rust-vmm's `virtio-vsock` crate. The [`Muxer`]
//! is public so that its rules can be driven (and fuzzed) on plain values.

mod device;
mod muxer;
mod pipe;

pub use device::{VhuVsock, WAKE_EVENT};
pub use muxer::{op, Hdr, MuxCounters, Muxer, BUF_ALLOC, HOST_CID, MAX_OWED_RESETS, TYPE_STREAM};
