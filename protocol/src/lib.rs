//! The virtio-compute wire format, defined once for every peer.
//!
//! Pure: no I/O, no `unsafe`. Decoding never panics and never allocates more
//! than the limits in [`limits`] allow.
//!
//! | module | role |
//! |---|---|
//! | [`header`] | the fixed 32-byte little-endian frame header |
//! | [`frame`] | frames in a chain or stream, request/response encoding |
//! | [`message`] | opcodes with stable numbers; the `Request`/`Response` enums |
//! | [`stream`] | records: frames with inline bulk over a byte stream |
//! | [`device`] | the virtio-compute device: ID, features, config space, the device header that carries a guest process's session |
//! | [`session`] | session open, version and feature negotiation |
//! | [`opencl`] | OpenCL message bodies and handle rules; images, transfers, programs, devices, and the bytes a rectangle spans (`opencl::layout`) |
//! | [`cuda`] | CUDA driver API message bodies, pointer and handle rules, `CUresult` codes |
//! | [`cuda_graph`] | CUDA capture and graphs, stream-ordered allocation, staged module images |
//! | [`fatbin`] | fat binaries (wrapper, header, entries, LZ4 and Zstd payloads): bounded parsing for both peers |
//! | [`codec`] | the bincode 2 configuration with its decode limit |
//! | [`limits`] | every bound, with its reason |
//! | [`error`] | decode errors and protocol error codes |
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod codec;
pub mod cuda;
pub mod cuda_graph;
pub mod device;
pub mod error;
pub mod fatbin;
pub mod frame;
pub mod header;
pub mod limits;
pub mod message;
pub mod opencl;
pub mod session;
pub mod stream;

pub use error::{DecodeError, ProtocolError};
pub use frame::{
    decode_request, decode_response, encode_request, encode_response, Frame, FrameIter, Outcome,
};
pub use header::{Header, FLAG_ASYNC, FLAG_PROTOCOL_ERROR, FLAG_RESPONSE, HEADER_LEN, MAGIC};
pub use message::{Opcode, QueueClass, Request, Response};
pub use session::{SessionOpen, SessionOpened, PROTOCOL_VERSION};

/// Number of virtqueues the device exposes: queue 0 is the control queue,
/// the rest are request queues.
pub const NUM_QUEUES: usize = 2;
/// Index of the control queue.
pub const CONTROL_QUEUE: usize = 0;
/// Index of the first request queue.
pub const REQUEST_QUEUE: usize = 1;
/// Descriptors per virtqueue the device offers.
pub const QUEUE_SIZE: u16 = 256;
