//! The virtio-mmio register model (virtio 1.2 §4.2.2, version 2 only): the
//! registers a driver reads and writes, the device status state machine,
//! and the checks on everything the driver writes. Pure state: what a
//! write asks of the device (start, reset, a kick) comes back as an
//! [`Effect`] for `device.rs` to carry out, so nothing unchecked ever
//! reaches the daemon.

use vm_memory::GuestMemoryMmap;

use crate::queue::{valid_size, QueueState};
use crate::spec::{
    interrupt, reg, status, CONFIG_LEN, DEVICE_ID, FEATURE_VERSION_1, MMIO_MAGIC, MMIO_VERSION,
    NUM_QUEUES, QUEUE_SIZE, VENDOR_ID,
};

/// What a register write asks of the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Nothing beyond the register change.
    None,
    /// The driver wrote 0 to `Status`: reset the device.
    Reset,
    /// The driver set `DRIVER_OK` after a complete, checked setup.
    Activate,
    /// The driver notified this (ready) queue.
    Notify(u16),
}

/// Status bits a driver may set.
const DRIVER_BITS: u32 =
    status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK | status::FAILED;

/// The registers of one device.
#[derive(Clone, Debug)]
pub struct MmioRegs {
    /// `Status`.
    pub status: u32,
    /// The features offered (`DeviceFeatures`, both halves).
    pub device_features: u64,
    /// What the driver wrote to `DriverFeatures`.
    pub driver_features: u64,
    /// The driver wrote a feature bit past 63.
    unknown_features: bool,
    device_features_sel: u32,
    driver_features_sel: u32,
    queue_sel: u32,
    /// Per-queue state.
    pub queues: [QueueState; NUM_QUEUES],
    /// `InterruptStatus`.
    pub interrupt_status: u32,
    /// `ConfigGeneration`.
    pub config_generation: u32,
    /// The config space.
    pub config: [u8; CONFIG_LEN],
}

impl MmioRegs {
    /// A device offering `features` with `config` as its config space.
    pub fn new(features: u64, config: [u8; CONFIG_LEN]) -> Self {
        MmioRegs {
            status: 0,
            device_features: features,
            driver_features: 0,
            unknown_features: false,
            device_features_sel: 0,
            driver_features_sel: 0,
            queue_sel: 0,
            queues: [QueueState::default(); NUM_QUEUES],
            interrupt_status: 0,
            config_generation: 0,
            config,
        }
    }

    /// Back to the state after power-on, keeping the offer, config space
    /// and generation.
    pub fn reset(&mut self) {
        *self = MmioRegs {
            config_generation: self.config_generation,
            ..MmioRegs::new(self.device_features, self.config)
        };
    }

    /// Replaces the config space, bumping the generation if it changed.
    pub fn set_config(&mut self, config: [u8; CONFIG_LEN]) {
        if config != self.config {
            self.config = config;
            self.config_generation = self.config_generation.wrapping_add(1);
        }
    }

    /// Marks the device as needing a reset (§2.1.2). Returns whether the
    /// driver must be told through a config-change interrupt (it has set
    /// `DRIVER_OK`); the `InterruptStatus` bit is then already set.
    pub fn needs_reset(&mut self) -> bool {
        if self.status == 0 {
            return false;
        }
        self.status |= status::DEVICE_NEEDS_RESET;
        if self.status & status::DRIVER_OK != 0 {
            self.interrupt_status |= interrupt::CONFIG_CHANGE;
            true
        } else {
            false
        }
    }

    /// Whether the driver set `DRIVER_OK` and the device does not need a
    /// reset.
    pub fn live(&self) -> bool {
        self.status & (status::DRIVER_OK | status::DEVICE_NEEDS_RESET | status::FAILED)
            == status::DRIVER_OK
    }

    fn queue(&self) -> Option<&QueueState> {
        self.queues.get(self.queue_sel as usize)
    }

    /// A read of `data.len()` bytes at `offset`. Registers answer only
    /// aligned 4-byte reads, the config space any read within it; anything
    /// else reads as zeros.
    pub fn read(&self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if offset >= reg::CONFIG {
            let start = offset - reg::CONFIG;
            for (i, b) in data.iter_mut().enumerate() {
                if let Some(v) = start
                    .checked_add(i as u64)
                    .and_then(|o| usize::try_from(o).ok())
                    .and_then(|o| self.config.get(o))
                {
                    *b = *v;
                }
            }
            return;
        }
        if data.len() != 4 || !offset.is_multiple_of(4) {
            return;
        }
        let half = |v: u64, sel: u32| match sel {
            0 => v as u32,
            1 => (v >> 32) as u32,
            _ => 0,
        };
        let q = self.queue();
        let v = match offset {
            reg::MAGIC_VALUE => MMIO_MAGIC,
            reg::VERSION => MMIO_VERSION,
            reg::DEVICE_ID => DEVICE_ID,
            reg::VENDOR_ID => VENDOR_ID,
            reg::DEVICE_FEATURES => half(self.device_features, self.device_features_sel),
            reg::QUEUE_NUM_MAX => q.map_or(0, |_| u32::from(QUEUE_SIZE)),
            reg::QUEUE_READY => q.map_or(0, |q| u32::from(q.ready)),
            reg::INTERRUPT_STATUS => self.interrupt_status,
            reg::STATUS => self.status,
            reg::CONFIG_GENERATION => self.config_generation,
            _ => 0,
        };
        data.copy_from_slice(&v.to_le_bytes());
    }

    /// A write of `data` at `offset`; `mem` gives the guest memory rings
    /// must lie in (asked only when a queue is made ready, so the common
    /// writes cost nothing). Unaligned, wrongly sized, read-only and
    /// out-of-range writes are ignored.
    pub fn write(
        &mut self,
        offset: u64,
        data: &[u8],
        mem: impl FnOnce() -> GuestMemoryMmap,
    ) -> Effect {
        let Ok(bytes) = <[u8; 4]>::try_from(data) else {
            return Effect::None;
        };
        if !offset.is_multiple_of(4) || offset >= reg::CONFIG {
            return Effect::None;
        }
        let v = u32::from_le_bytes(bytes);
        match offset {
            reg::DEVICE_FEATURES_SEL => self.device_features_sel = v,
            reg::DRIVER_FEATURES_SEL => self.driver_features_sel = v,
            reg::DRIVER_FEATURES => self.write_driver_features(v),
            reg::QUEUE_SEL => self.queue_sel = v,
            reg::QUEUE_NUM
            | reg::QUEUE_READY
            | reg::QUEUE_DESC_LOW
            | reg::QUEUE_DESC_HIGH
            | reg::QUEUE_DRIVER_LOW
            | reg::QUEUE_DRIVER_HIGH
            | reg::QUEUE_DEVICE_LOW
            | reg::QUEUE_DEVICE_HIGH => self.write_queue(offset, v, mem),
            reg::QUEUE_NOTIFY => {
                let ready = self.queues.get(v as usize).is_some_and(|q| q.ready);
                if ready && self.live() {
                    return Effect::Notify(v as u16);
                }
            }
            reg::INTERRUPT_ACK => self.interrupt_status &= !v,
            reg::STATUS => return self.write_status(v),
            _ => {}
        }
        Effect::None
    }

    fn write_driver_features(&mut self, v: u32) {
        // Only while negotiating (§3.1.1: after DRIVER, before FEATURES_OK).
        if self.status & (status::DRIVER | status::FEATURES_OK) != status::DRIVER {
            return;
        }
        let v = u64::from(v);
        match self.driver_features_sel {
            0 => self.driver_features = (self.driver_features & !0xffff_ffff) | v,
            1 => self.driver_features = (self.driver_features & 0xffff_ffff) | (v << 32),
            // No features past bit 63 exist; a driver asking for one
            // fails FEATURES_OK.
            _ if v != 0 => self.unknown_features = true,
            _ => {}
        }
    }

    fn write_queue(&mut self, offset: u64, v: u32, mem: impl FnOnce() -> GuestMemoryMmap) {
        // Queues are set up after FEATURES_OK and before DRIVER_OK.
        if self.status & (status::FEATURES_OK | status::DRIVER_OK) != status::FEATURES_OK {
            return;
        }
        let Some(q) = self.queues.get_mut(self.queue_sel as usize) else {
            return;
        };
        if offset == reg::QUEUE_READY {
            if v == 0 {
                q.ready = false;
            } else if !q.ready {
                // A queue with a bad size or bad rings never becomes ready.
                q.ready = q.check(&mem()).is_ok();
            }
            return;
        }
        // A ready queue's configuration is fixed (§4.2.3.2).
        if q.ready {
            return;
        }
        match offset {
            reg::QUEUE_NUM if valid_size(v) => q.size = v as u16,
            reg::QUEUE_DESC_LOW => q.desc.write_half(false, v),
            reg::QUEUE_DESC_HIGH => q.desc.write_half(true, v),
            reg::QUEUE_DRIVER_LOW => q.avail.write_half(false, v),
            reg::QUEUE_DRIVER_HIGH => q.avail.write_half(true, v),
            reg::QUEUE_DEVICE_LOW => q.used.write_half(false, v),
            reg::QUEUE_DEVICE_HIGH => q.used.write_half(true, v),
            _ => {}
        }
    }

    fn features_acceptable(&self) -> bool {
        self.driver_features & !self.device_features == 0
            && !self.unknown_features
            && self.driver_features & FEATURE_VERSION_1 != 0
    }

    fn write_status(&mut self, v: u32) -> Effect {
        if v == 0 {
            self.reset();
            return Effect::Reset;
        }
        let old = self.status;
        // A driver never clears bits except by writing 0, and never sets
        // the device's own bit.
        let new = (v & DRIVER_BITS) & !old;
        if v & DRIVER_BITS & old != old & DRIVER_BITS {
            return Effect::None;
        }
        if new & status::FAILED != 0 {
            self.status |= status::FAILED;
            return Effect::None;
        }
        let has = |bit: u32| (old | v) & bit != 0;
        let mut effect = Effect::None;
        let mut latch = 0;
        if new & status::ACKNOWLEDGE != 0 {
            latch |= status::ACKNOWLEDGE;
        }
        if new & status::DRIVER != 0 && has(status::ACKNOWLEDGE) {
            latch |= status::DRIVER;
        }
        if new & status::FEATURES_OK != 0
            && has(status::DRIVER)
            && old & status::DEVICE_NEEDS_RESET == 0
            && self.features_acceptable()
        {
            latch |= status::FEATURES_OK;
        }
        if new & status::DRIVER_OK != 0 {
            if (old | latch) & status::FEATURES_OK != 0 && old & status::DEVICE_NEEDS_RESET == 0 {
                latch |= status::DRIVER_OK;
                effect = Effect::Activate;
            } else {
                // §2.1.2: the device cannot go on; only a reset helps.
                self.status |= status::DEVICE_NEEDS_RESET;
            }
        }
        self.status |= latch;
        effect
    }
}

#[cfg(test)]
#[path = "mmio_tests.rs"]
mod tests;
