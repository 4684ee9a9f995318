//! The memory workloads' CUDA parts; the runs themselves are
//! `api::memory`'s. Host-allocated memory comes from `cuMemAllocHost`; a
//! device-to-device copy is `cuMemcpyDtoD`, waited for with
//! `cuCtxSynchronize`.

use cudarc::driver::sys as cu;

use super::kernels::ALIGNED_TYPES;
use super::{check, Cuda, DevBuf, Launch, Pinned};
use crate::api::device::u32_arg;
use crate::api::memory::Memory;
use crate::api::WorkloadError;
use crate::workload::AlignedType;

impl Memory for Cuda {
    type HostAlloc = Pinned;

    fn host_alloc(&self, len: usize) -> Result<Pinned, WorkloadError> {
        Pinned::new(len)
    }

    /// Freed on drop.
    fn host_free(&self, host: Pinned) -> Result<(), WorkloadError> {
        drop(host);
        Ok(())
    }

    fn copy(&self, src: &DevBuf, dst: &mut DevBuf, bytes: usize) -> Result<(), WorkloadError> {
        if bytes > src.bytes || bytes > dst.bytes {
            return Err(WorkloadError::Unavailable(format!(
                "{bytes} bytes exceed a {}-byte buffer",
                src.bytes.min(dst.bytes)
            )));
        }
        check(
            // SAFETY: both ranges lie in their buffers (checked above).
            unsafe { cu::cuMemcpyDtoD_v2(dst.ptr, src.ptr, bytes) },
            "cuMemcpyDtoD",
        )
    }

    fn aligned_copy_kernel(
        &mut self,
        ty: AlignedType,
        src: &DevBuf,
        dst: &DevBuf,
        n: usize,
    ) -> Result<Launch, WorkloadError> {
        let k = self.func(&ALIGNED_TYPES, &format!("copy_{}", ty.name()))?;
        k.over(k.args().ptr(src.ptr).ptr(dst.ptr).u32(u32_arg(n)?), n)
    }
}
