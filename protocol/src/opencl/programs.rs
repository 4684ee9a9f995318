//! Separate compilation and linking, programs from IL and built-in
//! kernels, specialization constants, and kernel clones.

use bincode::{Decode, Encode};

use super::{check_list, check_string, Handle, Validate};
use crate::error::DecodeError;
use crate::limits::{MAX_DEVICES, MAX_LIST_LEN, MAX_SPEC_CONSTANT_LEN};

/// `clCompileProgram`. Input headers are programs of the session, each
/// with the name a source includes it by.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct CompileProgram {
    /// Program handle.
    pub program: Handle,
    /// Device handles; empty means all of the program's devices.
    pub devices: Vec<Handle>,
    /// Compiler options.
    pub options: String,
    /// `(header program, include name)` pairs.
    pub headers: Vec<(Handle, String)>,
    /// The guest's header files the compilation can include.
    pub files: super::GuestHeaders,
}

/// `clLinkProgram`: creates a program from compiled programs and
/// libraries; the reply is [`Linked`].
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct LinkProgram {
    /// Guest-chosen handle of the new program.
    pub id: Handle,
    /// Context handle.
    pub context: Handle,
    /// Device handles; empty means all of the context's devices.
    pub devices: Vec<Handle>,
    /// Linker options.
    pub options: String,
    /// The input programs.
    pub programs: Vec<Handle>,
}

/// A link that made a program: `status` is `CL_SUCCESS`, or the failure
/// (`CL_LINK_PROGRAM_FAILURE`) of a link whose program holds the log.
/// A link that made no program fails with its native code instead.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct Linked {
    /// `errcode_ret` of the link.
    pub status: i32,
}

/// `clCreateProgramWithIL`
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct CreateProgramWithIl {
    /// Guest-chosen handle.
    pub id: Handle,
    /// Context handle.
    pub context: Handle,
    /// The intermediate language module (SPIR-V).
    pub il: Vec<u8>,
}

/// `clCreateProgramWithBuiltInKernels`
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct CreateProgramWithBuiltIns {
    /// Guest-chosen handle.
    pub id: Handle,
    /// Context handle.
    pub context: Handle,
    /// Device handles.
    pub devices: Vec<Handle>,
    /// Semicolon-separated kernel names.
    pub names: String,
}

/// `clSetProgramSpecializationConstant`
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct SetSpecConstant {
    /// Program handle.
    pub program: Handle,
    /// The constant's id.
    pub spec_id: u32,
    /// Its value (`spec_size` bytes).
    pub value: Vec<u8>,
}

/// `clCloneKernel`: the clone has the source kernel's arguments.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct CloneKernel {
    /// Guest-chosen handle of the clone.
    pub id: Handle,
    /// The kernel cloned.
    pub kernel: Handle,
}

impl Validate for CompileProgram {
    fn validate(&self) -> Result<(), DecodeError> {
        check_list(self.devices.len(), MAX_DEVICES, "device list")?;
        check_string(&self.options, "compile options")?;
        check_list(self.headers.len(), MAX_LIST_LEN, "input headers")?;
        self.headers
            .iter()
            .try_for_each(|(_, name)| check_string(name, "header name"))?;
        self.files.check()
    }
}
impl Validate for LinkProgram {
    fn validate(&self) -> Result<(), DecodeError> {
        check_list(self.devices.len(), MAX_DEVICES, "device list")?;
        check_string(&self.options, "link options")?;
        check_list(self.programs.len(), MAX_LIST_LEN, "input programs")
    }
}
impl Validate for CreateProgramWithIl {}
impl Validate for CreateProgramWithBuiltIns {
    fn validate(&self) -> Result<(), DecodeError> {
        check_list(self.devices.len(), MAX_DEVICES, "device list")?;
        check_string(&self.names, "kernel names")
    }
}
impl Validate for SetSpecConstant {
    fn validate(&self) -> Result<(), DecodeError> {
        check_list(self.value.len(), MAX_SPEC_CONSTANT_LEN, "constant value")
    }
}
impl Validate for CloneKernel {}
