//! Separate compilation and linking, argument info as the guest asked for
//! it, kernel clones, sub-devices, timers, queues, destructor callbacks,
//! migration, what the device info advertises, and a session that
//! creates and releases many contexts.

use super::*;

const LIB: &str = "int twice(int x) { return 2 * x; }";
const USER: &str = "int twice(int x);
__kernel void k(__global int *out, int v) { out[0] = twice(v); }";
const CL_KERNEL_ARG_NAME: u32 = 0x119A;

fn source(ex: &mut dyn Executor, id: Handle, src: &str) {
    ok(
        ex,
        Request::ClCreateProgramWithSource(CreateProgramWithSource {
            id,
            context: CTX,
            source: src.into(),
        }),
    );
}

fn compile(ex: &mut dyn Executor, program: Handle, options: &str) -> Result<Response, ExecError> {
    call(
        ex,
        Request::ClCompileProgram(CompileProgram {
            program,
            devices: vec![],
            options: options.into(),
            headers: vec![],
            files: Default::default(),
        }),
    )
}

fn link(
    ex: &mut dyn Executor,
    id: Handle,
    programs: Vec<Handle>,
    options: &str,
) -> Result<Response, ExecError> {
    call(
        ex,
        Request::ClLinkProgram(LinkProgram {
            id,
            context: CTX,
            devices: vec![],
            options: options.into(),
            programs,
        }),
    )
}

fn run_k(ex: &mut dyn Executor, kernel_id: Handle, v: i32) -> i32 {
    set_arg(ex, kernel_id, 0, KernelArg::Mem(10)).unwrap();
    set_arg(ex, kernel_id, 1, KernelArg::Bytes(v.to_le_bytes().to_vec())).unwrap();
    ndrange(ex, kernel_id, 1, vec![]).unwrap();
    i32::from_le_bytes(read(ex, 10, 0, 4).try_into().unwrap())
}

#[test]
fn compiled_programs_link_and_run_and_clones_keep_their_arguments() {
    let Some(mut ex) = session(LIMITS) else {
        return;
    };
    setup(&mut ex, vec![]);
    create_buffer(&mut ex, 10, 4).unwrap();
    source(&mut ex, 20, LIB);
    source(&mut ex, 21, USER);
    compile(&mut ex, 20, "-DUNUSED=1 -cl-std=CL1.2").unwrap();
    compile(&mut ex, 21, "").unwrap();
    // Options that read files are refused as the runtime refuses bad ones.
    assert_eq!(
        native_err(compile(&mut ex, 21, "-I /etc")),
        CL_INVALID_COMPILER_OPTIONS
    );
    assert_eq!(
        native_err(link(&mut ex, 22, vec![20, 21], "-L /etc")),
        CL_INVALID_LINKER_OPTIONS
    );
    assert_eq!(native_err(link(&mut ex, 22, vec![], "")), CL_INVALID_VALUE);
    assert_eq!(
        native_err(link(&mut ex, 22, vec![20, 99], "")),
        CL_INVALID_PROGRAM
    );
    // A library, then an executable from it.
    let r = link(&mut ex, 22, vec![20], "-create-library").unwrap();
    assert_eq!(r, Response::ClLinkProgram(Linked { status: 0 }));
    link(&mut ex, 23, vec![22, 21], "").unwrap();
    kernel(&mut ex, 24, 23, "k");
    assert_eq!(run_k(&mut ex, 24, 21), 42);
    // A clone has the arguments set so far, and its own from then on.
    set_arg(&mut ex, 24, 0, KernelArg::Mem(10)).unwrap();
    set_arg(
        &mut ex,
        24,
        1,
        KernelArg::Bytes(5i32.to_le_bytes().to_vec()),
    )
    .unwrap();
    ok(
        &mut ex,
        Request::ClCloneKernel(CloneKernel { id: 25, kernel: 24 }),
    );
    ndrange(&mut ex, 25, 1, vec![]).unwrap();
    assert_eq!(
        i32::from_le_bytes(read(&mut ex, 10, 0, 4).try_into().unwrap()),
        10
    );
    assert_eq!(run_k(&mut ex, 25, 7), 14);
    // An undefined function: the link fails; a runtime that makes a
    // program with the log anyway (POCL 3.1 does not) hands it over for
    // the guest to release.
    source(&mut ex, 26, USER);
    compile(&mut ex, 26, "").unwrap();
    match link(&mut ex, 27, vec![26], "") {
        Err(e) => assert_eq!(e, ExecError::Native(CL_LINK_PROGRAM_FAILURE)),
        Ok(r) => {
            let failed = Linked {
                status: CL_LINK_PROGRAM_FAILURE,
            };
            assert_eq!(r, Response::ClLinkProgram(failed));
            let release = Release {
                kind: ObjectKind::Program,
                object: 27,
            };
            ok(&mut ex, Request::ClRelease(release));
        }
    }
    // Headers are named below the compiler's directory only.
    let h = |name: &str| {
        Request::ClCompileProgram(CompileProgram {
            program: 21,
            devices: vec![],
            options: String::new(),
            headers: vec![(20, name.into())],
            files: Default::default(),
        })
    };
    for bad in ["../h.h", "/etc/passwd", "a/../../b"] {
        assert_eq!(native_err(call(&mut ex, h(bad))), CL_INVALID_VALUE, "{bad}");
    }
}

#[test]
fn argument_info_follows_the_guests_options() {
    let Some(mut ex) = session(LIMITS) else {
        return;
    };
    let d = setup(&mut ex, vec![]);
    let arg_name = |ex: &mut OpenClExecutor, kernel: Handle, index: u64| {
        call(
            ex,
            info_req(InfoKind::KernelArg, kernel, index, CL_KERNEL_ARG_NAME, 64),
        )
    };
    // Built without -cl-kernel-arg-info, as the daemon's own build adds it.
    build(&mut ex, 20, d, USER.replace("twice(v)", "v").as_str()).unwrap();
    kernel(&mut ex, 21, 20, "k");
    assert_eq!(
        native_err(arg_name(&mut ex, 21, 1)),
        CL_KERNEL_ARG_INFO_NOT_AVAILABLE
    );
    assert_eq!(native_err(arg_name(&mut ex, 21, 9)), CL_INVALID_ARG_INDEX);
    // The daemon still tells pointers from values on that kernel.
    assert_eq!(
        native_err(set_arg(&mut ex, 21, 0, KernelArg::Bytes(vec![0x41; 8]))),
        CL_INVALID_MEM_OBJECT
    );
    // Asked for, it is there.
    source(&mut ex, 22, &USER.replace("twice(v)", "v"));
    ok(
        &mut ex,
        Request::ClBuildProgram(BuildProgram {
            program: 22,
            devices: vec![d],
            options: "-cl-kernel-arg-info -w".into(),
            headers: Default::default(),
        }),
    );
    kernel(&mut ex, 23, 22, "k");
    match arg_name(&mut ex, 23, 1).unwrap() {
        Response::ClGetInfo(v) => assert_eq!(cstr(&v.value), "v"),
        r => panic!("{r:?}"),
    }
    // A clone answers as its source does.
    ok(
        &mut ex,
        Request::ClCloneKernel(CloneKernel { id: 24, kernel: 21 }),
    );
    assert_eq!(
        native_err(arg_name(&mut ex, 24, 1)),
        CL_KERNEL_ARG_INFO_NOT_AVAILABLE
    );
    // Linked programs answer as their link options ask.
    source(&mut ex, 25, LIB);
    source(&mut ex, 26, USER);
    compile(&mut ex, 25, "").unwrap();
    compile(&mut ex, 26, "-cl-kernel-arg-info").unwrap();
    link(&mut ex, 27, vec![25, 26], "").unwrap();
    link(&mut ex, 28, vec![25, 26], "-cl-kernel-arg-info").unwrap();
    kernel(&mut ex, 29, 27, "k");
    kernel(&mut ex, 30, 28, "k");
    assert_eq!(
        native_err(arg_name(&mut ex, 29, 0)),
        CL_KERNEL_ARG_INFO_NOT_AVAILABLE
    );
    assert!(arg_name(&mut ex, 30, 0).is_ok());
}

#[test]
fn built_in_il_and_specialization_give_the_runtimes_answers() {
    let Some(mut ex) = session(LIMITS) else {
        return;
    };
    let d = setup(&mut ex, vec![]);
    let names = cstr(&info(&mut ex, InfoKind::Device, d, 0, 0x103F));
    let first = names.split(';').next().unwrap_or_default().to_string();
    let builtins = |ex: &mut OpenClExecutor, names: &str, devices| {
        call(
            ex,
            Request::ClCreateProgramWithBuiltIns(CreateProgramWithBuiltIns {
                id: 20,
                context: CTX,
                devices,
                names: names.into(),
            }),
        )
    };
    if first.is_empty() {
        println!("SKIPPED: the device has no built-in kernels");
    } else {
        builtins(&mut ex, &first, vec![d]).unwrap();
        ok(
            &mut ex,
            Request::ClRelease(Release {
                kind: ObjectKind::Program,
                object: 20,
            }),
        );
    }
    assert_eq!(native_err(builtins(&mut ex, "x", vec![])), CL_INVALID_VALUE);
    // What the runtime says of garbage IL, natively.
    let native_ctx = ex.table.context(CTX).unwrap().get();
    let native = cl3::program::create_program_with_il(native_ctx, b"nope").unwrap_err();
    let r = call(
        &mut ex,
        Request::ClCreateProgramWithIl(CreateProgramWithIl {
            id: 21,
            context: CTX,
            il: b"nope".to_vec(),
        }),
    );
    assert_eq!(native_err(r), native);
    build(&mut ex, 22, d, LIB).unwrap();
    let r = call(
        &mut ex,
        Request::ClSetSpecConstant(SetSpecConstant {
            program: 22,
            spec_id: 1,
            value: vec![0; 4],
        }),
    );
    let raw = ex.table.program(22).unwrap().get();
    let value = 0u32;
    // SAFETY: `raw` is a live program; `value` is 4 readable bytes.
    let native = unsafe {
        cl3::program::set_program_specialization_constant(raw, 1, 4, (&raw const value).cast())
    };
    assert_eq!(
        r.err().map(|e| match e {
            ExecError::Native(c) => c,
            _ => 0,
        }),
        native.err()
    );
}

#[test]
fn sub_devices_are_counted_named_and_released() {
    let Some(mut ex) = session(LIMITS) else {
        return;
    };
    let d = setup(&mut ex, vec![]);
    let max = u32::from_le_bytes(
        info(&mut ex, InfoKind::Device, d, 0, 0x1043)[..4]
            .try_into()
            .unwrap(),
    );
    if max < 2 {
        println!("SKIPPED: the device cannot be partitioned");
        return;
    }
    let before = ex.table.live();
    let part = |count_only, properties| {
        Request::ClCreateSubDevices(CreateSubDevices {
            device: d,
            properties,
            count_only,
        })
    };
    let r = ok(&mut ex, part(true, vec![0x1086, 1, 0]));
    let Response::ClCreateSubDevices(counted) = r else {
        panic!("{r:?}")
    };
    assert!(counted.count >= 2 && counted.handles.is_empty());
    assert_eq!(ex.table.live(), before);
    let r = ok(&mut ex, part(false, vec![0x1086, 1, 0]));
    let Response::ClCreateSubDevices(made) = r else {
        panic!("{r:?}")
    };
    assert_eq!(made.handles.len() as u32, made.count);
    assert_eq!(ex.table.live(), before + made.handles.len());
    let sub = made.handles[0];
    assert!(sub & super::super::handles::DAEMON_HANDLE_BIT != 0);
    // A sub-device names itself and its type of partition.
    let kind = info(&mut ex, InfoKind::Device, sub, 0, 0x1046);
    assert_eq!(&kind[..8], &0x1086u64.to_le_bytes());
    ok(
        &mut ex,
        Request::ClCreateContext(CreateContext {
            id: 50,
            properties: vec![],
            devices: vec![sub],
        }),
    );
    for h in &made.handles {
        ok(
            &mut ex,
            Request::ClRelease(Release {
                kind: ObjectKind::Device,
                object: *h,
            }),
        );
    }
    ok(
        &mut ex,
        Request::ClRelease(Release {
            kind: ObjectKind::Context,
            object: 50,
        }),
    );
    assert_eq!(ex.table.live(), before);
    // Malformed partitions never reach the runtime.
    for props in [vec![0x1086, 1], vec![0x1087, 1, 1], vec![0x9999, 1, 0]] {
        assert_eq!(
            native_err(call(&mut ex, part(false, props))),
            CL_INVALID_VALUE
        );
    }
    assert_eq!(
        native_err(call(
            &mut ex,
            Request::ClRelease(Release {
                kind: ObjectKind::Device,
                object: sub
            })
        )),
        CL_INVALID_DEVICE
    );
}

#[test]
fn queues_timers_callbacks_and_migration_answer_as_the_runtime() {
    let Some(mut ex) = session(LIMITS) else {
        return;
    };
    let d = setup(&mut ex, vec![]);
    let queue = |ex: &mut OpenClExecutor, bits: u64| {
        call(
            ex,
            Request::ClCreateCommandQueue(CreateCommandQueue {
                id: 60,
                context: CTX,
                device: d,
                properties: vec![CL_QUEUE_PROPERTIES, bits, 0],
            }),
        )
    };
    // Device-side queues are valid properties the device does not support
    // (POCL 3.1 would end the daemon); unknown bits are invalid.
    assert_eq!(
        native_err(queue(&mut ex, 1 << 2)),
        CL_INVALID_QUEUE_PROPERTIES
    );
    assert_eq!(
        native_err(queue(&mut ex, (1 << 2) | (1 << 3) | 1)),
        CL_INVALID_QUEUE_PROPERTIES
    );
    assert_eq!(native_err(queue(&mut ex, 1 << 3)), CL_INVALID_VALUE);
    assert_eq!(native_err(queue(&mut ex, 0xFFFF_FFFF)), CL_INVALID_VALUE);
    queue(&mut ex, CL_QUEUE_PROFILING_ENABLE).unwrap();

    let native = cl3::device::get_device_and_host_timer(ex.table.device(d).unwrap());
    let r = call(
        &mut ex,
        Request::ClGetDeviceTimer(GetDeviceTimer {
            device: d,
            host_only: false,
        }),
    );
    match (native, r) {
        (Ok(_), Ok(Response::ClGetDeviceTimer(t))) => assert!(t.host > 0),
        (Err(code), r) => assert_eq!(native_err(r), code),
        (n, r) => panic!("native {n:?}, daemon {r:?}"),
    }

    create_buffer(&mut ex, 10, 64).unwrap();
    let cb = |ex: &mut OpenClExecutor, kind, object| {
        call(
            ex,
            Request::ClSetDestructorCallback(SetDestructorCallback { kind, object }),
        )
    };
    cb(&mut ex, ObjectKind::MemObject, 10).unwrap();
    cb(&mut ex, ObjectKind::MemObject, 10).unwrap();
    cb(&mut ex, ObjectKind::Context, CTX).unwrap();
    assert_eq!(
        native_err(cb(&mut ex, ObjectKind::MemObject, 99)),
        CL_INVALID_MEM_OBJECT
    );
    assert_eq!(
        native_err(cb(&mut ex, ObjectKind::Kernel, 10)),
        CL_INVALID_KERNEL
    );
    build(&mut ex, 20, d, LIB).unwrap();
    let raw = ex.table.program(20).unwrap().get();
    let runtime = cl3::load_library().as_ref().unwrap();
    unsafe extern "C" fn nothing(_: cl3::types::cl_program, _: *mut std::ffi::c_void) {}
    let native = runtime
        .clSetProgramReleaseCallback(raw, Some(nothing), std::ptr::null_mut())
        .unwrap();
    let r = cb(&mut ex, ObjectKind::Program, 20);
    if native == CL_SUCCESS {
        r.unwrap();
    } else {
        assert_eq!(native_err(r), native);
    }

    let migrate = |ex: &mut OpenClExecutor, mems: Vec<Handle>, flags| {
        call(
            ex,
            Request::ClEnqueueMigrate(EnqueueMigrate {
                common: common(None),
                mems,
                flags,
            }),
        )
    };
    migrate(&mut ex, vec![10], 1).unwrap();
    assert_eq!(
        native_err(migrate(&mut ex, vec![10], 0x100)),
        CL_INVALID_VALUE
    );
    assert_eq!(native_err(migrate(&mut ex, vec![], 0)), CL_INVALID_VALUE);
    assert_eq!(
        native_err(migrate(&mut ex, vec![99], 0)),
        CL_INVALID_MEM_OBJECT
    );
}

#[test]
fn device_info_says_only_what_a_session_can_use() {
    let Some(mut ex) = session(LIMITS) else {
        return;
    };
    let d = setup(&mut ex, vec![]);
    let exts = cstr(&info(&mut ex, InfoKind::Device, d, 0, 0x1030));
    for absent in ["cl_khr_command_buffer", "cl_khr_spir", "cl_khr_il_program"] {
        assert!(
            !exts.split_whitespace().any(|e| e == absent),
            "{absent} in {exts}"
        );
    }
    let svm = info(&mut ex, InfoKind::Device, d, 0, 0x1053);
    assert!(svm.iter().all(|&b| b == 0));
    let exec = u64_of(&info(&mut ex, InfoKind::Device, d, 0, 0x1029));
    assert_eq!(exec & 2, 0, "native kernels are not carried");
    let on_device = info(&mut ex, InfoKind::Device, d, 0, 0x104E);
    assert!(on_device.iter().all(|&b| b == 0));
    assert_eq!(
        native_err(call(&mut ex, info_req(InfoKind::Device, d, 0, 0x12A9, 8))),
        CL_INVALID_VALUE
    );
    let platform = platforms(&mut ex)[0];
    let pexts = cstr(&info(&mut ex, InfoKind::Platform, platform, 0, 0x0904));
    assert!(!pexts.contains("cl_pocl_content_size"), "{pexts}");
    // What passes is what the runtime says.
    let raw = ex.table.device(d).unwrap();
    let name = cl3::device::get_device_data(raw, CL_DEVICE_NAME).unwrap();
    assert_eq!(info(&mut ex, InfoKind::Device, d, 0, CL_DEVICE_NAME), name);
}

#[test]
fn memory_flags_read_as_the_guest_created_the_object() {
    let Some(mut ex) = session(LIMITS) else {
        return;
    };
    setup(&mut ex, vec![]);
    let req = Request::ClCreateBuffer(CreateBuffer {
        id: 10,
        context: CTX,
        flags: CL_MEM_READ_WRITE | CL_MEM_USE_HOST_PTR,
        size: 16,
    });
    call_bulk(&mut ex, req, &mut [vec![0; 16]], &mut []).unwrap();
    ok(
        &mut ex,
        Request::ClCreateSubBuffer(CreateSubBuffer {
            id: 11,
            buffer: 10,
            flags: 0,
            origin: 0,
            size: 8,
        }),
    );
    let flags = |ex: &mut OpenClExecutor, h| u64_of(&info(ex, InfoKind::MemObject, h, 0, 0x1101));
    assert_eq!(flags(&mut ex, 10), CL_MEM_READ_WRITE | CL_MEM_USE_HOST_PTR);
    assert_eq!(
        flags(&mut ex, 11) & (CL_MEM_USE_HOST_PTR | CL_MEM_COPY_HOST_PTR),
        CL_MEM_USE_HOST_PTR
    );
    create_buffer(&mut ex, 12, 16).unwrap();
    assert_eq!(flags(&mut ex, 12), CL_MEM_READ_WRITE);
}

/// A session that makes and drops 20,000 contexts, each with a queue, a
/// program and a buffer, holds nothing more at the end than at the start.
#[test]
fn twenty_thousand_contexts_leave_nothing_behind() {
    let Some(mut ex) = session(LIMITS) else {
        return;
    };
    let p = platforms(&mut ex)[0];
    let d = devices(&mut ex, p)[0];
    let start = (ex.table.live(), ex.memory_in_use());
    for i in 0..20_000u64 {
        let base = 100 + i * 4;
        ok(
            &mut ex,
            Request::ClCreateContext(CreateContext {
                id: base,
                properties: vec![],
                devices: vec![d],
            }),
        );
        ok(
            &mut ex,
            Request::ClCreateCommandQueue(CreateCommandQueue {
                id: base + 1,
                context: base,
                device: d,
                properties: vec![],
            }),
        );
        ok(
            &mut ex,
            Request::ClCreateProgramWithSource(CreateProgramWithSource {
                id: base + 2,
                context: base,
                source: LIB.into(),
            }),
        );
        ok(
            &mut ex,
            Request::ClCreateBuffer(CreateBuffer {
                id: base + 3,
                context: base,
                flags: CL_MEM_READ_WRITE,
                size: 4096,
            }),
        );
        for (kind, h) in [
            (ObjectKind::MemObject, base + 3),
            (ObjectKind::Program, base + 2),
            (ObjectKind::CommandQueue, base + 1),
            (ObjectKind::Context, base),
        ] {
            ok(&mut ex, Request::ClRelease(Release { kind, object: h }));
        }
    }
    assert_eq!((ex.table.live(), ex.memory_in_use()), start);
}
