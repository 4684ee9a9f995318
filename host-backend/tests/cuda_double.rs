//! The CUDA family end to end through real virtqueues, against the
//! recording test double: the server runs in-process (`RecordingServer`,
//! as in the shim's tests), a vhost-user frontend drives it, and the
//! recorder shows what arrived.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod frontend;

use std::sync::Arc;

use frontend::{wait_until, FrameSpec, TestGuest};
use protocol::cuda::result::{INVALID_VALUE, LAUNCH_FAILED};
use protocol::cuda::*;
use protocol::opencl::QueueOp;
use protocol::session::{FEATURE_BATCH, FEATURE_CUDA, FEATURE_OPENCL};
use protocol::{Opcode, Outcome, ProtocolError, Request, Response, FLAG_ASYNC};
use vhost_device_compute::testing::{Recorder, RecordingServer};

const PTX: &str = ".version 7.0\n.target sm_50\n.address_size 64\n\
    .visible .entry scale(.param .u64 p, .param .f32 k, .param .u32 n) { ret; }\n";

struct Running {
    recorder: Arc<Recorder>,
    server: RecordingServer,
    _dir: tempfile::TempDir,
}

impl Running {
    fn start() -> Running {
        let dir = tempfile::tempdir().unwrap();
        let server = RecordingServer::start(dir.path().join("compute.sock")).unwrap();
        Running {
            recorder: Arc::clone(server.recorder()),
            server,
            _dir: dir,
        }
    }

    /// A guest with a CUDA session, initialized, with context 1.
    fn guest(&self) -> TestGuest {
        let mut g = TestGuest::connect(self.server.socket()).unwrap();
        let granted = g.open_session_with(FEATURE_CUDA | FEATURE_OPENCL | FEATURE_BATCH);
        assert_eq!(granted, FEATURE_CUDA | FEATURE_BATCH);
        let (out, _) = g
            .call_frames(
                1,
                &[
                    FrameSpec::plain(Request::CuInit(Init { flags: 0 })),
                    async_frame(Request::CuCtxCreate(CtxCreate {
                        id: 1,
                        device: 0,
                        flags: 0,
                    })),
                ],
            )
            .unwrap();
        assert!(
            out.iter().all(|(_, o)| matches!(o, Outcome::Ok(_))),
            "{out:?}"
        );
        g
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.server.stop().unwrap();
    }
}

fn async_frame(req: Request) -> FrameSpec {
    FrameSpec {
        flags: FLAG_ASYNC,
        ..FrameSpec::plain(req)
    }
}

fn alloc(g: &mut TestGuest, size: u64) -> u64 {
    let (out, _) = g
        .call_frames(
            1,
            &[FrameSpec::plain(Request::CuMemAlloc(MemAlloc {
                ctx: 1,
                size,
            }))],
        )
        .unwrap();
    match &out[..] {
        [(_, Outcome::Ok(Response::CuMemAlloc(p)))] => p.ptr,
        other => panic!("{other:?}"),
    }
}

const LEGACY: StreamRef = StreamRef::Legacy { ctx: 1 };

fn htod(dst: u64, segs: Vec<Vec<u8>>) -> FrameSpec {
    let size = segs.iter().map(|s| s.len() as u64).sum();
    FrameSpec {
        flags: FLAG_ASYNC,
        input: segs,
        ..FrameSpec::plain(Request::CuMemcpyHtoD(MemcpyHtoD {
            dst,
            size,
            stream: LEGACY,
        }))
    }
}

fn dtoh(src: u64, lens: Vec<u32>) -> FrameSpec {
    let size = lens.iter().map(|&l| u64::from(l)).sum();
    FrameSpec {
        output: lens,
        ..FrameSpec::plain(Request::CuMemcpyDtoH(MemcpyDtoH {
            src,
            size,
            stream: LEGACY,
        }))
    }
}

fn launch(function: Handle, params: Vec<u8>) -> FrameSpec {
    async_frame(Request::CuLaunchKernel(LaunchKernel {
        function,
        grid: [4, 1, 1],
        block: [256, 1, 1],
        shared_mem_bytes: 0,
        stream: LEGACY,
        params,
    }))
}

#[test]
fn a_batched_chain_reaches_the_double_in_order_with_its_bytes() {
    let srv = Running::start();
    let mut g = srv.guest();
    // Module load with its image as bulk, then the kernel's layout.
    let (out, _) = g
        .call_frames(
            1,
            &[
                FrameSpec {
                    input: vec![PTX.as_bytes().to_vec()],
                    ..FrameSpec::plain(Request::CuModuleLoad(ModuleLoad {
                        id: 10,
                        ctx: 1,
                        kind: ImageKind::Ptx,
                        image_len: PTX.len() as u64,
                        options: vec![],
                        info_log_len: 0,
                        error_log_len: 0,
                        upload: None,
                    }))
                },
                FrameSpec::plain(Request::CuModuleGetFunction(GetFunction {
                    id: 11,
                    module: 10,
                    name: "scale".into(),
                })),
            ],
        )
        .unwrap();
    let [(_, Outcome::Ok(Response::CuModuleLoad(l))), (_, Outcome::Ok(Response::CuModuleGetFunction(f)))] =
        &out[..]
    else {
        panic!("{out:?}")
    };
    assert_eq!(l.result, 0);
    let p = |offset, size| ParamInfo { offset, size };
    assert_eq!(f.params, Some(vec![p(0, 8), p(8, 4), p(12, 4)]));
    // One chain: two async copies in (one of two segments), a launch, and
    // a synchronous copy out through two segments.
    let ptr = alloc(&mut g, 4096);
    let mut params = ptr.to_le_bytes().to_vec();
    params.extend(2.5f32.to_le_bytes());
    params.extend(1024u32.to_le_bytes());
    let (out, data) = g
        .call_frames(
            1,
            &[
                htod(ptr, vec![b"hello ".to_vec(), b"virtio".to_vec()]),
                htod(ptr + 12, vec![b"-compute".to_vec()]),
                launch(11, params.clone()),
                dtoh(ptr, vec![6, 14]),
            ],
        )
        .unwrap();
    assert_eq!(out.len(), 4);
    assert!(
        out.iter().all(|(_, o)| matches!(o, Outcome::Ok(_))),
        "{out:?}"
    );
    assert_eq!(data.concat(), b"hello virtio-compute");
    // The recorder saw every call, in order, with its bytes.
    let calls = srv.recorder.calls();
    let ops: Vec<Opcode> = calls.iter().map(|c| c.request.opcode()).collect();
    assert_eq!(
        ops,
        [
            Opcode::CuInit,
            Opcode::CuCtxCreate,
            Opcode::CuModuleLoad,
            Opcode::CuModuleGetFunction,
            Opcode::CuMemAlloc,
            Opcode::CuMemcpyHtoD,
            Opcode::CuMemcpyHtoD,
            Opcode::CuLaunchKernel,
            Opcode::CuMemcpyDtoH,
        ]
    );
    assert_eq!(calls[2].input, PTX.as_bytes());
    assert_eq!(calls[5].input, b"hello virtio");
    let [Request::CuLaunchKernel(l)] = &srv.recorder.requests(Opcode::CuLaunchKernel)[..] else {
        panic!()
    };
    assert_eq!((l.function, l.grid, l.block), (11, [4, 1, 1], [256, 1, 1]));
    assert_eq!(l.params, params);
}

#[test]
fn an_injected_failure_answers_its_own_frame_and_the_chain_goes_on() {
    let srv = Running::start();
    let mut g = srv.guest();
    let ptr = alloc(&mut g, 64);
    srv.recorder.fail(Opcode::CuMemcpyHtoD, 1, LAUNCH_FAILED);
    let (out, data) = g
        .call_frames(
            1,
            &[
                htod(ptr, vec![b"one".to_vec()]),
                htod(ptr, vec![b"two".to_vec()]),
                dtoh(ptr, vec![3]),
            ],
        )
        .unwrap();
    let outcomes: Vec<&Outcome> = out.iter().map(|(_, o)| o).collect();
    assert!(matches!(outcomes[0], Outcome::Ok(_)));
    assert_eq!(outcomes[1], &Outcome::Native(LAUNCH_FAILED));
    assert!(matches!(outcomes[2], Outcome::Ok(_)));
    assert_eq!(data.concat(), b"one");
}

#[test]
fn sessions_cannot_reach_each_other_and_leave_nothing_behind() {
    let srv = Running::start();
    let mut a = srv.guest();
    let mut b = srv.guest();
    assert_eq!(srv.recorder.live_sessions(), 2);
    let secret = alloc(&mut a, 64);
    a.call_frames(1, &[htod(secret, vec![b"A's data".to_vec()])])
        .unwrap();
    let (out, _) = b
        .call_frames(
            1,
            &[
                htod(secret, vec![b"B writes".to_vec()]),
                dtoh(secret, vec![8]),
            ],
        )
        .unwrap();
    assert_eq!(out[0].1, Outcome::Native(INVALID_VALUE));
    assert_eq!(out[1].1, Outcome::Native(INVALID_VALUE));
    let (_, data) = a.call_frames(1, &[dtoh(secret, vec![8])]).unwrap();
    assert_eq!(data.concat(), b"A's data");
    // OpenCL calls are not granted to a CUDA-only daemon's session.
    let (out, _) = b
        .call_frames(
            1,
            &[FrameSpec::plain(Request::ClFinish(QueueOp { queue: 1 }))],
        )
        .unwrap();
    assert_eq!(out[0].1, Outcome::Protocol(ProtocolError::ApiUnavailable));
    drop(a);
    drop(b);
    assert!(
        wait_until(|| srv.recorder.live_sessions() == 0),
        "{} sessions still open",
        srv.recorder.live_sessions()
    );
}
