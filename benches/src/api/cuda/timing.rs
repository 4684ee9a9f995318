//! asyncAPI and clock as CUDA's samples do them, and the launch-rate
//! kernel; the micro-benchmarks themselves are `api::timing`'s.

use std::ptr::null_mut;

use cudarc::driver::sys::{self as cu, CUresult};

use super::kernels::TIMING;
use super::{check, Cuda, DevBuf, Launch, Pinned};
use crate::api::device::{u32_arg, Device};
use crate::api::timing::{issue_and_poll, Timing};
use crate::api::{sample_with, timed, WorkloadError};
use crate::ipc::Measurement;
use crate::problem::{self, ASYNC_INCREMENT};
use crate::workload::CLOCK_GROUP_SIZE;

/// Nanoseconds for `cycles` SM clock cycles at `khz`.
fn cycles_to_ns(cycles: f64, khz: i32) -> f64 {
    cycles * 1e6 / f64::from(khz)
}

/// The mean over blocks of each block's `end - start` clock64 stamps
/// (`stamps` holds the starts of every block, then the ends).
fn mean_block_cycles(stamps: &[i64]) -> Result<f64, String> {
    let blocks = stamps.len() / 2;
    if blocks == 0 {
        return Err("no blocks".into());
    }
    let (starts, ends) = stamps.split_at(blocks);
    let mut sum = 0f64;
    for (b, (&s, &e)) in starts.iter().zip(ends).enumerate() {
        if e <= s {
            return Err(format!(
                "block {b}'s clock64() stamps do not advance: start {s}, end {e}"
            ));
        }
        sum += (e - s) as f64;
    }
    Ok(sum / blocks as f64)
}

/// Counts one cycle as one nanosecond when the device reports no clock
/// rate: both sides use the same rate, so their ratio is unaffected.
const NOMINAL_KHZ: i32 = 1_000_000;

impl Timing for Cuda {
    fn tick_kernel(&mut self, counter: &DevBuf) -> Result<Launch, WorkloadError> {
        let k = self.func(&TIMING, "tick")?;
        k.bind(k.args().ptr(counter.ptr), (1, 1, 1), (1, 1, 1))
    }

    /// asyncAPI, as CUDA's sample does it: from and into `cuMemAllocHost`
    /// memory, an asynchronous upload, a kernel and an asynchronous
    /// download on the stream, an event recorded behind them, then the
    /// host polls the event (`cuEventQuery`). `issue_ns` covers the four
    /// calls.
    fn async_api(
        &mut self,
        n: usize,
        warmup: usize,
        reps: usize,
    ) -> Result<Measurement, WorkloadError> {
        let p = problem::AsyncApi::new(n);
        let k = self.func(&TIMING, "increment")?;
        let dev = self.alloc::<i32>(n)?;
        let bytes = n * 4;
        let mut host = Pinned::new(bytes)?;
        let mut increment = k.over(
            k.args().ptr(dev.ptr).i32(ASYNC_INCREMENT).u32(u32_arg(n)?),
            n,
        )?;
        let done = self.event()?;
        let stream: cu::CUstream = null_mut();
        let cu = &*self;
        sample_with(warmup, reps, ["issue_ns", "host_polls"], || {
            host.ints_mut().copy_from_slice(&p.data);
            let buf = host.as_mut().as_mut_ptr();
            let run = issue_and_poll(
                || {
                    // SAFETY: `buf` holds `bytes` bytes of host-allocated
                    // memory that nothing else touches until the event
                    // completes (or, on failure, until the synchronize of
                    // `settle`); `dev` holds as many.
                    unsafe {
                        check(
                            cu::cuMemcpyHtoDAsync_v2(dev.ptr, buf.cast(), bytes, stream),
                            "cuMemcpyHtoDAsync",
                        )?;
                        cu.launch(&mut increment)?;
                        check(
                            cu::cuMemcpyDtoHAsync_v2(buf.cast(), dev.ptr, bytes, stream),
                            "cuMemcpyDtoHAsync",
                        )?;
                        check(cu::cuEventRecord(done.0, stream), "cuEventRecord")
                    }
                },
                // SAFETY: a live event.
                |()| match unsafe { cu::cuEventQuery(done.0) } {
                    CUresult::CUDA_SUCCESS => Ok(true),
                    CUresult::CUDA_ERROR_NOT_READY => Ok(false),
                    other => check(other, "cuEventQuery").map(|()| false),
                },
                || {
                    let _ = cu.sync();
                },
            )?;
            p.check(host.ints_mut())?;
            Ok((run.total_ns, [run.issue_ns, run.polls as f64]))
        })
    }

    /// clock, as CUDA's sample does it: a reduction kernel whose blocks
    /// time themselves with `clock64()`. The sample is the mean cycles per
    /// block at the SM clock rate the device reports
    /// (`CU_DEVICE_ATTRIBUTE_CLOCK_RATE`, or [`NOMINAL_KHZ`] without it),
    /// in nanoseconds; the cycles and the rate used are kept beside it too.
    fn clock(
        &mut self,
        groups: usize,
        group_size: usize,
        warmup: usize,
        reps: usize,
    ) -> Result<Measurement, WorkloadError> {
        if group_size != CLOCK_GROUP_SIZE {
            return Err(WorkloadError::Unavailable(format!(
                "clock is built for blocks of {CLOCK_GROUP_SIZE}, not {group_size}"
            )));
        }
        let khz = self.clock_khz.unwrap_or(NOMINAL_KHZ);
        let p = problem::Clock::new(groups, group_size);
        let k = self.func(&TIMING, "group_sum")?;
        let mut din = self.alloc::<i32>(groups * group_size)?;
        let mut dout = self.alloc::<i32>(groups)?;
        let dtimer = self.alloc::<i64>(2 * groups)?;
        self.write(&mut din, &p.input)?;
        let (blocks, threads) = (u32_arg(groups)?, u32_arg(group_size)?);
        let mut sum = k.bind(
            k.args().ptr(din.ptr).ptr(dout.ptr).ptr(dtimer.ptr),
            (blocks, 1, 1),
            (threads, 1, 1),
        )?;
        let mut sums = vec![0i32; groups];
        let mut stamps = vec![0i64; 2 * groups];
        let cu = &*self;
        let names = ["host_wall_ns", "device_cycles", "clock_khz"];
        sample_with(warmup, reps, names, || {
            cu.poison(&mut dout, i32::MIN, groups)?;
            cu.poison8(&dtimer, 0)?;
            let ((), host_ns) = timed(|| {
                cu.launch(&mut sum)?;
                cu.sync()
            })?;
            cu.read(&dout, &mut sums)?;
            p.check(&sums)?;
            cu.read(&dtimer, &mut stamps)?;
            let c = mean_block_cycles(&stamps).map_err(WorkloadError::Unavailable)?;
            Ok((cycles_to_ns(c, khz), [host_ns, c, f64::from(khz)]))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_cycles_are_averaged_and_must_advance() {
        assert_eq!(mean_block_cycles(&[10, 20, 110, 140]).unwrap(), 110.0);
        let e = mean_block_cycles(&[10, 20, 110, 20]).unwrap_err();
        assert!(e.contains("block 1"), "{e}");
        // Unwritten stamps (the poison) are refused.
        assert!(mean_block_cycles(&[0, 0]).is_err());
        assert!(mean_block_cycles(&[]).is_err());
        // 1980 cycles at 1.98 GHz is one microsecond.
        assert!((cycles_to_ns(1980.0, 1_980_000) - 1000.0).abs() < 1e-9);
    }
}
