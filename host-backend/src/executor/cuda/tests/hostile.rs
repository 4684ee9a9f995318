//! An untrusted guest: forged handles, device pointers it does not own,
//! ranges past an allocation, lengths that do not add up, and limits. Each
//! gets the right `CUresult` (or protocol error), and the session carries on.

use protocol::cuda::result::*;
use protocol::cuda::*;
use protocol::{ProtocolError, Request};

use super::*;

fn protocol_err(r: Result<Response, ExecError>) -> ProtocolError {
    match r {
        Err(ExecError::Protocol(p)) => p,
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

/// The session still does real work after the abuse.
fn still_works(g: &mut Guest<'_>) {
    let p = g.alloc(64);
    g.htod(p, b"alive", 1).unwrap();
    assert_eq!(g.dtoh(p, 5, 1).unwrap(), b"alive");
    g.ok(Request::CuMemFree(MemFree { ptr: p }));
}

fn forged_handles(g: &mut Guest<'_>) {
    let ctx = g.ctx();
    let s = g.handle();
    g.ok(Request::CuStreamCreate(StreamCreate {
        id: s,
        ctx,
        flags: 0,
        priority: 0,
    }));
    // Zero and duplicate new handles, of every creatable kind.
    for id in [0, ctx, s] {
        assert_eq!(
            code(g.call(Request::CuCtxCreate(CtxCreate {
                id,
                device: 0,
                flags: 0
            }))),
            INVALID_HANDLE
        );
        assert_eq!(
            code(g.call(Request::CuEventCreate(EventCreate { id, ctx, flags: 0 }))),
            INVALID_HANDLE
        );
        assert_eq!(
            code(g.call(Request::CuStreamCreate(StreamCreate {
                id,
                ctx,
                flags: 0,
                priority: 0
            }))),
            INVALID_HANDLE
        );
    }
    // Wrong kinds and unknown numbers.
    assert_eq!(
        code(g.call(Request::CuMemAlloc(MemAlloc { ctx: s, size: 8 }))),
        INVALID_CONTEXT
    );
    assert_eq!(
        code(g.call(Request::CuStreamSynchronize(StreamOp {
            stream: StreamRef::Stream(ctx)
        }))),
        INVALID_HANDLE
    );
    assert_eq!(
        code(g.call(Request::CuStreamSynchronize(StreamOp {
            stream: StreamRef::Legacy { ctx: 0xdead }
        }))),
        INVALID_CONTEXT
    );
    assert_eq!(
        code(g.call(Request::CuEventRecord(EventRecord {
            event: s,
            stream: StreamRef::Stream(s),
            flags: 0
        }))),
        INVALID_HANDLE
    );
    assert_eq!(
        code(g.call(Request::CuLaunchKernel(LaunchKernel {
            function: s,
            grid: [1; 3],
            block: [1; 3],
            shared_mem_bytes: 0,
            stream: StreamRef::Stream(s),
            params: vec![],
        }))),
        INVALID_HANDLE
    );
    assert_eq!(
        code(g.call(Request::CuModuleUnload(ModuleUnload { module: ctx }))),
        INVALID_HANDLE
    );
    assert_eq!(
        code(g.call(Request::CuCtxDestroy(CtxDestroy { ctx: s }))),
        INVALID_CONTEXT
    );
    assert_eq!(
        code(g.call(Request::CuCtxCreate(CtxCreate {
            id: 999,
            device: 77,
            flags: 0
        }))),
        INVALID_DEVICE
    );
    // Bad flags.
    assert_eq!(
        code(g.call(Request::CuCtxCreate(CtxCreate {
            id: 998,
            device: 0,
            flags: 0x100
        }))),
        INVALID_VALUE
    );
    assert_eq!(
        code(g.call(Request::CuStreamCreate(StreamCreate {
            id: 998,
            ctx,
            flags: 2,
            priority: 0
        }))),
        INVALID_VALUE
    );
    assert_eq!(
        code(g.call(Request::CuEventCreate(EventCreate {
            id: 998,
            ctx,
            flags: 4
        }))),
        NOT_SUPPORTED
    );
    g.ok(Request::CuStreamDestroy(StreamDestroy { stream: s }));
    assert_eq!(
        code(g.call(Request::CuStreamDestroy(StreamDestroy { stream: s }))),
        INVALID_HANDLE
    );
}

fn forged_pointers(g: &mut Guest<'_>) {
    let a = g.alloc(256);
    let b = g.alloc(256);
    let stream = g.legacy();
    // Past the end, wrapping, nowhere, and straddling two allocations.
    assert_eq!(code(g.htod(a + 255, &[1, 2], 1)), INVALID_VALUE);
    assert_eq!(code(g.htod(u64::MAX - 1, &[1; 4], 1)), INVALID_VALUE);
    assert_eq!(code(g.htod(0x1000, &[1; 4], 1)), INVALID_VALUE);
    assert_eq!(
        code(
            g.dtoh(a.wrapping_sub(1), 4, 1)
                .map(|_| Response::Ping(Empty {}))
        ),
        INVALID_VALUE
    );
    let (lo, hi) = (a.min(b), a.max(b));
    assert_eq!(
        code(g.call(Request::CuMemcpyDtoD(MemcpyDtoD {
            dst: lo,
            src: hi,
            size: hi - lo + 1,
            stream
        }))),
        INVALID_VALUE
    );
    assert_eq!(
        code(g.call(Request::CuMemcpyDtoD(MemcpyDtoD {
            dst: a,
            src: b + 200,
            size: 100,
            stream
        }))),
        INVALID_VALUE
    );
    // Memsets: element counts that overflow, misaligned wide elements.
    assert_eq!(
        code(g.call(Request::CuMemset(Memset {
            dst: a,
            value: 0,
            width: MemsetWidth::D32,
            count: u64::MAX / 2,
            stream
        }))),
        INVALID_VALUE
    );
    assert_eq!(
        code(g.call(Request::CuMemset(Memset {
            dst: a,
            value: 0,
            width: MemsetWidth::D32,
            count: 65,
            stream
        }))),
        INVALID_VALUE
    );
    assert_eq!(
        code(g.call(Request::CuMemset(Memset {
            dst: a + 1,
            value: 0,
            width: MemsetWidth::D16,
            count: 1,
            stream
        }))),
        INVALID_VALUE
    );
    // Frees of interior pointers, unknown pointers, and twice.
    for ptr in [a + 8, 0, u64::MAX] {
        assert_eq!(
            code(g.call(Request::CuMemFree(MemFree { ptr }))),
            INVALID_VALUE
        );
    }
    g.ok(Request::CuMemFree(MemFree { ptr: a }));
    assert_eq!(
        code(g.call(Request::CuMemFree(MemFree { ptr: a }))),
        INVALID_VALUE
    );
    assert_eq!(code(g.htod(a, b"late", 1)), INVALID_VALUE);
    assert_eq!(
        code(g.call(Request::CuPointerGetAttribute(PointerGetAttribute {
            ptr: a,
            attribute: 1
        }))),
        INVALID_VALUE
    );
    g.ok(Request::CuMemFree(MemFree { ptr: b }));
}

fn lengths_that_do_not_add_up(g: &mut Guest<'_>) {
    let a = g.alloc(64);
    let stream = g.legacy();
    let htod = Request::CuMemcpyHtoD(MemcpyHtoD {
        dst: a,
        size: 10,
        stream,
    });
    // Fewer bytes than declared, more, and output segments on an input.
    assert_eq!(
        protocol_err(call_bulk(g.ex, htod.clone(), &mut [vec![0; 8]], &mut [])),
        ProtocolError::BadDescriptor
    );
    assert_eq!(
        protocol_err(call_bulk(
            g.ex,
            htod.clone(),
            &mut [vec![0; 8], vec![0; 8]],
            &mut []
        )),
        ProtocolError::BadDescriptor
    );
    assert_eq!(
        protocol_err(call_bulk(g.ex, htod, &mut [vec![0; 10]], &mut [vec![0; 1]])),
        ProtocolError::BadDescriptor
    );
    let dtoh = Request::CuMemcpyDtoH(MemcpyDtoH {
        src: a,
        size: 10,
        stream,
    });
    assert_eq!(
        protocol_err(call_bulk(
            g.ex,
            dtoh,
            &mut [vec![0; 10]],
            &mut [vec![0; 10]]
        )),
        ProtocolError::BadDescriptor
    );
    // Bulk on a request that takes none.
    let sync = Request::CuCtxSynchronize(CtxSynchronize { ctx: g.ctx() });
    assert_eq!(
        protocol_err(call_bulk(g.ex, sync, &mut [vec![1]], &mut [])),
        ProtocolError::BadDescriptor
    );
    // A module image shorter than declared; an image that is not its kind.
    let id = g.handle();
    let load = |kind, image_len, options| {
        Request::CuModuleLoad(ModuleLoad {
            id,
            ctx: 1,
            kind,
            image_len,
            options,
            info_log_len: 0,
            error_log_len: 0,
            upload: None,
        })
    };
    let ptx = VADD_PTX.as_bytes().to_vec();
    assert_eq!(
        protocol_err(call_bulk(
            g.ex,
            load(ImageKind::Ptx, ptx.len() as u64 + 1, vec![]),
            &mut [ptx.clone()],
            &mut []
        )),
        ProtocolError::BadDescriptor
    );
    assert_eq!(
        code(call_bulk(
            g.ex,
            load(ImageKind::Cubin, ptx.len() as u64, vec![]),
            &mut [ptx.clone()],
            &mut []
        )),
        INVALID_IMAGE
    );
    assert_eq!(
        code(call_bulk(
            g.ex,
            load(ImageKind::Fatbin, ptx.len() as u64, vec![]),
            &mut [ptx.clone()],
            &mut []
        )),
        INVALID_IMAGE
    );
    let mut with_nul = ptx.clone();
    with_nul.push(0);
    assert_eq!(
        code(call_bulk(
            g.ex,
            load(ImageKind::Ptx, with_nul.len() as u64, vec![]),
            &mut [with_nul],
            &mut []
        )),
        INVALID_PTX
    );
    // A JIT option that would hand the driver a guest pointer.
    let log_buffer = vec![JitOption {
        option: 3,
        value: 0x1000,
    }];
    assert_eq!(
        code(call_bulk(
            g.ex,
            load(ImageKind::Ptx, ptx.len() as u64, log_buffer),
            &mut [ptx],
            &mut []
        )),
        INVALID_VALUE
    );
    // Kernel names with a NUL.
    assert_eq!(
        code(g.call(Request::CuModuleGetGlobal(GetGlobal {
            module: 1,
            name: "a\0b".into()
        }))),
        INVALID_VALUE
    );
    g.ok(Request::CuMemFree(MemFree { ptr: a }));
}

fn limits(open: &mut dyn FnMut(SessionLimits) -> Box<dyn Executor>) {
    let mut ex = open(SessionLimits {
        max_objects: 6,
        max_device_memory: 1 << 20,
    });
    let mut g = Guest::new(ex.as_mut());
    let ctx = g.ctx();
    assert_eq!(
        code(g.call(Request::CuMemAlloc(MemAlloc {
            ctx,
            size: (1 << 20) + 1
        }))),
        OUT_OF_MEMORY
    );
    assert_eq!(
        code(g.call(Request::CuMemAlloc(MemAlloc {
            ctx,
            size: u64::MAX
        }))),
        OUT_OF_MEMORY
    );
    assert_eq!(
        code(g.call(Request::CuMemAlloc(MemAlloc { ctx, size: 0 }))),
        INVALID_VALUE
    );
    let half = g.alloc(1 << 19);
    // More than the device has, with no session limit in the way.
    let mut ex = open(LIMITS);
    let mut big = Guest::new(ex.as_mut());
    let ctx1 = big.ctx();
    assert_eq!(
        code(big.call(Request::CuMemAlloc(MemAlloc {
            ctx: ctx1,
            size: 1 << 62
        }))),
        OUT_OF_MEMORY
    );
    still_works(&mut big);
    g.alloc(1 << 19);
    assert_eq!(
        code(g.call(Request::CuMemAlloc(MemAlloc { ctx, size: 1 }))),
        OUT_OF_MEMORY
    );
    g.ok(Request::CuMemFree(MemFree { ptr: half }));
    g.alloc(1 << 18);
    // Objects: the context and two allocations so far; three more fit.
    for _ in 0..3 {
        let id = g.handle();
        g.ok(Request::CuEventCreate(EventCreate { id, ctx, flags: 0 }));
    }
    let id = g.handle();
    assert_eq!(
        protocol_err(g.call(Request::CuEventCreate(EventCreate { id, ctx, flags: 0 }))),
        ProtocolError::LimitExceeded
    );
    assert_eq!(
        protocol_err(g.call(Request::CuMemAlloc(MemAlloc { ctx, size: 8 }))),
        ProtocolError::LimitExceeded
    );
}

/// A pointer of one session means nothing in another.
fn other_sessions_pointers(open: &mut dyn FnMut(SessionLimits) -> Box<dyn Executor>) {
    let mut ex_a = open(LIMITS);
    let mut ex_b = open(LIMITS);
    let mut a = Guest::new(ex_a.as_mut());
    let mut b = Guest::new(ex_b.as_mut());
    let secret = a.alloc(64);
    a.htod(secret, b"secret of session A", 1).unwrap();
    assert_eq!(
        code(b.dtoh(secret, 19, 1).map(|_| Response::Ping(Empty {}))),
        INVALID_VALUE
    );
    assert_eq!(code(b.htod(secret, b"overwrite", 1)), INVALID_VALUE);
    assert_eq!(
        code(b.call(Request::CuMemFree(MemFree { ptr: secret }))),
        INVALID_VALUE
    );
    let mine = b.alloc(64);
    let stream = b.legacy();
    assert_eq!(
        code(b.call(Request::CuMemcpyDtoD(MemcpyDtoD {
            dst: mine,
            src: secret,
            size: 19,
            stream
        }))),
        INVALID_VALUE
    );
    assert_eq!(a.dtoh(secret, 19, 1).unwrap(), b"secret of session A");
}

/// Loads `bytes` as a module image of `kind`.
fn load_image(g: &mut Guest<'_>, kind: ImageKind, bytes: Vec<u8>) -> Result<Response, ExecError> {
    let id = g.handle();
    let ctx = g.ctx();
    let req = Request::CuModuleLoad(ModuleLoad {
        id,
        ctx,
        kind,
        image_len: bytes.len() as u64,
        options: vec![],
        info_log_len: 0,
        error_log_len: 0,
        upload: None,
    });
    call_bulk(g.ex, req, &mut [bytes], &mut [])
}

/// The driver takes an image by address and finds its extent from the
/// image's own headers: headers that reach past the bytes the guest sent
/// are refused before the driver could read beyond them.
fn images_reaching_past_their_end(g: &mut Guest<'_>) {
    use crate::executor::cuda::image::tests::{cubin, fatbin, PTX};
    let good = cubin();
    assert!(matches!(
        load_image(g, ImageKind::Cubin, good.clone()),
        Ok(Response::CuModuleLoad(ModuleLoaded { result: 0, .. }))
    ));
    // A program header table past the end.
    let mut img = good.clone();
    img[0x20..0x28].copy_from_slice(&(good.len() as u64).to_le_bytes());
    img[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
    img[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
    assert_eq!(code(load_image(g, ImageKind::Cubin, img)), INVALID_IMAGE);
    // A section whose bytes lie past the end.
    let mut img = good.clone();
    let shoff = u64::from_le_bytes(img[0x28..0x30].try_into().unwrap()) as usize;
    let first = shoff + 64;
    img[first + 32..first + 40].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert_eq!(code(load_image(g, ImageKind::Cubin, img)), INVALID_IMAGE);
    // A fat binary that claims more entries than it carries.
    let mut img = fatbin(&[(1, PTX.as_bytes()), (2, &good)]);
    let claimed = u64::from_le_bytes(img[8..16].try_into().unwrap()) + 4096;
    img[8..16].copy_from_slice(&claimed.to_le_bytes());
    assert_eq!(code(load_image(g, ImageKind::Fatbin, img)), INVALID_IMAGE);
    // A fat binary whose ELF entry's section table reaches past the entry.
    let mut elf = good.clone();
    let shoff = u64::from_le_bytes(elf[0x28..0x30].try_into().unwrap());
    elf[0x28..0x30].copy_from_slice(&(shoff + 64).to_le_bytes());
    let img = fatbin(&[(1, PTX.as_bytes()), (2, &elf)]);
    assert_eq!(code(load_image(g, ImageKind::Fatbin, img)), INVALID_IMAGE);
    // Well-formed ones still load.
    let img = fatbin(&[(1, PTX.as_bytes()), (2, &good)]);
    assert!(matches!(
        load_image(g, ImageKind::Fatbin, img),
        Ok(Response::CuModuleLoad(ModuleLoaded { result: 0, .. }))
    ));
}

/// Fat binaries that lie: a forged header, entry sizes past the region,
/// compressed entries that expand past (or short of) what they declare,
/// or that claim more than any compression reaches. Each is
/// `CUDA_ERROR_INVALID_IMAGE`, and the session goes on.
fn lying_fat_binaries(g: &mut Guest<'_>) {
    use crate::executor::cuda::image::tests::PTX;
    use protocol::fatbin::build::{fatbin, Spec};
    use protocol::fatbin::{FLAG_LZ4, FLAG_ZSTD, KIND_PTX, MAX_DECOMPRESSION_RATIO};
    let text = PTX.as_bytes();
    let packed = lz4_flex::block::compress(text);
    let lz4 = |declared_len| Spec {
        kind: KIND_PTX,
        sm: 80,
        stored: &packed,
        flags: FLAG_LZ4,
        declared_len,
    };
    let n = text.len() as u64;
    let good = fatbin(&[lz4(n)]);
    assert!(matches!(
        load_image(g, ImageKind::Fatbin, good.clone()),
        Ok(Response::CuModuleLoad(ModuleLoaded { result: 0, .. }))
    ));
    let mut forged = good.clone();
    forged[4] = 9; // header version
    let mut lying = good.clone();
    lying[16 + 8..16 + 16].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let junk = [0x28u8, 0xb5, 0x2f, 0xfd, 0x24, 0, 0, 0, 1, 2, 3, 4];
    let zstd_junk = Spec {
        stored: &junk,
        flags: FLAG_ZSTD,
        ..lz4(64)
    };
    for img in [
        forged,
        lying,
        fatbin(&[lz4(n - 1)]),
        fatbin(&[lz4(n + 100)]),
        fatbin(&[lz4(packed.len() as u64 * MAX_DECOMPRESSION_RATIO + 1)]),
        fatbin(&[zstd_junk]),
    ] {
        assert_eq!(code(load_image(g, ImageKind::Fatbin, img)), INVALID_IMAGE);
    }
    assert!(matches!(
        load_image(g, ImageKind::Fatbin, good),
        Ok(Response::CuModuleLoad(ModuleLoaded { result: 0, .. }))
    ));
}

/// Runs every hostile check against executors made by `open`.
pub(super) fn run(open: &mut dyn FnMut(SessionLimits) -> Box<dyn Executor>) {
    let mut ex = open(LIMITS);
    assert_eq!(
        code(call(
            ex.as_mut(),
            Request::CuMemAlloc(MemAlloc { ctx: 1, size: 8 })
        )),
        NOT_INITIALIZED
    );
    let mut g = Guest::new(ex.as_mut());
    forged_handles(&mut g);
    still_works(&mut g);
    forged_pointers(&mut g);
    still_works(&mut g);
    lengths_that_do_not_add_up(&mut g);
    still_works(&mut g);
    images_reaching_past_their_end(&mut g);
    lying_fat_binaries(&mut g);
    still_works(&mut g);
    limits(open);
    other_sessions_pointers(open);
}

#[test]
fn hostile_input_on_the_recording_double() {
    run(&mut |limits| Box::new(double(limits)));
}

#[test]
fn hostile_input_on_the_real_executor() {
    let Some(f) = real_factory("the hostile-input checks") else {
        return;
    };
    run(&mut |limits| Box::new(f.open_cuda(limits)));
}
