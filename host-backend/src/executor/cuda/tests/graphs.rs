//! Capture and graphs, stream-ordered allocation, stream memory
//! operations and staged module images, checked through the protocol against every CUDA executor: the
//! recording double always, the real executor when a GPU is present.

use protocol::cuda::result::*;
use protocol::cuda::*;
use protocol::{Request, Response};

use super::*;

fn stream(g: &mut Guest<'_>) -> StreamRef {
    let s = g.handle();
    let ctx = g.ctx();
    g.ok(Request::CuStreamCreate(StreamCreate {
        id: s,
        ctx,
        flags: 0,
        priority: 0,
    }));
    StreamRef::Stream(s)
}

fn memset(dst: u64, value: u32, count: u64, stream: StreamRef) -> Request {
    Request::CuMemset(Memset {
        dst,
        value,
        width: MemsetWidth::D32,
        count,
        stream,
    })
}

fn sync(g: &mut Guest<'_>, stream: StreamRef) {
    g.ok(Request::CuStreamSynchronize(StreamOp { stream }));
}

/// Allocations in stream order: usable by copies, freed in order, then
/// unknown.
fn ordered_allocation(g: &mut Guest<'_>) {
    let s = stream(g);
    let Response::CuMemAllocAsync(p) = g.ok(Request::CuMemAllocAsync(MemAllocAsync {
        size: 4096,
        stream: s,
    })) else {
        panic!()
    };
    sync(g, s);
    let data = pattern(4096, 3);
    g.htod(p.ptr, &data, 2).unwrap();
    assert_eq!(g.dtoh(p.ptr, 4096, 1).unwrap(), data);
    let zero = Request::CuMemAllocAsync(MemAllocAsync { size: 0, stream: s });
    assert_eq!(code(g.call(zero)), INVALID_VALUE);
    let inside = Request::CuMemFreeAsync(MemFreeAsync {
        ptr: p.ptr + 8,
        stream: s,
    });
    assert_eq!(code(g.call(inside)), INVALID_VALUE, "not the start");
    let free = Request::CuMemFreeAsync(MemFreeAsync {
        ptr: p.ptr,
        stream: s,
    });
    g.ok(free.clone());
    sync(g, s);
    assert_eq!(code(g.call(free)), INVALID_VALUE, "freed twice");
    assert!(g.dtoh(p.ptr, 4, 1).is_err(), "freed memory is gone");
}

/// A captured memset runs only when its graph is launched, each time.
fn capture_and_replay(g: &mut Guest<'_>) {
    let s = stream(g);
    let buf = g.alloc(4096);
    g.ok(memset(buf, 0x1111_1111, 1024, s));
    sync(g, s);
    let legacy = g.legacy();
    assert_eq!(
        code(g.call(Request::CuStreamBeginCapture(StreamBeginCapture {
            stream: legacy,
            mode: 0
        }))),
        STREAM_CAPTURE_UNSUPPORTED,
        "the legacy stream cannot capture"
    );
    let graph = g.handle();
    assert_eq!(
        code(g.call(Request::CuStreamEndCapture(StreamEndCapture {
            stream: s,
            graph
        }))),
        STREAM_CAPTURE_UNMATCHED
    );
    g.ok(Request::CuStreamBeginCapture(StreamBeginCapture {
        stream: s,
        mode: 2,
    }));
    g.ok(memset(buf, 0x2222_2222, 1024, s));
    // Guest memory copies on a capturing stream are refused.
    let h2d = Request::CuMemcpyHtoD(MemcpyHtoD {
        dst: buf,
        size: 4,
        stream: s,
    });
    let r = call_bulk(g.ex, h2d, &mut [vec![0; 4]], &mut []);
    assert_eq!(code(r), STREAM_CAPTURE_UNSUPPORTED);
    g.ok(Request::CuStreamEndCapture(StreamEndCapture {
        stream: s,
        graph,
    }));
    assert_eq!(
        g.dtoh(buf, 8, 1).unwrap(),
        [0x11; 8],
        "captured work has not run"
    );
    let exec = g.handle();
    let bad_flags = Request::CuGraphInstantiate(GraphInstantiate {
        exec,
        graph,
        flags: 1 << 40,
    });
    assert_eq!(code(g.call(bad_flags)), INVALID_VALUE);
    g.ok(Request::CuGraphInstantiate(GraphInstantiate {
        exec,
        graph,
        flags: 0,
    }));
    g.ok(Request::CuGraphLaunch(GraphLaunch { exec, stream: s }));
    sync(g, s);
    assert_eq!(g.dtoh(buf, 4096, 1).unwrap(), [0x22; 4096], "replayed");
    g.ok(memset(buf, 0, 1024, s));
    g.ok(Request::CuGraphLaunch(GraphLaunch { exec, stream: s }));
    sync(g, s);
    assert_eq!(g.dtoh(buf, 4, 1).unwrap(), [0x22; 4], "replayed again");
    g.ok(Request::CuGraphExecDestroy(GraphOp { graph: exec }));
    g.ok(Request::CuGraphDestroy(GraphOp { graph }));
    let gone = Request::CuGraphLaunch(GraphLaunch { exec, stream: s });
    assert_eq!(code(g.call(gone)), INVALID_HANDLE);
    let gone = Request::CuGraphDestroy(GraphOp { graph });
    assert_eq!(code(g.call(gone)), INVALID_HANDLE);
}

/// Stream memory operations: writes land, a met wait passes, and bad
/// addresses or flags are refused.
fn memory_operations(g: &mut Guest<'_>) {
    let s = stream(g);
    let buf = g.alloc(64);
    let op = |kind, addr, value, flags| {
        Request::CuStreamMemOp(StreamMemOp {
            stream: s,
            kind,
            addr,
            value,
            flags,
        })
    };
    g.ok(op(MemOpKind::Write32, buf, 0x1234_5678_9abc, 0));
    g.ok(op(MemOpKind::Write64, buf + 8, 0x0102_0304_0506_0708, 1));
    // GEQ on a value that is there: it does not block.
    g.ok(op(MemOpKind::Wait32, buf, 0x5678_9abc, 0));
    g.ok(op(MemOpKind::Wait64, buf + 8, 0x0102_0304_0506_0708, 1));
    sync(g, s);
    let back = g.dtoh(buf, 16, 1).unwrap();
    assert_eq!(&back[..4], &0x5678_9abcu32.to_le_bytes(), "the low 32 bits");
    assert_eq!(&back[8..], &0x0102_0304_0506_0708u64.to_le_bytes());
    for bad in [
        op(MemOpKind::Write32, buf + 2, 0, 0),
        op(MemOpKind::Write64, buf + 4, 0, 0),
        op(MemOpKind::Write32, buf + 64, 0, 0),
        op(MemOpKind::Write32, buf, 0, 2),
        op(MemOpKind::Wait32, buf, 0, 1 << 5),
    ] {
        assert_eq!(code(g.call(bad)), INVALID_VALUE);
    }
}

fn stage(g: &mut Guest<'_>, upload: Handle, offset: u64, total: u64, piece: &[u8]) -> i32 {
    let req = Request::CuModuleStage(ModuleStage {
        upload,
        offset,
        total,
    });
    match call_bulk(g.ex, req, &mut [piece.to_vec()], &mut []) {
        Ok(_) => SUCCESS,
        r => code(r),
    }
}

fn load_staged(g: &mut Guest<'_>, upload: Handle, len: u64) -> Result<Response, ExecError> {
    let id = g.handle();
    let ctx = g.ctx();
    g.call(Request::CuModuleLoad(ModuleLoad {
        id,
        ctx,
        kind: ImageKind::Ptx,
        image_len: len,
        options: vec![],
        info_log_len: 0,
        error_log_len: 0,
        upload: Some(upload),
    }))
}

/// An image sent in pieces loads as one sent inline; pieces out of order
/// or an upload the load does not match are refused.
fn staged_images(g: &mut Guest<'_>) {
    let img = VADD_PTX.as_bytes();
    let total = img.len() as u64;
    let third = img.len() / 3;
    let upload = g.handle();
    for (i, piece) in img.chunks(third).enumerate() {
        let at = (i * third) as u64;
        assert_eq!(stage(g, upload, at, total, piece), SUCCESS);
    }
    let Ok(Response::CuModuleLoad(loaded)) = load_staged(g, upload, total) else {
        panic!("staged load")
    };
    assert_eq!(loaded.result, 0);
    // The upload went with the load.
    assert_eq!(code(load_staged(g, upload, total)), INVALID_VALUE);
    // Out of order.
    assert_eq!(stage(g, upload, 0, total, &img[..third]), SUCCESS);
    assert_eq!(
        stage(g, upload, 2 * third as u64, total, &img[2 * third..]),
        INVALID_VALUE
    );
    assert_eq!(code(load_staged(g, upload, total)), INVALID_VALUE);
    // Incomplete, or past its declared end.
    assert_eq!(stage(g, upload, 0, total, &img[..third]), SUCCESS);
    assert_eq!(code(load_staged(g, upload, total)), INVALID_VALUE);
    assert_eq!(stage(g, upload, 0, 4, &img[..third]), INVALID_VALUE);
    // A load naming an upload carries no bulk.
    assert_eq!(stage(g, upload, 0, total, img), SUCCESS);
    let id = g.handle();
    let ctx = g.ctx();
    let req = Request::CuModuleLoad(ModuleLoad {
        id,
        ctx,
        kind: ImageKind::Ptx,
        image_len: total,
        options: vec![],
        info_log_len: 0,
        error_log_len: 0,
        upload: Some(upload),
    });
    assert!(matches!(
        call_bulk(g.ex, req, &mut [img.to_vec()], &mut []),
        Err(ExecError::Protocol(_))
    ));
}

fn run(open: &mut dyn FnMut(SessionLimits) -> Box<dyn Executor>) {
    let mut ex = open(LIMITS);
    let mut g = Guest::new(ex.as_mut());
    ordered_allocation(&mut g);
    capture_and_replay(&mut g);
    memory_operations(&mut g);
    staged_images(&mut g);
    // A context's graphs go with it.
    let mut ex = open(LIMITS);
    let mut g = Guest::new(ex.as_mut());
    let s = stream(&mut g);
    let graph = g.handle();
    g.ok(Request::CuStreamBeginCapture(StreamBeginCapture {
        stream: s,
        mode: 0,
    }));
    g.ok(Request::CuStreamEndCapture(StreamEndCapture {
        stream: s,
        graph,
    }));
    let ctx = g.ctx();
    g.ok(Request::CuCtxDestroy(CtxDestroy { ctx }));
    let gone = Request::CuGraphDestroy(GraphOp { graph });
    assert_eq!(code(g.call(gone)), INVALID_HANDLE);
}

#[test]
fn graphs_on_the_recording_double() {
    run(&mut |limits| Box::new(double(limits)));
}

#[test]
fn graphs_on_the_real_executor() {
    let Some(f) = real_factory("CUDA capture and graphs") else {
        return;
    };
    run(&mut |limits| Box::new(f.open_cuda(limits)));
}
