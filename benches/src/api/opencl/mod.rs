//! The OpenCL backend: every workload as OpenCL C kernels and host code
//! over `opencl3`. The process's ICD loader decides what it talks to: the
//! native runtime, or (with `OCL_ICD_VENDORS` pointing at it) our shim.
//!
//! | module | role |
//! |---|---|
//! | `compute` | the compute workloads' kernels and launches |
//! | `memory` | host-allocated memory, device copies, alignedTypes' kernels |
//! | `images` | the images workload: 2D image writes, reads, a sampler kernel |
//! | `timing` | asyncAPI, clock, the launch-rate kernel |
//!
//! Kernel sources live in `kernels/*.cl`. The device operations the shared
//! workloads run on (`api::device`) are implemented here.

mod compute;
mod images;
mod memory;
mod timing;

use std::collections::HashMap;
use std::ptr;
use std::rc::Rc;

use opencl3::command_queue::{CommandQueue, CL_QUEUE_PROFILING_ENABLE};
use opencl3::context::Context;
use opencl3::device::{
    Device as ClDevice, CL_DEVICE_TYPE_ACCELERATOR, CL_DEVICE_TYPE_ALL, CL_DEVICE_TYPE_CPU,
    CL_DEVICE_TYPE_GPU,
};
use opencl3::error_codes::{error_text, ClError};
use opencl3::event::Event;
use opencl3::kernel::Kernel;
use opencl3::memory::{Buffer, ClMem, CL_MEM_READ_WRITE};
use opencl3::platform::get_platforms;
use opencl3::program::Program;
use opencl3::types::{cl_mem_flags, CL_BLOCKING, CL_NON_BLOCKING};

use super::device::{Device, Plain};
use super::WorkloadError;
use crate::ipc::RuntimeInfo;
use crate::reference;

/// Maps an `opencl3` error to [`WorkloadError::Call`] naming the call.
pub(crate) trait Cl<T> {
    fn cl(self, call: &'static str) -> Result<T, WorkloadError>;
}

impl<T> Cl<T> for Result<T, ClError> {
    fn cl(self, call: &'static str) -> Result<T, WorkloadError> {
        self.map_err(|e| WorkloadError::Call {
            call,
            code: e.0,
            name: error_text(e.0).to_string(),
        })
    }
}

/// A kernel source file and the name its program is cached under.
pub(crate) struct Source {
    name: &'static str,
    text: &'static str,
    options: &'static str,
}

impl Source {
    /// A source built without options.
    const fn plain(name: &'static str, text: &'static str) -> Source {
        Source {
            name,
            text,
            options: "",
        }
    }
}

/// The OpenCL runtime this process sees: first platform, first device.
#[derive(Debug)]
pub struct OpenCl {
    context: Context,
    queue: CommandQueue,
    /// A second queue with profiling on, made when a case needs it.
    profiling: Option<CommandQueue>,
    programs: HashMap<&'static str, Program>,
    refs: reference::Cache,
    info: RuntimeInfo,
}

fn device_type(t: u64) -> String {
    let names = [
        (CL_DEVICE_TYPE_GPU, "GPU"),
        (CL_DEVICE_TYPE_CPU, "CPU"),
        (CL_DEVICE_TYPE_ACCELERATOR, "accelerator"),
    ];
    let found: Vec<&str> = names
        .iter()
        .filter(|(bit, _)| t & bit != 0)
        .map(|(_, n)| *n)
        .collect();
    if found.is_empty() {
        format!("{t:#x}")
    } else {
        found.join("+")
    }
}

impl OpenCl {
    /// Opens the first device of the first platform.
    pub fn open() -> Result<OpenCl, WorkloadError> {
        let platforms = get_platforms().cl("clGetPlatformIDs")?;
        let platform = *platforms
            .first()
            .ok_or_else(|| WorkloadError::Unavailable("no OpenCL platform".into()))?;
        let id = *platform
            .get_devices(CL_DEVICE_TYPE_ALL)
            .cl("clGetDeviceIDs")?
            .first()
            .ok_or_else(|| WorkloadError::Unavailable("no OpenCL device".into()))?;
        let device = ClDevice::new(id);
        let info = RuntimeInfo {
            api: "OpenCL".into(),
            platform_name: platform.name().cl("clGetPlatformInfo")?,
            platform_vendor: platform.vendor().cl("clGetPlatformInfo")?,
            platform_version: platform.version().cl("clGetPlatformInfo")?,
            device_name: device.name().cl("clGetDeviceInfo")?,
            device_vendor: device.vendor().cl("clGetDeviceInfo")?,
            device_version: device.version().cl("clGetDeviceInfo")?,
            device_type: device_type(device.dev_type().cl("clGetDeviceInfo")?),
            driver_version: device.driver_version().cl("clGetDeviceInfo")?,
            compute_units: device.max_compute_units().cl("clGetDeviceInfo")?,
            global_mem_bytes: device.global_mem_size().cl("clGetDeviceInfo")?,
        };
        let context = Context::from_device(&device).cl("clCreateContext")?;
        let queue = CommandQueue::create_default_with_properties(&context, 0, 0)
            .cl("clCreateCommandQueueWithProperties")?;
        Ok(OpenCl {
            context,
            queue,
            profiling: None,
            programs: HashMap::new(),
            refs: reference::Cache::default(),
            info,
        })
    }

    /// A kernel from `src`, building (once) its program.
    fn kernel(&mut self, src: &Source, name: &str) -> Result<Kernel, WorkloadError> {
        if !self.programs.contains_key(src.name) {
            let p = Program::create_and_build_from_source(&self.context, src.text, src.options)
                .map_err(|log| WorkloadError::Build(format!("{}: {log}", src.name)))?;
            self.programs.insert(src.name, p);
        }
        let p = self
            .programs
            .get(src.name)
            .ok_or_else(|| WorkloadError::Build(src.name.into()))?;
        Kernel::create(p, name).cl("clCreateKernel")
    }

    /// The profiling queue, made on first use.
    fn profiling_queue(&mut self) -> Result<&CommandQueue, WorkloadError> {
        if self.profiling.is_none() {
            let q = CommandQueue::create_default_with_properties(
                &self.context,
                CL_QUEUE_PROFILING_ENABLE,
                0,
            )
            .cl("clCreateCommandQueueWithProperties")?;
            self.profiling = Some(q);
        }
        self.profiling
            .as_ref()
            .ok_or_else(|| WorkloadError::Unavailable("profiling queue".into()))
    }

    /// A buffer of `count` elements with `flags` and no host pointer.
    fn buffer_with<T>(
        &self,
        flags: cl_mem_flags,
        count: usize,
    ) -> Result<Buffer<T>, WorkloadError> {
        // SAFETY: no host pointer is passed, so none of the host-pointer
        // flags' requirements apply; the size is in elements of T.
        unsafe { Buffer::<T>::create(&self.context, flags, count.max(1), ptr::null_mut()) }
            .cl("clCreateBuffer")
    }

    /// Launches `kernel` (arguments already set) on `queue`.
    fn launch_on(
        queue: &CommandQueue,
        kernel: &Kernel,
        global: &[usize],
        local: Option<&[usize]>,
    ) -> Result<Event, WorkloadError> {
        let local = local.map_or(ptr::null(), <[usize]>::as_ptr);
        // SAFETY: `global` (and `local` when given) hold one entry per
        // dimension and outlive the call; the callers set every argument
        // of `kernel` first.
        unsafe {
            queue.enqueue_nd_range_kernel(
                kernel.get(),
                global.len() as u32,
                ptr::null(),
                global.as_ptr(),
                local,
                &[],
            )
        }
        .cl("clEnqueueNDRangeKernel")
    }
}

/// A kernel with its arguments set, and its global (and, if given, local)
/// work size.
#[derive(Debug)]
pub(crate) struct Launch {
    kernel: Kernel,
    global: Vec<usize>,
    local: Option<Vec<usize>>,
    /// A buffer that only the kernel's arguments name (the convolution's
    /// filter), kept alive as long as they do.
    _keep: Option<Rc<Buffer<f32>>>,
}

impl Launch {
    fn new(kernel: Kernel, global: &[usize], local: Option<&[usize]>) -> Launch {
        Launch {
            kernel,
            global: global.to_vec(),
            local: local.map(<[usize]>::to_vec),
            _keep: None,
        }
    }
}

/// Sets kernel argument `index` to a buffer.
fn arg_buf<T>(k: &Kernel, index: u32, buf: &Buffer<T>) -> Result<(), WorkloadError> {
    let mem = buf.get();
    // SAFETY: a `cl_mem` argument of pointer size, as the kernels declare.
    unsafe { k.set_arg(index, &mem) }.cl("clSetKernelArg")
}

/// Sets kernel argument `index` to a scalar of the kernel's declared type.
fn arg<T>(k: &Kernel, index: u32, value: T) -> Result<(), WorkloadError> {
    // SAFETY: the callers pass the exact scalar type the kernel declares.
    unsafe { k.set_arg(index, &value) }.cl("clSetKernelArg")
}

impl Device for OpenCl {
    type Buf<T: Plain> = Buffer<T>;
    type Launch = Launch;

    fn info(&self) -> &RuntimeInfo {
        &self.info
    }

    fn refs(&mut self) -> &mut reference::Cache {
        &mut self.refs
    }

    fn alloc<T: Plain>(&self, count: usize) -> Result<Buffer<T>, WorkloadError> {
        self.buffer_with(CL_MEM_READ_WRITE, count)
    }

    /// `clEnqueueFillBuffer`, then `clFinish`.
    fn poison<T: Plain>(
        &self,
        buf: &mut Buffer<T>,
        value: T,
        count: usize,
    ) -> Result<(), WorkloadError> {
        let size = count.max(1) * std::mem::size_of::<T>();
        // SAFETY: the pattern is one live element; the range lies in `buf`.
        unsafe { self.queue.enqueue_fill_buffer(buf, &[value], 0, size, &[]) }
            .cl("clEnqueueFillBuffer")?;
        self.sync()
    }

    /// A non-blocking write.
    fn upload<T: Plain>(&self, buf: &mut Buffer<T>, data: &[T]) -> Result<(), WorkloadError> {
        // SAFETY: `data` is a live slice of the right length; the caller
        // keeps it alive and unchanged until a later blocking call on this
        // in-order queue has returned (see the trait).
        unsafe {
            self.queue
                .enqueue_write_buffer(buf, CL_NON_BLOCKING, 0, data, &[])
        }
        .cl("clEnqueueWriteBuffer")
        .map(drop)
    }

    fn write<T: Plain>(&self, buf: &mut Buffer<T>, data: &[T]) -> Result<(), WorkloadError> {
        // SAFETY: blocking: `data` is only read during the call.
        unsafe {
            self.queue
                .enqueue_write_buffer(buf, CL_BLOCKING, 0, data, &[])
        }
        .cl("clEnqueueWriteBuffer")
        .map(drop)
    }

    /// A blocking read.
    fn read<T: Plain>(&self, buf: &Buffer<T>, out: &mut [T]) -> Result<(), WorkloadError> {
        // SAFETY: blocking: `out` is only written during the call.
        unsafe {
            self.queue
                .enqueue_read_buffer(buf, CL_BLOCKING, 0, out, &[])
        }
        .cl("clEnqueueReadBuffer")
        .map(drop)
    }

    /// On the default queue.
    fn launch(&self, k: &mut Launch) -> Result<(), WorkloadError> {
        Self::launch_on(&self.queue, &k.kernel, &k.global, k.local.as_deref()).map(drop)
    }

    /// `clFinish`.
    fn sync(&self) -> Result<(), WorkloadError> {
        self.queue.finish().cl("clFinish")
    }
}
