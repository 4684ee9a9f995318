//! Compute workloads. Each timed run is what an application does to
//! offload the work: upload the inputs (non-blocking writes), run the
//! kernel(s), and read the result back (a blocking read). Outputs are
//! poisoned with NaN before each run and checked against the CPU reference
//! after it, outside the timed section.

use super::{arg, arg_buf, OpenCl, Source};
use crate::api::compute::Compute;
use crate::api::{sample, timed, WorkloadError};
use crate::problem;
use crate::reference;
use crate::workload::MATRIX_TILE;

const VECTOR_ADD: Source = Source {
    name: "vector_add",
    text: include_str!("kernels/vector_add.cl"),
    options: "",
};
const MATRIX_MUL: Source = Source {
    name: "matrix_mul",
    text: include_str!("kernels/matrix_mul.cl"),
    options: "",
};
const BLACK_SCHOLES: Source = Source {
    name: "black_scholes",
    text: include_str!("kernels/black_scholes.cl"),
    options: "",
};
const FWT: Source = Source {
    name: "fwt",
    text: include_str!("kernels/fwt.cl"),
    options: "",
};
const CONVOLUTION: Source = Source {
    name: "convolution",
    text: include_str!("kernels/convolution.cl"),
    options: "",
};

fn u32_arg(v: usize) -> Result<u32, WorkloadError> {
    u32::try_from(v).map_err(|_| WorkloadError::Unavailable(format!("size {v} exceeds u32")))
}

fn vector_add(
    cl: &mut OpenCl,
    n: usize,
    warmup: usize,
    reps: usize,
) -> Result<Vec<f64>, WorkloadError> {
    let p = problem::VectorAdd::new(n);
    let (a, b) = (&p.a, &p.b);
    let k = cl.kernel(&VECTOR_ADD, "vector_add")?;
    let (mut da, mut db, mut dc) = (cl.buffer(n)?, cl.buffer(n)?, cl.buffer(n)?);
    arg_buf(&k, 0, &da)?;
    arg_buf(&k, 1, &db)?;
    arg_buf(&k, 2, &dc)?;
    arg(&k, 3, u32_arg(n)?)?;
    let mut got = vec![0f32; n];
    sample(warmup, reps, || {
        cl.poison(&mut dc, f32::NAN, n)?;
        let ((), ns) = timed(|| {
            cl.post_write(&mut da, a)?;
            cl.post_write(&mut db, b)?;
            cl.launch(&k, &[n], None)?;
            cl.read(&dc, &mut got)
        })?;
        p.check(&got)?;
        Ok(ns)
    })
}

fn matrix_mul(
    cl: &mut OpenCl,
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
    let p = problem::MatrixMul::new(&mut cl.refs, key, n);
    let k = cl.kernel(&MATRIX_MUL, "matrix_mul")?;
    let (mut da, mut db, mut dc) = (cl.buffer(n * n)?, cl.buffer(n * n)?, cl.buffer(n * n)?);
    arg_buf(&k, 0, &da)?;
    arg_buf(&k, 1, &db)?;
    arg_buf(&k, 2, &dc)?;
    arg(&k, 3, u32_arg(n)?)?;
    let mut got = vec![0f32; n * n];
    sample(warmup, reps, || {
        cl.poison(&mut dc, f32::NAN, n * n)?;
        let ((), ns) = timed(|| {
            cl.post_write(&mut da, &p.a)?;
            cl.post_write(&mut db, &p.b)?;
            cl.launch(&k, &[n, n], Some(&[MATRIX_TILE, MATRIX_TILE]))?;
            cl.read(&dc, &mut got)
        })?;
        p.check(&got)?;
        Ok(ns)
    })
}

fn black_scholes(
    cl: &mut OpenCl,
    key: &str,
    n: usize,
    warmup: usize,
    reps: usize,
) -> Result<Vec<f64>, WorkloadError> {
    let p = problem::BlackScholes::new(&mut cl.refs, key, n);
    let k = cl.kernel(&BLACK_SCHOLES, "black_scholes")?;
    let (mut dcall, mut dput) = (cl.buffer(n)?, cl.buffer(n)?);
    let (mut ds, mut dx, mut dt) = (cl.buffer(n)?, cl.buffer(n)?, cl.buffer(n)?);
    arg_buf(&k, 0, &dcall)?;
    arg_buf(&k, 1, &dput)?;
    arg_buf(&k, 2, &ds)?;
    arg_buf(&k, 3, &dx)?;
    arg_buf(&k, 4, &dt)?;
    arg(&k, 5, reference::BS_RISK_FREE)?;
    arg(&k, 6, reference::BS_VOLATILITY)?;
    arg(&k, 7, u32_arg(n)?)?;
    let (mut call, mut put) = (vec![0f32; n], vec![0f32; n]);
    sample(warmup, reps, || {
        cl.poison(&mut dcall, f32::NAN, n)?;
        cl.poison(&mut dput, f32::NAN, n)?;
        let ((), ns) = timed(|| {
            cl.post_write(&mut ds, &p.s)?;
            cl.post_write(&mut dx, &p.x)?;
            cl.post_write(&mut dt, &p.t)?;
            cl.launch(&k, &[n], None)?;
            cl.read(&dcall, &mut call)?;
            cl.read(&dput, &mut put)
        })?;
        p.check(&call, &put)?;
        Ok(ns)
    })
}

fn fwt(
    cl: &mut OpenCl,
    key: &str,
    log2_data: u32,
    log2_kernel: u32,
    warmup: usize,
    reps: usize,
) -> Result<Vec<f64>, WorkloadError> {
    let p = problem::Fwt::new(&mut cl.refs, key, log2_data, log2_kernel).ok_or_else(|| {
        WorkloadError::Unavailable(format!(
            "fastWalshTransform sizes 2^{log2_data} / 2^{log2_kernel} are out of range"
        ))
    })?;
    let n = p.data.len();
    let stage = cl.kernel(&FWT, "fwt_stage")?;
    let modulate = cl.kernel(&FWT, "modulate")?;
    let (mut dd, mut dk) = (cl.buffer::<f32>(n)?, cl.buffer::<f32>(n)?);
    arg_buf(&modulate, 0, &dd)?;
    arg_buf(&modulate, 1, &dk)?;
    arg(&modulate, 2, 1.0f32 / n as f32)?;
    let transform = |cl: &OpenCl, buf: &opencl3::memory::Buffer<f32>| {
        arg_buf(&stage, 0, buf)?;
        let mut stride = 1usize;
        while stride < n {
            arg(&stage, 1, u32_arg(stride)?)?;
            cl.launch(&stage, &[n / 2], None)?;
            stride *= 2;
        }
        Ok::<(), WorkloadError>(())
    };
    let mut got = vec![0f32; n];
    sample(warmup, reps, || {
        // The data buffer is both input and output.
        cl.poison(&mut dd, f32::NAN, n)?;
        let ((), ns) = timed(|| {
            cl.post_write(&mut dd, &p.data)?;
            cl.post_write(&mut dk, &p.filter)?;
            transform(cl, &dd)?;
            transform(cl, &dk)?;
            cl.launch(&modulate, &[n], None)?;
            transform(cl, &dd)?;
            cl.read(&dd, &mut got)
        })?;
        p.check(&got)?;
        Ok(ns)
    })
}

fn convolution(
    cl: &mut OpenCl,
    key: &str,
    w: usize,
    h: usize,
    warmup: usize,
    reps: usize,
) -> Result<Vec<f64>, WorkloadError> {
    let n = w * h;
    let p = problem::Convolution::new(&mut cl.refs, key, w, h);
    let rows = cl.kernel(&CONVOLUTION, "conv_rows")?;
    let cols = cl.kernel(&CONVOLUTION, "conv_cols")?;
    let (mut dsrc, dtmp, mut ddst) = (cl.buffer(n)?, cl.buffer::<f32>(n)?, cl.buffer(n)?);
    let mut dk = cl.buffer(p.filter.len())?;
    cl.write(&mut dk, &p.filter)?;
    for (k, dst, from) in [(&rows, &dtmp, &dsrc), (&cols, &ddst, &dtmp)] {
        arg_buf(k, 0, dst)?;
        arg_buf(k, 1, from)?;
        arg_buf(k, 2, &dk)?;
        arg(k, 3, u32_arg(w)?)?;
        arg(k, 4, u32_arg(h)?)?;
    }
    let mut got = vec![0f32; n];
    sample(warmup, reps, || {
        cl.poison(&mut ddst, f32::NAN, n)?;
        let ((), ns) = timed(|| {
            cl.post_write(&mut dsrc, &p.src)?;
            cl.launch(&rows, &[w, h], None)?;
            cl.launch(&cols, &[w, h], None)?;
            cl.read(&ddst, &mut got)
        })?;
        p.check(&got)?;
        Ok(ns)
    })
}

impl Compute for OpenCl {
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
