//! asyncAPI and clock in OpenCL, and the launch-rate kernel; the
//! micro-benchmarks themselves are `api::timing`'s.

use opencl3::event::CL_COMPLETE;
use opencl3::memory::Buffer;
use opencl3::types::CL_NON_BLOCKING;

use super::{arg, arg_buf, Cl, Launch, OpenCl, Source};
use crate::api::device::Device;
use crate::api::timing::{issue_and_poll, Timing};
use crate::api::{sample_with, timed, WorkloadError};
use crate::ipc::Measurement;
use crate::problem::{self, ASYNC_INCREMENT};

const TIMING: Source = Source {
    name: "timing",
    text: include_str!("kernels/timing.cl"),
    options: "-DGROUP=256",
};

/// The work-group size `TIMING` is built for.
const GROUP: usize = 256;

impl Timing for OpenCl {
    fn tick_kernel(&mut self, counter: &Buffer<u32>) -> Result<Launch, WorkloadError> {
        let k = self.kernel(&TIMING, "tick")?;
        arg_buf(&k, 0, counter)?;
        Ok(Launch::new(k, &[1], None))
    }

    /// asyncAPI: a non-blocking upload, a kernel and a non-blocking
    /// download, then the host polls the download's event. `issue_ns`
    /// covers the three enqueue calls.
    fn async_api(
        &mut self,
        n: usize,
        warmup: usize,
        reps: usize,
    ) -> Result<Measurement, WorkloadError> {
        let p = problem::AsyncApi::new(n);
        let k = self.kernel(&TIMING, "increment")?;
        let mut dev = self.alloc::<i32>(n)?;
        arg_buf(&k, 0, &dev)?;
        arg(&k, 1, ASYNC_INCREMENT)?;
        let mut increment = Launch::new(k, &[n], None);
        let mut out = vec![0i32; n];
        let cl = &*self;
        sample_with(warmup, reps, ["issue_ns", "host_polls"], || {
            out.fill(0);
            let run = issue_and_poll(
                || {
                    cl.upload(&mut dev, &p.data)?;
                    cl.launch(&mut increment)?;
                    // SAFETY: `out` is neither read nor moved until the
                    // event reports completion (or, on failure, until the
                    // `clFinish` of `settle`).
                    unsafe {
                        cl.queue
                            .enqueue_read_buffer(&dev, CL_NON_BLOCKING, 0, &mut out, &[])
                    }
                    .cl("clEnqueueReadBuffer")
                },
                |done| {
                    let status = done.command_execution_status().cl("clGetEventInfo")?;
                    Ok(status.0 == CL_COMPLETE)
                },
                || {
                    let _ = cl.sync();
                },
            )?;
            p.check(&out)?;
            Ok((run.total_ns, [run.issue_ns, run.polls as f64]))
        })
    }

    /// clock: CUDA kernels read the SM's `clock()`; OpenCL C has no
    /// portable in-kernel clock, so the portable equivalent is event
    /// profiling: the device stamps the command's start and end
    /// (`CL_PROFILING_COMMAND_START`/`END`).
    fn clock(
        &mut self,
        groups: usize,
        group_size: usize,
        warmup: usize,
        reps: usize,
    ) -> Result<Measurement, WorkloadError> {
        if group_size != GROUP {
            return Err(WorkloadError::Unavailable(format!(
                "clock is built for work-groups of {GROUP}, not {group_size}"
            )));
        }
        let n = groups * group_size;
        let p = problem::Clock::new(groups, group_size);
        let k = self.kernel(&TIMING, "group_sum")?;
        let mut din = self.alloc::<i32>(n)?;
        let mut dout = self.alloc::<i32>(groups)?;
        self.write(&mut din, &p.input)?;
        arg_buf(&k, 0, &din)?;
        arg_buf(&k, 1, &dout)?;
        self.profiling_queue()?;
        let mut got = vec![0i32; groups];
        let cl = &*self;
        sample_with(warmup, reps, ["host_wall_ns"], || {
            cl.poison(&mut dout, i32::MIN, groups)?;
            let q = cl
                .profiling
                .as_ref()
                .ok_or_else(|| WorkloadError::Unavailable("profiling queue".into()))?;
            let (event, host_ns) = timed(|| {
                let e = OpenCl::launch_on(q, &k, &[n], Some(&[group_size]))?;
                e.wait().cl("clWaitForEvents")?;
                Ok::<_, WorkloadError>(e)
            })?;
            let start = event
                .profiling_command_start()
                .cl("clGetEventProfilingInfo")?;
            let end = event
                .profiling_command_end()
                .cl("clGetEventProfilingInfo")?;
            cl.read(&dout, &mut got)?;
            p.check(&got)?;
            if end < start {
                return Err(WorkloadError::Unavailable(format!(
                    "device timestamps go backwards: start {start}, end {end}"
                )));
            }
            Ok(((end - start) as f64, [host_ns]))
        })
    }
}
