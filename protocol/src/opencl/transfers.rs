//! Rectangular buffer transfers and memory migration.

use bincode::{Decode, Encode};

use super::layout::Triple;
use super::{check_list, EnqueueCommon, Handle, Validate};
use crate::error::DecodeError;
use crate::limits::MAX_LIST_LEN;

/// `clEnqueueReadBufferRect` / `clEnqueueWriteBufferRect`. The host data
/// is the frame's single bulk segment (out-bulk for reads, in-bulk for
/// writes): the region's box with the host pitches, from its first byte
/// (the shim folds the host origin into where the segment starts). A
/// read completes before the daemon answers.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct EnqueueBufferRect {
    /// Queue, waits, event.
    pub common: EnqueueCommon,
    /// Buffer handle.
    pub buffer: Handle,
    /// Origin in the buffer: byte, row, slice.
    pub buffer_origin: Triple,
    /// Region: bytes per row, rows, slices.
    pub region: Triple,
    /// Buffer row pitch (0 = `region[0]`).
    pub buffer_row_pitch: u64,
    /// Buffer slice pitch (0 = `region[1]` rows).
    pub buffer_slice_pitch: u64,
    /// Host row pitch (0 = `region[0]`).
    pub host_row_pitch: u64,
    /// Host slice pitch (0 = `region[1]` rows).
    pub host_slice_pitch: u64,
}

/// `clEnqueueCopyBufferRect`
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct EnqueueCopyBufferRect {
    /// Queue, waits, event.
    pub common: EnqueueCommon,
    /// Source buffer.
    pub src: Handle,
    /// Destination buffer.
    pub dst: Handle,
    /// Origin in the source: byte, row, slice.
    pub src_origin: Triple,
    /// Origin in the destination.
    pub dst_origin: Triple,
    /// Region: bytes per row, rows, slices.
    pub region: Triple,
    /// Source row pitch.
    pub src_row_pitch: u64,
    /// Source slice pitch.
    pub src_slice_pitch: u64,
    /// Destination row pitch.
    pub dst_row_pitch: u64,
    /// Destination slice pitch.
    pub dst_slice_pitch: u64,
}

/// `clEnqueueMigrateMemObjects`
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct EnqueueMigrate {
    /// Queue, waits, event.
    pub common: EnqueueCommon,
    /// Memory objects.
    pub mems: Vec<Handle>,
    /// `cl_mem_migration_flags`.
    pub flags: u64,
}

impl Validate for EnqueueBufferRect {
    fn validate(&self) -> Result<(), DecodeError> {
        self.common.validate()
    }
}
impl Validate for EnqueueCopyBufferRect {
    fn validate(&self) -> Result<(), DecodeError> {
        self.common.validate()
    }
}
impl Validate for EnqueueMigrate {
    fn validate(&self) -> Result<(), DecodeError> {
        self.common.validate()?;
        check_list(self.mems.len(), MAX_LIST_LEN, "memory objects")
    }
}
