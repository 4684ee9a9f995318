//! Test doubles shared by the unit tests of chains and streams: a fake
//! executor that writes `out` into every out-bulk segment, records what it
//! was asked to run, answers `ClFinish` with success, blocks in
//! `ClWaitForEvents` until it is abandoned (a wait only the guest could
//! end), spends [`BUSY`] in `ClBuildProgram` (a long call of the guest's
//! own, which abandoning does not cut short), and answers anything else
//! with native error -30.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Condvar, Mutex};

use protocol::opencl::Empty;
use protocol::session::FEATURE_OPENCL;
use protocol::{Request, Response};

use crate::executor::{Abandon, Bulk, ExecError, Executor, ExecutorError, ExecutorFactory};
use crate::limits::SessionLimits;
use crate::segment::{InSeg, OutSeg};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seen {
    pub req: Request,
    pub input: Vec<Vec<u8>>,
    pub output_lens: Vec<usize>,
}

pub(crate) type Log = Arc<Mutex<Vec<Seen>>>;

/// How long the fake executor's `ClBuildProgram` keeps its session busy.
pub(crate) const BUSY: std::time::Duration = std::time::Duration::from_millis(700);

pub(crate) struct FakeFactory(pub Log);
pub(crate) struct FakeExecutor(pub Log, Arc<Gate>);

/// What a fake `ClWaitForEvents` waits for: the session being abandoned.
#[derive(Default)]
pub(crate) struct Gate(Mutex<bool>, Condvar);

impl Abandon for Gate {
    fn abandon(&self) {
        *self.0.lock().unwrap() = true;
        self.1.notify_all();
    }

    fn resume(&self) {
        *self.0.lock().unwrap() = false;
    }
}

impl Executor for FakeExecutor {
    fn execute(&mut self, req: Request, bulk: &Bulk<'_>) -> Result<Response, ExecError> {
        for b in bulk.output {
            assert!(b.write_at(0, b"out"));
        }
        self.0.lock().unwrap().push(Seen {
            req: req.clone(),
            input: bulk.input.iter().map(|b| b.to_vec()).collect(),
            output_lens: bulk.output.iter().map(|b| b.len()).collect(),
        });
        match req {
            Request::ClFinish(_) => Ok(Response::ClFinish(Empty {})),
            Request::ClBuildProgram(_) => {
                std::thread::sleep(BUSY);
                Err(ExecError::Native(-30))
            }
            Request::ClWaitForEvents(_) => {
                let gate = &self.1;
                let mut open = gate.0.lock().unwrap();
                while !*open {
                    open = gate.1.wait(open).unwrap();
                }
                Ok(Response::ClWaitForEvents(Empty {}))
            }
            _ => Err(ExecError::Native(-30)),
        }
    }

    fn abandoner(&self) -> Option<Arc<dyn Abandon>> {
        Some(self.1.clone())
    }
}

impl ExecutorFactory for FakeFactory {
    fn name(&self) -> &'static str {
        "fake"
    }
    fn features(&self) -> u64 {
        FEATURE_OPENCL
    }
    fn open(&self, _: SessionLimits) -> Result<Box<dyn Executor>, ExecutorError> {
        Ok(Box::new(FakeExecutor(self.0.clone(), Arc::default())))
    }
}

/// Log output, captured by [`capture_log`].
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `f` with this thread's log captured (every level, no colours);
/// returns what was logged.
pub(crate) fn capture_log(f: impl FnOnce()) -> String {
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::TRACE)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = out.0.lock().unwrap().clone();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Runs `req` on `ex` with in-bulk segments over `input` and out-bulk
/// segments over `output`.
pub(crate) fn call_bulk(
    ex: &mut dyn Executor,
    req: Request,
    input: &mut [Vec<u8>],
    output: &mut [Vec<u8>],
) -> Result<Response, ExecError> {
    let i: Vec<InSeg<'_>> = input.iter().map(|b| InSeg::bytes(b)).collect();
    let o: Vec<OutSeg<'_>> = output.iter_mut().map(|b| OutSeg::bytes(b)).collect();
    ex.execute(
        req,
        &Bulk {
            input: &i,
            output: &o,
        },
    )
}
