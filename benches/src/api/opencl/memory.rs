//! The memory workloads' OpenCL parts; the runs themselves are
//! `api::memory`'s. Host-allocated memory is a `CL_MEM_ALLOC_HOST_PTR`
//! buffer mapped for reading and writing; a device-to-device copy is
//! `clEnqueueCopyBuffer`, waited for with `clFinish`.

use std::ffi::c_void;

use opencl3::memory::{
    Buffer, ClMem, CL_MAP_READ, CL_MAP_WRITE, CL_MEM_ALLOC_HOST_PTR, CL_MEM_READ_WRITE,
};
use opencl3::types::{cl_mem, CL_BLOCKING};

use super::{arg, arg_buf, Cl, Launch, OpenCl, Source};
use crate::api::device::Device;
use crate::api::memory::Memory;
use crate::api::WorkloadError;
use crate::workload::{AlignedType, ImageOp};

const ALIGNED_TYPES: Source =
    Source::plain("aligned_types", include_str!("kernels/aligned_types.cl"));

/// A `CL_MEM_ALLOC_HOST_PTR` buffer mapped for reading and writing:
/// memory the runtime allocated for the host, the OpenCL counterpart of
/// CUDA's pinned host memory. `host_free` unmaps it.
#[derive(Debug)]
pub(crate) struct Mapped {
    buf: Buffer<u8>,
    ptr: *mut u8,
    len: usize,
}

impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the mapping covers `len` bytes and lives until
        // `host_free`, which consumes `self`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl AsMut<[u8]> for Mapped {
    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_ref`; `&mut self` makes this the only view.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Memory for OpenCl {
    type HostAlloc = Mapped;

    fn host_alloc(&self, len: usize) -> Result<Mapped, WorkloadError> {
        let buf = self.buffer_with::<u8>(CL_MEM_ALLOC_HOST_PTR | CL_MEM_READ_WRITE, len)?;
        let mut ptr: cl_mem = std::ptr::null_mut();
        // SAFETY: a blocking map of the whole buffer; `ptr` receives the
        // mapped address, valid until the unmap in `host_free`.
        unsafe {
            self.queue.enqueue_map_buffer(
                &buf,
                CL_BLOCKING,
                CL_MAP_READ | CL_MAP_WRITE,
                0,
                len,
                &mut ptr,
                &[],
            )
        }
        .cl("clEnqueueMapBuffer")?;
        if ptr.is_null() {
            return Err(WorkloadError::Unavailable(
                "clEnqueueMapBuffer returned NULL".into(),
            ));
        }
        Ok(Mapped {
            buf,
            ptr: ptr.cast(),
            len,
        })
    }

    /// Unmaps the buffer and waits.
    fn host_free(&self, host: Mapped) -> Result<(), WorkloadError> {
        // SAFETY: `ptr` is the address the map returned for `buf`, and no
        // slice of it outlives `host`.
        unsafe {
            self.queue
                .enqueue_unmap_mem_object(host.buf.get(), host.ptr.cast::<c_void>(), &[])
        }
        .cl("clEnqueueUnmapMemObject")?;
        self.sync()
    }

    fn copy(
        &self,
        src: &Buffer<u8>,
        dst: &mut Buffer<u8>,
        bytes: usize,
    ) -> Result<(), WorkloadError> {
        // SAFETY: the runtime checks that the range lies in both buffers.
        unsafe { self.queue.enqueue_copy_buffer(src, dst, 0, 0, bytes, &[]) }
            .cl("clEnqueueCopyBuffer")
            .map(drop)
    }

    fn aligned_copy_kernel(
        &mut self,
        ty: AlignedType,
        src: &Buffer<u8>,
        dst: &Buffer<u8>,
        n: usize,
    ) -> Result<Launch, WorkloadError> {
        let count = u32::try_from(n)
            .map_err(|_| WorkloadError::Unavailable(format!("{n} elements exceed u32")))?;
        let k = self.kernel(&ALIGNED_TYPES, &format!("copy_{}", ty.name()))?;
        arg_buf(&k, 0, src)?;
        arg_buf(&k, 1, dst)?;
        arg(&k, 2, count)?;
        Ok(Launch::new(k, &[n], None))
    }

    fn image(
        &mut self,
        op: ImageOp,
        bytes: usize,
        warmup: usize,
        reps: usize,
    ) -> Result<Vec<f64>, WorkloadError> {
        super::images::run(self, op, bytes, warmup, reps)
    }
}
