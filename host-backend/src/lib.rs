//! `vhost-device-compute`: the virtio-compute host daemon.
pub mod executor;
