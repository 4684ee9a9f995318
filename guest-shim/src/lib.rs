//! The virtio-compute guest shim.
pub mod client;
pub mod transport;
