//! Workloads about when work happens: asyncAPI (does the host stay free
//! while copies and a kernel run?), clock (a kernel timing itself with
//! `clock64()`), and the micro-benchmarks (null round trip, launch rate).

use std::collections::BTreeMap;
use std::ptr::null_mut;
use std::time::Instant;

use cudarc::driver::sys::{self as cu, CUresult};

use super::kernels::{BLOCK, TIMING};
use super::{check, grid, packed, u32_arg, Cuda, Pinned};
use crate::api::timing::Timing;
use crate::api::{sample, timed, WorkloadError};
use crate::ipc::Measurement;
use crate::problem::{self, ASYNC_INCREMENT};
use crate::workload::CLOCK_GROUP_SIZE;

/// asyncAPI, as CUDA's sample does it: from and into `cuMemAllocHost`
/// memory, an asynchronous upload, a kernel and an asynchronous download
/// on the stream, an event recorded behind them, then the host polls the
/// event (`cuEventQuery`), counting the polls as the work it could have
/// done meanwhile. The sample is the whole time; the time spent issuing
/// the four calls and the poll count are recorded beside it.
fn async_api(
    cu: &mut Cuda,
    n: usize,
    warmup: usize,
    reps: usize,
) -> Result<Measurement, WorkloadError> {
    let p = problem::AsyncApi::new(n);
    let k = cu.func(&TIMING, "increment")?;
    let dev = cu.alloc_for::<i32>(n)?;
    let bytes = n * 4;
    let mut host = Pinned::new(bytes)?;
    let mut args = packed(k.args().ptr(dev.ptr).i32(ASYNC_INCREMENT).u32(u32_arg(n)?))?;
    let blocks = grid(n, BLOCK)?;
    let done = cu.event()?;
    let stream: cu::CUstream = null_mut();
    let mut issue = Vec::new();
    let mut polls = Vec::new();
    let mut one = || {
        host.ints_mut().copy_from_slice(&p.data);
        let buf = host.bytes_mut().as_mut_ptr();
        let start = Instant::now();
        let waited = (|| {
            // SAFETY: `buf` holds `bytes` bytes of host-allocated memory
            // that nothing else touches until the event completes (or,
            // on failure, until the synchronize below); `dev` holds as
            // many.
            unsafe {
                check(
                    cu::cuMemcpyHtoDAsync_v2(dev.ptr, buf.cast(), bytes, stream),
                    "cuMemcpyHtoDAsync",
                )?;
                cu.launch(&k, (blocks, 1, 1), (BLOCK, 1, 1), &mut args)?;
                check(
                    cu::cuMemcpyDtoHAsync_v2(buf.cast(), dev.ptr, bytes, stream),
                    "cuMemcpyDtoHAsync",
                )?;
                check(cu::cuEventRecord(done.0, stream), "cuEventRecord")?;
            }
            let issued = start.elapsed().as_nanos() as f64;
            let mut count = 0u64;
            loop {
                // SAFETY: a live event.
                match unsafe { cu::cuEventQuery(done.0) } {
                    CUresult::CUDA_SUCCESS => break,
                    CUresult::CUDA_ERROR_NOT_READY => count += 1,
                    other => check(other, "cuEventQuery")?,
                }
                std::hint::spin_loop();
            }
            Ok::<_, WorkloadError>((issued, count))
        })();
        let total = start.elapsed().as_nanos() as f64;
        let (issued, count) = match waited {
            Ok(v) => v,
            Err(e) => {
                // Make sure nothing still writes into `host`.
                let _ = cu.sync();
                return Err(e);
            }
        };
        p.check(host.ints_mut())?;
        issue.push(issued);
        polls.push(count as f64);
        Ok(total)
    };
    let samples_ns = sample(warmup, reps, &mut one)?;
    // Keep the secondary figures of the timed runs only.
    let skip = issue.len() - samples_ns.len();
    let extra = BTreeMap::from([
        ("issue_ns".to_string(), issue.split_off(skip)),
        ("host_polls".to_string(), polls.split_off(skip)),
    ]);
    Ok(Measurement { samples_ns, extra })
}

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

/// clock, as CUDA's sample does it: a reduction kernel whose blocks time
/// themselves with `clock64()`. The sample is the mean cycles per block at
/// the SM clock rate the device reports (`CU_DEVICE_ATTRIBUTE_CLOCK_RATE`,
/// or [`NOMINAL_KHZ`] without it), in nanoseconds; the cycles, the rate
/// used and the host's wall time around the launch are kept beside it.
fn clock(
    cu: &mut Cuda,
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
    let khz = cu.clock_khz.unwrap_or(NOMINAL_KHZ);
    let p = problem::Clock::new(groups, group_size);
    let k = cu.func(&TIMING, "group_sum")?;
    let din = cu.alloc_for::<i32>(groups * group_size)?;
    let dout = cu.alloc_for::<i32>(groups)?;
    let dtimer = cu.alloc_for::<i64>(2 * groups)?;
    cu.upload(&din, &p.input)?;
    let mut args = packed(k.args().ptr(din.ptr).ptr(dout.ptr).ptr(dtimer.ptr))?;
    let (blocks, threads) = (u32_arg(groups)?, u32_arg(group_size)?);
    let mut sums = vec![0i32; groups];
    let mut stamps = vec![0i64; 2 * groups];
    let mut wall = Vec::new();
    let mut cycles = Vec::new();
    let samples_ns = sample(warmup, reps, || {
        cu.poison32(&dout, i32::MIN as u32, groups)?;
        cu.poison8(&dtimer, 0)?;
        let ((), host_ns) = timed(|| {
            cu.launch(&k, (blocks, 1, 1), (threads, 1, 1), &mut args)?;
            cu.sync()
        })?;
        cu.download(&dout, &mut sums)?;
        p.check(&sums)?;
        cu.download(&dtimer, &mut stamps)?;
        let c = mean_block_cycles(&stamps).map_err(WorkloadError::Unavailable)?;
        wall.push(host_ns);
        cycles.push(c);
        Ok(cycles_to_ns(c, khz))
    })?;
    let skip = wall.len() - samples_ns.len();
    let extra = BTreeMap::from([
        ("host_wall_ns".to_string(), wall.split_off(skip)),
        ("device_cycles".to_string(), cycles.split_off(skip)),
        (
            "clock_khz".to_string(),
            vec![f64::from(khz); samples_ns.len()],
        ),
    ]);
    Ok(Measurement { samples_ns, extra })
}

/// The null round trip: `cuCtxSynchronize` on an idle context. It moves
/// no data, so there is nothing to verify beyond the call succeeding.
fn null_sync(cu: &mut Cuda, warmup: usize, reps: usize) -> Result<Vec<f64>, WorkloadError> {
    sample(warmup, reps, || Ok(timed(|| cu.sync())?.1))
}

/// Launch rate: `launches` one-thread kernels, launched asynchronously,
/// then `cuCtxSynchronize`. Each launch increments a counter, which must
/// read `launches` afterwards.
fn launch_rate(
    cu: &mut Cuda,
    launches: usize,
    warmup: usize,
    reps: usize,
) -> Result<Vec<f64>, WorkloadError> {
    let k = cu.func(&TIMING, "tick")?;
    let count = cu.alloc_for::<u32>(1)?;
    let mut args = packed(k.args().ptr(count.ptr))?;
    let mut got = [0u32];
    sample(warmup, reps, || {
        cu.poison32(&count, 0, 1)?;
        let ((), ns) = timed(|| {
            for _ in 0..launches {
                cu.launch(&k, (1, 1, 1), (1, 1, 1), &mut args)?;
            }
            cu.sync()
        })?;
        cu.download(&count, &mut got)?;
        problem::check_launch_count(got[0], launches)?;
        Ok(ns)
    })
}

impl Timing for Cuda {
    fn async_api(
        &mut self,
        n: usize,
        warmup: usize,
        reps: usize,
    ) -> Result<Measurement, WorkloadError> {
        async_api(self, n, warmup, reps)
    }
    fn clock(
        &mut self,
        groups: usize,
        group_size: usize,
        warmup: usize,
        reps: usize,
    ) -> Result<Measurement, WorkloadError> {
        clock(self, groups, group_size, warmup, reps)
    }
    fn null_sync(&mut self, warmup: usize, reps: usize) -> Result<Vec<f64>, WorkloadError> {
        null_sync(self, warmup, reps)
    }
    fn launch_rate(
        &mut self,
        launches: usize,
        warmup: usize,
        reps: usize,
    ) -> Result<Vec<f64>, WorkloadError> {
        launch_rate(self, launches, warmup, reps)
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
