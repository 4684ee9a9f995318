//! Images, samplers and rectangular transfers against the runtime: what
//! they do, and that every range a guest names is checked first.

use super::*;

const RGBA: u32 = 0x10B5;
const UNORM_INT8: u32 = 0x10D2;
const FLOAT: u32 = 0x10DE;
const IMAGE2D: u32 = 0x10F1;
const IMAGE1D_BUFFER: u32 = 0x10F6;
const IMAGE: Handle = 30;

fn desc2d(width: u64, height: u64, row_pitch: u64) -> ImageDesc {
    ImageDesc {
        image_type: IMAGE2D,
        width,
        height,
        row_pitch,
        ..ImageDesc::default()
    }
}

fn create_image(
    ex: &mut dyn Executor,
    id: Handle,
    flags: u64,
    format: (u32, u32),
    desc: ImageDesc,
    data: Option<Vec<u8>>,
) -> Result<Response, ExecError> {
    let req = Request::ClCreateImage(CreateImage {
        id,
        context: CTX,
        flags,
        format,
        desc,
        properties: vec![],
    });
    let mut input: Vec<Vec<u8>> = data.into_iter().collect();
    call_bulk(ex, req, &mut input, &mut [])
}

fn transfer(origin: [u64; 3], region: [u64; 3], row_pitch: u64) -> ImageTransfer {
    ImageTransfer {
        common: common(None),
        image: IMAGE,
        origin,
        region,
        row_pitch,
        slice_pitch: 0,
    }
}

fn read_image(ex: &mut dyn Executor, t: ImageTransfer, len: usize) -> Result<Vec<u8>, ExecError> {
    let mut out = [vec![0u8; len]];
    call_bulk(ex, Request::ClEnqueueReadImage(t), &mut [], &mut out)?;
    let [out] = out;
    Ok(out)
}

fn write_image(
    ex: &mut dyn Executor,
    t: ImageTransfer,
    data: Vec<u8>,
) -> Result<Response, ExecError> {
    call_bulk(ex, Request::ClEnqueueWriteImage(t), &mut [data], &mut [])
}

fn rgba_bytes(n: usize) -> Vec<u8> {
    (0..n * 4).map(|i| (i * 7 % 251) as u8).collect()
}

#[test]
fn images_round_trip_copy_fill_and_feed_a_sampler_kernel() {
    let Some(mut ex) = session(LIMITS) else {
        return;
    };
    let d = setup(&mut ex, vec![]);
    let pixels = rgba_bytes(4 * 3);
    let created = create_image(
        &mut ex,
        IMAGE,
        CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR,
        (RGBA, UNORM_INT8),
        desc2d(4, 3, 0),
        Some(pixels.clone()),
    )
    .unwrap();
    assert_eq!(
        created,
        Response::ClCreateImage(ImageCreated { element_size: 4 })
    );
    assert_eq!(
        read_image(&mut ex, transfer([0; 3], [4, 3, 1], 0), 48).unwrap(),
        pixels
    );
    // A sub-region through a host row pitch of 12 bytes: the segment is the
    // span, 12 + 8 bytes for two rows of two pixels.
    let patch: Vec<u8> = (0..20).map(|i| 200 + i as u8).collect();
    write_image(&mut ex, transfer([1, 1, 0], [2, 2, 1], 12), patch.clone()).unwrap();
    let back = read_image(&mut ex, transfer([1, 1, 0], [2, 2, 1], 12), 20).unwrap();
    assert_eq!(&back[..8], &patch[..8]);
    assert_eq!(&back[12..20], &patch[12..20]);

    // Copy to a second image, fill a pixel, and go through a buffer.
    create_image(
        &mut ex,
        31,
        CL_MEM_READ_WRITE,
        (RGBA, UNORM_INT8),
        desc2d(4, 3, 0),
        None,
    )
    .unwrap();
    ok(
        &mut ex,
        Request::ClEnqueueCopyImage(EnqueueCopyImage {
            common: common(None),
            src: IMAGE,
            dst: 31,
            src_origin: [0; 3],
            dst_origin: [0; 3],
            region: [4, 3, 1],
        }),
    );
    let mut color = Vec::new();
    for c in [1.0f32, 0.0, 0.0, 1.0] {
        color.extend(c.to_le_bytes());
    }
    ok(
        &mut ex,
        Request::ClEnqueueFillImage(EnqueueFillImage {
            common: common(None),
            image: 31,
            color,
            origin: [3, 2, 0],
            region: [1, 1, 1],
        }),
    );
    create_buffer(&mut ex, 10, 48).unwrap();
    ok(
        &mut ex,
        Request::ClEnqueueCopyImageToBuffer(EnqueueCopyImageBuffer {
            common: common(None),
            image: 31,
            buffer: 10,
            origin: [0; 3],
            region: [4, 3, 1],
            offset: 0,
        }),
    );
    let via_buffer = read(&mut ex, 10, 0, 48);
    let of_31 = ImageTransfer {
        image: 31,
        ..transfer([0; 3], [4, 3, 1], 0)
    };
    let mut expected = read_image(&mut ex, of_31, 48).unwrap();
    assert_eq!(&expected[44..], &[255, 0, 0, 255]);
    expected[44..].copy_from_slice(&via_buffer[44..]);
    assert_eq!(via_buffer, expected);

    // A sampler kernel reads the image through nearest filtering.
    ok(
        &mut ex,
        Request::ClCreateSampler(CreateSampler {
            id: 40,
            context: CTX,
            args: SamplerArgs::Properties(vec![0x1152, 0, 0x1153, 0x1131, 0x1154, 0x1140, 0]),
        }),
    );
    let src = "__kernel void k(read_only image2d_t im, sampler_t s, __global float4 *out) {
        int i = get_global_id(0);
        out[i] = read_imagef(im, s, (int2)(i % 4, i / 4));
    }";
    build(&mut ex, 20, d, src).unwrap();
    kernel(&mut ex, 21, 20, "k");
    create_buffer(&mut ex, 11, 12 * 16).unwrap();
    set_arg(&mut ex, 21, 0, KernelArg::Mem(31)).unwrap();
    set_arg(&mut ex, 21, 1, KernelArg::Sampler(40)).unwrap();
    set_arg(&mut ex, 21, 2, KernelArg::Mem(11)).unwrap();
    // The sampler is kept while set, even once the guest releases it.
    ok(
        &mut ex,
        Request::ClRelease(Release {
            kind: ObjectKind::Sampler,
            object: 40,
        }),
    );
    ndrange(&mut ex, 21, 12, vec![]).unwrap();
    let out = read(&mut ex, 11, 0, 12 * 16);
    let last: Vec<f32> = out[11 * 16..]
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(last, vec![1.0, 0.0, 0.0, 1.0]);
    let first = f32::from_le_bytes(out[..4].try_into().unwrap());
    assert!((first - f32::from(pixels[0]) / 255.0).abs() < 1e-6);
}

#[test]
fn image_ranges_and_kinds_are_checked_before_the_runtime() {
    let Some(mut ex) = session(LIMITS) else {
        return;
    };
    let d = setup(&mut ex, vec![]);
    // Host data must be exactly the image's rows: 4 x 3 x 4 bytes.
    let short = create_image(
        &mut ex,
        IMAGE,
        CL_MEM_COPY_HOST_PTR,
        (RGBA, UNORM_INT8),
        desc2d(4, 3, 0),
        Some(vec![0; 47]),
    );
    assert_eq!(
        short,
        Err(ExecError::Protocol(ProtocolError::BadDescriptor))
    );
    // A row pitch too small for a row, and an overflowing image.
    let r = create_image(
        &mut ex,
        IMAGE,
        CL_MEM_COPY_HOST_PTR,
        (RGBA, UNORM_INT8),
        desc2d(4, 3, 8),
        Some(vec![0; 24]),
    );
    assert_eq!(native_err(r), CL_INVALID_IMAGE_DESCRIPTOR);
    let huge = desc2d(u64::MAX / 2, 3, 0);
    let r = create_image(
        &mut ex,
        IMAGE,
        CL_MEM_COPY_HOST_PTR,
        (RGBA, UNORM_INT8),
        huge,
        Some(vec![]),
    );
    assert_eq!(native_err(r), CL_INVALID_IMAGE_DESCRIPTOR);
    let r = create_image(
        &mut ex,
        IMAGE,
        CL_MEM_COPY_HOST_PTR,
        (0x9999, UNORM_INT8),
        desc2d(4, 3, 0),
        Some(vec![0; 48]),
    );
    assert_eq!(native_err(r), CL_INVALID_IMAGE_FORMAT_DESCRIPTOR);
    // An image over a buffer too small for it.
    create_buffer(&mut ex, 10, 64).unwrap();
    let over = ImageDesc {
        image_type: IMAGE1D_BUFFER,
        width: 17,
        mem_object: 10,
        ..ImageDesc::default()
    };
    let r = create_image(&mut ex, IMAGE, 0, (RGBA, UNORM_INT8), over, None);
    assert_eq!(native_err(r), CL_INVALID_MEM_OBJECT);
    let props = Request::ClCreateImage(CreateImage {
        id: IMAGE,
        context: CTX,
        flags: 0,
        format: (RGBA, UNORM_INT8),
        desc: desc2d(4, 3, 0),
        properties: vec![0x4000, 0x1234, 0],
    });
    assert_eq!(native_err(call(&mut ex, props)), CL_INVALID_PROPERTY);

    create_image(&mut ex, IMAGE, 0, (RGBA, FLOAT), desc2d(4, 3, 0), None).unwrap();
    // Regions outside the image, empty, or overflowing.
    for (origin, region) in [
        ([1, 0, 0], [4, 3, 1]),
        ([0, 3, 0], [1, 1, 1]),
        ([u64::MAX, 0, 0], [2, 1, 1]),
        ([0, 0, 0], [4, 3, 2]),
    ] {
        let r = read_image(&mut ex, transfer(origin, region, 0), 16);
        assert_eq!(
            r.err(),
            Some(ExecError::Native(CL_INVALID_VALUE)),
            "{origin:?} {region:?}"
        );
    }
    // An empty region comes without a segment, and the runtime judges it.
    let raw = ex.table.image(IMAGE).unwrap().0.raw();
    let q = ex.table.queue(QUEUE).unwrap().get();
    let (o, r, mut byte) = ([0usize; 3], [0usize, 1, 1], [0u8; 1]);
    // SAFETY: live queue and image; the arrays and the byte outlive the
    // blocking call, which touches nothing of an empty region.
    let native = unsafe {
        cl3::command_queue::enqueue_read_image(
            q,
            raw,
            1,
            o.as_ptr(),
            r.as_ptr(),
            0,
            0,
            byte.as_mut_ptr().cast(),
            0,
            std::ptr::null(),
        )
    };
    let ours = call_bulk(
        &mut ex,
        Request::ClEnqueueReadImage(transfer([0; 3], [0, 1, 1], 0)),
        &mut [],
        &mut [],
    );
    assert_eq!(ours.err(), native.err().map(ExecError::Native));
    // The segment must be the exact span: 4 x 3 x 16 bytes.
    for len in [191, 193] {
        let r = read_image(&mut ex, transfer([0; 3], [4, 3, 1], 0), len);
        assert_eq!(
            r.err(),
            Some(ExecError::Protocol(ProtocolError::BadDescriptor))
        );
    }
    let r = write_image(&mut ex, transfer([0; 3], [4, 3, 1], 63), vec![0; 191]);
    assert_eq!(native_err(r), CL_INVALID_VALUE);
    // Copies into a buffer: the packed region must fit after the offset.
    let to_buffer = |offset| {
        Request::ClEnqueueCopyImageToBuffer(EnqueueCopyImageBuffer {
            common: common(None),
            image: IMAGE,
            buffer: 10,
            origin: [0; 3],
            region: [2, 2, 1],
            offset,
        })
    };
    call(&mut ex, to_buffer(0)).unwrap();
    assert_eq!(native_err(call(&mut ex, to_buffer(1))), CL_INVALID_VALUE);
    assert_eq!(
        native_err(call(&mut ex, to_buffer(u64::MAX))),
        CL_INVALID_VALUE
    );
    // Buffers are not images, and images are not buffers.
    let r = read_image(
        &mut ex,
        ImageTransfer {
            image: 10,
            ..transfer([0; 3], [1, 1, 1], 0)
        },
        4,
    );
    assert_eq!(r.err(), Some(ExecError::Native(CL_INVALID_MEM_OBJECT)));
    assert_eq!(
        native_err(write(&mut ex, IMAGE, 0, vec![0; 4])),
        CL_INVALID_MEM_OBJECT
    );
    // Kernel arguments take only the kind they are declared with.
    let src = "__kernel void k(read_only image2d_t im, __global int *p, sampler_t s) {}";
    build(&mut ex, 20, d, src).unwrap();
    kernel(&mut ex, 21, 20, "k");
    assert_eq!(
        native_err(set_arg(&mut ex, 21, 0, KernelArg::Mem(10))),
        CL_INVALID_MEM_OBJECT
    );
    assert_eq!(
        native_err(set_arg(&mut ex, 21, 0, KernelArg::NullMem)),
        CL_INVALID_MEM_OBJECT
    );
    assert_eq!(
        native_err(set_arg(&mut ex, 21, 1, KernelArg::Mem(IMAGE))),
        CL_INVALID_MEM_OBJECT
    );
    assert_eq!(
        native_err(set_arg(&mut ex, 21, 2, KernelArg::Mem(IMAGE))),
        CL_INVALID_SAMPLER
    );
    assert_eq!(
        native_err(set_arg(&mut ex, 21, 2, KernelArg::Bytes(vec![0; 9]))),
        CL_INVALID_ARG_SIZE
    );
    set_arg(&mut ex, 21, 0, KernelArg::Mem(IMAGE)).unwrap();
    // Sampler properties are known ones, terminated.
    for args in [
        SamplerArgs::Properties(vec![0x4000, 1, 0]),
        SamplerArgs::Properties(vec![0x1152, 1]),
    ] {
        let r = call(
            &mut ex,
            Request::ClCreateSampler(CreateSampler {
                id: 40,
                context: CTX,
                args,
            }),
        );
        assert_eq!(native_err(r), CL_INVALID_VALUE);
    }
}

fn rect(read: bool, origin: [u64; 3], region: [u64; 3], pitches: [u64; 4]) -> Request {
    let r = EnqueueBufferRect {
        common: common(None),
        buffer: 10,
        buffer_origin: origin,
        region,
        buffer_row_pitch: pitches[0],
        buffer_slice_pitch: pitches[1],
        host_row_pitch: pitches[2],
        host_slice_pitch: pitches[3],
    };
    if read {
        Request::ClEnqueueReadBufferRect(r)
    } else {
        Request::ClEnqueueWriteBufferRect(r)
    }
}

#[test]
fn buffer_rectangles_move_exactly_their_bytes() {
    let Some(mut ex) = session(LIMITS) else {
        return;
    };
    setup(&mut ex, vec![]);
    create_buffer(&mut ex, 10, 256).unwrap();
    write(&mut ex, 10, 0, vec![0; 256]).unwrap();
    // 3 bytes x 2 rows x 2 slices at (1, 1, 1) of a 10 x 5 buffer layout,
    // from tight host memory.
    let host: Vec<u8> = (1..=12).collect();
    let req = rect(false, [1, 1, 1], [3, 2, 2], [10, 50, 0, 0]);
    call_bulk(&mut ex, req, &mut [host.clone()], &mut []).unwrap();
    let all = read(&mut ex, 10, 0, 256);
    for z in 0..2 {
        for y in 0..2 {
            let at = 50 * (1 + z) + 10 * (1 + y) + 1;
            let want = &host[(z * 6 + y * 3)..][..3];
            assert_eq!(&all[at..at + 3], want, "row {y} of slice {z}");
        }
    }
    assert_eq!(all.iter().filter(|&&b| b != 0).count(), 12);
    // Read back with host pitches 4 and 12: a span of 12 + 4 + 3 bytes.
    let req = rect(true, [1, 1, 1], [3, 2, 2], [10, 50, 4, 12]);
    let mut out = [vec![0u8; 19]];
    call_bulk(&mut ex, req, &mut [], &mut out).unwrap();
    assert_eq!(&out[0][..3], &host[..3]);
    assert_eq!(&out[0][16..19], &host[9..12]);
    // Copy the rectangle elsewhere in the same buffer layout.
    create_buffer(&mut ex, 11, 256).unwrap();
    ok(
        &mut ex,
        Request::ClEnqueueCopyBufferRect(EnqueueCopyBufferRect {
            common: common(None),
            src: 10,
            dst: 11,
            src_origin: [1, 1, 1],
            dst_origin: [0; 3],
            region: [3, 2, 2],
            src_row_pitch: 10,
            src_slice_pitch: 50,
            dst_row_pitch: 3,
            dst_slice_pitch: 6,
        }),
    );
    assert_eq!(read(&mut ex, 11, 0, 12), host);
}

#[test]
fn rectangle_ranges_are_checked_before_the_runtime() {
    let Some(mut ex) = session(LIMITS) else {
        return;
    };
    setup(&mut ex, vec![]);
    create_buffer(&mut ex, 10, 100).unwrap();
    let write_rect = |ex: &mut OpenClExecutor, origin, region, pitches, len| {
        call_bulk(
            ex,
            rect(false, origin, region, pitches),
            &mut [vec![0u8; len]],
            &mut [],
        )
    };
    // The last byte is 1 + 9 * 10 + 9 = 100: one past the buffer.
    let r = write_rect(&mut ex, [1, 0, 0], [10, 10, 1], [10, 0, 0, 0], 100);
    assert_eq!(native_err(r), CL_INVALID_VALUE);
    write_rect(&mut ex, [0, 0, 0], [10, 10, 1], [10, 0, 0, 0], 100).unwrap();
    for (origin, region, pitches) in [
        ([u64::MAX, 0, 0], [1, 1, 1], [0; 4]),
        ([0, 0, u64::MAX / 2], [1, 1, 1], [1, 2, 0, 0]),
        ([0, 0, 0], [0, 1, 1], [0; 4]),
        ([0, 0, 0], [4, 2, 1], [3, 0, 0, 0]),
        ([0, 0, 0], [4, 2, 2], [4, 7, 0, 0]),
        ([0, 0, 0], [4, 2, 1], [0, 0, 3, 0]),
        ([0, 0, 0], [u64::MAX, 2, 1], [0; 4]),
    ] {
        let r = write_rect(&mut ex, origin, region, pitches, 8);
        assert_eq!(
            native_err(r),
            CL_INVALID_VALUE,
            "{origin:?} {region:?} {pitches:?}"
        );
    }
    // The host segment must be the exact span of the host pitches.
    let r = write_rect(&mut ex, [0; 3], [4, 2, 1], [0, 0, 6, 0], 11);
    assert_eq!(r, Err(ExecError::Protocol(ProtocolError::BadDescriptor)));
    write_rect(&mut ex, [0; 3], [4, 2, 1], [0, 0, 6, 0], 10).unwrap();
    let copy = |dst_origin| {
        Request::ClEnqueueCopyBufferRect(EnqueueCopyBufferRect {
            common: common(None),
            src: 10,
            dst: 10,
            src_origin: [0; 3],
            dst_origin,
            region: [5, 5, 1],
            src_row_pitch: 10,
            src_slice_pitch: 0,
            dst_row_pitch: 10,
            dst_slice_pitch: 0,
        })
    };
    assert_eq!(native_err(call(&mut ex, copy([0, 6, 0]))), CL_INVALID_VALUE);
    assert_eq!(
        native_err(call(&mut ex, copy([0, u64::MAX, 0]))),
        CL_INVALID_VALUE
    );
    call(&mut ex, copy([5, 5, 0])).unwrap();
}
