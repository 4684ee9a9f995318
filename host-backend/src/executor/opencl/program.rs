//! Programs, builds, binaries, kernels and kernel arguments.
//!
//! Three guards keep a guest's program from reaching the host:
//! - the compiler runs in the daemon, so what a source `#include`s are the
//!   guest's own files, laid out in a sandboxed worker (`headers.rs`; a
//!   daemon serving in-process refuses every `#include`), and build
//!   options are otherwise limited to those that read no files;
//! - a binary may be native code for a CPU runtime, so only binaries this
//!   daemon itself produced are loaded (`binaries.rs`);
//! - a by-value argument could carry a forged runtime pointer, so argument
//!   info (always built in) decides what each argument may receive.

use std::ffi::CString;

use cl3::error_codes::{
    CL_INVALID_ARG_INDEX, CL_INVALID_ARG_SIZE, CL_INVALID_ARG_VALUE, CL_INVALID_BINARY,
    CL_INVALID_BUILD_OPTIONS, CL_INVALID_DEVICE, CL_INVALID_KERNEL_NAME, CL_INVALID_MEM_OBJECT,
    CL_INVALID_SAMPLER, CL_INVALID_VALUE, CL_OUT_OF_RESOURCES, CL_SUCCESS,
};
use cl3::kernel::{
    CL_KERNEL_ARG_ADDRESS_CONSTANT, CL_KERNEL_ARG_ADDRESS_GLOBAL, CL_KERNEL_ARG_ADDRESS_LOCAL,
    CL_KERNEL_ARG_ADDRESS_QUALIFIER, CL_KERNEL_ARG_TYPE_NAME, CL_KERNEL_NUM_ARGS,
};
use cl3::types::{cl_device_id, cl_kernel, cl_mem, cl_sampler, cl_uint};
use opencl3::kernel::Kernel;
use opencl3::program::Program;
use protocol::limits::MAX_BODY_LEN;
use protocol::opencl::{
    Binaries, BinaryStatus, BuildProgram, CreateKernel, CreateProgramWithBinary,
    CreateProgramWithSource, Empty, GetProgramBinaries, KernelArg, SetKernelArg,
};

use super::binaries;
use super::handles::{invalid, native, ArgClass, ArgSlot, KernelObj, Object, ProgramObj};
use super::headers;
use super::OpenClExecutor;
use crate::executor::ExecError;
use protocol::opencl::ObjectKind;

/// True when `src` may contain a preprocessor directive that reads a file:
/// `#include`, `#include_next`, `#import`, `#embed` (also spelled with the
/// `%:` digraph or `??=` trigraph, with comments or line splices between) or
/// `__has_include`. Deliberately coarse: it may refuse a `#` followed by
/// `include` inside a string literal, and never misses a directive.
pub(super) fn reads_files(src: &str) -> bool {
    let spliced = src.replace("\\\r\n", "").replace("\\\n", "");
    let b = spliced.as_bytes();
    if spliced.contains("__has_include") {
        return true;
    }
    let mut i = 0;
    while i < b.len() {
        let hash_len = if b[i] == b'#' {
            1
        } else if b[i..].starts_with(b"%:") {
            2
        } else if b[i..].starts_with(b"??=") {
            3
        } else {
            i += 1;
            continue;
        };
        let mut j = i + hash_len;
        // Skip blanks and block comments between `#` and the directive name.
        loop {
            if j < b.len() && matches!(b[j], b' ' | b'\t' | b'\x0b' | b'\x0c') {
                j += 1;
            } else if b[j..].starts_with(b"/*") {
                match spliced[j + 2..].find("*/") {
                    Some(end) => j += 2 + end + 2,
                    None => return true,
                }
            } else {
                break;
            }
        }
        let rest = &b[j..];
        if [&b"include"[..], b"import", b"embed"]
            .iter()
            .any(|d| rest.starts_with(d))
        {
            return true;
        }
        i += hash_len;
    }
    false
}

/// Checks build options against the ones that read no files and load no
/// plugins: `-D`/`-U` macros, `-cl-*` flags, `-w`, `-Werror`, `-g`.
pub(super) fn options_allowed(options: &str) -> bool {
    let mut words = options.split_ascii_whitespace();
    while let Some(w) = words.next() {
        match w {
            "-D" | "-U" => {
                if words.next().is_none() {
                    return false;
                }
            }
            "-w" | "-Werror" | "-g" => {}
            _ if w.starts_with("-D") || w.starts_with("-U") || w.starts_with("-cl-") => {}
            _ => return false,
        }
    }
    true
}

/// True when build or link options ask for kernel argument info.
pub(super) fn asks_arg_info(options: &str) -> bool {
    options
        .split_ascii_whitespace()
        .any(|w| w == "-cl-kernel-arg-info")
}

/// Classifies a kernel argument from the runtime's argument info.
fn classify(kernel: cl_kernel, index: cl_uint) -> ArgClass {
    let Ok(q) = cl3::kernel::get_kernel_arg_info(kernel, index, CL_KERNEL_ARG_ADDRESS_QUALIFIER)
    else {
        return ArgClass::Unknown;
    };
    let q = q.to_uint();
    let Ok(ty) = cl3::kernel::get_kernel_arg_data(kernel, index, CL_KERNEL_ARG_TYPE_NAME) else {
        return ArgClass::Unknown;
    };
    let ty = String::from_utf8_lossy(&ty);
    let ty = ty.trim_end_matches('\0').trim();
    let pointer = ty.contains('*');
    // Images are in the global address space, so their type comes first.
    if !pointer && ty.starts_with("image") {
        ArgClass::Image
    } else if !pointer
        && (ty.starts_with("pipe") || ["queue_t", "clk_event_t", "reserve_id_t"].contains(&ty))
    {
        // Object types the runtime takes as handles, none of which a
        // session can create.
        ArgClass::Object
    } else if q == CL_KERNEL_ARG_ADDRESS_GLOBAL || q == CL_KERNEL_ARG_ADDRESS_CONSTANT {
        ArgClass::Memory
    } else if q == CL_KERNEL_ARG_ADDRESS_LOCAL {
        ArgClass::Local
    } else if ty == "sampler_t" {
        ArgClass::Sampler
    } else if pointer {
        ArgClass::Memory
    } else {
        ArgClass::Value
    }
}

impl OpenClExecutor {
    /// The devices a program was created for, as the runtime lists them.
    fn program_devices(program: &ProgramObj) -> Result<Vec<cl_device_id>, ExecError> {
        Ok(
            cl3::program::get_program_info(program.get(), cl3::program::CL_PROGRAM_DEVICES)
                .map_err(native)?
                .to_vec_intptr()
                .into_iter()
                .map(|d| d as cl_device_id)
                .collect(),
        )
    }

    pub(super) fn create_program_with_source(
        &mut self,
        req: CreateProgramWithSource,
    ) -> Result<Empty, ExecError> {
        self.check_new(req.id)?;
        let ctx = self.table.context(req.context)?;
        // Includes are laid out from the guest's own files, in a sandboxed
        // worker only (see `headers`).
        if !headers::enabled() && reads_files(&req.source) {
            return Err(native(CL_INVALID_VALUE));
        }
        // The runtime takes a string of length 0 to be NUL-terminated, so
        // an empty source is handed over as one that is: a slice of an
        // empty C string starts at its NUL.
        let source = if req.source.is_empty() {
            c"".to_str().unwrap_or_default()
        } else {
            req.source.as_str()
        };
        let program = Program::create_from_source(ctx, source).map_err(|e| native(e.0))?;
        self.table.insert(req.id, Object::Program(program.into()));
        Ok(Empty {})
    }

    pub(super) fn create_program_with_binary(
        &mut self,
        req: CreateProgramWithBinary,
    ) -> Result<BinaryStatus, ExecError> {
        self.check_new(req.id)?;
        let ctx = self.table.context(req.context)?;
        if req.devices.is_empty() || req.binaries.len() != req.devices.len() {
            return Err(native(CL_INVALID_VALUE));
        }
        let devices = req
            .devices
            .iter()
            .map(|&h| self.table.device(h))
            .collect::<Result<Vec<_>, _>>()?;
        if devices.iter().any(|d| !ctx.devices().contains(d)) {
            return Err(native(CL_INVALID_DEVICE));
        }
        if req.binaries.iter().any(|b| b.is_empty()) {
            return Err(native(CL_INVALID_VALUE));
        }
        let bins = req
            .binaries
            .iter()
            .map(|b| binaries::open(b))
            .collect::<Option<Vec<&[u8]>>>()
            .ok_or(native(CL_INVALID_BINARY))?;
        // SAFETY: every device is one of the context's devices (checked
        // above), as `create_from_binary` requires; the binaries are
        // non-empty slices that outlive the call.
        let program = unsafe { Program::create_from_binary(ctx, &devices, &bins) }
            .map_err(|e| native(e.0))?;
        let n = devices.len();
        self.table.insert(req.id, Object::Program(program.into()));
        Ok(BinaryStatus {
            status: vec![CL_SUCCESS; n],
        })
    }

    pub(super) fn build_program(&mut self, req: BuildProgram) -> Result<Empty, ExecError> {
        let program = self.table.program(req.program)?;
        let devices = req
            .devices
            .iter()
            .map(|&h| self.table.device(h))
            .collect::<Result<Vec<_>, _>>()?;
        if !options_allowed(&req.options) {
            return Err(native(CL_INVALID_BUILD_OPTIONS));
        }
        // The guest's headers stay on disk until the build returns.
        let (_laid, include) = headers::lay_out(&req.headers).map_err(native)?;
        // Argument info lets `set_kernel_arg` tell pointers from values.
        let options = CString::new(format!("{include} {} -cl-kernel-arg-info", req.options))
            .map_err(|_| native(CL_INVALID_BUILD_OPTIONS))?;
        let built = cl3::program::build_program(
            program.get(),
            &devices,
            &options,
            None,
            std::ptr::null_mut(),
        );
        // What the guest sees of argument info follows its own options.
        self.table
            .set_arg_info(req.program, asks_arg_info(&req.options));
        built.map_err(native)?;
        Ok(Empty {})
    }

    pub(super) fn program_binaries(
        &mut self,
        req: GetProgramBinaries,
    ) -> Result<Binaries, ExecError> {
        let program = self.table.program(req.program)?;
        // Validates the program before the binaries query below.
        Self::program_devices(program)?;
        let binaries =
            cl3::program::get_program_info(program.get(), cl3::program::CL_PROGRAM_BINARIES)
                .map_err(native)?
                .to_vec_vec_uchar();
        let binaries: Vec<Vec<u8>> = binaries
            .into_iter()
            .map(|b| if b.is_empty() { b } else { binaries::seal(b) })
            .collect();
        let total = binaries.iter().map(Vec::len).sum::<usize>();
        if total > MAX_BODY_LEN {
            return Err(native(CL_OUT_OF_RESOURCES));
        }
        Ok(Binaries { binaries })
    }

    pub(super) fn create_kernel(&mut self, req: CreateKernel) -> Result<Empty, ExecError> {
        self.check_new(req.id)?;
        let program = self.table.program(req.program)?;
        let name = CString::new(req.name).map_err(|_| native(CL_INVALID_KERNEL_NAME))?;
        let raw = cl3::kernel::create_kernel(program.get(), &name).map_err(native)?;
        let kernel = Kernel::new(raw);
        let nargs = cl3::kernel::get_kernel_info(raw, CL_KERNEL_NUM_ARGS)
            .map_err(native)?
            .to_uint();
        let args = (0..nargs).map(|_| ArgSlot::default()).collect();
        let arg_info = self.table.arg_info(req.program);
        self.table.insert(
            req.id,
            Object::Kernel(KernelObj {
                kernel,
                args,
                arg_info,
            }),
        );
        Ok(Empty {})
    }

    pub(super) fn set_kernel_arg(&mut self, req: SetKernelArg) -> Result<Empty, ExecError> {
        let index = req.index;
        // Resolve a handle before borrowing the kernel mutably.
        let mem = match &req.arg {
            KernelArg::Mem(h) => Some(self.table.mem(*h).cloned()),
            _ => None,
        };
        let sampler = match &req.arg {
            KernelArg::Sampler(h) => Some(self.table.sampler(*h).cloned()?),
            _ => None,
        };
        let k = self.table.kernel_mut(req.kernel)?;
        let raw = k.kernel.get();
        let slot = k
            .args
            .get_mut(index as usize)
            .ok_or(native(CL_INVALID_ARG_INDEX))?;
        let class = *slot.class.get_or_insert_with(|| classify(raw, index));
        let ptr_size = std::mem::size_of::<cl_mem>();
        // Decide what may reach the runtime; anything that could carry a
        // forged pointer, or an object of another kind than the argument
        // takes (which the runtime would take for one), is refused.
        let refused = match (&req.arg, class) {
            // A value of the wrong size is that, whatever it holds.
            (
                KernelArg::Bytes(b),
                ArgClass::Memory | ArgClass::Image | ArgClass::Object | ArgClass::Sampler,
            ) if b.len() != ptr_size => Some(CL_INVALID_ARG_SIZE),
            (KernelArg::Bytes(_), ArgClass::Memory | ArgClass::Image | ArgClass::Object) => {
                Some(CL_INVALID_MEM_OBJECT)
            }
            (KernelArg::Bytes(_), ArgClass::Sampler) => Some(CL_INVALID_SAMPLER),
            (KernelArg::Bytes(_), ArgClass::Local) => Some(CL_INVALID_ARG_VALUE),
            (KernelArg::Bytes(b), ArgClass::Unknown) if b.len() == ptr_size => {
                Some(CL_INVALID_ARG_VALUE)
            }
            (KernelArg::Mem(_) | KernelArg::NullMem, ArgClass::Sampler) => Some(CL_INVALID_SAMPLER),
            (KernelArg::Mem(_) | KernelArg::NullMem, ArgClass::Local) => Some(CL_INVALID_ARG_VALUE),
            // A NULL image or pipe would be dereferenced at launch.
            (KernelArg::NullMem | KernelArg::Local(_), ArgClass::Image | ArgClass::Object) => {
                Some(CL_INVALID_MEM_OBJECT)
            }
            (KernelArg::Sampler(_), ArgClass::Sampler | ArgClass::Unknown) => None,
            (KernelArg::Sampler(_), ArgClass::Local | ArgClass::Value) => {
                Some(CL_INVALID_ARG_VALUE)
            }
            (KernelArg::Sampler(_), _) => Some(CL_INVALID_MEM_OBJECT),
            (KernelArg::Local(_), ArgClass::Sampler) => Some(CL_INVALID_SAMPLER),
            // A runtime pointer by value could be written back to the guest.
            // A NULL one is just zero bytes, which the runtime judges as
            // native would (e.g. CL_INVALID_ARG_SIZE for a 4-byte argument).
            (KernelArg::Mem(_), ArgClass::Value) => Some(CL_INVALID_ARG_VALUE),
            // No session can create a pipe, queue or device event.
            (KernelArg::Mem(_), ArgClass::Object) => Some(CL_INVALID_MEM_OBJECT),
            _ => None,
        };
        if let Some(code) = refused {
            return Err(native(code));
        }
        let pinned = match mem {
            Some(m) => Some(m?),
            None => None,
        };
        let kind_ok = match (&pinned, class) {
            (Some(m), ArgClass::Memory) => m.is_buffer(),
            (Some(m), ArgClass::Image) => !m.is_buffer(),
            _ => true,
        };
        if !kind_ok {
            return Err(native(CL_INVALID_MEM_OBJECT));
        }
        let null: cl_mem = std::ptr::null_mut();
        let mem_raw: cl_mem = pinned.as_ref().map_or(null, |m| m.raw());
        let sampler_raw: Option<cl_sampler> = sampler.as_ref().map(|s| s.get());
        let (size, value): (usize, *const std::ffi::c_void) = match (&req.arg, &sampler_raw) {
            (KernelArg::Bytes(b), _) if b.is_empty() => (0, std::ptr::null()),
            (KernelArg::Bytes(b), _) => (b.len(), b.as_ptr().cast()),
            (KernelArg::Local(n), _) => (
                usize::try_from(*n).map_err(|_| native(CL_INVALID_VALUE))?,
                std::ptr::null(),
            ),
            (KernelArg::Mem(_), _) => (ptr_size, (&raw const mem_raw).cast()),
            (KernelArg::NullMem, _) => (ptr_size, (&raw const null).cast()),
            (KernelArg::Sampler(_), Some(s)) => (
                std::mem::size_of::<cl_sampler>(),
                (s as *const cl_sampler).cast(),
            ),
            (KernelArg::Sampler(_), None) => return Err(invalid(ObjectKind::Sampler)),
        };
        // SAFETY: `raw` is a live kernel of this session. `value` is NULL or
        // points at `size` readable bytes that outlive the call: the guest's
        // bytes for a by-value argument whose class allows them, a `cl_mem`
        // (NULL or a live memory object of this session of the kind the
        // argument takes) or a live `cl_sampler` of this session.
        unsafe { cl3::kernel::set_kernel_arg(raw, index, size, value) }.map_err(native)?;
        slot.pinned = pinned;
        slot.sampler = sampler;
        Ok(Empty {})
    }
}
