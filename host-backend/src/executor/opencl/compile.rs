//! Separate compilation and linking, programs from IL and from built-in
//! kernels, specialization constants, and kernel clones.
//!
//! The guards of `program` hold here too: compiler options are those that
//! read no files, and link options likewise; input headers are the
//! session's own programs, under names that cannot leave the directory
//! a compiler puts them in; the daemon builds and links with argument
//! info for its own checks, and answers argument-info queries as the
//! guest's options would have made the runtime answer them.

use std::ffi::{c_char, CString};

use cl3::error_codes::{
    CL_INVALID_COMPILER_OPTIONS, CL_INVALID_DEVICE, CL_INVALID_LINKER_OPTIONS, CL_INVALID_PROGRAM,
    CL_INVALID_VALUE, CL_OUT_OF_RESOURCES,
};
use cl3::types::{cl_device_id, cl_int, cl_program, cl_uint};
use opencl3::kernel::Kernel;
use protocol::opencl::{
    CloneKernel, CompileProgram, CreateProgramWithBuiltIns, CreateProgramWithIl, Empty,
    LinkProgram, Linked, SetSpecConstant,
};

use super::handles::{native, KernelObj, Object, ProgramObj};
use super::headers;
use super::program::{asks_arg_info, options_allowed};
use super::OpenClExecutor;
use crate::executor::ExecError;

/// Link options that read no files (the compiler options of
/// [`options_allowed`] read none either; the runtime judges the rest).
fn link_options_allowed(options: &str) -> bool {
    options
        .split_ascii_whitespace()
        .all(|w| matches!(w, "-create-library" | "-enable-link-options") || options_allowed(w))
}

/// True for an include name a header can be given under: a relative
/// path of plain components, which a compiler writing it below its own
/// directory keeps there.
fn header_name_ok(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('/')
        && name
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains(['\\', '\0']))
}

impl OpenClExecutor {
    fn devices_of(&self, handles: &[u64]) -> Result<Vec<cl_device_id>, ExecError> {
        handles.iter().map(|&h| self.table.device(h)).collect()
    }

    pub(super) fn compile_program(&mut self, req: CompileProgram) -> Result<Empty, ExecError> {
        let program = self.table.program(req.program)?.get();
        let devices = self.devices_of(&req.devices)?;
        if !options_allowed(&req.options) {
            return Err(native(CL_INVALID_COMPILER_OPTIONS));
        }
        let mut headers = Vec::with_capacity(req.headers.len());
        let mut names = Vec::with_capacity(req.headers.len());
        for (h, name) in &req.headers {
            headers.push(self.table.program(*h)?.get());
            if !header_name_ok(name) {
                return Err(native(CL_INVALID_VALUE));
            }
            names.push(CString::new(name.as_str()).map_err(|_| native(CL_INVALID_VALUE))?);
        }
        let name_refs: Vec<&std::ffi::CStr> = names.iter().map(CString::as_c_str).collect();
        // The guest's headers stay on disk until the compilation returns.
        let (_laid, include) = headers::lay_out(&req.files).map_err(native)?;
        let options = CString::new(format!("{include} {} -cl-kernel-arg-info", req.options))
            .map_err(|_| native(CL_INVALID_COMPILER_OPTIONS))?;
        cl3::program::compile_program(
            program,
            &devices,
            &options,
            &headers,
            &name_refs,
            None,
            std::ptr::null_mut(),
        )
        .map_err(native)?;
        Ok(Empty {})
    }

    pub(super) fn link_program(&mut self, req: LinkProgram) -> Result<Linked, ExecError> {
        self.check_new(req.id)?;
        let ctx = self.table.context(req.context)?.get();
        let devices = self.devices_of(&req.devices)?;
        let inputs = req
            .programs
            .iter()
            .map(|&h| self.table.program(h).map(ProgramObj::get))
            .collect::<Result<Vec<cl_program>, _>>()
            .map_err(|_| native(CL_INVALID_PROGRAM))?;
        if inputs.is_empty() {
            return Err(native(CL_INVALID_VALUE));
        }
        if !link_options_allowed(&req.options) {
            return Err(native(CL_INVALID_LINKER_OPTIONS));
        }
        let options = CString::new(format!("{} -cl-kernel-arg-info", req.options))
            .map_err(|_| native(CL_INVALID_LINKER_OPTIONS))?;
        let runtime = cl3::load_library()
            .as_ref()
            .map_err(|_| native(CL_OUT_OF_RESOURCES))?;
        let mut status: cl_int = CL_INVALID_VALUE;
        // The raw call: a failed link may still make a program (holding
        // the link log), which the guest must receive and release.
        let devices_ptr = if devices.is_empty() {
            std::ptr::null()
        } else {
            devices.as_ptr()
        };
        let raw = runtime
            .clLinkProgram(
                ctx,
                devices.len() as cl_uint,
                devices_ptr,
                options.as_ptr().cast::<c_char>(),
                inputs.len() as cl_uint,
                inputs.as_ptr(),
                None,
                std::ptr::null_mut(),
                &raw mut status,
            )
            .ok_or(native(CL_OUT_OF_RESOURCES))?;
        if raw.is_null() {
            return Err(native(if status == 0 {
                CL_OUT_OF_RESOURCES
            } else {
                status
            }));
        }
        self.table
            .insert(req.id, Object::Program(ProgramObj::new(raw)));
        self.table.set_arg_info(req.id, asks_arg_info(&req.options));
        Ok(Linked { status })
    }

    pub(super) fn create_program_with_il(
        &mut self,
        req: CreateProgramWithIl,
    ) -> Result<Empty, ExecError> {
        self.check_new(req.id)?;
        let ctx = self.table.context(req.context)?.get();
        if req.il.is_empty() {
            return Err(native(CL_INVALID_VALUE));
        }
        let raw = cl3::program::create_program_with_il(ctx, &req.il).map_err(native)?;
        self.table
            .insert(req.id, Object::Program(ProgramObj::new(raw)));
        Ok(Empty {})
    }

    pub(super) fn create_program_with_built_ins(
        &mut self,
        req: CreateProgramWithBuiltIns,
    ) -> Result<Empty, ExecError> {
        self.check_new(req.id)?;
        let ctx = self.table.context(req.context)?;
        let devices = self.devices_of(&req.devices)?;
        if devices.is_empty() {
            return Err(native(CL_INVALID_VALUE));
        }
        if devices.iter().any(|d| !ctx.devices().contains(d)) {
            return Err(native(CL_INVALID_DEVICE));
        }
        let names = CString::new(req.names).map_err(|_| native(CL_INVALID_VALUE))?;
        // SAFETY: every device is one of the context's (checked above), as
        // the call requires; `names` is a NUL-terminated string.
        let raw = unsafe {
            cl3::program::create_program_with_builtin_kernels(ctx.get(), &devices, &names)
        }
        .map_err(native)?;
        self.table
            .insert(req.id, Object::Program(ProgramObj::new(raw)));
        Ok(Empty {})
    }

    pub(super) fn set_spec_constant(&mut self, req: SetSpecConstant) -> Result<Empty, ExecError> {
        let program = self.table.program(req.program)?.get();
        let value = if req.value.is_empty() {
            std::ptr::null()
        } else {
            req.value.as_ptr()
        };
        // SAFETY: `program` is a live program of this session; `value` is
        // NULL (with size 0) or `value.len()` readable bytes that outlive
        // the call.
        unsafe {
            cl3::program::set_program_specialization_constant(
                program,
                req.spec_id,
                req.value.len(),
                value.cast(),
            )
        }
        .map_err(native)?;
        Ok(Empty {})
    }

    pub(super) fn clone_kernel(&mut self, req: CloneKernel) -> Result<Empty, ExecError> {
        self.check_new(req.id)?;
        let (source, args) = self.table.kernel_args(req.kernel)?;
        let raw = cl3::kernel::clone_kernel(source.kernel.get()).map_err(native)?;
        let clone = KernelObj {
            kernel: Kernel::new(raw),
            args,
            arg_info: source.arg_info,
        };
        self.table.insert(req.id, Object::Kernel(clone));
        Ok(Empty {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_options_read_no_files() {
        assert!(link_options_allowed(""));
        assert!(link_options_allowed(
            "-create-library -cl-fast-relaxed-math"
        ));
        assert!(link_options_allowed(
            "-enable-link-options -cl-denorms-are-zero"
        ));
        assert!(!link_options_allowed("-L /etc"));
        assert!(!link_options_allowed("-load /tmp/x.so"));
    }

    #[test]
    fn header_names_stay_below_their_directory() {
        assert!(header_name_ok("header.h"));
        assert!(header_name_ok("sub/dir/h.h"));
        for bad in [
            "",
            "/etc/passwd",
            "../x.h",
            "a/../../x.h",
            "a//b",
            "./x",
            "a\\b",
        ] {
            assert!(!header_name_ok(bad), "{bad:?}");
        }
    }
}
