//! The shared-memory arena of direct mode.
//!
//! One memfd, mapped `MAP_SHARED` here and handed to the daemon with
//! `SET_MEM_TABLE` as a single region. It is laid out as
//!
//! ```text
//! [rings: NUM_QUEUES x ring::RING_STRIDE][request area][response area][bulk staging][host heap]
//! ```
//!
//! The host heap holds the program's host allocations (`cuMemAllocHost`,
//! `cuMemHostAlloc`; see [`super::heap`]). Bulk segments that lie in it are
//! not staged: their descriptors point at them, so the daemon reads and
//! writes them in place.
//!
//! A lone synchronous chain uses the whole request, response and staging
//! areas. The chains of a pipelined transfer are in flight together, so each
//! uses its own [`Slot`]: an equal, disjoint share of each of the three areas
//! (see [`Layout::slots`]). The two uses never overlap in time.
//!
//! Guest-physical addresses (what descriptors carry) are offsets from
//! [`ARENA_GPA`]; ring addresses given to `SET_VRING_ADDR` are this process's
//! virtual addresses.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};

use protocol::limits::{MAX_REQUEST_AREA_LEN, RESPONSE_AREA_LEN};

use super::ring::RING_STRIDE;

/// Guest-physical address of the arena's first byte.
pub const ARENA_GPA: u64 = 0x1_0000_0000;
/// Default arena size in MiB, without the host heap; `VCOMPUTE_ARENA_MB`
/// overrides it.
pub const DEFAULT_ARENA_MB: usize = 256;
/// Default host-heap size in MiB; `VCOMPUTE_HOST_MB` overrides it. The
/// memfd is sparse, so pages cost memory only once a program touches them.
pub const DEFAULT_HOST_MB: usize = 512;
/// Alignment of areas and bulk segments: a cache line, so that copies into
/// staging start aligned.
pub const SEGMENT_ALIGN: usize = 64;

/// Rounds `n` up to a multiple of [`SEGMENT_ALIGN`].
pub fn align_up(n: usize) -> usize {
    n.div_ceil(SEGMENT_ALIGN) * SEGMENT_ALIGN
}

/// Where each area lives in the arena, as byte ranges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Ring memory, [`RING_STRIDE`] bytes per queue.
    pub rings: Range<usize>,
    /// The request area (one readable descriptor).
    pub request: Range<usize>,
    /// The response area (one writable descriptor).
    pub response: Range<usize>,
    /// Bulk staging, shared by in- and out-bulk segments of one chain.
    pub staging: Range<usize>,
    /// The host heap (may be empty), page-aligned.
    pub host: Range<usize>,
}

impl Layout {
    /// Lays out an arena of `len` bytes for `queues` queues, the last
    /// `host_len` bytes (rounded down to pages) being the host heap, or
    /// `None` if it leaves no room for staging.
    pub fn new(len: usize, queues: usize, host_len: usize) -> Option<Self> {
        let rings = 0..queues.checked_mul(RING_STRIDE)?;
        let request = rings.end..rings.end.checked_add(align_up(MAX_REQUEST_AREA_LEN))?;
        let response = request.end..request.end.checked_add(align_up(RESPONSE_AREA_LEN))?;
        let host_start = len.checked_sub(host_len / 4096 * 4096)? / 4096 * 4096;
        let staging = response.end..host_start;
        (staging.start < staging.end).then_some(Layout {
            rings,
            request,
            response,
            staging,
            host: host_start..len,
        })
    }
}

/// One pipelined chain's share of the arena.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    /// Its request area.
    pub request: Range<usize>,
    /// Its response area.
    pub response: Range<usize>,
    /// Its bulk staging.
    pub staging: Range<usize>,
}

/// The `i`-th of `n` equal shares of `r`, each a multiple of
/// [`SEGMENT_ALIGN`] long (so every share starts aligned when `r` does).
fn share(r: &Range<usize>, n: usize, i: usize) -> Range<usize> {
    let len = r.len() / n / SEGMENT_ALIGN * SEGMENT_ALIGN;
    let start = r.start + i * len;
    start..start + len
}

impl Layout {
    /// Splits the request, response and staging areas into `n` disjoint
    /// slots of equal size, for `n` chains in flight at once. Empty if
    /// `n` is 0 or a share would be empty.
    pub fn slots(&self, n: usize) -> Vec<Slot> {
        let areas = [&self.request, &self.response, &self.staging];
        if n == 0 || areas.iter().any(|r| share(r, n, 0).is_empty()) {
            return Vec::new();
        }
        (0..n)
            .map(|i| Slot {
                request: share(&self.request, n, i),
                response: share(&self.response, n, i),
                staging: share(&self.staging, n, i),
            })
            .collect()
    }
}

/// A memfd mapped shared into this process.
pub struct Arena {
    file: File,
    base: *mut u8,
    len: usize,
}

// SAFETY: the arena owns its mapping; the raw pointer is only an address of
// memory that stays mapped until drop, valid from any thread.
unsafe impl Send for Arena {}

impl std::fmt::Debug for Arena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arena")
            .field("fd", &self.file.as_raw_fd())
            .field("base", &self.base)
            .field("len", &self.len)
            .finish()
    }
}

impl Arena {
    /// Creates and maps a memfd of `len` bytes (rounded up to a page).
    pub fn new(len: usize) -> io::Result<Self> {
        let len = len.div_ceil(4096) * 4096;
        if len == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty arena"));
        }
        // SAFETY: the name is a NUL-terminated literal; memfd_create has no
        // other memory-safety preconditions.
        let fd = unsafe { libc::memfd_create(c"vcompute-arena".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by memfd_create and is owned by
        // nobody else; the File takes ownership and closes it.
        let file = unsafe { File::from_raw_fd(fd) };
        file.set_len(len as u64)?;
        // SAFETY: a fresh shared mapping of a file we own and just sized to
        // `len`; the kernel picks the address, so nothing is overwritten.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Arena {
            file,
            base: base.cast(),
            len,
        })
    }

    /// The memfd backing the arena.
    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: an arena has at least one page.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// This process's address of the arena's first byte.
    pub fn base(&self) -> *mut u8 {
        self.base
    }

    /// Guest-physical address of byte `offset`.
    pub fn gpa(&self, offset: usize) -> u64 {
        ARENA_GPA + offset as u64
    }

    /// The arena offset of `len` bytes at address `addr`, if they lie
    /// within `area` (a range of arena offsets). Address arithmetic only.
    pub fn offset_in(&self, area: &Range<usize>, addr: usize, len: usize) -> Option<usize> {
        let off = addr.checked_sub(self.base as usize)?;
        let end = off.checked_add(len)?;
        (area.start <= off && end <= area.end && end <= self.len).then_some(off)
    }

    /// This process's address of byte `offset` (not checked).
    pub fn addr(&self, offset: usize) -> *mut u8 {
        self.base.wrapping_add(offset)
    }

    fn check(&self, offset: usize, len: usize) {
        assert!(
            offset.checked_add(len).is_some_and(|end| end <= self.len),
            "arena access {offset}+{len} beyond {}",
            self.len
        );
    }

    /// Copies `src` into the arena at `offset`.
    ///
    /// Panics if the range is outside the arena (the callers compute offsets
    /// from the layout, so this is an internal invariant).
    pub fn write(&mut self, offset: usize, src: &[u8]) {
        self.check(offset, src.len());
        // SAFETY: the range lies inside the live mapping (checked above);
        // `src` is ordinary process memory, so the two cannot overlap. The
        // daemon does not touch areas of a chain not yet made available.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.base.add(offset), src.len()) }
    }

    /// Copies bytes at `offset` out of the arena into `dst`.
    ///
    /// Panics if the range is outside the arena.
    pub fn read(&self, offset: usize, dst: &mut [u8]) {
        self.check(offset, dst.len());
        // SAFETY: the range lies inside the live mapping (checked above);
        // `dst` is ordinary process memory, so they cannot overlap. The
        // daemon has finished with the chain (its used entry was observed
        // with Acquire ordering) before this is called.
        unsafe { std::ptr::copy_nonoverlapping(self.base.add(offset), dst.as_mut_ptr(), dst.len()) }
    }
}

impl Arena {
    /// Gives the pages of `range` back to the kernel (they read as zeros
    /// afterwards). Best effort: the memory stays usable either way.
    pub fn discard(&self, range: &Range<usize>) {
        if range.is_empty() || range.end > self.len {
            return;
        }
        // SAFETY: fallocate on a memfd we own, within its size; punching a
        // hole only replaces the range's contents with zeros, which nothing
        // relies on (the range is a freed host allocation).
        unsafe {
            libc::fallocate(
                self.file.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                range.start as libc::off_t,
                range.len() as libc::off_t,
            );
        }
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` describe the mapping created in `new`, and
        // nothing borrowed from it outlives the arena (rings hold raw
        // pointers but are owned by the same transport and dropped with it).
        unsafe {
            libc::munmap(self.base.cast(), self.len);
        }
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn layout_orders_areas() {
        let l = Layout::new(256 << 20, 2, 0).expect("fits");
        assert_eq!(l.rings, 0..2 * RING_STRIDE);
        assert_eq!(l.request.start, l.rings.end);
        assert!(l.request.len() >= MAX_REQUEST_AREA_LEN);
        assert_eq!(l.response.start, l.request.end);
        assert!(l.response.len() >= RESPONSE_AREA_LEN);
        assert_eq!(l.staging, l.response.end..256 << 20);
        assert!(l.host.is_empty());
        let h = Layout::new(288 << 20, 2, 32 << 20).expect("fits");
        assert_eq!(h.staging, l.staging, "the heap comes on top of staging");
        assert_eq!(h.host, 256 << 20..288 << 20);
    }

    #[test]
    fn slots_are_disjoint_aligned_shares() {
        let l = Layout::new(64 << 20, 2, 0).expect("fits");
        let slots = l.slots(4);
        assert_eq!(slots.len(), 4);
        for (i, s) in slots.iter().enumerate() {
            for r in [&s.request, &s.response, &s.staging] {
                assert_eq!(r.start % SEGMENT_ALIGN, 0);
                assert!(!r.is_empty());
            }
            assert!(l.request.start <= s.request.start && s.request.end <= l.request.end);
            assert!(l.response.start <= s.response.start && s.response.end <= l.response.end);
            assert!(l.staging.start <= s.staging.start && s.staging.end <= l.staging.end);
            if let Some(next) = slots.get(i + 1) {
                assert!(s.request.end <= next.request.start);
                assert!(s.response.end <= next.response.start);
                assert!(s.staging.end <= next.staging.start);
            }
        }
        assert!(slots[0].staging.len() * 4 > l.staging.len() - 4 * SEGMENT_ALIGN);
        assert!(l.slots(0).is_empty());
        assert!(
            l.slots(usize::MAX / 2).is_empty(),
            "empty shares are refused"
        );
    }

    #[test]
    fn layout_rejects_tiny_arena() {
        assert_eq!(Layout::new(4 << 20, 2, 0), None);
        assert_eq!(Layout::new(64 << 20, 2, 64 << 20), None);
        assert_eq!(Layout::new(64 << 20, 2, 128 << 20), None);
    }

    #[test]
    fn arena_round_trips_bytes() {
        let mut a = Arena::new(1 << 20).expect("memfd");
        a.write(4096, b"hello");
        let mut out = [0u8; 5];
        a.read(4096, &mut out);
        assert_eq!(&out, b"hello");
        assert_eq!(a.gpa(4096), ARENA_GPA + 4096);
    }
}
