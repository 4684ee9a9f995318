//! Images, samplers and their commands.
//!
//! Host data travels as one segment holding exactly the bytes of the host
//! side's box ([`super::layout`]): the shim sends the box from its first
//! byte, and the daemon refuses a segment of any other length.

use bincode::{Decode, Encode};

use super::layout::{image_box, image_extent, Triple};
use super::{check_list, EnqueueCommon, Handle, Validate};
use crate::error::DecodeError;
use crate::limits::MAX_PROPERTIES;

/// `cl_image_desc`, its memory object named by handle.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct ImageDesc {
    /// `cl_mem_object_type`.
    pub image_type: u32,
    /// Width in pixels.
    pub width: u64,
    /// Height in pixels (2D, 3D, 2D arrays).
    pub height: u64,
    /// Depth in pixels (3D).
    pub depth: u64,
    /// Images in an array.
    pub array_size: u64,
    /// Host row pitch (with host data) or a buffer's row pitch.
    pub row_pitch: u64,
    /// Host slice pitch (with host data).
    pub slice_pitch: u64,
    /// Mipmap levels.
    pub num_mip_levels: u32,
    /// Samples.
    pub num_samples: u32,
    /// The buffer or image the image is made from; 0 for none.
    pub mem_object: Handle,
}

impl ImageDesc {
    /// The image's size in each coordinate, as a region of it all.
    pub fn extent(&self) -> Triple {
        image_extent(
            self.image_type,
            self.width,
            self.height,
            self.depth,
            self.array_size,
        )
    }

    /// The host bytes an image is created from, in elements of `element`
    /// bytes: every row and slice of the descriptor's pitches (OpenCL asks
    /// for `row_pitch * height`, or `slice_pitch * depth`, bytes). `None`
    /// for a descriptor without a valid layout.
    pub fn host_len(&self, element: u64) -> Option<u64> {
        let b = image_box(self.image_type, self.extent(), element)?;
        let (row, slice) = b.pitches(self.row_pitch, self.slice_pitch)?;
        if b.slices > 1 {
            slice.checked_mul(b.slices)
        } else {
            row.checked_mul(b.rows)
        }
    }
}

/// `clCreateImage` (and `clCreateImage2D/3D`, `...WithProperties`). With
/// `CL_MEM_COPY_HOST_PTR` or `CL_MEM_USE_HOST_PTR`, one in-bulk segment
/// holds the host data: the box of the whole image in elements of
/// [`super::layout::element_size`] bytes, with the descriptor's pitches.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct CreateImage {
    /// Guest-chosen handle.
    pub id: Handle,
    /// Context handle.
    pub context: Handle,
    /// `cl_mem_flags`.
    pub flags: u64,
    /// `(image_channel_order, image_channel_data_type)`.
    pub format: (u32, u32),
    /// The descriptor.
    pub desc: ImageDesc,
    /// `cl_mem_properties`, zero-terminated; empty for none.
    pub properties: Vec<u64>,
}

/// The new image's element size, as the runtime reports it; transfers of
/// the image are laid out in elements of this size.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct ImageCreated {
    /// `CL_IMAGE_ELEMENT_SIZE`.
    pub element_size: u64,
}

/// The arguments of one of the two sampler constructors.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum SamplerArgs {
    /// `clCreateSampler(normalized_coords, addressing_mode, filter_mode)`.
    Legacy {
        /// `cl_bool`.
        normalized: u32,
        /// `cl_addressing_mode`.
        addressing: u32,
        /// `cl_filter_mode`.
        filter: u32,
    },
    /// `clCreateSamplerWithProperties`: a zero-terminated list, or empty
    /// for NULL.
    Properties(Vec<u64>),
}

/// `clCreateSampler` / `clCreateSamplerWithProperties`.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct CreateSampler {
    /// Guest-chosen handle.
    pub id: Handle,
    /// Context handle.
    pub context: Handle,
    /// Which constructor, with its arguments.
    pub args: SamplerArgs,
}

/// `clEnqueueReadImage` / `clEnqueueWriteImage`. The host data is the
/// frame's single bulk segment (out-bulk for reads, in-bulk for writes):
/// the region's box ([`super::layout::image_box`]) with these pitches,
/// from its first byte. A read completes before the daemon answers.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ImageTransfer {
    /// Queue, waits, event.
    pub common: EnqueueCommon,
    /// Image handle.
    pub image: Handle,
    /// Origin in pixels (and layers).
    pub origin: Triple,
    /// Region in pixels (and layers).
    pub region: Triple,
    /// Host row pitch (0 = tight).
    pub row_pitch: u64,
    /// Host slice pitch (0 = tight).
    pub slice_pitch: u64,
}

/// `clEnqueueCopyImage`
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct EnqueueCopyImage {
    /// Queue, waits, event.
    pub common: EnqueueCommon,
    /// Source image.
    pub src: Handle,
    /// Destination image.
    pub dst: Handle,
    /// Origin in the source.
    pub src_origin: Triple,
    /// Origin in the destination.
    pub dst_origin: Triple,
    /// Region in pixels.
    pub region: Triple,
}

/// `clEnqueueFillImage`
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct EnqueueFillImage {
    /// Queue, waits, event.
    pub common: EnqueueCommon,
    /// Image handle.
    pub image: Handle,
    /// The fill colour: a `float4`, `int4` or `uint4` (16 bytes).
    pub color: Vec<u8>,
    /// Origin in pixels.
    pub origin: Triple,
    /// Region in pixels.
    pub region: Triple,
}

/// Bytes of a fill colour (`float4`, `int4`, `uint4`).
pub const FILL_COLOR_LEN: usize = 16;

/// `clEnqueueCopyImageToBuffer` / `clEnqueueCopyBufferToImage`: the
/// buffer side holds the region tightly packed from `offset`.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct EnqueueCopyImageBuffer {
    /// Queue, waits, event.
    pub common: EnqueueCommon,
    /// Image handle (the source of an image-to-buffer copy).
    pub image: Handle,
    /// Buffer handle.
    pub buffer: Handle,
    /// Origin in the image.
    pub origin: Triple,
    /// Region in pixels.
    pub region: Triple,
    /// Byte offset in the buffer.
    pub offset: u64,
}

impl Validate for CreateImage {
    fn validate(&self) -> Result<(), DecodeError> {
        check_list(self.properties.len(), MAX_PROPERTIES, "image properties")
    }
}
impl Validate for CreateSampler {
    fn validate(&self) -> Result<(), DecodeError> {
        match &self.args {
            SamplerArgs::Properties(p) => check_list(p.len(), MAX_PROPERTIES, "sampler properties"),
            SamplerArgs::Legacy { .. } => Ok(()),
        }
    }
}
impl Validate for ImageTransfer {
    fn validate(&self) -> Result<(), DecodeError> {
        self.common.validate()
    }
}
impl Validate for EnqueueCopyImage {
    fn validate(&self) -> Result<(), DecodeError> {
        self.common.validate()
    }
}
impl Validate for EnqueueFillImage {
    fn validate(&self) -> Result<(), DecodeError> {
        self.common.validate()?;
        if self.color.len() != FILL_COLOR_LEN {
            return Err(DecodeError::OutOfRange("fill colour"));
        }
        Ok(())
    }
}
impl Validate for EnqueueCopyImageBuffer {
    fn validate(&self) -> Result<(), DecodeError> {
        self.common.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::opencl::layout::{IMAGE2D, IMAGE3D};

    #[test]
    fn host_data_covers_every_row_of_the_pitches() {
        let mut d = ImageDesc {
            image_type: IMAGE2D,
            width: 4,
            height: 3,
            ..ImageDesc::default()
        };
        assert_eq!(d.host_len(4), Some(48));
        d.row_pitch = 32;
        assert_eq!(d.host_len(4), Some(96));
        d.row_pitch = 8;
        assert_eq!(d.host_len(4), None);
        let d3 = ImageDesc {
            image_type: IMAGE3D,
            width: 2,
            height: 2,
            depth: 3,
            slice_pitch: 100,
            ..ImageDesc::default()
        };
        assert_eq!(d3.host_len(1), Some(300));
        let huge = ImageDesc {
            image_type: IMAGE3D,
            width: u64::MAX / 2,
            height: 4,
            depth: 4,
            ..ImageDesc::default()
        };
        assert_eq!(huge.host_len(4), None);
    }
}
