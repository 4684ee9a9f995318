//! Property tests for the OpenCL messages of images, samplers, rectangle
//! transfers, migration, separate compilation, IL and built-in programs,
//! kernel clones, sub-devices, timers and destructor callbacks: each
//! survives encode, frame, decode; their semantic limits hold.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
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

fn triple() -> impl Strategy<Value = [u64; 3]> {
    any::<[u64; 3]>()
}

fn desc() -> impl Strategy<Value = ImageDesc> {
    (
        any::<u32>(),
        any::<[u64; 6]>(),
        any::<u32>(),
        any::<u32>(),
        any::<u64>(),
    )
        .prop_map(
            |(image_type, d, num_mip_levels, num_samples, mem_object)| ImageDesc {
                image_type,
                width: d[0],
                height: d[1],
                depth: d[2],
                array_size: d[3],
                row_pitch: d[4],
                slice_pitch: d[5],
                num_mip_levels,
                num_samples,
                mem_object,
            },
        )
}

fn name() -> impl Strategy<Value = String> {
    ".{0,32}"
}

fn image_request() -> impl Strategy<Value = Request> {
    let transfer = || {
        (
            common(),
            any::<u64>(),
            triple(),
            triple(),
            any::<[u64; 2]>(),
        )
            .prop_map(|(common, image, origin, region, p)| ImageTransfer {
                common,
                image,
                origin,
                region,
                row_pitch: p[0],
                slice_pitch: p[1],
            })
    };
    let to_buffer = || {
        (
            common(),
            any::<[u64; 2]>(),
            triple(),
            triple(),
            any::<u64>(),
        )
            .prop_map(
                |(common, h, origin, region, offset)| EnqueueCopyImageBuffer {
                    common,
                    image: h[0],
                    buffer: h[1],
                    origin,
                    region,
                    offset,
                },
            )
    };
    prop_oneof![
        (
            any::<[u64; 3]>(),
            any::<(u32, u32)>(),
            desc(),
            prop::collection::vec(any::<u64>(), 0..8)
        )
            .prop_map(|(h, format, desc, properties)| {
                Request::ClCreateImage(CreateImage {
                    id: h[0],
                    context: h[1],
                    flags: h[2],
                    format,
                    desc,
                    properties,
                })
            }),
        (
            any::<[u64; 2]>(),
            prop_oneof![
                any::<[u32; 3]>().prop_map(|a| SamplerArgs::Legacy {
                    normalized: a[0],
                    addressing: a[1],
                    filter: a[2],
                }),
                prop::collection::vec(any::<u64>(), 0..8).prop_map(SamplerArgs::Properties),
            ]
        )
            .prop_map(|(h, args)| Request::ClCreateSampler(CreateSampler {
                id: h[0],
                context: h[1],
                args,
            })),
        transfer().prop_map(Request::ClEnqueueReadImage),
        transfer().prop_map(Request::ClEnqueueWriteImage),
        (common(), any::<[u64; 2]>(), triple(), triple(), triple()).prop_map(
            |(common, h, src_origin, dst_origin, region)| {
                Request::ClEnqueueCopyImage(EnqueueCopyImage {
                    common,
                    src: h[0],
                    dst: h[1],
                    src_origin,
                    dst_origin,
                    region,
                })
            }
        ),
        (
            common(),
            any::<u64>(),
            any::<[u8; 16]>(),
            triple(),
            triple()
        )
            .prop_map(|(common, image, color, origin, region)| {
                Request::ClEnqueueFillImage(EnqueueFillImage {
                    common,
                    image,
                    color: color.to_vec(),
                    origin,
                    region,
                })
            }),
        to_buffer().prop_map(Request::ClEnqueueCopyImageToBuffer),
        to_buffer().prop_map(Request::ClEnqueueCopyBufferToImage),
    ]
}

fn transfer_request() -> impl Strategy<Value = Request> {
    let rect = || {
        (
            common(),
            any::<u64>(),
            triple(),
            triple(),
            any::<[u64; 4]>(),
        )
            .prop_map(
                |(common, buffer, buffer_origin, region, p)| EnqueueBufferRect {
                    common,
                    buffer,
                    buffer_origin,
                    region,
                    buffer_row_pitch: p[0],
                    buffer_slice_pitch: p[1],
                    host_row_pitch: p[2],
                    host_slice_pitch: p[3],
                },
            )
    };
    prop_oneof![
        rect().prop_map(Request::ClEnqueueReadBufferRect),
        rect().prop_map(Request::ClEnqueueWriteBufferRect),
        (
            common(),
            any::<[u64; 2]>(),
            triple(),
            triple(),
            triple(),
            any::<[u64; 4]>()
        )
            .prop_map(|(common, h, src_origin, dst_origin, region, p)| {
                Request::ClEnqueueCopyBufferRect(EnqueueCopyBufferRect {
                    common,
                    src: h[0],
                    dst: h[1],
                    src_origin,
                    dst_origin,
                    region,
                    src_row_pitch: p[0],
                    src_slice_pitch: p[1],
                    dst_row_pitch: p[2],
                    dst_slice_pitch: p[3],
                })
            }),
        (
            common(),
            prop::collection::vec(any::<u64>(), 0..8),
            any::<u64>()
        )
            .prop_map(
                |(common, mems, flags)| Request::ClEnqueueMigrate(EnqueueMigrate {
                    common,
                    mems,
                    flags
                })
            ),
    ]
}

fn program_request() -> impl Strategy<Value = Request> {
    let handles = || prop::collection::vec(any::<u64>(), 0..4);
    prop_oneof![
        (
            any::<u64>(),
            handles(),
            name(),
            prop::collection::vec((any::<u64>(), name()), 0..4)
        )
            .prop_map(|(program, devices, options, headers)| {
                Request::ClCompileProgram(CompileProgram {
                    program,
                    devices,
                    options,
                    headers,
                    files: Default::default(),
                })
            }),
        (any::<[u64; 2]>(), handles(), name(), handles()).prop_map(
            |(h, devices, options, programs)| {
                Request::ClLinkProgram(LinkProgram {
                    id: h[0],
                    context: h[1],
                    devices,
                    options,
                    programs,
                })
            }
        ),
        (any::<[u64; 2]>(), prop::collection::vec(any::<u8>(), 0..64)).prop_map(|(h, il)| {
            Request::ClCreateProgramWithIl(CreateProgramWithIl {
                id: h[0],
                context: h[1],
                il,
            })
        }),
        (any::<[u64; 2]>(), handles(), name()).prop_map(|(h, devices, names)| {
            Request::ClCreateProgramWithBuiltIns(CreateProgramWithBuiltIns {
                id: h[0],
                context: h[1],
                devices,
                names,
            })
        }),
        (
            any::<u64>(),
            any::<u32>(),
            prop::collection::vec(any::<u8>(), 0..=8)
        )
            .prop_map(|(program, spec_id, value)| {
                Request::ClSetSpecConstant(SetSpecConstant {
                    program,
                    spec_id,
                    value,
                })
            }),
        any::<[u64; 2]>().prop_map(|h| Request::ClCloneKernel(CloneKernel {
            id: h[0],
            kernel: h[1]
        })),
    ]
}

fn kind() -> impl Strategy<Value = ObjectKind> {
    prop_oneof![
        Just(ObjectKind::MemObject),
        Just(ObjectKind::Program),
        Just(ObjectKind::Context),
        Just(ObjectKind::Sampler),
    ]
}

fn device_request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (
            any::<u64>(),
            prop::collection::vec(any::<u64>(), 0..8),
            any::<bool>()
        )
            .prop_map(|(device, properties, count_only)| {
                Request::ClCreateSubDevices(CreateSubDevices {
                    device,
                    properties,
                    count_only,
                })
            }),
        (any::<u64>(), any::<bool>()).prop_map(|(device, host_only)| {
            Request::ClGetDeviceTimer(GetDeviceTimer { device, host_only })
        }),
        (
            prop::collection::vec(any::<u64>(), 0..8),
            0..=limits::MAX_WAIT_SLICE_US as u32
        )
            .prop_map(|(events, timeout_us)| {
                Request::ClWaitForEventsFor(WaitForEventsFor { events, timeout_us })
            }),
        (kind(), any::<u64>()).prop_map(|(kind, object)| {
            Request::ClSetDestructorCallback(SetDestructorCallback { kind, object })
        }),
        (
            any::<u64>(),
            any::<u64>(),
            any::<u32>(),
            0..=limits::MAX_INFO_LEN
        )
            .prop_map(|(object, extra, param, size)| {
                Request::ClGetInfo(GetInfo {
                    kind: if extra % 2 == 0 {
                        InfoKind::Image
                    } else {
                        InfoKind::Sampler
                    },
                    object,
                    extra,
                    param,
                    size,
                })
            }),
    ]
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        image_request(),
        transfer_request(),
        program_request(),
        device_request()
    ]
}

fn response() -> impl Strategy<Value = Response> {
    prop_oneof![
        any::<u64>()
            .prop_map(|element_size| Response::ClCreateImage(ImageCreated { element_size })),
        any::<i32>().prop_map(|status| Response::ClLinkProgram(Linked { status })),
        any::<bool>().prop_map(|done| Response::ClWaitForEventsFor(WaitOutcome { done })),
        (any::<u32>(), prop::collection::vec(any::<u64>(), 0..8)).prop_map(|(count, handles)| {
            Response::ClCreateSubDevices(SubDevices { count, handles })
        }),
        any::<[u64; 2]>().prop_map(|t| Response::ClGetDeviceTimer(Timer {
            device: t[0],
            host: t[1]
        })),
    ]
}

proptest! {
    #[test]
    fn requests_round_trip_through_a_frame(req in request(), id in any::<u64>(), flags in 0u16..2) {
        let mut buf = Vec::new();
        encode_request(&mut buf, id, flags, &req, 1, 0).expect("fits");
        let frame = FrameIter::new(&buf).next().expect("frame").expect("valid");
        prop_assert_eq!(frame.header.request_id, id);
        prop_assert_eq!(decode_request(&frame, PROTOCOL_VERSION).expect("decodes"), req);
    }

    #[test]
    fn replies_round_trip_through_a_frame(resp in response(), id in any::<u64>()) {
        let outcome = Outcome::Ok(resp);
        let op = match &outcome {
            Outcome::Ok(r) => r.opcode() as u16,
            _ => 0,
        };
        let mut buf = Vec::new();
        encode_response(&mut buf, id, op, &outcome);
        let frame = FrameIter::new(&buf).next().expect("frame").expect("valid");
        prop_assert_eq!(decode_response(&frame).expect("decodes"), outcome);
    }
}

fn decode(req: &Request) -> Result<Request, DecodeError> {
    let mut body = Vec::new();
    req.encode_body(&mut body);
    Request::decode(req.opcode() as u16, &body)
}

#[test]
fn limits_of_the_new_messages_hold() {
    let color = |n: usize| {
        Request::ClEnqueueFillImage(EnqueueFillImage {
            common: EnqueueCommon::default(),
            image: 1,
            color: vec![0; n],
            origin: [0; 3],
            region: [1; 3],
        })
    };
    assert!(decode(&color(16)).is_ok());
    for n in [0, 4, 15, 17, 128] {
        assert!(decode(&color(n)).is_err(), "a {n}-byte fill colour");
    }
    let spec = |n: usize| {
        Request::ClSetSpecConstant(SetSpecConstant {
            program: 1,
            spec_id: 0,
            value: vec![0; n],
        })
    };
    assert!(decode(&spec(limits::MAX_SPEC_CONSTANT_LEN)).is_ok());
    assert!(decode(&spec(limits::MAX_SPEC_CONSTANT_LEN + 1)).is_err());
    let props = Request::ClCreateImage(CreateImage {
        id: 1,
        context: 2,
        flags: 0,
        format: (0, 0),
        desc: ImageDesc::default(),
        properties: vec![1; limits::MAX_PROPERTIES + 1],
    });
    assert!(decode(&props).is_err());
    let migrate = Request::ClEnqueueMigrate(EnqueueMigrate {
        common: EnqueueCommon::default(),
        mems: vec![1; limits::MAX_LIST_LEN + 1],
        flags: 0,
    });
    assert!(decode(&migrate).is_err());
    let slice = |timeout_us| {
        Request::ClWaitForEventsFor(WaitForEventsFor {
            events: vec![1],
            timeout_us,
        })
    };
    assert!(decode(&slice(limits::MAX_WAIT_SLICE_US as u32)).is_ok());
    assert!(decode(&slice(limits::MAX_WAIT_SLICE_US as u32 + 1)).is_err());
    let headers = Request::ClCompileProgram(CompileProgram {
        program: 1,
        devices: vec![],
        options: String::new(),
        headers: vec![(1, "x".repeat(limits::MAX_STRING_LEN + 1))],
        files: Default::default(),
    });
    assert!(decode(&headers).is_err());
}

#[test]
fn image_and_sampler_handles_are_answered_by_the_shim() {
    assert!(is_handle_valued(InfoKind::Image, 0x1118));
    assert!(is_handle_valued(InfoKind::Sampler, 0x1151));
    assert!(!is_handle_valued(InfoKind::Image, 0x1110));
    assert_eq!(InfoKind::Image.object_kind(), ObjectKind::MemObject);
    assert_eq!(InfoKind::Sampler.object_kind(), ObjectKind::Sampler);
}

/// The request and response fuzz targets pick an opcode with a selector
/// byte below 0x80 as an index into `Opcode::ALL` (modulo its length):
/// every opcode is reachable only while the table has at most 128.
#[test]
fn fuzz_selectors_reach_every_opcode() {
    assert!(Opcode::ALL.len() <= 0x80, "{} opcodes", Opcode::ALL.len());
    let reached: std::collections::HashSet<u16> = (0u8..0x80)
        .map(|sel| Opcode::ALL[usize::from(sel) % Opcode::ALL.len()] as u16)
        .collect();
    assert_eq!(reached.len(), Opcode::ALL.len());
    for op in [
        Opcode::ClCreateImage,
        Opcode::ClLinkProgram,
        Opcode::ClCloneKernel,
    ] {
        assert!(reached.contains(&(op as u16)));
    }
}
