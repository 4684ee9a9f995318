//! The argument block of a kernel launch, laid out so that whatever the
//! driver reads stays inside it.
//!
//! `cuLaunchKernel` reads each argument at the size the *loaded* kernel
//! declares, through one pointer per parameter (`kernelParams`), or from
//! one buffer (`extra`). The layout the daemon launches with comes from
//! the driver when it has `cuFuncGetParamInfo` (CUDA 12.4), and otherwise
//! from the guest's own image (the PTX signature, the cubin's `.nv.info`),
//! which may lie: a fat binary can declare one signature in its PTX and
//! carry code with another, so the driver may follow more pointers, or
//! read more bytes behind each, than the layout accounts for. Read from
//! the guest's parameter buffer alone, that would be daemon memory folded
//! into kernel arguments, which the kernel can copy out to the guest.
//!
//! So the buffer is followed by zeros, and the pointer array by pointers
//! to those zeros, each as long as the driver's own limit on a kernel's
//! parameters ([`MAX_KERNEL_PARAM_BYTES`]: no kernel has more parameters,
//! or a larger one, than that): every read a launch can make lands in
//! this block, on the guest's bytes or on zeros.

use std::ffi::c_void;

use protocol::cuda::ParamInfo;
use protocol::limits::MAX_KERNEL_PARAM_BYTES;

/// The driver's limit on one kernel's parameter bytes.
const LIMIT: usize = MAX_KERNEL_PARAM_BYTES;

/// A reusable argument block (one per session backend).
pub(super) struct LaunchArgs {
    /// `2 * LIMIT` bytes: the packed parameters at the start, zeros from
    /// `LIMIT` on (and after the parameters).
    buf: Box<[u8]>,
    /// `LIMIT` pointers: one per parameter of the layout, the rest at the
    /// zeros of `buf`.
    ptrs: Box<[*mut c_void]>,
    /// Bytes of `buf` and entries of `ptrs` the last launch set.
    used: (usize, usize),
}

impl LaunchArgs {
    pub(super) fn new() -> Self {
        let mut buf = vec![0u8; 2 * LIMIT].into_boxed_slice();
        let zeros = buf.as_mut_ptr().wrapping_add(LIMIT).cast::<c_void>();
        LaunchArgs {
            buf,
            ptrs: vec![zeros; LIMIT].into_boxed_slice(),
            used: (0, 0),
        }
    }

    /// Puts `params` and `layout`'s pointers into the block. `None` when
    /// `params` exceeds the limit or the layout names more parameters, or
    /// ranges outside `params` (the session layer already refused those).
    pub(super) fn prepare(&mut self, params: &[u8], layout: Option<&[ParamInfo]>) -> Option<()> {
        self.clear();
        let layout = layout.unwrap_or_default();
        let inside = |p: &ParamInfo| {
            (p.offset as usize)
                .checked_add(p.size as usize)
                .is_some_and(|end| end <= params.len())
        };
        if params.len() > LIMIT || layout.len() > LIMIT || !layout.iter().all(inside) {
            return None;
        }
        self.buf.get_mut(..params.len())?.copy_from_slice(params);
        let base = self.buf.as_mut_ptr();
        for (slot, p) in self.ptrs.iter_mut().zip(layout) {
            *slot = base.wrapping_add(p.offset as usize).cast();
        }
        self.used = (params.len(), layout.len());
        Some(())
    }

    /// Restores the zeros and the pointers to them.
    fn clear(&mut self) {
        let (bytes, ptrs) = self.used;
        let zeros = self.buf.as_mut_ptr().wrapping_add(LIMIT).cast::<c_void>();
        if let Some(b) = self.buf.get_mut(..bytes) {
            b.fill(0);
        }
        if let Some(p) = self.ptrs.get_mut(..ptrs) {
            p.fill(zeros);
        }
        self.used = (0, 0);
    }

    /// The `kernelParams` array: `LIMIT` readable pointers.
    pub(super) fn kernel_params(&mut self) -> *mut *mut c_void {
        self.ptrs.as_mut_ptr()
    }

    /// The packed buffer (for `CU_LAUNCH_PARAM_BUFFER_POINTER`), with
    /// `2 * LIMIT` readable bytes behind it.
    pub(super) fn buffer(&mut self) -> *mut c_void {
        self.buf.as_mut_ptr().cast()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn p(offset: u32, size: u32) -> ParamInfo {
        ParamInfo { offset, size }
    }

    /// True when `LIMIT` bytes from `at` lie inside the block's buffer.
    fn readable(a: &LaunchArgs, at: *const c_void) -> bool {
        let start = a.buf.as_ptr() as usize;
        let at = at as usize;
        at >= start && at + LIMIT <= start + a.buf.len()
    }

    #[test]
    fn every_read_a_lying_layout_allows_stays_in_the_block() {
        let mut a = LaunchArgs::new();
        // The layout says one 4-byte parameter; the kernel the driver
        // loaded may have up to LIMIT parameters of up to LIMIT bytes.
        a.prepare(&[7, 7, 7, 7], Some(&[p(0, 4)])).unwrap();
        let ptrs = a.kernel_params();
        for i in 0..LIMIT {
            // SAFETY: `ptrs` holds LIMIT entries.
            let at = unsafe { *ptrs.add(i) };
            assert!(readable(&a, at), "pointer {i} leads outside the block");
        }
        // SAFETY: entry 0 points at the parameters.
        assert_eq!(unsafe { *ptrs.cast::<*const [u8; 4]>().read() }, [7; 4]);
        // The `extra` form: the buffer, then zeros up to the limit.
        let buf = a.buffer();
        assert!(readable(&a, buf));
        assert!(a.buf[4..].iter().all(|&b| b == 0));
    }

    #[test]
    fn a_launch_leaves_nothing_for_the_next() {
        let mut a = LaunchArgs::new();
        let big: Vec<u8> = (1..=200).collect();
        a.prepare(&big, Some(&[p(0, 100), p(100, 100)])).unwrap();
        a.prepare(&[1], Some(&[p(0, 1)])).unwrap();
        assert_eq!(a.buf[0], 1);
        assert!(a.buf[1..].iter().all(|&b| b == 0));
        let zeros = a.buf.as_ptr().wrapping_add(LIMIT) as usize;
        assert!(a.ptrs[1..].iter().all(|&q| q as usize == zeros));
    }

    #[test]
    fn layouts_outside_the_buffer_or_the_limit_are_refused() {
        let mut a = LaunchArgs::new();
        assert!(a.prepare(&[0; 8], Some(&[p(4, 8)])).is_none());
        assert!(a.prepare(&[0; 8], Some(&[p(u32::MAX, 1)])).is_none());
        assert!(a.prepare(&vec![0; LIMIT + 1], None).is_none());
        let many = vec![p(0, 0); LIMIT + 1];
        assert!(a.prepare(&[], Some(&many)).is_none());
        assert!(a.prepare(&[0; 8], None).is_some());
    }
}
