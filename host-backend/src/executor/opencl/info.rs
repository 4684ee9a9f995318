//! `clGet*Info` queries and supported image formats.
//!
//! Values come back as the runtime's raw bytes, with native size semantics:
//! a size of 0 asks for the size only, a smaller buffer than the value is
//! `CL_INVALID_VALUE`. Parameters whose values are host pointers or object
//! handles are never answered here; the shim answers them from its records.

use cl3::error_codes::{
    CL_INVALID_ARG_INDEX, CL_INVALID_VALUE, CL_KERNEL_ARG_INFO_NOT_AVAILABLE, CL_OUT_OF_RESOURCES,
};
use cl3::kernel::CL_KERNEL_ARG_ADDRESS_QUALIFIER;
use cl3::memory::{CL_MEM_COPY_HOST_PTR, CL_MEM_FLAGS, CL_MEM_USE_HOST_PTR};
use cl3::program::{CL_PROGRAM_BINARY_SIZES, CL_PROGRAM_BUILD_LOG};
use cl3::types::{cl_kernel, cl_uint};
use protocol::limits::{MAX_INFO_LEN, MAX_LIST_LEN};
use protocol::opencl::{
    is_handle_valued, GetImageFormats, GetInfo, ImageFormats, InfoKind, InfoValue,
};

use super::advertise;
use super::binaries;
use super::handles::native;
use super::headers;
use super::OpenClExecutor;
use crate::executor::ExecError;

/// Applies native size semantics to a value of the runtime.
fn answer(mut value: Vec<u8>, asked: u64, truncatable: bool) -> Result<InfoValue, ExecError> {
    if value.len() as u64 > MAX_INFO_LEN {
        if !truncatable {
            return Err(native(CL_OUT_OF_RESOURCES));
        }
        // A build log longer than a reply can hold keeps its start.
        value.truncate(MAX_INFO_LEN as usize - 1);
        value.push(0);
    }
    let size = value.len() as u64;
    if asked == 0 {
        return Ok(InfoValue {
            size,
            value: Vec::new(),
        });
    }
    if asked < size {
        return Err(native(CL_INVALID_VALUE));
    }
    Ok(InfoValue { size, value })
}

/// `CL_PROGRAM_BINARY_SIZES` as the guest sees it: every binary carries
/// its tag (see `binaries.rs`).
fn with_trailers(value: Vec<u8>) -> Vec<u8> {
    const W: usize = std::mem::size_of::<usize>();
    value
        .chunks(W)
        .flat_map(|c| {
            let mut b = [0u8; W];
            if let Some(d) = b.get_mut(..c.len()) {
                d.copy_from_slice(c);
            }
            match usize::from_ne_bytes(b) {
                0 => 0usize,
                n => n.saturating_add(binaries::TRAILER_LEN),
            }
            .to_ne_bytes()
        })
        .collect()
}

/// The answer a runtime gives to an argument-info query on a kernel
/// built without `-cl-kernel-arg-info`: `CL_INVALID_ARG_INDEX` for an
/// index out of range, else `CL_KERNEL_ARG_INFO_NOT_AVAILABLE`.
fn unrequested_arg_info(kernel: cl_kernel, index: cl_uint) -> i32 {
    match cl3::kernel::get_kernel_arg_data(kernel, index, CL_KERNEL_ARG_ADDRESS_QUALIFIER) {
        Err(CL_INVALID_ARG_INDEX) => CL_INVALID_ARG_INDEX,
        _ => CL_KERNEL_ARG_INFO_NOT_AVAILABLE,
    }
}

impl OpenClExecutor {
    /// `CL_MEM_FLAGS` as the guest created the object: the daemon turns
    /// `CL_MEM_USE_HOST_PTR` into `CL_MEM_COPY_HOST_PTR` (guest memory
    /// cannot back a runtime object), which the guest must not see.
    fn guest_mem_flags(
        &self,
        mem: protocol::opencl::Handle,
        value: Vec<u8>,
    ) -> Result<Vec<u8>, ExecError> {
        let m = self.table.mem(mem)?;
        let Ok(bytes) = <[u8; 8]>::try_from(value.as_slice()) else {
            return Ok(value);
        };
        let flags = u64::from_ne_bytes(bytes);
        if !m.use_host_ptr {
            return Ok(value);
        }
        Ok(((flags & !CL_MEM_COPY_HOST_PTR) | CL_MEM_USE_HOST_PTR)
            .to_ne_bytes()
            .to_vec())
    }

    pub(super) fn get_info(&mut self, req: GetInfo) -> Result<InfoValue, ExecError> {
        let t = &self.table;
        let p = req.param;
        // Resolve the object first, as the native call would.
        let query = match req.kind {
            InfoKind::Platform => {
                let o = t.platform(req.object)?;
                Box::new(move || cl3::platform::get_platform_data(o, p)) as Box<dyn Fn() -> _>
            }
            InfoKind::Device => {
                let o = t.device(req.object)?;
                Box::new(move || cl3::device::get_device_data(o, p))
            }
            InfoKind::Context => {
                let o = t.context(req.object)?.get();
                Box::new(move || cl3::context::get_context_data(o, p))
            }
            InfoKind::CommandQueue => {
                let o = t.queue(req.object)?.get();
                Box::new(move || cl3::command_queue::get_command_queue_data(o, p))
            }
            InfoKind::MemObject => {
                let o = t.mem(req.object)?.raw();
                Box::new(move || cl3::memory::get_mem_object_data(o, p))
            }
            InfoKind::Program => {
                let o = t.program(req.object)?.get();
                Box::new(move || cl3::program::get_program_data(o, p))
            }
            InfoKind::ProgramBuild => {
                let o = t.program(req.object)?.get();
                let d = t.device(req.extra)?;
                Box::new(move || cl3::program::get_program_build_data(o, d, p))
            }
            InfoKind::Kernel => {
                let o = t.kernel(req.object)?.kernel.get();
                Box::new(move || cl3::kernel::get_kernel_data(o, p))
            }
            InfoKind::KernelWorkGroup => {
                let o = t.kernel(req.object)?.kernel.get();
                let d = match req.extra {
                    0 => std::ptr::null_mut(),
                    h => t.device(h)?,
                };
                Box::new(move || cl3::kernel::get_kernel_work_group_data(o, d, p))
            }
            InfoKind::KernelArg => {
                let k = t.kernel(req.object)?;
                let o = k.kernel.get();
                let i = u32::try_from(req.extra).map_err(|_| native(CL_INVALID_ARG_INDEX))?;
                if !k.arg_info {
                    // The daemon built the kernel with argument info for its
                    // own checks; a guest that did not ask for it gets what
                    // a runtime without it answers, once the index checks.
                    return Err(native(unrequested_arg_info(o, i)));
                }
                Box::new(move || cl3::kernel::get_kernel_arg_data(o, i, p))
            }
            InfoKind::Event => {
                let o = t.event(req.object)?.event.get();
                Box::new(move || cl3::event::get_event_data(o, p))
            }
            InfoKind::EventProfiling => {
                let o = t.event(req.object)?.event.get();
                Box::new(move || cl3::event::get_event_profiling_data(o, p))
            }
            InfoKind::Image => {
                let o = t.mem(req.object)?.raw();
                Box::new(move || cl3::memory::get_image_data(o, p))
            }
            InfoKind::Sampler => {
                let o = t.sampler(req.object)?.get();
                Box::new(move || cl3::sampler::get_sampler_data(o, p))
            }
        };
        if is_handle_valued(req.kind, p) {
            return Err(native(CL_INVALID_VALUE));
        }
        let mut value = query().map_err(native)?;
        if req.kind == InfoKind::Program && p == CL_PROGRAM_BINARY_SIZES {
            value = with_trailers(value);
        }
        let value = match req.kind {
            InfoKind::Platform | InfoKind::Device => advertise::filter(req.kind, p, value)?,
            InfoKind::MemObject if p == CL_MEM_FLAGS => self.guest_mem_flags(req.object, value)?,
            InfoKind::ProgramBuild if p == CL_PROGRAM_BUILD_LOG => headers::guest_log(value),
            _ => value,
        };
        let truncatable = req.kind == InfoKind::ProgramBuild && p == CL_PROGRAM_BUILD_LOG;
        answer(value, req.size, truncatable)
    }

    pub(super) fn image_formats(
        &mut self,
        req: GetImageFormats,
    ) -> Result<ImageFormats, ExecError> {
        let ctx = self.table.context(req.context)?.get();
        let formats = cl3::memory::get_supported_image_formats(ctx, req.flags, req.image_type)
            .map_err(native)?;
        Ok(ImageFormats {
            formats: formats
                .into_iter()
                .take(MAX_LIST_LEN)
                .map(|f| (f.image_channel_order, f.image_channel_data_type))
                .collect(),
        })
    }
}
