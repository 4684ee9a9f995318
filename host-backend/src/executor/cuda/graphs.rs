//! Stream capture, graphs, stream-ordered allocation, stream memory
//! operations and staged module images: the checks in front of each
//! backend call.
//!
//! A capture runs on the real stream; while one is active, copies between
//! guest memory and that stream, and stream-ordered allocations on it, are
//! refused with `CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED` (a captured copy
//! would name a staging buffer the daemon reuses). Graphs and executable
//! graphs are guest-named objects of their context, destroyed with it.
//! A staged upload is held until the load that names it.

use protocol::cuda::result::{INVALID_HANDLE, INVALID_VALUE};
use protocol::cuda::*;
use protocol::limits::MAX_MODULE_IMAGE_LEN;

use super::backend::{Backend, Lane};
use super::memory::Owner;
use super::session::{bad_descriptor, cu, CudaSession, Obj, Objects, Upload};
use crate::executor::{Bulk, ExecError};
use crate::segment::{total_len, Cursor};

/// `CU_STREAM_CAPTURE_MODE_RELAXED`, the largest mode.
const MAX_CAPTURE_MODE: u32 = 2;
/// `CU_STREAM_WAIT_VALUE_GEQ|EQ|AND|NOR` (the low two bits are the
/// condition) and `CU_STREAM_WAIT_VALUE_FLUSH`.
const WAIT_VALUE_FLAGS: u32 = 0x3 | 1 << 30;
/// `CU_STREAM_WRITE_VALUE_NO_MEMORY_BARRIER`
const WRITE_VALUE_FLAGS: u32 = 0x1;
/// Every `CUgraphInstantiate_flags` bit (auto-free on launch, upload,
/// device launch, use node priority).
const GRAPH_INSTANTIATE_FLAGS: u64 = 0x1 | 0x2 | 0x4 | 0x8;

impl<B: Backend> Objects<B> {
    /// Whether `s` names a stream that is capturing.
    pub(super) fn capturing(&self, s: StreamRef) -> bool {
        matches!(s, StreamRef::Stream(h)
            if matches!(self.0.get(&h), Some(Obj::Stream { capturing: true, .. })))
    }

    /// A created stream's device, stream and capture state.
    fn created(&mut self, s: StreamRef) -> Result<(u32, &mut bool), ExecError> {
        let StreamRef::Stream(h) = s else {
            return Err(cu(result::STREAM_CAPTURE_UNSUPPORTED));
        };
        let ctx = match self.0.get(&h) {
            Some(Obj::Stream { ctx, .. }) => *ctx,
            _ => return Err(cu(CuObjectKind::Stream.invalid())),
        };
        let device = self.ctx_device(ctx)?;
        match self.0.get_mut(&h) {
            Some(Obj::Stream { capturing, .. }) => Ok((device, capturing)),
            _ => Err(cu(CuObjectKind::Stream.invalid())),
        }
    }
}

impl<B: Backend> CudaSession<B> {
    /// Refuses guest-memory copies on a capturing stream.
    pub(super) fn not_capturing(&self, s: StreamRef) -> Result<(), ExecError> {
        if self.objects.capturing(s) {
            return Err(cu(result::STREAM_CAPTURE_UNSUPPORTED));
        }
        Ok(())
    }

    pub(super) fn mem_alloc_async(&mut self, r: MemAllocAsync) -> Result<DevicePtr, ExecError> {
        self.not_capturing(r.stream)?;
        let ctx = match r.stream {
            StreamRef::Legacy { ctx } | StreamRef::PerThread { ctx } => ctx,
            StreamRef::Stream(h) => match self.objects.0.get(&h) {
                Some(Obj::Stream { ctx, .. }) => *ctx,
                _ => return Err(cu(CuObjectKind::Stream.invalid())),
            },
        };
        let (device, lane) = self.objects.lane(r.stream)?;
        if r.size == 0 {
            return Err(cu(INVALID_VALUE));
        }
        self.check_room()?;
        self.mem.reserve(r.size).map_err(cu)?;
        let ptr = self
            .backend
            .mem_alloc_async(device, lane, r.size)
            .map_err(cu)?;
        if let Err(code) = self.mem.insert(ptr, r.size, device, ctx, Owner::Alloc) {
            let _ = self.backend.mem_free(device, ptr);
            return Err(cu(code));
        }
        Ok(DevicePtr { ptr })
    }

    pub(super) fn mem_free_async(&mut self, r: MemFreeAsync) -> Result<Empty, ExecError> {
        let (device, _) = self.objects.lane(r.stream)?;
        let region = self.mem.find(r.ptr, 1).map_err(cu)?;
        if region.base != r.ptr || region.owner != Owner::Alloc || region.device != device {
            return Err(cu(INVALID_VALUE));
        }
        let region = self.mem.remove_alloc(r.ptr).map_err(cu)?;
        let (_, lane) = self.objects.lane(r.stream)?;
        self.backend
            .mem_free_async(device, lane, region.base)
            .map_err(cu)?;
        Ok(Empty {})
    }

    pub(super) fn stream_mem_op(&mut self, r: StreamMemOp) -> Result<Empty, ExecError> {
        let (device, lane) = self.objects.lane(r.stream)?;
        let width = r.kind.width();
        let known = if r.kind.waits() {
            WAIT_VALUE_FLAGS
        } else {
            WRITE_VALUE_FLAGS
        };
        if !r.addr.is_multiple_of(width) || r.flags & !known != 0 {
            return Err(cu(INVALID_VALUE));
        }
        if self.mem.find(r.addr, width).map_err(cu)?.device != device {
            return Err(cu(INVALID_VALUE));
        }
        let value = if width == 4 {
            r.value & 0xffff_ffff
        } else {
            r.value
        };
        self.backend
            .stream_mem_op(device, lane, r.kind, r.addr, value, r.flags)
            .map_err(cu)?;
        Ok(Empty {})
    }

    pub(super) fn stream_begin_capture(
        &mut self,
        r: StreamBeginCapture,
    ) -> Result<Empty, ExecError> {
        if r.mode > MAX_CAPTURE_MODE {
            return Err(cu(INVALID_VALUE));
        }
        let (device, capturing) = self.objects.created(r.stream)?;
        if *capturing {
            return Err(cu(result::STREAM_CAPTURE_UNSUPPORTED));
        }
        let (_, Lane::Stream(stream)) = self.objects.lane(r.stream)? else {
            return Err(cu(result::STREAM_CAPTURE_UNSUPPORTED));
        };
        self.backend
            .stream_begin_capture(device, stream, r.mode)
            .map_err(cu)?;
        if let Ok((_, capturing)) = self.objects.created(r.stream) {
            *capturing = true;
        }
        Ok(Empty {})
    }

    pub(super) fn stream_end_capture(&mut self, r: StreamEndCapture) -> Result<Empty, ExecError> {
        self.check_new(r.graph)?;
        let (device, capturing) = self.objects.created(r.stream)?;
        if !*capturing {
            return Err(cu(result::STREAM_CAPTURE_UNMATCHED));
        }
        *capturing = false;
        let ctx = match r.stream {
            StreamRef::Stream(h) => match self.objects.0.get(&h) {
                Some(Obj::Stream { ctx, .. }) => *ctx,
                _ => return Err(cu(INVALID_HANDLE)),
            },
            _ => return Err(cu(INVALID_HANDLE)),
        };
        let (_, Lane::Stream(stream)) = self.objects.lane(r.stream)? else {
            return Err(cu(INVALID_HANDLE));
        };
        let graph = self
            .backend
            .stream_end_capture(device, stream)
            .map_err(cu)?;
        self.objects.0.insert(r.graph, Obj::Graph { ctx, graph });
        Ok(Empty {})
    }

    pub(super) fn graph_instantiate(&mut self, r: GraphInstantiate) -> Result<Empty, ExecError> {
        self.check_new(r.exec)?;
        if r.flags & !GRAPH_INSTANTIATE_FLAGS != 0 {
            return Err(cu(INVALID_VALUE));
        }
        let (ctx, graph) = match self.objects.0.get(&r.graph) {
            Some(Obj::Graph { ctx, graph }) => (*ctx, graph),
            _ => return Err(cu(CuObjectKind::Graph.invalid())),
        };
        let device = self.objects.ctx_device(ctx)?;
        let exec = self
            .backend
            .graph_instantiate(device, graph, r.flags)
            .map_err(cu)?;
        self.objects.0.insert(r.exec, Obj::GraphExec { ctx, exec });
        Ok(Empty {})
    }

    pub(super) fn graph_launch(&mut self, r: GraphLaunch) -> Result<Empty, ExecError> {
        let (device, lane) = self.objects.lane(r.stream)?;
        let (ctx, exec) = match self.objects.0.get(&r.exec) {
            Some(Obj::GraphExec { ctx, exec }) => (*ctx, exec),
            _ => return Err(cu(CuObjectKind::Graph.invalid())),
        };
        if self.objects.ctx_device(ctx)? != device {
            return Err(cu(INVALID_HANDLE));
        }
        self.backend.graph_launch(device, exec, lane).map_err(cu)?;
        Ok(Empty {})
    }

    pub(super) fn graph_destroy(&mut self, r: GraphOp, exec: bool) -> Result<Empty, ExecError> {
        let ctx = match self.objects.0.get(&r.graph) {
            Some(Obj::Graph { ctx, .. }) if !exec => *ctx,
            Some(Obj::GraphExec { ctx, .. }) if exec => *ctx,
            _ => return Err(cu(CuObjectKind::Graph.invalid())),
        };
        let device = self.objects.ctx_device(ctx)?;
        self.drop_graph(device, r.graph).map_err(cu)?;
        Ok(Empty {})
    }

    /// Removes a graph or executable graph and destroys it.
    pub(super) fn drop_graph(&mut self, device: u32, h: Handle) -> Result<(), i32> {
        match self.objects.0.remove(&h) {
            Some(Obj::Graph { graph, .. }) => self.backend.graph_destroy(device, graph),
            Some(Obj::GraphExec { exec, .. }) => self.backend.graph_exec_destroy(device, exec),
            Some(other) => {
                self.objects.0.insert(h, other);
                Ok(())
            }
            None => Ok(()),
        }
    }

    pub(super) fn module_stage(
        &mut self,
        r: ModuleStage,
        bulk: &Bulk<'_>,
    ) -> Result<Empty, ExecError> {
        if !bulk.output.is_empty() {
            return Err(bad_descriptor());
        }
        let len = total_len(bulk.input);
        let end = r.offset.checked_add(len).ok_or(cu(INVALID_VALUE))?;
        if end > r.total || r.total > MAX_MODULE_IMAGE_LEN || r.upload == 0 {
            return Err(cu(INVALID_VALUE));
        }
        if r.offset == 0 {
            // A new upload replaces any unfinished one.
            self.upload = Some(Upload {
                id: r.upload,
                total: r.total,
                bytes: Vec::new(),
            });
        }
        let up = self
            .upload
            .as_mut()
            .filter(|u| u.id == r.upload && u.total == r.total)
            .ok_or(cu(INVALID_VALUE))?;
        if up.bytes.len() as u64 != r.offset {
            // Pieces arrive in order; a gap or overlap ends the upload.
            self.upload = None;
            return Err(cu(INVALID_VALUE));
        }
        let piece = Cursor::new(bulk.input).gather(0);
        up.bytes.extend_from_slice(&piece);
        Ok(Empty {})
    }

    /// The complete staged image `id` of `len` bytes, taken out of the
    /// session (it goes with this load, whatever the outcome).
    pub(super) fn take_upload(&mut self, id: Handle, len: u64) -> Result<Vec<u8>, ExecError> {
        match self.upload.take() {
            Some(u) if u.id == id && u.total == len && u.bytes.len() as u64 == len => Ok(u.bytes),
            _ => Err(cu(INVALID_VALUE)),
        }
    }
}
