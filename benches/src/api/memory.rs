//! The memory workloads, once for every API: bandwidthTest, alignedTypes
//! and small copies. Every destination is cleared before a run and
//! compared byte for byte with what was sent after it, outside the timed
//! section.
//!
//! bandwidthTest times one blocking copy from or into pageable memory (a
//! `Vec`) or memory the runtime allocated for the host
//! ([`Memory::host_alloc`]), or a device-to-device copy and the wait for
//! it (such copies return before they finish).

use super::device::Device;
use super::{sample, timed, WorkloadError};
use crate::check;
use crate::problem;
use crate::workload::{AlignedType, Direction, HostMem, ImageOp};

/// What the memory workloads need of an API beyond [`Device`].
pub(crate) trait Memory: Device {
    /// Host memory the runtime allocated for transfers.
    type HostAlloc: AsRef<[u8]> + AsMut<[u8]>;

    /// `len` bytes of host memory from the runtime (CUDA:
    /// `cuMemAllocHost`; OpenCL: a `CL_MEM_ALLOC_HOST_PTR` buffer, mapped).
    fn host_alloc(&self, len: usize) -> Result<Self::HostAlloc, WorkloadError>;

    /// Gives `host` back to the runtime.
    fn host_free(&self, host: Self::HostAlloc) -> Result<(), WorkloadError>;

    /// Issues a copy of the first `bytes` of `src` into `dst`.
    fn copy(
        &self,
        src: &Self::Buf<u8>,
        dst: &mut Self::Buf<u8>,
        bytes: usize,
    ) -> Result<(), WorkloadError>;

    /// alignedTypes' kernel: copies `n` elements of `ty` from `src` to
    /// `dst`.
    fn aligned_copy_kernel(
        &mut self,
        ty: AlignedType,
        src: &Self::Buf<u8>,
        dst: &Self::Buf<u8>,
        n: usize,
    ) -> Result<Self::Launch, WorkloadError>;

    /// The images workload: `op` on a 2D RGBA8 image of `bytes`, `warmup`
    /// untimed and `reps` timed runs, each verified. Only APIs with images
    /// (OpenCL) have it.
    fn image(
        &mut self,
        op: ImageOp,
        bytes: usize,
        warmup: usize,
        reps: usize,
    ) -> Result<Vec<f64>, WorkloadError> {
        let _ = (op, bytes, warmup, reps);
        Err(WorkloadError::Unavailable(
            "images are an OpenCL workload".into(),
        ))
    }
}

/// The host side of a transfer.
enum HostBuf<A> {
    Pageable(Vec<u8>),
    HostAlloc(A),
}

impl<A: AsRef<[u8]> + AsMut<[u8]>> HostBuf<A> {
    fn new<D: Memory<HostAlloc = A>>(
        d: &D,
        mem: HostMem,
        len: usize,
    ) -> Result<HostBuf<A>, WorkloadError> {
        Ok(match mem {
            HostMem::Pageable => HostBuf::Pageable(vec![0; len]),
            HostMem::HostAlloc => HostBuf::HostAlloc(d.host_alloc(len)?),
        })
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            HostBuf::Pageable(v) => v,
            HostBuf::HostAlloc(a) => a.as_ref(),
        }
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        match self {
            HostBuf::Pageable(v) => v,
            HostBuf::HostAlloc(a) => a.as_mut(),
        }
    }

    fn release<D: Memory<HostAlloc = A>>(self, d: &D) -> Result<(), WorkloadError> {
        match self {
            HostBuf::Pageable(_) => Ok(()),
            HostBuf::HostAlloc(a) => d.host_free(a),
        }
    }
}

pub(crate) fn bandwidth<D: Memory>(
    d: &mut D,
    dir: Direction,
    mem: Option<HostMem>,
    bytes: usize,
    warmup: usize,
    reps: usize,
) -> Result<Vec<f64>, WorkloadError> {
    let pattern = problem::bandwidth_pattern(bytes);
    let mut dev = d.alloc::<u8>(bytes)?;
    let mut back = vec![0u8; bytes];
    if dir == Direction::D2D {
        let mut dst = d.alloc::<u8>(bytes)?;
        d.write(&mut dev, &pattern)?;
        return sample(warmup, reps, || {
            d.poison(&mut dst, 0u8, bytes)?;
            let ((), ns) = timed(|| {
                d.copy(&dev, &mut dst, bytes)?;
                d.sync()
            })?;
            d.read(&dst, &mut back)?;
            check::exact("D2D copy", &back, &pattern)?;
            Ok(ns)
        });
    }
    let mem = mem.ok_or_else(|| {
        WorkloadError::Unavailable("a host transfer needs a host memory kind".into())
    })?;
    let mut host = HostBuf::new(d, mem, bytes)?;
    let result = if dir == Direction::H2D {
        host.as_mut_slice().copy_from_slice(&pattern);
        sample(warmup, reps, || {
            d.poison(&mut dev, 0u8, bytes)?;
            let ((), ns) = timed(|| d.write(&mut dev, host.as_slice()))?;
            d.read(&dev, &mut back)?;
            check::exact("H2D copy", &back, &pattern)?;
            Ok(ns)
        })
    } else {
        d.write(&mut dev, &pattern)?;
        sample(warmup, reps, || {
            host.as_mut_slice().fill(0);
            let ((), ns) = timed(|| d.read(&dev, host.as_mut_slice()))?;
            check::exact("D2H copy", host.as_slice(), &pattern)?;
            Ok(ns)
        })
    };
    let released = host.release(d);
    let samples = result?;
    released?;
    Ok(samples)
}

pub(crate) fn aligned_types<D: Memory>(
    d: &mut D,
    ty: AlignedType,
    bytes: usize,
    warmup: usize,
    reps: usize,
) -> Result<Vec<f64>, WorkloadError> {
    let n = bytes / ty.size();
    let len = n * ty.size();
    let src = problem::aligned_source(len);
    let (mut dsrc, mut ddst) = (d.alloc::<u8>(len)?, d.alloc::<u8>(len)?);
    d.write(&mut dsrc, &src)?;
    let mut k = d.aligned_copy_kernel(ty, &dsrc, &ddst, n)?;
    let mut got = vec![0u8; len];
    sample(warmup, reps, || {
        d.poison(&mut ddst, 0u8, len)?;
        let ((), ns) = timed(|| {
            d.launch(&mut k)?;
            d.sync()
        })?;
        d.read(&ddst, &mut got)?;
        check::exact(&format!("alignedTypes {}", ty.name()), &got, &src)?;
        Ok(ns)
    })
}

/// H2D or D2H only.
pub(crate) fn small_copy<D: Device>(
    d: &mut D,
    dir: Direction,
    bytes: usize,
    warmup: usize,
    reps: usize,
) -> Result<Vec<f64>, WorkloadError> {
    let mut dev = d.alloc::<u8>(bytes)?;
    let mut host = vec![0u8; bytes];
    let mut back = vec![0u8; bytes];
    if dir == Direction::H2D {
        let mut run = 0;
        sample(warmup, reps, || {
            run += 1;
            host.copy_from_slice(&problem::small_upload(bytes, run));
            let ((), ns) = timed(|| d.write(&mut dev, &host))?;
            d.read(&dev, &mut back)?;
            check::exact("small H2D copy", &back, &host)?;
            Ok(ns)
        })
    } else {
        let pattern = problem::small_download(bytes);
        d.write(&mut dev, &pattern)?;
        sample(warmup, reps, || {
            host.fill(0);
            let ((), ns) = timed(|| d.read(&dev, &mut host))?;
            check::exact("small D2H copy", &host, &pattern)?;
            Ok(ns)
        })
    }
}
