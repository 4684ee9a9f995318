//! The [`Recorder`] every double session shares with its test, the
//! recording executor ([`RecordingCudaDouble`]) and its factory.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use protocol::session::FEATURE_CUDA;
use protocol::{Opcode, Request, Response};

use super::gpu::EmulatedGpu;
use super::DOUBLE_TOTAL_MEM;
use crate::executor::cuda::CudaSession;
use crate::executor::{Bulk, ExecError, Executor, ExecutorError, ExecutorFactory};
use crate::limits::SessionLimits;
use crate::segment::Cursor;

/// Session numbers, for telling recorded calls apart.
static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// One call the double received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// The session that made it (numbered from 1 per process).
    pub session: u64,
    /// The request, as decoded.
    pub request: Request,
    /// Its in-bulk bytes, concatenated (copy sources, module images).
    pub input: Vec<u8>,
    /// What the double answered.
    pub outcome: Result<Response, ExecError>,
}

#[derive(Debug)]
struct FailRule {
    opcode: Opcode,
    skip: usize,
    code: i32,
    sticky: bool,
}

#[derive(Debug, Default)]
struct RecorderState {
    calls: Vec<Call>,
    rules: Vec<FailRule>,
}

/// What every session of a [`RecordingCudaFactory`] shares with the test:
/// the recorded calls and the failures to inject.
#[derive(Debug, Default)]
pub struct Recorder {
    state: Mutex<RecorderState>,
    live: AtomicUsize,
    opened: AtomicUsize,
}

impl Recorder {
    fn state(&self) -> MutexGuard<'_, RecorderState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every call so far, in order, across sessions.
    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// The requests so far whose opcode is `op`.
    pub fn requests(&self, op: Opcode) -> Vec<Request> {
        self.state()
            .calls
            .iter()
            .filter(|c| c.request.opcode() == op)
            .map(|c| c.request.clone())
            .collect()
    }

    /// Forgets the calls recorded so far.
    pub fn clear(&self) {
        self.state().calls.clear();
    }

    /// Makes the `nth` (0-based) next call of `opcode`, in any session,
    /// fail with `code` without running.
    pub fn fail(&self, opcode: Opcode, nth: usize, code: i32) {
        self.state().rules.push(FailRule {
            opcode,
            skip: nth,
            code,
            sticky: false,
        });
    }

    /// Like [`Recorder::fail`], and every later call of that session fails
    /// with `code` too, as after a kernel fault in a real context.
    pub fn fail_sticky(&self, opcode: Opcode, nth: usize, code: i32) {
        self.state().rules.push(FailRule {
            opcode,
            skip: nth,
            code,
            sticky: true,
        });
    }

    /// Sessions open now.
    pub fn live_sessions(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// Sessions opened so far.
    pub fn sessions_opened(&self) -> usize {
        self.opened.load(Ordering::SeqCst)
    }

    /// The injected failure for a call of `op`, if one is due.
    fn injected(&self, op: Opcode) -> Option<(i32, bool)> {
        let mut st = self.state();
        let i = st.rules.iter().position(|r| r.opcode == op)?;
        let rule = st.rules.get_mut(i)?;
        if rule.skip > 0 {
            rule.skip -= 1;
            return None;
        }
        let rule = st.rules.remove(i);
        Some((rule.code, rule.sticky))
    }
}

/// The recording CUDA test double: the real session layer over an
/// [`EmulatedGpu`], recording every call into its [`Recorder`].
pub struct RecordingCudaDouble {
    session: u64,
    inner: CudaSession<EmulatedGpu>,
    recorder: Arc<Recorder>,
    poisoned: Option<i32>,
}

impl fmt::Debug for RecordingCudaDouble {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordingCudaDouble")
            .field("session", &self.session)
            .field("inner", &self.inner)
            .finish()
    }
}

impl RecordingCudaDouble {
    /// A session with one emulated device of [`DOUBLE_TOTAL_MEM`] bytes.
    pub fn new(limits: SessionLimits, recorder: Arc<Recorder>) -> Self {
        Self::with_gpu(EmulatedGpu::new(1, DOUBLE_TOTAL_MEM), limits, recorder)
    }

    /// A session over a given emulated machine.
    pub fn with_gpu(gpu: EmulatedGpu, limits: SessionLimits, recorder: Arc<Recorder>) -> Self {
        recorder.live.fetch_add(1, Ordering::SeqCst);
        recorder.opened.fetch_add(1, Ordering::SeqCst);
        RecordingCudaDouble {
            session: NEXT_SESSION.fetch_add(1, Ordering::Relaxed),
            inner: CudaSession::new(gpu, limits),
            recorder,
            poisoned: None,
        }
    }

    /// The session layer, for tests that inspect its state.
    pub fn session(&self) -> &CudaSession<EmulatedGpu> {
        &self.inner
    }

    /// This session's number in [`Call::session`].
    pub fn id(&self) -> u64 {
        self.session
    }
}

impl Drop for RecordingCudaDouble {
    fn drop(&mut self) {
        self.recorder.live.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Executor for RecordingCudaDouble {
    fn execute(&mut self, req: Request, bulk: &Bulk<'_>) -> Result<Response, ExecError> {
        let input = Cursor::new(bulk.input).gather(0);
        let outcome = match (self.poisoned, self.recorder.injected(req.opcode())) {
            (Some(code), _) => Err(ExecError::Native(code)),
            (None, Some((code, sticky))) => {
                if sticky {
                    self.poisoned = Some(code);
                }
                Err(ExecError::Native(code))
            }
            (None, None) => self.inner.execute(req.clone(), bulk),
        };
        self.recorder.state().calls.push(Call {
            session: self.session,
            request: req,
            input,
            outcome: outcome.clone(),
        });
        outcome
    }
}

/// Opens [`RecordingCudaDouble`] sessions that share one [`Recorder`].
#[derive(Debug)]
pub struct RecordingCudaFactory {
    recorder: Arc<Recorder>,
    devices: u32,
    total_mem: u64,
}

impl Default for RecordingCudaFactory {
    fn default() -> Self {
        Self::with_devices(1, DOUBLE_TOTAL_MEM)
    }
}

impl RecordingCudaFactory {
    /// A factory with a fresh recorder and one emulated device of
    /// [`DOUBLE_TOTAL_MEM`] bytes.
    pub fn new() -> Self {
        Self::default()
    }

    /// A factory whose sessions see `devices` emulated devices of
    /// `total_mem` bytes each.
    pub fn with_devices(devices: u32, total_mem: u64) -> Self {
        RecordingCudaFactory {
            recorder: Arc::default(),
            devices,
            total_mem,
        }
    }

    /// The recorder its sessions share.
    pub fn recorder(&self) -> Arc<Recorder> {
        Arc::clone(&self.recorder)
    }
}

impl ExecutorFactory for RecordingCudaFactory {
    fn name(&self) -> &'static str {
        "cuda-recording-double"
    }
    fn features(&self) -> u64 {
        FEATURE_CUDA
    }
    fn open(&self, limits: SessionLimits) -> Result<Box<dyn Executor>, ExecutorError> {
        Ok(Box::new(RecordingCudaDouble::with_gpu(
            EmulatedGpu::new(self.devices, self.total_mem),
            limits,
            Arc::clone(&self.recorder),
        )))
    }
}
