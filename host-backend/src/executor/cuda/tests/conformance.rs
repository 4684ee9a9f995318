//! What every CUDA executor must do, checked through the protocol only.
//! Kernel results are not checked here (the double runs no code); the
//! GPU-only tests do that.

use protocol::cuda::result::*;
use protocol::cuda::*;
use protocol::{Request, Response};

use super::*;

/// Initialization and device queries.
fn devices(ex: &mut dyn Executor) {
    assert_eq!(
        code(call(
            ex,
            Request::CuCtxSynchronize(CtxSynchronize { ctx: 1 })
        )),
        NOT_INITIALIZED
    );
    assert_eq!(
        code(call(ex, Request::CuInit(Init { flags: 1 }))),
        INVALID_VALUE
    );
    let Response::CuInit(init) = ok(ex, Request::CuInit(Init { flags: 0 })) else {
        panic!()
    };
    assert!(init.device_count >= 1);
    assert!(init.driver_version >= 12000, "{}", init.driver_version);
    let Response::CuDeviceGetInfo(info) =
        ok(ex, Request::CuDeviceGetInfo(DeviceQuery { device: 0 }))
    else {
        panic!()
    };
    assert!(!info.name.is_empty());
    assert!(info.total_mem > 0);
    let attr = |a: i32| {
        info.attributes
            .iter()
            .find(|x| x.attribute == a)
            .map(|x| x.value)
    };
    assert!(
        attr(75).is_some_and(|major| major >= 5),
        "compute capability"
    );
    assert_eq!(attr(10), Some(32), "warp size");
    assert_eq!(
        code(call(
            ex,
            Request::CuDeviceGetInfo(DeviceQuery {
                device: init.device_count
            })
        )),
        INVALID_DEVICE
    );
}

/// Allocations, copies in and out through several segments, device copies,
/// memsets, pointer attributes.
fn memory(g: &mut Guest<'_>) {
    let n = (1 << 20) + 3;
    let a = g.alloc(n as u64);
    let b = g.alloc(n as u64);
    let data = pattern(n, 7);
    g.htod(a, &data, 3).unwrap();
    assert_eq!(g.dtoh(a, n, 2).unwrap(), data);
    // A sub-range at an odd offset.
    g.htod(a + 5, b"hello", 1).unwrap();
    assert_eq!(
        g.dtoh(a + 3, 9, 4).unwrap(),
        [&data[3..5], b"hello", &data[10..12]].concat()
    );
    // Device to device.
    let stream = g.legacy();
    g.ok(Request::CuMemcpyDtoD(MemcpyDtoD {
        dst: b,
        src: a,
        size: n as u64,
        stream,
    }));
    let mut expect = data.clone();
    expect[5..10].copy_from_slice(b"hello");
    assert_eq!(g.dtoh(b, n, 1).unwrap(), expect);
    // Memsets of each width.
    for (width, value, bytes) in [
        (MemsetWidth::D8, 0xAB, vec![0xAB; 8]),
        (MemsetWidth::D16, 0xBEEF, [0xEF, 0xBE].repeat(4)),
        (MemsetWidth::D32, 0x0102_0304, [4, 3, 2, 1].repeat(2)),
    ] {
        g.ok(Request::CuMemset(Memset {
            dst: b + 64,
            value,
            width,
            count: 8 / width.bytes(),
            stream,
        }));
        assert_eq!(g.dtoh(b + 64, 8, 1).unwrap(), bytes, "{width:?}");
    }
    assert_eq!(g.dtoh(b + 72, 4, 1).unwrap(), &expect[72..76]);
    // Zero-length copies check only their stream.
    g.htod(0xdead_0000, &[], 1).unwrap();
    // Pointer attributes come from the session's records.
    let attr = |g: &mut Guest<'_>, ptr, attribute| match g.ok(Request::CuPointerGetAttribute(
        PointerGetAttribute { ptr, attribute },
    )) {
        Response::CuPointerGetAttribute(v) => v.value,
        r => panic!("{r:?}"),
    };
    assert_eq!(attr(g, a + 100, 11), a); // RANGE_START_ADDR
    assert_eq!(attr(g, a + 100, 12), n as u64); // RANGE_SIZE
    assert_eq!(attr(g, a + 100, 1), g.ctx()); // CONTEXT
    assert_eq!(attr(g, a + 100, 2), 2); // MEMORY_TYPE = DEVICE
    assert_eq!(attr(g, a + 100, 9), 0); // DEVICE_ORDINAL
    assert_ne!(attr(g, a, 7), attr(g, b, 7)); // BUFFER_ID
    for p in [a, b] {
        g.ok(Request::CuMemFree(MemFree { ptr: p }));
    }
    assert_eq!(code(g.htod(a, b"x", 1)), INVALID_VALUE);
}

/// Copies large enough to cross several staging chunks, in both directions.
fn large_copies(g: &mut Guest<'_>) {
    let n = (9 << 20) + 17;
    let p = g.alloc(n as u64);
    let data = pattern(n, 3);
    g.htod(p, &data, 5).unwrap();
    let back = g.dtoh(p, n, 3).unwrap();
    assert!(back == data, "large round trip differs");
    g.ok(Request::CuMemFree(MemFree { ptr: p }));
}

/// Module loads, kernels, globals, launches and their checks.
fn modules(g: &mut Guest<'_>) {
    let (m, loaded) = g.load_ptx(VADD_PTX);
    assert_eq!(
        loaded.result,
        0,
        "{:?}",
        String::from_utf8_lossy(&loaded.error_log)
    );
    let (vadd, layout) = g.function(m, "vadd");
    let p = |offset, size| ParamInfo { offset, size };
    assert_eq!(layout, Some(vec![p(0, 8), p(8, 8), p(16, 8), p(24, 4)]));
    let (noop, layout) = g.function(m, "noop");
    assert_eq!(layout, Some(vec![]));
    let id = g.handle();
    assert_eq!(
        code(g.call(Request::CuModuleGetFunction(GetFunction {
            id,
            module: m,
            name: "missing".into()
        }))),
        NOT_FOUND
    );
    // The global is a range copies may use while the module lives.
    let Response::CuModuleGetGlobal(bias) = g.ok(Request::CuModuleGetGlobal(GetGlobal {
        module: m,
        name: "bias".into(),
    })) else {
        panic!()
    };
    assert_eq!(bias.size, 4);
    g.htod(bias.ptr, &0.5f32.to_le_bytes(), 1).unwrap();
    assert_eq!(g.dtoh(bias.ptr, 4, 1).unwrap(), 0.5f32.to_le_bytes());
    assert_eq!(code(g.htod(bias.ptr, &[0; 5], 1)), INVALID_VALUE);
    // Launches: the buffer must match the layout; dimensions must not be 0.
    let buf = g.alloc(1024);
    let stream = g.legacy();
    let launch = |f, params: Vec<u8>, grid| {
        Request::CuLaunchKernel(LaunchKernel {
            function: f,
            grid: [grid, 1, 1],
            block: [32, 1, 1],
            shared_mem_bytes: 0,
            stream,
            params,
        })
    };
    g.ok(launch(vadd, vadd_params(buf, buf, buf, 0), 1));
    g.ok(launch(noop, vec![], 4));
    let mut short = vadd_params(buf, buf, buf, 0);
    short.pop();
    assert_eq!(code(g.call(launch(vadd, short, 1))), INVALID_VALUE);
    assert_eq!(code(g.call(launch(noop, vec![0; 4], 1))), INVALID_VALUE);
    assert_eq!(
        code(g.call(launch(vadd, vadd_params(buf, buf, buf, 0), 0))),
        INVALID_VALUE
    );
    g.ok(Request::CuCtxSynchronize(CtxSynchronize { ctx: g.ctx() }));
    // Function attributes and occupancy.
    let Response::CuFuncGetAttribute(max) = g.ok(Request::CuFuncGetAttribute(FuncGetAttribute {
        function: vadd,
        attribute: 0,
    })) else {
        panic!()
    };
    assert!(max.value >= 32);
    g.ok(Request::CuFuncSetAttribute(FuncSetAttribute {
        function: vadd,
        attribute: 8,
        value: 1024,
    }));
    assert_eq!(
        code(g.call(Request::CuFuncSetAttribute(FuncSetAttribute {
            function: vadd,
            attribute: 0,
            value: 1
        }))),
        INVALID_VALUE
    );
    assert_eq!(
        code(g.call(Request::CuFuncGetAttribute(FuncGetAttribute {
            function: vadd,
            attribute: 99
        }))),
        INVALID_VALUE
    );
    g.ok(Request::CuFuncSetCacheConfig(FuncSetCacheConfig {
        function: vadd,
        config: 1,
    }));
    let Response::CuOccupancyMaxActiveBlocks(blocks) = g.ok(Request::CuOccupancyMaxActiveBlocks(
        OccupancyMaxActiveBlocks {
            function: vadd,
            block_size: 256,
            dynamic_smem: 0,
            flags: 0,
        },
    )) else {
        panic!()
    };
    assert!(blocks.value > 0);
    for smem in [
        DynamicSmem::Fixed(0),
        DynamicSmem::PerBlockSize(vec![0, 64, 128]),
    ] {
        let Response::CuOccupancyMaxPotentialBlockSize(pb) = g.ok(
            Request::CuOccupancyMaxPotentialBlockSize(OccupancyMaxPotentialBlockSize {
                function: vadd,
                dynamic_smem: smem,
                block_size_limit: 512,
                flags: 0,
            }),
        ) else {
            panic!()
        };
        assert!(
            pb.block_size > 0 && pb.block_size <= 512 && pb.block_size % 32 == 0,
            "{pb:?}"
        );
        assert!(pb.min_grid_size > 0);
    }
    let Response::CuOccupancyAvailableDynamicSmem(avail) = g.ok(
        Request::CuOccupancyAvailableDynamicSmem(OccupancyAvailableDynamicSmem {
            function: vadd,
            num_blocks: 2,
            block_size: 128,
        }),
    ) else {
        panic!()
    };
    assert!(avail.value > 0);
    // Unloading takes the functions and the global's range with it.
    g.ok(Request::CuModuleUnload(ModuleUnload { module: m }));
    assert_eq!(code(g.call(launch(noop, vec![], 1))), INVALID_HANDLE);
    assert_eq!(code(g.htod(bias.ptr, &[0; 4], 1)), INVALID_VALUE);
    g.ok(Request::CuMemFree(MemFree { ptr: buf }));
    // A PTX image that does not compile reports its failure in the reply.
    let (_, bad) = g.load_ptx(".version 7.0\n.target sm_50\nthis is not ptx");
    assert_eq!(bad.result, INVALID_PTX);
}

/// Streams and events.
fn streams(g: &mut Guest<'_>) {
    let s = g.handle();
    g.ok(Request::CuStreamCreate(StreamCreate {
        id: s,
        ctx: g.ctx(),
        flags: 1,
        priority: 0,
    }));
    let (e1, e2) = (g.handle(), g.handle());
    for e in [e1, e2] {
        g.ok(Request::CuEventCreate(EventCreate {
            id: e,
            ctx: g.ctx(),
            flags: 0,
        }));
    }
    let stream = StreamRef::Stream(s);
    g.ok(Request::CuEventRecord(EventRecord {
        event: e1,
        stream,
        flags: 0,
    }));
    let buf = g.alloc(4096);
    g.ok(Request::CuMemset(Memset {
        dst: buf,
        value: 1,
        width: MemsetWidth::D32,
        count: 1024,
        stream,
    }));
    g.ok(Request::CuEventRecord(EventRecord {
        event: e2,
        stream,
        flags: 0,
    }));
    let legacy = g.legacy();
    g.ok(Request::CuStreamWaitEvent(StreamWaitEvent {
        stream: legacy,
        event: e2,
        flags: 0,
    }));
    g.ok(Request::CuEventSynchronize(EventOp { event: e2 }));
    g.ok(Request::CuEventQuery(EventOp { event: e2 }));
    g.ok(Request::CuStreamSynchronize(StreamOp { stream }));
    g.ok(Request::CuStreamQuery(StreamOp { stream }));
    let Response::CuEventElapsedTime(t) = g.ok(Request::CuEventElapsedTime(EventElapsedTime {
        start: e1,
        end: e2,
    })) else {
        panic!()
    };
    assert!(t.millis() >= 0.0 && t.millis() < 10_000.0, "{}", t.millis());
    // The per-thread default stream works like any other.
    let per_thread = StreamRef::PerThread { ctx: g.ctx() };
    g.ok(Request::CuMemset(Memset {
        dst: buf,
        value: 2,
        width: MemsetWidth::D8,
        count: 4,
        stream: per_thread,
    }));
    g.ok(Request::CuStreamSynchronize(StreamOp {
        stream: per_thread,
    }));
    assert_eq!(g.dtoh(buf, 8, 1).unwrap(), [2, 2, 2, 2, 1, 0, 0, 0]);
    g.ok(Request::CuEventDestroy(EventOp { event: e1 }));
    g.ok(Request::CuStreamDestroy(StreamDestroy { stream: s }));
    assert_eq!(
        code(g.call(Request::CuStreamSynchronize(StreamOp { stream }))),
        INVALID_HANDLE
    );
    g.ok(Request::CuMemFree(MemFree { ptr: buf }));
}

/// Destroying a context frees what was made under it; memory info is
/// capped by the session's limit.
fn contexts(ex: &mut dyn Executor) {
    let mut g = Guest::new(ex);
    let ctx2 = g.handle();
    g.ok(Request::CuCtxCreate(CtxCreate {
        id: ctx2,
        device: 0,
        flags: 4,
    }));
    let Response::CuMemAlloc(p) = g.ok(Request::CuMemAlloc(MemAlloc {
        ctx: ctx2,
        size: 4096,
    })) else {
        panic!()
    };
    let s = g.handle();
    g.ok(Request::CuStreamCreate(StreamCreate {
        id: s,
        ctx: ctx2,
        flags: 0,
        priority: 0,
    }));
    g.ok(Request::CuCtxDestroy(CtxDestroy { ctx: ctx2 }));
    assert_eq!(code(g.htod(p.ptr, b"gone", 1)), INVALID_VALUE);
    assert_eq!(
        code(g.call(Request::CuStreamSynchronize(StreamOp {
            stream: StreamRef::Stream(s)
        }))),
        INVALID_HANDLE
    );
    assert_eq!(
        code(g.call(Request::CuCtxSynchronize(CtxSynchronize { ctx: ctx2 }))),
        INVALID_CONTEXT
    );
    // The first context is unaffected.
    let q = g.alloc(16);
    g.htod(q, b"still here", 1).unwrap();
    let Response::CuMemGetInfo(info) = g.ok(Request::CuMemGetInfo(MemGetInfo { ctx: g.ctx() }))
    else {
        panic!()
    };
    assert!(info.free <= info.total && info.total > 0);
}

/// Context limits and stream priorities.
fn limits(g: &mut Guest<'_>) {
    let ctx = g.ctx();
    let get = |limit| {
        Request::CuCtxLimit(CtxLimit {
            ctx,
            limit,
            value: None,
        })
    };
    // CU_LIMIT_MALLOC_HEAP_SIZE: set, then read back.
    let Response::CuCtxLimit(v) = g.ok(get(2)) else {
        panic!()
    };
    assert!(v.value > 0);
    let Response::CuCtxLimit(set) = g.ok(Request::CuCtxLimit(CtxLimit {
        ctx,
        limit: 2,
        value: Some(v.value * 2),
    })) else {
        panic!()
    };
    assert_eq!(set.value, v.value * 2);
    assert_eq!(g.ok(get(2)), Response::CuCtxLimit(set));
    assert_eq!(code(g.call(get(99))), UNSUPPORTED_LIMIT);
    let Response::CuCtxStreamPriorityRange(p) =
        g.ok(Request::CuCtxStreamPriorityRange(CtxPriorityRange { ctx }))
    else {
        panic!()
    };
    assert!(p.greatest <= p.least, "{p:?}");
    let bad = Request::CuCtxStreamPriorityRange(CtxPriorityRange { ctx: 999 });
    assert_eq!(code(g.call(bad)), INVALID_CONTEXT);
}

/// Runs every check against executors made by `open`.
pub(super) fn run(open: &mut dyn FnMut(SessionLimits) -> Box<dyn Executor>) {
    devices(open(LIMITS).as_mut());
    let mut ex = open(LIMITS);
    let mut g = Guest::new(ex.as_mut());
    memory(&mut g);
    large_copies(&mut g);
    modules(&mut g);
    streams(&mut g);
    limits(&mut g);
    contexts(open(LIMITS).as_mut());
    // The memory limit shapes what the guest is told.
    let limited = SessionLimits {
        max_objects: 100,
        max_device_memory: 1 << 20,
    };
    let mut ex = open(limited);
    let mut g = Guest::new(ex.as_mut());
    g.alloc(1000);
    let Response::CuMemGetInfo(info) = g.ok(Request::CuMemGetInfo(MemGetInfo { ctx: g.ctx() }))
    else {
        panic!()
    };
    assert_eq!(info.total, 1 << 20);
    assert_eq!(info.free, (1 << 20) - 1000);
    let Response::CuDeviceGetInfo(d) = g.ok(Request::CuDeviceGetInfo(DeviceQuery { device: 0 }))
    else {
        panic!()
    };
    assert_eq!(d.total_mem, 1 << 20);
}

#[test]
fn conformance_on_the_recording_double() {
    run(&mut |limits| Box::new(double(limits)));
}

#[test]
fn conformance_on_the_real_executor() {
    let Some(f) = real_factory("CUDA conformance") else {
        return;
    };
    run(&mut |limits| Box::new(f.open_cuda(limits)));
}
