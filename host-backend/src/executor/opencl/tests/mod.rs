//! Tests against the system's OpenCL runtime (POCL in CI), driven the way the
//! session layer drives an executor: requests plus guest segments.
//!
//! `mod.rs` holds the helpers and the functional tests; `guards.rs` the
//! tests of what an untrusted guest must not be able to do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::Ordering;
use std::sync::Arc;

use cl3::error_codes::*;
use protocol::opencl::*;
use protocol::{ProtocolError, Request, Response};

use super::{OpenClExecutor, OpenClFactory};
use crate::executor::{Bulk, ExecError, Executor, ExecutorFactory};
use crate::limits::SessionLimits;
use crate::test_util::call_bulk;

mod guards;
mod images;
mod programs;
mod staging;

const LIMITS: SessionLimits = SessionLimits {
    max_objects: 1000,
    max_device_memory: 0,
};
const CTX: Handle = 1;
const QUEUE: Handle = 2;
const CL_MEM_READ_WRITE: u64 = 1;
const CL_MEM_USE_HOST_PTR: u64 = 1 << 3;
const CL_MEM_COPY_HOST_PTR: u64 = 1 << 5;
const CL_QUEUE_PROPERTIES: u64 = 0x1093;
const CL_QUEUE_PROFILING_ENABLE: u64 = 1 << 1;
const CL_DEVICE_NAME: u32 = 0x102B;
const CL_PLATFORM_NAME: u32 = 0x0902;
const CL_PROGRAM_BUILD_LOG: u32 = 0x1183;
const CL_EVENT_COMMAND_EXECUTION_STATUS: u32 = 0x11D3;
const CL_PROFILING_COMMAND_START: u32 = 0x1282;
const CL_PROFILING_COMMAND_END: u32 = 0x1283;
const CL_MEM_SIZE: u32 = 0x1102;

/// The session under test; `None` (after saying so) without a platform.
fn session(limits: SessionLimits) -> Option<OpenClExecutor> {
    if OpenClFactory::new().is_err() {
        println!("SKIPPED: no OpenCL platform (install pocl-opencl-icd)");
        return None;
    }
    Some(OpenClExecutor::new(limits).unwrap())
}

fn call(ex: &mut dyn Executor, req: Request) -> Result<Response, ExecError> {
    ex.execute(req, &Bulk::default())
}

fn ok(ex: &mut dyn Executor, req: Request) -> Response {
    let what = format!("{:?}", req.opcode());
    call(ex, req).unwrap_or_else(|e| panic!("{what} failed: {e:?}"))
}

fn native_err(r: Result<Response, ExecError>) -> i32 {
    match r {
        Err(ExecError::Native(c)) => c,
        other => panic!("expected a native error, got {other:?}"),
    }
}

fn platforms(ex: &mut dyn Executor) -> Vec<Handle> {
    match ok(ex, Request::ClGetPlatformIds(Empty {})) {
        Response::ClGetPlatformIds(l) => l.handles,
        r => panic!("{r:?}"),
    }
}

fn devices(ex: &mut dyn Executor, platform: Handle) -> Vec<Handle> {
    let req = GetDeviceIds {
        platform,
        device_type: cl3::device::CL_DEVICE_TYPE_ALL,
    };
    match ok(ex, Request::ClGetDeviceIds(req)) {
        Response::ClGetDeviceIds(l) => l.handles,
        r => panic!("{r:?}"),
    }
}

fn info_req(kind: InfoKind, object: Handle, extra: u64, param: u32, size: u64) -> Request {
    Request::ClGetInfo(GetInfo {
        kind,
        object,
        extra,
        param,
        size,
    })
}

/// A full info query: size first, then the value.
fn info(ex: &mut dyn Executor, kind: InfoKind, object: Handle, extra: u64, param: u32) -> Vec<u8> {
    let size = match ok(ex, info_req(kind, object, extra, param, 0)) {
        Response::ClGetInfo(v) => {
            assert!(v.value.is_empty(), "size-only query returned a value");
            v.size
        }
        r => panic!("{r:?}"),
    };
    match ok(ex, info_req(kind, object, extra, param, size)) {
        Response::ClGetInfo(v) => {
            assert_eq!(v.size, size);
            v.value
        }
        r => panic!("{r:?}"),
    }
}

fn cstr(v: &[u8]) -> String {
    String::from_utf8_lossy(v)
        .trim_end_matches('\0')
        .to_string()
}

fn u64_of(v: &[u8]) -> u64 {
    u64::from_le_bytes(v[..8].try_into().unwrap())
}

/// Context `CTX` and queue `QUEUE` on the first device; returns the device.
fn setup(ex: &mut dyn Executor, queue_props: Vec<u64>) -> Handle {
    let p = platforms(ex)[0];
    let d = devices(ex, p)[0];
    ok(
        ex,
        Request::ClCreateContext(CreateContext {
            id: CTX,
            properties: vec![cl3::context::CL_CONTEXT_PLATFORM as u64, p, 0],
            devices: vec![d],
        }),
    );
    ok(
        ex,
        Request::ClCreateCommandQueue(CreateCommandQueue {
            id: QUEUE,
            context: CTX,
            device: d,
            properties: queue_props,
        }),
    );
    d
}

fn create_buffer(ex: &mut dyn Executor, id: Handle, size: u64) -> Result<Response, ExecError> {
    call(
        ex,
        Request::ClCreateBuffer(CreateBuffer {
            id,
            context: CTX,
            flags: CL_MEM_READ_WRITE,
            size,
        }),
    )
}

/// Creates and builds program `id`; the build result is returned.
fn build(
    ex: &mut dyn Executor,
    id: Handle,
    device: Handle,
    source: &str,
) -> Result<Response, ExecError> {
    ok(
        ex,
        Request::ClCreateProgramWithSource(CreateProgramWithSource {
            id,
            context: CTX,
            source: source.into(),
        }),
    );
    call(
        ex,
        Request::ClBuildProgram(BuildProgram {
            program: id,
            devices: vec![device],
            options: String::new(),
            headers: Default::default(),
        }),
    )
}

fn kernel(ex: &mut dyn Executor, id: Handle, program: Handle, name: &str) {
    ok(
        ex,
        Request::ClCreateKernel(CreateKernel {
            id,
            program,
            name: name.into(),
        }),
    );
}

fn set_arg(
    ex: &mut dyn Executor,
    kernel: Handle,
    index: u32,
    arg: KernelArg,
) -> Result<Response, ExecError> {
    call(
        ex,
        Request::ClSetKernelArg(SetKernelArg { kernel, index, arg }),
    )
}

fn common(event: Option<Handle>) -> EnqueueCommon {
    EnqueueCommon {
        queue: QUEUE,
        wait: vec![],
        event,
    }
}

fn write(
    ex: &mut dyn Executor,
    buffer: Handle,
    offset: u64,
    data: Vec<u8>,
) -> Result<Response, ExecError> {
    let req = Request::ClEnqueueWriteBuffer(EnqueueWriteBuffer {
        common: common(None),
        buffer,
        offset,
        size: data.len() as u64,
    });
    call_bulk(ex, req, &mut [data], &mut [])
}

fn read(ex: &mut dyn Executor, buffer: Handle, offset: u64, size: usize) -> Vec<u8> {
    let req = Request::ClEnqueueReadBuffer(EnqueueReadBuffer {
        common: common(None),
        buffer,
        offset,
        size: size as u64,
    });
    let mut out = [vec![0u8; size]];
    call_bulk(ex, req, &mut [], &mut out).unwrap();
    let [out] = out;
    out
}

fn ndrange(
    ex: &mut dyn Executor,
    kernel: Handle,
    global: u64,
    local: Vec<u64>,
) -> Result<Response, ExecError> {
    call(
        ex,
        Request::ClEnqueueNdRange(EnqueueNdRange {
            common: common(None),
            kernel,
            offset: vec![],
            global: vec![global],
            local,
        }),
    )
}

fn floats(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|f| f.to_le_bytes()).collect()
}

const VADD: &str = "__kernel void vadd(__global const float *a, __global const float *b,
                                       __global float *c, uint n) {
    size_t i = get_global_id(0);
    if (i < n) c[i] = a[i] + b[i];
}";

#[test]
fn platforms_and_devices_match_native() {
    let Some(mut ex) = session(LIMITS) else {
        return;
    };
    let ps = platforms(&mut ex);
    let native_ps = cl3::platform::get_platform_ids().unwrap();
    assert_eq!(ps.len(), native_ps.len());
    // Handles are stable within a session.
    assert_eq!(platforms(&mut ex), ps);
    let name = cstr(&info(
        &mut ex,
        InfoKind::Platform,
        ps[0],
        0,
        CL_PLATFORM_NAME,
    ));
    let native_name = opencl3::platform::Platform::new(native_ps[0])
        .name()
        .unwrap();
    assert_eq!(name, native_name);

    let ds = devices(&mut ex, ps[0]);
    let native_ds =
        cl3::device::get_device_ids(native_ps[0], cl3::device::CL_DEVICE_TYPE_ALL).unwrap();
    assert_eq!(ds.len(), native_ds.len());
    assert_eq!(devices(&mut ex, ps[0]), ds);
    let name = cstr(&info(&mut ex, InfoKind::Device, ds[0], 0, CL_DEVICE_NAME));
    let native_name = opencl3::device::Device::new(native_ds[0]).name().unwrap();
    assert_eq!(name, native_name);
    assert!(!name.is_empty());

    // Native size rules: too small a buffer is CL_INVALID_VALUE.
    let r = call(
        &mut ex,
        info_req(InfoKind::Device, ds[0], 0, CL_DEVICE_NAME, 1),
    );
    assert_eq!(native_err(r), CL_INVALID_VALUE);
    // No handle the daemon assigns is an address.
    for h in ps.iter().chain(&ds) {
        assert!(*h & super::handles::DAEMON_HANDLE_BIT != 0);
    }
    assert!(matches!(
        ok(&mut ex, Request::Ping(Empty {})),
        Response::Ping(_)
    ));
}

#[test]
fn vector_add_end_to_end() {
    let Some(mut ex) = session(LIMITS) else {
        return;
    };
    let d = setup(&mut ex, vec![]);
    let n = 1024usize;
    let a: Vec<f32> = (0..n)
        .map(|i| i as f32 * 0.37 + 1.0 / (i as f32 + 1.0))
        .collect();
    let b: Vec<f32> = (0..n).map(|i| (n - i) as f32 * 1.13 - 7.5).collect();
    let bytes = (n * 4) as u64;
    let req = Request::ClCreateBuffer(CreateBuffer {
        id: 10,
        context: CTX,
        flags: CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR,
        size: bytes,
    });
    call_bulk(&mut ex, req, &mut [floats(&a)], &mut []).unwrap();
    create_buffer(&mut ex, 11, bytes).unwrap();
    create_buffer(&mut ex, 12, bytes).unwrap();
    write(&mut ex, 11, 0, floats(&b)).unwrap();
    build(&mut ex, 20, d, VADD).unwrap();
    kernel(&mut ex, 21, 20, "vadd");
    for (i, m) in [10, 11, 12].into_iter().enumerate() {
        set_arg(&mut ex, 21, i as u32, KernelArg::Mem(m)).unwrap();
    }
    // Eight zero bytes on a `uint`: the native size error, as native gives.
    let r = set_arg(&mut ex, 21, 3, KernelArg::NullMem);
    assert_eq!(native_err(r), CL_INVALID_ARG_SIZE);
    set_arg(
        &mut ex,
        21,
        3,
        KernelArg::Bytes((n as u32).to_le_bytes().to_vec()),
    )
    .unwrap();
    ndrange(&mut ex, 21, n as u64, vec![64]).unwrap();
    ok(&mut ex, Request::ClFinish(QueueOp { queue: QUEUE }));
    let c = read(&mut ex, 12, 0, n * 4);
    let expect: Vec<u8> = floats(&a.iter().zip(&b).map(|(x, y)| x + y).collect::<Vec<_>>());
    assert_eq!(
        c, expect,
        "device result differs from the CPU's bit for bit"
    );
    let size = info(&mut ex, InfoKind::MemObject, 12, 0, CL_MEM_SIZE);
    assert_eq!(u64_of(&size), bytes);
}

#[test]
fn build_failure_returns_native_code_and_log() {
    let Some(mut ex) = session(LIMITS) else {
        return;
    };
    let d = setup(&mut ex, vec![]);
    let src = "__kernel void broken(__global int *x) { x[0] = undeclared_thing; }";
    let r = build(&mut ex, 20, d, src);
    assert_eq!(native_err(r), CL_BUILD_PROGRAM_FAILURE);
    let log = cstr(&info(
        &mut ex,
        InfoKind::ProgramBuild,
        20,
        d,
        CL_PROGRAM_BUILD_LOG,
    ));
    assert!(log.contains("undeclared_thing"), "log: {log}");
    // A build log needs a real device.
    let r = call(
        &mut ex,
        info_req(InfoKind::ProgramBuild, 20, 0, CL_PROGRAM_BUILD_LOG, 0),
    );
    assert_eq!(native_err(r), CL_INVALID_DEVICE);
}

#[test]
fn local_memory_argument_works() {
    let Some(mut ex) = session(LIMITS) else {
        return;
    };
    let d = setup(&mut ex, vec![]);
    let src = "__kernel void wg_sum(__global const int *in, __global int *out, __local int *tmp) {
        size_t l = get_local_id(0), n = get_local_size(0);
        tmp[l] = in[get_global_id(0)];
        barrier(CLK_LOCAL_MEM_FENCE);
        if (l == 0) { int s = 0; for (size_t i = 0; i < n; i++) s += tmp[i]; out[get_group_id(0)] = s; }
    }";
    build(&mut ex, 20, d, src).unwrap();
    kernel(&mut ex, 21, 20, "wg_sum");
    let input: Vec<i32> = (0..256).map(|i| i * 3 - 100).collect();
    let bytes: Vec<u8> = input.iter().flat_map(|v| v.to_le_bytes()).collect();
    create_buffer(&mut ex, 10, 1024).unwrap();
    create_buffer(&mut ex, 11, 16).unwrap();
    write(&mut ex, 10, 0, bytes).unwrap();
    set_arg(&mut ex, 21, 0, KernelArg::Mem(10)).unwrap();
    set_arg(&mut ex, 21, 1, KernelArg::Mem(11)).unwrap();
    set_arg(&mut ex, 21, 2, KernelArg::Local(64 * 4)).unwrap();
    ndrange(&mut ex, 21, 256, vec![64]).unwrap();
    let out = read(&mut ex, 11, 0, 16);
    for (g, chunk) in out.chunks(4).enumerate() {
        let got = i32::from_le_bytes(chunk.try_into().unwrap());
        let want: i32 = input[g * 64..(g + 1) * 64].iter().sum();
        assert_eq!(got, want, "group {g}");
    }
}

#[test]
fn sub_buffer_copy_fill_events_and_profiling() {
    let Some(mut ex) = session(LIMITS) else {
        return;
    };
    setup(
        &mut ex,
        vec![CL_QUEUE_PROPERTIES, CL_QUEUE_PROFILING_ENABLE, 0],
    );
    create_buffer(&mut ex, 10, 256).unwrap();
    create_buffer(&mut ex, 11, 256).unwrap();
    let fill = Request::ClEnqueueFillBuffer(EnqueueFillBuffer {
        common: common(Some(30)),
        buffer: 10,
        pattern: vec![0xAB, 0xCD],
        offset: 0,
        size: 256,
    });
    ok(&mut ex, fill);
    ok(
        &mut ex,
        Request::ClCreateSubBuffer(CreateSubBuffer {
            id: 12,
            buffer: 11,
            flags: CL_MEM_READ_WRITE,
            origin: 128,
            size: 128,
        }),
    );
    let copy = Request::ClEnqueueCopyBuffer(EnqueueCopyBuffer {
        common: EnqueueCommon {
            queue: QUEUE,
            wait: vec![30],
            event: Some(31),
        },
        src: 10,
        dst: 12,
        src_offset: 64,
        dst_offset: 0,
        size: 128,
    });
    ok(&mut ex, copy);
    ok(
        &mut ex,
        Request::ClWaitForEvents(WaitForEvents {
            events: vec![30, 31],
        }),
    );
    let whole = read(&mut ex, 11, 0, 256);
    let pattern: Vec<u8> = [0xAB, 0xCD].repeat(64);
    assert_eq!(&whole[128..], &pattern[..]);
    assert_eq!(read(&mut ex, 12, 0, 128), pattern);
    // The sub-buffer keeps its parent alive after the parent is released.
    ok(
        &mut ex,
        Request::ClRelease(Release {
            kind: ObjectKind::MemObject,
            object: 11,
        }),
    );
    assert_eq!(read(&mut ex, 12, 0, 128), pattern);
    for ev in [30, 31] {
        let status = info(
            &mut ex,
            InfoKind::Event,
            ev,
            0,
            CL_EVENT_COMMAND_EXECUTION_STATUS,
        );
        assert_eq!(
            i32::from_le_bytes(status[..4].try_into().unwrap()),
            0,
            "CL_COMPLETE"
        );
        let start = u64_of(&info(
            &mut ex,
            InfoKind::EventProfiling,
            ev,
            0,
            CL_PROFILING_COMMAND_START,
        ));
        let end = u64_of(&info(
            &mut ex,
            InfoKind::EventProfiling,
            ev,
            0,
            CL_PROFILING_COMMAND_END,
        ));
        assert!(start > 0 && start <= end, "start {start} end {end}");
    }
    ok(
        &mut ex,
        Request::ClRelease(Release {
            kind: ObjectKind::Event,
            object: 30,
        }),
    );
    let r = call(
        &mut ex,
        info_req(InfoKind::Event, 30, 0, CL_EVENT_COMMAND_EXECUTION_STATUS, 4),
    );
    assert_eq!(native_err(r), CL_INVALID_EVENT);
}

#[test]
fn use_host_ptr_is_a_copy() {
    let Some(mut ex) = session(LIMITS) else {
        return;
    };
    setup(&mut ex, vec![]);
    let req = Request::ClCreateBuffer(CreateBuffer {
        id: 10,
        context: CTX,
        flags: CL_MEM_USE_HOST_PTR,
        size: 8,
    });
    let mut guest = [vec![7u8; 8]];
    call_bulk(&mut ex, req, &mut guest, &mut []).unwrap();
    guest[0].fill(9);
    assert_eq!(read(&mut ex, 10, 0, 8), vec![7u8; 8]);
    let both = Request::ClCreateBuffer(CreateBuffer {
        id: 11,
        context: CTX,
        flags: CL_MEM_USE_HOST_PTR | CL_MEM_COPY_HOST_PTR,
        size: 8,
    });
    assert_eq!(
        native_err(call_bulk(&mut ex, both, &mut [vec![0; 8]], &mut [])),
        CL_INVALID_VALUE
    );
}

#[test]
fn user_events_gate_commands_and_drop_does_not_hang() {
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
    let marker = |wait: Handle, event| {
        Request::ClEnqueueMarker(EnqueueMarker {
            common: EnqueueCommon {
                queue: QUEUE,
                wait: vec![wait],
                event: Some(event),
            },
            barrier: true,
        })
    };
    ok(&mut ex, marker(40, 41));
    ok(&mut ex, Request::ClFlush(QueueOp { queue: QUEUE }));
    let status = |ex: &mut OpenClExecutor, ev| {
        let v = info(
            ex,
            InfoKind::Event,
            ev,
            0,
            CL_EVENT_COMMAND_EXECUTION_STATUS,
        );
        i32::from_le_bytes(v[..4].try_into().unwrap())
    };
    assert!(
        status(&mut ex, 41) > 0,
        "the barrier waits for the user event"
    );
    ok(
        &mut ex,
        Request::ClSetUserEventStatus(SetUserEventStatus {
            event: 40,
            status: 0,
        }),
    );
    ok(
        &mut ex,
        Request::ClWaitForEvents(WaitForEvents { events: vec![41] }),
    );
    assert_eq!(status(&mut ex, 41), 0);
    // A user event left pending (even released) must not wedge teardown.
    ok(
        &mut ex,
        Request::ClCreateUserEvent(CreateUserEvent {
            id: 42,
            context: CTX,
        }),
    );
    ok(&mut ex, marker(42, 43));
    ok(
        &mut ex,
        Request::ClRelease(Release {
            kind: ObjectKind::Event,
            object: 42,
        }),
    );
    create_buffer(&mut ex, 10, 1024).unwrap();
    let pool = Arc::clone(&ex.memory);
    assert_eq!(pool.load(Ordering::Relaxed), 1024);
    drop(ex);
    assert_eq!(pool.load(Ordering::Relaxed), 0, "every buffer was released");
    assert_eq!(Arc::strong_count(&pool), 1);
}

#[test]
fn dropping_a_session_releases_everything() {
    let Some(mut ex) = session(LIMITS) else {
        return;
    };
    let d = setup(&mut ex, vec![]);
    build(&mut ex, 20, d, VADD).unwrap();
    kernel(&mut ex, 21, 20, "vadd");
    create_buffer(&mut ex, 10, 4096).unwrap();
    ok(
        &mut ex,
        Request::ClCreateSubBuffer(CreateSubBuffer {
            id: 11,
            buffer: 10,
            flags: 0,
            origin: 0,
            size: 1024,
        }),
    );
    set_arg(&mut ex, 21, 0, KernelArg::Mem(11)).unwrap();
    // Observe the context from outside the session: the runtime's count of
    // references drops by the session's when the session goes.
    let ctx = ex.table.context(CTX).unwrap().get();
    // SAFETY: `ctx` is live (the session holds it); the extra reference
    // taken here is given back below.
    unsafe { cl3::context::retain_context(ctx) }.unwrap();
    let refs = |c| {
        cl3::context::get_context_info(c, cl3::context::CL_CONTEXT_REFERENCE_COUNT)
            .unwrap()
            .to_uint()
    };
    assert!(refs(ctx) > 1);
    let pool = Arc::clone(&ex.memory);
    drop(ex);
    assert_eq!(refs(ctx), 1, "only the test's own reference is left");
    assert_eq!(pool.load(Ordering::Relaxed), 0);
    // SAFETY: gives back the reference taken above; `ctx` is not used again.
    unsafe { cl3::context::release_context(ctx) }.unwrap();
}

#[test]
fn factory_opens_independent_sessions() {
    let Ok(factory) = OpenClFactory::new() else {
        println!("SKIPPED: no OpenCL platform (install pocl-opencl-icd)");
        return;
    };
    assert_eq!(factory.name(), "opencl");
    let mut a = factory.open(LIMITS).unwrap();
    let mut b = factory.open(LIMITS).unwrap();
    setup(a.as_mut(), vec![]);
    // Session b knows nothing of a's objects.
    let r = call(b.as_mut(), Request::ClFinish(QueueOp { queue: QUEUE }));
    assert_eq!(native_err(r), CL_INVALID_COMMAND_QUEUE);
    assert_eq!(platforms(a.as_mut()), platforms(b.as_mut()));
}
