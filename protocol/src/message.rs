//! Opcodes and the request/response enums, generated from one table so that
//! an opcode's number, its request body and its reply body are declared once.

use crate::codec;
use crate::error::DecodeError;
use crate::opencl::Validate;
use crate::opencl::*;
use crate::session::{SessionOpen, SessionOpened};

/// Which queue an opcode belongs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueClass {
    /// Session management, queue 0.
    Control,
    /// API calls, queues 1 and up.
    Request,
}

macro_rules! messages {
    ($( $(#[$doc:meta])* $name:ident = $num:literal, $class:ident, $req:ty => $resp:ty; )*) => {
        /// Every message type, with its stable wire number.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u16)]
        pub enum Opcode {
            $( $(#[$doc])* $name = $num, )*
        }

        impl Opcode {
            /// Maps a wire number to an opcode.
            pub fn from_u16(n: u16) -> Option<Self> {
                match n {
                    $( $num => Some(Opcode::$name), )*
                    _ => None,
                }
            }

            /// The queue this opcode is allowed on.
            pub fn queue_class(self) -> QueueClass {
                match self {
                    $( Opcode::$name => QueueClass::$class, )*
                }
            }

            /// Every opcode, in table order.
            pub const ALL: &'static [Opcode] = &[$( Opcode::$name, )*];
        }

        /// A decoded request body.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum Request {
            $( $(#[$doc])* $name($req), )*
        }

        impl Request {
            /// The request's opcode.
            pub fn opcode(&self) -> Opcode {
                match self {
                    $( Request::$name(_) => Opcode::$name, )*
                }
            }

            /// Encodes the body (without the frame header).
            pub fn encode_body(&self, out: &mut Vec<u8>) {
                match self {
                    $( Request::$name(b) => codec::encode_into(b, out), )*
                }
            }

            /// Decodes and validates a body for the given wire opcode.
            pub fn decode(opcode: u16, body: &[u8]) -> Result<Self, DecodeError> {
                let op = Opcode::from_u16(opcode).ok_or(DecodeError::UnknownOpcode(opcode))?;
                match op {
                    $( Opcode::$name => {
                        let b: $req = codec::decode(body)?;
                        b.validate()?;
                        Ok(Request::$name(b))
                    } )*
                }
            }
        }

        /// A decoded response body.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum Response {
            $( $(#[$doc])* $name($resp), )*
        }

        impl Response {
            /// The opcode of the request this answers.
            pub fn opcode(&self) -> Opcode {
                match self {
                    $( Response::$name(_) => Opcode::$name, )*
                }
            }

            /// Encodes the body (without the frame header).
            pub fn encode_body(&self, out: &mut Vec<u8>) {
                match self {
                    $( Response::$name(b) => codec::encode_into(b, out), )*
                }
            }

            /// Decodes a successful response body for the given wire opcode.
            pub fn decode(opcode: u16, body: &[u8]) -> Result<Self, DecodeError> {
                let op = Opcode::from_u16(opcode).ok_or(DecodeError::UnknownOpcode(opcode))?;
                match op {
                    $( Opcode::$name => Ok(Response::$name(codec::decode(body)?)), )*
                }
            }
        }
    };
}

messages! {
    /// Open a session: version and feature negotiation.
    SessionOpen = 0x0001, Control, SessionOpen => SessionOpened;
    /// Close the session and free everything it owns.
    SessionClose = 0x0002, Control, Empty => Empty;
    /// Liveness probe; also the null round trip of the benchmarks.
    Ping = 0x0003, Request, Empty => Empty;

    /// `clGetPlatformIDs`
    ClGetPlatformIds = 0x0100, Request, Empty => HandleList;
    /// `clGetDeviceIDs`
    ClGetDeviceIds = 0x0101, Request, GetDeviceIds => HandleList;
    /// Any `clGet*Info`
    ClGetInfo = 0x0102, Request, GetInfo => InfoValue;
    /// `clGetSupportedImageFormats`
    ClGetImageFormats = 0x0103, Request, GetImageFormats => ImageFormats;
    /// `clCreateContext`
    ClCreateContext = 0x0110, Request, CreateContext => Empty;
    /// `clCreateContextFromType`
    ClCreateContextFromType = 0x0111, Request, CreateContextFromType => HandleList;
    /// `clCreateCommandQueue(WithProperties)`
    ClCreateCommandQueue = 0x0112, Request, CreateCommandQueue => Empty;
    /// `clCreateBuffer`
    ClCreateBuffer = 0x0113, Request, CreateBuffer => Empty;
    /// `clCreateSubBuffer`
    ClCreateSubBuffer = 0x0114, Request, CreateSubBuffer => Empty;
    /// `clCreateProgramWithSource`
    ClCreateProgramWithSource = 0x0115, Request, CreateProgramWithSource => Empty;
    /// `clCreateProgramWithBinary`
    ClCreateProgramWithBinary = 0x0116, Request, CreateProgramWithBinary => BinaryStatus;
    /// `clBuildProgram`
    ClBuildProgram = 0x0117, Request, BuildProgram => Empty;
    /// `clGetProgramInfo(CL_PROGRAM_BINARIES)`
    ClGetProgramBinaries = 0x0118, Request, GetProgramBinaries => Binaries;
    /// `clCreateKernel`
    ClCreateKernel = 0x0119, Request, CreateKernel => Empty;
    /// `clSetKernelArg`
    ClSetKernelArg = 0x011a, Request, SetKernelArg => Empty;
    /// `clCreateUserEvent`
    ClCreateUserEvent = 0x011b, Request, CreateUserEvent => Empty;
    /// `clSetUserEventStatus`
    ClSetUserEventStatus = 0x011c, Request, SetUserEventStatus => Empty;
    /// Last `clRelease*` of an object
    ClRelease = 0x011f, Request, Release => Empty;
    /// `clEnqueueWriteBuffer`
    ClEnqueueWriteBuffer = 0x0120, Request, EnqueueWriteBuffer => Empty;
    /// `clEnqueueReadBuffer`
    ClEnqueueReadBuffer = 0x0121, Request, EnqueueReadBuffer => Empty;
    /// `clEnqueueCopyBuffer`
    ClEnqueueCopyBuffer = 0x0122, Request, EnqueueCopyBuffer => Empty;
    /// `clEnqueueFillBuffer`
    ClEnqueueFillBuffer = 0x0123, Request, EnqueueFillBuffer => Empty;
    /// `clEnqueueNDRangeKernel`
    ClEnqueueNdRange = 0x0124, Request, EnqueueNdRange => Empty;
    /// `clEnqueueMarkerWithWaitList` / `clEnqueueBarrierWithWaitList`
    ClEnqueueMarker = 0x0125, Request, EnqueueMarker => Empty;
    /// `clFinish`
    ClFinish = 0x0130, Request, QueueOp => Empty;
    /// `clFlush`
    ClFlush = 0x0131, Request, QueueOp => Empty;
    /// `clWaitForEvents`
    ClWaitForEvents = 0x0132, Request, WaitForEvents => Empty;
}
