//! Property tests: every message survives encode → frame → decode, and no
//! byte sequence makes a decoder panic or over-allocate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use vcompute_protocol::cuda::*;
use vcompute_protocol::opencl::*;
use vcompute_protocol::*;

fn common() -> impl Strategy<Value = EnqueueCommon> {
    (
        any::<u64>(),
        prop::collection::vec(any::<u64>(), 0..8),
        any::<Option<u64>>(),
    )
        .prop_map(|(queue, wait, event)| EnqueueCommon { queue, wait, event })
}

fn info_kind() -> impl Strategy<Value = InfoKind> {
    prop_oneof![
        Just(InfoKind::Platform),
        Just(InfoKind::Device),
        Just(InfoKind::Context),
        Just(InfoKind::CommandQueue),
        Just(InfoKind::MemObject),
        Just(InfoKind::Program),
        Just(InfoKind::ProgramBuild),
        Just(InfoKind::Kernel),
        Just(InfoKind::KernelWorkGroup),
        Just(InfoKind::KernelArg),
        Just(InfoKind::Event),
        Just(InfoKind::EventProfiling),
    ]
}

fn kernel_arg() -> impl Strategy<Value = KernelArg> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64).prop_map(KernelArg::Bytes),
        (1u64..1 << 20).prop_map(KernelArg::Local),
        any::<u64>().prop_map(KernelArg::Mem),
        Just(KernelArg::NullMem),
        any::<u64>().prop_map(KernelArg::Sampler),
    ]
}

fn dims() -> impl Strategy<Value = (Vec<u64>, Vec<u64>, Vec<u64>)> {
    (1usize..=3).prop_flat_map(|d| {
        (
            prop_oneof![Just(vec![]), prop::collection::vec(any::<u64>(), d)],
            prop::collection::vec(any::<u64>(), d),
            prop_oneof![Just(vec![]), prop::collection::vec(any::<u64>(), d)],
        )
    })
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![opencl_request(), cuda_request()]
}

fn opencl_request() -> impl Strategy<Value = Request> {
    prop_oneof![
        Just(Request::Ping(Empty {})),
        Just(Request::ClGetPlatformIds(Empty {})),
        (1u16..4, 1u16..4, any::<u64>(), "[a-z]{0,16}").prop_map(|(a, b, f, c)| {
            Request::SessionOpen(SessionOpen {
                min_version: a,
                max_version: b,
                features: f,
                client: c,
            })
        }),
        (any::<u64>(), any::<u64>()).prop_map(|(platform, device_type)| {
            Request::ClGetDeviceIds(GetDeviceIds {
                platform,
                device_type,
            })
        }),
        (
            info_kind(),
            any::<u64>(),
            any::<u64>(),
            any::<u32>(),
            0..=limits::MAX_INFO_LEN
        )
            .prop_map(|(kind, object, extra, param, size)| {
                Request::ClGetInfo(GetInfo {
                    kind,
                    object,
                    extra,
                    param,
                    size,
                })
            }),
        (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
            |(id, context, flags, size)| {
                Request::ClCreateBuffer(CreateBuffer {
                    id,
                    context,
                    flags,
                    size,
                })
            }
        ),
        (any::<u64>(), any::<u64>(), ".{0,200}").prop_map(|(id, context, source)| {
            Request::ClCreateProgramWithSource(CreateProgramWithSource {
                id,
                context,
                source,
            })
        }),
        (any::<u64>(), any::<u32>(), kernel_arg()).prop_map(|(kernel, index, arg)| {
            Request::ClSetKernelArg(SetKernelArg { kernel, index, arg })
        }),
        (common(), any::<u64>(), dims()).prop_map(|(common, kernel, (offset, global, local))| {
            Request::ClEnqueueNdRange(EnqueueNdRange {
                common,
                kernel,
                offset,
                global,
                local,
            })
        }),
        (common(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
            |(common, buffer, offset, size)| {
                Request::ClEnqueueWriteBuffer(EnqueueWriteBuffer {
                    common,
                    buffer,
                    offset,
                    size,
                })
            }
        ),
        (
            common(),
            any::<u64>(),
            prop::collection::vec(any::<u8>(), 1..=128),
            any::<u64>(),
            any::<u64>()
        )
            .prop_map(|(common, buffer, pattern, offset, size)| {
                Request::ClEnqueueFillBuffer(EnqueueFillBuffer {
                    common,
                    buffer,
                    pattern,
                    offset,
                    size,
                })
            }),
        (
            any::<u64>(),
            prop::collection::vec(any::<u64>(), 0..8),
            prop::collection::vec(any::<u64>(), 0..8)
        )
            .prop_map(|(id, properties, devices)| {
                Request::ClCreateContext(CreateContext {
                    id,
                    properties,
                    devices,
                })
            }),
        (
            any::<u64>(),
            prop::collection::vec(any::<u64>(), 0..4),
            ".{0,64}",
            guest_headers()
        )
            .prop_map(|(program, devices, options, headers)| {
                Request::ClBuildProgram(BuildProgram {
                    program,
                    devices,
                    options,
                    headers,
                })
            }),
        (common(), any::<bool>()).prop_map(|(common, barrier)| Request::ClEnqueueMarker(
            EnqueueMarker { common, barrier }
        )),
        prop::collection::vec(any::<u64>(), 0..16)
            .prop_map(|events| Request::ClWaitForEvents(WaitForEvents { events })),
    ]
}

fn stream_ref() -> impl Strategy<Value = StreamRef> {
    prop_oneof![
        any::<u64>().prop_map(|ctx| StreamRef::Legacy { ctx }),
        any::<u64>().prop_map(|ctx| StreamRef::PerThread { ctx }),
        any::<u64>().prop_map(StreamRef::Stream),
    ]
}

fn image_kind() -> impl Strategy<Value = ImageKind> {
    prop_oneof![
        Just(ImageKind::Ptx),
        Just(ImageKind::Cubin),
        Just(ImageKind::Fatbin)
    ]
}

fn memset_width() -> impl Strategy<Value = MemsetWidth> {
    prop_oneof![
        Just(MemsetWidth::D8),
        Just(MemsetWidth::D16),
        Just(MemsetWidth::D32)
    ]
}

/// Creations, module loads and queries.
fn cuda_setup_request() -> impl Strategy<Value = Request> {
    prop_oneof![
        any::<u32>().prop_map(|flags| Request::CuInit(Init { flags })),
        any::<u32>().prop_map(|device| Request::CuDeviceGetInfo(DeviceQuery { device })),
        (any::<u64>(), any::<u32>(), any::<u32>()).prop_map(|(id, device, flags)| {
            Request::CuCtxCreate(CtxCreate { id, device, flags })
        }),
        any::<u64>().prop_map(|ctx| Request::CuCtxDestroy(CtxDestroy { ctx })),
        any::<u64>().prop_map(|ctx| Request::CuCtxSynchronize(CtxSynchronize { ctx })),
        (
            any::<u64>(),
            any::<u64>(),
            image_kind(),
            0..=limits::MAX_MODULE_IMAGE_LEN,
            prop::collection::vec(
                (any::<u32>(), any::<u64>())
                    .prop_map(|(option, value)| JitOption { option, value }),
                0..8
            ),
            0..=limits::MAX_JIT_LOG_LEN as u32,
            0..=limits::MAX_JIT_LOG_LEN as u32,
        )
            .prop_map(
                |(id, ctx, kind, image_len, options, info_log_len, error_log_len)| {
                    Request::CuModuleLoad(ModuleLoad {
                        id,
                        ctx,
                        kind,
                        image_len,
                        options,
                        info_log_len,
                        error_log_len,
                        upload: (id % 2 == 0).then_some(ctx),
                    })
                }
            ),
        (any::<u64>(), any::<u64>(), "[_a-zA-Z0-9]{0,40}").prop_map(|(id, module, name)| {
            Request::CuModuleGetFunction(GetFunction { id, module, name })
        }),
        (any::<u64>(), ".{0,40}")
            .prop_map(|(module, name)| Request::CuModuleGetGlobal(GetGlobal { module, name })),
        any::<u64>().prop_map(|module| Request::CuModuleUnload(ModuleUnload { module })),
        (any::<u64>(), any::<u64>())
            .prop_map(|(ctx, size)| Request::CuMemAlloc(MemAlloc { ctx, size })),
        any::<u64>().prop_map(|ptr| Request::CuMemFree(MemFree { ptr })),
        any::<u64>().prop_map(|ctx| Request::CuMemGetInfo(MemGetInfo { ctx })),
        (any::<u64>(), any::<u32>()).prop_map(|(ptr, attribute)| {
            Request::CuPointerGetAttribute(PointerGetAttribute { ptr, attribute })
        }),
        (any::<u64>(), any::<u64>(), any::<u32>(), any::<i32>()).prop_map(
            |(id, ctx, flags, priority)| {
                Request::CuStreamCreate(StreamCreate {
                    id,
                    ctx,
                    flags,
                    priority,
                })
            }
        ),
        any::<u64>().prop_map(|stream| Request::CuStreamDestroy(StreamDestroy { stream })),
        (any::<u64>(), any::<u64>(), any::<u32>())
            .prop_map(|(id, ctx, flags)| Request::CuEventCreate(EventCreate { id, ctx, flags })),
        any::<u64>().prop_map(|event| Request::CuEventDestroy(EventOp { event })),
        (any::<u64>(), any::<i32>()).prop_map(|(function, attribute)| {
            Request::CuFuncGetAttribute(FuncGetAttribute {
                function,
                attribute,
            })
        }),
        (any::<u64>(), any::<i32>(), any::<i32>()).prop_map(|(function, attribute, value)| {
            Request::CuFuncSetAttribute(FuncSetAttribute {
                function,
                attribute,
                value,
            })
        }),
        (any::<u64>(), any::<u32>()).prop_map(|(function, config)| {
            Request::CuFuncSetCacheConfig(FuncSetCacheConfig { function, config })
        }),
    ]
}

/// Copies, launches, stream and event work, occupancy.
fn cuda_work_request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (any::<u64>(), 0..=limits::MAX_TRANSFER_LEN, stream_ref()).prop_map(
            |(dst, size, stream)| Request::CuMemcpyHtoD(MemcpyHtoD { dst, size, stream })
        ),
        (any::<u64>(), 0..=limits::MAX_TRANSFER_LEN, stream_ref()).prop_map(
            |(src, size, stream)| Request::CuMemcpyDtoH(MemcpyDtoH { src, size, stream })
        ),
        (any::<u64>(), any::<u64>(), any::<u64>(), stream_ref()).prop_map(
            |(dst, src, size, stream)| Request::CuMemcpyDtoD(MemcpyDtoD {
                dst,
                src,
                size,
                stream
            })
        ),
        (
            any::<u64>(),
            any::<u32>(),
            memset_width(),
            any::<u64>(),
            stream_ref()
        )
            .prop_map(
                |(dst, value, width, count, stream)| Request::CuMemset(Memset {
                    dst,
                    value,
                    width,
                    count,
                    stream
                })
            ),
        stream_ref().prop_map(|stream| Request::CuStreamSynchronize(StreamOp { stream })),
        stream_ref().prop_map(|stream| Request::CuStreamQuery(StreamOp { stream })),
        (stream_ref(), any::<u64>(), any::<u32>()).prop_map(|(stream, event, flags)| {
            Request::CuStreamWaitEvent(StreamWaitEvent {
                stream,
                event,
                flags,
            })
        }),
        (any::<u64>(), stream_ref(), any::<u32>()).prop_map(|(event, stream, flags)| {
            Request::CuEventRecord(EventRecord {
                event,
                stream,
                flags,
            })
        }),
        any::<u64>().prop_map(|event| Request::CuEventSynchronize(EventOp { event })),
        any::<u64>().prop_map(|event| Request::CuEventQuery(EventOp { event })),
        (any::<u64>(), any::<u64>()).prop_map(|(start, end)| {
            Request::CuEventElapsedTime(EventElapsedTime { start, end })
        }),
        (
            any::<u64>(),
            any::<[u32; 3]>(),
            any::<[u32; 3]>(),
            any::<u32>(),
            stream_ref(),
            prop::collection::vec(any::<u8>(), 0..256)
        )
            .prop_map(
                |(function, grid, block, shared_mem_bytes, stream, params)| {
                    Request::CuLaunchKernel(LaunchKernel {
                        function,
                        grid,
                        block,
                        shared_mem_bytes,
                        stream,
                        params,
                    })
                }
            ),
        (any::<u64>(), any::<i32>(), any::<u64>(), any::<u32>()).prop_map(
            |(function, block_size, dynamic_smem, flags)| {
                Request::CuOccupancyMaxActiveBlocks(OccupancyMaxActiveBlocks {
                    function,
                    block_size,
                    dynamic_smem,
                    flags,
                })
            }
        ),
        (
            any::<u64>(),
            prop_oneof![
                any::<u64>().prop_map(DynamicSmem::Fixed),
                prop::collection::vec(any::<u64>(), 1..=limits::MAX_OCCUPANCY_TABLE)
                    .prop_map(DynamicSmem::PerBlockSize),
            ],
            any::<i32>(),
            any::<u32>()
        )
            .prop_map(|(function, dynamic_smem, block_size_limit, flags)| {
                Request::CuOccupancyMaxPotentialBlockSize(OccupancyMaxPotentialBlockSize {
                    function,
                    dynamic_smem,
                    block_size_limit,
                    flags,
                })
            }),
        (any::<u64>(), any::<i32>(), any::<i32>()).prop_map(
            |(function, num_blocks, block_size)| {
                Request::CuOccupancyAvailableDynamicSmem(OccupancyAvailableDynamicSmem {
                    function,
                    num_blocks,
                    block_size,
                })
            }
        ),
    ]
}

fn cuda_request() -> impl Strategy<Value = Request> {
    prop_oneof![
        cuda_setup_request(),
        cuda_work_request(),
        cuda_graph_request()
    ]
}

/// Capture, graphs, stream-ordered allocation and staged images.
fn cuda_graph_request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (stream_ref(), any::<u32>()).prop_map(|(stream, mode)| Request::CuStreamBeginCapture(
            StreamBeginCapture { stream, mode }
        )),
        (stream_ref(), any::<u64>()).prop_map(|(stream, graph)| Request::CuStreamEndCapture(
            StreamEndCapture { stream, graph }
        )),
        (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(exec, graph, flags)| {
            Request::CuGraphInstantiate(GraphInstantiate { exec, graph, flags })
        }),
        (any::<u64>(), stream_ref())
            .prop_map(|(exec, stream)| Request::CuGraphLaunch(GraphLaunch { exec, stream })),
        any::<u64>().prop_map(|graph| Request::CuGraphDestroy(GraphOp { graph })),
        any::<u64>().prop_map(|graph| Request::CuGraphExecDestroy(GraphOp { graph })),
        (any::<u64>(), stream_ref())
            .prop_map(|(size, stream)| Request::CuMemAllocAsync(MemAllocAsync { size, stream })),
        (any::<u64>(), stream_ref())
            .prop_map(|(ptr, stream)| Request::CuMemFreeAsync(MemFreeAsync { ptr, stream })),
        (any::<u64>(), any::<u32>(), any::<Option<u64>>()).prop_map(|(ctx, limit, value)| {
            Request::CuCtxLimit(CtxLimit { ctx, limit, value })
        }),
        any::<u64>().prop_map(|ctx| Request::CuCtxStreamPriorityRange(CtxPriorityRange { ctx })),
        (
            stream_ref(),
            prop_oneof![
                Just(MemOpKind::Wait32),
                Just(MemOpKind::Write32),
                Just(MemOpKind::Wait64),
                Just(MemOpKind::Write64)
            ],
            any::<u64>(),
            any::<u64>(),
            any::<u32>()
        )
            .prop_map(|(stream, kind, addr, value, flags)| {
                Request::CuStreamMemOp(StreamMemOp {
                    stream,
                    kind,
                    addr,
                    value,
                    flags,
                })
            }),
        (any::<u64>(), 0..=limits::MAX_MODULE_IMAGE_LEN).prop_flat_map(|(upload, total)| {
            (0..=total).prop_map(move |offset| {
                Request::CuModuleStage(ModuleStage {
                    upload,
                    offset,
                    total,
                })
            })
        }),
    ]
}

/// Every CUDA reply body.
fn cuda_response() -> impl Strategy<Value = Response> {
    prop_oneof![
        (any::<i32>(), any::<u32>()).prop_map(|(driver_version, device_count)| {
            Response::CuInit(InitInfo {
                driver_version,
                device_count,
            })
        }),
        (
            ".{0,64}",
            any::<[u8; 16]>(),
            any::<u64>(),
            prop::collection::vec(
                (any::<i32>(), any::<i32>())
                    .prop_map(|(attribute, value)| DeviceAttribute { attribute, value }),
                0..64
            )
        )
            .prop_map(|(name, uuid, total_mem, attributes)| {
                Response::CuDeviceGetInfo(DeviceInfo {
                    name,
                    uuid,
                    total_mem,
                    attributes,
                })
            }),
        (
            any::<i32>(),
            prop::collection::vec(any::<u8>(), 0..128),
            prop::collection::vec(any::<u8>(), 0..128)
        )
            .prop_map(|(result, info_log, error_log)| {
                Response::CuModuleLoad(ModuleLoaded {
                    result,
                    info_log,
                    error_log,
                })
            }),
        prop::option::of(prop::collection::vec(
            (any::<u32>(), any::<u32>()).prop_map(|(offset, size)| ParamInfo { offset, size }),
            0..32
        ))
        .prop_map(|params| Response::CuModuleGetFunction(FunctionInfo { params })),
        (any::<u64>(), any::<u64>())
            .prop_map(|(ptr, size)| Response::CuModuleGetGlobal(Global { ptr, size })),
        any::<u64>().prop_map(|ptr| Response::CuMemAlloc(DevicePtr { ptr })),
        (any::<u64>(), any::<u64>())
            .prop_map(|(free, total)| Response::CuMemGetInfo(MemInfo { free, total })),
        any::<u64>().prop_map(|value| Response::CuPointerGetAttribute(PointerAttribute { value })),
        any::<u32>().prop_map(|millis_bits| Response::CuEventElapsedTime(Elapsed { millis_bits })),
        any::<i32>().prop_map(|value| Response::CuFuncGetAttribute(IntValue { value })),
        (any::<i32>(), any::<i32>()).prop_map(|(min_grid_size, block_size)| {
            Response::CuOccupancyMaxPotentialBlockSize(PotentialBlockSize {
                min_grid_size,
                block_size,
            })
        }),
        any::<u64>()
            .prop_map(|value| Response::CuOccupancyAvailableDynamicSmem(SizeValue { value })),
    ]
}

proptest! {
    #[test]
    fn request_round_trips_through_a_frame(
        req in request(),
        id in any::<u64>(),
        async_flag in any::<bool>(),
        in_bulk in 0u16..=16,
        out_bulk in 0u16..=16,
    ) {
        let mut buf = Vec::new();
        let flags = if async_flag { FLAG_ASYNC } else { 0 };
        prop_assert!(encode_request(&mut buf, id, flags, &req, in_bulk, out_bulk).is_some());
        let mut frames = FrameIter::new(&buf);
        let frame = frames.next().expect("one frame").expect("valid frame");
        prop_assert!(frames.next().is_none());
        prop_assert_eq!(frame.header.request_id, id);
        prop_assert_eq!(frame.header.flags, flags);
        prop_assert_eq!(frame.header.in_bulk, in_bulk);
        prop_assert_eq!(frame.header.out_bulk, out_bulk);
        let back = decode_request(&frame, PROTOCOL_VERSION).expect("decodes");
        prop_assert_eq!(back, req);
    }

    #[test]
    fn batches_keep_order(reqs in prop::collection::vec(request(), 1..32)) {
        let mut buf = Vec::new();
        for (i, r) in reqs.iter().enumerate() {
            encode_request(&mut buf, i as u64, FLAG_ASYNC, r, 0, 0).expect("fits");
        }
        let back: Vec<Request> = FrameIter::new(&buf)
            .map(|f| decode_request(&f.expect("frame"), PROTOCOL_VERSION).expect("decodes"))
            .collect();
        prop_assert_eq!(back, reqs);
    }

    #[test]
    fn header_round_trips(
        version in any::<u16>(), opcode in any::<u16>(), in_bulk in 0u16..=16,
        out_bulk in 0u16..=16, request_id in any::<u64>(),
        body_len in 0u32..=limits::MAX_BODY_LEN as u32, status in any::<i32>(),
        flags in 0u16..8,
    ) {
        let h = Header { version, flags, opcode, in_bulk, out_bulk, request_id, body_len, status };
        prop_assert_eq!(Header::decode(&h.encode()), Ok(h));
    }

    #[test]
    fn response_outcomes_round_trip(code in any::<i32>(), id in any::<u64>(), value in prop::collection::vec(any::<u8>(), 0..256)) {
        let ok = Outcome::Ok(Response::ClGetInfo(InfoValue { size: value.len() as u64, value }));
        let native = if code == 0 { Outcome::Native(-1) } else { Outcome::Native(code) };
        for outcome in [ok, native, Outcome::Protocol(ProtocolError::BadDescriptor)] {
            let mut buf = Vec::new();
            encode_response(&mut buf, id, Opcode::ClGetInfo as u16, &outcome);
            let frame = FrameIter::new(&buf).next().expect("frame").expect("valid");
            prop_assert_eq!(frame.header.request_id, id);
            prop_assert_eq!(decode_response(&frame).expect("decodes"), outcome);
        }
    }

    #[test]
    fn cuda_replies_round_trip_through_a_frame(resp in cuda_response(), id in any::<u64>()) {
        let mut buf = Vec::new();
        let outcome = Outcome::Ok(resp);
        encode_response(&mut buf, id, outcome_opcode(&outcome), &outcome);
        let frame = FrameIter::new(&buf).next().expect("frame").expect("valid");
        prop_assert_eq!(decode_response(&frame).expect("decodes"), outcome);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512), opcode in any::<u16>()) {
        let _ = Header::decode(&bytes);
        let _ = Request::decode(opcode, &bytes);
        let _ = Response::decode(opcode, &bytes);
        for f in FrameIter::new(&bytes).flatten() {
            let _ = decode_request(&f, PROTOCOL_VERSION);
            let _ = decode_response(&f);
        }
    }

    #[test]
    fn corrupted_frames_never_panic(req in request(), pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut buf = Vec::new();
        encode_request(&mut buf, 7, 0, &req, 0, 0).expect("fits");
        let i = pos.index(buf.len());
        buf[i] = byte;
        for f in FrameIter::new(&buf).flatten() {
            let _ = decode_request(&f, PROTOCOL_VERSION);
        }
    }
}

/// A length prefix claiming 2^62 elements must fail fast, not allocate.
#[test]
fn huge_length_prefix_is_rejected_without_allocating() {
    // Varint encoding: 0xFD marks a u64 follow-up.
    let mut body = vec![0xFD];
    body.extend_from_slice(&(1u64 << 62).to_le_bytes());
    let err = Response::decode(Opcode::ClGetPlatformIds as u16, &body).unwrap_err();
    assert!(matches!(err, DecodeError::Body(_)), "{err:?}");
    // A string claiming 1 GiB in a 20-byte body.
    let mut body = vec![1, 1, 0];
    body.push(0xFC);
    body.extend_from_slice(&(1u32 << 30).to_le_bytes());
    assert!(Request::decode(Opcode::SessionOpen as u16, &body).is_err());
}

#[test]
fn header_rejections() {
    let good = Header {
        version: 1,
        flags: 0,
        opcode: Opcode::Ping as u16,
        in_bulk: 0,
        out_bulk: 0,
        request_id: 1,
        body_len: 0,
        status: 0,
    };
    let mut b = good.encode();
    assert_eq!(Header::decode(&b[..31]), Err(DecodeError::Truncated));
    b[0] ^= 1;
    assert_eq!(Header::decode(&b), Err(DecodeError::BadMagic));
    let mut b = good.encode();
    b[14] = 1;
    assert_eq!(Header::decode(&b), Err(DecodeError::ReservedNonZero));
    let mut b = good.encode();
    b[7] = 0x80;
    assert!(matches!(
        Header::decode(&b),
        Err(DecodeError::UnknownFlags(_))
    ));
    let h = Header {
        body_len: limits::MAX_BODY_LEN as u32 + 1,
        ..good
    };
    assert!(matches!(
        Header::decode(&h.encode()),
        Err(DecodeError::BodyTooLong(_))
    ));
    let h = Header {
        in_bulk: 17,
        ..good
    };
    assert_eq!(Header::decode(&h.encode()), Err(DecodeError::TooManyBulk));
}

#[test]
fn semantic_limits_are_enforced() {
    let bad_dim = Request::ClEnqueueNdRange(EnqueueNdRange {
        common: EnqueueCommon::default(),
        kernel: 1,
        offset: vec![],
        global: vec![1, 1, 1, 1],
        local: vec![],
    });
    let mismatched = Request::ClEnqueueNdRange(EnqueueNdRange {
        common: EnqueueCommon::default(),
        kernel: 1,
        offset: vec![],
        global: vec![1, 1],
        local: vec![1],
    });
    let big_pattern = Request::ClEnqueueFillBuffer(EnqueueFillBuffer {
        common: EnqueueCommon::default(),
        buffer: 1,
        pattern: vec![0; 129],
        offset: 0,
        size: 129,
    });
    let binaries = Request::ClCreateProgramWithBinary(CreateProgramWithBinary {
        id: 1,
        context: 1,
        devices: vec![1, 2],
        binaries: vec![vec![]],
    });
    for req in [bad_dim, mismatched, big_pattern, binaries] {
        let mut body = Vec::new();
        req.encode_body(&mut body);
        assert!(
            matches!(
                Request::decode(req.opcode() as u16, &body),
                Err(DecodeError::OutOfRange(_))
            ),
            "{req:?} accepted"
        );
    }
}

#[test]
fn trailing_bytes_are_rejected() {
    let mut body = Vec::new();
    Request::Ping(Empty {}).encode_body(&mut body);
    body.push(0);
    assert!(Request::decode(Opcode::Ping as u16, &body).is_err());
}

#[test]
fn too_many_frames_end_the_walk() {
    let mut buf = Vec::new();
    for i in 0..=limits::MAX_FRAMES_PER_CHAIN as u64 {
        encode_request(&mut buf, i, 0, &Request::Ping(Empty {}), 0, 0).expect("fits");
    }
    let results: Vec<_> = FrameIter::new(&buf).collect();
    assert_eq!(results.len(), limits::MAX_FRAMES_PER_CHAIN + 1);
    assert_eq!(results.last(), Some(&Err(DecodeError::TooManyFrames)));
}

#[test]
fn opcode_numbers_are_stable_and_unique() {
    let mut seen = std::collections::HashSet::new();
    for op in Opcode::ALL {
        assert!(seen.insert(*op as u16), "{op:?} duplicated");
        assert_eq!(Opcode::from_u16(*op as u16), Some(*op));
    }
    // Spot-check numbers that peers in the field depend on.
    assert_eq!(Opcode::SessionOpen as u16, 0x0001);
    assert_eq!(Opcode::Ping as u16, 0x0003);
    assert_eq!(Opcode::ClGetPlatformIds as u16, 0x0100);
    assert_eq!(Opcode::ClEnqueueNdRange as u16, 0x0124);
    assert_eq!(Opcode::CuInit as u16, 0x0200);
    assert_eq!(Opcode::CuMemcpyHtoD as u16, 0x0233);
    assert_eq!(Opcode::CuLaunchKernel as u16, 0x0260);
    assert_eq!(Opcode::from_u16(0xffff), None);
}

fn outcome_opcode(o: &Outcome) -> u16 {
    match o {
        Outcome::Ok(r) => r.opcode() as u16,
        _ => 0,
    }
}

#[test]
fn cuda_limits_are_enforced() {
    let ctx = StreamRef::Legacy { ctx: 1 };
    let too_big = [
        Request::CuModuleLoad(ModuleLoad {
            id: 1,
            ctx: 1,
            kind: ImageKind::Ptx,
            image_len: limits::MAX_MODULE_IMAGE_LEN + 1,
            options: vec![],
            info_log_len: 0,
            error_log_len: 0,
            upload: None,
        }),
        Request::CuModuleLoad(ModuleLoad {
            id: 1,
            ctx: 1,
            kind: ImageKind::Cubin,
            image_len: 16,
            options: vec![
                JitOption {
                    option: 0,
                    value: 0
                };
                limits::MAX_JIT_OPTIONS + 1
            ],
            info_log_len: 0,
            error_log_len: 0,
            upload: None,
        }),
        Request::CuModuleLoad(ModuleLoad {
            id: 1,
            ctx: 1,
            kind: ImageKind::Fatbin,
            image_len: 16,
            options: vec![],
            info_log_len: 0,
            error_log_len: limits::MAX_JIT_LOG_LEN as u32 + 1,
            upload: None,
        }),
        Request::CuModuleGetFunction(GetFunction {
            id: 1,
            module: 1,
            name: "k".repeat(limits::MAX_STRING_LEN + 1),
        }),
        Request::CuMemcpyHtoD(MemcpyHtoD {
            dst: 0,
            size: limits::MAX_TRANSFER_LEN + 1,
            stream: ctx,
        }),
        Request::CuMemcpyDtoH(MemcpyDtoH {
            src: 0,
            size: limits::MAX_TRANSFER_LEN + 1,
            stream: ctx,
        }),
        Request::CuLaunchKernel(LaunchKernel {
            function: 1,
            grid: [1; 3],
            block: [1; 3],
            shared_mem_bytes: 0,
            stream: ctx,
            params: vec![0; limits::MAX_KERNEL_PARAM_BYTES + 1],
        }),
        Request::CuOccupancyMaxPotentialBlockSize(OccupancyMaxPotentialBlockSize {
            function: 1,
            dynamic_smem: DynamicSmem::PerBlockSize(vec![0; limits::MAX_OCCUPANCY_TABLE + 1]),
            block_size_limit: 0,
            flags: 0,
        }),
        Request::CuOccupancyMaxPotentialBlockSize(OccupancyMaxPotentialBlockSize {
            function: 1,
            dynamic_smem: DynamicSmem::PerBlockSize(vec![]),
            block_size_limit: 0,
            flags: 0,
        }),
    ];
    for req in too_big {
        let mut body = Vec::new();
        req.encode_body(&mut body);
        assert!(
            matches!(
                Request::decode(req.opcode() as u16, &body),
                Err(DecodeError::OutOfRange(_))
            ),
            "{:?} accepted",
            req.opcode()
        );
    }
    // The largest legal launch buffer still decodes.
    let at_limit = Request::CuLaunchKernel(LaunchKernel {
        function: 1,
        grid: [1; 3],
        block: [1; 3],
        shared_mem_bytes: 0,
        stream: ctx,
        params: vec![7; limits::MAX_KERNEL_PARAM_BYTES],
    });
    let mut body = Vec::new();
    at_limit.encode_body(&mut body);
    assert_eq!(
        Request::decode(Opcode::CuLaunchKernel as u16, &body),
        Ok(at_limit)
    );
}

#[test]
fn opcode_families_map_to_features() {
    use vcompute_protocol::session::{FEATURE_CUDA, FEATURE_OPENCL};
    for op in Opcode::ALL {
        let expected = match *op as u16 >> 8 {
            0x01 => FEATURE_OPENCL,
            0x02 => FEATURE_CUDA,
            _ => 0,
        };
        assert_eq!(op.feature(), expected, "{op:?}");
    }
    assert_eq!(Opcode::CuLaunchKernel.feature(), FEATURE_CUDA);
    assert_eq!(Opcode::ClFinish.feature(), FEATURE_OPENCL);
    assert_eq!(Opcode::Ping.feature(), 0);
    assert_eq!(Opcode::SessionOpen.feature(), 0);
    assert!(
        Opcode::ALL
            .iter()
            .filter(|o| o.feature() == FEATURE_CUDA)
            .count()
            >= 35
    );
}

#[test]
fn cuda_helpers() {
    let f = FunctionInfo {
        params: Some(vec![
            ParamInfo { offset: 0, size: 8 },
            ParamInfo {
                offset: 16,
                size: 4,
            },
            ParamInfo { offset: 8, size: 4 },
        ]),
    };
    assert_eq!(f.params_len(), Some(20));
    assert_eq!(FunctionInfo { params: None }.params_len(), None);
    assert_eq!(
        FunctionInfo {
            params: Some(vec![])
        }
        .params_len(),
        Some(0)
    );
    assert_eq!(Elapsed::from_millis(1.5).millis(), 1.5);
    assert_eq!(MemsetWidth::D16.bytes(), 2);
    assert_eq!(
        CuObjectKind::Context.invalid(),
        cuda::result::INVALID_CONTEXT
    );
    assert_eq!(CuObjectKind::Stream.invalid(), cuda::result::INVALID_HANDLE);
}

/// The header files a build carries: a working directory, `-I`
/// directories and files with arbitrary contents.
fn guest_headers() -> impl Strategy<Value = vcompute_protocol::opencl::GuestHeaders> {
    (
        "/[a-z/]{0,16}",
        prop::collection::vec("/[a-z/]{1,16}", 0..3),
        prop::collection::vec(
            ("/[a-z/]{1,24}", prop::collection::vec(any::<u8>(), 0..64)),
            0..4,
        ),
    )
        .prop_map(|(cwd, dirs, files)| vcompute_protocol::opencl::GuestHeaders { cwd, dirs, files })
}
