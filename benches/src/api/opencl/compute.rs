//! The compute workloads' OpenCL C kernels (`kernels/*.cl`) and their
//! launches; the runs themselves are `api::compute`'s: non-blocking writes
//! of the inputs, the kernels, a blocking read of the result.

use std::rc::Rc;

use opencl3::kernel::Kernel;
use opencl3::memory::Buffer;

use super::{arg, arg_buf, Launch, OpenCl, Source};
use crate::api::compute::Compute;
use crate::api::device::{u32_arg, Device};
use crate::api::WorkloadError;
use crate::reference;
use crate::workload::MATRIX_TILE;

const VECTOR_ADD: Source = Source::plain("vector_add", include_str!("kernels/vector_add.cl"));
const MATRIX_MUL: Source = Source::plain("matrix_mul", include_str!("kernels/matrix_mul.cl"));
const BLACK_SCHOLES: Source =
    Source::plain("black_scholes", include_str!("kernels/black_scholes.cl"));
const FWT: Source = Source::plain("fwt", include_str!("kernels/fwt.cl"));
const CONVOLUTION: Source = Source::plain("convolution", include_str!("kernels/convolution.cl"));

impl Compute for OpenCl {
    type Stage = Kernel;

    fn vector_add_kernel(
        &mut self,
        a: &Buffer<f32>,
        b: &Buffer<f32>,
        c: &Buffer<f32>,
        n: usize,
    ) -> Result<Launch, WorkloadError> {
        let k = self.kernel(&VECTOR_ADD, "vector_add")?;
        arg_buf(&k, 0, a)?;
        arg_buf(&k, 1, b)?;
        arg_buf(&k, 2, c)?;
        arg(&k, 3, u32_arg(n)?)?;
        Ok(Launch::new(k, &[n], None))
    }

    fn matrix_mul_kernel(
        &mut self,
        a: &Buffer<f32>,
        b: &Buffer<f32>,
        c: &Buffer<f32>,
        n: usize,
    ) -> Result<Launch, WorkloadError> {
        let k = self.kernel(&MATRIX_MUL, "matrix_mul")?;
        arg_buf(&k, 0, a)?;
        arg_buf(&k, 1, b)?;
        arg_buf(&k, 2, c)?;
        arg(&k, 3, u32_arg(n)?)?;
        Ok(Launch::new(k, &[n, n], Some(&[MATRIX_TILE, MATRIX_TILE])))
    }

    fn black_scholes_kernel(
        &mut self,
        call: &Buffer<f32>,
        put: &Buffer<f32>,
        [s, x, t]: [&Buffer<f32>; 3],
        n: usize,
    ) -> Result<Launch, WorkloadError> {
        let k = self.kernel(&BLACK_SCHOLES, "black_scholes")?;
        arg_buf(&k, 0, call)?;
        arg_buf(&k, 1, put)?;
        arg_buf(&k, 2, s)?;
        arg_buf(&k, 3, x)?;
        arg_buf(&k, 4, t)?;
        arg(&k, 5, reference::BS_RISK_FREE)?;
        arg(&k, 6, reference::BS_VOLATILITY)?;
        arg(&k, 7, u32_arg(n)?)?;
        Ok(Launch::new(k, &[n], None))
    }

    fn fwt_kernels(
        &mut self,
        data: &Buffer<f32>,
        filter: &Buffer<f32>,
        n: usize,
    ) -> Result<(Kernel, Launch), WorkloadError> {
        let stage = self.kernel(&FWT, "fwt_stage")?;
        let modulate = self.kernel(&FWT, "modulate")?;
        arg_buf(&modulate, 0, data)?;
        arg_buf(&modulate, 1, filter)?;
        arg(&modulate, 2, 1.0f32 / n as f32)?;
        Ok((stage, Launch::new(modulate, &[n], None)))
    }

    /// The buffer is bound once per transform, the stride before each
    /// stage.
    fn fwt_transform(
        &self,
        stage: &Kernel,
        buf: &Buffer<f32>,
        n: usize,
    ) -> Result<(), WorkloadError> {
        arg_buf(stage, 0, buf)?;
        let mut stride = 1usize;
        while stride < n {
            arg(stage, 1, u32_arg(stride)?)?;
            OpenCl::launch_on(&self.queue, stage, &[n / 2], None)?;
            stride *= 2;
        }
        Ok(())
    }

    /// The filter goes into a buffer of its own, which the launches keep.
    fn convolution_kernels(
        &mut self,
        src: &Buffer<f32>,
        tmp: &Buffer<f32>,
        dst: &Buffer<f32>,
        filter: &[f32],
        w: usize,
        h: usize,
    ) -> Result<[Launch; 2], WorkloadError> {
        let rows = self.kernel(&CONVOLUTION, "conv_rows")?;
        let cols = self.kernel(&CONVOLUTION, "conv_cols")?;
        let mut dk = self.alloc(filter.len())?;
        self.write(&mut dk, filter)?;
        for (k, out, from) in [(&rows, tmp, src), (&cols, dst, tmp)] {
            arg_buf(k, 0, out)?;
            arg_buf(k, 1, from)?;
            arg_buf(k, 2, &dk)?;
            arg(k, 3, u32_arg(w)?)?;
            arg(k, 4, u32_arg(h)?)?;
        }
        let dk = Rc::new(dk);
        Ok([rows, cols].map(|k| Launch {
            _keep: Some(Rc::clone(&dk)),
            ..Launch::new(k, &[w, h], None)
        }))
    }
}
