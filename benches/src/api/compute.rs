//! The compute workloads, once for every API: vectorAdd, matrixMul,
//! BlackScholes, fastWalshTransform and convolutionSeparable. Each timed
//! run is what an application does to offload the work: upload the inputs
//! ([`Device::upload`]), run the kernel(s), and read the result back
//! ([`Device::read`], which waits for them). Outputs are poisoned with NaN
//! before each run and checked against the CPU reference after it,
//! outside the timed section. An API supplies the kernels, with their
//! arguments bound to the buffers made here ([`Compute`]).

use super::device::Device;
use super::{sample, timed, WorkloadError};
use crate::check::Mismatch;
use crate::problem;
use crate::workload::MATRIX_TILE;

/// Each compute workload's kernels, as an API builds them and binds their
/// arguments. `n` counts elements; buffers hold `f32`s.
pub(crate) trait Compute: Device {
    /// A kernel launched with different arguments in turn:
    /// fastWalshTransform's butterfly stage.
    type Stage;

    /// `c = a + b`.
    fn vector_add_kernel(
        &mut self,
        a: &Self::Buf<f32>,
        b: &Self::Buf<f32>,
        c: &Self::Buf<f32>,
        n: usize,
    ) -> Result<Self::Launch, WorkloadError>;

    /// `c = a·b`, `n`×`n` row-major, in tiles of [`MATRIX_TILE`].
    fn matrix_mul_kernel(
        &mut self,
        a: &Self::Buf<f32>,
        b: &Self::Buf<f32>,
        c: &Self::Buf<f32>,
        n: usize,
    ) -> Result<Self::Launch, WorkloadError>;

    /// Call and put prices from the options' spot, strike and years
    /// (`inputs`).
    fn black_scholes_kernel(
        &mut self,
        call: &Self::Buf<f32>,
        put: &Self::Buf<f32>,
        inputs: [&Self::Buf<f32>; 3],
        n: usize,
    ) -> Result<Self::Launch, WorkloadError>;

    /// The butterfly stage, and the point-wise product of the transforms
    /// of `data` and `filter` scaled by 1/n, into `data`.
    fn fwt_kernels(
        &mut self,
        data: &Self::Buf<f32>,
        filter: &Self::Buf<f32>,
        n: usize,
    ) -> Result<(Self::Stage, Self::Launch), WorkloadError>;

    /// Issues one Walsh-Hadamard transform of `buf` in place: log2(n)
    /// stages of `n / 2` butterflies.
    fn fwt_transform(
        &self,
        stage: &Self::Stage,
        buf: &Self::Buf<f32>,
        n: usize,
    ) -> Result<(), WorkloadError>;

    /// The row pass (`src` into `tmp`) and the column pass (`tmp` into
    /// `dst`) of a `w`×`h` image, with the 17-tap `filter` placed where
    /// the kernels read it.
    fn convolution_kernels(
        &mut self,
        src: &Self::Buf<f32>,
        tmp: &Self::Buf<f32>,
        dst: &Self::Buf<f32>,
        filter: &[f32],
        w: usize,
        h: usize,
    ) -> Result<[Self::Launch; 2], WorkloadError>;
}

pub(crate) fn vector_add<D: Compute>(
    d: &mut D,
    n: usize,
    warmup: usize,
    reps: usize,
) -> Result<Vec<f64>, WorkloadError> {
    let p = problem::VectorAdd::new(n);
    let check = |c: &[f32]| p.check(c);
    c_from_a_b(
        d,
        [&p.a, &p.b],
        (D::vector_add_kernel, n),
        check,
        warmup,
        reps,
    )
}

pub(crate) fn matrix_mul<D: Compute>(
    d: &mut D,
    key: &str,
    n: usize,
    warmup: usize,
    reps: usize,
) -> Result<Vec<f64>, WorkloadError> {
    if n == 0 || !n.is_multiple_of(MATRIX_TILE) {
        return Err(WorkloadError::Unavailable(format!(
            "matrixMul needs a size that is a multiple of {MATRIX_TILE}, not {n}"
        )));
    }
    let p = problem::MatrixMul::new(d.refs(), key, n);
    let check = |c: &[f32]| p.check(c);
    c_from_a_b(
        d,
        [&p.a, &p.b],
        (D::matrix_mul_kernel, n),
        check,
        warmup,
        reps,
    )
}

/// A [`Compute`] hook binding `a`, `b`, `c` and a size.
type AbcKernel<D> = fn(
    &mut D,
    &<D as Device>::Buf<f32>,
    &<D as Device>::Buf<f32>,
    &<D as Device>::Buf<f32>,
    usize,
) -> Result<<D as Device>::Launch, WorkloadError>;

/// The runs of a workload whose one kernel (`kernel`, bound with its
/// size) computes `c` from `a` and `b`, all of the inputs' length:
/// vectorAdd and matrixMul.
fn c_from_a_b<D: Compute>(
    d: &mut D,
    [a_in, b_in]: [&[f32]; 2],
    (kernel, size): (AbcKernel<D>, usize),
    check: impl Fn(&[f32]) -> Result<(), Mismatch>,
    warmup: usize,
    reps: usize,
) -> Result<Vec<f64>, WorkloadError> {
    let len = a_in.len();
    let (mut a, mut b, mut c) = (d.alloc(len)?, d.alloc(len)?, d.alloc(len)?);
    let mut k = kernel(d, &a, &b, &c, size)?;
    let mut got = vec![0f32; len];
    sample(warmup, reps, || {
        d.poison(&mut c, f32::NAN, len)?;
        let ((), ns) = timed(|| {
            d.upload(&mut a, a_in)?;
            d.upload(&mut b, b_in)?;
            d.launch(&mut k)?;
            d.read(&c, &mut got)
        })?;
        check(&got)?;
        Ok(ns)
    })
}

pub(crate) fn black_scholes<D: Compute>(
    d: &mut D,
    key: &str,
    n: usize,
    warmup: usize,
    reps: usize,
) -> Result<Vec<f64>, WorkloadError> {
    let p = problem::BlackScholes::new(d.refs(), key, n);
    let (mut dcall, mut dput) = (d.alloc::<f32>(n)?, d.alloc::<f32>(n)?);
    let (mut ds, mut dx, mut dt) = (d.alloc::<f32>(n)?, d.alloc::<f32>(n)?, d.alloc::<f32>(n)?);
    let mut k = d.black_scholes_kernel(&dcall, &dput, [&ds, &dx, &dt], n)?;
    let (mut call, mut put) = (vec![0f32; n], vec![0f32; n]);
    sample(warmup, reps, || {
        d.poison(&mut dcall, f32::NAN, n)?;
        d.poison(&mut dput, f32::NAN, n)?;
        let ((), ns) = timed(|| {
            d.upload(&mut ds, &p.s)?;
            d.upload(&mut dx, &p.x)?;
            d.upload(&mut dt, &p.t)?;
            d.launch(&mut k)?;
            d.read(&dcall, &mut call)?;
            d.read(&dput, &mut put)
        })?;
        p.check(&call, &put)?;
        Ok(ns)
    })
}

pub(crate) fn fwt<D: Compute>(
    d: &mut D,
    key: &str,
    log2_data: u32,
    log2_kernel: u32,
    warmup: usize,
    reps: usize,
) -> Result<Vec<f64>, WorkloadError> {
    let p = problem::Fwt::new(d.refs(), key, log2_data, log2_kernel).ok_or_else(|| {
        WorkloadError::Unavailable(format!(
            "fastWalshTransform sizes 2^{log2_data} / 2^{log2_kernel} are out of range"
        ))
    })?;
    let n = p.data.len();
    let (mut dd, mut dk) = (d.alloc::<f32>(n)?, d.alloc::<f32>(n)?);
    let (stage, mut modulate) = d.fwt_kernels(&dd, &dk, n)?;
    let mut got = vec![0f32; n];
    sample(warmup, reps, || {
        // The data buffer is both input and output.
        d.poison(&mut dd, f32::NAN, n)?;
        let ((), ns) = timed(|| {
            d.upload(&mut dd, &p.data)?;
            d.upload(&mut dk, &p.filter)?;
            d.fwt_transform(&stage, &dd, n)?;
            d.fwt_transform(&stage, &dk, n)?;
            d.launch(&mut modulate)?;
            d.fwt_transform(&stage, &dd, n)?;
            d.read(&dd, &mut got)
        })?;
        p.check(&got)?;
        Ok(ns)
    })
}

pub(crate) fn convolution<D: Compute>(
    d: &mut D,
    key: &str,
    w: usize,
    h: usize,
    warmup: usize,
    reps: usize,
) -> Result<Vec<f64>, WorkloadError> {
    let n = w * h;
    let p = problem::Convolution::new(d.refs(), key, w, h);
    let (mut src, tmp, mut dst) = (d.alloc::<f32>(n)?, d.alloc::<f32>(n)?, d.alloc::<f32>(n)?);
    let [mut rows, mut cols] = d.convolution_kernels(&src, &tmp, &dst, &p.filter, w, h)?;
    let mut got = vec![0f32; n];
    sample(warmup, reps, || {
        d.poison(&mut dst, f32::NAN, n)?;
        let ((), ns) = timed(|| {
            d.upload(&mut src, &p.src)?;
            d.launch(&mut rows)?;
            d.launch(&mut cols)?;
            d.read(&dst, &mut got)
        })?;
        p.check(&got)?;
        Ok(ns)
    })
}
