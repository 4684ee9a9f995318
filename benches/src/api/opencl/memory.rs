//! Memory workloads: bandwidthTest, alignedTypes and small copies. Every
//! destination is cleared before a run and compared byte for byte with
//! what was sent after it, outside the timed section.

use std::ffi::c_void;

use opencl3::memory::{
    Buffer, ClMem, CL_MAP_READ, CL_MAP_WRITE, CL_MEM_ALLOC_HOST_PTR, CL_MEM_READ_WRITE,
};
use opencl3::types::{cl_mem, CL_BLOCKING};

use super::{arg, arg_buf, Cl, OpenCl, Source};
use crate::api::memory::Memory;
use crate::api::{sample, timed, WorkloadError};
use crate::check;
use crate::problem;
use crate::workload::{AlignedType, Direction, HostMem};

const ALIGNED_TYPES: Source = Source {
    name: "aligned_types",
    text: include_str!("kernels/aligned_types.cl"),
    options: "",
};

/// The host side of a transfer.
enum HostBuf {
    /// Ordinary process memory.
    Pageable(Vec<u8>),
    /// A `CL_MEM_ALLOC_HOST_PTR` buffer mapped for reading and writing:
    /// memory the runtime allocated for the host, the OpenCL counterpart
    /// of CUDA's pinned host memory.
    Mapped {
        buf: Buffer<u8>,
        ptr: *mut u8,
        len: usize,
    },
}

impl HostBuf {
    fn new(cl: &OpenCl, mem: HostMem, len: usize) -> Result<HostBuf, WorkloadError> {
        match mem {
            HostMem::Pageable => Ok(HostBuf::Pageable(vec![0; len])),
            HostMem::HostAlloc => {
                let buf = cl.buffer_with::<u8>(CL_MEM_ALLOC_HOST_PTR | CL_MEM_READ_WRITE, len)?;
                let mut ptr: cl_mem = std::ptr::null_mut();
                // SAFETY: a blocking map of the whole buffer; `ptr` receives
                // the mapped address, valid until the unmap in `release`.
                unsafe {
                    cl.queue.enqueue_map_buffer(
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
                Ok(HostBuf::Mapped {
                    buf,
                    ptr: ptr.cast(),
                    len,
                })
            }
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            HostBuf::Pageable(v) => v,
            // SAFETY: the mapping covers `len` bytes and lives until
            // `release`, which consumes `self`.
            HostBuf::Mapped { ptr, len, .. } => unsafe { std::slice::from_raw_parts(*ptr, *len) },
        }
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        match self {
            HostBuf::Pageable(v) => v,
            // SAFETY: as in `as_slice`; `&mut self` makes this the only view.
            HostBuf::Mapped { ptr, len, .. } => unsafe {
                std::slice::from_raw_parts_mut(*ptr, *len)
            },
        }
    }

    /// Unmaps a mapped buffer.
    fn release(self, cl: &OpenCl) -> Result<(), WorkloadError> {
        if let HostBuf::Mapped { buf, ptr, .. } = self {
            // SAFETY: `ptr` is the address the map returned for `buf`,
            // and no slice of it outlives `self`.
            unsafe {
                cl.queue
                    .enqueue_unmap_mem_object(buf.get(), ptr.cast::<c_void>(), &[])
            }
            .cl("clEnqueueUnmapMemObject")?;
            cl.finish()?;
        }
        Ok(())
    }
}

fn bandwidth(
    cl: &mut OpenCl,
    dir: Direction,
    mem: Option<HostMem>,
    bytes: usize,
    warmup: usize,
    reps: usize,
) -> Result<Vec<f64>, WorkloadError> {
    let pattern = problem::bandwidth_pattern(bytes);
    let mut dev = cl.buffer::<u8>(bytes)?;
    let mut back = vec![0u8; bytes];
    if dir == Direction::D2D {
        let mut dst = cl.buffer::<u8>(bytes)?;
        cl.write(&mut dev, &pattern)?;
        return sample(warmup, reps, || {
            cl.poison(&mut dst, 0u8, bytes)?;
            let ((), ns) = timed(|| {
                // SAFETY: both buffers hold `bytes` bytes.
                unsafe {
                    cl.queue
                        .enqueue_copy_buffer(&dev, &mut dst, 0, 0, bytes, &[])
                }
                .cl("clEnqueueCopyBuffer")?;
                cl.finish()
            })?;
            cl.read(&dst, &mut back)?;
            check::exact("D2D copy", &back, &pattern)?;
            Ok(ns)
        });
    }
    let mem = mem.ok_or_else(|| {
        WorkloadError::Unavailable("a host transfer needs a host memory kind".into())
    })?;
    let mut host = HostBuf::new(cl, mem, bytes)?;
    let result = if dir == Direction::H2D {
        host.as_mut_slice().copy_from_slice(&pattern);
        sample(warmup, reps, || {
            cl.poison(&mut dev, 0u8, bytes)?;
            let ((), ns) = timed(|| cl.write(&mut dev, host.as_slice()))?;
            cl.read(&dev, &mut back)?;
            check::exact("H2D copy", &back, &pattern)?;
            Ok(ns)
        })
    } else {
        cl.write(&mut dev, &pattern)?;
        sample(warmup, reps, || {
            host.as_mut_slice().fill(0);
            let ((), ns) = timed(|| cl.read(&dev, host.as_mut_slice()))?;
            check::exact("D2H copy", host.as_slice(), &pattern)?;
            Ok(ns)
        })
    };
    let unmapped = host.release(cl);
    let samples = result?;
    unmapped?;
    Ok(samples)
}

fn aligned_types(
    cl: &mut OpenCl,
    ty: AlignedType,
    bytes: usize,
    warmup: usize,
    reps: usize,
) -> Result<Vec<f64>, WorkloadError> {
    let n = bytes / ty.size();
    let len = n * ty.size();
    let count = u32::try_from(n)
        .map_err(|_| WorkloadError::Unavailable(format!("{n} elements exceed u32")))?;
    let src = problem::aligned_source(len);
    let k = cl.kernel(&ALIGNED_TYPES, &format!("copy_{}", ty.name()))?;
    let (mut dsrc, mut ddst) = (cl.buffer::<u8>(len)?, cl.buffer::<u8>(len)?);
    cl.write(&mut dsrc, &src)?;
    arg_buf(&k, 0, &dsrc)?;
    arg_buf(&k, 1, &ddst)?;
    arg(&k, 2, count)?;
    let mut got = vec![0u8; len];
    sample(warmup, reps, || {
        cl.poison(&mut ddst, 0u8, len)?;
        let ((), ns) = timed(|| {
            cl.launch(&k, &[n], None)?;
            cl.finish()
        })?;
        cl.read(&ddst, &mut got)?;
        check::exact(&format!("alignedTypes {}", ty.name()), &got, &src)?;
        Ok(ns)
    })
}

fn small_copy(
    cl: &mut OpenCl,
    dir: Direction,
    bytes: usize,
    warmup: usize,
    reps: usize,
) -> Result<Vec<f64>, WorkloadError> {
    let mut dev = cl.buffer::<u8>(bytes)?;
    let mut host = vec![0u8; bytes];
    let mut back = vec![0u8; bytes];
    if dir == Direction::H2D {
        let mut run = 0;
        sample(warmup, reps, || {
            run += 1;
            host.copy_from_slice(&problem::small_upload(bytes, run));
            let ((), ns) = timed(|| cl.write(&mut dev, &host))?;
            cl.read(&dev, &mut back)?;
            check::exact("small H2D copy", &back, &host)?;
            Ok(ns)
        })
    } else {
        let pattern = problem::small_download(bytes);
        cl.write(&mut dev, &pattern)?;
        sample(warmup, reps, || {
            host.fill(0);
            let ((), ns) = timed(|| cl.read(&dev, &mut host))?;
            check::exact("small D2H copy", &host, &pattern)?;
            Ok(ns)
        })
    }
}

impl Memory for OpenCl {
    fn bandwidth(
        &mut self,
        dir: Direction,
        mem: Option<HostMem>,
        bytes: usize,
        warmup: usize,
        reps: usize,
    ) -> Result<Vec<f64>, WorkloadError> {
        bandwidth(self, dir, mem, bytes, warmup, reps)
    }
    fn aligned_types(
        &mut self,
        ty: AlignedType,
        bytes: usize,
        warmup: usize,
        reps: usize,
    ) -> Result<Vec<f64>, WorkloadError> {
        aligned_types(self, ty, bytes, warmup, reps)
    }
    fn small_copy(
        &mut self,
        dir: Direction,
        bytes: usize,
        warmup: usize,
        reps: usize,
    ) -> Result<Vec<f64>, WorkloadError> {
        small_copy(self, dir, bytes, warmup, reps)
    }
}
