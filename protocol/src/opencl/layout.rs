//! The bytes a rectangular transfer touches, computed once for both peers.
//!
//! A rectangle transfer (`clEnqueue{Read,Write,Copy}BufferRect`) or an
//! image transfer names a box of rows and slices with pitches. The shim
//! sends exactly the bytes of the host side's box as one segment, and the
//! daemon checks that segment's length, and the buffer side's box against
//! the buffer, with the same functions before the runtime sees any of it.
//! Every step is checked arithmetic: a box whose extent does not fit in
//! 64 bits has none.

/// A 3-component origin or region (`size_t[3]`).
pub type Triple = [u64; 3];

/// A box of bytes: `rows` rows of `row_bytes` each per slice, `slices`
/// slices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteBox {
    /// Bytes per row (`region[0]`, times the element size for images).
    pub row_bytes: u64,
    /// Rows per slice.
    pub rows: u64,
    /// Slices.
    pub slices: u64,
}

/// Where a box lies in memory laid out with given pitches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Bytes from one row to the next (a zero pitch made explicit).
    pub row_pitch: u64,
    /// Bytes from one slice to the next (a zero pitch made explicit).
    pub slice_pitch: u64,
    /// Offset of the first byte touched.
    pub start: u64,
    /// One past the last byte touched.
    pub end: u64,
}

impl Placement {
    /// Bytes from the first byte touched to one past the last.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// True when the box touches no byte (never, for a valid box).
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

impl ByteBox {
    /// The box of a buffer rectangle's `region` (bytes, rows, slices).
    pub fn of_rect(region: Triple) -> Option<ByteBox> {
        ByteBox::new(region[0], region[1], region[2])
    }

    /// A box, `None` when any side is zero.
    pub fn new(row_bytes: u64, rows: u64, slices: u64) -> Option<ByteBox> {
        (row_bytes != 0 && rows != 0 && slices != 0).then_some(ByteBox {
            row_bytes,
            rows,
            slices,
        })
    }

    /// The pitches with OpenCL's defaults for zero (`row_bytes`, then
    /// `rows` rows), or `None` when a pitch is too small for the box: a
    /// row pitch below `row_bytes`, or (with more than one slice) a slice
    /// pitch below `rows` row pitches.
    pub fn pitches(&self, row_pitch: u64, slice_pitch: u64) -> Option<(u64, u64)> {
        let row = if row_pitch == 0 {
            self.row_bytes
        } else {
            row_pitch
        };
        if row < self.row_bytes {
            return None;
        }
        let slice_min = row.checked_mul(self.rows)?;
        let slice = if slice_pitch == 0 {
            slice_min
        } else {
            slice_pitch
        };
        if self.slices > 1 && slice < slice_min {
            return None;
        }
        Some((row, slice))
    }

    /// The box at `origin` (bytes, row, slice) in memory with these
    /// pitches: the first and one-past-last byte it touches.
    pub fn place(&self, origin: Triple, row_pitch: u64, slice_pitch: u64) -> Option<Placement> {
        let (row, slice) = self.pitches(row_pitch, slice_pitch)?;
        let start = origin[2]
            .checked_mul(slice)?
            .checked_add(origin[1].checked_mul(row)?)?
            .checked_add(origin[0])?;
        let len = (self.slices - 1)
            .checked_mul(slice)?
            .checked_add((self.rows - 1).checked_mul(row)?)?
            .checked_add(self.row_bytes)?;
        Some(Placement {
            row_pitch: row,
            slice_pitch: slice,
            start,
            end: start.checked_add(len)?,
        })
    }

    /// The bytes the box spans from its first byte (`place` at the origin).
    pub fn span(&self, row_pitch: u64, slice_pitch: u64) -> Option<u64> {
        self.place([0; 3], row_pitch, slice_pitch).map(|p| p.end)
    }
}

/// `CL_MEM_OBJECT_IMAGE2D`
pub const IMAGE2D: u32 = 0x10F1;
/// `CL_MEM_OBJECT_IMAGE3D`
pub const IMAGE3D: u32 = 0x10F2;
/// `CL_MEM_OBJECT_IMAGE2D_ARRAY`
pub const IMAGE2D_ARRAY: u32 = 0x10F3;
/// `CL_MEM_OBJECT_IMAGE1D`
pub const IMAGE1D: u32 = 0x10F4;
/// `CL_MEM_OBJECT_IMAGE1D_ARRAY`
pub const IMAGE1D_ARRAY: u32 = 0x10F5;
/// `CL_MEM_OBJECT_IMAGE1D_BUFFER`
pub const IMAGE1D_BUFFER: u32 = 0x10F6;

/// The host-memory box of an image region of `image_type`, in elements
/// of `element` bytes: a 1D array's images are its slices (stepped by the
/// slice pitch, as OpenCL lays them out), a 2D array's its slices.
/// `None` for an unknown type, a zero or overflowing region, or a region
/// with more dimensions than the type has.
pub fn image_box(image_type: u32, region: Triple, element: u64) -> Option<ByteBox> {
    let row_bytes = region[0].checked_mul(element)?;
    let (rows, slices, unused) = match image_type {
        IMAGE1D | IMAGE1D_BUFFER => (1, 1, [region[1], region[2]]),
        IMAGE1D_ARRAY => (1, region[1], [region[2], 1]),
        IMAGE2D => (region[1], 1, [region[2], 1]),
        IMAGE2D_ARRAY | IMAGE3D => (region[1], region[2], [1, 1]),
        _ => return None,
    };
    if unused != [1, 1] {
        return None;
    }
    ByteBox::new(row_bytes, rows, slices)
}

/// The size an image has in each of the three coordinates (width, then
/// height or layers, then depth or layers), for checking origins.
pub fn image_extent(image_type: u32, width: u64, height: u64, depth: u64, array: u64) -> Triple {
    match image_type {
        IMAGE1D_ARRAY => [width, array, 1],
        IMAGE2D => [width, height, 1],
        IMAGE2D_ARRAY => [width, height, array],
        IMAGE3D => [width, height, depth],
        _ => [width, 1, 1],
    }
}

/// True when `origin + region` lies inside `extent` in every coordinate,
/// without overflow, and the region is not empty.
pub fn region_inside(origin: Triple, region: Triple, extent: Triple) -> bool {
    (0..3).all(|i| {
        region[i] != 0
            && origin[i]
                .checked_add(region[i])
                .is_some_and(|end| end <= extent[i])
    })
}

/// Bytes per element of an image format, as the OpenCL specification
/// defines them; formats with padding channels (`CL_Rx`, `CL_RGx`,
/// `CL_RGBx`) count the padding. `None` for a format not listed.
pub fn element_size(channel_order: u32, channel_type: u32) -> Option<u64> {
    // Packed types hold every channel in one value.
    let packed = match channel_type {
        0x10D4 | 0x10D5 => Some(2), // UNORM_SHORT_565, UNORM_SHORT_555
        0x10D6 | 0x10E0 => Some(4), // UNORM_INT_101010, UNORM_INT_101010_2
        _ => None,
    };
    if let Some(p) = packed {
        // 101010_2 carries alpha; the others are RGB (or RGBx) only.
        let orders: &[u32] = if channel_type == 0x10E0 {
            &[0x10B5]
        } else {
            &[0x10B4, 0x10BC]
        };
        return orders.contains(&channel_order).then_some(p);
    }
    let channel = match channel_type {
        0x10D0 | 0x10D2 | 0x10D7 | 0x10DA => 1, // (S|U)NORM_INT8, (UN)SIGNED_INT8
        0x10D1 | 0x10D3 | 0x10D8 | 0x10DB | 0x10DD => 2, // 16-bit, HALF_FLOAT
        0x10D9 | 0x10DC | 0x10DE => 4,          // (UN)SIGNED_INT32, FLOAT
        0x10DF => 4,                            // UNORM_INT24 (depth, in 32 bits)
        _ => return None,
    };
    let channels = match channel_order {
        // R, A, INTENSITY, LUMINANCE, DEPTH
        0x10B0 | 0x10B1 | 0x10B8 | 0x10B9 | 0x10BD => 1,
        // RG, RA, Rx
        0x10B2 | 0x10B3 | 0x10BA => 2,
        // RGB and sRGB only come packed or 8-bit.
        0x10B4 | 0x10BF => 3,
        // RGBA, BGRA, ARGB, RGx, RGBx, sRGBA, sBGRA, sRGBx, ABGR
        0x10B5 | 0x10B6 | 0x10B7 | 0x10BB | 0x10BC | 0x10C0 | 0x10C1 | 0x10C2 | 0x10C3 => 4,
        // DEPTH_STENCIL: 24-bit depth and 8-bit stencil in 32 bits, or a
        // float depth and 8-bit stencil in 64.
        0x10BE => return Some(if channel_type == 0x10DE { 8 } else { 4 }),
        _ => return None,
    };
    if channel_type == 0x10DF {
        // UNORM_INT24 exists only for depth images.
        return (channel_order == 0x10BD).then_some(4);
    }
    Some(channels * channel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rect_extents_follow_the_pitches() {
        let b = ByteBox::of_rect([4, 3, 2]).unwrap();
        // Tight: 4 bytes x 3 rows x 2 slices.
        assert_eq!(b.span(0, 0), Some(24));
        // Row pitch 10, slice pitch 40: the last row of the last slice
        // starts at 40 + 2 * 10.
        assert_eq!(b.span(10, 40), Some(64));
        let p = b.place([1, 2, 1], 10, 40);
        assert_eq!(p.map(|p| (p.start, p.end)), Some((61, 125)));
        // Pitches too small for the box.
        assert_eq!(b.span(3, 0), None);
        assert_eq!(b.span(10, 29), None);
        // A single slice may have any slice pitch.
        let flat = ByteBox::new(4, 3, 1);
        assert_eq!(flat.and_then(|b| b.span(0, 1)), Some(12));
    }

    #[test]
    fn overflow_and_empty_boxes_have_no_extent() {
        assert_eq!(ByteBox::of_rect([0, 1, 1]), None);
        let b = ByteBox::new(1, 2, 2);
        assert_eq!(b.and_then(|b| b.place([0, 0, u64::MAX], 0, 0)), None);
        assert_eq!(b.and_then(|b| b.span(u64::MAX, 0)), None);
        assert_eq!(b.and_then(|b| b.place([u64::MAX, 0, 0], 0, 0)), None);
        assert_eq!(image_box(IMAGE2D, [u64::MAX, 1, 1], 4), None);
    }

    #[test]
    fn image_boxes_by_type() {
        let e = 4;
        assert_eq!(image_box(IMAGE2D, [8, 3, 1], e), ByteBox::new(32, 3, 1));
        assert_eq!(image_box(IMAGE2D, [8, 3, 2], e), None);
        assert_eq!(
            image_box(IMAGE1D_ARRAY, [8, 5, 1], e),
            ByteBox::new(32, 1, 5)
        );
        assert_eq!(image_box(IMAGE3D, [8, 3, 2], e), ByteBox::new(32, 3, 2));
        assert_eq!(image_box(IMAGE1D, [8, 2, 1], e), None);
        assert_eq!(image_box(0x10F0, [8, 1, 1], e), None);
        assert!(region_inside([1, 0, 0], [7, 3, 1], [8, 3, 1]));
        assert!(!region_inside([1, 0, 0], [8, 3, 1], [8, 3, 1]));
        assert!(!region_inside([u64::MAX, 0, 0], [2, 1, 1], [8, 3, 1]));
        assert!(!region_inside([0, 0, 0], [0, 1, 1], [8, 3, 1]));
    }

    #[test]
    fn element_sizes() {
        assert_eq!(element_size(0x10B5, 0x10D2), Some(4)); // RGBA UNORM_INT8
        assert_eq!(element_size(0x10B5, 0x10DE), Some(16)); // RGBA FLOAT
        assert_eq!(element_size(0x10B0, 0x10DD), Some(2)); // R HALF
        assert_eq!(element_size(0x10B4, 0x10D4), Some(2)); // RGB 565
        assert_eq!(element_size(0x10B5, 0x10D4), None); // RGBA 565
        assert_eq!(element_size(0x10B5, 0x10E0), Some(4)); // RGBA 101010_2
        assert_eq!(element_size(0x10B0, 0x10D4), None);
        assert_eq!(element_size(0x10BD, 0x10DF), Some(4)); // DEPTH UNORM_INT24
        assert_eq!(element_size(0x10B0, 0x10DF), None);
        assert_eq!(element_size(0x10BE, 0x10DE), Some(8)); // DEPTH_STENCIL FLOAT
        assert_eq!(element_size(0x1234, 0x10D2), None);
        assert_eq!(element_size(0x10B5, 0x1234), None);
    }
}
