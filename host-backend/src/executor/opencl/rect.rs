//! Rectangular buffer transfers, and memory migration.
//!
//! A rectangle's extent in each buffer (origin, region and pitches) is
//! computed with checked arithmetic (`protocol::opencl::layout`) and must
//! lie in the buffer; the host side must be exactly the segment the
//! request carries. Only then does the runtime see the rectangle.

use cl3::error_codes::{CL_INVALID_MEM_OBJECT, CL_INVALID_VALUE};
use cl3::types::{cl_mem, CL_TRUE};
use protocol::opencl::layout::{ByteBox, Placement, Triple};
use protocol::opencl::{Empty, EnqueueBufferRect, EnqueueCopyBufferRect, EnqueueMigrate};

use super::enqueue::{usize_of, HostBytes};
use super::handles::native;
use super::OpenClExecutor;
use crate::executor::{Bulk, ExecError};

/// Where a rectangle lies in a buffer of `size` bytes: `CL_INVALID_VALUE`
/// for a box with a zero side, pitches too small for it, or bytes outside
/// the buffer.
fn place(
    region: Triple,
    origin: Triple,
    row: u64,
    slice: u64,
    size: u64,
) -> Result<Placement, ExecError> {
    ByteBox::of_rect(region)
        .and_then(|b| b.place(origin, row, slice))
        .filter(|p| p.end <= size)
        .ok_or(native(CL_INVALID_VALUE))
}

/// Converts a triple for the runtime.
fn sizes3(t: Triple) -> Result<[usize; 3], ExecError> {
    Ok([usize_of(t[0])?, usize_of(t[1])?, usize_of(t[2])?])
}

impl OpenClExecutor {
    /// The checked buffer and host length of a read or write rectangle.
    fn check_rect(&self, req: &EnqueueBufferRect) -> Result<(cl_mem, u64), ExecError> {
        let buf = self.table.buffer(req.buffer)?;
        place(
            req.region,
            req.buffer_origin,
            req.buffer_row_pitch,
            req.buffer_slice_pitch,
            buf.size,
        )?;
        let host = place(
            req.region,
            [0; 3],
            req.host_row_pitch,
            req.host_slice_pitch,
            u64::MAX,
        )?;
        Ok((buf.raw(), host.end))
    }

    /// `clEnqueueReadBufferRect` (`read`) or `clEnqueueWriteBufferRect`.
    pub(super) fn buffer_rect(
        &mut self,
        req: EnqueueBufferRect,
        bulk: &Bulk<'_>,
        read: bool,
    ) -> Result<Empty, ExecError> {
        let p = self.prepare(&req.common)?;
        let (buffer, host_len) = self.check_rect(&req)?;
        let origin = sizes3(req.buffer_origin)?;
        let region = sizes3(req.region)?;
        let zero = [0usize; 3];
        let (brow, bslice) = (
            usize_of(req.buffer_row_pitch)?,
            usize_of(req.buffer_slice_pitch)?,
        );
        let (hrow, hslice) = (
            usize_of(req.host_row_pitch)?,
            usize_of(req.host_slice_pitch)?,
        );
        // A read carries only a writable segment, a write only a readable
        // (a rectangle is never empty: `check_rect` refuses that).
        let mut spare = [0u8; 1];
        let bytes = HostBytes::of(bulk, host_len, read)?;
        let host = bytes.ptr(&mut spare);
        // SAFETY: queue, buffer and events are live objects of this
        // session; the rectangle lies in the buffer (checked); `host` is a
        // guard's mapping of exactly the bytes the host side spans from
        // origin 0 with these pitches (writable for a read, only read for a
        // write), alive for the whole blocking call.
        let ev = unsafe {
            if read {
                cl3::command_queue::enqueue_read_buffer_rect(
                    p.queue,
                    buffer,
                    CL_TRUE,
                    origin.as_ptr(),
                    zero.as_ptr(),
                    region.as_ptr(),
                    brow,
                    bslice,
                    hrow,
                    hslice,
                    host.cast(),
                    p.wait_len(),
                    p.wait_ptr(),
                )
            } else {
                cl3::command_queue::enqueue_write_buffer_rect(
                    p.queue,
                    buffer,
                    CL_TRUE,
                    origin.as_ptr(),
                    zero.as_ptr(),
                    region.as_ptr(),
                    brow,
                    bslice,
                    hrow,
                    hslice,
                    host.cast(),
                    p.wait_len(),
                    p.wait_ptr(),
                )
            }
        }
        .map_err(native)?;
        self.finish_enqueue(&req.common, ev)
    }

    pub(super) fn copy_buffer_rect(
        &mut self,
        req: EnqueueCopyBufferRect,
    ) -> Result<Empty, ExecError> {
        let p = self.prepare(&req.common)?;
        let src = self.table.buffer(req.src)?;
        let dst = self.table.buffer(req.dst)?;
        place(
            req.region,
            req.src_origin,
            req.src_row_pitch,
            req.src_slice_pitch,
            src.size,
        )?;
        place(
            req.region,
            req.dst_origin,
            req.dst_row_pitch,
            req.dst_slice_pitch,
            dst.size,
        )?;
        let (so, d_o, region) = (
            sizes3(req.src_origin)?,
            sizes3(req.dst_origin)?,
            sizes3(req.region)?,
        );
        // SAFETY: queue, buffers and events are live objects of this
        // session; both rectangles lie in their buffers (checked); the
        // arrays outlive the call.
        let ev = unsafe {
            cl3::command_queue::enqueue_copy_buffer_rect(
                p.queue,
                src.raw(),
                dst.raw(),
                so.as_ptr(),
                d_o.as_ptr(),
                region.as_ptr(),
                usize_of(req.src_row_pitch)?,
                usize_of(req.src_slice_pitch)?,
                usize_of(req.dst_row_pitch)?,
                usize_of(req.dst_slice_pitch)?,
                p.wait_len(),
                p.wait_ptr(),
            )
        }
        .map_err(native)?;
        self.finish_enqueue(&req.common, ev)
    }

    /// Migration is the runtime's to validate and perform: the daemon
    /// only resolves the handles.
    pub(super) fn migrate(&mut self, req: EnqueueMigrate) -> Result<Empty, ExecError> {
        let p = self.prepare(&req.common)?;
        let mems = req
            .mems
            .iter()
            .map(|&h| self.table.mem(h).map(|m| m.raw()))
            .collect::<Result<Vec<cl_mem>, _>>()
            .map_err(|_| native(CL_INVALID_MEM_OBJECT))?;
        // SAFETY: queue, memory objects and events are live objects of this
        // session; `mems` holds exactly as many entries as the count says
        // (an empty list is passed for the runtime to refuse).
        let ev = unsafe {
            cl3::command_queue::enqueue_migrate_mem_object(
                p.queue,
                mems.len() as u32,
                if mems.is_empty() {
                    std::ptr::null()
                } else {
                    mems.as_ptr()
                },
                req.flags,
                p.wait_len(),
                p.wait_ptr(),
            )
        }
        .map_err(native)?;
        self.finish_enqueue(&req.common, ev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rectangles_must_lie_in_the_buffer() {
        // 4 bytes x 2 rows x 2 slices, pitches 8 and 16: 28 bytes from 0.
        assert!(place([4, 2, 2], [0; 3], 8, 16, 28).is_ok());
        assert!(place([4, 2, 2], [0; 3], 8, 16, 27).is_err());
        assert!(place([4, 2, 2], [1, 0, 0], 8, 16, 28).is_err());
        assert!(place([4, 2, 2], [0, 0, u64::MAX], 8, 16, u64::MAX).is_err());
        assert!(place([0, 2, 2], [0; 3], 8, 16, 64).is_err());
        assert!(place([4, 2, 2], [0; 3], 3, 16, 64).is_err());
    }
}
