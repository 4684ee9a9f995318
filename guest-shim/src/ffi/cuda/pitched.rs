//! Pitched memory: `cuMemAllocPitch` and the 2D and 3D copies
//! (`cuMemcpy2D[Async]`, `cuMemcpy2DUnaligned`, `cuMemcpy3D[Async]`),
//! with their per-thread variants.
//!
//! A pitched allocation is an ordinary allocation of `pitch * height`
//! bytes, the pitch the width rounded up to [`PITCH_ALIGN`]. A 2D or 3D
//! copy between host and device memory (or within either) is split into
//! its rows, each an ordinary copy (one copy when both sides are
//! contiguous); every row is range-checked as any copy is. CUDA arrays are
//! not forwarded: a copy naming one is `CUDA_ERROR_NOT_SUPPORTED`.

use std::ffi::{c_uint, c_void};

use protocol::cuda::StreamRef;

use super::memory::{
    dst_bytes, dtod, dtoh_async, dtoh_sync, host_to_host, htod_async, htod_sync, src_bytes,
};
use super::types::*;
use super::{entry, out, read, stream_ref, CuResult, NullStream};

/// Row alignment of pitched allocations, as the driver's on current GPUs.
pub const PITCH_ALIGN: usize = 512;

/// `CU_MEMORYTYPE_ARRAY`
const CU_MEMORYTYPE_ARRAY: c_uint = 3;
/// `CU_MEMORYTYPE_UNIFIED`
const CU_MEMORYTYPE_UNIFIED: c_uint = 4;

/// `CUDA_MEMCPY2D`
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CudaMemcpy2d {
    pub src_x_in_bytes: usize,
    pub src_y: usize,
    pub src_memory_type: c_uint,
    pub src_host: *const c_void,
    pub src_device: CUdeviceptr,
    pub src_array: *mut c_void,
    pub src_pitch: usize,
    pub dst_x_in_bytes: usize,
    pub dst_y: usize,
    pub dst_memory_type: c_uint,
    pub dst_host: *mut c_void,
    pub dst_device: CUdeviceptr,
    pub dst_array: *mut c_void,
    pub dst_pitch: usize,
    pub width_in_bytes: usize,
    pub height: usize,
}

/// `CUDA_MEMCPY3D`
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CudaMemcpy3d {
    pub src_x_in_bytes: usize,
    pub src_y: usize,
    pub src_z: usize,
    pub src_lod: usize,
    pub src_memory_type: c_uint,
    pub src_host: *const c_void,
    pub src_device: CUdeviceptr,
    pub src_array: *mut c_void,
    pub reserved0: *mut c_void,
    pub src_pitch: usize,
    pub src_height: usize,
    pub dst_x_in_bytes: usize,
    pub dst_y: usize,
    pub dst_z: usize,
    pub dst_lod: usize,
    pub dst_memory_type: c_uint,
    pub dst_host: *mut c_void,
    pub dst_device: CUdeviceptr,
    pub dst_array: *mut c_void,
    pub reserved1: *mut c_void,
    pub dst_pitch: usize,
    pub dst_height: usize,
    pub width_in_bytes: usize,
    pub height: usize,
    pub depth: usize,
}

/// Where a side of a copy is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Base {
    Host(usize),
    Device(u64),
}

/// One side of a copy: its base and how its rows and planes are laid out.
#[derive(Clone, Copy, Debug)]
struct Side {
    base: Base,
    x: usize,
    y: usize,
    z: usize,
    pitch: usize,
    height: usize,
}

impl Side {
    fn base(ty: c_uint, host: usize, device: u64, array: *mut c_void) -> CuResult<Base> {
        Ok(match ty {
            CU_MEMORYTYPE_HOST => Base::Host(host),
            CU_MEMORYTYPE_DEVICE => Base::Device(device),
            // Unified addressing: the shim's records say which it is.
            CU_MEMORYTYPE_UNIFIED => {
                if super::state::with(|s| s.dev_range(device, 1).is_some()) {
                    Base::Device(device)
                } else {
                    Base::Host(device as usize)
                }
            }
            CU_MEMORYTYPE_ARRAY if !array.is_null() => return Err(CUDA_ERROR_NOT_SUPPORTED),
            _ => return Err(CUDA_ERROR_INVALID_VALUE),
        })
    }

    /// The offset of row `row` of plane `plane`.
    fn offset(&self, row: usize, plane: usize) -> CuResult<usize> {
        let y = self.y.checked_add(row);
        let z = self.z.checked_add(plane);
        let line = z
            .and_then(|z| z.checked_mul(self.height))
            .zip(y)
            .and_then(|(zh, y)| zh.checked_add(y));
        line.and_then(|l| l.checked_mul(self.pitch))
            .and_then(|o| o.checked_add(self.x))
            .ok_or(CUDA_ERROR_INVALID_VALUE)
    }

    fn at(&self, offset: usize) -> CuResult<Base> {
        Ok(match self.base {
            Base::Host(h) => Base::Host(h.checked_add(offset).ok_or(CUDA_ERROR_INVALID_VALUE)?),
            Base::Device(d) => Base::Device(
                d.checked_add(offset as u64)
                    .ok_or(CUDA_ERROR_INVALID_VALUE)?,
            ),
        })
    }

    /// Whether its rows follow each other with no gap.
    fn dense(&self, width: usize, height: usize) -> bool {
        self.pitch == width && (self.height == height || self.height == 0)
    }
}

/// A 2D or 3D copy, as rows.
#[derive(Clone, Copy, Debug)]
struct Copy3 {
    src: Side,
    dst: Side,
    width: usize,
    height: usize,
    depth: usize,
}

/// Copies `n` bytes between two places.
///
/// # Safety
/// Host places hold `n` readable (source) or writable (destination)
/// bytes; for an asynchronous copy they stay so until the stream is
/// synchronized, as the driver requires.
unsafe fn copy(dst: Base, src: Base, n: usize, stream: StreamRef, sync: bool) -> CuResult {
    match (dst, src) {
        (Base::Device(d), Base::Device(s)) => dtod(d, s, n, stream),
        (Base::Device(d), Base::Host(h)) => {
            // SAFETY: the caller's contract.
            let b = unsafe { src_bytes(h as *const c_void, n) }?;
            if sync {
                htod_sync(d, b, stream)
            } else {
                htod_async(d, b, stream)
            }
        }
        (Base::Host(h), Base::Device(s)) => {
            // SAFETY: the caller's contract.
            let b = unsafe { dst_bytes(h as *mut c_void, n) }?;
            if sync {
                dtoh_sync(b, s, stream)
            } else {
                dtoh_async(b, s, stream)
            }
        }
        // SAFETY: the caller's contract.
        (Base::Host(d), Base::Host(s)) => unsafe { host_to_host(d, s, n) },
    }
}

/// Runs a copy: one piece when both sides are dense, row by row otherwise.
///
/// # Safety
/// As [`copy`], for every row the description names.
unsafe fn run(c: Copy3, stream: StreamRef, sync: bool) -> CuResult {
    if c.width == 0 || c.height == 0 || c.depth == 0 {
        return Ok(());
    }
    if c.src.pitch < c.width || c.dst.pitch < c.width {
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    let rows = c
        .height
        .checked_mul(c.depth)
        .ok_or(CUDA_ERROR_INVALID_VALUE)?;
    if c.src.dense(c.width, c.height) && c.dst.dense(c.width, c.height) {
        let n = rows.checked_mul(c.width).ok_or(CUDA_ERROR_INVALID_VALUE)?;
        let (d, s) = (
            c.dst.at(c.dst.offset(0, 0)?)?,
            c.src.at(c.src.offset(0, 0)?)?,
        );
        // SAFETY: the caller's contract.
        return unsafe { copy(d, s, n, stream, sync) };
    }
    for plane in 0..c.depth {
        for row in 0..c.height {
            let d = c.dst.at(c.dst.offset(row, plane)?)?;
            let s = c.src.at(c.src.offset(row, plane)?)?;
            // SAFETY: the caller's contract.
            unsafe { copy(d, s, c.width, stream, sync) }?;
        }
    }
    Ok(())
}

/// A 2D side's pitch: as given, except for a single row, whose pitch
/// does not matter.
fn row_pitch(given: usize, p: &CudaMemcpy2d) -> usize {
    if p.height <= 1 {
        given.max(p.width_in_bytes)
    } else {
        given
    }
}

fn from_2d(p: &CudaMemcpy2d) -> CuResult<Copy3> {
    let side = |ty, host, dev, array, x, y, pitch| -> CuResult<Side> {
        Ok(Side {
            base: Side::base(ty, host, dev, array)?,
            x,
            y,
            z: 0,
            pitch,
            height: 0,
        })
    };
    Ok(Copy3 {
        src: side(
            p.src_memory_type,
            p.src_host as usize,
            p.src_device,
            p.src_array,
            p.src_x_in_bytes,
            p.src_y,
            row_pitch(p.src_pitch, p),
        )?,
        dst: side(
            p.dst_memory_type,
            p.dst_host as usize,
            p.dst_device,
            p.dst_array,
            p.dst_x_in_bytes,
            p.dst_y,
            row_pitch(p.dst_pitch, p),
        )?,
        width: p.width_in_bytes,
        height: p.height,
        depth: 1,
    })
}

fn from_3d(p: &CudaMemcpy3d) -> CuResult<Copy3> {
    if p.src_lod != 0 || p.dst_lod != 0 {
        return Err(CUDA_ERROR_INVALID_VALUE);
    }
    let pitch = |given: usize| if given == 0 { p.width_in_bytes } else { given };
    let height = |given: usize| if given == 0 { p.height } else { given };
    Ok(Copy3 {
        src: Side {
            base: Side::base(
                p.src_memory_type,
                p.src_host as usize,
                p.src_device,
                p.src_array,
            )?,
            x: p.src_x_in_bytes,
            y: p.src_y,
            z: p.src_z,
            pitch: pitch(p.src_pitch),
            height: height(p.src_height),
        },
        dst: Side {
            base: Side::base(
                p.dst_memory_type,
                p.dst_host as usize,
                p.dst_device,
                p.dst_array,
            )?,
            x: p.dst_x_in_bytes,
            y: p.dst_y,
            z: p.dst_z,
            pitch: pitch(p.dst_pitch),
            height: height(p.dst_height),
        },
        width: p.width_in_bytes,
        height: p.height,
        depth: p.depth,
    })
}

/// `cuMemAllocPitch_v2`: `pitch * height` bytes, the pitch the width
/// rounded up to [`PITCH_ALIGN`].
///
/// # Safety
/// `dptr` and `pitch` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cuMemAllocPitch_v2(
    dptr: *mut CUdeviceptr,
    pitch: *mut usize,
    width: usize,
    height: usize,
    element_size: c_uint,
) -> CUresult {
    entry("cuMemAllocPitch_v2", || {
        if pitch.is_null() || !matches!(element_size, 4 | 8 | 16) || width == 0 || height == 0 {
            return Err(CUDA_ERROR_INVALID_VALUE);
        }
        let p = width
            .checked_next_multiple_of(PITCH_ALIGN)
            .ok_or(CUDA_ERROR_INVALID_VALUE)?;
        let bytes = p.checked_mul(height).ok_or(CUDA_ERROR_INVALID_VALUE)?;
        // SAFETY: the caller's contract.
        super::result(unsafe { super::memory::cuMemAlloc_v2(dptr, bytes) })?;
        // SAFETY: checked non-null; the caller's contract.
        unsafe { out(pitch, p) }
    })
}

macro_rules! copy_entries {
    ($( $c2:ident, $c2u:ident, $c2a:ident, $c3:ident, $c3a:ident, $null:expr; )*) => { $(
        /// `cuMemcpy2D_v2` (synchronous).
        ///
        /// # Safety
        /// `p` describes host and device ranges the program owns.
        #[no_mangle]
        pub unsafe extern "C" fn $c2(p: *const CudaMemcpy2d) -> CUresult {
            entry(stringify!($c2), || {
                // SAFETY: the caller's contract.
                let c = from_2d(&unsafe { read(p) }?)?;
                let s = stream_ref(std::ptr::null_mut(), $null)?;
                // SAFETY: the caller's contract.
                unsafe { run(c, s, true) }
            })
        }

        /// `cuMemcpy2DUnaligned_v2`: the same copy (alignment only
        /// matters to the hardware's copy engines).
        ///
        /// # Safety
        /// As the synchronous 2D copy.
        #[no_mangle]
        pub unsafe extern "C" fn $c2u(p: *const CudaMemcpy2d) -> CUresult {
            // SAFETY: the caller's contract.
            unsafe { $c2(p) }
        }

        /// `cuMemcpy2DAsync_v2`
        ///
        /// # Safety
        /// As the synchronous 2D copy; host memory stays valid until the
        /// stream is synchronized.
        #[no_mangle]
        pub unsafe extern "C" fn $c2a(p: *const CudaMemcpy2d, stream: Opaque) -> CUresult {
            entry(stringify!($c2a), || {
                // SAFETY: the caller's contract.
                let c = from_2d(&unsafe { read(p) }?)?;
                let s = stream_ref(stream, $null)?;
                // SAFETY: the caller's contract.
                unsafe { run(c, s, false) }
            })
        }

        /// `cuMemcpy3D_v2` (synchronous).
        ///
        /// # Safety
        /// `p` describes host and device ranges the program owns.
        #[no_mangle]
        pub unsafe extern "C" fn $c3(p: *const CudaMemcpy3d) -> CUresult {
            entry(stringify!($c3), || {
                // SAFETY: the caller's contract.
                let c = from_3d(&unsafe { read(p) }?)?;
                let s = stream_ref(std::ptr::null_mut(), $null)?;
                // SAFETY: the caller's contract.
                unsafe { run(c, s, true) }
            })
        }

        /// `cuMemcpy3DAsync_v2`
        ///
        /// # Safety
        /// As the synchronous 3D copy; host memory stays valid until the
        /// stream is synchronized.
        #[no_mangle]
        pub unsafe extern "C" fn $c3a(p: *const CudaMemcpy3d, stream: Opaque) -> CUresult {
            entry(stringify!($c3a), || {
                // SAFETY: the caller's contract.
                let c = from_3d(&unsafe { read(p) }?)?;
                let s = stream_ref(stream, $null)?;
                // SAFETY: the caller's contract.
                unsafe { run(c, s, false) }
            })
        }
    )* };
}

copy_entries! {
    cuMemcpy2D_v2, cuMemcpy2DUnaligned_v2, cuMemcpy2DAsync_v2, cuMemcpy3D_v2, cuMemcpy3DAsync_v2,
        NullStream::Legacy;
    cuMemcpy2D_v2_ptds, cuMemcpy2DUnaligned_v2_ptds, cuMemcpy2DAsync_v2_ptsz, cuMemcpy3D_v2_ptds,
        cuMemcpy3DAsync_v2_ptsz, NullStream::PerThread;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(base: Base, pitch: usize, height: usize) -> Side {
        Side {
            base,
            x: 4,
            y: 1,
            z: 2,
            pitch,
            height,
        }
    }

    #[test]
    fn rows_are_found_at_their_pitch_and_plane() {
        let s = side(Base::Device(0x1000), 256, 8);
        // ((z + plane) * height + y + row) * pitch + x
        assert_eq!(s.offset(0, 0), Ok((2 * 8 + 1) * 256 + 4));
        assert_eq!(s.offset(3, 1), Ok((3 * 8 + 4) * 256 + 4));
        assert_eq!(s.at(16), Ok(Base::Device(0x1010)));
        let huge = side(Base::Host(1), usize::MAX / 2, 8);
        assert_eq!(huge.offset(1, 1), Err(CUDA_ERROR_INVALID_VALUE), "overflow");
        assert!(side(Base::Host(0), 64, 3).dense(64, 3));
        assert!(!side(Base::Host(0), 128, 3).dense(64, 3));
    }

    #[test]
    fn arrays_are_refused_and_bad_types_invalid() {
        let mut a = 0u8;
        let array: *mut c_void = (&raw mut a).cast();
        assert_eq!(
            Side::base(CU_MEMORYTYPE_ARRAY, 0, 0, array),
            Err(CUDA_ERROR_NOT_SUPPORTED)
        );
        assert_eq!(
            Side::base(9, 0, 0, std::ptr::null_mut()),
            Err(CUDA_ERROR_INVALID_VALUE)
        );
        assert_eq!(
            Side::base(CU_MEMORYTYPE_HOST, 5, 7, std::ptr::null_mut()),
            Ok(Base::Host(5))
        );
    }

    #[test]
    fn the_structs_have_cuda_h_layouts() {
        assert_eq!(size_of::<CudaMemcpy2d>(), 128);
        assert_eq!(size_of::<CudaMemcpy3d>(), 200);
        assert_eq!(
            size_of::<CudaMemcpy2d>(),
            size_of::<cudarc::driver::sys::CUDA_MEMCPY2D>()
        );
        assert_eq!(
            size_of::<CudaMemcpy3d>(),
            size_of::<cudarc::driver::sys::CUDA_MEMCPY3D>()
        );
    }
}
