//! Memory, copies, streams, events, launches, function attributes and
//! occupancy: the checks in front of each backend call.
//!
//! Ranges: every copy and memset range must lie inside one region of the
//! session's allocation table, on the device of the stream it runs on
//! (`CUDA_ERROR_INVALID_VALUE` otherwise). A zero-length copy or memset
//! checks its stream and does nothing, as native.

use protocol::cuda::result::{INVALID_HANDLE, INVALID_VALUE, NOT_SUPPORTED};
use protocol::cuda::*;

use super::backend::{Backend, LaunchDims};
use super::memory::Owner;
use super::rules;
use super::session::{bad_descriptor, cu, CudaSession, Obj};
use crate::executor::{Bulk, ExecError};
use crate::segment::total_len;

impl<B: Backend> CudaSession<B> {
    /// The device of the region holding `ptr..ptr+len`.
    fn range_device(&self, ptr: u64, len: u64) -> Result<u32, ExecError> {
        self.mem.find(ptr, len).map(|r| r.device).map_err(cu)
    }

    pub(super) fn mem_alloc(&mut self, r: MemAlloc) -> Result<DevicePtr, ExecError> {
        let device = self.objects.ctx_device(r.ctx)?;
        if r.size == 0 {
            return Err(cu(INVALID_VALUE));
        }
        self.check_room()?;
        self.mem.reserve(r.size).map_err(cu)?;
        let ptr = self.backend.mem_alloc(device, r.size).map_err(cu)?;
        if let Err(code) = self.mem.insert(ptr, r.size, device, r.ctx, Owner::Alloc) {
            // The driver handed out a range we already track: never expose it.
            let _ = self.backend.mem_free(device, ptr);
            return Err(cu(code));
        }
        Ok(DevicePtr { ptr })
    }

    pub(super) fn mem_free(&mut self, r: MemFree) -> Result<Empty, ExecError> {
        let region = self.mem.remove_alloc(r.ptr).map_err(cu)?;
        self.backend
            .mem_free(region.device, region.base)
            .map_err(cu)?;
        Ok(Empty {})
    }

    pub(super) fn mem_get_info(&mut self, r: MemGetInfo) -> Result<MemInfo, ExecError> {
        let device = self.objects.ctx_device(r.ctx)?;
        let (free, total) = self.backend.mem_get_info(device).map_err(cu)?;
        Ok(MemInfo {
            free: free.min(self.mem.available()),
            total: total.min(self.mem.limit()),
        })
    }

    pub(super) fn memcpy_htod(
        &mut self,
        r: MemcpyHtoD,
        bulk: &Bulk<'_>,
    ) -> Result<Empty, ExecError> {
        if !bulk.output.is_empty() || total_len(bulk.input) != r.size {
            return Err(bad_descriptor());
        }
        self.not_capturing(r.stream)?;
        let (device, lane) = self.objects.lane(r.stream)?;
        if r.size == 0 {
            return Ok(Empty {});
        }
        if self.range_device(r.dst, r.size)? != device {
            return Err(cu(INVALID_VALUE));
        }
        self.backend
            .memcpy_htod(device, lane, r.dst, bulk.input)
            .map_err(cu)?;
        Ok(Empty {})
    }

    pub(super) fn memcpy_dtoh(
        &mut self,
        r: MemcpyDtoH,
        bulk: &Bulk<'_>,
    ) -> Result<Empty, ExecError> {
        if !bulk.input.is_empty() || total_len(bulk.output) != r.size {
            return Err(bad_descriptor());
        }
        self.not_capturing(r.stream)?;
        let (device, lane) = self.objects.lane(r.stream)?;
        if r.size == 0 {
            return Ok(Empty {});
        }
        if self.range_device(r.src, r.size)? != device {
            return Err(cu(INVALID_VALUE));
        }
        self.backend
            .memcpy_dtoh(device, lane, r.src, bulk.output)
            .map_err(cu)?;
        Ok(Empty {})
    }

    pub(super) fn memcpy_dtod(&mut self, r: MemcpyDtoD) -> Result<Empty, ExecError> {
        let (device, lane) = self.objects.lane(r.stream)?;
        if r.size == 0 {
            return Ok(Empty {});
        }
        if self.range_device(r.dst, r.size)? != device
            || self.range_device(r.src, r.size)? != device
        {
            return Err(cu(INVALID_VALUE));
        }
        self.backend
            .memcpy_dtod(device, lane, r.dst, r.src, r.size)
            .map_err(cu)?;
        Ok(Empty {})
    }

    pub(super) fn memset(&mut self, r: Memset) -> Result<Empty, ExecError> {
        let (device, lane) = self.objects.lane(r.stream)?;
        let width = r.width.bytes();
        if !r.dst.is_multiple_of(width) {
            return Err(cu(INVALID_VALUE));
        }
        if r.count == 0 {
            return Ok(Empty {});
        }
        let bytes = r.count.checked_mul(width).ok_or(cu(INVALID_VALUE))?;
        if self.range_device(r.dst, bytes)? != device {
            return Err(cu(INVALID_VALUE));
        }
        self.backend
            .memset(device, lane, r.dst, r.width, r.value, r.count)
            .map_err(cu)?;
        Ok(Empty {})
    }

    pub(super) fn pointer_attribute(
        &mut self,
        r: PointerGetAttribute,
    ) -> Result<PointerAttribute, ExecError> {
        let region = self.mem.find(r.ptr, 1).map_err(cu)?;
        let value = rules::pointer_attribute(region, r.ptr, r.attribute).map_err(cu)?;
        Ok(PointerAttribute { value })
    }

    pub(super) fn stream_create(&mut self, r: StreamCreate) -> Result<Empty, ExecError> {
        self.check_new(r.id)?;
        let device = self.objects.ctx_device(r.ctx)?;
        rules::check_flags(r.flags, rules::STREAM_FLAGS).map_err(cu)?;
        let stream = self
            .backend
            .stream_create(device, r.flags, r.priority)
            .map_err(cu)?;
        self.objects.0.insert(
            r.id,
            Obj::Stream {
                ctx: r.ctx,
                stream,
                capturing: false,
            },
        );
        Ok(Empty {})
    }

    pub(super) fn stream_destroy(&mut self, r: StreamDestroy) -> Result<Empty, ExecError> {
        let (device, _) = self.objects.lane(StreamRef::Stream(r.stream))?;
        if let Some(Obj::Stream { stream, .. }) = self.objects.0.remove(&r.stream) {
            self.backend.stream_destroy(device, stream).map_err(cu)?;
        }
        Ok(Empty {})
    }

    pub(super) fn stream_synchronize(&mut self, r: StreamOp) -> Result<Empty, ExecError> {
        let (device, lane) = self.objects.lane(r.stream)?;
        self.backend.stream_synchronize(device, lane).map_err(cu)?;
        Ok(Empty {})
    }

    pub(super) fn stream_query(&mut self, r: StreamOp) -> Result<Empty, ExecError> {
        let (device, lane) = self.objects.lane(r.stream)?;
        self.backend.stream_query(device, lane).map_err(cu)?;
        Ok(Empty {})
    }

    pub(super) fn stream_wait_event(&mut self, r: StreamWaitEvent) -> Result<Empty, ExecError> {
        let (device, lane) = self.objects.lane(r.stream)?;
        let (_, event) = self.objects.event(r.event)?;
        rules::check_flags(r.flags, rules::EVENT_WAIT_FLAGS).map_err(cu)?;
        self.backend
            .stream_wait_event(device, lane, event, r.flags)
            .map_err(cu)?;
        Ok(Empty {})
    }

    pub(super) fn event_create(&mut self, r: EventCreate) -> Result<Empty, ExecError> {
        self.check_new(r.id)?;
        let device = self.objects.ctx_device(r.ctx)?;
        rules::check_flags(r.flags, rules::EVENT_FLAGS).map_err(cu)?;
        if r.flags & rules::EVENT_INTERPROCESS != 0 {
            return Err(cu(NOT_SUPPORTED));
        }
        let event = self.backend.event_create(device, r.flags).map_err(cu)?;
        self.objects
            .0
            .insert(r.id, Obj::Event { ctx: r.ctx, event });
        Ok(Empty {})
    }

    pub(super) fn event_record(&mut self, r: EventRecord) -> Result<Empty, ExecError> {
        let (event_device, event) = self.objects.event(r.event)?;
        let (device, lane) = self.objects.lane(r.stream)?;
        rules::check_flags(r.flags, rules::EVENT_RECORD_FLAGS).map_err(cu)?;
        if device != event_device {
            return Err(cu(INVALID_HANDLE));
        }
        self.backend
            .event_record(device, event, lane, r.flags)
            .map_err(cu)?;
        Ok(Empty {})
    }

    pub(super) fn event_synchronize(&mut self, r: EventOp) -> Result<Empty, ExecError> {
        let (device, event) = self.objects.event(r.event)?;
        self.backend.event_synchronize(device, event).map_err(cu)?;
        Ok(Empty {})
    }

    pub(super) fn event_query(&mut self, r: EventOp) -> Result<Empty, ExecError> {
        let (device, event) = self.objects.event(r.event)?;
        self.backend.event_query(device, event).map_err(cu)?;
        Ok(Empty {})
    }

    pub(super) fn event_elapsed(&mut self, r: EventElapsedTime) -> Result<Elapsed, ExecError> {
        let (d1, start) = self.objects.event(r.start)?;
        let (d2, end) = self.objects.event(r.end)?;
        if d1 != d2 {
            return Err(cu(INVALID_HANDLE));
        }
        let ms = self.backend.event_elapsed(d1, start, end).map_err(cu)?;
        Ok(Elapsed::from_millis(ms))
    }

    pub(super) fn event_destroy(&mut self, r: EventOp) -> Result<Empty, ExecError> {
        let (device, _) = self.objects.event(r.event)?;
        if let Some(Obj::Event { event, .. }) = self.objects.0.remove(&r.event) {
            self.backend.event_destroy(device, event).map_err(cu)?;
        }
        Ok(Empty {})
    }

    pub(super) fn launch(&mut self, r: LaunchKernel) -> Result<Empty, ExecError> {
        let (device, function, layout) = self.objects.function(r.function)?;
        let (stream_device, lane) = self.objects.lane(r.stream)?;
        if stream_device != device {
            return Err(cu(INVALID_HANDLE));
        }
        if r.grid.contains(&0) || r.block.contains(&0) {
            return Err(cu(INVALID_VALUE));
        }
        if let Some(layout) = layout {
            let expected = FunctionInfo {
                params: Some(layout.to_vec()),
            }
            .params_len();
            if expected != Some(r.params.len() as u64) {
                return Err(cu(INVALID_VALUE));
            }
        }
        let dims = LaunchDims {
            grid: r.grid,
            block: r.block,
            shared_mem_bytes: r.shared_mem_bytes,
        };
        self.backend
            .launch(device, function, &dims, lane, &r.params, layout)
            .map_err(cu)?;
        Ok(Empty {})
    }

    pub(super) fn func_get_attribute(
        &mut self,
        r: FuncGetAttribute,
    ) -> Result<IntValue, ExecError> {
        let (device, function, _) = self.objects.function(r.function)?;
        if !(0..=rules::MAX_FUNC_ATTRIBUTE).contains(&r.attribute) {
            return Err(cu(INVALID_VALUE));
        }
        let value = self
            .backend
            .func_get_attribute(device, function, r.attribute)
            .map_err(cu)?;
        Ok(IntValue { value })
    }

    pub(super) fn func_set_attribute(&mut self, r: FuncSetAttribute) -> Result<Empty, ExecError> {
        let (device, function, _) = self.objects.function(r.function)?;
        if !rules::func_attribute_settable(r.attribute) {
            return Err(cu(INVALID_VALUE));
        }
        self.backend
            .func_set_attribute(device, function, r.attribute, r.value)
            .map_err(cu)?;
        Ok(Empty {})
    }

    pub(super) fn func_set_cache_config(
        &mut self,
        r: FuncSetCacheConfig,
    ) -> Result<Empty, ExecError> {
        let (device, function, _) = self.objects.function(r.function)?;
        if r.config > rules::MAX_CACHE_CONFIG {
            return Err(cu(INVALID_VALUE));
        }
        self.backend
            .func_set_cache_config(device, function, r.config)
            .map_err(cu)?;
        Ok(Empty {})
    }

    pub(super) fn occupancy_max_active_blocks(
        &mut self,
        r: OccupancyMaxActiveBlocks,
    ) -> Result<IntValue, ExecError> {
        let (device, function, _) = self.objects.function(r.function)?;
        if r.block_size <= 0 {
            return Err(cu(INVALID_VALUE));
        }
        rules::check_flags(r.flags, rules::OCCUPANCY_FLAGS).map_err(cu)?;
        let value = self
            .backend
            .occupancy_max_active_blocks(device, function, r.block_size, r.dynamic_smem, r.flags)
            .map_err(cu)?;
        Ok(IntValue { value })
    }

    pub(super) fn occupancy_max_potential_block_size(
        &mut self,
        r: OccupancyMaxPotentialBlockSize,
    ) -> Result<PotentialBlockSize, ExecError> {
        let (device, function, _) = self.objects.function(r.function)?;
        if r.block_size_limit < 0 {
            return Err(cu(INVALID_VALUE));
        }
        rules::check_flags(r.flags, rules::OCCUPANCY_FLAGS).map_err(cu)?;
        let (min_grid_size, block_size) = self
            .backend
            .occupancy_max_potential_block_size(
                device,
                function,
                &r.dynamic_smem,
                r.block_size_limit,
                r.flags,
            )
            .map_err(cu)?;
        Ok(PotentialBlockSize {
            min_grid_size,
            block_size,
        })
    }

    pub(super) fn occupancy_available_dynamic_smem(
        &mut self,
        r: OccupancyAvailableDynamicSmem,
    ) -> Result<SizeValue, ExecError> {
        let (device, function, _) = self.objects.function(r.function)?;
        if r.num_blocks <= 0 || r.block_size <= 0 {
            return Err(cu(INVALID_VALUE));
        }
        let value = self
            .backend
            .occupancy_available_dynamic_smem(device, function, r.num_blocks, r.block_size)
            .map_err(cu)?;
        Ok(SizeValue { value })
    }
}
