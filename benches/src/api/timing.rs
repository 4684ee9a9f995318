//! The workloads about when work happens: asyncAPI (does the host stay
//! free while copies and a kernel run?), clock (the device timing a
//! kernel), and the micro-benchmarks (null round trip, launch rate). The
//! micro-benchmarks are written once here; asyncAPI and clock are each
//! API's own, since which calls they make is their point, over
//! [`issue_and_poll`] and [`super::sample_with`].

use std::time::Instant;

use super::device::Device;
use super::{sample, timed, WorkloadError};
use crate::ipc::Measurement;
use crate::problem;

/// What the timing workloads need of an API beyond [`Device`].
pub(crate) trait Timing: Device {
    /// The launch-rate kernel: one work item adding one to `counter`.
    fn tick_kernel(&mut self, counter: &Self::Buf<u32>) -> Result<Self::Launch, WorkloadError>;

    /// asyncAPI over `n` ints: the sample is the whole time of a run;
    /// `issue_ns` and `host_polls` ([`issue_and_poll`]) are kept beside it.
    fn async_api(
        &mut self,
        n: usize,
        warmup: usize,
        reps: usize,
    ) -> Result<Measurement, WorkloadError>;

    /// clock: a reduction over `groups` groups of `group_size` ints that
    /// the device times; the sample is the device's time, the host's wall
    /// time around the launch (`host_wall_ns`) is kept beside it.
    fn clock(
        &mut self,
        groups: usize,
        group_size: usize,
        warmup: usize,
        reps: usize,
    ) -> Result<Measurement, WorkloadError>;
}

/// The null round trip: a synchronizing call on an idle device. It moves
/// no data, so there is nothing to verify beyond the call succeeding.
pub(crate) fn null_sync<D: Device>(
    d: &mut D,
    warmup: usize,
    reps: usize,
) -> Result<Vec<f64>, WorkloadError> {
    sample(warmup, reps, || Ok(timed(|| d.sync())?.1))
}

/// Launch rate: `launches` one-thread kernels, issued without waiting,
/// then a synchronizing call. Each launch increments a counter, which must
/// read `launches` afterwards.
pub(crate) fn launch_rate<D: Timing>(
    d: &mut D,
    launches: usize,
    warmup: usize,
    reps: usize,
) -> Result<Vec<f64>, WorkloadError> {
    let mut count = d.alloc::<u32>(1)?;
    let mut k = d.tick_kernel(&count)?;
    let mut got = [0u32];
    sample(warmup, reps, || {
        d.poison(&mut count, 0u32, 1)?;
        let ((), ns) = timed(|| {
            for _ in 0..launches {
                d.launch(&mut k)?;
            }
            d.sync()
        })?;
        d.read(&count, &mut got)?;
        problem::check_launch_count(got[0], launches)?;
        Ok(ns)
    })
}

/// What one asyncAPI run measured.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Polled {
    /// From the first call until the work was seen complete.
    pub total_ns: f64,
    /// Spent inside the calls that issue the work (a runtime that makes
    /// the host wait in them shows a large figure here and few polls).
    pub issue_ns: f64,
    /// How often the host asked before the work was complete: the work it
    /// could have done meanwhile.
    pub polls: u64,
}

/// One asyncAPI run: `issue` posts the copies and the kernel and returns
/// what tells when they are complete, then the host polls `done` on it,
/// spinning between polls. When either fails, `settle` waits for the
/// device before the error is returned, so that nothing still writes
/// into host memory.
pub(crate) fn issue_and_poll<P>(
    issue: impl FnOnce() -> Result<P, WorkloadError>,
    mut done: impl FnMut(&P) -> Result<bool, WorkloadError>,
    settle: impl FnOnce(),
) -> Result<Polled, WorkloadError> {
    let start = Instant::now();
    let waited = (|| {
        let pending = issue()?;
        let issued = start.elapsed().as_nanos() as f64;
        let mut polls = 0u64;
        while !done(&pending)? {
            polls += 1;
            std::hint::spin_loop();
        }
        Ok((issued, polls))
    })();
    let total_ns = start.elapsed().as_nanos() as f64;
    match waited {
        Ok((issue_ns, polls)) => Ok(Polled {
            total_ns,
            issue_ns,
            polls,
        }),
        Err(e) => {
            settle();
            Err(e)
        }
    }
}
