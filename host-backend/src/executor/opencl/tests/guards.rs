//! What an untrusted guest must not be able to do: forge handles, overrun
//! buffers or limits, smuggle pointers, read host files or load foreign code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::executor::opencl::program::{options_allowed, reads_files};

#[test]
fn forged_stale_and_wrong_kind_handles() {
    let Some(mut ex) = session(LIMITS) else {
        return;
    };
    let d = setup(&mut ex, vec![]);
    let p = platforms(&mut ex)[0];
    create_buffer(&mut ex, 10, 64).unwrap();

    let finish = |q| Request::ClFinish(QueueOp { queue: q });
    assert_eq!(
        native_err(call(&mut ex, finish(0xdead))),
        CL_INVALID_COMMAND_QUEUE
    );
    assert_eq!(
        native_err(call(&mut ex, finish(CTX))),
        CL_INVALID_COMMAND_QUEUE
    );
    let r = call(&mut ex, info_req(InfoKind::Context, QUEUE, 0, 0x1080, 0));
    assert_eq!(native_err(r), CL_INVALID_CONTEXT);
    let r = call(&mut ex, info_req(InfoKind::Device, p, 0, CL_DEVICE_NAME, 0));
    assert_eq!(native_err(r), CL_INVALID_DEVICE);
    let r = call(
        &mut ex,
        info_req(InfoKind::Platform, d, 0, CL_PLATFORM_NAME, 0),
    );
    assert_eq!(native_err(r), CL_INVALID_PLATFORM);
    let r = call(
        &mut ex,
        Request::ClGetDeviceIds(GetDeviceIds {
            platform: 7,
            device_type: u64::MAX,
        }),
    );
    assert_eq!(native_err(r), CL_INVALID_PLATFORM);
    let r = call(
        &mut ex,
        Request::ClBuildProgram(BuildProgram {
            program: 10,
            devices: vec![],
            options: String::new(),
            headers: Default::default(),
        }),
    );
    assert_eq!(native_err(r), CL_INVALID_PROGRAM);
    let r = call(
        &mut ex,
        Request::ClCreateKernel(CreateKernel {
            id: 30,
            program: 10,
            name: "k".into(),
        }),
    );
    assert_eq!(native_err(r), CL_INVALID_PROGRAM);
    assert_eq!(
        native_err(set_arg(&mut ex, 10, 0, KernelArg::NullMem)),
        CL_INVALID_KERNEL
    );
    let r = call(
        &mut ex,
        Request::ClWaitForEvents(WaitForEvents { events: vec![10] }),
    );
    assert_eq!(native_err(r), CL_INVALID_EVENT);
    let r = call(
        &mut ex,
        info_req(
            InfoKind::EventProfiling,
            99,
            0,
            CL_PROFILING_COMMAND_START,
            8,
        ),
    );
    assert_eq!(native_err(r), CL_INVALID_EVENT);
    let r = call(
        &mut ex,
        Request::ClEnqueueMarker(EnqueueMarker {
            common: EnqueueCommon {
                queue: QUEUE,
                wait: vec![10],
                event: None,
            },
            barrier: false,
        }),
    );
    assert_eq!(native_err(r), CL_INVALID_EVENT_WAIT_LIST);
    let r = call(
        &mut ex,
        Request::ClRelease(Release {
            kind: ObjectKind::Kernel,
            object: 10,
        }),
    );
    assert_eq!(native_err(r), CL_INVALID_KERNEL);
    let r = call(
        &mut ex,
        Request::ClRelease(Release {
            kind: ObjectKind::Sampler,
            object: 10,
        }),
    );
    assert_eq!(native_err(r), CL_INVALID_SAMPLER);

    // Stale: released handles are gone.
    ok(
        &mut ex,
        Request::ClRelease(Release {
            kind: ObjectKind::MemObject,
            object: 10,
        }),
    );
    assert_eq!(
        native_err(write(&mut ex, 10, 0, vec![0; 4])),
        CL_INVALID_MEM_OBJECT
    );
    let r = call(
        &mut ex,
        Request::ClRelease(Release {
            kind: ObjectKind::MemObject,
            object: 10,
        }),
    );
    assert_eq!(native_err(r), CL_INVALID_MEM_OBJECT);
    ok(
        &mut ex,
        Request::ClRelease(Release {
            kind: ObjectKind::CommandQueue,
            object: QUEUE,
        }),
    );
    assert_eq!(
        native_err(call(&mut ex, finish(QUEUE))),
        CL_INVALID_COMMAND_QUEUE
    );

    // Other API families are not ours.
    let r = call(&mut ex, Request::SessionClose(Empty {}));
    assert_eq!(
        r,
        Err(ExecError::Protocol(ProtocolError::UnsupportedOpcode))
    );
}

#[test]
fn zero_duplicate_and_reserved_ids_rejected() {
    let Some(mut ex) = session(LIMITS) else {
        return;
    };
    let d = setup(&mut ex, vec![]);
    let p = platforms(&mut ex)[0];
    for id in [0, CTX, QUEUE, p, d, 1 << 63] {
        let r = create_buffer(&mut ex, id, 16);
        assert_eq!(native_err(r), CL_INVALID_VALUE, "id {id:#x}");
    }
    create_buffer(&mut ex, 10, 16).unwrap();
    assert_eq!(native_err(create_buffer(&mut ex, 10, 16)), CL_INVALID_VALUE);
    // An enqueue's event handle follows the same rules, checked before the
    // command runs.
    let r = call(
        &mut ex,
        Request::ClEnqueueMarker(EnqueueMarker {
            common: common(Some(CTX)),
            barrier: false,
        }),
    );
    assert_eq!(native_err(r), CL_INVALID_VALUE);
}

#[test]
fn bulk_descriptors_checked() {
    let Some(mut ex) = session(LIMITS) else {
        return;
    };
    setup(&mut ex, vec![]);
    create_buffer(&mut ex, 10, 64).unwrap();
    let bad = Err(ExecError::Protocol(ProtocolError::BadDescriptor));
    let wr = |size| {
        Request::ClEnqueueWriteBuffer(EnqueueWriteBuffer {
            common: common(None),
            buffer: 10,
            offset: 0,
            size,
        })
    };
    assert_eq!(call_bulk(&mut ex, wr(16), &mut [vec![0; 15]], &mut []), bad);
    assert_eq!(
        call_bulk(&mut ex, wr(16), &mut [vec![0; 8], vec![0; 8]], &mut []),
        bad
    );
    assert_eq!(call_bulk(&mut ex, wr(16), &mut [], &mut []), bad);
    let rd = |size| {
        Request::ClEnqueueReadBuffer(EnqueueReadBuffer {
            common: common(None),
            buffer: 10,
            offset: 0,
            size,
        })
    };
    assert_eq!(call_bulk(&mut ex, rd(16), &mut [], &mut [vec![0; 17]]), bad);
    assert_eq!(call_bulk(&mut ex, rd(16), &mut [vec![0; 16]], &mut []), bad);
    let cb = Request::ClCreateBuffer(CreateBuffer {
        id: 11,
        context: CTX,
        flags: CL_MEM_COPY_HOST_PTR,
        size: 32,
    });
    assert_eq!(call_bulk(&mut ex, cb.clone(), &mut [], &mut []), bad);
    assert_eq!(call_bulk(&mut ex, cb, &mut [vec![0; 31]], &mut []), bad);
    let plain = Request::ClCreateBuffer(CreateBuffer {
        id: 11,
        context: CTX,
        flags: 0,
        size: 32,
    });
    assert_eq!(call_bulk(&mut ex, plain, &mut [vec![0; 32]], &mut []), bad);
    let ping = Request::Ping(Empty {});
    assert_eq!(call_bulk(&mut ex, ping, &mut [vec![0; 1]], &mut []), bad);
}

#[test]
fn ranges_checked_before_the_runtime() {
    let Some(mut ex) = session(LIMITS) else {
        return;
    };
    setup(&mut ex, vec![]);
    create_buffer(&mut ex, 10, 64).unwrap();
    create_buffer(&mut ex, 11, 64).unwrap();
    assert_eq!(
        native_err(write(&mut ex, 10, 62, vec![1; 4])),
        CL_INVALID_VALUE
    );
    assert_eq!(
        native_err(write(&mut ex, 10, u64::MAX - 1, vec![1; 4])),
        CL_INVALID_VALUE
    );
    write(&mut ex, 10, 60, vec![1; 4]).unwrap();
    let rd = Request::ClEnqueueReadBuffer(EnqueueReadBuffer {
        common: common(None),
        buffer: 10,
        offset: 64,
        size: 1,
    });
    assert_eq!(
        native_err(call_bulk(&mut ex, rd, &mut [], &mut [vec![0; 1]])),
        CL_INVALID_VALUE
    );
    let cp = |src_offset, dst_offset, size| {
        Request::ClEnqueueCopyBuffer(EnqueueCopyBuffer {
            common: common(None),
            src: 10,
            dst: 11,
            src_offset,
            dst_offset,
            size,
        })
    };
    assert_eq!(native_err(call(&mut ex, cp(0, 1, 64))), CL_INVALID_VALUE);
    assert_eq!(
        native_err(call(&mut ex, cp(u64::MAX, 0, 2))),
        CL_INVALID_VALUE
    );
    let fill = Request::ClEnqueueFillBuffer(EnqueueFillBuffer {
        common: common(None),
        buffer: 10,
        pattern: vec![0; 4],
        offset: 64,
        size: 4,
    });
    assert_eq!(native_err(call(&mut ex, fill)), CL_INVALID_VALUE);
    let sub = Request::ClCreateSubBuffer(CreateSubBuffer {
        id: 12,
        buffer: 10,
        flags: 0,
        origin: 32,
        size: 33,
    });
    assert_eq!(native_err(call(&mut ex, sub)), CL_INVALID_VALUE);
}

#[test]
fn object_and_memory_limits_enforced() {
    let limits = SessionLimits {
        max_objects: 4,
        max_device_memory: 4096,
    };
    let Some(mut ex) = session(limits) else {
        return;
    };
    setup(&mut ex, vec![]); // 2 objects
    assert_eq!(
        create_buffer(&mut ex, 10, 4096),
        Ok(Response::ClCreateBuffer(Empty {}))
    );
    assert_eq!(ex.memory_in_use(), 4096);
    // Memory: one more byte does not fit.
    assert_eq!(
        native_err(create_buffer(&mut ex, 11, 1)),
        CL_MEM_OBJECT_ALLOCATION_FAILURE
    );
    ok(
        &mut ex,
        Request::ClRelease(Release {
            kind: ObjectKind::MemObject,
            object: 10,
        }),
    );
    assert_eq!(ex.memory_in_use(), 0);
    create_buffer(&mut ex, 11, 2048).unwrap();
    create_buffer(&mut ex, 12, 2048).unwrap(); // 4 objects
                                               // Objects: a fifth is refused, whatever its kind.
    let limit = Err(ExecError::Protocol(ProtocolError::LimitExceeded));
    assert_eq!(create_buffer(&mut ex, 13, 1), limit);
    let marker = Request::ClEnqueueMarker(EnqueueMarker {
        common: common(Some(20)),
        barrier: false,
    });
    assert_eq!(call(&mut ex, marker.clone()), limit);
    // An enqueue without an event creates no object.
    let marker_no_event = Request::ClEnqueueMarker(EnqueueMarker {
        common: common(None),
        barrier: false,
    });
    ok(&mut ex, marker_no_event);
    ok(
        &mut ex,
        Request::ClRelease(Release {
            kind: ObjectKind::MemObject,
            object: 12,
        }),
    );
    ok(&mut ex, marker);
    assert_eq!(ex.table.live(), 4);
}

#[test]
fn kernel_arguments_cannot_carry_pointers() {
    let Some(mut ex) = session(LIMITS) else {
        return;
    };
    let d = setup(&mut ex, vec![]);
    let src =
        "__kernel void k(__global ulong *out, ulong v, __local int *scratch, __constant int *c) {
        scratch[0] = 1; out[0] = v + c[0] + scratch[0];
    }";
    build(&mut ex, 20, d, src).unwrap();
    kernel(&mut ex, 21, 20, "k");
    create_buffer(&mut ex, 10, 64).unwrap();
    let ptr = vec![0x41u8; std::mem::size_of::<usize>()];
    assert_eq!(
        native_err(set_arg(&mut ex, 21, 0, KernelArg::Bytes(ptr.clone()))),
        CL_INVALID_MEM_OBJECT
    );
    assert_eq!(
        native_err(set_arg(&mut ex, 21, 3, KernelArg::Bytes(ptr.clone()))),
        CL_INVALID_MEM_OBJECT
    );
    assert_eq!(
        native_err(set_arg(&mut ex, 21, 2, KernelArg::Bytes(ptr.clone()))),
        CL_INVALID_ARG_VALUE
    );
    // A buffer must not reach a by-value argument (the kernel could write
    // the runtime's pointer back to the guest).
    assert_eq!(
        native_err(set_arg(&mut ex, 21, 1, KernelArg::Mem(10))),
        CL_INVALID_ARG_VALUE
    );
    assert_eq!(
        native_err(set_arg(&mut ex, 21, 0, KernelArg::Sampler(5))),
        CL_INVALID_SAMPLER
    );
    assert_eq!(
        native_err(set_arg(&mut ex, 21, 9, KernelArg::NullMem)),
        CL_INVALID_ARG_INDEX
    );
    assert_eq!(
        native_err(set_arg(&mut ex, 21, 0, KernelArg::Mem(11))),
        CL_INVALID_MEM_OBJECT
    );
    // A NULL memory object by value is zero bytes: native rules apply.
    set_arg(&mut ex, 21, 1, KernelArg::NullMem).unwrap();
    // The legitimate forms work, and the kernel runs with them.
    set_arg(&mut ex, 21, 0, KernelArg::Mem(10)).unwrap();
    set_arg(
        &mut ex,
        21,
        1,
        KernelArg::Bytes(40u64.to_le_bytes().to_vec()),
    )
    .unwrap();
    set_arg(&mut ex, 21, 2, KernelArg::Local(64)).unwrap();
    let req = Request::ClCreateBuffer(CreateBuffer {
        id: 11,
        context: CTX,
        flags: CL_MEM_COPY_HOST_PTR,
        size: 4,
    });
    call_bulk(&mut ex, req, &mut [1i32.to_le_bytes().to_vec()], &mut []).unwrap();
    set_arg(&mut ex, 21, 3, KernelArg::Mem(11)).unwrap();
    // Releasing a buffer set on an argument keeps the launch safe.
    ok(
        &mut ex,
        Request::ClRelease(Release {
            kind: ObjectKind::MemObject,
            object: 11,
        }),
    );
    ndrange(&mut ex, 21, 1, vec![]).unwrap();
    assert_eq!(u64_of(&read(&mut ex, 10, 0, 8)), 42);
}

#[test]
fn handle_valued_info_refused() {
    let Some(mut ex) = session(LIMITS) else {
        return;
    };
    let d = setup(&mut ex, vec![]);
    create_buffer(&mut ex, 10, 16).unwrap();
    let cases = [
        (InfoKind::Device, d, 0x1031),
        (InfoKind::Context, CTX, 0x1081),
        (InfoKind::Context, CTX, 0x1082),
        (InfoKind::CommandQueue, QUEUE, 0x1090),
        (InfoKind::CommandQueue, QUEUE, 0x1091),
        (InfoKind::MemObject, 10, 0x1103),
        (InfoKind::MemObject, 10, 0x1106),
    ];
    for (kind, object, param) in cases {
        assert!(is_handle_valued(kind, param));
        for size in [0, 8, 4096] {
            let r = call(&mut ex, info_req(kind, object, 0, param, size));
            assert_eq!(native_err(r), CL_INVALID_VALUE, "{kind:?} {param:#x}");
        }
    }
}

#[test]
fn context_properties_and_from_type() {
    let Some(mut ex) = session(LIMITS) else {
        return;
    };
    let p = platforms(&mut ex)[0];
    let ds = devices(&mut ex, p);
    let plat = cl3::context::CL_CONTEXT_PLATFORM as u64;
    let from_type = |id, properties| {
        Request::ClCreateContextFromType(CreateContextFromType {
            id,
            properties,
            device_type: cl3::device::CL_DEVICE_TYPE_ALL,
        })
    };
    match ok(&mut ex, from_type(1, vec![plat, p, 0])) {
        Response::ClCreateContextFromType(l) => assert_eq!(l.handles, ds),
        r => panic!("{r:?}"),
    }
    // A raw runtime pointer is not a platform handle.
    let raw = cl3::platform::get_platform_ids().unwrap()[0] as u64;
    assert_eq!(
        native_err(call(&mut ex, from_type(2, vec![plat, raw, 0]))),
        CL_INVALID_PLATFORM
    );
    assert_eq!(
        native_err(call(&mut ex, from_type(2, vec![0x2008, 1, 0]))),
        CL_INVALID_PROPERTY
    );
    assert_eq!(
        native_err(call(&mut ex, from_type(2, vec![plat, p, plat, p, 0]))),
        CL_INVALID_PROPERTY
    );
    assert_eq!(
        native_err(call(&mut ex, from_type(2, vec![plat, p]))),
        CL_INVALID_PROPERTY
    );
}

#[test]
fn host_files_and_foreign_binaries_refused() {
    let Some(mut ex) = session(LIMITS) else {
        return;
    };
    let d = setup(&mut ex, vec![]);
    let src = "#include \"/etc/passwd\"\n__kernel void k() {}";
    let r = call(
        &mut ex,
        Request::ClCreateProgramWithSource(CreateProgramWithSource {
            id: 20,
            context: CTX,
            source: src.into(),
        }),
    );
    assert_eq!(native_err(r), CL_INVALID_VALUE);
    build(&mut ex, 21, d, VADD).unwrap();
    for options in ["-I/etc", "-include /etc/passwd", "-Xclang -load", "-D"] {
        let r = call(
            &mut ex,
            Request::ClBuildProgram(BuildProgram {
                program: 21,
                devices: vec![],
                options: options.into(),
                headers: Default::default(),
            }),
        );
        assert_eq!(native_err(r), CL_INVALID_BUILD_OPTIONS, "{options}");
    }
    let r = call(
        &mut ex,
        Request::ClBuildProgram(BuildProgram {
            program: 21,
            devices: vec![],
            options: "-DX=1 -cl-fast-relaxed-math -w".into(),
            headers: Default::default(),
        }),
    );
    assert!(r.is_ok(), "{r:?}");

    // Binaries this daemon produced load again; anything else does not.
    let bins = match ok(
        &mut ex,
        Request::ClGetProgramBinaries(GetProgramBinaries { program: 21 }),
    ) {
        Response::ClGetProgramBinaries(b) => b.binaries,
        r => panic!("{r:?}"),
    };
    assert_eq!(bins.len(), 1);
    assert!(!bins[0].is_empty());
    let load = |id, binaries| {
        Request::ClCreateProgramWithBinary(CreateProgramWithBinary {
            id,
            context: CTX,
            devices: vec![d],
            binaries,
        })
    };
    match ok(&mut ex, load(22, bins.clone())) {
        Response::ClCreateProgramWithBinary(s) => assert_eq!(s.status, vec![CL_SUCCESS]),
        r => panic!("{r:?}"),
    }
    ok(
        &mut ex,
        Request::ClBuildProgram(BuildProgram {
            program: 22,
            devices: vec![],
            options: String::new(),
            headers: Default::default(),
        }),
    );
    kernel(&mut ex, 23, 22, "vadd");
    let mut forged = bins[0].clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert_eq!(
        native_err(call(&mut ex, load(24, vec![forged]))),
        CL_INVALID_BINARY
    );
}

#[test]
fn include_detection_and_option_filter() {
    for src in [
        "#include <a.h>",
        "  #  include \"x\"",
        "#/* c */include \"x\"",
        "#\\\ninclude \"x\"",
        "%:include \"x\"",
        "??=include \"x\"",
        "#import \"x\"",
        "#embed \"x\"",
        "#include_next <x>",
        "#if __has_include(\"/etc/x\")\n#endif",
        "#/* unterminated",
    ] {
        assert!(reads_files(src), "{src:?}");
    }
    for src in [
        "__kernel void k(int includes) {}",
        "#define N 4\n#pragma unroll\n",
        "int a = 5 % 2;",
    ] {
        assert!(!reads_files(src), "{src:?}");
    }
    assert!(options_allowed(""));
    assert!(options_allowed(
        "-D N=4 -DFOO -U BAR -cl-std=CL1.2 -cl-mad-enable -w -Werror -g"
    ));
    for o in [
        "-I.",
        "-I /",
        "-include x",
        "-Xclang",
        "-mllvm -x",
        "-D",
        "--sysroot=/",
        "-fplugin=x.so",
        "-o /tmp/x",
    ] {
        assert!(!options_allowed(o), "{o}");
    }
}

#[test]
fn commands_left_behind_a_pending_user_event_do_not_crash_teardown() {
    // A guest that gates real commands (not just markers) on a user event
    // it never sets, then goes away, must not take the daemon down.
    let Some(mut ex) = session(LIMITS) else {
        return;
    };
    setup(&mut ex, vec![]);
    ok(
        &mut ex,
        Request::ClCreateUserEvent(CreateUserEvent {
            id: 40,
            context: CTX,
        }),
    );
    create_buffer(&mut ex, 10, 4096).unwrap();
    create_buffer(&mut ex, 11, 4096).unwrap();
    let gated = EnqueueCommon {
        queue: QUEUE,
        wait: vec![40],
        event: None,
    };
    ok(
        &mut ex,
        Request::ClEnqueueMarker(EnqueueMarker {
            common: gated,
            barrier: true,
        }),
    );
    ok(
        &mut ex,
        Request::ClEnqueueCopyBuffer(EnqueueCopyBuffer {
            common: common(None),
            src: 10,
            dst: 11,
            src_offset: 0,
            dst_offset: 0,
            size: 4096,
        }),
    );
    ok(
        &mut ex,
        Request::ClEnqueueFillBuffer(EnqueueFillBuffer {
            common: common(None),
            buffer: 11,
            pattern: vec![7],
            offset: 0,
            size: 4096,
        }),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(ex);
        let _ = tx.send(());
    });
    rx.recv_timeout(std::time::Duration::from_secs(30))
        .expect("dropping the session returned");
}

#[test]
fn abandoning_ends_a_wait_on_the_sessions_own_user_event() {
    // The session serves requests in order, so this wait could only be
    // ended by a later request of its own guest: once the guest is gone,
    // the transport abandons the session from another thread.
    let Some(mut ex) = session(LIMITS) else {
        return;
    };
    setup(&mut ex, vec![]);
    let user = |id| Request::ClCreateUserEvent(CreateUserEvent { id, context: CTX });
    let wait = |id| Request::ClWaitForEvents(WaitForEvents { events: vec![id] });
    ok(&mut ex, user(40));
    let abandon = ex
        .abandoner()
        .expect("OpenCL waits can depend on the guest");
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let r = call(&mut ex, wait(40));
        let _ = tx.send(());
        (ex, r)
    });
    let gap = std::time::Duration::from_millis(300);
    assert!(rx.recv_timeout(gap).is_err(), "the wait ended by itself");
    abandon.abandon();
    rx.recv_timeout(std::time::Duration::from_secs(30))
        .expect("abandoning ended the wait");
    let (mut ex, r) = waiter.join().unwrap();
    assert!(r.is_ok(), "{r:?}");
    // While abandoned, a user event made later cannot hold a wait either.
    ok(&mut ex, user(41));
    assert!(call(&mut ex, wait(41)).is_ok());
    // Resumed (a device reset): user events wait for their guest again.
    abandon.resume();
    ok(&mut ex, user(42));
    let status = info_req(InfoKind::Event, 42, 0, CL_EVENT_COMMAND_EXECUTION_STATUS, 4);
    match ok(&mut ex, status) {
        Response::ClGetInfo(v) => assert_eq!(v.value, 2i32.to_le_bytes(), "CL_SUBMITTED"),
        r => panic!("{r:?}"),
    }
    // Completed and released user events are not held for good.
    for id in 100..400 {
        ok(&mut ex, user(id));
        ok(
            &mut ex,
            Request::ClSetUserEventStatus(SetUserEventStatus {
                event: id,
                status: 0,
            }),
        );
        ok(
            &mut ex,
            Request::ClRelease(Release {
                kind: ObjectKind::Event,
                object: id,
            }),
        );
    }
    assert!(ex.user_events.held() < 200, "{}", ex.user_events.held());
}

#[test]
fn markers_are_held_until_they_complete_and_bounded() {
    let Some(mut ex) = session(LIMITS) else {
        return;
    };
    setup(&mut ex, vec![]);
    let marker = |wait: Vec<Handle>| {
        Request::ClEnqueueMarker(EnqueueMarker {
            common: EnqueueCommon {
                queue: QUEUE,
                wait,
                event: None,
            },
            barrier: false,
        })
    };
    // Markers that complete are let go as more come.
    for _ in 0..1000 {
        ok(&mut ex, marker(vec![]));
    }
    ok(&mut ex, Request::ClFinish(QueueOp { queue: QUEUE }));
    for _ in 0..200 {
        ok(&mut ex, marker(vec![]));
    }
    assert!(ex.markers.held() < 500, "{} held", ex.markers.held());
    // Markers held back by a user event pile up only to the bound.
    ok(
        &mut ex,
        Request::ClCreateUserEvent(CreateUserEvent {
            id: 40,
            context: CTX,
        }),
    );
    let mut refused = None;
    for i in 0..super::super::markers::MAX_PENDING_MARKERS + 10 {
        if let Err(e) = call(&mut ex, marker(vec![40])) {
            refused = Some((i, e));
            break;
        }
    }
    let (at, e) = refused.expect("pending markers were never refused");
    assert_eq!(e, ExecError::Native(CL_OUT_OF_RESOURCES));
    assert!(at <= super::super::markers::MAX_PENDING_MARKERS);
}
