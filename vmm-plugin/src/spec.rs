//! The device as the guest sees it: the virtio-compute description from the
//! protocol crate (the one place it is defined), re-exported, plus the
//! virtio-mmio transport's register layout (virtio 1.2 §4.2.2) and the
//! virtio feature and status bits this device uses.

pub use protocol::device::{
    DeviceConfig, DeviceHeader, DeviceOp, DeviceStatus, StatusRecord, API_CUDA, API_OPENCL,
    CONFIG_LEN, DEVICE_HEADER_LEN, DEVICE_ID, F_CONFIG, STATUS_LEN,
};
pub use protocol::{CONTROL_QUEUE, NUM_QUEUES, QUEUE_SIZE, REQUEST_QUEUE};

use virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::virtio_ring::{VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC};

/// `VIRTIO_F_VERSION_1`: the only transport generation this device speaks.
pub const FEATURE_VERSION_1: u64 = 1 << VIRTIO_F_VERSION_1;
/// `VIRTIO_RING_F_EVENT_IDX`.
pub const FEATURE_EVENT_IDX: u64 = 1 << VIRTIO_RING_F_EVENT_IDX;
/// `VIRTIO_RING_F_INDIRECT_DESC`.
pub const FEATURE_INDIRECT_DESC: u64 = 1 << VIRTIO_RING_F_INDIRECT_DESC;
/// [`F_CONFIG`] as a feature mask.
pub const FEATURE_CONFIG: u64 = 1 << F_CONFIG;

/// Every virtio feature this device may offer a driver: what the spec in
/// `protocol::device` lists. The daemon's own offer is intersected with it
/// (others, such as packed rings or ring reset, need transport support
/// this device does not have).
pub const DEVICE_FEATURES: u64 =
    FEATURE_VERSION_1 | FEATURE_EVENT_IDX | FEATURE_INDIRECT_DESC | FEATURE_CONFIG;

/// Device status bits (virtio 1.2 §2.1).
pub mod status {
    /// The guest found the device.
    pub const ACKNOWLEDGE: u32 = 1;
    /// The guest has a driver for it.
    pub const DRIVER: u32 = 2;
    /// The driver is ready to drive the device.
    pub const DRIVER_OK: u32 = 4;
    /// Feature negotiation is complete.
    pub const FEATURES_OK: u32 = 8;
    /// The device hit an error it cannot recover from without a reset.
    pub const DEVICE_NEEDS_RESET: u32 = 0x40;
    /// The driver gave up on the device.
    pub const FAILED: u32 = 0x80;
}

/// `InterruptStatus` bits (virtio 1.2 §4.2.2).
pub mod interrupt {
    /// A used buffer notification.
    pub const USED_BUFFER: u32 = 1;
    /// A configuration change notification (also how needs-reset is told).
    pub const CONFIG_CHANGE: u32 = 2;
}

/// virtio-mmio register offsets (virtio 1.2 §4.2.2, version 2).
#[allow(missing_docs)]
pub mod reg {
    pub const MAGIC_VALUE: u64 = 0x000;
    pub const VERSION: u64 = 0x004;
    pub const DEVICE_ID: u64 = 0x008;
    pub const VENDOR_ID: u64 = 0x00c;
    pub const DEVICE_FEATURES: u64 = 0x010;
    pub const DEVICE_FEATURES_SEL: u64 = 0x014;
    pub const DRIVER_FEATURES: u64 = 0x020;
    pub const DRIVER_FEATURES_SEL: u64 = 0x024;
    pub const QUEUE_SEL: u64 = 0x030;
    pub const QUEUE_NUM_MAX: u64 = 0x034;
    pub const QUEUE_NUM: u64 = 0x038;
    pub const QUEUE_READY: u64 = 0x044;
    pub const QUEUE_NOTIFY: u64 = 0x050;
    pub const INTERRUPT_STATUS: u64 = 0x060;
    pub const INTERRUPT_ACK: u64 = 0x064;
    pub const STATUS: u64 = 0x070;
    pub const QUEUE_DESC_LOW: u64 = 0x080;
    pub const QUEUE_DESC_HIGH: u64 = 0x084;
    pub const QUEUE_DRIVER_LOW: u64 = 0x090;
    pub const QUEUE_DRIVER_HIGH: u64 = 0x094;
    pub const QUEUE_DEVICE_LOW: u64 = 0x0a0;
    pub const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
    pub const CONFIG_GENERATION: u64 = 0x0fc;
    pub const CONFIG: u64 = 0x100;
}

/// `MagicValue`: "virt" read as a little-endian u32.
pub const MMIO_MAGIC: u32 = 0x7472_6976;
/// `Version` of the modern (virtio 1.x) register layout.
pub const MMIO_VERSION: u32 = 2;
/// `VendorID` this device reports: none (virtio-mmio assigns no vendor
/// IDs; Linux ignores the register).
pub const VENDOR_ID: u32 = 0;
/// Size of the MMIO window: registers plus config space, rounded to a page.
pub const MMIO_LEN: u64 = 0x1000;
