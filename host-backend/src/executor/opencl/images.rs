//! Images, samplers, and the commands on images.
//!
//! Every origin and region is checked against the image's size, every
//! host segment against the exact bytes its box spans
//! (`protocol::opencl::layout`), and every buffer range against the
//! buffer, before the runtime sees any of them. Host transfers run
//! blocking, as buffer transfers do.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use cl3::error_codes::{
    CL_IMAGE_FORMAT_NOT_SUPPORTED, CL_INVALID_IMAGE_DESCRIPTOR, CL_INVALID_IMAGE_FORMAT_DESCRIPTOR,
    CL_INVALID_MEM_OBJECT, CL_INVALID_PROPERTY, CL_INVALID_VALUE, CL_MEM_OBJECT_ALLOCATION_FAILURE,
};
use cl3::memory::{
    CL_IMAGE_ELEMENT_SIZE, CL_MEM_ALLOC_HOST_PTR, CL_MEM_COPY_HOST_PTR, CL_MEM_SIZE,
    CL_MEM_USE_HOST_PTR,
};
use cl3::types::{cl_image_desc, cl_image_format, cl_mem, cl_sampler_properties, CL_TRUE};
use opencl3::memory::Image;
use protocol::opencl::layout::{
    element_size, image_box, region_inside, ByteBox, Triple, IMAGE1D_BUFFER,
};
use protocol::opencl::{
    CreateImage, CreateSampler, Empty, EnqueueCopyImage, EnqueueCopyImageBuffer, EnqueueFillImage,
    ImageCreated, ImageDesc, ImageTransfer, SamplerArgs,
};

use super::enqueue::{bad_descriptor, single, usize_of, HostBytes};
use super::handles::{native, Charge, ImageMeta, MemObj, Object, SamplerObj};
use super::OpenClExecutor;
use crate::executor::{Bulk, ExecError};
use crate::segment::InSeg;

/// Sampler properties, each with a plain value.
const SAMPLER_PROPERTIES: &[u64] = &[
    0x1152, // CL_SAMPLER_NORMALIZED_COORDS
    0x1153, // CL_SAMPLER_ADDRESSING_MODE
    0x1154, // CL_SAMPLER_FILTER_MODE
    0x1155, // CL_SAMPLER_MIP_FILTER_MODE
    0x1156, // CL_SAMPLER_LOD_MIN
    0x1157, // CL_SAMPLER_LOD_MAX
];

/// True for an empty list, or a zero-terminated one of known sampler
/// properties, each with a value.
fn sampler_properties_ok(props: &[u64]) -> bool {
    if props.is_empty() {
        return true;
    }
    for pair in props.chunks(2) {
        match pair {
            [0] | [0, _] => return true,
            [key, _] if SAMPLER_PROPERTIES.contains(key) => {}
            _ => return false,
        }
    }
    false
}

/// Bytes of a tightly packed region of `element`-byte pixels.
fn packed_len(region: Triple, element: u64) -> Option<u64> {
    region[0]
        .checked_mul(region[1])?
        .checked_mul(region[2])?
        .checked_mul(element)
}

/// Reads a `size_t` image or memory property the runtime just set.
fn size_info(value: Result<Vec<u8>, i32>) -> Result<u64, ExecError> {
    let v = value.map_err(native)?;
    let bytes = <[u8; 8]>::try_from(v.as_slice()).map_err(|_| native(CL_INVALID_VALUE))?;
    Ok(u64::from_ne_bytes(bytes))
}

fn raw_desc(desc: &ImageDesc, buffer: cl_mem) -> Result<cl_image_desc, ExecError> {
    Ok(cl_image_desc {
        image_type: desc.image_type,
        image_width: usize_of(desc.width)?,
        image_height: usize_of(desc.height)?,
        image_depth: usize_of(desc.depth)?,
        image_array_size: usize_of(desc.array_size)?,
        image_row_pitch: usize_of(desc.row_pitch)?,
        image_slice_pitch: usize_of(desc.slice_pitch)?,
        num_mip_levels: desc.num_mip_levels,
        num_samples: desc.num_samples,
        buffer,
    })
}

/// Converts an origin or region for the runtime.
fn sizes3(t: Triple) -> Result<[usize; 3], ExecError> {
    Ok([usize_of(t[0])?, usize_of(t[1])?, usize_of(t[2])?])
}

/// Fails unless `origin + region` lies in the image. An empty region
/// touches nothing and is the runtime's to judge (POCL 3.1 accepts one).
fn check_region(meta: &ImageMeta, origin: Triple, region: Triple) -> Result<(), ExecError> {
    if region.contains(&0) || region_inside(origin, region, meta.extent) {
        Ok(())
    } else {
        Err(native(CL_INVALID_VALUE))
    }
}

impl OpenClExecutor {
    pub(super) fn create_image(
        &mut self,
        req: CreateImage,
        bulk: &Bulk<'_>,
    ) -> Result<ImageCreated, ExecError> {
        let host_flags = CL_MEM_USE_HOST_PTR | CL_MEM_COPY_HOST_PTR;
        let element = element_size(req.format.0, req.format.1);
        let init = if req.flags & host_flags != 0 {
            if !bulk.output.is_empty() {
                return Err(bad_descriptor());
            }
            let element = element.ok_or(native(CL_INVALID_IMAGE_FORMAT_DESCRIPTOR))?;
            let len = req
                .desc
                .host_len(element)
                .ok_or(native(CL_INVALID_IMAGE_DESCRIPTOR))?;
            Some(single(bulk.input, len)?)
        } else if bulk.input.is_empty() && bulk.output.is_empty() {
            None
        } else {
            return Err(bad_descriptor());
        };
        self.check_new(req.id)?;
        let ctx = self.table.context(req.context)?.get();
        if !matches!(req.properties.as_slice(), [] | [0]) {
            // The properties OpenCL defines name devices or external
            // memory by handle, which no guest can give.
            return Err(native(CL_INVALID_PROPERTY));
        }
        let mut flags = req.flags;
        if flags & CL_MEM_USE_HOST_PTR != 0 {
            if flags & (CL_MEM_COPY_HOST_PTR | CL_MEM_ALLOC_HOST_PTR) != 0 {
                return Err(native(CL_INVALID_VALUE));
            }
            flags = (flags & !CL_MEM_USE_HOST_PTR) | CL_MEM_COPY_HOST_PTR;
        }
        let backing = match req.desc.mem_object {
            0 => None,
            h => Some(Arc::clone(self.table.mem(h)?)),
        };
        if let (Some(b), Some(e)) = (&backing, element) {
            // An image over a buffer reads the buffer's bytes as pixels:
            // they must all lie in the buffer.
            if b.is_buffer() {
                let b_box = image_box(req.desc.image_type, req.desc.extent(), e);
                let need = match req.desc.image_type {
                    IMAGE1D_BUFFER => b_box.map(|b| b.row_bytes),
                    _ => b_box.and_then(|b: ByteBox| b.span(req.desc.row_pitch, 0)),
                };
                if need.is_none_or(|n| n > b.size) {
                    return Err(native(CL_INVALID_MEM_OBJECT));
                }
            }
        }
        let format = cl_image_format {
            image_channel_order: req.format.0,
            image_channel_data_type: req.format.1,
        };
        let desc = raw_desc(
            &req.desc,
            backing.as_ref().map_or(std::ptr::null_mut(), |b| b.raw()),
        )?;
        let guard = init.map(InSeg::ptr_guard);
        let host = guard
            .as_ref()
            .map_or(std::ptr::null_mut(), |g| g.as_ptr().cast_mut().cast());
        // SAFETY: `ctx` is a live context of this session; `format` and
        // `desc` are valid structures that outlive the call, `desc.buffer`
        // NULL or a live memory object of this session. `host` is NULL or
        // a segment holding every byte the descriptor's pitches span
        // (checked above), mapped while `guard` lives; with COPY_HOST_PTR
        // the runtime copies it before returning and keeps no reference.
        let mem = unsafe { cl3::memory::create_image(ctx, flags, &format, &desc, host) }
            .map_err(native)?;
        let image = Image::new(mem);
        let runtime_element = size_info(cl3::memory::get_image_data(mem, CL_IMAGE_ELEMENT_SIZE))?;
        if init.is_some() && element.is_none_or(|e| runtime_element > e) {
            // The runtime read more bytes per pixel than the protocol
            // sized the host data for: never for a known format.
            return Err(native(CL_IMAGE_FORMAT_NOT_SUPPORTED));
        }
        let size = size_info(cl3::memory::get_mem_object_data(mem, CL_MEM_SIZE))?;
        let backing = match backing {
            Some(b) => Err(b),
            None => {
                let max = self.limits.max_device_memory;
                let used = self.memory.load(Ordering::Relaxed);
                if max != 0 && used.checked_add(size).is_none_or(|total| total > max) {
                    return Err(native(CL_MEM_OBJECT_ALLOCATION_FAILURE));
                }
                Ok(Charge::new(&self.memory, size))
            }
        };
        let meta = ImageMeta {
            image_type: req.desc.image_type,
            extent: req.desc.extent(),
            element: runtime_element,
        };
        let use_host_ptr = req.flags & CL_MEM_USE_HOST_PTR != 0;
        let obj = MemObj::image(image, size, meta, use_host_ptr, backing);
        self.table.insert(req.id, Object::Mem(Arc::new(obj)));
        Ok(ImageCreated {
            element_size: runtime_element,
        })
    }

    pub(super) fn create_sampler(&mut self, req: CreateSampler) -> Result<Empty, ExecError> {
        self.check_new(req.id)?;
        let ctx = self.table.context(req.context)?.get();
        let raw = match req.args {
            SamplerArgs::Legacy {
                normalized,
                addressing,
                filter,
            } => {
                #[allow(deprecated)]
                let s = cl3::sampler::create_sampler(ctx, normalized, addressing, filter);
                s.map_err(native)?
            }
            SamplerArgs::Properties(props) => {
                if !sampler_properties_ok(&props) {
                    return Err(native(CL_INVALID_VALUE));
                }
                let list: Vec<cl_sampler_properties> = props.iter().map(|&v| v as _).collect();
                let ptr = if list.is_empty() {
                    std::ptr::null()
                } else {
                    list.as_ptr()
                };
                cl3::sampler::create_sampler_with_properties(ctx, ptr).map_err(native)?
            }
        };
        self.table
            .insert(req.id, Object::Sampler(Arc::new(SamplerObj::new(raw))));
        Ok(Empty {})
    }

    /// A host transfer's checked pieces: the image, and the host bytes
    /// (none for an empty region, which comes without a segment).
    fn check_transfer(&self, req: &ImageTransfer) -> Result<(cl_mem, u64), ExecError> {
        let (image, meta) = self.table.image(req.image)?;
        if req.region.contains(&0) {
            return Ok((image.raw(), 0));
        }
        check_region(&meta, req.origin, req.region)?;
        let len = image_box(meta.image_type, req.region, meta.element)
            .and_then(|b| b.span(req.row_pitch, req.slice_pitch))
            .ok_or(native(CL_INVALID_VALUE))?;
        Ok((image.raw(), len))
    }

    /// `clEnqueueReadImage` (`read`) or `clEnqueueWriteImage`.
    pub(super) fn host_image(
        &mut self,
        req: ImageTransfer,
        bulk: &Bulk<'_>,
        read: bool,
    ) -> Result<Empty, ExecError> {
        let p = self.prepare(&req.common)?;
        let (image, len) = self.check_transfer(&req)?;
        let (origin, region) = (sizes3(req.origin)?, sizes3(req.region)?);
        let (row, slice) = (usize_of(req.row_pitch)?, usize_of(req.slice_pitch)?);
        // An empty region moves nothing and comes without a segment; the
        // runtime still gets a valid pointer, to a byte of ours.
        let mut nothing = [0u8; 1];
        let bytes = HostBytes::of(bulk, len, read)?;
        let host = bytes.ptr(&mut nothing);
        // SAFETY: queue, image and wait-list events are live objects of this
        // session; the region lies in the image; `host` is a guard's mapping
        // of exactly the bytes the region spans with these pitches
        // (checked; writable for a read, which the runtime writes, and only
        // read for a write), alive for the whole blocking call, or for an
        // empty region (which touches nothing) a byte of our own.
        let ev = unsafe {
            if read {
                cl3::command_queue::enqueue_read_image(
                    p.queue,
                    image,
                    CL_TRUE,
                    origin.as_ptr(),
                    region.as_ptr(),
                    row,
                    slice,
                    host.cast(),
                    p.wait_len(),
                    p.wait_ptr(),
                )
            } else {
                cl3::command_queue::enqueue_write_image(
                    p.queue,
                    image,
                    CL_TRUE,
                    origin.as_ptr(),
                    region.as_ptr(),
                    row,
                    slice,
                    host.cast(),
                    p.wait_len(),
                    p.wait_ptr(),
                )
            }
        }
        .map_err(native)?;
        self.finish_enqueue(&req.common, ev)
    }

    pub(super) fn copy_image(&mut self, req: EnqueueCopyImage) -> Result<Empty, ExecError> {
        let p = self.prepare(&req.common)?;
        let (src, src_meta) = self.table.image(req.src)?;
        let (dst, dst_meta) = self.table.image(req.dst)?;
        check_region(&src_meta, req.src_origin, req.region)?;
        check_region(&dst_meta, req.dst_origin, req.region)?;
        let (so, d_o, region) = (
            sizes3(req.src_origin)?,
            sizes3(req.dst_origin)?,
            sizes3(req.region)?,
        );
        // SAFETY: queue, images and events are live objects of this
        // session; both regions lie in their images; the arrays outlive
        // the call.
        let ev = unsafe {
            cl3::command_queue::enqueue_copy_image(
                p.queue,
                src.raw(),
                dst.raw(),
                so.as_ptr(),
                d_o.as_ptr(),
                region.as_ptr(),
                p.wait_len(),
                p.wait_ptr(),
            )
        }
        .map_err(native)?;
        self.finish_enqueue(&req.common, ev)
    }

    pub(super) fn fill_image(&mut self, req: EnqueueFillImage) -> Result<Empty, ExecError> {
        let p = self.prepare(&req.common)?;
        let (image, meta) = self.table.image(req.image)?;
        check_region(&meta, req.origin, req.region)?;
        let (origin, region) = (sizes3(req.origin)?, sizes3(req.region)?);
        // SAFETY: queue, image and events are live objects of this session;
        // the region lies in the image; `color` holds the 16 bytes of a
        // four-component colour (checked when the request decoded), which
        // the runtime reads before returning.
        let ev = unsafe {
            cl3::command_queue::enqueue_fill_image(
                p.queue,
                image.raw(),
                req.color.as_ptr().cast(),
                origin.as_ptr(),
                region.as_ptr(),
                p.wait_len(),
                p.wait_ptr(),
            )
        }
        .map_err(native)?;
        self.finish_enqueue(&req.common, ev)
    }

    /// `clEnqueueCopyImageToBuffer` (`to_buffer`) or the reverse.
    pub(super) fn copy_image_buffer(
        &mut self,
        req: EnqueueCopyImageBuffer,
        to_buffer: bool,
    ) -> Result<Empty, ExecError> {
        let p = self.prepare(&req.common)?;
        let (image, meta) = self.table.image(req.image)?;
        let buffer = self.table.buffer(req.buffer)?;
        check_region(&meta, req.origin, req.region)?;
        let len = packed_len(req.region, meta.element).ok_or(native(CL_INVALID_VALUE))?;
        if req
            .offset
            .checked_add(len)
            .is_none_or(|end| end > buffer.size)
        {
            return Err(native(CL_INVALID_VALUE));
        }
        let (origin, region, offset) = (
            sizes3(req.origin)?,
            sizes3(req.region)?,
            usize_of(req.offset)?,
        );
        // SAFETY: queue, image, buffer and events are live objects of this
        // session; the region lies in the image and its packed bytes from
        // `offset` in the buffer (both checked).
        let ev = unsafe {
            if to_buffer {
                cl3::command_queue::enqueue_copy_image_to_buffer(
                    p.queue,
                    image.raw(),
                    buffer.raw(),
                    origin.as_ptr(),
                    region.as_ptr(),
                    offset,
                    p.wait_len(),
                    p.wait_ptr(),
                )
            } else {
                cl3::command_queue::enqueue_copy_buffer_to_image(
                    p.queue,
                    buffer.raw(),
                    image.raw(),
                    offset,
                    origin.as_ptr(),
                    region.as_ptr(),
                    p.wait_len(),
                    p.wait_ptr(),
                )
            }
        }
        .map_err(native)?;
        self.finish_enqueue(&req.common, ev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_regions_do_not_overflow() {
        assert_eq!(packed_len([2, 3, 4], 4), Some(96));
        assert_eq!(packed_len([u64::MAX, 2, 1], 1), None);
    }

    #[test]
    fn sampler_properties_are_known_plain_values() {
        assert!(sampler_properties_ok(&[]));
        assert!(sampler_properties_ok(&[0x1152, 1, 0x1154, 0x1140, 0]));
        // Unterminated, unknown, or missing a value.
        assert!(!sampler_properties_ok(&[0x1152, 1]));
        assert!(!sampler_properties_ok(&[0x2000, 1, 0]));
        assert!(!sampler_properties_ok(&[0x1152]));
    }
}
