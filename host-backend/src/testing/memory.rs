//! Emulated device memory: blocks (allocations and module globals) over
//! sparse zero-filled pages in host RAM.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

use protocol::cuda::result::INVALID_VALUE;

use crate::executor::cuda::backend::CuResult;

/// Emulated device memory: blocks (allocations and module globals) over
/// sparse zero-filled pages, made on first write, so that large
/// allocations cost host memory only where they are written.
#[derive(Debug, Default)]
pub(super) struct Memory {
    blocks: BTreeMap<u64, u64>,
    pages: HashMap<u64, Box<[u8]>>,
}

/// Where emulated device addresses start. One counter for the process, so
/// that sessions get disjoint addresses as they do under unified
/// addressing on a real GPU.
static NEXT_ADDRESS: AtomicU64 = AtomicU64::new(0x7f00_0000_0000);

/// Bytes per emulated page.
pub(super) const PAGE: u64 = 64 << 10;

impl Memory {
    pub(super) fn alloc(&mut self, size: u64) -> u64 {
        // Whole pages plus a guard page: blocks never share a page, and
        // their addresses are aligned as the driver's (at least 256 bytes).
        let span = size.div_ceil(PAGE).saturating_add(1).saturating_mul(PAGE);
        let base = NEXT_ADDRESS.fetch_add(span, Ordering::Relaxed);
        self.blocks.insert(base, size);
        base
    }

    pub(super) fn free(&mut self, base: u64) -> CuResult<()> {
        let size = self.blocks.remove(&base).ok_or(INVALID_VALUE)?;
        let end = base.saturating_add(size);
        self.pages
            .retain(|&p, _| p.saturating_add(PAGE) <= base || p >= end);
        Ok(())
    }

    pub(super) fn bytes_in_use(&self) -> u64 {
        self.blocks.values().sum()
    }

    /// Host bytes backing the memory (the pages written so far).
    pub(super) fn resident_bytes(&self) -> u64 {
        self.pages.len() as u64 * PAGE
    }

    /// Checks that `ptr..ptr+len` lies in one block.
    pub(super) fn check(&self, ptr: u64, len: u64) -> CuResult<()> {
        let (base, size) = self.blocks.range(..=ptr).next_back().ok_or(INVALID_VALUE)?;
        match ptr.checked_add(len) {
            Some(end) if end <= base.saturating_add(*size) => Ok(()),
            _ => Err(INVALID_VALUE),
        }
    }

    /// Calls `f(page, offset in page, range in the caller's buffer)` for
    /// each page piece of `ptr..ptr+len`.
    fn pieces(ptr: u64, len: usize, mut f: impl FnMut(u64, usize, std::ops::Range<usize>)) {
        let mut done = 0usize;
        while done < len {
            let at = ptr + done as u64;
            let page = at - at % PAGE;
            let off = (at - page) as usize;
            let n = (PAGE as usize - off).min(len - done);
            f(page, off, done..done + n);
            done += n;
        }
    }

    pub(super) fn write(&mut self, ptr: u64, data: &[u8]) -> CuResult<()> {
        self.check(ptr, data.len() as u64)?;
        let pages = &mut self.pages;
        Self::pieces(ptr, data.len(), |page, off, r| {
            let p = pages
                .entry(page)
                .or_insert_with(|| vec![0; PAGE as usize].into_boxed_slice());
            p[off..off + r.len()].copy_from_slice(&data[r]);
        });
        Ok(())
    }

    pub(super) fn read(&self, ptr: u64, out: &mut [u8]) -> CuResult<()> {
        self.check(ptr, out.len() as u64)?;
        Self::pieces(ptr, out.len(), |page, off, r| {
            let n = r.len();
            match self.pages.get(&page) {
                Some(p) => out[r].copy_from_slice(&p[off..off + n]),
                None => out[r].fill(0),
            }
        });
        Ok(())
    }

    /// Copies `size` bytes between blocks, a page-sized piece at a time.
    pub(super) fn copy(&mut self, dst: u64, src: u64, size: u64) -> CuResult<()> {
        self.check(src, size)?;
        self.check(dst, size)?;
        let mut buf = vec![0u8; PAGE as usize];
        let mut done = 0u64;
        while done < size {
            let n = (size - done).min(PAGE) as usize;
            self.read(src + done, &mut buf[..n])?;
            self.write(dst + done, &buf[..n])?;
            done += n as u64;
        }
        Ok(())
    }
}
