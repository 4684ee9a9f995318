//! A program over images, samplers, rectangular transfers and migration
//! that prints a transcript of everything observable (result hashes,
//! error codes, info values), run natively and through virtio-compute:
//! the transcripts must be identical. `forwarded_programs` has the other
//! half (programs, devices, callbacks, threads).

use std::ffi::c_void;
use std::ptr;

use cl3::command_queue as cq;
use cl3::context;
use cl3::device;
use cl3::ext::*;
use cl3::kernel;
use cl3::memory;
use cl3::platform;
use cl3::program;
use cl3::types::{cl_image_desc, cl_image_format};

use super::conformance::fnv;

/// The context, queue and device the scenarios share.
pub struct Env {
    pub ctx: cl_context,
    pub queue: cl_command_queue,
    pub device: cl_device_id,
}

/// A result's error code, 0 for success.
pub fn code<T>(r: Result<T, cl_int>) -> cl_int {
    r.err().unwrap_or(0)
}

/// A command's error code, 0 for success; its event is released.
pub fn done(r: Result<cl_event, cl_int>) -> cl_int {
    match r {
        Ok(e) => code(release(e)),
        Err(e) => e,
    }
}

/// Releases an event the program holds.
pub fn release(e: cl_event) -> Result<(), cl_int> {
    // SAFETY: `e` is an event the caller owns and does not use again.
    unsafe { cl3::event::release_event(e) }
}

/// Builds `src` with `options`; the build's status.
pub fn build(env: &Env, src: &str, options: &str) -> Result<(cl_program, cl_int), cl_int> {
    let p = program::create_program_with_source(env.ctx, &[src])?;
    let opts = std::ffi::CString::new(options).unwrap_or_default();
    let status = code(program::build_program(
        p,
        &[env.device],
        &opts,
        None,
        ptr::null_mut(),
    ));
    Ok((p, status))
}

/// Sets a kernel argument from a value.
pub fn set_arg<T>(k: cl_kernel, i: cl_uint, v: &T) -> Result<(), cl_int> {
    // SAFETY: `v` points to a live value of exactly size_of::<T>() bytes.
    unsafe { kernel::set_kernel_arg(k, i, std::mem::size_of::<T>(), (v as *const T).cast()) }
}

/// Enqueues `k` over `n` work-items in one dimension (its event released).
pub fn run_1d(env: &Env, k: cl_kernel, n: usize) -> Result<(), cl_int> {
    let global = [n];
    // SAFETY: the work size outlives the call.
    let e = unsafe {
        cq::enqueue_nd_range_kernel(
            env.queue,
            k,
            1,
            ptr::null(),
            global.as_ptr(),
            ptr::null(),
            0,
            ptr::null(),
        )
    }?;
    release(e)
}

fn image(
    env: &Env,
    flags: cl_mem_flags,
    order: cl_uint,
    ty: cl_uint,
    desc: cl_image_desc,
    host: *mut c_void,
) -> Result<cl_mem, cl_int> {
    let format = cl_image_format {
        image_channel_order: order,
        image_channel_data_type: ty,
    };
    // SAFETY: `format` and `desc` are valid and outlive the call; `host` is
    // NULL or holds the rows the descriptor's pitches span.
    unsafe { memory::create_image(env.ctx, flags, &format, &desc, host) }
}

fn desc(image_type: cl_uint, dims: [usize; 4], row_pitch: usize, buffer: cl_mem) -> cl_image_desc {
    cl_image_desc {
        image_type,
        image_width: dims[0],
        image_height: dims[1],
        image_depth: dims[2],
        image_array_size: dims[3],
        image_row_pitch: row_pitch,
        image_slice_pitch: 0,
        num_mip_levels: 0,
        num_samples: 0,
        buffer,
    }
}

fn read_image(
    env: &Env,
    img: cl_mem,
    origin: [usize; 3],
    region: [usize; 3],
    row_pitch: usize,
    out: &mut [u8],
) -> cl_int {
    // SAFETY: `out` holds the region's span with this pitch (the callers
    // size it so), for the blocking read.
    done(unsafe {
        cq::enqueue_read_image(
            env.queue,
            img,
            CL_BLOCKING,
            origin.as_ptr(),
            region.as_ptr(),
            row_pitch,
            0,
            out.as_mut_ptr().cast(),
            0,
            ptr::null(),
        )
    })
}

fn write_image(
    env: &Env,
    img: cl_mem,
    origin: [usize; 3],
    region: [usize; 3],
    pitches: [usize; 2],
    data: &[u8],
) -> cl_int {
    // SAFETY: `data` holds the region's span with these pitches.
    done(unsafe {
        cq::enqueue_write_image(
            env.queue,
            img,
            CL_BLOCKING,
            origin.as_ptr(),
            region.as_ptr(),
            pitches[0],
            pitches[1],
            data.as_ptr().cast_mut().cast(),
            0,
            ptr::null(),
        )
    })
}

fn size_info(img: cl_mem, param: cl_uint) -> usize {
    memory::get_image_info(img, param)
        .map(usize::from)
        .unwrap_or(0)
}

fn images(env: &Env, out: &mut Vec<String>) -> Result<(), cl_int> {
    let formats =
        memory::get_supported_image_formats(env.ctx, CL_MEM_READ_WRITE, CL_MEM_OBJECT_IMAGE2D)?;
    let listed: Vec<u8> = formats
        .iter()
        .flat_map(|f| {
            [
                f.image_channel_order.to_le_bytes(),
                f.image_channel_data_type.to_le_bytes(),
            ]
            .concat()
        })
        .collect();
    out.push(format!(
        "image formats 2d count={} hash={:016x}",
        formats.len(),
        fnv(&listed)
    ));

    // 6 x 4 RGBA8 from host rows with a 32-byte pitch.
    let mut host: Vec<u8> = (0..32 * 4).map(|i| (i * 13 % 256) as u8).collect();
    let d = desc(CL_MEM_OBJECT_IMAGE2D, [6, 4, 0, 0], 32, ptr::null_mut());
    let img = image(
        env,
        CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR,
        CL_RGBA,
        CL_UNORM_INT8,
        d,
        host.as_mut_ptr().cast(),
    )?;
    out.push(format!(
        "image info width={} height={} element={} row_pitch_ok={}",
        size_info(img, CL_IMAGE_WIDTH),
        size_info(img, CL_IMAGE_HEIGHT),
        size_info(img, CL_IMAGE_ELEMENT_SIZE),
        size_info(img, CL_IMAGE_ROW_PITCH) >= 24,
    ));
    let mut tight = vec![0u8; 6 * 4 * 4];
    let rc = read_image(env, img, [0; 3], [6, 4, 1], 0, &mut tight);
    out.push(format!(
        "image read tight rc={rc} hash={:016x}",
        fnv(&tight)
    ));
    // A read through a wider pitch leaves the bytes between rows alone.
    let mut wide = vec![0xAAu8; 40 * 3 + 16];
    let rc = read_image(env, img, [1, 1, 0], [4, 4 - 1, 1], 40, &mut wide);
    out.push(format!(
        "image read pitched rc={rc} hash={:016x}",
        fnv(&wide)
    ));
    let patch: Vec<u8> = (0..2 * 12 + 8).map(|i| 255 - i as u8).collect();
    let rc = write_image(env, img, [2, 1, 0], [2, 2, 1], [24, 0], &patch[..32]);
    let rc2 = read_image(env, img, [0; 3], [6, 4, 1], 0, &mut tight);
    out.push(format!(
        "image write pitched rc={rc},{rc2} hash={:016x}",
        fnv(&tight)
    ));
    // Errors: a region past the image, a zero region, a NULL pointer.
    let mut small = vec![0u8; 64];
    out.push(format!(
        "image read errors outside={} empty={}",
        read_image(env, img, [3, 0, 0], [4, 1, 1], 0, &mut small),
        read_image(env, img, [0, 0, 0], [0, 1, 1], 0, &mut small),
    ));

    // Copies, fills and buffers.
    let d = desc(CL_MEM_OBJECT_IMAGE2D, [6, 4, 0, 0], 0, ptr::null_mut());
    let img2 = image(
        env,
        CL_MEM_READ_WRITE,
        CL_RGBA,
        CL_UNORM_INT8,
        d,
        ptr::null_mut(),
    )?;
    let (o, r) = ([0usize; 3], [6usize, 4, 1]);
    // SAFETY: both images live; the arrays outlive the call.
    let rc = done(unsafe {
        cq::enqueue_copy_image(
            env.queue,
            img,
            img2,
            o.as_ptr(),
            o.as_ptr(),
            r.as_ptr(),
            0,
            ptr::null(),
        )
    });
    let color = [0.5f32, 0.25, 1.0, 1.0];
    let (fo, fr) = ([1usize, 1, 0], [2usize, 2, 1]);
    // SAFETY: `color` is a float4; the arrays outlive the call.
    let rc2 = done(unsafe {
        cq::enqueue_fill_image(
            env.queue,
            img2,
            color.as_ptr().cast(),
            fo.as_ptr(),
            fr.as_ptr(),
            0,
            ptr::null(),
        )
    });
    // SAFETY: no host pointer.
    let buf = unsafe { memory::create_buffer(env.ctx, CL_MEM_READ_WRITE, 256, ptr::null_mut())? };
    // SAFETY: as above.
    let rc3 = done(unsafe {
        cq::enqueue_copy_image_to_buffer(
            env.queue,
            img2,
            buf,
            o.as_ptr(),
            r.as_ptr(),
            8,
            0,
            ptr::null(),
        )
    });
    // SAFETY: as above.
    let rc4 = done(unsafe {
        cq::enqueue_copy_buffer_to_image(
            env.queue,
            buf,
            img,
            8,
            o.as_ptr(),
            r.as_ptr(),
            0,
            ptr::null(),
        )
    });
    // SAFETY: the buffer is too small for the region past offset 200.
    let rc5 = done(unsafe {
        cq::enqueue_copy_image_to_buffer(
            env.queue,
            img2,
            buf,
            o.as_ptr(),
            r.as_ptr(),
            200,
            0,
            ptr::null(),
        )
    });
    cq::finish(env.queue)?;
    read_image(env, img, [0; 3], [6, 4, 1], 0, &mut tight);
    out.push(format!(
        "image copy={rc} fill={rc2} to_buffer={rc3} from_buffer={rc4} past_buffer={rc5} hash={:016x}",
        fnv(&tight)
    ));

    // Mapping: read, change, unmap, read back.
    let mut row_pitch = 0usize;
    let mut slice_pitch = 0usize;
    // cl3 returns the map's event, and the mapped pointer through `mapped`.
    let mut mapped: cl_mem = ptr::null_mut();
    let (mo, mr) = ([1usize, 1, 0], [3usize, 2, 1]);
    // SAFETY: the arrays and pitch outputs outlive the blocking call.
    let ev = unsafe {
        cq::enqueue_map_image(
            env.queue,
            img,
            CL_BLOCKING,
            CL_MAP_READ | CL_MAP_WRITE,
            mo.as_ptr(),
            mr.as_ptr(),
            &raw mut row_pitch,
            &raw mut slice_pitch,
            &mut mapped,
            0,
            ptr::null(),
        )
    };
    match ev {
        Ok(ev) if !mapped.is_null() => {
            release(ev.cast())?;
            let p = mapped;
            // SAFETY: the mapping holds 2 rows of `row_pitch` bytes.
            let first = unsafe { *p.cast::<u8>() };
            // SAFETY: as above; the second row starts `row_pitch` in.
            unsafe { *p.cast::<u8>().add(row_pitch) = 7 };
            // SAFETY: `p` is the live mapping.
            let e = unsafe { cq::enqueue_unmap_mem_object(env.queue, img, p, 0, ptr::null()) }?;
            release(e)?;
            cq::finish(env.queue)?;
            read_image(env, img, [0; 3], [6, 4, 1], 0, &mut tight);
            out.push(format!(
                "image map first={first} pitch_covers_row={} hash={:016x}",
                row_pitch >= 12,
                fnv(&tight)
            ));
        }
        other => out.push(format!("image map rc={}", code(other))),
    }

    // A 1D image over a buffer, and one too large for it.
    let d = desc(CL_MEM_OBJECT_IMAGE1D_BUFFER, [16, 0, 0, 0], 0, buf);
    let ib = image(
        env,
        CL_MEM_READ_WRITE,
        CL_RGBA,
        CL_UNORM_INT8,
        d,
        ptr::null_mut(),
    );
    let d = desc(CL_MEM_OBJECT_IMAGE1D_BUFFER, [65, 0, 0, 0], 0, buf);
    let too_big = code(image(
        env,
        CL_MEM_READ_WRITE,
        CL_RGBA,
        CL_UNORM_INT8,
        d,
        ptr::null_mut(),
    ));
    let assoc = ib.as_ref().ok().map(|m| {
        memory::get_mem_object_info(*m, CL_MEM_ASSOCIATED_MEMOBJECT)
            .map(|v| isize::from(v) as usize == buf as usize)
            .unwrap_or(false)
    });
    out.push(format!(
        "image1d buffer rc={} associated={assoc:?} too_big={too_big}",
        code(ib.as_ref().map(|_| ()).map_err(|e| *e))
    ));

    // A 2D array and a 3D image, written and read whole.
    let d = desc(
        CL_MEM_OBJECT_IMAGE2D_ARRAY,
        [4, 3, 0, 2],
        0,
        ptr::null_mut(),
    );
    let arr = image(env, CL_MEM_READ_WRITE, CL_R, CL_FLOAT, d, ptr::null_mut())?;
    let data: Vec<u8> = (0..4 * 3 * 2 * 4).map(|i| (i * 3) as u8).collect();
    let w = write_image(env, arr, [0; 3], [4, 3, 2], [0, 0], &data);
    let mut back = vec![0u8; data.len()];
    let rd = read_image(env, arr, [0; 3], [4, 3, 2], 0, &mut back);
    out.push(format!(
        "image2d array write={w} read={rd} same={}",
        back == data
    ));
    let d = desc(CL_MEM_OBJECT_IMAGE3D, [4, 3, 2, 0], 0, ptr::null_mut());
    let vol = image(env, CL_MEM_READ_WRITE, CL_R, CL_FLOAT, d, ptr::null_mut())?;
    let w = write_image(env, vol, [0; 3], [4, 3, 2], [0, 0], &data);
    let rd = read_image(env, vol, [0; 3], [4, 3, 2], 0, &mut back);
    out.push(format!("image3d write={w} read={rd} same={}", back == data));

    // A large image crosses the transport's piece size.
    let (w, h) = (1024usize, 1024usize);
    let d = desc(CL_MEM_OBJECT_IMAGE2D, [w, h, 0, 0], 0, ptr::null_mut());
    let big = image(
        env,
        CL_MEM_READ_WRITE,
        CL_RGBA,
        CL_FLOAT,
        d,
        ptr::null_mut(),
    )?;
    let data: Vec<u8> = (0..w * h * 16).map(|i| (i % 251) as u8).collect();
    let wr = write_image(env, big, [0; 3], [w, h, 1], [0, 0], &data);
    let mut back = vec![0u8; data.len()];
    let rd = read_image(env, big, [0; 3], [w, h, 1], 0, &mut back);
    out.push(format!(
        "image 16MiB write={wr} read={rd} same={}",
        back == data
    ));

    samplers(env, img, out)?;
    // SAFETY: released once each.
    unsafe {
        for m in [big, vol, arr, img2, img] {
            memory::release_mem_object(m)?;
        }
        if let Ok(m) = ib {
            memory::release_mem_object(m)?;
        }
        memory::release_mem_object(buf)?;
    }
    Ok(())
}

const SAMPLE: &str = "__kernel void k(read_only image2d_t im, sampler_t s, __global float4 *out) {
    int i = get_global_id(0);
    out[i] = read_imagef(im, s, (float2)(i % 6 + 0.5f, i / 6 + 0.5f));
}";

fn samplers(env: &Env, img: cl_mem, out: &mut Vec<String>) -> Result<(), cl_int> {
    #[allow(deprecated)]
    let s = cl3::sampler::create_sampler(
        env.ctx,
        CL_FALSE,
        CL_ADDRESS_CLAMP_TO_EDGE,
        CL_FILTER_LINEAR,
    )?;
    let props = [
        CL_SAMPLER_NORMALIZED_COORDS as u64,
        1,
        CL_SAMPLER_ADDRESSING_MODE as u64,
        CL_ADDRESS_NONE as u64,
        0,
    ];
    let s2 = cl3::sampler::create_sampler_with_properties(env.ctx, props.as_ptr());
    let bad = [0x4000u64, 1, 0];
    let s3 = cl3::sampler::create_sampler_with_properties(env.ctx, bad.as_ptr());
    let norm = cl3::sampler::get_sampler_info(s, CL_SAMPLER_NORMALIZED_COORDS).map(cl_uint::from);
    let mode = cl3::sampler::get_sampler_info(s, CL_SAMPLER_FILTER_MODE).map(cl_uint::from);
    out.push(format!(
        "sampler props={} bad={} normalized={norm:?} filter={mode:?}",
        code(s2.as_ref().map(|_| ()).map_err(|e| *e)),
        code(s3)
    ));
    let (p, status) = build(env, SAMPLE, "")?;
    let k = kernel::create_kernel(p, c"k")?;
    // SAFETY: no host pointer.
    let buf =
        unsafe { memory::create_buffer(env.ctx, CL_MEM_READ_WRITE, 24 * 16, ptr::null_mut())? };
    let r = (set_arg(k, 0, &img), set_arg(k, 1, &s), set_arg(k, 2, &buf));
    set_arg(k, 1, &s)?;
    set_arg(k, 0, &img)?;
    run_1d(env, k, 24)?;
    let mut result = vec![0f32; 24 * 4];
    // SAFETY: `result` holds the buffer's bytes for the blocking read.
    let e = unsafe {
        cq::enqueue_read_buffer(
            env.queue,
            buf,
            CL_BLOCKING,
            0,
            24 * 16,
            result.as_mut_ptr().cast(),
            0,
            ptr::null(),
        )
    }?;
    release(e)?;
    let bytes: Vec<u8> = result.iter().flat_map(|f| f.to_le_bytes()).collect();
    out.push(format!(
        "sampler kernel build={status} args={:?} hash={:016x}",
        (code(r.0), code(r.1), code(r.2)),
        fnv(&bytes)
    ));
    // SAFETY: released once each.
    unsafe {
        memory::release_mem_object(buf)?;
        kernel::release_kernel(k)?;
        program::release_program(p)?;
        cl3::sampler::release_sampler(s)?;
        if let Ok(s2) = s2 {
            cl3::sampler::release_sampler(s2)?;
        }
    }
    Ok(())
}

fn rects(env: &Env, out: &mut Vec<String>) -> Result<(), cl_int> {
    let mut init: Vec<u8> = (0..512).map(|i| (i % 256) as u8).collect();
    // SAFETY: `init` holds 512 bytes, copied now.
    let buf = unsafe {
        memory::create_buffer(
            env.ctx,
            CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR,
            512,
            init.as_mut_ptr().cast(),
        )?
    };
    let rect_read =
        |bo: [usize; 3], ho: [usize; 3], region: [usize; 3], p: [usize; 4], host: &mut [u8]| {
            // SAFETY: `host` holds the host rectangle (the callers size it).
            done(unsafe {
                cq::enqueue_read_buffer_rect(
                    env.queue,
                    buf,
                    CL_BLOCKING,
                    bo.as_ptr(),
                    ho.as_ptr(),
                    region.as_ptr(),
                    p[0],
                    p[1],
                    p[2],
                    p[3],
                    host.as_mut_ptr().cast(),
                    0,
                    ptr::null(),
                )
            })
        };
    // 5 bytes x 3 rows x 2 slices of a 16 x 4 layout, into host memory with
    // a host origin and pitches that leave gaps.
    let mut host = vec![0x55u8; 400];
    let rc = rect_read([2, 1, 1], [3, 1, 0], [5, 3, 2], [16, 64, 10, 50], &mut host);
    out.push(format!("rect read rc={rc} hash={:016x}", fnv(&host)));
    let src: Vec<u8> = (0..200).map(|i| 200 - i as u8).collect();
    let (bo, ho, region) = ([1usize, 2, 0], [0usize, 0, 0], [4usize, 2, 3]);
    // SAFETY: `src` holds the host rectangle.
    let rc = done(unsafe {
        cq::enqueue_write_buffer_rect(
            env.queue,
            buf,
            CL_BLOCKING,
            bo.as_ptr(),
            ho.as_ptr(),
            region.as_ptr(),
            16,
            64,
            0,
            0,
            src.as_ptr().cast_mut().cast(),
            0,
            ptr::null(),
        )
    });
    let mut zeros = vec![0u8; 512];
    // SAFETY: `zeros` holds 512 bytes, copied now.
    let dst = unsafe {
        memory::create_buffer(
            env.ctx,
            CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR,
            512,
            zeros.as_mut_ptr().cast(),
        )?
    };
    let (so, d_o, cr) = ([0usize; 3], [4usize, 0, 0], [16usize, 4, 2]);
    // SAFETY: both buffers live; the arrays outlive the call.
    let rc2 = done(unsafe {
        cq::enqueue_copy_buffer_rect(
            env.queue,
            buf,
            dst,
            so.as_ptr(),
            d_o.as_ptr(),
            cr.as_ptr(),
            16,
            64,
            32,
            128,
            0,
            ptr::null(),
        )
    });
    let mut all = vec![0u8; 512];
    // SAFETY: `all` holds 512 bytes for the blocking read.
    let e = unsafe {
        cq::enqueue_read_buffer(
            env.queue,
            dst,
            CL_BLOCKING,
            0,
            512,
            all.as_mut_ptr().cast(),
            0,
            ptr::null(),
        )
    }?;
    release(e)?;
    out.push(format!(
        "rect write={rc} copy={rc2} hash={:016x}",
        fnv(&all)
    ));
    // Errors: past the buffer, a zero region, pitches too small.
    let mut h = vec![0u8; 64];
    out.push(format!(
        "rect errors past={} empty={} pitch={} slice={}",
        rect_read([0, 0, 8], [0; 3], [16, 4, 1], [16, 64, 0, 0], &mut h),
        rect_read([0; 3], [0; 3], [0, 1, 1], [0; 4], &mut h),
        rect_read([0; 3], [0; 3], [8, 2, 1], [4, 0, 0, 0], &mut h),
        rect_read([0; 3], [0; 3], [8, 2, 2], [8, 8, 0, 0], &mut h),
    ));
    // Migration: valid flags, bad flags, no objects.
    let mems = [buf, dst];
    let m = |flags, n| {
        // SAFETY: the list outlives each call.
        done(unsafe {
            cq::enqueue_migrate_mem_object(env.queue, n, mems.as_ptr(), flags, 0, ptr::null())
        })
    };
    out.push(format!(
        "migrate host={} undefined={} bad_flags={} none={}",
        m(CL_MIGRATE_MEM_OBJECT_HOST, 2),
        m(CL_MIGRATE_MEM_OBJECT_CONTENT_UNDEFINED, 1),
        m(0x100, 2),
        m(0, 0)
    ));
    // SAFETY: released once each.
    unsafe {
        memory::release_mem_object(dst)?;
        memory::release_mem_object(buf)?;
    }
    Ok(())
}

/// Runs the scenarios of this half and returns its transcript.
pub fn run() -> Result<Vec<String>, cl_int> {
    let mut out = Vec::new();
    let p = platform::get_platform_ids()?[0];
    let d = device::get_device_ids(p, CL_DEVICE_TYPE_ALL)?[0];
    let ctx = context::create_context(&[d], ptr::null(), None, ptr::null_mut())?;
    // SAFETY: NULL properties are allowed.
    let queue = unsafe { cq::create_command_queue_with_properties(ctx, d, ptr::null())? };
    let env = Env {
        ctx,
        queue,
        device: d,
    };
    images(&env, &mut out)?;
    rects(&env, &mut out)?;
    super::forwarded_programs::run(&env, &mut out)?;
    // SAFETY: released once each.
    unsafe {
        cq::release_command_queue(queue)?;
        context::release_context(ctx)?;
    }
    Ok(out)
}
