//! The recording double itself: what it records, and the failures it can
//! be told to inject.

use std::sync::Arc;

use protocol::cuda::result::LAUNCH_FAILED;
use protocol::cuda::*;
use protocol::{Opcode, Request};

use super::*;
use crate::executor::ExecutorFactory;
use crate::testing::{Recorder, RecordingCudaDouble, RecordingCudaFactory};

/// `CUDA_ERROR_ILLEGAL_ADDRESS`: what a kernel fault leaves in a context.
const ILLEGAL_ADDRESS: i32 = 700;

#[test]
fn records_launch_parameters_dimensions_and_order() {
    let rec = Arc::new(Recorder::default());
    let mut ex = RecordingCudaDouble::new(LIMITS, rec.clone());
    let session = ex.id();
    let mut g = Guest::new(&mut ex);
    let (m, _) = g.load_ptx(VADD_PTX);
    let (vadd, _) = g.function(m, "vadd");
    let s = g.handle();
    g.ok(Request::CuStreamCreate(StreamCreate {
        id: s,
        ctx: 1,
        flags: 0,
        priority: 0,
    }));
    let buf = g.alloc(64);
    g.htod(buf, b"payload", 2).unwrap();
    let params = vadd_params(buf, buf + 8, buf + 16, 3);
    g.ok(Request::CuLaunchKernel(LaunchKernel {
        function: vadd,
        grid: [7, 2, 1],
        block: [128, 1, 1],
        shared_mem_bytes: 256,
        stream: StreamRef::Stream(s),
        params: params.clone(),
    }));
    g.ok(Request::CuStreamSynchronize(StreamOp {
        stream: StreamRef::Stream(s),
    }));
    let calls = rec.calls();
    let ops: Vec<Opcode> = calls.iter().map(|c| c.request.opcode()).collect();
    assert_eq!(
        ops,
        [
            Opcode::CuInit,
            Opcode::CuCtxCreate,
            Opcode::CuModuleLoad,
            Opcode::CuModuleGetFunction,
            Opcode::CuStreamCreate,
            Opcode::CuMemAlloc,
            Opcode::CuMemcpyHtoD,
            Opcode::CuLaunchKernel,
            Opcode::CuStreamSynchronize,
        ]
    );
    assert!(calls
        .iter()
        .all(|c| c.outcome.is_ok() && c.session == session));
    // The copy's bytes and the image's bytes are recorded, segments joined.
    assert_eq!(calls[6].input, b"payload");
    assert_eq!(calls[2].input, VADD_PTX.as_bytes());
    let [Request::CuLaunchKernel(l)] = &rec.requests(Opcode::CuLaunchKernel)[..] else {
        panic!()
    };
    assert_eq!(l.params, params);
    assert_eq!(
        (l.grid, l.block, l.shared_mem_bytes),
        ([7, 2, 1], [128, 1, 1], 256)
    );
    assert_eq!(l.stream, StreamRef::Stream(s));
    // Emulated memory holds what was copied.
    assert_eq!(g.dtoh(buf, 7, 1).unwrap(), b"payload");
}

#[test]
fn injected_failures_hit_the_chosen_call_only() {
    let f = RecordingCudaFactory::new();
    let rec = f.recorder();
    rec.fail(Opcode::CuMemcpyHtoD, 1, LAUNCH_FAILED);
    let mut ex = f.open(LIMITS).unwrap();
    let mut g = Guest::new(ex.as_mut());
    let p = g.alloc(16);
    g.htod(p, b"first", 1).unwrap();
    assert_eq!(code(g.htod(p, b"second", 1)), LAUNCH_FAILED);
    // The injected failure did not run: the first copy's bytes remain.
    assert_eq!(g.dtoh(p, 5, 1).unwrap(), b"first");
    g.htod(p, b"third", 1).unwrap();
    assert_eq!(g.dtoh(p, 5, 1).unwrap(), b"third");
    let failed: Vec<_> = rec
        .calls()
        .into_iter()
        .filter(|c| c.outcome.is_err())
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].input, b"second");
}

#[test]
fn a_sticky_failure_poisons_that_session_only() {
    let f = RecordingCudaFactory::new();
    let rec = f.recorder();
    rec.fail_sticky(Opcode::CuLaunchKernel, 0, ILLEGAL_ADDRESS);
    let mut ex_a = f.open(LIMITS).unwrap();
    let mut ex_b = f.open(LIMITS).unwrap();
    assert_eq!(rec.live_sessions(), 2);
    let mut a = Guest::new(ex_a.as_mut());
    let (m, _) = a.load_ptx(VADD_PTX);
    let (noop, _) = a.function(m, "noop");
    let launch = Request::CuLaunchKernel(LaunchKernel {
        function: noop,
        grid: [1; 3],
        block: [1; 3],
        shared_mem_bytes: 0,
        stream: a.legacy(),
        params: vec![],
    });
    assert_eq!(code(a.call(launch)), ILLEGAL_ADDRESS);
    // Every later call of that session fails the same way, as a real
    // context does after a fault...
    assert_eq!(
        code(a.call(Request::CuCtxSynchronize(CtxSynchronize { ctx: 1 }))),
        ILLEGAL_ADDRESS
    );
    assert_eq!(
        code(a.call(Request::CuMemAlloc(MemAlloc { ctx: 1, size: 8 }))),
        ILLEGAL_ADDRESS
    );
    // ...while another session carries on.
    let mut b = Guest::new(ex_b.as_mut());
    let p = b.alloc(8);
    b.htod(p, b"fine", 1).unwrap();
    drop(ex_a);
    drop(ex_b);
    assert_eq!(rec.live_sessions(), 0);
    assert_eq!(rec.sessions_opened(), 2);
}

#[test]
fn double_layouts_come_from_the_image_parser() {
    let mut ex = double(LIMITS);
    let mut g = Guest::new(&mut ex);
    let (m, _) = g.load_ptx(crate::executor::cuda::image::tests::PTX);
    let (_, layout) = g.function(m, "mixed");
    let p = |offset, size| ParamInfo { offset, size };
    assert_eq!(layout, Some(vec![p(0, 1), p(8, 24), p(32, 2), p(40, 8)]));
    // A cubin's kernels and globals, from its ELF records.
    let cubin = crate::executor::cuda::image::tests::cubin();
    let id = g.handle();
    let Ok(Response::CuModuleLoad(l)) = call_bulk(
        g.ex,
        Request::CuModuleLoad(ModuleLoad {
            id,
            ctx: 1,
            kind: ImageKind::Cubin,
            image_len: cubin.len() as u64,
            options: vec![JitOption {
                option: 0,
                value: 32,
            }],
            info_log_len: 64,
            error_log_len: 0,
            upload: None,
        }),
        &mut [cubin],
        &mut [],
    ) else {
        panic!()
    };
    assert_eq!(l.result, 0);
    assert!(l.info_log.len() <= 64 && l.error_log.is_empty());
    let (_, layout) = g.function(id, "k");
    assert_eq!(layout, Some(vec![p(0, 8), p(8, 4)]));
    let Response::CuModuleGetGlobal(glob) = g.ok(Request::CuModuleGetGlobal(GetGlobal {
        module: id,
        name: "g".into(),
    })) else {
        panic!()
    };
    assert_eq!(glob.size, 32);
    g.htod(glob.ptr, &[9; 32], 4).unwrap();
    // Context, two modules, two functions, and the vadd... none: six with
    // the global's module counted once.
    let s = ex.session();
    assert_eq!(s.count(CuObjectKind::Module), 2);
    assert_eq!(s.count(CuObjectKind::Function), 2);
    assert_eq!(s.count(CuObjectKind::Context), 1);
    assert_eq!(s.live_objects(), 5);
}

#[test]
fn emulated_memory_is_sparse_and_blocks_never_share_pages() {
    let mut ex = double(LIMITS);
    let mut g = Guest::new(&mut ex);
    let big = g.alloc(8 << 30);
    g.htod(big + (8 << 30) - 4, b"tail", 1).unwrap();
    g.ok(Request::CuMemset(Memset {
        dst: big,
        value: 7,
        width: MemsetWidth::D32,
        count: 4,
        stream: g.legacy(),
    }));
    assert_eq!(g.dtoh(big + (8 << 30) - 4, 4, 1).unwrap(), b"tail");
    assert_eq!(g.dtoh(big + (4 << 30), 4, 1).unwrap(), [0; 4]);
    assert_eq!(g.dtoh(big, 8, 1).unwrap(), [7, 0, 0, 0, 7, 0, 0, 0]);
    // Two small neighbours: freeing one keeps the other's bytes.
    let (a, b) = (g.alloc(100), g.alloc(100));
    g.htod(a, b"first", 1).unwrap();
    g.htod(b, b"second", 1).unwrap();
    g.ok(Request::CuMemFree(MemFree { ptr: a }));
    assert_eq!(g.dtoh(b, 6, 1).unwrap(), b"second");
    // A device copy across pages.
    let c = g.alloc(3 << 16);
    let data = pattern(3 << 16, 4);
    g.htod(c, &data, 2).unwrap();
    let d = g.alloc(3 << 16);
    let stream = g.legacy();
    g.ok(Request::CuMemcpyDtoD(MemcpyDtoD {
        dst: d + 1,
        src: c,
        size: (3 << 16) - 1,
        stream,
    }));
    assert_eq!(
        g.dtoh(d + 1, (3 << 16) - 1, 3).unwrap(),
        data[..(3 << 16) - 1]
    );
    // Only the pages written hold host memory.
    assert!(ex.session().backend().resident_bytes() < 16 << 20);
}

#[test]
fn work_stays_on_the_device_of_its_stream() {
    let f = RecordingCudaFactory::with_devices(2, 1 << 30);
    let mut ex = f.open(LIMITS).unwrap();
    let mut g = Guest::new(ex.as_mut());
    let Response::CuInit(init) = g.ok(Request::CuInit(Init { flags: 0 })) else {
        panic!()
    };
    assert_eq!(init.device_count, 2);
    let ctx1 = g.handle();
    g.ok(Request::CuCtxCreate(CtxCreate {
        id: ctx1,
        device: 1,
        flags: 0,
    }));
    let on0 = g.alloc(64);
    let Response::CuMemAlloc(on1) = g.ok(Request::CuMemAlloc(MemAlloc {
        ctx: ctx1,
        size: 64,
    })) else {
        panic!()
    };
    let on1 = on1.ptr;
    let dev1 = StreamRef::Legacy { ctx: ctx1 };
    // Copies may not cross devices, nor run on another device's stream.
    assert_eq!(
        code(g.call(Request::CuMemcpyDtoD(MemcpyDtoD {
            dst: on1,
            src: on0,
            size: 8,
            stream: dev1
        }))),
        protocol::cuda::result::INVALID_VALUE
    );
    assert_eq!(
        code(g.htod(on1, b"wrong", 1)),
        protocol::cuda::result::INVALID_VALUE
    );
    g.ok(Request::CuMemset(Memset {
        dst: on1,
        value: 1,
        width: MemsetWidth::D8,
        count: 8,
        stream: dev1,
    }));
    // Events record only on their own device's streams.
    let e = g.handle();
    g.ok(Request::CuEventCreate(EventCreate {
        id: e,
        ctx: ctx1,
        flags: 0,
    }));
    let legacy0 = g.legacy();
    assert_eq!(
        code(g.call(Request::CuEventRecord(EventRecord {
            event: e,
            stream: legacy0,
            flags: 0
        }))),
        protocol::cuda::result::INVALID_HANDLE
    );
    g.ok(Request::CuEventRecord(EventRecord {
        event: e,
        stream: dev1,
        flags: 0,
    }));
    // A stream of device 0 may wait for an event of device 1.
    g.ok(Request::CuStreamWaitEvent(StreamWaitEvent {
        stream: legacy0,
        event: e,
        flags: 0,
    }));
    let Response::CuPointerGetAttribute(ord) =
        g.ok(Request::CuPointerGetAttribute(PointerGetAttribute {
            ptr: on1,
            attribute: 9,
        }))
    else {
        panic!()
    };
    assert_eq!(ord.value, 1);
}
