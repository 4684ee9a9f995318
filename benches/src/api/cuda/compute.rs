//! Compute workloads. Each timed run is what a CUDA sample does to offload
//! the work: copy the inputs to the device (`cuMemcpyHtoD`), launch the
//! kernel(s), and copy the result back (`cuMemcpyDtoH`, which waits for
//! them). Outputs are poisoned with NaN before each run and checked against
//! the CPU reference after it, outside the timed section.

use super::kernels::{BLACK_SCHOLES, BLOCK, CONVOLUTION, CONV_FILTER, FWT, MATRIX_MUL, VECTOR_ADD};
use super::{grid, packed, u32_arg, Cuda, DevBuf, Func, NAN_BITS};
use crate::api::compute::Compute;
use crate::api::{sample, timed, WorkloadError};
use crate::problem;
use crate::reference;
use crate::workload::MATRIX_TILE;

/// Side of the 2D blocks of the convolution.
const TILE_2D: u32 = 16;

fn vector_add(
    cu: &mut Cuda,
    n: usize,
    warmup: usize,
    reps: usize,
) -> Result<Vec<f64>, WorkloadError> {
    let p = problem::VectorAdd::new(n);
    let k = cu.func(&VECTOR_ADD, "vector_add")?;
    let (da, db, dc) = (
        cu.alloc_for::<f32>(n)?,
        cu.alloc_for::<f32>(n)?,
        cu.alloc_for::<f32>(n)?,
    );
    let mut args = packed(
        k.args()
            .ptr(da.ptr)
            .ptr(db.ptr)
            .ptr(dc.ptr)
            .u32(u32_arg(n)?),
    )?;
    let blocks = grid(n, BLOCK)?;
    let mut got = vec![0f32; n];
    sample(warmup, reps, || {
        cu.poison32(&dc, NAN_BITS, n)?;
        let ((), ns) = timed(|| {
            cu.upload(&da, &p.a)?;
            cu.upload(&db, &p.b)?;
            cu.launch(&k, (blocks, 1, 1), (BLOCK, 1, 1), &mut args)?;
            cu.download(&dc, &mut got)
        })?;
        p.check(&got)?;
        Ok(ns)
    })
}

fn matrix_mul(
    cu: &mut Cuda,
    key: &str,
    n: usize,
    warmup: usize,
    reps: usize,
) -> Result<Vec<f64>, WorkloadError> {
    if n == 0 || n % MATRIX_TILE != 0 {
        return Err(WorkloadError::Unavailable(format!(
            "matrixMul needs a size that is a multiple of {MATRIX_TILE}, not {n}"
        )));
    }
    let p = problem::MatrixMul::new(&mut cu.refs, key, n);
    let k = cu.func(&MATRIX_MUL, "matrix_mul")?;
    let (da, db, dc) = (
        cu.alloc_for::<f32>(n * n)?,
        cu.alloc_for::<f32>(n * n)?,
        cu.alloc_for::<f32>(n * n)?,
    );
    let mut args = packed(
        k.args()
            .ptr(da.ptr)
            .ptr(db.ptr)
            .ptr(dc.ptr)
            .u32(u32_arg(n)?),
    )?;
    // The kernel's TILE: one block per TILE x TILE block of C.
    let tile = u32_arg(MATRIX_TILE)?;
    let tiles = u32_arg(n / MATRIX_TILE)?;
    let mut got = vec![0f32; n * n];
    sample(warmup, reps, || {
        cu.poison32(&dc, NAN_BITS, n * n)?;
        let ((), ns) = timed(|| {
            cu.upload(&da, &p.a)?;
            cu.upload(&db, &p.b)?;
            cu.launch(&k, (tiles, tiles, 1), (tile, tile, 1), &mut args)?;
            cu.download(&dc, &mut got)
        })?;
        p.check(&got)?;
        Ok(ns)
    })
}

fn black_scholes(
    cu: &mut Cuda,
    key: &str,
    n: usize,
    warmup: usize,
    reps: usize,
) -> Result<Vec<f64>, WorkloadError> {
    let p = problem::BlackScholes::new(&mut cu.refs, key, n);
    let k = cu.func(&BLACK_SCHOLES, "black_scholes")?;
    let (dcall, dput) = (cu.alloc_for::<f32>(n)?, cu.alloc_for::<f32>(n)?);
    let (ds, dx, dt) = (
        cu.alloc_for::<f32>(n)?,
        cu.alloc_for::<f32>(n)?,
        cu.alloc_for::<f32>(n)?,
    );
    let mut args = packed(
        k.args()
            .ptr(dcall.ptr)
            .ptr(dput.ptr)
            .ptr(ds.ptr)
            .ptr(dx.ptr)
            .ptr(dt.ptr)
            .f32(reference::BS_RISK_FREE)
            .f32(reference::BS_VOLATILITY)
            .u32(u32_arg(n)?),
    )?;
    let blocks = grid(n, BLOCK)?;
    let (mut call, mut put) = (vec![0f32; n], vec![0f32; n]);
    sample(warmup, reps, || {
        cu.poison32(&dcall, NAN_BITS, n)?;
        cu.poison32(&dput, NAN_BITS, n)?;
        let ((), ns) = timed(|| {
            cu.upload(&ds, &p.s)?;
            cu.upload(&dx, &p.x)?;
            cu.upload(&dt, &p.t)?;
            cu.launch(&k, (blocks, 1, 1), (BLOCK, 1, 1), &mut args)?;
            cu.download(&dcall, &mut call)?;
            cu.download(&dput, &mut put)
        })?;
        p.check(&call, &put)?;
        Ok(ns)
    })
}

/// One Walsh-Hadamard transform of the `n` floats in `buf`: log2(n)
/// stages of `n / 2` butterflies, in order on the stream.
fn transform(cu: &Cuda, stage: &Func, buf: &DevBuf, n: usize) -> Result<(), WorkloadError> {
    let half = n / 2;
    let blocks = grid(half, BLOCK)?;
    let mut stride = 1usize;
    while stride < n {
        let mut a = packed(
            stage
                .args()
                .ptr(buf.ptr)
                .u32(u32_arg(stride)?)
                .u32(u32_arg(half)?),
        )?;
        cu.launch(stage, (blocks, 1, 1), (BLOCK, 1, 1), &mut a)?;
        stride *= 2;
    }
    Ok(())
}

fn fwt(
    cu: &mut Cuda,
    key: &str,
    log2_data: u32,
    log2_kernel: u32,
    warmup: usize,
    reps: usize,
) -> Result<Vec<f64>, WorkloadError> {
    let p = problem::Fwt::new(&mut cu.refs, key, log2_data, log2_kernel).ok_or_else(|| {
        WorkloadError::Unavailable(format!(
            "fastWalshTransform sizes 2^{log2_data} / 2^{log2_kernel} are out of range"
        ))
    })?;
    let n = p.data.len();
    let stage = cu.func(&FWT, "fwt_stage")?;
    let modulate = cu.func(&FWT, "modulate")?;
    let (dd, dk) = (cu.alloc_for::<f32>(n)?, cu.alloc_for::<f32>(n)?);
    let mut mod_args = packed(
        modulate
            .args()
            .ptr(dd.ptr)
            .ptr(dk.ptr)
            .f32(1.0 / n as f32)
            .u32(u32_arg(n)?),
    )?;
    let blocks = grid(n, BLOCK)?;
    let mut got = vec![0f32; n];
    sample(warmup, reps, || {
        // The data buffer is both input and output.
        cu.poison32(&dd, NAN_BITS, n)?;
        let ((), ns) = timed(|| {
            cu.upload(&dd, &p.data)?;
            cu.upload(&dk, &p.filter)?;
            transform(cu, &stage, &dd, n)?;
            transform(cu, &stage, &dk, n)?;
            cu.launch(&modulate, (blocks, 1, 1), (BLOCK, 1, 1), &mut mod_args)?;
            transform(cu, &stage, &dd, n)?;
            cu.download(&dd, &mut got)
        })?;
        p.check(&got)?;
        Ok(ns)
    })
}

fn convolution(
    cu: &mut Cuda,
    key: &str,
    w: usize,
    h: usize,
    warmup: usize,
    reps: usize,
) -> Result<Vec<f64>, WorkloadError> {
    let n = w * h;
    let p = problem::Convolution::new(&mut cu.refs, key, w, h);
    let rows = cu.func(&CONVOLUTION, "conv_rows")?;
    let cols = cu.func(&CONVOLUTION, "conv_cols")?;
    // The filter goes into the module's constant memory once.
    let (filter, size) = cu.global(&CONVOLUTION, CONV_FILTER)?;
    cu.upload_to(filter, size, &p.filter)?;
    let (dsrc, dtmp, ddst) = (
        cu.alloc_for::<f32>(n)?,
        cu.alloc_for::<f32>(n)?,
        cu.alloc_for::<f32>(n)?,
    );
    let (wu, hu) = (u32_arg(w)?, u32_arg(h)?);
    let mut row_args = packed(rows.args().ptr(dtmp.ptr).ptr(dsrc.ptr).u32(wu).u32(hu))?;
    let mut col_args = packed(cols.args().ptr(ddst.ptr).ptr(dtmp.ptr).u32(wu).u32(hu))?;
    let blocks = (grid(w, TILE_2D)?, grid(h, TILE_2D)?, 1);
    let threads = (TILE_2D, TILE_2D, 1);
    let mut got = vec![0f32; n];
    sample(warmup, reps, || {
        cu.poison32(&ddst, NAN_BITS, n)?;
        let ((), ns) = timed(|| {
            cu.upload(&dsrc, &p.src)?;
            cu.launch(&rows, blocks, threads, &mut row_args)?;
            cu.launch(&cols, blocks, threads, &mut col_args)?;
            cu.download(&ddst, &mut got)
        })?;
        p.check(&got)?;
        Ok(ns)
    })
}

impl Compute for Cuda {
    fn vector_add(
        &mut self,
        n: usize,
        warmup: usize,
        reps: usize,
    ) -> Result<Vec<f64>, WorkloadError> {
        vector_add(self, n, warmup, reps)
    }
    fn matrix_mul(
        &mut self,
        key: &str,
        n: usize,
        warmup: usize,
        reps: usize,
    ) -> Result<Vec<f64>, WorkloadError> {
        matrix_mul(self, key, n, warmup, reps)
    }
    fn black_scholes(
        &mut self,
        key: &str,
        options: usize,
        warmup: usize,
        reps: usize,
    ) -> Result<Vec<f64>, WorkloadError> {
        black_scholes(self, key, options, warmup, reps)
    }
    fn fwt(
        &mut self,
        key: &str,
        log2_data: u32,
        log2_kernel: u32,
        warmup: usize,
        reps: usize,
    ) -> Result<Vec<f64>, WorkloadError> {
        fwt(self, key, log2_data, log2_kernel, warmup, reps)
    }
    fn convolution(
        &mut self,
        key: &str,
        width: usize,
        height: usize,
        warmup: usize,
        reps: usize,
    ) -> Result<Vec<f64>, WorkloadError> {
        convolution(self, key, width, height, warmup, reps)
    }
}
