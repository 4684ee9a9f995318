//! The host-allocation heap: a first-fit allocator of page-aligned blocks
//! over one range of the shared arena.
//!
//! `cuMemAllocHost` and `cuMemHostAlloc` hand out blocks of this range, so
//! copies from and to them need no staging copy: the transport points the
//! chain's descriptors at the block itself and the daemon reads or writes it
//! in place. The heap only does offset arithmetic; the arena owns the
//! memory.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

/// Allocation granule and alignment: a page, as the native driver's pinned
/// allocations are page-aligned.
pub const HEAP_GRAIN: usize = 4096;

/// A first-fit allocator over a byte range, with coalescing frees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostHeap {
    region: Range<usize>,
    /// Free blocks: start offset → length. Adjacent free blocks are merged.
    free: BTreeMap<usize, usize>,
    /// Live blocks: start offset → length.
    live: HashMap<usize, usize>,
}

impl HostHeap {
    /// A heap over `region` (offsets into the arena), shrunk inwards to
    /// whole granules.
    pub fn new(region: Range<usize>) -> Self {
        let start = region.start.div_ceil(HEAP_GRAIN) * HEAP_GRAIN;
        let end = region.end / HEAP_GRAIN * HEAP_GRAIN;
        let region = start..end.max(start);
        let mut free = BTreeMap::new();
        if !region.is_empty() {
            free.insert(region.start, region.len());
        }
        HostHeap {
            region,
            free,
            live: HashMap::new(),
        }
    }

    /// The range the heap manages.
    pub fn region(&self) -> Range<usize> {
        self.region.clone()
    }

    /// Allocates at least `len` bytes (rounded up to [`HEAP_GRAIN`]);
    /// `None` when `len` is 0 or no free block is large enough.
    pub fn alloc(&mut self, len: usize) -> Option<Range<usize>> {
        if len == 0 {
            return None;
        }
        let len = len.checked_next_multiple_of(HEAP_GRAIN)?;
        let (&start, &free_len) = self.free.iter().find(|(_, &n)| n >= len)?;
        self.free.remove(&start);
        if free_len > len {
            self.free.insert(start + len, free_len - len);
        }
        self.live.insert(start, len);
        Some(start..start + len)
    }

    /// Frees the block starting at `start`; returns its range, or `None`
    /// if no live block starts there.
    pub fn free(&mut self, start: usize) -> Option<Range<usize>> {
        let len = self.live.remove(&start)?;
        let (mut s, mut n) = (start, len);
        if let Some((&prev, &prev_len)) = self.free.range(..start).next_back() {
            if prev + prev_len == start {
                self.free.remove(&prev);
                s = prev;
                n += prev_len;
            }
        }
        if let Some(next_len) = self.free.remove(&(start + len)) {
            n += next_len;
        }
        self.free.insert(s, n);
        Some(start..start + len)
    }

    /// The live block containing `offset`, if any.
    pub fn block_of(&self, offset: usize) -> Option<Range<usize>> {
        // Live blocks are few (pinned buffers); a scan keeps the heap simple.
        self.live
            .iter()
            .find(|(&s, &n)| (s..s + n).contains(&offset))
            .map(|(&s, &n)| s..s + n)
    }

    /// Bytes in live blocks.
    pub fn used(&self) -> usize {
        self.live.values().sum()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn allocations_are_aligned_disjoint_and_bounded() {
        let mut h = HostHeap::new(100..(100 + 16 * HEAP_GRAIN));
        assert_eq!(h.region(), HEAP_GRAIN..16 * HEAP_GRAIN);
        let a = h.alloc(1).unwrap();
        let b = h.alloc(HEAP_GRAIN + 1).unwrap();
        assert_eq!(a.len(), HEAP_GRAIN);
        assert_eq!(b.len(), 2 * HEAP_GRAIN);
        assert_eq!(a.start % HEAP_GRAIN, 0);
        assert!(a.end <= b.start || b.end <= a.start);
        assert_eq!(h.alloc(0), None);
        assert_eq!(h.alloc(13 * HEAP_GRAIN), None, "only 12 pages are left");
        assert!(h.alloc(12 * HEAP_GRAIN).is_some());
        assert_eq!(h.alloc(1), None);
        assert_eq!(h.alloc(usize::MAX), None);
    }

    #[test]
    fn frees_coalesce_so_the_whole_region_is_reusable() {
        let mut h = HostHeap::new(0..8 * HEAP_GRAIN);
        let blocks: Vec<_> = (0..8).map(|_| h.alloc(HEAP_GRAIN).unwrap()).collect();
        assert_eq!(h.used(), 8 * HEAP_GRAIN);
        // Free in an order that needs merging on both sides.
        for i in [1, 3, 2, 0, 7, 5, 6, 4] {
            assert_eq!(h.free(blocks[i].start), Some(blocks[i].clone()));
        }
        assert_eq!(h.used(), 0);
        assert_eq!(h.alloc(8 * HEAP_GRAIN), Some(0..8 * HEAP_GRAIN));
    }

    #[test]
    fn unknown_frees_and_lookups_are_refused() {
        let mut h = HostHeap::new(0..4 * HEAP_GRAIN);
        let a = h.alloc(2 * HEAP_GRAIN).unwrap();
        assert_eq!(h.free(a.start + 1), None);
        assert_eq!(h.block_of(a.start + 5), Some(a.clone()));
        assert_eq!(h.block_of(a.end), None);
        assert_eq!(h.free(a.start), Some(a.clone()));
        assert_eq!(h.free(a.start), None, "double free");
        assert_eq!(h.block_of(a.start), None);
    }
}
