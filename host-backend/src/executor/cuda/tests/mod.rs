//! Tests of the CUDA executors, driven the way the session layer drives
//! them: decoded requests plus guest segments.
//!
//! | file | what |
//! |---|---|
//! | `conformance.rs` | API behaviour every CUDA executor must show |
//! | `graphs.rs` | capture, graphs, stream-ordered allocation, staged images (every executor) |
//! | `hostile.rs` | what an untrusted guest must not be able to do |
//! | `double.rs` | the recording test double's recording and fault injection |
//! | `gpu.rs` | the real executor on a GPU (skipped, saying so, without one) |
//!
//! The conformance and hostile checks run against the recording test double
//! always and against the real executor when a GPU is present.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;
mod double;
mod gpu;
mod graphs;
mod hostile;

use std::sync::Arc;

use protocol::cuda::*;
use protocol::{Request, Response};

use super::CudaFactory;
use crate::executor::{Bulk, ExecError, Executor};
use crate::limits::SessionLimits;
pub(super) use crate::test_util::call_bulk;
use crate::testing::{Recorder, RecordingCudaDouble};

/// Limits generous enough for the functional checks.
pub(super) const LIMITS: SessionLimits = SessionLimits {
    max_objects: 1000,
    max_device_memory: u64::MAX,
};

/// A PTX module every executor must load: a vector add that also adds a
/// module global, and a kernel without parameters.
pub(super) const VADD_PTX: &str = r#"
.version 7.0
.target sm_50
.address_size 64

.visible .global .align 4 .f32 bias;

.visible .entry vadd(
	.param .u64 vadd_param_0,
	.param .u64 vadd_param_1,
	.param .u64 vadd_param_2,
	.param .u32 vadd_param_3
)
{
	.reg .pred 	%p<2>;
	.reg .f32 	%f<6>;
	.reg .b32 	%r<6>;
	.reg .b64 	%rd<11>;

	ld.param.u64 	%rd1, [vadd_param_0];
	ld.param.u64 	%rd2, [vadd_param_1];
	ld.param.u64 	%rd3, [vadd_param_2];
	ld.param.u32 	%r2, [vadd_param_3];
	mov.u32 	%r3, %ctaid.x;
	mov.u32 	%r4, %ntid.x;
	mov.u32 	%r5, %tid.x;
	mad.lo.s32 	%r1, %r3, %r4, %r5;
	setp.ge.u32 	%p1, %r1, %r2;
	@%p1 bra 	DONE;
	cvta.to.global.u64 	%rd4, %rd1;
	cvta.to.global.u64 	%rd5, %rd2;
	cvta.to.global.u64 	%rd6, %rd3;
	mul.wide.u32 	%rd7, %r1, 4;
	add.s64 	%rd8, %rd4, %rd7;
	add.s64 	%rd9, %rd5, %rd7;
	add.s64 	%rd10, %rd6, %rd7;
	ld.global.f32 	%f1, [%rd8];
	ld.global.f32 	%f2, [%rd9];
	add.f32 	%f3, %f1, %f2;
	ld.global.f32 	%f4, [bias];
	add.f32 	%f5, %f3, %f4;
	st.global.f32 	[%rd10], %f5;
DONE:
	ret;
}

.visible .entry noop()
{
	ret;
}
"#;

/// A fresh recording double (its own recorder).
pub(super) fn double(limits: SessionLimits) -> RecordingCudaDouble {
    RecordingCudaDouble::new(limits, Arc::new(Recorder::default()))
}

/// The real driver's factory, or `None` after printing why the caller is
/// skipped.
pub(super) fn real_factory(what: &str) -> Option<CudaFactory> {
    match CudaFactory::new() {
        Ok(f) => Some(f),
        Err(e) => {
            println!("SKIPPED: no NVIDIA driver/GPU ({e}): {what} needs one");
            None
        }
    }
}

pub(super) fn call(ex: &mut dyn Executor, req: Request) -> Result<Response, ExecError> {
    ex.execute(req, &Bulk::default())
}

pub(super) fn ok(ex: &mut dyn Executor, req: Request) -> Response {
    let what = format!("{:?}", req.opcode());
    call(ex, req).unwrap_or_else(|e| panic!("{what} failed: {e:?}"))
}

/// The native code of a failed call.
pub(super) fn code(r: Result<Response, ExecError>) -> i32 {
    match r {
        Err(ExecError::Native(c)) => c,
        other => panic!("expected a native error, got {other:?}"),
    }
}

/// Handles and helpers for one session under test.
pub(super) struct Guest<'a> {
    pub ex: &'a mut dyn Executor,
    next: Handle,
}

impl<'a> Guest<'a> {
    /// Initializes the session and creates context 1 on device 0.
    pub fn new(ex: &'a mut dyn Executor) -> Self {
        ok(ex, Request::CuInit(Init { flags: 0 }));
        let mut g = Guest { ex, next: 1 };
        let ctx = g.handle();
        g.ok(Request::CuCtxCreate(CtxCreate {
            id: ctx,
            device: 0,
            flags: 0,
        }));
        g
    }

    /// The context made by [`Guest::new`].
    pub fn ctx(&self) -> Handle {
        1
    }

    pub fn legacy(&self) -> StreamRef {
        StreamRef::Legacy { ctx: self.ctx() }
    }

    pub fn handle(&mut self) -> Handle {
        let h = self.next;
        self.next += 1;
        h
    }

    pub fn ok(&mut self, req: Request) -> Response {
        ok(self.ex, req)
    }

    pub fn call(&mut self, req: Request) -> Result<Response, ExecError> {
        call(self.ex, req)
    }

    pub fn alloc(&mut self, size: u64) -> u64 {
        match self.ok(Request::CuMemAlloc(MemAlloc {
            ctx: self.ctx(),
            size,
        })) {
            Response::CuMemAlloc(p) => p.ptr,
            r => panic!("{r:?}"),
        }
    }

    /// Copies `data` to `dst`, split into `pieces` guest segments.
    pub fn htod(&mut self, dst: u64, data: &[u8], pieces: usize) -> Result<Response, ExecError> {
        let step = data.len().div_ceil(pieces.max(1)).max(1);
        let mut segs: Vec<Vec<u8>> = data.chunks(step).map(<[u8]>::to_vec).collect();
        let stream = self.legacy();
        call_bulk(
            self.ex,
            Request::CuMemcpyHtoD(MemcpyHtoD {
                dst,
                size: data.len() as u64,
                stream,
            }),
            &mut segs,
            &mut [],
        )
    }

    /// Reads `len` bytes from `src` into `pieces` guest segments.
    pub fn dtoh(&mut self, src: u64, len: usize, pieces: usize) -> Result<Vec<u8>, ExecError> {
        let step = len.div_ceil(pieces.max(1)).max(1);
        let mut segs: Vec<Vec<u8>> = (0..len)
            .step_by(step)
            .map(|at| vec![0xEE; step.min(len - at)])
            .collect();
        let stream = self.legacy();
        call_bulk(
            self.ex,
            Request::CuMemcpyDtoH(MemcpyDtoH {
                src,
                size: len as u64,
                stream,
            }),
            &mut [],
            &mut segs,
        )?;
        Ok(segs.concat())
    }

    /// Loads PTX text as module `id`.
    pub fn load_ptx(&mut self, src: &str) -> (Handle, ModuleLoaded) {
        let id = self.handle();
        let mut image = vec![src.as_bytes().to_vec()];
        let req = Request::CuModuleLoad(ModuleLoad {
            id,
            ctx: self.ctx(),
            kind: ImageKind::Ptx,
            image_len: src.len() as u64,
            options: vec![],
            info_log_len: 4096,
            error_log_len: 4096,
            upload: None,
        });
        match call_bulk(self.ex, req, &mut image, &mut []) {
            Ok(Response::CuModuleLoad(l)) => (id, l),
            r => panic!("module load: {r:?}"),
        }
    }

    /// Fetches a kernel; returns its handle and layout.
    pub fn function(&mut self, module: Handle, name: &str) -> (Handle, Option<Vec<ParamInfo>>) {
        let id = self.handle();
        match self.ok(Request::CuModuleGetFunction(GetFunction {
            id,
            module,
            name: name.into(),
        })) {
            Response::CuModuleGetFunction(f) => (id, f.params),
            r => panic!("{r:?}"),
        }
    }
}

/// Packs `vadd`'s parameters.
pub(super) fn vadd_params(a: u64, b: u64, c: u64, n: u32) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&a.to_le_bytes());
    p.extend_from_slice(&b.to_le_bytes());
    p.extend_from_slice(&c.to_le_bytes());
    p.extend_from_slice(&n.to_le_bytes());
    p
}

/// A byte pattern that differs at every offset of a large buffer.
pub(super) fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 11) as u8)
        .collect()
}
