//! What every API's device offers the workloads: device memory, copies
//! and fills, launches of prepared kernels, and waiting. The workloads are
//! written once over [`Device`] (`compute`, `memory`, `timing`); what an
//! API adds is how its kernels are built and their arguments bound (each
//! family's trait), and the workloads whose API calls are the point of
//! them (asyncAPI, clock).

use super::WorkloadError;
use crate::ipc::RuntimeInfo;
use crate::reference;

/// Element types the workloads move: plain data, any bit pattern a value.
pub(crate) trait Plain: Copy + 'static {
    /// The element's bits, zero-extended: the pattern a fill writes.
    fn bits(self) -> u64;
}

impl Plain for u8 {
    fn bits(self) -> u64 {
        u64::from(self)
    }
}

impl Plain for u32 {
    fn bits(self) -> u64 {
        u64::from(self)
    }
}

impl Plain for i32 {
    fn bits(self) -> u64 {
        u64::from(self as u32)
    }
}

impl Plain for i64 {
    fn bits(self) -> u64 {
        self as u64
    }
}

impl Plain for f32 {
    fn bits(self) -> u64 {
        u64::from(self.to_bits())
    }
}

/// `v` as a kernel's `unsigned int` argument.
pub(crate) fn u32_arg(v: usize) -> Result<u32, WorkloadError> {
    u32::try_from(v).map_err(|_| WorkloadError::Unavailable(format!("size {v} exceeds u32")))
}

/// The device an API backend drives.
pub(crate) trait Device {
    /// Device memory for elements of `T`.
    type Buf<T: Plain>;
    /// A kernel with its arguments bound and the shape of its launch:
    /// what [`Device::launch`] issues.
    type Launch;

    /// What the runtime reports about itself.
    fn info(&self) -> &RuntimeInfo;

    /// The CPU references computed so far, shared by the runs of a case.
    fn refs(&mut self) -> &mut reference::Cache;

    /// Device memory for `count` elements.
    fn alloc<T: Plain>(&self, count: usize) -> Result<Self::Buf<T>, WorkloadError>;

    /// Sets the first `count` elements of `buf` to `value` and waits:
    /// poisons an output before a run, outside the timed section.
    fn poison<T: Plain>(
        &self,
        buf: &mut Self::Buf<T>,
        value: T,
        count: usize,
    ) -> Result<(), WorkloadError>;

    /// Copies `data` into `buf` as an application offloading work does,
    /// in order with what is issued after it: CUDA's `cuMemcpyHtoD`,
    /// which returns once `data` is copied; OpenCL's non-blocking write,
    /// for which the caller keeps `data` alive and unchanged until a later
    /// blocking call has returned.
    fn upload<T: Plain>(&self, buf: &mut Self::Buf<T>, data: &[T]) -> Result<(), WorkloadError>;

    /// Copies `data` into `buf` and waits.
    fn write<T: Plain>(&self, buf: &mut Self::Buf<T>, data: &[T]) -> Result<(), WorkloadError>;

    /// Fills `out` from the start of `buf` once the work issued before is
    /// done, and waits.
    fn read<T: Plain>(&self, buf: &Self::Buf<T>, out: &mut [T]) -> Result<(), WorkloadError>;

    /// Issues `kernel`; it runs after the work issued before it.
    fn launch(&self, kernel: &mut Self::Launch) -> Result<(), WorkloadError>;

    /// Waits for everything issued so far.
    fn sync(&self) -> Result<(), WorkloadError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_write_each_type_bits() {
        assert_eq!(f32::NAN.bits(), 0x7fc0_0000);
        assert_eq!(i32::MIN.bits(), 0x8000_0000);
        assert_eq!((-1i64).bits(), u64::MAX);
        assert_eq!(0xabu8.bits(), 0xab);
        assert_eq!(7u32.bits(), 7);
    }
}
