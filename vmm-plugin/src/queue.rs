//! One split virtqueue's transport state: what the driver wrote to the
//! queue registers, and the checks (virtio 1.2 §2.7) a queue must pass
//! before it may be made ready.

use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

use crate::spec::QUEUE_SIZE;

/// Why a queue cannot be made ready.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueueError {
    /// The size is zero, not a power of two, or above `QueueNumMax`.
    #[error("queue size {0} is not a power of two in 1..={QUEUE_SIZE}")]
    BadSize(u32),
    /// A ring address was never written.
    #[error("the {0} ring's address was not set")]
    AddressUnset(&'static str),
    /// A ring address is not aligned as the split ring needs.
    #[error("the {0} ring at {1:#x} is misaligned")]
    Misaligned(&'static str, u64),
    /// A ring does not lie within one guest memory region.
    #[error("the {0} ring at {1:#x} is outside guest memory")]
    OutsideMemory(&'static str, u64),
}

/// A ring area: its name, guest address, whether it was written.
#[derive(Clone, Copy, Debug, Default)]
pub struct RingAddr {
    /// Guest-physical address.
    pub addr: u64,
    /// Whether the driver wrote either half.
    pub set: bool,
}

impl RingAddr {
    /// Writes the low (`high == false`) or high half.
    pub fn write_half(&mut self, high: bool, v: u32) {
        self.addr = if high {
            (self.addr & 0xffff_ffff) | (u64::from(v) << 32)
        } else {
            (self.addr & !0xffff_ffff) | u64::from(v)
        };
        self.set = true;
    }
}

/// The driver-visible state of one queue.
#[derive(Clone, Copy, Debug)]
pub struct QueueState {
    /// `QueueNum`.
    pub size: u16,
    /// `QueueReady`.
    pub ready: bool,
    /// Descriptor table.
    pub desc: RingAddr,
    /// Available ring (the "driver area").
    pub avail: RingAddr,
    /// Used ring (the "device area").
    pub used: RingAddr,
}

impl Default for QueueState {
    fn default() -> Self {
        QueueState {
            size: QUEUE_SIZE,
            ready: false,
            desc: RingAddr::default(),
            avail: RingAddr::default(),
            used: RingAddr::default(),
        }
    }
}

/// A size the driver may write to `QueueNum`.
pub fn valid_size(n: u32) -> bool {
    n != 0 && n <= u32::from(QUEUE_SIZE) && n.is_power_of_two()
}

impl QueueState {
    /// The three areas with their byte lengths and alignments (§2.7).
    fn areas(&self) -> [(&'static str, RingAddr, u64, u64); 3] {
        let n = u64::from(self.size);
        [
            ("descriptor", self.desc, 16 * n, 16),
            ("available", self.avail, 6 + 2 * n, 2),
            ("used", self.used, 6 + 8 * n, 4),
        ]
    }

    /// Checks the queue may be made ready in `mem`.
    pub fn check(&self, mem: &GuestMemoryMmap) -> Result<(), QueueError> {
        if !valid_size(u32::from(self.size)) {
            return Err(QueueError::BadSize(u32::from(self.size)));
        }
        for (name, ring, len, align) in self.areas() {
            if !ring.set {
                return Err(QueueError::AddressUnset(name));
            }
            if !ring.addr.is_multiple_of(align) {
                return Err(QueueError::Misaligned(name, ring.addr));
            }
            if !within_one_region(mem, ring.addr, len) {
                return Err(QueueError::OutsideMemory(name, ring.addr));
            }
        }
        Ok(())
    }
}

/// Whether `[addr, addr + len)` lies in a single region of `mem` (so one
/// host-virtual address covers it, as the daemon's ring mapping needs).
pub fn within_one_region(mem: &GuestMemoryMmap, addr: u64, len: u64) -> bool {
    let Some(last) = len.checked_sub(1).and_then(|l| addr.checked_add(l)) else {
        return false;
    };
    match (
        mem.to_region_addr(GuestAddress(addr)),
        mem.to_region_addr(GuestAddress(last)),
    ) {
        (Some((a, _)), Some((b, _))) => std::ptr::eq(a, b),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn mem() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[
            (GuestAddress(0), 0x10000),
            (GuestAddress(0x10000), 0x10000),
        ])
        .unwrap()
    }

    fn queue(desc: u64, avail: u64, used: u64) -> QueueState {
        let mut q = QueueState::default();
        for (r, a) in [
            (&mut q.desc, desc),
            (&mut q.avail, avail),
            (&mut q.used, used),
        ] {
            r.write_half(false, a as u32);
            r.write_half(true, (a >> 32) as u32);
        }
        q
    }

    #[test]
    fn sizes() {
        for n in [1, 2, 128, 256] {
            assert!(valid_size(n));
        }
        for n in [0, 3, 255, 512, u32::MAX] {
            assert!(!valid_size(n));
        }
    }

    #[test]
    fn rings_must_be_set_aligned_and_inside_one_region() {
        let m = mem();
        assert_eq!(queue(0, 0x1000, 0x2000).check(&m), Ok(()));
        assert_eq!(
            QueueState::default().check(&m),
            Err(QueueError::AddressUnset("descriptor"))
        );
        assert_eq!(
            queue(8, 0x1000, 0x2000).check(&m),
            Err(QueueError::Misaligned("descriptor", 8))
        );
        assert_eq!(
            queue(0, 0x1001, 0x2000).check(&m),
            Err(QueueError::Misaligned("available", 0x1001))
        );
        // Straddles the two regions.
        assert_eq!(
            queue(0, 0x1000, 0xfc00).check(&m),
            Err(QueueError::OutsideMemory("used", 0xfc00))
        );
        assert_eq!(
            queue(0x2_0000, 0x1000, 0x2000).check(&m),
            Err(QueueError::OutsideMemory("descriptor", 0x2_0000))
        );
        assert_eq!(
            queue(u64::MAX - 15, 0x1000, 0x2000).check(&m),
            Err(QueueError::OutsideMemory("descriptor", u64::MAX - 15))
        );
    }
}
