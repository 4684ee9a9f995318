//! Workloads about when work happens: asyncAPI (does the host stay free
//! while copies and a kernel run?), clock (the device timing a kernel), and
//! the micro-benchmarks (null round trip, launch rate).

use std::collections::BTreeMap;
use std::time::Instant;

use opencl3::event::CL_COMPLETE;
use opencl3::types::CL_NON_BLOCKING;

use super::{arg, arg_buf, Cl, OpenCl, Source};
use crate::api::timing::Timing;
use crate::api::{sample, timed, WorkloadError};
use crate::ipc::Measurement;
use crate::problem::{self, ASYNC_INCREMENT};

const TIMING: Source = Source {
    name: "timing",
    text: include_str!("kernels/timing.cl"),
    options: "-DGROUP=256",
};

/// The work-group size `TIMING` is built for.
const GROUP: usize = 256;

/// asyncAPI: a non-blocking upload, a kernel and a non-blocking download,
/// then the host polls the download's event, counting the polls as the
/// work it could have done meanwhile. The sample is the whole time; the
/// time spent inside the three enqueue calls and the poll count are
/// recorded beside it (a runtime that makes the host wait inside the
/// enqueue calls shows a large `issue_ns` and few polls).
fn async_api(
    cl: &mut OpenCl,
    n: usize,
    warmup: usize,
    reps: usize,
) -> Result<Measurement, WorkloadError> {
    let p = problem::AsyncApi::new(n);
    let k = cl.kernel(&TIMING, "increment")?;
    let mut dev = cl.buffer::<i32>(n)?;
    arg_buf(&k, 0, &dev)?;
    arg(&k, 1, ASYNC_INCREMENT)?;
    let mut out = vec![0i32; n];
    let mut issue = Vec::new();
    let mut polls = Vec::new();
    let mut one = || {
        out.fill(0);
        let start = Instant::now();
        let waited = (|| {
            cl.post_write(&mut dev, &p.data)?;
            cl.launch(&k, &[n], None)?;
            // SAFETY: `out` is neither read nor moved until the event below
            // reports completion (or, on failure, until `finish`).
            let done = unsafe {
                cl.queue
                    .enqueue_read_buffer(&dev, CL_NON_BLOCKING, 0, &mut out, &[])
            }
            .cl("clEnqueueReadBuffer")?;
            let issued = start.elapsed().as_nanos() as f64;
            let mut count = 0u64;
            while done.command_execution_status().cl("clGetEventInfo")?.0 != CL_COMPLETE {
                count += 1;
                std::hint::spin_loop();
            }
            Ok::<_, WorkloadError>((issued, count))
        })();
        let total = start.elapsed().as_nanos() as f64;
        let (issued, count) = match waited {
            Ok(v) => v,
            Err(e) => {
                // Make sure nothing still writes into `out`.
                let _ = cl.finish();
                return Err(e);
            }
        };
        p.check(&out)?;
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

/// clock: a reduction kernel timed by the device itself. CUDA kernels read
/// the SM's `clock()`; OpenCL C has no portable in-kernel clock, so the
/// portable equivalent is event profiling: the device stamps the command's
/// start and end (`CL_PROFILING_COMMAND_START`/`END`). The sample is that
/// device time; the host's wall time around the launch is kept beside it.
fn clock(
    cl: &mut OpenCl,
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
    let k = cl.kernel(&TIMING, "group_sum")?;
    let mut din = cl.buffer::<i32>(n)?;
    let mut dout = cl.buffer::<i32>(groups)?;
    cl.write(&mut din, &p.input)?;
    arg_buf(&k, 0, &din)?;
    arg_buf(&k, 1, &dout)?;
    cl.profiling_queue()?;
    let mut got = vec![0i32; groups];
    let mut wall = Vec::new();
    let samples_ns = sample(warmup, reps, || {
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
        wall.push(host_ns);
        Ok((end - start) as f64)
    })?;
    let skip = wall.len() - samples_ns.len();
    let extra = BTreeMap::from([("host_wall_ns".to_string(), wall.split_off(skip))]);
    Ok(Measurement { samples_ns, extra })
}

/// The null round trip: a synchronizing call on an idle queue. It moves no
/// data, so there is nothing to verify beyond the call succeeding.
fn null_sync(cl: &mut OpenCl, warmup: usize, reps: usize) -> Result<Vec<f64>, WorkloadError> {
    sample(warmup, reps, || Ok(timed(|| cl.finish())?.1))
}

/// Launch rate: `launches` one-work-item kernels, then a synchronizing
/// call. Each launch increments a counter, which must read `launches`
/// afterwards.
fn launch_rate(
    cl: &mut OpenCl,
    launches: usize,
    warmup: usize,
    reps: usize,
) -> Result<Vec<f64>, WorkloadError> {
    let k = cl.kernel(&TIMING, "tick")?;
    let mut count = cl.buffer::<u32>(1)?;
    arg_buf(&k, 0, &count)?;
    let mut got = [0u32];
    sample(warmup, reps, || {
        cl.poison(&mut count, 0u32, 1)?;
        let ((), ns) = timed(|| {
            for _ in 0..launches {
                cl.launch(&k, &[1], None)?;
            }
            cl.finish()
        })?;
        cl.read(&count, &mut got)?;
        problem::check_launch_count(got[0], launches)?;
        Ok(ns)
    })
}

impl Timing for OpenCl {
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
