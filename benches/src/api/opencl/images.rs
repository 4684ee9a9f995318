//! The images workload: a 2D RGBA8 image of [`IMAGE_WIDTH`] pixels per row
//! written whole from host memory, read whole into it, or read pixel by
//! pixel through a sampler by a kernel that stores the bytes in a buffer.
//! Each timed run is one blocking transfer, or one launch and the wait for
//! it; every run's result is compared byte for byte with the image's
//! contents afterwards, outside the timed section.

use std::ptr;

use opencl3::kernel::Kernel;
use opencl3::memory::{
    Buffer, ClMem, Image, Sampler, CL_ADDRESS_CLAMP_TO_EDGE, CL_FILTER_NEAREST,
    CL_MEM_OBJECT_IMAGE2D, CL_MEM_READ_WRITE, CL_RGBA, CL_UNORM_INT8,
};
use opencl3::types::{cl_image_desc, cl_image_format, CL_BLOCKING, CL_FALSE};

use super::{arg, arg_buf, Cl, OpenCl, Source};
use crate::api::device::Device;
use crate::api::{sample, timed, WorkloadError};
use crate::check;
use crate::workload::{ImageOp, IMAGE_WIDTH};

const IMAGE_KERNELS: Source = Source::plain("image", include_str!("kernels/image.cl"));

/// Bytes of one RGBA8 pixel.
const PIXEL: usize = 4;

/// The pixels of the image: a pattern no two neighbouring rows share.
fn pattern(bytes: usize) -> Vec<u8> {
    (0..bytes)
        .map(|i| ((i * 7 + i / (IMAGE_WIDTH * PIXEL) * 13) % 251) as u8)
        .collect()
}

/// One blocking transfer of the whole image.
fn transfer(
    cl: &OpenCl,
    image: &mut Image,
    host: &mut [u8],
    region: [usize; 3],
    write: bool,
) -> Result<(), WorkloadError> {
    let origin = [0usize; 3];
    // SAFETY: blocking; `host` holds the whole image tightly packed
    // (`region` pixels of 4 bytes), only read for a write and only written
    // for a read, during the call.
    unsafe {
        if write {
            cl.queue.enqueue_write_image(
                image,
                CL_BLOCKING,
                origin.as_ptr(),
                region.as_ptr(),
                0,
                0,
                host.as_mut_ptr().cast(),
                &[],
            )
        } else {
            cl.queue.enqueue_read_image(
                image,
                CL_BLOCKING,
                origin.as_ptr(),
                region.as_ptr(),
                0,
                0,
                host.as_mut_ptr().cast(),
                &[],
            )
        }
    }
    .cl(if write {
        "clEnqueueWriteImage"
    } else {
        "clEnqueueReadImage"
    })
    .map(drop)
}

/// Runs `op` on an image of `bytes`.
pub(super) fn run(
    cl: &mut OpenCl,
    op: ImageOp,
    bytes: usize,
    warmup: usize,
    reps: usize,
) -> Result<Vec<f64>, WorkloadError> {
    let row = IMAGE_WIDTH * PIXEL;
    if bytes == 0 || !bytes.is_multiple_of(row) {
        return Err(WorkloadError::Unavailable(format!(
            "an image of {bytes} bytes is not whole {row}-byte rows"
        )));
    }
    let height = bytes / row;
    let region = [IMAGE_WIDTH, height, 1];
    let format = cl_image_format {
        image_channel_order: CL_RGBA,
        image_channel_data_type: CL_UNORM_INT8,
    };
    let desc = cl_image_desc {
        image_type: CL_MEM_OBJECT_IMAGE2D,
        image_width: IMAGE_WIDTH,
        image_height: height,
        image_depth: 0,
        image_array_size: 0,
        image_row_pitch: 0,
        image_slice_pitch: 0,
        num_mip_levels: 0,
        num_samples: 0,
        buffer: ptr::null_mut(),
    };
    // SAFETY: no host pointer; `format` and `desc` describe a 2D image.
    let mut image = unsafe {
        Image::create(
            &cl.context,
            CL_MEM_READ_WRITE,
            &format,
            &desc,
            ptr::null_mut(),
        )
    }
    .cl("clCreateImage")?;
    let mut source = pattern(bytes);
    transfer(cl, &mut image, &mut source, region, true)?;
    let mut host = vec![0u8; bytes];
    match op {
        ImageOp::Write => sample(warmup, reps, || {
            let ((), ns) = timed(|| transfer(cl, &mut image, &mut source, region, true))?;
            transfer(cl, &mut image, &mut host, region, false)?;
            check::exact("image", &host, &source)?;
            Ok(ns)
        }),
        ImageOp::Read => sample(warmup, reps, || {
            host.fill(0);
            let ((), ns) = timed(|| transfer(cl, &mut image, &mut host, region, false))?;
            check::exact("image", &host, &source)?;
            Ok(ns)
        }),
        ImageOp::Sample => {
            let sampler = Sampler::create(
                &cl.context,
                CL_FALSE,
                CL_ADDRESS_CLAMP_TO_EDGE,
                CL_FILTER_NEAREST,
            )
            .cl("clCreateSampler")?;
            let out: Buffer<u8> = cl.alloc(bytes)?;
            let k: Kernel = cl.kernel(&IMAGE_KERNELS, "sample")?;
            let (im, s) = (image.get(), sampler.get());
            // SAFETY: an image and a sampler argument, as the kernel declares.
            unsafe {
                k.set_arg(0, &im).cl("clSetKernelArg")?;
                k.set_arg(1, &s).cl("clSetKernelArg")?;
            }
            arg_buf(&k, 2, &out)?;
            arg(&k, 3, IMAGE_WIDTH as i32)?;
            sample(warmup, reps, || {
                let ((), ns) = timed(|| {
                    OpenCl::launch_on(&cl.queue, &k, &[IMAGE_WIDTH, height], None)?;
                    cl.sync()
                })?;
                host.fill(0);
                cl.read(&out, &mut host)?;
                check::exact("image", &host, &source)?;
                Ok(ns)
            })
        }
    }
}
