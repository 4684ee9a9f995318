//! Workloads, run inside one worker process against whatever OpenCL platform
//! the process sees (native, or the shim). Each sample is printed as
//! `sample <workload> <nanoseconds>`; results are checked before any timing
//! is reported.

use std::ptr;
use std::time::Instant;

use opencl3::command_queue::CommandQueue;
use opencl3::context::Context;
use opencl3::device::{Device, CL_DEVICE_TYPE_ALL};
use opencl3::memory::{Buffer, CL_MEM_READ_WRITE};
use opencl3::platform::get_platforms;
use opencl3::types::{cl_uchar, CL_BLOCKING};

use crate::args::WorkerOpts;

/// Worker failures.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// No platform or device was visible.
    #[error("no OpenCL device visible")]
    NoDevice,
    /// An OpenCL call failed.
    #[error("OpenCL error {0}")]
    Cl(i32),
    /// Data read back differs from what was written.
    #[error("{0}: data mismatch at byte {1}")]
    Mismatch(&'static str, usize),
}

impl From<opencl3::error_codes::ClError> for WorkerError {
    fn from(e: opencl3::error_codes::ClError) -> Self {
        WorkerError::Cl(e.0)
    }
}

fn emit(name: &str, ns: u128) {
    println!("sample {name} {ns}");
}

/// Runs the micro workloads.
pub fn run(opts: &WorkerOpts) -> Result<(), WorkerError> {
    let platform = *get_platforms()?.first().ok_or(WorkerError::NoDevice)?;
    let device_id = *platform
        .get_devices(CL_DEVICE_TYPE_ALL)?
        .first()
        .ok_or(WorkerError::NoDevice)?;
    let device = Device::new(device_id);
    let context = Context::from_device(&device)?;
    let queue = CommandQueue::create_default_with_properties(&context, 0, 0)?;

    // Synchronous round trip: clFinish on an idle queue.
    for i in 0..opts.reps + opts.reps / 10 {
        let t = Instant::now();
        queue.finish()?;
        if i >= opts.reps / 10 {
            emit("sync_finish", t.elapsed().as_nanos());
        }
    }

    // Bandwidth: blocking write then blocking read of `size` bytes.
    let size = opts.size;
    // SAFETY: no host pointer is passed; the buffer is sized in bytes.
    let mut buf =
        unsafe { Buffer::<cl_uchar>::create(&context, CL_MEM_READ_WRITE, size, ptr::null_mut())? };
    let src: Vec<u8> = (0..size).map(|i| (i * 7 + i / 4096) as u8).collect();
    let mut dst = vec![0u8; size];
    let reps = (opts.reps / 100).clamp(3, 20);
    for i in 0..reps + 1 {
        let t = Instant::now();
        // SAFETY: `src` outlives the blocking call and holds `size` bytes.
        unsafe { queue.enqueue_write_buffer(&mut buf, CL_BLOCKING, 0, &src, &[])? };
        let w = t.elapsed().as_nanos();
        let t = Instant::now();
        // SAFETY: `dst` outlives the blocking call and holds `size` bytes.
        unsafe { queue.enqueue_read_buffer(&buf, CL_BLOCKING, 0, &mut dst, &[])? };
        let r = t.elapsed().as_nanos();
        if let Some(pos) = src.iter().zip(&dst).position(|(a, b)| a != b) {
            return Err(WorkerError::Mismatch("write/read", pos));
        }
        if i > 0 {
            emit("write", w);
            emit("read", r);
        }
        dst.fill(0);
    }
    Ok(())
}
