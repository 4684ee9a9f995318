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
//!
//! A VMM creates the device with its [`VmmHost`] and routes the device's
//! MMIO window to it:
//!
//! ```
//! use std::sync::Arc;
//! use vm_memory::{GuestAddress, GuestMemoryMmap};
//! use vmm_plugin::{spec, ComputeDevice, DeviceOptions, InterruptCause, VmmHost};
//!
//! struct Host(GuestMemoryMmap);
//! impl VmmHost for Host {
//!     fn memory(&self) -> GuestMemoryMmap { self.0.clone() }
//!     fn signal(&self, _cause: InterruptCause) { /* write the irqfd */ }
//! }
//!
//! let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
//! let dev = ComputeDevice::new("/run/vcompute.sock", Arc::new(Host(mem)), DeviceOptions::default())
//!     .unwrap();
//! let mut magic = [0u8; 4];
//! dev.read(spec::reg::MAGIC_VALUE, &mut magic);
//! assert_eq!(u32::from_le_bytes(magic), spec::MMIO_MAGIC);
//! let mut id = [0u8; 4];
//! dev.read(spec::reg::DEVICE_ID, &mut id);
//! assert_eq!(u32::from_le_bytes(id), spec::DEVICE_ID);
//! ```

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
