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

/// Device status bits (virtio 1.2 §2.1), from virtio-bindings.
pub mod status {
    use virtio_bindings::virtio_config as c;

    /// The guest found the device.
    pub const ACKNOWLEDGE: u32 = c::VIRTIO_CONFIG_S_ACKNOWLEDGE;
    /// The guest has a driver for it.
    pub const DRIVER: u32 = c::VIRTIO_CONFIG_S_DRIVER;
    /// The driver is ready to drive the device.
    pub const DRIVER_OK: u32 = c::VIRTIO_CONFIG_S_DRIVER_OK;
    /// Feature negotiation is complete.
    pub const FEATURES_OK: u32 = c::VIRTIO_CONFIG_S_FEATURES_OK;
    /// The device hit an error it cannot recover from without a reset.
    pub const DEVICE_NEEDS_RESET: u32 = c::VIRTIO_CONFIG_S_NEEDS_RESET;
    /// The driver gave up on the device.
    pub const FAILED: u32 = c::VIRTIO_CONFIG_S_FAILED;
}

/// `InterruptStatus` bits (virtio 1.2 §4.2.2), from virtio-bindings.
pub mod interrupt {
    use virtio_bindings::virtio_mmio as m;

    /// A used buffer notification.
    pub const USED_BUFFER: u32 = m::VIRTIO_MMIO_INT_VRING;
    /// A configuration change notification (also how needs-reset is told).
    pub const CONFIG_CHANGE: u32 = m::VIRTIO_MMIO_INT_CONFIG;
}

/// virtio-mmio register offsets (virtio 1.2 §4.2.2, version 2), from
/// virtio-bindings, as offsets into the device's MMIO window. The queue's
/// driver and device areas are the bindings' (legacy-named) avail and used
/// rings.
#[allow(missing_docs)]
pub mod reg {
    use virtio_bindings::virtio_mmio as m;

    pub const MAGIC_VALUE: u64 = m::VIRTIO_MMIO_MAGIC_VALUE as u64;
    pub const VERSION: u64 = m::VIRTIO_MMIO_VERSION as u64;
    pub const DEVICE_ID: u64 = m::VIRTIO_MMIO_DEVICE_ID as u64;
    pub const VENDOR_ID: u64 = m::VIRTIO_MMIO_VENDOR_ID as u64;
    pub const DEVICE_FEATURES: u64 = m::VIRTIO_MMIO_DEVICE_FEATURES as u64;
    pub const DEVICE_FEATURES_SEL: u64 = m::VIRTIO_MMIO_DEVICE_FEATURES_SEL as u64;
    pub const DRIVER_FEATURES: u64 = m::VIRTIO_MMIO_DRIVER_FEATURES as u64;
    pub const DRIVER_FEATURES_SEL: u64 = m::VIRTIO_MMIO_DRIVER_FEATURES_SEL as u64;
    pub const QUEUE_SEL: u64 = m::VIRTIO_MMIO_QUEUE_SEL as u64;
    pub const QUEUE_NUM_MAX: u64 = m::VIRTIO_MMIO_QUEUE_NUM_MAX as u64;
    pub const QUEUE_NUM: u64 = m::VIRTIO_MMIO_QUEUE_NUM as u64;
    pub const QUEUE_READY: u64 = m::VIRTIO_MMIO_QUEUE_READY as u64;
    pub const QUEUE_NOTIFY: u64 = m::VIRTIO_MMIO_QUEUE_NOTIFY as u64;
    pub const INTERRUPT_STATUS: u64 = m::VIRTIO_MMIO_INTERRUPT_STATUS as u64;
    pub const INTERRUPT_ACK: u64 = m::VIRTIO_MMIO_INTERRUPT_ACK as u64;
    pub const STATUS: u64 = m::VIRTIO_MMIO_STATUS as u64;
    pub const QUEUE_DESC_LOW: u64 = m::VIRTIO_MMIO_QUEUE_DESC_LOW as u64;
    pub const QUEUE_DESC_HIGH: u64 = m::VIRTIO_MMIO_QUEUE_DESC_HIGH as u64;
    pub const QUEUE_DRIVER_LOW: u64 = m::VIRTIO_MMIO_QUEUE_AVAIL_LOW as u64;
    pub const QUEUE_DRIVER_HIGH: u64 = m::VIRTIO_MMIO_QUEUE_AVAIL_HIGH as u64;
    pub const QUEUE_DEVICE_LOW: u64 = m::VIRTIO_MMIO_QUEUE_USED_LOW as u64;
    pub const QUEUE_DEVICE_HIGH: u64 = m::VIRTIO_MMIO_QUEUE_USED_HIGH as u64;
    pub const CONFIG_GENERATION: u64 = m::VIRTIO_MMIO_CONFIG_GENERATION as u64;
    pub const CONFIG: u64 = m::VIRTIO_MMIO_CONFIG as u64;
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
