//! The session's allocation table: every device range the guest may name.
//!
//! Device pointers travel untranslated (kernels embed them), so the table is
//! what stands between a guest and memory it does not own: a copy or memset
//! runs only if its whole range lies inside one region the session holds,
//! an allocation or a module global. The table also enforces the session's
//! device memory limit, before the driver is asked for anything.

use std::collections::BTreeMap;

use protocol::cuda::result::{INVALID_VALUE, OUT_OF_MEMORY};
use protocol::cuda::Handle;

/// Who owns a region, and so when it goes away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// `cuMemAlloc`: freed by `cuMemFree` or with its context.
    Alloc,
    /// A module global: goes with its module.
    Global {
        /// The module's handle.
        module: Handle,
    },
}

/// One device range the session may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// First address.
    pub base: u64,
    /// Bytes.
    pub size: u64,
    /// Device ordinal.
    pub device: u32,
    /// The guest context it was made in.
    pub ctx: Handle,
    /// Who owns it.
    pub owner: Owner,
    /// A number unique within the session (`CU_POINTER_ATTRIBUTE_BUFFER_ID`).
    pub id: u64,
}

impl Region {
    /// One past the last address (regions never wrap: checked on insert).
    pub fn end(&self) -> u64 {
        self.base + self.size
    }
}

/// The session's regions and the bytes its allocations hold.
#[derive(Debug)]
pub struct MemTable {
    regions: BTreeMap<u64, Region>,
    /// Regions that are allocations (counted as they come and go: the
    /// object limit is checked on every creation).
    allocs: usize,
    used: u64,
    limit: u64,
    next_id: u64,
}

impl MemTable {
    /// An empty table allowing `limit` bytes of allocations.
    pub fn new(limit: u64) -> Self {
        MemTable {
            regions: BTreeMap::new(),
            allocs: 0,
            used: 0,
            limit,
            next_id: 1,
        }
    }

    /// Bytes the session's allocations hold.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// The session's limit.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes the session could still allocate.
    pub fn available(&self) -> u64 {
        self.limit.saturating_sub(self.used)
    }

    /// Allocations (regions counted against the object limit).
    pub fn allocations(&self) -> usize {
        self.allocs
    }

    /// Fails with `CUDA_ERROR_OUT_OF_MEMORY` unless `size` more bytes fit.
    pub fn reserve(&self, size: u64) -> Result<(), i32> {
        match self.used.checked_add(size) {
            Some(total) if total <= self.limit => Ok(()),
            _ => Err(OUT_OF_MEMORY),
        }
    }

    /// Records a region the driver handed out. Refuses (with
    /// `CUDA_ERROR_INVALID_VALUE`) one that wraps or overlaps another, which
    /// a correct driver never produces.
    pub fn insert(
        &mut self,
        base: u64,
        size: u64,
        device: u32,
        ctx: Handle,
        owner: Owner,
    ) -> Result<Region, i32> {
        let end = base.checked_add(size).ok_or(INVALID_VALUE)?;
        let before = self.regions.range(..end).next_back();
        if before.is_some_and(|(_, r)| r.end() > base) {
            return Err(INVALID_VALUE);
        }
        let region = Region {
            base,
            size,
            device,
            ctx,
            owner,
            id: self.next_id,
        };
        self.next_id += 1;
        if owner == Owner::Alloc {
            self.used += size;
            self.allocs += 1;
        }
        self.regions.insert(base, region);
        Ok(region)
    }

    /// The region holding all of `ptr..ptr+len` (at least one byte), or
    /// `CUDA_ERROR_INVALID_VALUE`.
    pub fn find(&self, ptr: u64, len: u64) -> Result<&Region, i32> {
        let end = ptr.checked_add(len.max(1)).ok_or(INVALID_VALUE)?;
        match self.regions.range(..=ptr).next_back() {
            Some((_, r)) if end <= r.end() => Ok(r),
            _ => Err(INVALID_VALUE),
        }
    }

    /// Removes the allocation starting exactly at `base` (`cuMemFree`).
    pub fn remove_alloc(&mut self, base: u64) -> Result<Region, i32> {
        match self.regions.get(&base) {
            Some(r) if r.owner == Owner::Alloc => {
                let r = *r;
                self.regions.remove(&base);
                self.used -= r.size;
                self.allocs -= 1;
                Ok(r)
            }
            _ => Err(INVALID_VALUE),
        }
    }

    /// True when the module already has a region at `base`.
    pub fn has_global(&self, base: u64, module: Handle) -> bool {
        self.regions
            .get(&base)
            .is_some_and(|r| r.owner == Owner::Global { module })
    }

    /// Removes and returns every region `drop` selects.
    pub fn remove_where(&mut self, mut drop: impl FnMut(&Region) -> bool) -> Vec<Region> {
        let gone: Vec<Region> = self.regions.values().filter(|r| drop(r)).copied().collect();
        for r in &gone {
            self.regions.remove(&r.base);
            if r.owner == Owner::Alloc {
                self.used -= r.size;
                self.allocs -= 1;
            }
        }
        gone
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ranges_must_lie_inside_one_region() {
        let mut t = MemTable::new(u64::MAX);
        t.insert(0x1000, 0x100, 0, 1, Owner::Alloc).unwrap();
        t.insert(0x1100, 0x100, 0, 1, Owner::Alloc).unwrap();
        assert_eq!(t.find(0x1000, 0x100).unwrap().base, 0x1000);
        assert_eq!(t.find(0x10ff, 1).unwrap().base, 0x1000);
        assert_eq!(t.find(0x1180, 0x80).unwrap().base, 0x1100);
        // Spans two adjacent allocations: not one region.
        assert_eq!(t.find(0x10f0, 0x20), Err(INVALID_VALUE));
        assert_eq!(t.find(0x0fff, 2), Err(INVALID_VALUE));
        assert_eq!(t.find(0x1200, 1), Err(INVALID_VALUE));
        assert_eq!(t.find(u64::MAX, 2), Err(INVALID_VALUE));
        // Zero length still needs its address inside a region.
        assert!(t.find(0x1000, 0).is_ok());
        assert_eq!(t.find(0x2000, 0), Err(INVALID_VALUE));
    }

    #[test]
    fn limit_counts_allocations_not_globals() {
        let mut t = MemTable::new(1000);
        assert_eq!(t.reserve(1001), Err(OUT_OF_MEMORY));
        t.reserve(600).unwrap();
        t.insert(0x1000, 600, 0, 1, Owner::Alloc).unwrap();
        assert_eq!(t.reserve(401), Err(OUT_OF_MEMORY));
        assert_eq!(t.reserve(u64::MAX), Err(OUT_OF_MEMORY));
        t.insert(0x9000, 4096, 0, 1, Owner::Global { module: 5 })
            .unwrap();
        assert_eq!(t.used(), 600);
        assert_eq!(t.available(), 400);
        assert_eq!(t.allocations(), 1);
        t.remove_alloc(0x1000).unwrap();
        assert_eq!(t.used(), 0);
    }

    #[test]
    fn free_needs_the_exact_start_of_an_allocation() {
        let mut t = MemTable::new(u64::MAX);
        t.insert(0x1000, 0x100, 0, 1, Owner::Alloc).unwrap();
        t.insert(0x2000, 0x100, 0, 1, Owner::Global { module: 9 })
            .unwrap();
        assert_eq!(t.remove_alloc(0x1001), Err(INVALID_VALUE));
        assert_eq!(t.remove_alloc(0x2000), Err(INVALID_VALUE));
        assert!(t.has_global(0x2000, 9));
        assert!(!t.has_global(0x2000, 8));
        assert_eq!(t.remove_alloc(0x1000).unwrap().size, 0x100);
        assert_eq!(t.remove_alloc(0x1000), Err(INVALID_VALUE));
    }

    #[test]
    fn overlapping_or_wrapping_regions_are_refused() {
        let mut t = MemTable::new(u64::MAX);
        t.insert(0x1000, 0x100, 0, 1, Owner::Alloc).unwrap();
        assert!(t.insert(0x10ff, 1, 0, 1, Owner::Alloc).is_err());
        assert!(t.insert(0x0f00, 0x101, 0, 1, Owner::Alloc).is_err());
        assert!(t.insert(u64::MAX, 2, 0, 1, Owner::Alloc).is_err());
        assert!(t.insert(0x0f00, 0x100, 0, 1, Owner::Alloc).is_ok());
    }

    #[test]
    fn remove_where_gives_back_memory() {
        let mut t = MemTable::new(u64::MAX);
        t.insert(0x1000, 10, 0, 1, Owner::Alloc).unwrap();
        t.insert(0x2000, 20, 0, 2, Owner::Alloc).unwrap();
        t.insert(0x3000, 30, 0, 1, Owner::Global { module: 4 })
            .unwrap();
        let gone = t.remove_where(|r| r.ctx == 1);
        assert_eq!(gone.len(), 2);
        assert_eq!(t.used(), 20);
        let ids: Vec<u64> = gone.iter().map(|r| r.id).collect();
        assert_eq!(ids, vec![1, 3]);
        assert_eq!(t.allocations(), 1);
    }

    #[test]
    fn allocations_are_counted_through_every_change() {
        let mut t = MemTable::new(u64::MAX);
        let count = |t: &MemTable| {
            t.regions
                .values()
                .filter(|r| r.owner == Owner::Alloc)
                .count()
        };
        for i in 0..8u64 {
            t.insert(0x1000 * (i + 1), 0x10, 0, i % 3, Owner::Alloc)
                .unwrap();
            t.insert(
                0x100_000 + 0x1000 * i,
                0x10,
                0,
                1,
                Owner::Global { module: i },
            )
            .unwrap();
        }
        // A refused insert changes nothing.
        assert!(t.insert(0x1000, 1, 0, 1, Owner::Alloc).is_err());
        assert_eq!((t.allocations(), count(&t)), (8, 8));
        t.remove_alloc(0x1000).unwrap();
        assert!(t.remove_alloc(0x100_000).is_err());
        assert_eq!((t.allocations(), count(&t)), (7, 7));
        t.remove_where(|r| r.ctx == 1);
        assert_eq!(t.allocations(), count(&t));
        t.remove_where(|_| true);
        assert_eq!((t.allocations(), t.used()), (0, 0));
    }
}
