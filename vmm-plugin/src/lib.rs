//! The VMM side of virtio-compute: the device a VMM without generic
//! vhost-user support adds to its bus, written once.
//!
//! - [`spec`]: the device description (re-exported from the protocol crate)
//!   and the virtio-mmio register layout.
//! - [`mmio`]: the register model and device status state machine.
//! - [`queue`]: one virtqueue's registers and their checks.
//! - [`connection`]: the vhost-user frontend talking to the daemon.
//! - [`device`]: [`ComputeDevice`], the three joined, what a VMM holds.
//! - `event_loop`: the device's thread (interrupts, hang-up, reconnect).
//! - [`host`]: [`VmmHost`], what the VMM provides the device.
//! - [`attach`]: attach syntax for QEMU, Cloud Hypervisor and libkrun,
//!   which need no device code (printed by `vcompute-attach`).

pub mod attach;
pub mod connection;
pub mod device;
mod event_loop;
pub mod host;
pub mod mmio;
pub mod queue;
pub mod spec;

pub use device::{ComputeDevice, DeviceError, DeviceOptions};
pub use event_loop::{BACKOFF_MAX, BACKOFF_MIN};
pub use host::{InterruptCause, VmmHost};
