//! Memory workloads: bandwidthTest, alignedTypes and small copies. Every
//! destination is cleared before a run and compared byte for byte with
//! what was sent after it, outside the timed section.
//!
//! bandwidthTest times one synchronous copy: `cuMemcpyHtoD` or
//! `cuMemcpyDtoH` from or into pageable memory (a `Vec`) or memory from
//! `cuMemAllocHost`, or `cuMemcpyDtoD` and the `cuCtxSynchronize` that
//! waits for it (device-to-device copies return before they finish).

use cudarc::driver::sys as cu;

use super::kernels::{ALIGNED_TYPES, BLOCK};
use super::{check, grid, packed, u32_arg, Cuda, Pinned};
use crate::api::memory::Memory;
use crate::api::{sample, timed, WorkloadError};
use crate::check;
use crate::problem;
use crate::workload::{AlignedType, Direction, HostMem};

/// The host side of a transfer.
enum HostBuf {
    Pageable(Vec<u8>),
    HostAlloc(Pinned),
}

impl HostBuf {
    fn new(mem: HostMem, len: usize) -> Result<HostBuf, WorkloadError> {
        Ok(match mem {
            HostMem::Pageable => HostBuf::Pageable(vec![0; len]),
            HostMem::HostAlloc => HostBuf::HostAlloc(Pinned::new(len)?),
        })
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            HostBuf::Pageable(v) => v,
            HostBuf::HostAlloc(p) => p.bytes(),
        }
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        match self {
            HostBuf::Pageable(v) => v,
            HostBuf::HostAlloc(p) => p.bytes_mut(),
        }
    }
}

fn bandwidth(
    cu: &mut Cuda,
    dir: Direction,
    mem: Option<HostMem>,
    bytes: usize,
    warmup: usize,
    reps: usize,
) -> Result<Vec<f64>, WorkloadError> {
    let pattern = problem::bandwidth_pattern(bytes);
    let dev = cu.alloc(bytes)?;
    let mut back = vec![0u8; bytes];
    if dir == Direction::D2D {
        let dst = cu.alloc(bytes)?;
        cu.upload(&dev, &pattern)?;
        return sample(warmup, reps, || {
            cu.poison8(&dst, 0)?;
            let ((), ns) = timed(|| {
                check(
                    // SAFETY: both buffers hold `bytes` bytes.
                    unsafe { cu::cuMemcpyDtoD_v2(dst.ptr, dev.ptr, bytes) },
                    "cuMemcpyDtoD",
                )?;
                cu.sync()
            })?;
            cu.download(&dst, &mut back)?;
            check::exact("D2D copy", &back, &pattern)?;
            Ok(ns)
        });
    }
    let mem = mem.ok_or_else(|| {
        WorkloadError::Unavailable("a host transfer needs a host memory kind".into())
    })?;
    let mut host = HostBuf::new(mem, bytes)?;
    if dir == Direction::H2D {
        host.as_mut_slice().copy_from_slice(&pattern);
        sample(warmup, reps, || {
            cu.poison8(&dev, 0)?;
            let ((), ns) = timed(|| cu.upload(&dev, host.as_slice()))?;
            cu.download(&dev, &mut back)?;
            check::exact("H2D copy", &back, &pattern)?;
            Ok(ns)
        })
    } else {
        cu.upload(&dev, &pattern)?;
        sample(warmup, reps, || {
            host.as_mut_slice().fill(0);
            let ((), ns) = timed(|| cu.download(&dev, host.as_mut_slice()))?;
            check::exact("D2H copy", host.as_slice(), &pattern)?;
            Ok(ns)
        })
    }
}

fn aligned_types(
    cu: &mut Cuda,
    ty: AlignedType,
    bytes: usize,
    warmup: usize,
    reps: usize,
) -> Result<Vec<f64>, WorkloadError> {
    let n = bytes / ty.size();
    let len = n * ty.size();
    let src = problem::aligned_source(len);
    let k = cu.func(&ALIGNED_TYPES, &format!("copy_{}", ty.name()))?;
    let (dsrc, ddst) = (cu.alloc(len)?, cu.alloc(len)?);
    cu.upload(&dsrc, &src)?;
    let mut args = packed(k.args().ptr(dsrc.ptr).ptr(ddst.ptr).u32(u32_arg(n)?))?;
    let blocks = grid(n, BLOCK)?;
    let mut got = vec![0u8; len];
    sample(warmup, reps, || {
        cu.poison8(&ddst, 0)?;
        let ((), ns) = timed(|| {
            cu.launch(&k, (blocks, 1, 1), (BLOCK, 1, 1), &mut args)?;
            cu.sync()
        })?;
        cu.download(&ddst, &mut got)?;
        check::exact(&format!("alignedTypes {}", ty.name()), &got, &src)?;
        Ok(ns)
    })
}

fn small_copy(
    cu: &mut Cuda,
    dir: Direction,
    bytes: usize,
    warmup: usize,
    reps: usize,
) -> Result<Vec<f64>, WorkloadError> {
    let dev = cu.alloc(bytes)?;
    let mut host = vec![0u8; bytes];
    let mut back = vec![0u8; bytes];
    if dir == Direction::H2D {
        let mut run = 0;
        sample(warmup, reps, || {
            run += 1;
            host.copy_from_slice(&problem::small_upload(bytes, run));
            let ((), ns) = timed(|| cu.upload(&dev, &host))?;
            cu.download(&dev, &mut back)?;
            check::exact("small H2D copy", &back, &host)?;
            Ok(ns)
        })
    } else {
        let pattern = problem::small_download(bytes);
        cu.upload(&dev, &pattern)?;
        sample(warmup, reps, || {
            host.fill(0);
            let ((), ns) = timed(|| cu.download(&dev, &mut host))?;
            check::exact("small D2H copy", &host, &pattern)?;
            Ok(ns)
        })
    }
}

impl Memory for Cuda {
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
