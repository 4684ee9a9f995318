//! The driver side of a split virtqueue, laid out in the shared arena.
//!
//! Each queue occupies [`RING_STRIDE`] bytes: the descriptor table, the
//! available ring (with `used_event` at its end) and the used ring (with
//! `avail_event` at its end), each on its own page. The caller places each
//! chain at a descriptor index of its choosing ([`SplitRing::publish_at`]):
//! a lone synchronous chain uses descriptors `0..n`, and the few chains of a
//! pipelined transfer each own a fixed, disjoint range, so no free list is
//! needed. The device completes a queue's chains in order.
//!
//! Ordering: descriptors and the avail slot are written before the Release
//! store of `avail.idx`; `used.idx` is read with Acquire before the used
//! element and the response bytes. With `VIRTIO_RING_F_EVENT_IDX`, the
//! driver kicks only when `vring_need_event(avail_event, new, old)` holds,
//! and asks for a call (by writing `used_event`) only once it stops polling.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{fence, AtomicU16, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use vmm_sys_util::eventfd::EventFd;

use super::LinkError;

const PAGE: usize = 4096;
const DESC_LEN: usize = 16;
/// The descriptor continues via its `next` field.
const VIRTQ_DESC_F_NEXT: u16 = 1;
/// The device writes into this buffer.
const VIRTQ_DESC_F_WRITE: u16 = 2;
/// Used-ring flag: the device does not need kicks (without EVENT_IDX).
const VIRTQ_USED_F_NO_NOTIFY: u16 = 1;

const fn page_up(n: usize) -> usize {
    n.div_ceil(PAGE) * PAGE
}

const QSIZE: usize = protocol::QUEUE_SIZE as usize;
const DESC_OFF: usize = 0;
const AVAIL_OFF: usize = page_up(DESC_LEN * QSIZE);
const USED_OFF: usize = AVAIL_OFF + page_up(6 + 2 * QSIZE);
/// Bytes of arena one queue of [`protocol::QUEUE_SIZE`] entries occupies.
pub const RING_STRIDE: usize = USED_OFF + page_up(6 + 8 * QSIZE);

// The three parts fit their pages and keep the arena's page alignment.
const _: () = {
    assert!(RING_STRIDE.is_multiple_of(PAGE));
    assert!(AVAIL_OFF >= DESC_LEN * QSIZE);
    assert!(USED_OFF - AVAIL_OFF >= 6 + 2 * QSIZE);
    assert!(RING_STRIDE - USED_OFF >= 6 + 8 * QSIZE);
};

/// `vring_need_event` from the virtio specification: true if moving the
/// index from `old` to `new` crosses `event`.
pub fn need_event(event: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
}

/// One buffer of a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Desc {
    /// Guest-physical address.
    pub addr: u64,
    /// Length in bytes.
    pub len: u32,
    /// The device writes it (otherwise it reads it).
    pub write: bool,
}

/// How long to wait for a completion.
#[derive(Clone, Copy, Debug)]
pub struct WaitPolicy {
    /// Busy-poll the used ring this long before sleeping.
    pub spin: Duration,
    /// Give up (the daemon is stuck) after this long in total.
    pub timeout: Duration,
}

/// The driver's view of one split virtqueue.
pub struct SplitRing {
    base: *mut u8,
    size: u16,
    event_idx: bool,
    next_avail: u16,
    last_used: u16,
}

// SAFETY: the ring's pointer targets shared memory owned by the transport's
// arena, which lives as long as the ring; nothing about it is thread-bound.
unsafe impl Send for SplitRing {}

impl std::fmt::Debug for SplitRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SplitRing")
            .field("base", &self.base)
            .field("size", &self.size)
            .field("event_idx", &self.event_idx)
            .field("next_avail", &self.next_avail)
            .field("last_used", &self.last_used)
            .finish()
    }
}

impl SplitRing {
    /// Creates the driver side over ring memory at `base`.
    ///
    /// # Safety
    /// `base` must be 8-byte aligned, point to [`RING_STRIDE`] zeroed bytes
    /// that stay mapped for the ring's lifetime, and be accessed otherwise
    /// only by the device (through the virtqueue protocol).
    pub unsafe fn new(base: *mut u8, event_idx: bool) -> Self {
        SplitRing {
            base,
            size: protocol::QUEUE_SIZE,
            event_idx,
            next_avail: 0,
            last_used: 0,
        }
    }

    /// Entries in the ring.
    pub fn size(&self) -> u16 {
        self.size
    }

    /// This process's addresses of (descriptor table, avail ring, used
    /// ring), for `SET_VRING_ADDR`.
    pub fn addresses(&self) -> (u64, u64, u64) {
        let b = self.base as u64;
        (
            b + DESC_OFF as u64,
            b + AVAIL_OFF as u64,
            b + USED_OFF as u64,
        )
    }

    fn u16_at(&self, off: usize) -> &AtomicU16 {
        debug_assert!(off + 2 <= RING_STRIDE && off.is_multiple_of(2));
        // SAFETY: `off` is a fixed, 2-aligned offset inside the ring memory
        // (the callers compute it from the layout constants and a slot index
        // below `size`); the memory is valid per `new`'s contract, and the
        // device accesses it only atomically-sized, so an atomic view is
        // the right one.
        unsafe { &*self.base.add(off).cast::<AtomicU16>() }
    }

    fn u32_at(&self, off: usize) -> &AtomicU32 {
        debug_assert!(off + 4 <= RING_STRIDE && off.is_multiple_of(4));
        // SAFETY: as in `u16_at`, with a 4-aligned offset.
        unsafe { &*self.base.add(off).cast::<AtomicU32>() }
    }

    fn write_desc(&mut self, i: usize, d: &Desc, next: Option<u16>) {
        let mut flags = if d.write { VIRTQ_DESC_F_WRITE } else { 0 };
        if next.is_some() {
            flags |= VIRTQ_DESC_F_NEXT;
        }
        let mut raw = [0u8; DESC_LEN];
        raw[0..8].copy_from_slice(&d.addr.to_le_bytes());
        raw[8..12].copy_from_slice(&d.len.to_le_bytes());
        raw[12..14].copy_from_slice(&flags.to_le_bytes());
        raw[14..16].copy_from_slice(&next.unwrap_or(0).to_le_bytes());
        assert!(i < self.size as usize);
        // SAFETY: descriptor `i < size` lies in the descriptor table inside
        // the ring memory. The device reads it only after the Release store
        // of `avail.idx` that publishes it, and no chain in flight uses it
        // (the caller of `publish_at` guarantees that), so nobody reads it
        // concurrently.
        unsafe {
            std::ptr::copy_nonoverlapping(
                raw.as_ptr(),
                self.base.add(DESC_OFF + i * DESC_LEN),
                DESC_LEN,
            )
        }
    }

    /// Makes `chain` available to the device in descriptors `0..n`.
    /// Returns whether the device must be kicked.
    ///
    /// Panics if the chain is empty or longer than the ring (the transport
    /// checks this first).
    pub fn publish(&mut self, chain: &[Desc]) -> bool {
        self.publish_at(0, chain)
    }

    /// Makes `chain` available to the device in descriptors
    /// `head..head + n`; its used element will carry `head` as its id.
    /// Returns whether the device must be kicked.
    ///
    /// The caller guarantees that no chain still in flight uses any of
    /// those descriptors. Panics if the chain is empty or does not fit the
    /// table from `head` (the transport checks this first).
    pub fn publish_at(&mut self, head: u16, chain: &[Desc]) -> bool {
        let head = head as usize;
        assert!(!chain.is_empty() && head + chain.len() <= self.size as usize);
        for (i, d) in chain.iter().enumerate() {
            let next = (i + 1 < chain.len()).then_some((head + i + 1) as u16);
            self.write_desc(head + i, d, next);
        }
        let slot = (self.next_avail % self.size) as usize;
        self.u16_at(AVAIL_OFF + 4 + 2 * slot)
            .store(head as u16, Ordering::Relaxed);
        let old = self.next_avail;
        let new = old.wrapping_add(1);
        // Release: descriptors and the slot are visible before the index.
        self.u16_at(AVAIL_OFF + 2).store(new, Ordering::Release);
        self.next_avail = new;
        // The index store must be visible before we read the device's
        // notification state (store→load ordering needs a full fence).
        fence(Ordering::SeqCst);
        if self.event_idx {
            let avail_event = self.u16_at(USED_OFF + 4 + 8 * self.size as usize);
            need_event(avail_event.load(Ordering::Relaxed), new, old)
        } else {
            self.u16_at(USED_OFF).load(Ordering::Relaxed) & VIRTQ_USED_F_NO_NOTIFY == 0
        }
    }

    /// Takes the next used element `(id, len)`, if the device posted one.
    pub fn take_used(&mut self) -> Option<(u32, u32)> {
        let idx = self.u16_at(USED_OFF + 2).load(Ordering::Acquire);
        if idx == self.last_used {
            return None;
        }
        let slot = (self.last_used % self.size) as usize;
        let id = self.u32_at(USED_OFF + 4 + 8 * slot).load(Ordering::Relaxed);
        let len = self.u32_at(USED_OFF + 8 + 8 * slot).load(Ordering::Relaxed);
        self.last_used = self.last_used.wrapping_add(1);
        Some((id, len))
    }

    /// Asks the device for a call when the next used element arrives.
    fn arm_call(&self) {
        if self.event_idx {
            self.u16_at(AVAIL_OFF + 4 + 2 * self.size as usize)
                .store(self.last_used, Ordering::Relaxed);
        }
        // Our used_event store must be visible before we re-check used.idx,
        // or a completion in between would neither be seen nor signalled.
        fence(Ordering::SeqCst);
    }

    /// Waits for the next used element: busy-polls for `policy.spin`, then
    /// sleeps on `call`, watching `sock` (the vhost-user socket) so that a
    /// daemon that dies gives [`LinkError::Closed`] at once.
    pub fn wait_used(
        &mut self,
        call: &EventFd,
        sock: RawFd,
        policy: WaitPolicy,
    ) -> Result<(u32, u32), LinkError> {
        let start = Instant::now();
        loop {
            if let Some(u) = self.take_used() {
                return Ok(u);
            }
            if start.elapsed() >= policy.spin {
                break;
            }
            // Yield rather than spin: when the cores are all busy, the
            // thread we wait for (the peer, or the runtime's workers it
            // waits for) may be queued behind this one on the same core.
            std::thread::yield_now();
        }
        loop {
            self.arm_call();
            if let Some(u) = self.take_used() {
                return Ok(u);
            }
            let waited = start.elapsed();
            if waited >= policy.timeout {
                return Err(LinkError::NoAnswer { waited });
            }
            // Wake up at least once a second to re-check the deadline.
            let slice = (policy.timeout - waited).min(Duration::from_secs(1));
            let mut fds = [
                libc::pollfd {
                    fd: call.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: sock,
                    events: libc::POLLRDHUP,
                    revents: 0,
                },
            ];
            let ms = slice.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
            // SAFETY: `fds` is a live array of two initialized pollfd
            // structs and the count passed matches its length.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(LinkError::Wait(e));
            }
            let hup = libc::POLLHUP | libc::POLLERR | libc::POLLNVAL | libc::POLLRDHUP;
            if fds[1].revents & hup != 0 {
                // A completion may have raced with the hangup.
                if let Some(u) = self.take_used() {
                    return Ok(u);
                }
                return Err(LinkError::Closed);
            }
            if fds[0].revents & libc::POLLIN != 0 {
                // Reset the counter; the eventfd is non-blocking, and a
                // spurious or stale call just loops once more.
                let _ = call.read();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn need_event_matches_spec() {
        assert!(need_event(0, 1, 0));
        assert!(!need_event(1, 1, 0));
        assert!(need_event(5, 10, 0));
        assert!(!need_event(10, 10, 0));
        assert!(need_event(u16::MAX, 0, u16::MAX));
    }

    #[test]
    fn publish_and_take_used_with_fake_device() {
        let mut mem = vec![0u64; RING_STRIDE / 8];
        // SAFETY: `mem` is 8-aligned, zeroed, RING_STRIDE bytes, outlives
        // the ring, and this test plays the device itself.
        let mut ring = unsafe { SplitRing::new(mem.as_mut_ptr().cast(), true) };
        let chain = [
            Desc {
                addr: 0x1000,
                len: 32,
                write: false,
            },
            Desc {
                addr: 0x2000,
                len: 64,
                write: true,
            },
        ];
        assert!(ring.publish(&chain), "first chain must kick");
        let base = mem.as_mut_ptr().cast::<u8>();
        // SAFETY: reading/writing inside `mem` at layout offsets, single thread.
        unsafe {
            assert_eq!(*base.add(AVAIL_OFF + 2).cast::<u16>(), 1);
            let d0 = std::slice::from_raw_parts(base, 32);
            assert_eq!(&d0[0..8], &0x1000u64.to_le_bytes());
            assert_eq!(&d0[12..14], &VIRTQ_DESC_F_NEXT.to_le_bytes());
            assert_eq!(&d0[16 + 12..16 + 14], &VIRTQ_DESC_F_WRITE.to_le_bytes());
        }
        assert_eq!(ring.take_used(), None);
        // SAFETY: as above; the fake device posts used element (0, 17) and
        // leaves avail_event at 0 so that the next chain needs no kick.
        unsafe {
            *base.add(USED_OFF + 4).cast::<u32>() = 0;
            *base.add(USED_OFF + 8).cast::<u32>() = 17;
            *base.add(USED_OFF + 2).cast::<u16>() = 1;
        }
        assert_eq!(ring.take_used(), Some((0, 17)));
        assert!(
            !ring.publish(&chain),
            "avail_event 0 already passed: no kick"
        );
    }

    #[test]
    fn publish_at_places_chains_side_by_side() {
        let mut mem = vec![0u64; RING_STRIDE / 8];
        // SAFETY: as in the test above.
        let mut ring = unsafe { SplitRing::new(mem.as_mut_ptr().cast(), true) };
        let d = |addr| Desc {
            addr,
            len: 8,
            write: false,
        };
        ring.publish_at(64, &[d(0x1000), d(0x2000)]);
        ring.publish_at(128, &[d(0x3000)]);
        let base = mem.as_ptr().cast::<u8>();
        // SAFETY: reading inside `mem` at layout offsets, single thread.
        unsafe {
            let u16_at = |off: usize| *base.add(off).cast::<u16>();
            assert_eq!(u16_at(AVAIL_OFF + 2), 2, "two chains available");
            assert_eq!(u16_at(AVAIL_OFF + 4), 64, "first chain's head");
            assert_eq!(u16_at(AVAIL_OFF + 6), 128, "second chain's head");
            let desc = |i: usize| std::slice::from_raw_parts(base.add(i * DESC_LEN), DESC_LEN);
            assert_eq!(&desc(64)[0..8], &0x1000u64.to_le_bytes());
            assert_eq!(&desc(64)[12..14], &VIRTQ_DESC_F_NEXT.to_le_bytes());
            assert_eq!(&desc(64)[14..16], &65u16.to_le_bytes(), "next is absolute");
            assert_eq!(&desc(65)[0..8], &0x2000u64.to_le_bytes());
            assert_eq!(&desc(65)[12..14], &0u16.to_le_bytes(), "chain ends");
            assert_eq!(&desc(128)[0..8], &0x3000u64.to_le_bytes());
            assert_eq!(
                &desc(0)[0..8],
                &0u64.to_le_bytes(),
                "descriptor 0 untouched"
            );
        }
    }
}
