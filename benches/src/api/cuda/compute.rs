//! The compute workloads' CUDA kernels (`kernels/*.cu`) and their
//! launches; the runs themselves are `api::compute`'s: copies in with
//! `cuMemcpyHtoD`, the kernels, the result back with `cuMemcpyDtoH`
//! (which waits for them).

use super::kernels::{BLACK_SCHOLES, CONVOLUTION, CONV_FILTER, FWT, MATRIX_MUL, VECTOR_ADD};
use super::{grid, Cuda, DevBuf, Func, Launch};
use crate::api::compute::Compute;
use crate::api::device::{u32_arg, Device};
use crate::api::WorkloadError;
use crate::reference;
use crate::workload::MATRIX_TILE;

/// Side of the 2D blocks of the convolution.
const TILE_2D: u32 = 16;

impl Compute for Cuda {
    type Stage = Func;

    fn vector_add_kernel(
        &mut self,
        a: &DevBuf,
        b: &DevBuf,
        c: &DevBuf,
        n: usize,
    ) -> Result<Launch, WorkloadError> {
        let k = self.func(&VECTOR_ADD, "vector_add")?;
        let args = k.args().ptr(a.ptr).ptr(b.ptr).ptr(c.ptr).u32(u32_arg(n)?);
        k.over(args, n)
    }

    fn matrix_mul_kernel(
        &mut self,
        a: &DevBuf,
        b: &DevBuf,
        c: &DevBuf,
        n: usize,
    ) -> Result<Launch, WorkloadError> {
        let k = self.func(&MATRIX_MUL, "matrix_mul")?;
        let args = k.args().ptr(a.ptr).ptr(b.ptr).ptr(c.ptr).u32(u32_arg(n)?);
        // The kernel's TILE: one block per TILE x TILE block of C.
        let tile = u32_arg(MATRIX_TILE)?;
        let tiles = u32_arg(n / MATRIX_TILE)?;
        k.bind(args, (tiles, tiles, 1), (tile, tile, 1))
    }

    fn black_scholes_kernel(
        &mut self,
        call: &DevBuf,
        put: &DevBuf,
        [s, x, t]: [&DevBuf; 3],
        n: usize,
    ) -> Result<Launch, WorkloadError> {
        let k = self.func(&BLACK_SCHOLES, "black_scholes")?;
        let args = k
            .args()
            .ptr(call.ptr)
            .ptr(put.ptr)
            .ptr(s.ptr)
            .ptr(x.ptr)
            .ptr(t.ptr)
            .f32(reference::BS_RISK_FREE)
            .f32(reference::BS_VOLATILITY)
            .u32(u32_arg(n)?);
        k.over(args, n)
    }

    fn fwt_kernels(
        &mut self,
        data: &DevBuf,
        filter: &DevBuf,
        n: usize,
    ) -> Result<(Func, Launch), WorkloadError> {
        let stage = self.func(&FWT, "fwt_stage")?;
        let modulate = self.func(&FWT, "modulate")?;
        let args = modulate
            .args()
            .ptr(data.ptr)
            .ptr(filter.ptr)
            .f32(1.0 / n as f32)
            .u32(u32_arg(n)?);
        Ok((stage, modulate.over(args, n)?))
    }

    /// Each stage's arguments are packed as it is launched, in order on
    /// the stream.
    fn fwt_transform(&self, stage: &Func, buf: &DevBuf, n: usize) -> Result<(), WorkloadError> {
        let half = n / 2;
        let mut stride = 1usize;
        while stride < n {
            let args = stage
                .args()
                .ptr(buf.ptr)
                .u32(u32_arg(stride)?)
                .u32(u32_arg(half)?);
            self.launch(&mut stage.over(args, half)?)?;
            stride *= 2;
        }
        Ok(())
    }

    /// The filter goes into the module's constant memory.
    fn convolution_kernels(
        &mut self,
        src: &DevBuf,
        tmp: &DevBuf,
        dst: &DevBuf,
        filter: &[f32],
        w: usize,
        h: usize,
    ) -> Result<[Launch; 2], WorkloadError> {
        let rows = self.func(&CONVOLUTION, "conv_rows")?;
        let cols = self.func(&CONVOLUTION, "conv_cols")?;
        let (global, size) = self.global(&CONVOLUTION, CONV_FILTER)?;
        self.upload_to(global, size, filter)?;
        let (wu, hu) = (u32_arg(w)?, u32_arg(h)?);
        let blocks = (grid(w, TILE_2D)?, grid(h, TILE_2D)?, 1);
        let threads = (TILE_2D, TILE_2D, 1);
        Ok([
            rows.bind(
                rows.args().ptr(tmp.ptr).ptr(src.ptr).u32(wu).u32(hu),
                blocks,
                threads,
            )?,
            cols.bind(
                cols.args().ptr(dst.ptr).ptr(tmp.ptr).u32(wu).u32(hu),
                blocks,
                threads,
            )?,
        ])
    }
}
